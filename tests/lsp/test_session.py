"""`cairn lsp` driven by pytest-lsp with the capability profiles of Neovim 0.11 and VS Code:
an editor session from initialize to shutdown, checked against the protocol contract and
against the provenance ledger the session writes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

import support
from support import BLANK_POS, RETURN_POS

COMMANDS = {"cairn.accept", "cairn.reject", "cairn.explain", "cairn.fix", "cairn.writeTest"}


def open_calc(client, ws, version: int = 1) -> str:
    uri = ws.uri("calc.py")
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=version, text=ws.text("calc.py")
            )
        )
    )
    return uri


async def inline(client, uri: str, pos: dict, kind: types.InlineCompletionTriggerKind):
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(**pos),
        context=types.InlineCompletionContext(trigger_kind=kind),
    )
    result = await asyncio.wait_for(client.text_document_inline_completion_async(params), 120)
    assert result is not None, "inlineCompletion answered null; the contract is {items: [...]}"
    assert isinstance(result, types.InlineCompletionList), f"expected {{items: [...]}}, got {result!r}"
    return result.items


async def status(client) -> dict:
    s = await client.request("cairn/status", None)
    assert isinstance(s, dict), s
    return s


def text_of(item: types.InlineCompletionItem) -> str:
    return item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value


def check_accept_command(command: types.Command | None, uri: str) -> str:
    """The item's command reports acceptance: cairn.accept with [{recordId, uri}]."""
    assert command is not None, "the item carries no command: its acceptance would never be recorded"
    assert command.command == "cairn.accept", command
    assert command.title, command
    assert command.arguments and len(command.arguments) == 1, command
    arg = command.arguments[0]
    assert isinstance(arg, dict), command
    assert isinstance(arg.get("recordId"), str) and arg["recordId"], command
    assert arg.get("uri") == uri, (arg, uri)
    return arg["recordId"]


async def test_initialize_advertises_the_contract(session):
    caps = session.init_result.capabilities
    sync = caps.text_document_sync
    change = sync if isinstance(sync, types.TextDocumentSyncKind) else getattr(sync, "change", None)
    assert change == types.TextDocumentSyncKind.Incremental, sync
    assert caps.inline_completion_provider in (True,) or isinstance(
        caps.inline_completion_provider, types.InlineCompletionOptions
    ), caps.inline_completion_provider
    # Items are complete as sent: no resolve round trip before the accept command runs.
    assert caps.completion_provider is not None and not caps.completion_provider.resolve_provider
    assert caps.code_action_provider, caps.code_action_provider
    assert caps.execute_command_provider is not None
    assert COMMANDS <= set(caps.execute_command_provider.commands), caps.execute_command_provider


async def test_invoked_inline_completion_is_suggested_then_accepted_in_the_ledger(session, ws):
    uri = open_calc(session, ws)
    items = await inline(session, uri, RETURN_POS, types.InlineCompletionTriggerKind.Invoked)
    assert items, "no inline completion after `return ` in add(a, b) on the default model"
    ids = []
    for item in items:
        assert text_of(item).strip(), item
        assert item.range is not None, item
        assert item.range.start.line == RETURN_POS["line"], item.range
        ids.append(check_accept_command(item.command, uri))
    assert len(set(ids)) == len(ids), f"items share record ids: {ids}"

    # No model output reaches a person without a ledger record written first.
    ledger = (await status(session))["ledger"]["path"]
    events = support.ledger_events(ledger)
    for rid in ids:
        assert any(e["event"] == "suggested" and e["recordId"] == rid for e in events), (
            rid,
            support.summarise(events),
        )

    # The editor inserts the first item, then runs its command.
    first = items[0]
    session.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=first.range, text=text_of(first))
            ],
        )
    )
    result = await asyncio.wait_for(
        session.workspace_execute_command_async(
            types.ExecuteCommandParams(command=first.command.command, arguments=first.command.arguments)
        ),
        60,
    )
    assert result is None, result

    _, accepted = support.assert_suggested_then(support.ledger_events(ledger), ids[0], "accepted")
    assert accepted["location"]["path"] == "calc.py", accepted["location"]
    assert accepted["decision"]["decision"] in ("accept", "partial"), accepted["decision"]


