//! The evaluation harness end to end on the default model, with items written here in
//! the benchmarks' formats: `cairn-eval` produces completions through the engine,
//! `score.py` executes them in its sandbox and scores them, and the report has its tables.
//! The scorer's own verdicts are checked on programs whose outcome is known.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn python() -> String {
    std::env::var("CAIRN_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn score_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("score.py")
}

fn eval(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-eval"))
        .args(args)
        // The harness is under test, not the budget: a busy machine must not empty a row.
        .args(["--latency-budget-ms", "0"])
        .output()
        .expect("cairn-eval runs");
    assert!(
        out.status.success(),
        "cairn-eval {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn score(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(score_py())
        .args(args)
        .output()
        .expect("python runs score.py");
    assert!(
        out.status.success(),
        "score.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `score.py report` with `args`; returns the Markdown and the JSON it wrote.
fn report(dir: &Path, args: &[&str]) -> (String, Value) {
    let md = dir.join("eval.md");
    let js = dir.join("eval.json");
    let mut all = vec!["report", "--out-md", md.to_str().unwrap()];
    all.extend(["--out-json", js.to_str().unwrap()]);
    all.extend_from_slice(args);
    score(&all);
    let j = serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    (std::fs::read_to_string(&md).unwrap(), j)
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const TEST: &str =
    "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n";

fn he_item(id: &str) -> Value {
    json!({
        "task_id": format!("SingleLineInfilling/Toy/{id}/L0"),
        "entry_point": "add",
        "prompt": "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n",
        "suffix": "",
        "canonical_solution": "    return a + b\n",
        "test": TEST,
    })
}

#[test]
fn humaneval_items_are_completed_executed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("he.jsonl");
    write_jsonl(&data, &[he_item("0"), he_item("1"), he_item("2")]);
    let out = dir.path().join("he-out.jsonl");
    eval(&[
        "humaneval",
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), 2, "--limit 2: {rows:?}");
    for r in &rows {
        assert!(r["completion"].is_string(), "{r}");
        assert!(r["prompt_tokens"].as_u64().unwrap() > 5, "{r}");
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["model"], "default");
    }
    let scored = dir.path().join("he-scored.jsonl");
    let printed = score(&[
        "humaneval",
        out.to_str().unwrap(),
        data.to_str().unwrap(),
        "--out",
        scored.to_str().unwrap(),
    ]);
    assert!(printed.contains("pass@1"), "{printed}");
    let scored_rows = read_jsonl(&scored);
    assert_eq!(scored_rows.len(), 2);
    assert!(scored_rows.iter().all(|r| r["passed"].is_boolean()));

    let toy = format!("toy={}", scored.display());
    let (table, j) = report(dir.path(), &["--humaneval", &toy]);
    assert!(table.contains("| default | toy | 2 |"), "{table}");
    assert_eq!(j["humaneval"][0]["items"], 2);
}

/// The scorer's verdicts on known programs: the right answer passes, a wrong one fails,
/// a loop is stopped by the timeout, and the sandbox has no network.
#[test]
fn the_sandbox_passes_fails_times_out_and_has_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("he.jsonl");
    let items: Vec<Value> = (0..4).map(|i| he_item(&i.to_string())).collect();
    write_jsonl(&data, &items);
    let id = |i: usize| items[i]["task_id"].clone();
    let results = dir.path().join("results.jsonl");
    write_jsonl(
        &results,
        &[
            json!({"task_id": id(0), "completion": "    return a + b\n"}),
            json!({"task_id": id(1), "completion": "    return a - b\n"}),
            json!({"task_id": id(2), "completion": "    while True:\n        pass\n"}),
            json!({"task_id": id(3), "completion": "    import socket\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    return a + b\n"}),
        ],
    );
    let scored = dir.path().join("scored.jsonl");
    score(&[
        "humaneval",
        results.to_str().unwrap(),
        data.to_str().unwrap(),
        "--out",
        scored.to_str().unwrap(),
        "--timeout",
        "3",
    ]);
    let rows = read_jsonl(&scored);
    let verdict = |i: usize| {
        (
            rows[i]["passed"].as_bool().unwrap(),
            rows[i]["result"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(verdict(0), (true, "passed".into()));
    assert!(
        !verdict(1).0 && verdict(1).1.contains("AssertionError"),
        "{:?}",
        verdict(1)
    );
    assert_eq!(verdict(2), (false, "timeout".into()));
    assert!(
        !verdict(3).0,
        "the sandbox reached the network: {:?}",
        verdict(3)
    );
}

#[test]
fn crosscodeeval_runs_the_context_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cc.jsonl");
    let item = json!({
        "prompt": "from geometry import area\n\nprint(",
        "groundtruth": "area(3, 4))",
        "right_context": "\n",
        "metadata": {"task_id": "toy/1", "repository": "toy-geometry-0000000", "file": "main.py"},
        "crossfile_context": {"list": [
            {"retrieved_chunk": "def area(w, h):\n    return w * h\n", "filename": "geometry.py", "score": 3.0}
        ]},
    });
    write_jsonl(&data, &[item]);
    let out = dir.path().join("cc-out.jsonl");
    eval(&[
        "cceval",
        "--data",
        data.to_str().unwrap(),
        "--conditions",
        "none,benchmark",
        "--out",
        out.to_str().unwrap(),
    ]);
    let rows = read_jsonl(&out);
    let conds: Vec<&str> = rows
        .iter()
        .map(|r| r["condition"].as_str().unwrap())
        .collect();
    assert_eq!(conds, ["none", "benchmark"]);
    assert_eq!(rows[0]["context_snippets"], 0);
    assert_eq!(rows[1]["context_snippets"], 1);
    // The benchmark's chunk is in the prompt: it is longer than without it.
    assert!(rows[1]["prompt_tokens"].as_u64() > rows[0]["prompt_tokens"].as_u64());

    let runs = format!("default={}", out.display());
    let (_, j) = report(
        dir.path(),
        &["--cceval", &runs, "--cceval-data", data.to_str().unwrap()],
    );
    let em = j["cceval"][0]["exact_match"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&em));

    // An unknown condition is a clear error.
    let bad = Command::new(env!("CARGO_BIN_EXE_cairn-eval"))
        .args([
            "cceval",
            "--data",
            data.to_str().unwrap(),
            "--conditions",
            "oracle",
        ])
        .args(["--out", dir.path().join("x").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown condition"));
}
