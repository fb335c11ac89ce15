"""An agent's recorded edit checked against the reference index, through the official MCP
Python SDK: code the agent copied from a dependency (`node_modules/trimlines`, MIT) comes
back in `record_edit`'s result with package, version, licence and source lines, is named
in its signed record, and a commit of it fails `cairn check --deny-licence MIT`; the
agent's own code has no references."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import support
from support import call, cairn, git, mcp_session

import pytest


@pytest.fixture
def ws(tmp_path):
    return support.make_workspace(tmp_path)


TRIM_FN = """function rightTrimLines(text, keepEmpty) {
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
"""

OWN_FN = """function totalOfPrices(items, taxRate) {
  let sum = 0;
  for (const item of items) {
    sum += item.price * (1 + taxRate);
  }
  return Math.round(sum * 100) / 100;
}
"""


def vendor(ws) -> None:
    ws.write(
        "node_modules/trimlines/package.json",
        json.dumps({"name": "trimlines", "version": "1.4.0", "license": "MIT", "main": "index.js"}),
    )
    ws.write("node_modules/trimlines/index.js", "'use strict';\n\n" + TRIM_FN + "\nmodule.exports = rightTrimLines;\n")
    ws.write(".gitignore", "node_modules/\n")


async def references_ready(session, timeout: float = 120) -> dict:
    until = time.monotonic() + timeout
    while True:
        status = json.loads((await session.read_resource("cairn://index/status")).contents[0].text)
        refs = status["references"]
        if refs["state"] == "ready":
            return refs
        assert refs["state"] == "building", refs
        assert time.monotonic() < until, refs
        await asyncio.sleep(0.1)


def suggested(ws, record_id: str) -> dict:
    for line in support.ledger_file(ws).read_text().splitlines():
        st = json.loads(base64.b64decode(json.loads(line)["payload"]))
        p = st["predicate"]
        if p.get("event") == "suggested" and p.get("recordId") == record_id:
            return p
    raise AssertionError(f"no suggested record {record_id}")


async def test_a_recorded_agent_edit_that_copies_a_dependency_names_it(ws):
    vendor(ws)
    cairn(ws, "init")
    async with mcp_session(ws, "--record-edits") as s:
        refs = await references_ready(s)
        assert refs["packages"] == 1, refs
        # The agent writes a file: the package's function copied, and a function of its own.
        ws.write("web/text.js", "// Text helpers.\n" + TRIM_FN + "\n" + OWN_FN)
        rec = await call(
            s,
            "record_edit",
            {
                "tool": "claude-code",
                "model": "claude-sonnet-4-5",
                "edits": [{"path": "web/text.js", "text": TRIM_FN}, {"path": "web/text.js", "text": OWN_FN}],
            },
        )
        assert rec["referencesChecked"] == "checked", rec
        copied, own = rec["recorded"]
        assert (copied["startLine"], copied["endLine"]) == (2, 12)
        [r] = copied["references"]
        assert (r["package"], r["version"], r["licence"]) == ("trimlines", "1.4.0", "MIT"), r
        assert r["path"].endswith("node_modules/trimlines/index.js"), r
        assert r["lines"] == [3, 13] and r["textLines"] == [1, 11], r
        assert r["verbatim"] is True and r["matchedChars"] >= 150, r
        assert own["references"] == [], own

        # The signed record names it; the agent's own code has none.
        sug = suggested(ws, copied["recordId"])
        assert sug["output"]["references"][0]["package"] == "trimlines"
        assert sug["output"]["references"][0]["licence"] == "MIT"
        assert sug["output"].get("withheld") is None, sug
        assert "references" not in suggested(ws, own["recordId"])["output"]

        # A team that denies MIT code refuses the commit that carries it.
        git(ws, "add", "-A")
        git(ws, "commit", "-q", "-m", "web: text helpers")
    gate = cairn(ws, "check", "HEAD~1..HEAD", "--deny-licence", "MIT", check=False)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "trimlines" in gate.stdout + gate.stderr
    assert cairn(ws, "check", "HEAD~1..HEAD", "--deny-licence", "GPL-3.0-only", check=False).returncode == 0


async def test_without_record_edits_no_reference_index_is_built(ws):
    vendor(ws)
    async with mcp_session(ws) as s:
        status = json.loads((await s.read_resource("cairn://index/status")).contents[0].text)
        assert status["recordEdits"] is False
        assert status["references"]["state"] == "off", status["references"]
    assert not (ws.root / "data" / "cairn" / "references").exists()