async def test_automatic_inline_completion_gives_at_most_one_item(session, ws):
    uri = open_calc(session, ws)
    # An indented blank line in a body: whatever comes, at most one item.
    blank = await inline(session, uri, BLANK_POS, types.InlineCompletionTriggerKind.Automatic)
    assert len(blank) <= 1, f"automatic trigger must give at most one item, got {len(blank)}"
    # After `return ` the default model always has something: exactly one item.
    items = await inline(session, uri, RETURN_POS, types.InlineCompletionTriggerKind.Automatic)
    assert len(items) == 1, f"automatic trigger after `return ` gave {len(items)} items, expected 1"
    items = list(blank) + list(items)
    ledger = (await status(session))["ledger"]["path"]
    events = support.ledger_events(ledger)
    for item in items:
        rid = check_accept_command(item.command, uri)
        assert any(e["event"] == "suggested" and e["recordId"] == rid for e in events)


async def test_invoked_asks_the_model_even_after_an_automatic_request(session, ws):
    """Invoked means the person asked: fresh candidates from the model (greedy plus
    sampled, never two alike), not the automatic request's item served again from the
    typing-through cache, even at the same place."""
    uri = open_calc(session, ws)
    auto = await inline(session, uri, RETURN_POS, types.InlineCompletionTriggerKind.Automatic)
    assert len(auto) <= 1, auto
    auto_ids = {check_accept_command(i.command, uri) for i in auto}
    invoked = await inline(session, uri, RETURN_POS, types.InlineCompletionTriggerKind.Invoked)
    assert invoked, "an invoked request after `return ` gave nothing"
    texts = [text_of(i) for i in invoked]
    assert len(set(texts)) == len(texts), f"duplicate candidates: {texts!r}"
    ids = [check_accept_command(i.command, uri) for i in invoked]
    assert not set(ids) & auto_ids, f"invoked was served from the automatic item {auto_ids}"
    ledger = (await status(session))["ledger"]["path"]
    suggested = {e["recordId"] for e in support.ledger_events(ledger) if e["event"] == "suggested"}
    assert set(ids) <= suggested, (ids, suggested)


async def test_completion_fallback_resolves_and_records_a_rejection(session, ws):
    uri = open_calc(session, ws)
    result = await asyncio.wait_for(
        session.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(**RETURN_POS),
                context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
            )
        ),
        120,
    )
    items = result.items if isinstance(result, types.CompletionList) else (result or [])
    assert items, f"no completion item after `return ` in add(a, b): {result!r}"
    for item in items:
        assert item.insert_text or item.text_edit, item
        assert isinstance(item.data, dict) and item.data.get("recordId") and item.data.get("uri") == uri, item.data
        rid = check_accept_command(item.command, uri)
        assert rid == item.data["recordId"], (rid, item.data)

    resolved = await asyncio.wait_for(session.completion_item_resolve_async(items[0]), 60)
    assert resolved.label == items[0].label
    assert isinstance(resolved.data, dict) and resolved.data.get("recordId") == items[0].data["recordId"]

    rid = items[0].data["recordId"]
    out = await asyncio.wait_for(
        session.workspace_execute_command_async(
            types.ExecuteCommandParams(command="cairn.reject", arguments=[{"recordId": rid, "reason": "test"}])
        ),
        60,
    )
    assert out is None, out
    ledger = (await status(session))["ledger"]["path"]
    _, rejected = support.assert_suggested_then(support.ledger_events(ledger), rid, "rejected")
    assert rejected["decision"]["decision"] == "reject", rejected["decision"]


