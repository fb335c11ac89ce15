"""The Node client (tests/lsp/node/client.mjs, vscode-languageserver-protocol) as a third,
independent client, run from pytest so one runner runs every client."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support import RETURN_POS

NODE_DIR = Path(__file__).parent / "node"


def test_node_client_session(ws, cairn_bin):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `scripts/setup.sh --test`")
    if not (NODE_DIR / "node_modules" / "vscode-languageserver-protocol").is_dir():
        pytest.fail(f"run `npm ci` in {NODE_DIR} (scripts/setup.sh --test does)")
    r = subprocess.run(
        [
            node,
            str(NODE_DIR / "client.mjs"),
            "--bin", str(cairn_bin),
            "--repo", str(ws.repo),
            "--file", "calc.py",
            "--line", str(RETURN_POS["line"]),
            "--character", str(RETURN_POS["character"]),
        ],
        env=ws.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"node client exited {r.returncode}\nstdout:\n{r.stdout}\nstderr (tail):\n{r.stderr[-6000:]}"
    assert r.stdout.startswith("ok:"), r.stdout
    print(r.stdout)
