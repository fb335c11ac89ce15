//! The other tools' formats: `report --format agent-trace` validates against Agent
//! Trace's published schema; git-ai notes and Agent Trace files are read by blame,
//! report and check as unsigned AI lines and gated like Cairn's own; what does not read
//! is a warning naming commit and file.

mod common;
use cairn_provenance::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/report_tools.py");
/// `schemas/trace-record.json` of github.com/cursor/agent-trace (CC BY 4.0), as published
/// at commit 33e8494 (`$id` https://agent-trace.dev/schemas/v1/trace-record.json).
const AGENT_TRACE_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schema/agent-trace-0.1.trace-record.json"
);

fn python() -> PathBuf {
    let py = std::env::var_os("CAIRN_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(Path::new(&home).join(".cache/cairn/py/bin/python"))
        })
        .expect("set CAIRN_TEST_PYTHON or HOME");
    assert!(
        py.exists(),
        "the test Python {} is missing: run `scripts/setup.sh --test`",
        py.display()
    );
    py
}

fn validate(records: &Path) -> (Option<i32>, String) {
    let out = Command::new(python())
        .arg(TOOLS)
        .arg("jsonl")
        .arg(records)
        .arg(AGENT_TRACE_SCHEMA)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(2), "{text}");
    (out.status.code(), text)
}

#[test]
fn agent_trace_export_validates_against_the_published_schema() {
    let (fx, _l, c1) = scenario();
    let text = report(&fx.repo, None, ReportFormat::AgentTrace, None).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        1,
        "one record per AI-assisted commit: {text}"
    );
    let r = &records[0];
    assert_eq!(r["vcs"]["revision"], c1.as_str());
    assert_eq!(r["tool"]["name"], "cairn");
    let convs = r["files"][0]["conversations"].as_array().unwrap();
    let kinds: Vec<(&str, u64)> = convs
        .iter()
        .map(|c| {
            (
                c["contributor"]["type"].as_str().unwrap(),
                c["ranges"][0]["start_line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("ai", 3), ("mixed", 2)]);
    let path = fx.tmp.path().join("trace.jsonl");
    std::fs::write(&path, &text).unwrap();
    let (code, out) = validate(&path);
    assert_eq!(code, Some(0), "Agent Trace record invalid:\n{out}");

    // The validator is real: a record off the schema is refused, naming the place.
    let mut bad = r.clone();
    bad["files"][0]["conversations"][0]["contributor"]["type"] = "robot".into();
    bad["version"] = "0.1.0-beta".into();
    std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
    let (code, out) = validate(&path);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("files/0/conversations/0/contributor/type"),
        "{out}"
    );
    assert!(out.contains("version"), "{out}");

    // Exported traces read back in: a clone with the trace file and no Cairn notes has
    // the same AI lines, now marked unsigned.
    let plain = Fixture::new();
    plain.write(
        "src/main.rs",
        &std::fs::read_to_string(fx.repo.join("src/main.rs")).unwrap(),
    );
    let c = plain.commit("same content");
    let mut back = r.clone();
    back["vcs"]["revision"] = c.as_str().into();
    std::fs::create_dir_all(plain.repo.join(".agent-trace")).unwrap();
    std::fs::write(
        plain.repo.join(".agent-trace/traces.jsonl"),
        serde_json::to_string(&back).unwrap() + "\n",
    )
    .unwrap();
    let b: Vec<String> = blame(&plain.repo, "src/main.rs", None)
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {} {}",
                b.class,
                b.unsigned,
                b.tool.as_deref().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        b,
        [
            "human false -",
            "ai-modified true agent-trace/cairn",
            "ai true agent-trace/cairn",
            "human false -",
            "human false -"
        ]
    );
}

const GIT_AI_NOTE: &str = "src/lib.rs\n  abcd1234abcd1234 2-3\n---\n{\n  \"schema_version\": \"authorship/3.0.0\",\n  \"base_commit_sha\": \"0000000000000000000000000000000000000000\",\n  \"prompts\": {\n    \"abcd1234abcd1234\": {\n      \"agent_id\": {\"tool\": \"cursor\", \"id\": \"6ef2299e\", \"model\": \"claude-4.5-opus\"},\n      \"messages\": [],\n      \"total_additions\": 2, \"total_deletions\": 0, \"accepted_lines\": 2, \"overriden_lines\": 0\n    }\n  }\n}\n";

fn add_note(repo: &Path, r#ref: &str, object: &str, text: &str) {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["notes", "--ref", r#ref, "add", "-f", "-m", text, object])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn git_ai_notes_are_unsigned_ai_lines_gated_like_cairns() {
    let fx = Fixture::new();
    fx.write("src/lib.rs", "fn a() {}\n");
    let c0 = fx.commit("initial");
    fx.write(
        "src/lib.rs",
        "fn a() {}\nfn b() -> u32 { 41 }\nfn c() -> u32 { b() + 1 }\nfn human() {}\n",
    );
    let c1 = fx.commit("agent work");
    add_note(&fx.repo, "refs/notes/ai", &c1, GIT_AI_NOTE);

    let b: Vec<String> = blame(&fx.repo, "src/lib.rs", None)
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {} {} {}",
                b.class,
                b.model.as_deref().unwrap_or("-"),
                b.tool.as_deref().unwrap_or("-"),
                b.unsigned
            )
        })
        .collect();
    assert_eq!(
        b,
        [
            "unattested - - false",
            "ai claude-4.5-opus git-ai/cursor true",
            "ai claude-4.5-opus git-ai/cursor true",
            "human - - false"
        ]
    );

    // One gate: the imported lines need a review like Cairn's own.
    let range = format!("{c0}..{c1}");
    let out = check(&fx.repo, Some(&range), true, &CheckOptions::default()).unwrap();
    assert!(!out.passed);
    assert_eq!(out.unreviewed.len(), 1);
    assert!(
        out.unreviewed[0].unsigned && out.unreviewed[0].tool.as_deref() == Some("git-ai/cursor")
    );
    let rkey = keys::load_or_create(
        &FileKeyStore::new(fx.tmp.path().join("reviewer")),
        keys::REVIEWER_KEY,
    )
    .unwrap();
    let who = ReviewerIdentity {
        name: "Rev".into(),
        email: "rev@example.com".into(),
    };
    review(&fx.repo, &range, &rkey, &who).unwrap();
    assert!(
        check(&fx.repo, Some(&range), true, &CheckOptions::default())
            .unwrap()
            .passed
    );

    // The report counts them, under the tool's model.
    let json = report(&fx.repo, Some(&range), ReportFormat::Json, None).unwrap();
    let summary: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(summary["totals"]["ai"], 2);
    assert_eq!(summary["byModel"]["claude-4.5-opus"]["reviewedAi"], 2);
    // The review note verifies; the imported lines are unsigned, not failures.
    let v = verify(&fx.repo, Some(&range), None).unwrap();
    assert!(v.ok(), "{:#?}", v.failures);
}