@pytest.mark.parametrize("command", ["cairn.accept", "cairn.reject"])
async def test_decision_on_an_unknown_record_is_an_error(session, ws, command):
    open_calc(session, ws)
    bogus = str(uuid.uuid4())
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(
            session.workspace_execute_command_async(
                types.ExecuteCommandParams(command=command, arguments=[{"recordId": bogus, "uri": ws.uri("calc.py")}])
            ),
            60,
        )
    ledger = (await status(session))["ledger"]["path"]
    events = support.ledger_events(ledger) if Path(ledger).exists() else []
    assert not any(e.get("refersTo") == bogus for e in events), support.summarise(events)


async def test_chat_streams_deltas_that_add_up_to_the_answer(session, ws):
    uri = open_calc(session, ws)
    token = f"chat-{uuid.uuid4().hex[:8]}"
    result = await session.request(
        "cairn/chat",
        {
            "question": "What does the function add in calc.py return?",
            "uri": uri,
            "range": {"start": {"line": 3, "character": 0}, "end": {"line": 6, "character": 0}},
            "partialResultToken": token,
        },
        timeout=180,
    )
    assert isinstance(result, dict), result
    assert isinstance(result.get("conversationId"), str) and result["conversationId"], result
    assert isinstance(result.get("answer"), str) and result["answer"].strip(), result
    deltas = session.deltas.get(token, [])
    assert deltas, f"no $/progress delta for token {token!r}; progress seen: {session.progress_values[:5]}"
    assert "".join(deltas) == result["answer"], (deltas, result["answer"])
    for c in result.get("citations"):
        assert {"n", "path", "uri", "startLine", "endLine"} <= set(c), c
        assert (ws.repo / c["path"]).is_file(), c
        assert 1 <= c["startLine"] <= c["endLine"], c
    for e in result.get("edits"):
        assert {"recordId", "uri", "range", "newText"} <= set(e), e

    # A second turn in the same conversation, with a numeric token.
    again = await session.request(
        "cairn/chat",
        {"question": "And mean?", "conversationId": result["conversationId"], "partialResultToken": 7},
        timeout=180,
    )
    assert again["conversationId"] == result["conversationId"], again
    assert "".join(session.deltas.get(7, [])) == again["answer"], (session.deltas.get(7), again["answer"])


async def test_a_repeated_chat_question_is_answered_from_the_cache_unless_no_cache(session, ws):
    open_calc(session, ws)
    # The same sources both times: the index settled before the first question.
    for _ in range(600):
        if (await status(session))["index"]["state"] == "ready":
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"the index did not get ready: {await status(session)}")
    params = {"question": "What does the function add in calc.py return? Answer in one short sentence.", "maxTokens": 256}
    first = await session.request("cairn/chat", {**params, "partialResultToken": "first"}, timeout=180)
    # Only a whole answer is kept: one the model ended itself.
    assert first["stopReason"]["kind"] in ("end_of_generation", "stop_string"), first
    assert first["cached"] is None, first
    again = await session.request("cairn/chat", {**params, "partialResultToken": "again"}, timeout=60)
    assert again["cached"] and again["cached"]["fromRecord"] == first["recordId"], (first["sources"], again)
    assert again["answer"] == first["answer"]
    # Streaming clients still get the text.
    assert "".join(session.deltas.get("again", [])).strip() == again["answer"], session.deltas.get("again")
    fresh = await session.request("cairn/chat", {**params, "noCache": True}, timeout=180)
    assert fresh["cached"] is None, fresh
    ledger = (await status(session))["ledger"]["path"]
    answered = {e["recordId"]: e for e in support.ledger_events(ledger) if e["event"] == "answered"}
    assert answered[again["recordId"]]["cachedFrom"] == first["recordId"], support.summarise(list(answered.values()))
    assert answered[again["recordId"]]["input"]["mode"] == "chat"
    assert "cachedFrom" not in answered[first["recordId"]] and "cachedFrom" not in answered[fresh["recordId"]]


