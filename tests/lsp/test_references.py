"""Reference tracking through a real client: a repository that vendors a small JavaScript
package under `third_party/`, and the default model completing a function of the same
name in the project's own file. The item names the package and licence; once the
person accepts it, the accepted lines carry an Information diagnostic naming package,
version, licence and source lines, which follows the lines as the document is edited and
is cleared when they are gone."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from lsprotocol import types

import support
from conftest import initialize, start_client

# The vendored package (its own manifest and licence) and the function the project's
# file starts to write again.
TRIM_JS = """'use strict';

function rightTrimLines(text, keepEmpty) {
  var lines = text.split('\\n');
  var out = [];
  for (var j = 0; j < lines.length; j++) {
    var line = lines[j].replace(/\\s+$/, '');
    if (line.length > 0 || keepEmpty) {
      out.push(line);
    }
  }
  return out.join('\\n');
}

module.exports = rightTrimLines;
"""
PACKAGE_JSON = {"name": "trimlines", "version": "1.4.0", "license": "MIT", "main": "index.js"}

# The project's file: a comment, then the same function's first line; the cursor opens
# its body.
APP_JS = """// Text helpers for the report module.

function rightTrimLines(text, keepEmpty) {
  
}
"""
BODY_POS = {"line": 3, "character": 2}


def vendor(ws: support.Workspace) -> None:
    pkg = ws.repo / "third_party" / "trimlines"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps(PACKAGE_JSON))
    (pkg / "index.js").write_text(TRIM_JS)
    (ws.repo / "text.js").write_text(APP_JS)
    # Completions take as long as they need here: the item must be the whole body.
    (ws.repo / ".cairn").mkdir()
    (ws.repo / ".cairn" / "config.toml").write_text("[completion]\nlatency_budget_ms = 0\n")


async def wait_ready(client, timeout: float = 180) -> dict:
    """The code index and the reference index both built."""
    until = time.monotonic() + timeout
    while True:
        s = await client.request("cairn/status", None)
        refs = s.get("references", {})
        if refs.get("state") == "ready" and s.get("index", {}).get("state") == "ready":
            return s
        assert refs.get("state") not in ("failed", "off"), refs
        assert time.monotonic() < until, f"not ready after {timeout} s: {s}"
        await asyncio.sleep(0.2)


async def marks_after(client, uri: str, change, timeout: float = 30) -> list[types.Diagnostic]:
    """Sends `change` (a callable, or None when already sent), then waits for the server's next
    publishDiagnostics for `uri`; Cairn's reference diagnostics in it."""
    if change is not None:
        client.diagnostics.pop(uri, None)
        change()
    until = time.monotonic() + timeout
    while uri not in client.diagnostics:
        assert time.monotonic() < until, f"no publishDiagnostics for {uri} within {timeout} s"
        await asyncio.sleep(0.05)
    return [d for d in client.diagnostics[uri] if d.source == "cairn"]


def change(client, uri: str, version: int, rng: types.Range, text: str):
    return lambda: client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text=text)],
        )
    )


def pos(line: int, character: int = 0) -> types.Position:
    return types.Position(line=line, character=character)


@pytest.mark.parametrize("profile", ["neovim", "vscode"])
async def test_accepted_third_party_code_is_marked_until_its_lines_are_gone(ws, profile):
    vendor(ws)
    client = await start_client(ws)
    try:
        await initialize(client, ws, profile)
        await wait_ready(client)
        uri = ws.uri("text.js")
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=APP_JS)
            )
        )
        result = await asyncio.wait_for(
            client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(**BODY_POS),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
                )
            ),
            300,
        )
        items = result.items
        flagged = [i for i in items if i.command and i.command.arguments[0].get("references")]
        texts = [i.insert_text for i in items]
        assert flagged, f"no item reproduces the vendored package; the model wrote {texts!r}"
        item = flagged[0]
        # The item says what it reproduces before anyone accepts it.
        assert "matches trimlines 1.4.0 (MIT)" in item.command.title, item.command.title
        ref = item.command.arguments[0]["references"][0]
        assert (ref["package"], ref["version"], ref["licence"]) == ("trimlines", "1.4.0", "MIT"), ref
        assert ref["path"].endswith("third_party/trimlines/index.js"), ref

        # The editor inserts the item, then runs its accept command: the accepted lines
        # are marked, naming package, version, licence and the source lines.
        text = item.insert_text
        change(client, uri, 2, item.range, text)()
        client.diagnostics.pop(uri, None)
        accepted = await asyncio.wait_for(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
            ),
            60,
        )
        assert accepted is None
        marks = await marks_after(client, uri, None)
        assert len(marks) == 1, marks
        d = marks[0]
        assert d.severity == types.DiagnosticSeverity.Information, d
        assert d.code == "third-party-code", d
        assert "trimlines 1.4.0 (MIT)" in d.message, d.message
        assert f"lines {ref['lines'][0]}-{ref['lines'][1]}" in d.message, d.message
        assert "third_party/trimlines/index.js" in d.message, d.message
        assert d.range.start == pos(BODY_POS["line"], BODY_POS["character"]), d.range
        last = BODY_POS["line"] + text.count("\n")
        assert d.range.end.line in (last, last + 1), (d.range, text)
        related = d.related_information or []
        assert related and related[0].location.uri.endswith("third_party/trimlines/index.js"), related
        assert related[0].location.range.start.line == ref["lines"][0] - 1, related
        ledger = (await client.request("cairn/status", None))["ledger"]["path"]
        support.assert_suggested_then(
            support.ledger_events(ledger), item.command.arguments[0]["recordId"], "accepted"
        )

        # Two lines typed above the function: the mark moves with the code.
        marks = await marks_after(client, uri, change(client, uri, 3, types.Range(start=pos(0), end=pos(0)), "'use strict';\n\n"))
        assert len(marks) == 1 and marks[0].range.start == pos(BODY_POS["line"] + 2, BODY_POS["character"]), marks

        # The accepted lines deleted: the mark is cleared.
        start = BODY_POS["line"] + 2
        gone = types.Range(start=pos(start), end=pos(start + text.count("\n") + 1))
        marks = await marks_after(client, uri, change(client, uri, 4, gone, ""))
        assert marks == [], marks
    finally:
        if client._server is not None and client._server.returncode is None:
            await asyncio.wait_for(client.shutdown_session(), 60)
            assert client._server.returncode == 0
        await client.stop()
