"""`cairn mcp` on the engine of a running `cairn lsp --remote auto` daemon, and over streamable
HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

import support
from support import call, mcp_session


@pytest.fixture
def ws(tmp_path):
    return support.make_workspace(tmp_path)


class Editor:
    """`cairn lsp --remote auto`, spoken to with Content-Length frames (an editor's session)."""

    def __init__(self, ws: support.Workspace):
        env = dict(ws.env, CAIRN_DAEMON_IDLE_SECS="2")
        self.proc = subprocess.Popen(
            [str(support.cairn_bin()), "lsp", "--remote", "auto"],
            cwd=ws.repo,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(ws.root / "lsp-stderr.log", "ab"),
        )
        self.next = 1
        self.lock = threading.Lock()

    def _send(self, msg: dict) -> None:
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _read(self) -> dict:
        length = 0
        while True:
            line = self.proc.stdout.readline()
            assert line, "the LSP server closed"
            if line == b"\r\n":
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def request(self, method: str, params) -> dict:
        rid = self.next
        self.next += 1
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        while True:
            m = self._read()
            if "method" in m and "id" in m:
                self._send({"jsonrpc": "2.0", "id": m["id"], "result": None})
            elif m.get("id") == rid:
                return m

    def notify(self, method: str, params) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def stop(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.proc.stdin.close()
        self.proc.wait(30)


def open_editor(ws) -> Editor:
    ed = Editor(ws)
    r = ed.request("initialize", {"processId": None, "rootUri": ws.repo.as_uri(), "capabilities": {}})
    assert "result" in r, r
    ed.notify("initialized", {})
    t = time.monotonic()
    while time.monotonic() - t < 120:
        s = ed.request("cairn/status", None)["result"]
        if s["index"]["state"] not in ("opening", "indexing"):
            break
        time.sleep(0.1)
    assert s["index"]["state"] == "ready", s
    return ed


async def test_an_agent_shares_the_engine_an_editor_has_open(ws):
    socket_dir = ws.root / "run" / "cairn"
    ed = open_editor(ws)
    try:
        assert (socket_dir / "lsp.sock").exists() and (socket_dir / "mcp.sock").exists()
        async with mcp_session(ws, "--record-edits") as s:
            status = json.loads((await s.read_resource("cairn://index/status")).contents[0].text)
            assert status["engine"]["shared"] is True, status
            daemon_pid = status["engine"]["daemonPid"]
            assert daemon_pid != ed.proc.pid  # the daemon, not the editor's forwarder
            assert status["recordEdits"] is True
            got = await call(s, "search", {"query": "parse config"})
            assert got["hits"][0]["path"] == "src/config.py"
            # The editor leaves; the agent's session keeps the daemon (and its engine) up.
            ed.stop()
            ed = None
            await asyncio.sleep(3.5)
            got = await call(s, "symbols", {"name": "merge_configs"})
            assert got["symbols"], got
        # With no session left the daemon goes away and removes both sockets.
        t = time.monotonic()
        while (socket_dir / "mcp.sock").exists() and time.monotonic() - t < 30:
            await asyncio.sleep(0.1)
        assert not (socket_dir / "lsp.sock").exists()
        assert not (socket_dir / "mcp.sock").exists()
    finally:
        if ed is not None:
            ed.stop()


async def test_without_an_editor_on_the_repository_the_agent_gets_its_own_engine(ws, tmp_path_factory):
    other = support.make_workspace(tmp_path_factory.mktemp("other"))
    # Same user runtime dir: the daemon runs, but for another repository.
    other.env.update({k: ws.env[k] for k in ("XDG_RUNTIME_DIR",)})
    ed = open_editor(other)
    try:
        async with mcp_session(ws) as s:
            status = json.loads((await s.read_resource("cairn://index/status")).contents[0].text)
            assert status["engine"] == {"shared": False}, status
            assert status["repo"] == str(ws.repo)
            assert (await call(s, "search", {"query": "distance"}))["hits"]
        async with mcp_session(ws, "--no-share") as s:
            status = json.loads((await s.read_resource("cairn://index/status")).contents[0].text)
            assert status["engine"] == {"shared": False}
    finally:
        ed.stop()


def start_http(ws, addr: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(support.cairn_bin()), "mcp", "--repo", str(ws.repo), "--http", addr, "--no-share"],
        cwd=ws.repo,
        env=ws.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    m = re.search(r"http://[^ ]+/mcp", line)
    assert m, f"no address in {line!r}"
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, m.group(0)


async def test_streamable_http_on_loopback(ws):
    proc, url = start_http(ws, "127.0.0.1:0")
    try:
        async with streamable_http_client(url) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=120) as s:
                await s.initialize()
                tools = {t.name for t in (await s.list_tools()).tools}
                assert tools == support.TOOLS
                got = await call(s, "search", {"query": "point distance"})
                assert got["hits"][0]["path"] == "src/geometry.rs"
        # A page in a browser (any Origin) and a rebinding Host are refused.
        import httpx2 as httpx

        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx.AsyncClient() as c:
            r = await c.post(url, json=body, headers={**headers, "Origin": "https://evil.example"})
            assert r.status_code == 403, (r.status_code, r.text)
            r = await c.post(url, json=body, headers={**headers, "Host": "evil.example"})
            assert r.status_code in (403, 421), (r.status_code, r.text)
            r = await c.post(url, content=b"{" + b" " * (9 * 1024 * 1024) + b"}", headers=headers)
            assert r.status_code == 413, r.status_code
        assert proc.poll() is None, "the server should keep serving"
    finally:
        proc.terminate()
        proc.wait(30)


def test_http_is_refused_off_loopback(ws):
    r = subprocess.run(
        [str(support.cairn_bin()), "mcp", "--repo", str(ws.repo), "--http", "0.0.0.0:0"],
        env=ws.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "loopback only" in r.stderr, r.stderr
