"""The binary under test must exist and know `mcp`; everything else is per test (support.py)."""

from __future__ import annotations

import subprocess

import pytest

import support


@pytest.fixture(scope="session", autouse=True)
def cairn_bin():
    path = support.cairn_bin()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo build -p cairn` or set CAIRN_BIN")
    r = subprocess.run([str(path), "mcp", "--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"`{path} mcp --help` exited {r.returncode}: {r.stderr.strip()[:2000]}")
    return path