#[test]
fn bad_input_is_a_warning_naming_commit_and_file() {
    let fx = Fixture::new();
    fx.write("src/lib.rs", "fn a() {}\nfn b() {}\n");
    let c0 = fx.commit("initial");
    fx.write("src/lib.rs", "fn a() {}\nfn b() {}\nfn c() {}\n");
    let c1 = fx.commit("more");
    let s = |c: &str| c[..12].to_string();

    // A git-ai note without the divider, and one on an object that is not a commit.
    add_note(&fx.repo, "refs/notes/ai", &c1, "src/lib.rs\n  abcd 1-2\n");
    let blob = git(&fx.repo, &["rev-parse", "HEAD:src/lib.rs"]);
    add_note(&fx.repo, "refs/notes/ai", &blob, GIT_AI_NOTE);
    // An Agent Trace record whose range runs past the end of the file, and a line that
    // is not JSON.
    let trace = serde_json::json!({
        "version": "0.1", "id": "550e8400-e29b-41d4-a716-446655440000",
        "timestamp": "2026-01-25T10:00:00Z", "vcs": {"type": "git", "revision": c0},
        "files": [{"path": "src/lib.rs", "conversations": [
            {"contributor": {"type": "ai", "model_id": "openai/gpt-4o"},
             "ranges": [{"start_line": 2, "end_line": 9}]}]}]
    });
    std::fs::create_dir_all(fx.repo.join(".agent-trace")).unwrap();
    std::fs::write(
        fx.repo.join(".agent-trace/traces.jsonl"),
        format!("{trace}\n{{\"version\": \"0.1\", \"id\":\n"),
    )
    .unwrap();
    // A Cairn note that is not JSON and one cut off half-way.
    add_note(&fx.repo, "refs/notes/cairn", &c0, "this is not json");
    add_note(&fx.repo, "refs/notes/cairn", &c1, "{\"payload\": \"eyJf");

    let out = check(&fx.repo, None, true, &CheckOptions::default()).unwrap();
    let w = out.warnings.join("\n");
    for want in [
        format!("note on {} (refs/notes/cairn): note line 1: bad signature envelope: not a DSSE envelope", s(&c0)),
        format!("note on {} (refs/notes/cairn): note line 1:", s(&c1)),
        format!("git-ai note (refs/notes/ai) on {}: no `---` line", s(&c1)),
        format!("is on {blob}, which is not a commit in this repository"),
        format!("imported attribution for src/lib.rs in commit {} reaches line 9 but the file has 2 lines", s(&c0)),
        ".agent-trace/traces.jsonl:2: not an Agent Trace record (not JSON".to_string(),
    ] {
        assert!(w.contains(&want), "missing {want:?} in:\n{w}");
    }
    // The readable part of the trace still counts: line 2 of c0 is an AI line.
    assert_eq!(out.unreviewed.len(), 1, "{:?}", out.unreviewed);
    assert_eq!(
        (out.unreviewed[0].start_line, out.unreviewed[0].end_line),
        (2, 2)
    );
    // Reports carry the same warnings.
    let json = report(&fx.repo, None, ReportFormat::Json, None).unwrap();
    assert_eq!(
        json.lines()
            .filter(|l| l.contains("\"type\":\"warning\""))
            .count(),
        out.warnings.len()
    );
    // And verify fails on the broken Cairn notes, naming them.
    let v = verify(&fx.repo, None, None).unwrap();
    assert!(
        v.failures
            .iter()
            .any(|f| f.place == format!("note on {}", s(&c0))),
        "{:#?}",
        v.failures
    );
}

