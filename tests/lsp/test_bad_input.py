"""Bad input gets a clear error and the server keeps serving: bytes no client should send,
requests out of order, positions outside the document, a huge document and a flood."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcMethodNotFound

import support
from conftest import initialize, start_client
from support import RETURN_POS, RawServer

RSS_BOUND_KIB = 2 * 1024 * 1024  # 2 GiB


@pytest.fixture
def raw(ws):
    server = RawServer(ws)
    yield server
    server.close()


def assert_serving(raw: RawServer) -> None:
    resp = raw.request("cairn/status", None, timeout=60)
    assert "result" in resp and resp["result"]["version"], resp
    assert raw.proc.poll() is None


def did_open_calc(raw: RawServer, ws) -> str:
    uri = ws.uri("calc.py")
    raw.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": ws.text("calc.py")}},
    )
    return uri


# --- raw bytes ----------------------------------------------------------------------------


def test_requests_before_initialize_answer_server_not_initialized(raw, ws):
    uri = ws.uri("calc.py")
    for method, params in (
        ("textDocument/completion", {"textDocument": {"uri": uri}, "position": RETURN_POS}),
        ("cairn/status", None),
    ):
        resp = raw.request(method, params, timeout=30)
        assert resp.get("error", {}).get("code") == -32002, f"{method} before initialize: {resp}"
    raw.initialize(ws)
    assert_serving(raw)
    assert raw.shutdown() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{this is not json",
        b'{"jsonrpc": "2.0", "id": 5, "method": "textDocument/completion", "params": ',  # cut short
        b"[1, 2, 3]",
        b'{"jsonrpc": "2.0", "id": "\xff\xfe", "method": "cairn/status"}',  # invalid UTF-8
        b'{"no": "jsonrpc here"}',
    ],
    ids=["invalid-json", "truncated-json", "array", "invalid-utf8", "not-jsonrpc"],
)
def test_malformed_frames_leave_the_server_serving(raw, ws, body):
    raw.initialize(ws)
    raw.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    # A valid request after the bad frame is still answered.
    assert_serving(raw)
    for n in raw.responses.values():
        assert "error" in n, n  # only error replies (e.g. -32700 with id null) may answer garbage
    assert raw.shutdown() == 0, raw.stderr_tail()


def test_invalid_params_are_an_error_not_a_crash(raw, ws):
    raw.initialize(ws)
    uri = did_open_calc(raw, ws)
    resp = raw.request(
        "textDocument/completion", {"textDocument": {"uri": uri}, "position": "line five"}, timeout=60
    )
    assert resp.get("error", {}).get("code") == -32602, resp
    resp = raw.request("cairn/chat", {"question": 42}, timeout=60)
    assert resp.get("error", {}).get("code") == -32602, resp
    resp = raw.request("workspace/executeCommand", {"command": "cairn.accept", "arguments": ["not an object"]})
    assert "error" in resp, resp
    raw.notify("textDocument/didChange", {"textDocument": {"uri": uri}, "contentChanges": "nonsense"})
    raw.notify("textDocument/didOpen", {"textDocument": None})
    # The cursor's report: malformed, past the end, an unopened document, then a good one.
    raw.notify("cairn/cursorMoved", {"textDocument": {"uri": uri}, "position": "line five"})
    raw.notify("cairn/cursorMoved", {"textDocument": {"uri": uri}, "position": {"line": 10_000, "character": 0}})
    raw.notify("cairn/cursorMoved", {"textDocument": {"uri": ws.uri("nope.py")}, "position": {"line": 0, "character": 0}})
    raw.notify("cairn/cursorMoved", {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 0}})
    assert_serving(raw)
    assert raw.shutdown() == 0, raw.stderr_tail()


def test_exit_while_a_chat_is_generating_is_a_clean_exit(ws):
    """An editor that quits mid-answer: the model thread is still decoding when `exit`
    arrives. The process must end promptly with status 0 (once it crashed in llama.cpp's
    teardown). Three rounds, because the race was intermittent."""
    for round_ in range(3):
        raw = RawServer(ws)
        try:
            raw.initialize(ws)
            did_open_calc(raw, ws)
            token = f"exit-{round_}"
            raw.send(
                {
                    "jsonrpc": "2.0",
                    "id": f"long-chat-{round_}",
                    "method": "cairn/chat",
                    "params": {"question": "Explain every function in this repository in detail.", "partialResultToken": token},
                }
            )
            # Wait for the first delta: from then on the model thread is generating.
            deadline = time.monotonic() + 120
            while not any(
                n.get("method") == "$/progress" and n.get("params", {}).get("token") == token for n in list(raw.notifications)
            ):
                assert time.monotonic() < deadline, f"no chat delta in 120 s; stderr:\n{raw.stderr_tail()}"
                assert raw.proc.poll() is None, raw.stderr_tail()
                time.sleep(0.01)
            started = time.monotonic()
            code = raw.shutdown(timeout=30)
            assert code == 0, f"round {round_}: cairn lsp exited {code}; stderr:\n{raw.stderr_tail()}"
            assert time.monotonic() - started < 20, "exit waited for the whole answer"
        finally:
            raw.close()


# --- through pytest-lsp -------------------------------------------------------------------


@pytest.fixture
async def vscode(ws):
    client = await start_client(ws)
    await initialize(client, ws, "vscode")
    yield client
    if client._server is not None and client._server.returncode is None:
        await asyncio.wait_for(client.shutdown_session(), 60)
        assert client._server.returncode == 0
    await client.stop()


async def status(client) -> dict:
    return await client.request("cairn/status", None, timeout=60)


async def test_unknown_method_is_method_not_found(vscode):
    with pytest.raises(JsonRpcMethodNotFound):
        await vscode.request("cairn/noSuchMethod", {"x": 1}, timeout=30)
    with pytest.raises(JsonRpcMethodNotFound):
        await vscode.request("textDocument/noSuchThing", {}, timeout=30)
    vscode.protocol.notify("cairn/noSuchNotification", {"x": 1})  # ignored, no reply
    assert (await status(vscode))["version"]


@pytest.mark.parametrize(
    "pos,strict",
    [
        ({"line": 10_000, "character": 0}, True),
        ({"line": 5, "character": 500}, False),
        ({"line": 0, "character": 2**31 - 1}, False),
    ],
    ids=["past-last-line", "past-end-of-line", "huge-character"],
)
async def test_positions_past_the_end_are_an_error_or_empty(vscode, ws, pos, strict):
    """Past the last line: an error or nothing. Past the end of a line the LSP spec says the
    character defaults back to the line length, so suggestions are allowed there; a crash or a
    malformed answer never is."""
    uri = ws.uri("calc.py")
    vscode.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=ws.text("calc.py"))
        )
    )
    for call in (
        lambda: vscode.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(**pos))
        ),
        lambda: vscode.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(**pos),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        ),
    ):
        try:
            result = await asyncio.wait_for(call(), 120)
        except JsonRpcException as e:
            assert e.code in (-32602, -32603, -32803) or -32099 <= e.code <= -32000, e
        else:
            items = getattr(result, "items", result) or []
            if strict:
                assert items == [], f"suggestions at a position outside the document {pos}: {result!r}"
    assert (await status(vscode))["version"]


async def test_a_20_mb_document_then_a_completion(vscode, ws):
    # ~20 MB of plausible Python, opened (never on disk), then a completion inside the last body.
    unit = "def f_{n}(a, b):\n    total = a + b\n    return total * {n}\n\n\n"
    chunks, size, n = [], 0, 0
    while size < 20 * 1024 * 1024:
        s = unit.format(n=n)
        chunks.append(s)
        size += len(s)
        n += 1
    text = "".join(chunks) + "def last(a, b):\n    return \n"
    line = text.count("\n") - 1
    uri = ws.uri("huge.py")
    t0 = time.monotonic()
    vscode.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    try:
        result = await asyncio.wait_for(
            vscode.text_document_completion_async(
                types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=11),
                )
            ),
            180,
        )
    except JsonRpcException as e:
        result = e  # a clear error is an acceptable answer; a hang or a crash is not
    took = time.monotonic() - t0
    assert (await status(vscode))["version"]
    hwm = support.proc_status_kib(vscode._server.pid, "VmHWM")
    assert hwm < RSS_BOUND_KIB, f"peak RSS {hwm} KiB after a 20 MB document"
    print(f"20 MB didOpen + completion answered in {took:.1f}s: {type(result).__name__}; peak RSS {hwm // 1024} MiB")


async def test_a_flood_of_1000_completions_is_answered_and_memory_stays_bounded(vscode, ws):
    uri = ws.uri("calc.py")
    vscode.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=ws.text("calc.py"))
        )
    )
    params = types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(**RETURN_POS),
        context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
    )
    t0 = time.monotonic()
    # Tasks, so that every request is written now (send_request_async is a coroutine).
    futures = [
        asyncio.ensure_future(vscode.protocol.send_request_async(types.TEXT_DOCUMENT_COMPLETION, params))
        for _ in range(1000)
    ]
    await asyncio.sleep(0)
    sent = time.monotonic() - t0
    assert sent < 1.0, f"sending took {sent:.2f}s, not a flood"
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 300)
    took = time.monotonic() - t0
    answered = sum(1 for r in results if not isinstance(r, BaseException))
    cancelled = [r for r in results if isinstance(r, JsonRpcException) and r.code in (-32800, -32802)]
    other = [
        r
        for r in results
        if isinstance(r, BaseException) and not (isinstance(r, JsonRpcException) and r.code in (-32800, -32802))
    ]
    assert not other, f"{len(other)} requests failed otherwise, e.g. {other[:3]!r}"
    assert answered + len(cancelled) == 1000
    assert answered >= 1, "every request was cancelled; the newest one should be answered"
    assert vscode._server.returncode is None, "the server died under the flood"
    assert (await status(vscode))["version"]
    hwm = support.proc_status_kib(vscode._server.pid, "VmHWM")
    assert hwm < RSS_BOUND_KIB, f"peak RSS {hwm} KiB under the flood"
    print(f"flood: {answered} answered, {len(cancelled)} cancelled in {took:.1f}s; peak RSS {hwm // 1024} MiB")


async def test_a_request_with_an_unknown_document_is_an_error_or_empty(vscode, ws):
    uri = ws.repo.joinpath(f"never-opened-{uuid.uuid4().hex[:6]}.py").as_uri()
    try:
        result = await asyncio.wait_for(
            vscode.text_document_completion_async(
                types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 0))
            ),
            60,
        )
    except JsonRpcException:
        pass
    else:
        items = getattr(result, "items", result) or []
        assert items == [], result
    assert (await status(vscode))["version"]
