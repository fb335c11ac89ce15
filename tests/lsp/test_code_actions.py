"""Code actions over raw JSON (lsprotocol cannot tell a CodeAction whose `command` is a
Command from a bare Command, so the shape is checked on the wire): CodeAction literals for a
client that declares codeActionLiteralSupport, bare Commands for one that does not (LSP 3.17,
textDocument/codeAction)."""

from __future__ import annotations

import pytest

from support import RawServer

COMMANDS = {"cairn.explain", "cairn.fix", "cairn.writeTest"}
LITERALS = {
    "textDocument": {
        "codeAction": {
            "codeActionLiteralSupport": {
                "codeActionKind": {"valueSet": ["", "quickfix", "refactor", "refactor.rewrite", "source"]}
            }
        }
    }
}


@pytest.mark.parametrize("literal_support", [True, False], ids=["literals", "commands-only"])
def test_code_actions_carry_cairn_commands(ws, cairn_bin, literal_support):
    raw = RawServer(ws)
    try:
        raw.initialize(ws, LITERALS if literal_support else {})
        uri = ws.uri("calc.py")
        raw.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": ws.text("calc.py")}},
        )
        resp = raw.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": {"start": {"line": 8, "character": 0}, "end": {"line": 15, "character": 0}},
                "context": {"diagnostics": []},
            },
        )
        actions = resp.get("result")
        assert actions, f"no code action over mean(): {resp}"
        for a in actions:
            if literal_support:
                assert isinstance(a.get("command"), dict), f"expected a CodeAction literal: {a}"
                command = a["command"]
            else:
                assert isinstance(a.get("command"), str), (
                    f"the client did not declare codeActionLiteralSupport, so only Commands may come: {a}"
                )
                command = a
            assert command["command"] in COMMANDS, a
            assert command.get("arguments"), a
        assert raw.shutdown() == 0
    finally:
        raw.close()
