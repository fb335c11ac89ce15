#!/usr/bin/env python3
"""Scores cairn-eval's output and writes the evaluation tables (Markdown and JSON).

  score.py humaneval RESULTS.jsonl DATA.jsonl.gz [--jobs N] [--timeout S]   -> executed results
  score.py report --out-md FILE --out-json FILE [--humaneval LABEL=EXECUTED.jsonl ...]
                  [--cceval LABEL=RESULTS.jsonl ...] [--chat RESULTS.jsonl --chat-data DATA]
                  [--latency RESULTS.json]

HumanEval programs (prompt + completion + suffix + the task's tests) run each in a
subprocess sandbox: an empty temporary working directory, `python3 -I` (no user site,
no environment), resource limits (CPU seconds, address space, file size, no new
processes), a network namespace of its own where the kernel allows one, and a wall-clock
timeout. Nothing is tuned to items: the scorer only reads the ground truth to compare.
"""

import argparse
import concurrent.futures
import gzip
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# ---- sandboxed execution ----------------------------------------------------------

LIMITS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
"""


def _unshare_works():
    """A private network namespace (no interfaces but loopback) if the kernel lets us."""
    exe = shutil.which("unshare")
    if not exe:
        return None
    for args in ([exe, "-n"], [exe, "-rn"]):
        try:
            r = subprocess.run(args + ["true"], capture_output=True, timeout=10)
            if r.returncode == 0:
                return args
        except (OSError, subprocess.SubprocessError):
            pass
    return None


NET = _unshare_works()


def run_program(program, timeout):
    """Runs `program` sandboxed; returns (passed, reason)."""
    with tempfile.TemporaryDirectory(prefix="cairn-he-") as d:
        path = os.path.join(d, "prog.py")
        with open(path, "w") as f:
            f.write(LIMITS.format(cpu=max(1, int(timeout))))
            f.write("del resource, sys\n")
            f.write(program)
        cmd = (NET or []) + [sys.executable, "-I", path]
        try:
            r = subprocess.run(
                cmd,
                cwd=d,
                env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return False, "timeout"
        if r.returncode == 0:
            return True, "passed"
        err = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return False, (err[-1] if err else f"exit {r.returncode}")[:300]


def read_jsonl(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def humaneval(args):
    data = {d["task_id"]: d for d in read_jsonl(args.data)}
    results = read_jsonl(args.results)

    def one(r):
        d = data[r["task_id"]]
        program = (
            d["prompt"] + r.get("completion", "") + d["suffix"] + "\n\n" + d["test"]
            + f"\n\ncheck({d['entry_point']})\n"
        )
        ok, why = run_program(program, args.timeout)
        return dict(r, passed=ok, result=why)

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        scored = list(ex.map(one, results))
    with open(args.out, "w") as f:
        for s in scored:
            f.write(json.dumps(s) + "\n")
    n = len(scored)
    p = sum(s["passed"] for s in scored)
    print(f"{args.results}: pass@1 {p}/{n} = {p / max(n, 1):.3f}"
          + ("" if NET else " (no network namespace available: ran without one)"))


# ---- metrics ------------------------------------------------------------------------


def levenshtein(a, b):
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_similarity(a, b):
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def first_line(s):
    """The first non-empty line: what an inline completion shows first."""
    for line in s.split("\n"):
        if line.strip():
            return line.strip()
    return ""


def pct(xs, q):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "–"
    return f"{x:,.{nd}f}"


# ---- report -------------------------------------------------------------------------


def latency_cols(rows):
    return {
        "prompt_tokens_mean": mean([r.get("prompt_tokens") for r in rows]),
        "latency_p50_ms": pct([r.get("latency_ms") for r in rows], 0.5),
        "latency_p95_ms": pct([r.get("latency_ms") for r in rows], 0.95),
    }


def report(args):
    md, js = [], {}
    if args.humaneval:
        md += ["### HumanEval-infilling (pass@1, greedy, through `Workspace::complete`)", "",
               "| model | set | items | pass@1 | prompt tokens (mean) | latency p50 / p95 ms |",
               "|---|---|---:|---:|---:|---:|"]
        js["humaneval"] = []
        for spec in args.humaneval:
            label, path = spec.split("=", 1)
            rows = read_jsonl(path)
            n = len(rows)
            p = sum(bool(r.get("passed")) for r in rows)
            errors = sum(1 for r in rows if r.get("error"))
            lc = latency_cols(rows)
            model = rows[0]["model"] if rows else "?"
            row = dict(model=model, set=label, items=n, passed=p, pass_at_1=p / max(n, 1),
                       errors=errors, **lc)
            js["humaneval"].append(row)
            md.append(f"| {model} | {label} | {n} | {p / max(n, 1):.3f} ({p}) | "
                      f"{fmt(lc['prompt_tokens_mean'])} | {fmt(lc['latency_p50_ms'])} / "
                      f"{fmt(lc['latency_p95_ms'])} |")
        md.append("")
    if args.cceval:
        md += ["### CrossCodeEval Python (first line, through `Workspace::complete_with`)", "",
               "| model | condition | items | exact match | edit similarity | prompt tokens (mean) | latency p50 / p95 ms |",
               "|---|---|---:|---:|---:|---:|---:|"]
        js["cceval"] = []
        data = {d["metadata"]["task_id"]: d for d in read_jsonl(args.cceval_data)}
        for spec in args.cceval:
            label, path = spec.split("=", 1)
            rows = [r for r in read_jsonl(path) if not r.get("skipped")]
            have_cairn = {r["task_id"] for r in rows if r["condition"] == "cairn"}
            for cond in ("none", "benchmark", "cairn"):
                rs = [r for r in rows if r["condition"] == cond]
                if not rs:
                    continue
                # Compare conditions on the same items (cairn needs a checkout).
                subsets = [("all", rs)]
                if cond != "cairn" and have_cairn and len(have_cairn) < len(rs):
                    subsets.append(("with checkout", [r for r in rs if r["task_id"] in have_cairn]))
                for sub, group in subsets:
                    em = es = 0.0
                    for r in group:
                        truth = first_line(data[r["task_id"]]["groundtruth"])
                        pred = first_line(r.get("completion", ""))
                        em += pred == truth
                        es += edit_similarity(pred, truth)
                    n = len(group)
                    lc = latency_cols(group)
                    name = cond if sub == "all" else f"{cond} ({sub})"
                    js["cceval"].append(dict(model=label, condition=name, items=n,
                                             exact_match=em / n, edit_similarity=es / n, **lc))
                    md.append(f"| {label} | {name} | {n} | {em / n:.3f} | {es / n:.3f} | "
                              f"{fmt(lc['prompt_tokens_mean'])} | {fmt(lc['latency_p50_ms'])} / "
                              f"{fmt(lc['latency_p95_ms'])} |")
        md.append("")
    if args.chat:
        md += chat_report(args, js)
    if args.latency:
        md += latency_report(args, js)
    for spec in args.extra:
        title, path = spec.split("=", 1)
        with open(path) as f:
            md += [f"### {title}", "", f.read().strip(), ""]
    text = "\n".join(md) + "\n"
    with open(args.out_md, "w") as f:
        f.write(text)
    with open(args.out_json, "w") as f:
        json.dump(js, f, indent=2)
    print(text)


def recall_at(ranked, relevant, k):
    return len(set(ranked[:k]) & relevant) / len(relevant)


def rr(ranked, relevant):
    for i, p in enumerate(ranked, 1):
        if p in relevant:
            return 1.0 / i
    return 0.0


def unique(xs):
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def chat_report(args, js):
    data = {d["instance_id"]: d for d in read_jsonl(args.chat_data)}
    rows = [r for r in read_jsonl(args.chat) if not r.get("skipped")]
    out = []
    r5 = r10 = m = 0.0
    for r in rows:
        rel = set(data[r["instance_id"]]["relevant_files"])
        ranked = unique(s["path"] for s in r["sources"])
        r5 += recall_at(ranked, rel, 5)
        r10 += recall_at(ranked, rel, 10)
        m += rr(ranked, rel)
    n = max(len(rows), 1)
    lat = [r["retrieval_ms"] for r in rows]
    js["chat_retrieval"] = dict(instances=len(rows), recall_at_5=r5 / n, recall_at_10=r10 / n,
                                mrr=m / n, retrieval_p50_ms=pct(lat, 0.5),
                                retrieval_p95_ms=pct(lat, 0.95),
                                sources_mean=mean([len(r["sources"]) for r in rows]))
    out += ["### Chat retrieval: SWE-bench issues through `Workspace::chat_sources`", "",
            "The numbered sources a chat answer is grounded in (at most 8, within the chat "
            "source budget), ranked by file.", "",
            "| instances | Recall@5 | Recall@10 | MRR | sources per answer (mean) | retrieval p50 / p95 ms |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {len(rows)} | {r5 / n:.3f} | {r10 / n:.3f} | {m / n:.3f} | "
            f"{fmt(js['chat_retrieval']['sources_mean'], 1)} | {fmt(pct(lat, 0.5), 1)} / {fmt(pct(lat, 0.95), 1)} |", ""]
    answered = [r for r in rows if "cited" in r]
    if answered:
        hit = cited_any = 0
        for r in answered:
            rel = set(data[r["instance_id"]]["relevant_files"])
            cited = set(r["cited"])
            cited_any += bool(cited)
            hit += bool(cited & rel)
        k = len(answered)
        js["chat_citations"] = dict(answered=k, answers_citing=cited_any, citing_a_relevant_file=hit,
                                    answer_p50_ms=pct([r["answer_ms"] for r in answered], 0.5))
        out += ["Answers by the model (a hash sample of the instances):", "",
                "| answered | answers with a citation | answers citing a file the fix touched | answer p50 ms |",
                "|---:|---:|---:|---:|",
                f"| {k} | {cited_any} | {hit} | {fmt(js['chat_citations']['answer_p50_ms'])} |", ""]
    return out


def latency_report(args, js):
    with open(args.latency) as f:
        d = json.loads(f.readline())
    out = [f"### Completion latency: the same {d['requests']} prompts (every hole of "
           f"{len(d['problems'])} HumanEval problems in file order), {d['max_tokens']} tokens each, "
           f"{d['threads']} thread(s), {d['model']}", "",
           "| side | latency p50 ms | latency p95 ms | prompt tokens (mean) | reused (mean) | gen tok/s (mean) |",
           "|---|---:|---:|---:|---:|---:|"]
    js["latency"] = []
    for side in d["sides"]:
        s = side["samples"]
        lat = [x["latency_ms"] for x in s]
        gen = []
        for x in s:
            if x.get("generated_tokens") and x.get("ttft_ms") is not None and x["latency_ms"] > x["ttft_ms"]:
                gen.append(max(x["generated_tokens"] - 1, 1) / ((x["latency_ms"] - x["ttft_ms"]) / 1e3))
        # A streamed OpenAI-compatible answer carries no usage: its prompt is the same
        # text through the same GGUF tokenizer, but the counts are not reported.
        reported = any(x["prompt_tokens"] for x in s)
        row = dict(side=side["side"], latency_p50_ms=pct(lat, 0.5), latency_p95_ms=pct(lat, 0.95),
                   prompt_tokens_mean=mean([x["prompt_tokens"] for x in s]) if reported else None,
                   reused_mean=mean([x["reused_tokens"] for x in s]) if reported else None,
                   gen_tok_s=mean(gen))
        js["latency"].append(row)
        out.append(f"| {row['side']} | {fmt(row['latency_p50_ms'])} | {fmt(row['latency_p95_ms'])} | "
                   f"{fmt(row['prompt_tokens_mean'])} | {fmt(row['reused_mean'])} | {fmt(row['gen_tok_s'], 1)} |")
    out.append("")
    return out


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("humaneval")
    h.add_argument("results")
    h.add_argument("data")
    h.add_argument("--out", required=True)
    h.add_argument("--jobs", type=int, default=2)
    h.add_argument("--timeout", type=float, default=10.0)
    r = sub.add_parser("report")
    r.add_argument("--out-md", required=True)
    r.add_argument("--out-json", required=True)
    r.add_argument("--humaneval", action="append", default=[])
    r.add_argument("--cceval", action="append", default=[])
    r.add_argument("--cceval-data")
    r.add_argument("--chat")
    r.add_argument("--chat-data")
    r.add_argument("--latency")
    r.add_argument("--extra", action="append", default=[], help="TITLE=FILE: Markdown to append")
    a = ap.parse_args()
    if a.cmd == "humaneval":
        humaneval(a)
    else:
        report(a)


if __name__ == "__main__":
    main()