#[test]
fn check_emits_a_signed_slsa_verification_summary() {
    let (fx, l, c1) = scenario();
    let range = format!("{c1}~1..{c1}");
    let out = check(&fx.repo, Some(&range), true, &CheckOptions::default()).unwrap();
    let env = vsa::vsa(
        &fx.repo,
        Some(&range),
        &out,
        &CheckOptions::default(),
        l.signing_key(),
    )
    .unwrap();
    env.verify(&l.public_key()).unwrap();
    let st: serde_json::Value = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        st["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    assert_eq!(st["subject"][0]["digest"]["gitCommit"], c1.as_str());
    let p = &st["predicate"];
    assert_eq!(p["verificationResult"], "FAILED");
    assert_eq!(p["verifiedLevels"], serde_json::json!([]));
    assert!(p["resourceUri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("@{c1}")));
    assert_eq!(p["policy"]["uri"], vsa::POLICY_URI);
    assert_eq!(p["inputAttestations"].as_array().unwrap().len(), 1);

    let rkey = keys::load_or_create(
        &FileKeyStore::new(fx.tmp.path().join("r")),
        keys::REVIEWER_KEY,
    )
    .unwrap();
    let who = ReviewerIdentity {
        name: "R".into(),
        email: "r@example.com".into(),
    };
    review(&fx.repo, &range, &rkey, &who).unwrap();
    let out = check(&fx.repo, Some(&range), true, &CheckOptions::default()).unwrap();
    let env = vsa::vsa(
        &fx.repo,
        Some(&range),
        &out,
        &CheckOptions::default(),
        l.signing_key(),
    )
    .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    assert_eq!(st["predicate"]["verificationResult"], "PASSED");
    assert_eq!(st["predicate"]["verifiedLevels"][0], vsa::VERIFIED_PROPERTY);
    assert_eq!(
        st["predicate"]["inputAttestations"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "ai-commit and review"
    );
}
