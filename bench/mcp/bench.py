"""bench/mcp: tool-call latency of `cairn mcp` (the official Python SDK over stdio, one call at a
time; and a raw JSON-RPC client, to separate the SDK's own cost) for `search` and
`context_for`, against the same engine calls made in-process (mcp/examples/bench_inprocess.rs)
on the same repository, queries and positions.

    python bench/mcp/bench.py --cairn BIN --inprocess BIN --repo CLONE --state DIR [--n 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

WARMUP = 5


def env_for(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("CAIRN_REPO", "CAIRN_LEDGER_DIR", "CAIRN_DATA_DIR", "CAIRN_KEYRING"):
        env.pop(k, None)
    for d in ("keys", "data", "run"):
        (state / d).mkdir(parents=True, exist_ok=True)
    (state / "config.toml").write_text("")
    env.update(
        CAIRN_KEY_STORE=f"file:{state / 'keys'}",
        XDG_DATA_HOME=str(state / "data"),
        XDG_RUNTIME_DIR=str(state / "run"),
        CAIRN_CONFIG=str(state / "config.toml"),
        CAIRN_LOG="error",
    )
    return env


def workload(repo: Path, n: int) -> tuple[list[str], list[dict]]:
    """Queries from the repository's own function names (split into words) and positions on
    lines that call something, spread over the Rust files; deterministic, content-blind order."""
    files = sorted(
        p for p in subprocess.run(["git", "ls-files", "*.rs"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    )
    names, spots = set(), []
    for f in files:
        try:
            lines = (repo / f).read_text().splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        for i, line in enumerate(lines):
            m = re.search(r"\bfn ([a-z][a-z0-9_]{5,})", line)
            if m:
                names.add(m.group(1))
            c = re.search(r"[a-z_]{4,}\(", line)
            if c and not line.lstrip().startswith(("//", "fn ", "pub fn ")):
                spots.append({"path": f, "line": i + 1, "column": c.end()})
    names = sorted(names)
    step = max(1, len(names) // (n + WARMUP))
    queries = [n_.replace("_", " ") for n_ in names[::step]][: n + WARMUP]
    step = max(1, len(spots) // (n + WARMUP))
    positions = spots[::step][: n + WARMUP]
    return queries, positions


async def through_mcp(cairn: str, repo: Path, env: dict, queries: list[str], positions: list[dict]) -> dict:
    params = StdioServerParameters(command=cairn, args=["mcp", "--repo", str(repo), "--no-share"], env=env, cwd=str(repo))
    out: dict[str, list] = {"search": [], "context_for": [], "search_hits": [], "context_snippets": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=1800) as s:
            await s.initialize()
            t = time.perf_counter()
            r = await s.call_tool("search", {"query": "warm up the index"})  # waits for the index
            print(f"index ready through MCP in {time.perf_counter() - t:.1f} s", flush=True)
            assert not r.is_error, r
            for i, q in enumerate(queries):
                t = time.perf_counter()
                r = await s.call_tool("search", {"query": q, "limit": 10})
                ms = (time.perf_counter() - t) * 1000
                assert not r.is_error, r.content
                if i >= WARMUP:
                    out["search"].append(ms)
                    out["search_hits"].append(len(r.structured_content["hits"]))
            for i, p in enumerate(positions):
                t = time.perf_counter()
                r = await s.call_tool("context_for", p)
                ms = (time.perf_counter() - t) * 1000
                assert not r.is_error, r.content
                if i >= WARMUP:
                    out["context_for"].append(ms)
                    out["context_snippets"].append(len(r.structured_content["snippets"]))
            status = json.loads((await s.read_resource("cairn://index/status")).contents[0].text)
            out["files"] = status["stats"]["files"]
            out["chunks"] = status["stats"]["chunks"]
    return out


def through_raw_json_rpc(cairn: str, repo: Path, env: dict, queries: list[str], positions: list[dict]) -> dict:
    """The same calls as one line of JSON-RPC each over the server's stdio, read back with
    json.loads and nothing else: the server's share of the MCP cost without the SDK's
    (pydantic models, outputSchema validation)."""
    proc = subprocess.Popen(
        [cairn, "mcp", "--repo", str(repo), "--no-share"], env=env, cwd=repo,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    ids = iter(range(1, 1 << 30))

    def rpc(method: str, params: dict) -> dict:
        rid = next(ids)
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode() + b"\n")
        proc.stdin.flush()
        while True:
            m = json.loads(proc.stdout.readline())
            if m.get("id") == rid:
                return m

    rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
    proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    rpc("tools/call", {"name": "search", "arguments": {"query": "warm up the index"}})
    out: dict[str, list[float]] = {"search": [], "context_for": []}
    for tool, calls in (("search", [{"query": q, "limit": 10} for q in queries]), ("context_for", positions)):
        for i, args in enumerate(calls):
            t = time.perf_counter()
            r = rpc("tools/call", {"name": tool, "arguments": args})
            ms = (time.perf_counter() - t) * 1000
            assert not r["result"].get("isError"), r
            if i >= WARMUP:
                out[tool].append(ms)
    proc.stdin.close()
    proc.wait(60)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--inprocess", required=True)
    ap.add_argument("--repo", required=True, type=Path)
    ap.add_argument("--state", required=True, type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    env = env_for(a.state)
    queries, positions = workload(a.repo, a.n)
    (a.state / "queries.json").write_text(json.dumps(queries))
    (a.state / "positions.json").write_text(json.dumps(positions))
    load_before = os.getloadavg()
    mcp = asyncio.run(through_mcp(a.cairn, a.repo, env, queries, positions))
    raw = through_raw_json_rpc(a.cairn, a.repo, env, queries, positions)
    r = subprocess.run(
        [a.inprocess, "--repo", str(a.repo), "--queries", str(a.state / "queries.json"), "--positions", str(a.state / "positions.json")],
        env=env, capture_output=True, text=True, check=True,
    )
    inproc = json.loads(r.stdout)
    load_after = os.getloadavg()
    rows = []
    print(f"\n{len(queries) - WARMUP} searches, {len(positions) - WARMUP} context_for calls (after {WARMUP} warm-up each), one at a time")
    print(f"index: {mcp['files']} files, {mcp['chunks']} chunks")
    for k in ("search_hits", "context_snippets"):
        print(f"mean {k.replace('_', ' ')}: through MCP {statistics.mean(mcp[k]):.2f}, in-process {statistics.mean(inproc[k]):.2f}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n")
    print("| tool | MCP, Python SDK client p50 / p99 ms | MCP, raw JSON-RPC client p50 / p99 ms | in-process p50 / p99 ms | MCP overhead (SDK) p50 / p99 ms | MCP overhead (raw) p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool in ("search", "context_for"):
        m, w, i = mcp[tool], raw[tool], inproc[tool]
        row = {
            "tool": tool, "calls": len(m),
            "mcp_p50": pct(m, 50), "mcp_p99": pct(m, 99), "mcp_mean": statistics.mean(m),
            "raw_p50": pct(w, 50), "raw_p99": pct(w, 99), "raw_mean": statistics.mean(w),
            "inprocess_p50": pct(i, 50), "inprocess_p99": pct(i, 99), "inprocess_mean": statistics.mean(i),
        }
        rows.append(row)
        print(
            f"| {tool} | {row['mcp_p50']:.2f} / {row['mcp_p99']:.2f} | {row['raw_p50']:.2f} / {row['raw_p99']:.2f} "
            f"| {row['inprocess_p50']:.2f} / {row['inprocess_p99']:.2f} "
            f"| {row['mcp_p50'] - row['inprocess_p50']:.2f} / {row['mcp_p99'] - row['inprocess_p99']:.2f} "
            f"| {row['raw_p50'] - row['inprocess_p50']:.2f} / {row['raw_p99'] - row['inprocess_p99']:.2f} |"
        )
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "load_before": load_before, "load_after": load_after}, indent=2))


if __name__ == "__main__":
    main()
