//! The `cairn` binary as a user runs it, on the real default model.

use std::io::Write;
use std::process::{Command, Stdio};

fn cairn(repo: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.arg("--repo")
        .arg(repo)
        .env("CAIRN_CONFIG", repo.join("user-config.toml"))
        // Ledger key and data (index, ledger) stay inside the test's directory.
        .env(
            "CAIRN_KEY_STORE",
            format!("file:{}", repo.join(".git/keys").display()),
        )
        .env("XDG_DATA_HOME", repo.join(".git/data"))
        .env("XDG_STATE_HOME", repo.join(".git/state"));
    c
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join(".git")).unwrap();
    // These tests are about what is printed, not about the latency budget (engine/tests/
    // budget.rs): without one, a busy machine cannot make a completion come back empty.
    std::fs::write(
        d.path().join("user-config.toml"),
        "[completion]\nlatency_budget_ms = 0\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("fib.py"),
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n    return \n\nprint(fibonacci(10))\n",
    )
    .unwrap();
    d
}

#[test]
fn complete_prints_a_cleaned_single_line_completion_as_json() {
    let r = repo();
    let out = cairn(r.path())
        .args(["complete", "--file"])
        .arg(r.path().join("fib.py"))
        .args(["--line", "5", "--col", "12", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v["completion"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{v}");
    assert!(
        !text.contains('\n'),
        "single line after `return `: {text:?}"
    );
    assert_eq!(v["multiline"], false);
    assert_eq!(v["model"]["origin"], "local");
    assert!(v["recordId"].as_str().is_some_and(|r| r.len() == 36), "{v}");
    assert_eq!(v["model"]["gguf_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn chat_streams_an_answer_and_keeps_serving_after_a_bad_turn() {
    let r = repo();
    let out = cairn(r.path())
        .args(["chat", "--max-tokens", "16", "What is recursion?"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());

    // Interactive session from a pipe: two questions, one of them blank noise in between.
    let mut child = cairn(r.path())
        .args(["chat", "--max-tokens", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello\n\n   \nWhat is a stack?\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("generated").count(),
        2,
        "two answers: {stderr}"
    );
}

#[test]
fn a_repeated_question_is_answered_from_the_cache_with_a_note_unless_no_cache() {
    let r = repo();
    // `tiny` answers this question whole, fast (an answer cut by the token limit is not
    // cached).
    std::fs::write(
        r.path().join("user-config.toml"),
        "[routing]\ncomplete = \"tiny\"\nchat = \"tiny\"\n",
    )
    .unwrap();
    let q = "What does fibonacci return? Answer in one short sentence.";
    let ask = |extra: &[&str]| {
        let out = cairn(r.path())
            .args(["chat", "--max-tokens", "128"])
            .args(extra)
            .arg(q)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
    };
    let (first, _) = ask(&["--json"]);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["stopReason"]["kind"], "end_of_generation", "{first}");
    assert!(first["cached"].is_null());
    let record = first["recordId"].as_str().unwrap();

    // Printed: the answer, and one line that says where it came from.
    let (out, note) = ask(&[]);
    assert_eq!(out.trim(), first["answer"].as_str().unwrap().trim());
    let note: Vec<&str> = note
        .lines()
        .filter(|l| l.contains("from the cache"))
        .collect();
    assert_eq!(note.len(), 1, "{note:?}");
    assert!(
        note[0].contains(record) && note[0].contains("--no-cache"),
        "{note:?}"
    );
    let (again, _) = ask(&["--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["cached"]["fromRecord"], record, "{again}");
    assert_eq!(again["usage"]["generated_tokens"], 0);

    // --no-cache: the model answers again, and says how.
    let (_, report) = ask(&["--no-cache"]);
    assert!(!report.contains("from the cache"), "{report}");
    assert!(report.contains("generated"), "{report}");
}

#[test]
fn bad_input_gets_one_line_errors() {
    let r = repo();
    let run = |args: &[&str]| {
        let out = cairn(r.path()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    let fib = r.path().join("fib.py");
    let fib = fib.to_str().unwrap();
    let e = run(&["complete", "--file", fib, "--line", "99", "--col", "1"]);
    assert!(e.contains("past the end") && e.contains("fib.py"), "{e}");
    let bin = r.path().join("blob.bin");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let e = run(&[
        "complete",
        "--file",
        bin.to_str().unwrap(),
        "--line",
        "1",
        "--col",
        "1",
    ]);
    assert!(e.contains("not UTF-8"), "{e}");

    std::fs::create_dir(r.path().join(".cairn")).unwrap();
    std::fs::write(
        r.path().join(".cairn/config.toml"),
        "[routing]\nchat = \"ghost\"\n",
    )
    .unwrap();
    let e = run(&["chat", "hi"]);
    assert!(e.contains("ghost") && e.contains("config"), "{e}");
    std::fs::write(r.path().join(".cairn/config.toml"), "[models.broken]\nkind = \"local\"\npath = \"/nonexistent/model.gguf\"\n[routing]\nchat = \"broken\"\n").unwrap();
    let e = run(&["chat", "hi"]);
    assert!(
        e.contains("/nonexistent/model.gguf") && e.contains("cairn models"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// `cairn references index` finds a node_modules package; `cairn references check -`
/// reports a copy of its code (exit 1) with package, version and licence, and exits 0
/// on the repository's own code.
#[test]
fn references_index_and_check() {
    let r = repo();
    let pkg = r.path().join("node_modules/trimmer");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        pkg.join("package.json"),
        r#"{"name": "trimmer", "version": "2.1.0", "license": "BSD-3-Clause"}"#,
    )
    .unwrap();
    let code = "function rightTrimLines(text, keepEmpty) {\n  var lines = text.split('\\n');\n  var out = [];\n  for (var j = 0; j < lines.length; j++) {\n    var line = lines[j].replace(/\\s+$/, '');\n    if (line.length > 0 || keepEmpty) {\n      out.push(line);\n    }\n  }\n  return out.join('\\n');\n}\n";
    std::fs::write(pkg.join("index.js"), code).unwrap();
    let refs = |args: &[&str], stdin: &str| {
        let mut child = cairn(r.path())
            .arg("references")
            .args(args)
            .env("CAIRN_REFERENCES_DIR", r.path().join(".git/refs-store"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = refs(&["index", "--packages"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 packages (npm 1)"), "{text}");
    assert!(text.contains("trimmer\t2.1.0\tBSD-3-Clause"), "{text}");
    let out = refs(&["check", "-", "--lang", "js", "--json"], code);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["package"], "trimmer");
    assert_eq!(v[0]["licence"], "BSD-3-Clause");
    let own = r.path().join("fib.py");
    let out = refs(&["check", own.to_str().unwrap()], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no third-party code found"));
}
