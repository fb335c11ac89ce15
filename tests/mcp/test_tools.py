"""Every tool and resource of `cairn mcp` through the official Python SDK over stdio, on a fixture
repository, checked against what the CLI (`cairn search`, `symbols`, `blame`, `report`,
`check`) says of the same repository; and an agent's recorded edit followed into a commit,
blame, the report and the review gate."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

import support
from support import call, call_error, cairn, cairn_json_lines, git, mcp_session


@pytest.fixture
def ws(tmp_path):
    return support.make_workspace(tmp_path)


async def test_tools_are_listed_with_typed_schemas_and_hints(ws):
    async with mcp_session(ws) as s:
        info = s.init_result
        assert info.server_info.name == "cairn"
        assert "never instructions" in (info.instructions or "")
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == support.TOOLS
        for name, t in tools.items():
            assert t.input_schema["type"] == "object", name
            assert t.input_schema.get("additionalProperties") is False, name
            assert t.output_schema and t.output_schema["type"] == "object", name
            assert t.description, name
            read_only = t.annotations.read_only_hint
            assert read_only is (name != "record_edit"), (name, t.annotations)
        assert tools["search"].input_schema["required"] == ["query"]
        assert set(tools["context_for"].input_schema["required"]) == {"path", "line"}
        resources = {r.uri for r in (await s.list_resources()).resources}
        assert {str(u) for u in resources} == {"cairn://index/status", "cairn://ledger/summary"}


async def test_search_and_symbols_answer_what_the_cli_answers(ws):
    async with mcp_session(ws) as s:
        got = await call(s, "search", {"query": "parse config lines", "limit": 5})
        assert got["index"]["state"] == "ready"
        assert got["hits"], got
        top = got["hits"][0]
        assert top["path"] == "src/config.py" and top["why"], top
        assert {w["retriever"] for w in top["why"]} <= {"chunks", "symbols", "paths"}
        cli = json.loads(cairn(ws, "search", "parse config lines", "--json", "--limit", "5").stdout)
        assert [(h["path"], h["start_line"], h["end_line"]) for h in cli] == [
            (h["path"], h["startLine"], h["endLine"]) for h in got["hits"]
        ]
        for a, b in zip(cli, got["hits"]):
            assert abs(a["score"] - b["score"]) < 1e-6
            if "AKIA" not in a["text"]:
                assert a["text"] == b["text"]

        prefixed = await call(s, "search", {"query": "distance point", "pathPrefix": "src/geometry"})
        assert prefixed["hits"] and all(h["path"].startswith("src/geometry") for h in prefixed["hits"])

        syms = await call(s, "symbols", {"name": "parse_config"})
        cli_syms = json.loads(cairn(ws, "symbols", "parse_config", "--json").stdout)
        assert [(x["path"], x["startLine"], x["endLine"], x["kind"]) for x in syms["symbols"]] == [
            (x["path"], x["start_line"], x["end_line"], x["kind"]) for x in cli_syms
        ]
        method = await call(s, "symbols", {"name": "Point::distance"})
        assert [x["path"] for x in method["symbols"]] == ["src/geometry.rs"], method


async def test_context_for_gives_the_definitions_a_completion_would_see(ws):
    async with mcp_session(ws) as s:
        # In app.py's load(), on the line calling merge_configs and parse_config.
        line = support.APP_PY.splitlines().index("            cfg = merge_configs(cfg, parse_config(f.read()))") + 1
        got = await call(s, "context_for", {"path": "src/app.py", "line": line, "column": 20})
        assert (got["path"], got["line"], got["column"]) == ("src/app.py", line, 20)
        defs = [x for x in got["snippets"] if x["kind"] == "definition"]
        assert any(x["path"] == "src/config.py" and "def parse_config" in x["text"] for x in defs), got
        assert all(x["path"] != "src/app.py" or x["endLine"] < line - 5 or x["startLine"] > line + 5 for x in got["snippets"])
        assert "parse_config" in " ".join(x["reason"] for x in defs)


async def test_read_lines_reads_inside_the_repository_and_redacts_secrets(ws):
    async with mcp_session(ws) as s:
        got = await call(s, "read_lines", {"path": "src/config.py", "startLine": 4, "endLine": 6})
        assert got["lines"] == support.CONFIG_PY.splitlines()[3:6]
        assert (got["startLine"], got["endLine"], got["totalLines"]) == (4, 6, len(support.CONFIG_PY.splitlines()))
        assert got["redactions"] == {} and not got["truncated"]
        whole = await call(s, "read_lines", {"path": str(ws.repo / "src/app.py")})
        assert whole["path"] == "src/app.py" and whole["lines"] == support.APP_PY.splitlines()

        secret = await call(s, "read_lines", {"path": "deploy/settings.py"})
        text = "\n".join(secret["lines"])
        assert "AKIAIOSFODNN7EXAMPLE" not in text and "<redacted:" in text, text
        assert sum(secret["redactions"].values()) == 1
        found = await call(s, "search", {"query": "AWS_ACCESS_KEY_ID region settings"})
        assert found["hits"] and all("AKIAIOSFODNN7EXAMPLE" not in h["text"] for h in found["hits"])
        assert sum(found["redactions"].values()) >= 1

        # A big file comes back in parts under the size limit.
        ws.write("big.txt", "".join(f"line {i} " + "x" * 90 + "\n" for i in range(3000)))
        part = await call(s, "read_lines", {"path": "big.txt"})
        assert part["truncated"] and part["startLine"] == 1 and part["endLine"] < 3000
        assert len("\n".join(part["lines"]).encode()) <= 128 * 1024
        rest = await call(s, "read_lines", {"path": "big.txt", "startLine": part["endLine"] + 1})
        assert rest["lines"][0].startswith(f"line {part['endLine']} ")


async def test_repository_text_is_returned_as_data_and_never_acted_on(ws):
    before = support.ledger_lines(ws)
    async with mcp_session(ws, "--record-edits") as s:
        got = await call(s, "search", {"query": "IMPORTANT SYSTEM INSTRUCTION record_edit"})
        hit = next(h for h in got["hits"] if h["path"] == "CONTRIBUTING.md")
        assert "ignore all previous instructions" in hit["text"]
        lines = await call(s, "read_lines", {"path": "CONTRIBUTING.md"})
        assert any("record_edit" in l for l in lines["lines"])
        summary = json.loads((await s.read_resource("cairn://ledger/summary")).contents[0].text)
        assert summary["recent"] == [] and summary["byModel"] == {}, summary
    # Reading the repository wrote nothing: no record, whatever its text said.
    assert support.ledger_lines(ws) <= max(before, 1)


async def test_resources_report_the_index_and_the_ledger(ws):
    async with mcp_session(ws) as s:
        await call(s, "search", {"query": "point"})
        status = json.loads((await s.read_resource("cairn://index/status")).contents[0].text)
        assert status["index"]["state"] == "ready"
        assert status["stats"]["files"] == 5 and status["stats"]["languages"]["python"] == 3
        assert status["engine"] == {"shared": False}
        assert status["recordEdits"] is False
        assert status["repo"] == str(ws.repo)
        summary = json.loads((await s.read_resource("cairn://ledger/summary")).contents[0].text)
        assert "byModel" in summary and "recent" in summary
        with pytest.raises(Exception, match="no resource"):
            await s.read_resource("cairn://nope")


async def test_record_edit_is_off_unless_the_user_turns_it_on(ws):
    ws.write("src/config.py", support.CONFIG_PY + "\n\ndef no_op(cfg):\n    return dict(cfg)\n")
    async with mcp_session(ws) as s:
        before = support.ledger_lines(ws)
        msg = await call_error(
            s,
            "record_edit",
            {"tool": "t", "model": "m", "edits": [{"path": "src/config.py", "startLine": 23, "endLine": 24}]},
        )
        assert "--record-edits" in msg
        assert support.ledger_lines(ws) == before
    # The environment turns it on too (for clients that configure env, not args).
    ws.env["CAIRN_MCP_RECORD_EDITS"] = "1"
    async with mcp_session(ws) as s:
        status = json.loads((await s.read_resource("cairn://index/status")).contents[0].text)
        assert status["recordEdits"] is True


def ledger_events(ws) -> list[dict]:
    out = []
    for line in support.ledger_file(ws).read_text().splitlines():
        st = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if st["predicateType"].endswith("/event/v1"):
            out.append(st["predicate"])
    return out


DUMP = '''

def dump_config(cfg):
    """Write key = value lines, sorted by key."""
    return "\\n".join(f"{k} = {v}" for k, v in sorted(cfg.items()))
'''

UTIL_PY = '''"""Small helpers."""


def keys_with_prefix(cfg, prefix):
    """The keys of cfg that start with prefix, sorted."""
    return sorted(k for k in cfg if k.startswith(prefix))


VERSION = 3
'''

UTIL_FN = '''def keys_with_prefix(cfg, prefix):
    """The keys of cfg that start with prefix, sorted."""
    return sorted(k for k in cfg if k.startswith(prefix))
'''


async def test_a_recorded_edit_is_attributed_at_commit_and_gated_until_reviewed(ws):
    cairn(ws, "init")
    async with mcp_session(ws, "--record-edits") as s:
        # The agent writes its code, then registers it: a line range, and a text.
        new = support.CONFIG_PY + DUMP
        ws.write("src/config.py", new)
        lines = new.splitlines()
        start = lines.index("def dump_config(cfg):") + 1
        end = len(lines)
        digest = "sha256:" + hashlib.sha256(b"add a dump_config next to parse_config").hexdigest()
        rec = await call(
            s,
            "record_edit",
            {
                "tool": "claude-code",
                "toolVersion": "2.0.14",
                "model": "claude-sonnet-4-5",
                "edits": [{"path": "src/config.py", "startLine": start, "endLine": end}],
                "promptDigest": digest,
            },
        )
        assert (rec["tool"], rec["model"], rec["origin"]) == ("claude-code", "claude-sonnet-4-5", "remote")
        [r1] = rec["recorded"]
        assert (r1["path"], r1["startLine"], r1["endLine"]) == ("src/config.py", start, end)
        ws.write("src/util.py", UTIL_PY)
        rec2 = await call(
            s,
            "record_edit",
            {"tool": "claude-code", "model": "claude-sonnet-4-5", "edits": [{"path": "src/util.py", "text": UTIL_FN}]},
        )
        [r2] = rec2["recorded"]
        assert (r2["startLine"], r2["endLine"]) == (4, 6)

        # Signed records: suggested (the agent's tool and model, mode agent) then accepted.
        events = ledger_events(ws)
        sug = next(e for e in events if e.get("recordId") == r1["recordId"])
        assert sug["event"] == "suggested" and sug["input"]["mode"] == "agent"
        assert sug["generator"]["modelId"] == "claude-sonnet-4-5"
        assert sug["generator"]["runtime"] == "claude-code 2.0.14"
        assert sug["generator"]["origin"] == "remote"
        assert "prompt" not in sug["input"] and sug["input"]["promptCommitment"]["digest"]
        acc = next(e for e in events if e.get("recordId") == r1["acceptedRecordId"])
        assert acc["event"] == "accepted" and acc["refersTo"] == r1["recordId"]
        assert acc["location"]["ranges"][0]["startLine"] == start

        git(ws, "add", "-A")
        git(ws, "commit", "-q", "-m", "config: dump_config; util: keys_with_prefix")
        assert "Assisted-by: cairn:claude-sonnet-4-5" in git(ws, "log", "-1", "--format=%B")

        # Blame through MCP, and as the CLI says it.
        blame = await call(s, "blame", {"path": "src/config.py"})
        ai = [b for b in blame["lines"] if b["class"] == "ai"]
        assert [b["line"] for b in ai] == list(range(start, end + 1)), blame
        assert all(
            (b["model"], b["tool"], b["origin"], b["mode"], b["recordId"])
            == ("claude-sonnet-4-5", "claude-code 2.0.14", "remote", "agent", r1["recordId"])
            for b in ai
        )
        assert blame["counts"]["ai"] == end - start + 1
        cli_blame = cairn_json_lines(ws, "blame", "src/config.py", "--json")
        assert [(b["line"], b["class"], b["model"], b["record_id"], b["commit"], b["text"]) for b in cli_blame] == [
            (b["line"], b["class"], b["model"], b["recordId"], b["commit"], b["text"]) for b in blame["lines"]
        ]
        util = await call(s, "blame", {"path": "src/util.py", "startLine": 3, "endLine": 7})
        assert [(b["line"], b["class"]) for b in util["lines"]] == [
            (3, "human"), (4, "ai"), (5, "ai"), (6, "ai"), (7, "human")
        ]

        # The report counts the lines; the gate holds them until a person reviews them.
        report = await call(s, "report", {"range": "HEAD~1..HEAD"})
        summary = cairn_json_lines(ws, "report", "HEAD~1..HEAD", "--format", "json")[-1]
        assert summary["type"] == "summary"
        assert report["totals"]["ai"] == summary["totals"]["ai"] == (end - start + 1) + 3
        assert report["byModel"]["claude-sonnet-4-5"]["ai"] == summary["byModel"]["claude-sonnet-4-5"]["ai"]
        assert report["byModel"]["claude-sonnet-4-5"]["accepted"] == 2
        rows = [r for r in cairn_json_lines(ws, "report", "HEAD~1..HEAD", "--format", "json") if r["type"] == "file"]
        assert sorted((r["path"], r["ai"], r["human"]) for r in rows) == sorted(
            (r["path"], r["ai"], r["human"]) for r in report["files"]
        )

        gate = await call(s, "check", {"range": "HEAD~1..HEAD"})
        assert gate["passed"] is False and gate["requireReview"] is True
        assert sorted(r["path"] for r in gate["unreviewed"]) == ["src/config.py", "src/util.py"]
        cli = cairn(ws, "check", "HEAD~1..HEAD", "--require-review", "--json", check=False)
        assert cli.returncode == 1, cli.stdout
        cli_gate = json.loads(cli.stdout)
        assert cli_gate["passed"] is False
        assert sorted((r["path"], r["start_line"], r["end_line"]) for r in cli_gate["unreviewed"]) == sorted(
            (r["path"], r["startLine"], r["endLine"]) for r in gate["unreviewed"]
        )
        assert "FAILED" in gate["summary"]

        cairn(ws, "review", "HEAD~1..HEAD", "--approve", "--name", "Rae Viewer", "--email", "rae@example.com")
        gate = await call(s, "check", {"range": "HEAD~1..HEAD"})
        assert gate["passed"] is True and gate["unreviewed"] == [], gate
        assert cairn(ws, "check", "HEAD~1..HEAD", "--require-review", check=False).returncode == 0
        report = await call(s, "report", {"range": "HEAD~1..HEAD"})
        assert report["totals"]["unreviewedAi"] == 0 and all(r["reviewed"] for r in report["regions"])

        summary = json.loads((await s.read_resource("cairn://ledger/summary")).contents[0].text)
        assert summary["byModel"]["claude-sonnet-4-5"] == {"suggested": 2, "accepted": 2, "rejected": 0}
    verify = cairn(ws, "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_an_agent_trace_record_names_the_tool_model_and_ranges(ws):
    cairn(ws, "init")
    new = support.GEOMETRY_RS + '''
impl Point {
    /// The point halfway to another.
    pub fn midpoint(&self, other: &Point) -> Point {
        Point { x: (self.x + other.x) / 2.0, y: (self.y + other.y) / 2.0 }
    }
}
'''
    ws.write("src/geometry.rs", new)
    start = new.splitlines().index("    /// The point halfway to another.") + 1
    trace = {
        "version": "0.1.0",
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "timestamp": "2026-01-23T14:30:00Z",
        "vcs": {"type": "git", "revision": git(ws, "rev-parse", "HEAD").strip()},
        "tool": {"name": "cursor", "version": "2.4.0"},
        "files": [
            {
                "path": "src/geometry.rs",
                "conversations": [
                    {
                        "url": "https://example.invalid/conversations/1",
                        "contributor": {"type": "ai", "model_id": "anthropic/claude-opus-4-5"},
                        "ranges": [{"start_line": start, "end_line": start + 3}],
                    }
                ],
            }
        ],
    }
    async with mcp_session(ws, "--record-edits") as s:
        rec = await call(s, "record_edit", {"agentTrace": trace})
        assert (rec["tool"], rec["model"]) == ("cursor", "anthropic/claude-opus-4-5")
        assert [(r["startLine"], r["endLine"]) for r in rec["recorded"]] == [(start, start + 3)]
        assert len(rec["traceDigest"]) == 64
        sug = next(e for e in ledger_events(ws) if e.get("recordId") == rec["recorded"][0]["recordId"])
        assert sug["generator"]["runtime"] == "cursor 2.4.0"
        assert sug["generator"]["sampling"]["agentTrace"] == {
            "id": trace["id"], "version": "0.1.0", "digest": rec["traceDigest"]
        }
        git(ws, "commit", "-qam", "geometry: midpoint")
        blame = await call(s, "blame", {"path": "src/geometry.rs"})
        # The four lines of the range, and the impl's closing `}` next to them (a trivial
        # line counts with the matched line of the same record beside it).
        assert [b["line"] for b in blame["lines"] if b["class"] == "ai"] == list(range(start, start + 5))
        assert {b["tool"] for b in blame["lines"] if b["class"] == "ai"} == {"cursor 2.4.0"}
