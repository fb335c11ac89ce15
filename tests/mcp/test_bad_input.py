"""Bad input to `cairn mcp`: unknown tools, wrong argument types, paths out of the repository,
revisions that look like options, a 50 MB argument, malformed messages, a cancelled call and a
client that disconnects mid-call. Each gets a clear MCP error (or a clean exit, for the client
that left) and the server keeps serving."""

from __future__ import annotations

import json
import os
import time

import pytest
from mcp.shared.exceptions import MCPError

import support
from support import RawMcp, call, call_error, cairn, mcp_session


@pytest.fixture
def ws(tmp_path):
    return support.make_workspace(tmp_path)


async def test_unknown_tools_and_wrong_arguments_are_clear_errors(ws):
    async with mcp_session(ws) as s:
        with pytest.raises(MCPError) as e:
            await s.call_tool("delete_everything", {})
        assert "unknown tool" in str(e.value) and "search" in str(e.value) and "record_edit" in str(e.value)

        for name, args, says in [
            ("search", {"query": 5}, "invalid type"),
            ("search", {}, "missing field `query`"),
            ("search", {"query": "x", "limt": 3}, "unknown field `limt`"),
            ("search", {"query": "x", "limit": -1}, "invalid value"),
            ("search", {"query": "   "}, "`query` is empty"),
            ("read_lines", {"path": "src/app.py", "startLine": "one"}, "invalid type"),
            ("read_lines", {"path": "src/app.py", "startLine": 9, "endLine": 2}, "before startLine"),
            ("read_lines", {"path": "src/app.py", "startLine": 999}, "past its end"),
            ("context_for", {"path": "src/app.py", "line": 0}, "1-based"),
            ("context_for", {"path": "src/app.py", "line": 9999}, "lines"),
            ("blame", {"path": ["src/app.py"]}, "invalid type"),
            ("check", {"requireReview": "yes"}, "invalid type"),
            ("read_lines", {"path": "nope.py"}, "cannot read nope.py"),
            ("read_lines", {"path": "src"}, "not a file"),
            ("search", {"query": "x" * 5000}, "at most 4096"),
        ]:
            msg = await call_error(s, name, args)
            assert says in msg, (name, args, msg)
        # The session goes on.
        assert (await call(s, "search", {"query": "parse_config"}))["hits"]


async def test_paths_outside_the_repository_are_refused(ws):
    (ws.repo / "link-out").symlink_to(ws.root / "outside.txt")
    (ws.repo / "dir-out").symlink_to(ws.root)
    (ws.repo / "git-config").symlink_to(ws.repo / ".git" / "config")
    (ws.repo / "src" / "ok-link.py").symlink_to(ws.repo / "src" / "app.py")
    outside = [
        "../outside.txt",
        "src/../../outside.txt",
        str(ws.root / "outside.txt"),
        "/etc/passwd",
        "link-out",
        "dir-out/outside.txt",
        ".git/config",
        "git-config",
        "./../outside.txt",
    ]
    async with mcp_session(ws, "--record-edits") as s:
        for p in outside:
            for name, args in [
                ("read_lines", {"path": p}),
                ("context_for", {"path": p, "line": 1}),
                ("blame", {"path": p}),
                ("record_edit", {"tool": "t", "model": "m", "edits": [{"path": p, "startLine": 1, "endLine": 1}]}),
            ]:
                msg = await call_error(s, name, args)
                assert "outside the repository" in msg or "git's own directory" in msg, (name, p, msg)
                assert "a file outside the repository" not in msg
        # Names go into records and commit trailers: one line each.
        msg = await call_error(
            s,
            "record_edit",
            {"tool": "t", "model": "m\nSigned-off-by: Someone <s@example.com>",
             "edits": [{"path": "src/app.py", "startLine": 1, "endLine": 1}]},
        )
        assert "control character" in msg, msg
        # A symlink that stays inside is fine.
        got = await call(s, "read_lines", {"path": "src/ok-link.py", "endLine": 1})
        assert got["lines"] == [support.APP_PY.splitlines()[0]]
        for rev in ["--output=/tmp/x", "HEAD; rm -rf /", "$(id)", "-p"]:
            msg = await call_error(s, "blame", {"path": "src/app.py", "rev": rev})
            assert "not a revision" in msg, msg
            msg = await call_error(s, "check", {"range": rev})
            assert "not a revision" in msg, msg
        assert (await call(s, "read_lines", {"path": "src/app.py"}))["lines"]