async def test_a_cancelled_request_answers_request_cancelled(session, ws):
    open_calc(session, ws)
    msg_id = f"cancel-me-{uuid.uuid4().hex[:8]}"
    # pytest-lsp's send_request_async is a coroutine: a task sends the request right away.
    fut = asyncio.ensure_future(
        session.protocol.send_request_async(
            "cairn/chat",
            {"question": "Explain every function in this repository in detail, one paragraph each."},
            msg_id=msg_id,
        )
    )
    await asyncio.sleep(0.05)
    session.cancel(msg_id)
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, 120)
    assert err.value.code == -32800, f"expected RequestCancelled (-32800), got {err.value.code}: {err.value}"
    # The server keeps serving.
    assert (await status(session))["version"]


async def test_status_reports_repo_model_index_and_ledger(session, ws):
    # Polled from right after initialize, so every state the index passes through is seen.
    seen = []
    for _ in range(600):
        s = await status(session)
        if not seen or seen[-1] != s["index"]["state"]:
            seen.append(s["index"]["state"])
        if s["index"]["state"] not in ("indexing", "opening"):
            break
        await asyncio.sleep(0.02)
    assert set(seen) <= {"opening", "indexing", "ready", "error", "read-only"}, f"index states seen: {seen}"
    assert s["index"]["state"] == "ready", s["index"]
    assert s["index"]["files"] >= 4, s["index"]  # calc.py, shapes.py, report.py, README.md
    assert isinstance(s["version"], str) and s["version"], s
    assert Path(s["repo"]).resolve() == ws.repo.resolve(), s["repo"]
    assert s["model"]["origin"] in ("local", "remote"), s["model"]
    assert s["model"]["name"] and s["model"]["modelId"], s["model"]
    assert Path(s["ledger"]["path"]).parent.is_relative_to(ws.root / "data"), (
        f"ledger outside the isolated XDG_DATA_HOME: {s['ledger']['path']}"
    )


async def test_the_ledger_of_a_session_verifies(session, ws):
    uri = open_calc(session, ws)
    items = await inline(session, uri, RETURN_POS, types.InlineCompletionTriggerKind.Invoked)
    assert items
    await asyncio.wait_for(
        session.workspace_execute_command_async(
            types.ExecuteCommandParams(command="cairn.accept", arguments=items[0].command.arguments)
        ),
        60,
    )
    r = support.verify_with_cli(ws)
    assert r.returncode == 0, f"cairn verify exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


async def test_partial_acceptance_is_recorded_as_partial(session, ws):
    uri = open_calc(session, ws)
    items = await inline(session, uri, RETURN_POS, types.InlineCompletionTriggerKind.Invoked)
    assert items
    arg = dict(items[0].command.arguments[0], partial=True)
    out = await asyncio.wait_for(
        session.workspace_execute_command_async(types.ExecuteCommandParams(command="cairn.accept", arguments=[arg])),
        60,
    )
    assert out is None, out
    ledger = (await status(session))["ledger"]["path"]
    _, accepted = support.assert_suggested_then(support.ledger_events(ledger), arg["recordId"], "accepted")
    assert accepted["decision"]["decision"] == "partial", accepted["decision"]


async def test_repo_flag_overrides_the_client_root(ws):
    """`cairn lsp --repo PATH` serves PATH whatever root the client sends."""
    from conftest import start_client

    elsewhere = ws.root / "not-a-repo"
    elsewhere.mkdir()
    client = await start_client(ws, ["--repo", str(ws.repo)])
    try:
        await asyncio.wait_for(
            client.initialize_session(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(),
                    root_uri=elsewhere.as_uri(),
                    workspace_folders=[types.WorkspaceFolder(uri=elsewhere.as_uri(), name="elsewhere")],
                )
            ),
            120,
        )
        s = await status(client)
        assert Path(s["repo"]).resolve() == ws.repo.resolve(), s["repo"]
        await asyncio.wait_for(client.shutdown_session(), 60)
        assert client._server.returncode == 0
    finally:
        await client.stop()
