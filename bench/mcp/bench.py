"""bench/mcp: tool-call latency of `cairn mcp` (the official Python SDK over stdio, one call at a
time) for `search` and `context_for`, against the same engine calls made in-process
(mcp/examples/bench_inprocess.rs) on the same repository, queries and positions.

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
    out: dict[str, list[float]] = {"search": [], "context_for": []}
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
            for i, p in enumerate(positions):
                t = time.perf_counter()
                r = await s.call_tool("context_for", p)
                ms = (time.perf_counter() - t) * 1000
                assert not r.is_error, r.content
                if i >= WARMUP:
                    out["context_for"].append(ms)
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
    r = subprocess.run(
        [a.inprocess, "--repo", str(a.repo), "--queries", str(a.state / "queries.json"), "--positions", str(a.state / "positions.json")],
        env=env, capture_output=True, text=True, check=True,
    )
    inproc = json.loads(r.stdout)
    load_after = os.getloadavg()
    rows = []
    print(f"\n{len(queries) - WARMUP} searches, {len(positions) - WARMUP} context_for calls (after {WARMUP} warm-up each), one at a time")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n")
    print("| tool | through MCP p50 / p99 ms | in-process p50 / p99 ms | MCP overhead p50 / p99 ms |")
    print("|---|---:|---:|---:|")
    for tool in ("search", "context_for"):
        m, i = mcp[tool], inproc[tool]
        row = {
            "tool": tool, "calls": len(m),
            "mcp_p50": pct(m, 50), "mcp_p99": pct(m, 99), "mcp_mean": statistics.mean(m),
            "inprocess_p50": pct(i, 50), "inprocess_p99": pct(i, 99), "inprocess_mean": statistics.mean(i),
        }
        rows.append(row)
        print(
            f"| {tool} | {row['mcp_p50']:.2f} / {row['mcp_p99']:.2f} | {row['inprocess_p50']:.2f} / {row['inprocess_p99']:.2f} "
            f"| {row['mcp_p50'] - row['inprocess_p50']:.2f} / {row['mcp_p99'] - row['inprocess_p99']:.2f} |"
        )
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "load_before": load_before, "load_after": load_after}, indent=2))


if __name__ == "__main__":
    main()