async def test_a_50_mb_argument_gets_an_error_and_the_session_goes_on(ws):
    async with mcp_session(ws) as s:
        with pytest.raises(MCPError) as e:
            await s.call_tool("search", {"query": "x" * (50 * 1024 * 1024)})
        msg = str(e.value)
        assert "tools/call was" in msg and "at most 8388608 bytes" in msg, msg
        assert (await call(s, "search", {"query": "merge configs"}))["hits"]


def test_oversized_and_malformed_messages_on_the_wire(ws):
    srv = RawMcp(ws)
    try:
        srv.initialize()
        hwm = lambda: int(
            next(l for l in open(f"/proc/{srv.proc.pid}/status") if l.startswith("VmHWM:")).split()[1]
        )
        before = hwm()
        # 50 MB in one line, the id after the arguments: answered by id, never held in memory.
        big = b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"search","arguments":{"query":"' + b"y" * (
            50 * 1024 * 1024
        ) + b'"}},"id":"big-1"}\n'
        srv.send_bytes(big)
        r = srv.response("big-1")
        assert r["error"]["code"] == -32600 and "at most 8388608 bytes" in r["error"]["message"], r
        assert hwm() - before < 64 * 1024, f"peak RSS grew by {hwm() - before} KiB"
        # Not JSON, a JSON array, a bare string, invalid UTF-8, a cut-off line: nothing breaks.
        for junk in [b"this is not json\n", b"[1,2,3]\n", b'"hello"\n', b"\xff\xfe{\n", b'{"jsonrpc":"2.0","id":'+b"\n"]:
            srv.send_bytes(junk)
        r = srv.request("tools/list")
        assert {t["name"] for t in r["result"]["tools"]} == support.TOOLS
        r = srv.request("no/such/method", {})
        assert r["error"]["code"] == -32601, r
        r = srv.request("resources/read", {"uri": "file:///etc/passwd"})
        assert "error" in r and "no resource" in r["error"]["message"], r
        r = srv.request("tools/call", {"name": "search", "arguments": {"query": "point distance"}})
        assert r["result"]["structuredContent"]["hits"], r
    finally:
        assert srv.close() == 0


def test_a_cancelled_call_and_concurrent_calls_leave_the_server_serving(ws):
    srv = RawMcp(ws)
    try:
        srv.initialize()
        ids = [
            srv.request("tools/call", {"name": "search", "arguments": {"query": f"config {i}"}}, wait=False)
            for i in range(20)
        ]
        srv.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": ids[0], "reason": "test"}})
        for rid in ids[1:]:
            r = srv.response(rid)
            assert "result" in r, r
        r = srv.request("ping")
        assert r.get("result") == {} or "result" in r, r
    finally:
        assert srv.close() == 0


def test_a_client_that_disconnects_mid_call_leaves_a_sound_ledger(ws):
    new = support.CONFIG_PY + "\n\ndef config_keys(cfg):\n    return sorted(cfg)\n"
    ws.write("src/config.py", new)
    n = len(new.splitlines())
    srv = RawMcp(ws, "--record-edits")
    srv.initialize()
    srv.request(
        "tools/call",
        {
            "name": "record_edit",
            "arguments": {"tool": "t", "model": "m", "edits": [{"path": "src/config.py", "startLine": n - 1, "endLine": n}]},
        },
        wait=False,
    )
    srv.request("tools/call", {"name": "search", "arguments": {"query": "config keys"}}, wait=False)
    # Gone before the answers: the server finishes what it started, then exits cleanly.
    t = time.monotonic()
    assert srv.close(timeout=60) == 0
    assert time.monotonic() - t < 45
    verify = cairn(ws, "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Either both records of the edit were written, or neither (an acknowledged-looking
    # half would be a `suggested` without its `accepted`, which is harmless but counted).
    events = [json.loads(l) for l in support.ledger_file(ws).read_text().splitlines()]
    assert len(events) in (1, 3), len(events)
    # A new client is served as before.
    srv = RawMcp(ws)
    try:
        srv.initialize()
        r = srv.request("tools/call", {"name": "read_lines", "arguments": {"path": "src/config.py", "startLine": n}})
        assert r["result"]["structuredContent"]["lines"] == ["    return sorted(cfg)"], r
    finally:
        assert srv.close() == 0
