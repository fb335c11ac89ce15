//! End to end with real git repositories: accept → edit → commit → attest → blame,
//! report, review and the gate, amend and rebase, verify.
//!
//! Over 600 lines as one room: one git workflow per test over the shared helpers.

mod common;
use cairn_provenance::*;
use common::*;

fn blame_text(fx: &Fixture, file: &str) -> String {
    blame(&fx.repo, file, None)
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "L{:02} {:<11} {:<14} {}\n",
                b.line,
                b.class,
                b.model.as_deref().unwrap_or("-"),
                b.text
            )
        })
        .collect()
}

#[test]
fn accept_edit_commit_blame_and_report() {
    let (fx, l, _) = scenario();
    expect_test::expect![[r#"
        L01 human       -              fn main() {
        L02 ai-modified qwen2.5-coder-1.5b     let total = compute(1, 3);
        L03 ai          qwen2.5-coder-1.5b     println!("{total}");
        L04 human       -                  let human = 5;
        L05 human       -              }
    "#]]
    .assert_eq(&blame_text(&fx, "src/main.rs"));

    let csv = report(&fx.repo, None, ReportFormat::Csv, Some(l.path())).unwrap();
    let csv: String = csv
        .lines()
        .map(|line| {
            let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
            if f[0].len() == 40 {
                f[0] = "<commit>".into();
                f[2] = "<time>".into();
            }
            f.join(",") + "\n"
        })
        .collect();
    expect_test::expect![[r#"
        commit,author,time,path,models,ai,ai_modified,human,reviewed
        <commit>,dev@example.com,<time>,src/main.rs,,0,0,2,false
        <commit>,dev@example.com,<time>,src/main.rs,qwen2.5-coder-1.5b,1,1,1,false
    "#]]
    .assert_eq(&csv);

    let json = report(&fx.repo, None, ReportFormat::Json, Some(l.path())).unwrap();
    let summary: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    expect_test::expect![[r#"
        {
          "attestedCommits": 2,
          "byAuthor": {
            "dev@example.com": {
              "ai": 1,
              "aiModified": 1,
              "human": 3,
              "reviewedAi": 0,
              "unreviewedAi": 2
            }
          },
          "byModel": {
            "qwen2.5-coder-1.5b": {
              "acceptanceRate": 1.0,
              "accepted": 1,
              "ai": 1,
              "aiModified": 1,
              "human": 0,
              "reviewedAi": 0,
              "suggested": 1,
              "unreviewedAi": 2
            }
          },
          "commits": 2,
          "range": "HEAD",
          "referenceLinesByLicence": {},
          "totals": {
            "ai": 1,
            "aiModified": 1,
            "human": 3,
            "reviewedAi": 0,
            "unreviewedAi": 2
          },
          "type": "summary"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&summary).unwrap());

    // in-toto bundle: every line a verifiable envelope.
    let bundle = report(&fx.repo, None, ReportFormat::Intoto, None).unwrap();
    let mut kinds = vec![];
    for line in bundle.lines() {
        let env: Envelope = serde_json::from_str(line).unwrap();
        env.verify(&l.public_key()).unwrap();
        let st: Statement = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
        kinds.push(st.predicate_type.rsplit('/').nth(1).unwrap().to_string());
    }
    assert_eq!(kinds, ["ai-commit", "ai-commit", "event", "event", "event"]);

    let v = verify(&fx.repo, None, Some(l.path())).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
}

#[test]
fn check_fails_then_passes_after_review() {
    let (fx, _l, _) = scenario();
    let out = check(&fx.repo, None, true, &CheckOptions::default()).unwrap();
    assert!(!out.passed);
    let listed: Vec<String> = out
        .unreviewed
        .iter()
        .map(|r| {
            format!(
                "{}:{}-{} {} {}",
                r.path,
                r.start_line,
                r.end_line,
                r.class.as_str(),
                r.model
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            "src/main.rs:2-2 ai-modified qwen2.5-coder-1.5b",
            "src/main.rs:3-3 ai qwen2.5-coder-1.5b"
        ]
    );
    // The device key cannot sign off its own suggestions.
    let device = ed25519_dalek::SigningKey::from_bytes(
        &FileKeyStore::new(fx.tmp.path().join("keys"))
            .load(keys::DEVICE_KEY)
            .unwrap()
            .unwrap(),
    );
    let who = ReviewerIdentity {
        name: "Rev Iewer".into(),
        email: "rev@example.com".into(),
    };
    assert!(review(&fx.repo, "HEAD~1..HEAD", &device, &who).is_err());

    let reviewer_store = FileKeyStore::new(fx.tmp.path().join("reviewer-keys"));
    let rkey = keys::load_or_create(&reviewer_store, keys::REVIEWER_KEY).unwrap();
    let rv = review(&fx.repo, "HEAD~1..HEAD", &rkey, &who).unwrap();
    assert_eq!(rv.regions.len(), 2);
    let out = check(&fx.repo, None, true, &CheckOptions::default()).unwrap();
    assert!(out.passed, "{:?}", out.unreviewed);
    // A trust list that does not name the reviewer makes the review not count.
    let strict = CheckOptions {
        trusted_reviewers: vec!["00".repeat(32)],
        ..Default::default()
    };
    assert!(!check(&fx.repo, None, true, &strict).unwrap().passed);
    let ok = CheckOptions {
        trusted_reviewers: vec![keys::key_id(&rkey.verifying_key())],
        ..Default::default()
    };
    assert!(check(&fx.repo, None, true, &ok).unwrap().passed);
    // Reviews verify too.
    let v = verify(&fx.repo, None, None).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
}

#[test]
fn amend_and_rebase_keep_attribution() {
    let (fx, l, c1) = scenario();
    init_repo(&fx.repo, "/nonexistent/cairn").unwrap();
    // Hooks would call the cairn binary; here we call the library as they would.
    for h in ["post-commit", "post-rewrite", "prepare-commit-msg"] {
        std::fs::remove_file(fx.repo.join(".git/hooks").join(h)).unwrap();
    }
    assert_eq!(
        git(&fx.repo, &["config", "notes.rewriteRef"]),
        "refs/notes/cairn"
    );

    // Amend: add a human line; the note is copied to the new commit, then re-attested.
    fx.write(
        "src/main.rs",
        "fn main() {\n    let total = compute(1, 3);\n    println!(\"{total}\");\n    let human = 5;\n    let more = 6;\n}\n",
    );
    git(&fx.repo, &["commit", "-q", "-a", "--amend", "--no-edit"]);
    let c1b = git(&fx.repo, &["rev-parse", "HEAD"]);
    assert_ne!(c1, c1b);
    // Before re-attesting, the copied note is stale and verify says so.
    let v = verify(&fx.repo, None, Some(l.path())).unwrap();
    assert!(
        v.failures
            .iter()
            .any(|f| f.message.contains("copied by a rewrite")),
        "{:?}",
        v.failures
    );
    attest_rewritten(&fx.repo, &[(c1.clone(), c1b.clone())], &fx.opts).unwrap();
    let b = blame_text(&fx, "src/main.rs");
    assert!(
        b.contains("L02 ai-modified") && b.contains("L03 ai "),
        "{b}"
    );

    // Rebase onto a new upstream commit that touches another file.
    git(&fx.repo, &["checkout", "-q", "-b", "upstream", "HEAD~1"]);
    fx.write("README.md", "hello\n");
    fx.commit("docs");
    git(&fx.repo, &["checkout", "-q", "main"]);
    git(&fx.repo, &["rebase", "-q", "upstream"]);
    let c1c = git(&fx.repo, &["rev-parse", "HEAD"]);
    assert_ne!(c1b, c1c);
    attest_rewritten(&fx.repo, &[(c1b, c1c.clone())], &fx.opts).unwrap();
    let b = blame_text(&fx, "src/main.rs");
    expect_test::expect![[r#"
        L01 human       -              fn main() {
        L02 ai-modified qwen2.5-coder-1.5b     let total = compute(1, 3);
        L03 ai          qwen2.5-coder-1.5b     println!("{total}");
        L04 human       -                  let human = 5;
        L05 human       -                  let more = 6;
        L06 human       -              }
    "#]]
    .assert_eq(&b);
    let v = verify(&fx.repo, Some("upstream..main"), Some(l.path())).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
}

#[test]
fn attribution_survives_without_the_ledger_after_rebase() {
    // A teammate's clone: notes only. Rewrite with a fresh ledger on another device key.
    let (fx, _l, c1) = scenario();
    git(
        &fx.repo,
        &["config", "notes.rewriteRef", "refs/notes/cairn"],
    );
    git(&fx.repo, &["commit", "-q", "--amend", "-m", "reworded"]);
    let new = git(&fx.repo, &["rev-parse", "HEAD"]);
    let other = LedgerOptions::default()
        .with_dir(fx.tmp.path().join("ledger2"))
        .with_key_store(std::sync::Arc::new(FileKeyStore::new(
            fx.tmp.path().join("keys2"),
        )))
        .with_witness_dir(fx.tmp.path().join("witness2"));
    let out = attest_rewritten(&fx.repo, &[(c1, new)], &other).unwrap();
    assert_eq!(out[0].ai_lines + out[0].ai_modified_lines, 2);
}

#[test]
fn verify_catches_note_and_ledger_tampering() {
    let (fx, l, c1) = scenario();
    // Ledger record embedded in the note deleted from the ledger: checkpoint and membership fail.
    let lines: Vec<String> = std::fs::read_to_string(l.path())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut fewer = lines.clone();
    fewer.remove(3);
    std::fs::write(l.path(), fewer.join("\n") + "\n").unwrap();
    let v = verify(&fx.repo, None, Some(l.path())).unwrap();
    let all: String = v.failures.iter().map(|f| f.to_string() + "\n").collect();
    assert!(all.contains("seq is"), "{all}");
    assert!(all.contains("checkpoint root"), "{all}");
    std::fs::write(l.path(), lines.join("\n") + "\n").unwrap();

    // A note edited to claim an extra line as AI: its signature no longer verifies.
    let note = git(
        &fx.repo,
        &["notes", "--ref", "refs/notes/cairn", "show", &c1],
    );
    let env: Envelope = serde_json::from_str(note.lines().next().unwrap()).unwrap();
    let payload = String::from_utf8(env.payload_bytes().unwrap()).unwrap();
    let forged_payload = payload.replace("\"aiLines\":1", "\"aiLines\":9");
    assert_ne!(payload, forged_payload);
    use base64::Engine;
    let mut forged = env.clone();
    forged.payload = base64::engine::general_purpose::STANDARD.encode(forged_payload);
    set_note(&fx, &c1, &[String::from_utf8(forged.to_line()).unwrap()]);
    let v = verify(&fx.repo, None, Some(l.path())).unwrap();
    let all: String = v.failures.iter().map(|f| f.to_string() + "\n").collect();
    assert!(
        all.contains("ai-commit statement") && all.contains("does not verify"),
        "{all}"
    );
}

#[test]
fn sarif_and_html_reports() {
    let (fx, l, _) = scenario();
    let sarif: serde_json::Value =
        serde_json::from_str(&report(&fx.repo, None, ReportFormat::Sarif, None).unwrap()).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    let fp = results[0]["partialFingerprints"]["cairnRegion/v1"]
        .as_str()
        .unwrap()
        .to_string();
    // Fingerprints are stable across a rebase (they hash content, not line numbers).
    let html = report(&fx.repo, None, ReportFormat::Html, Some(l.path())).unwrap();
    assert!(html.contains("<svg id=\"chart-lines-by-origin\""));
    assert!(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"));
    if let Ok(dir) = std::env::var("CAIRN_REPORT_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/report.html"), &html).unwrap();
        std::fs::write(
            format!("{dir}/report.sarif"),
            serde_json::to_string_pretty(&sarif).unwrap(),
        )
        .unwrap();
    }
    assert_eq!(fp.len(), 64);
}

#[test]
fn assisted_by_trailer_and_never_signed_off_by() {
    let (fx, l, _) = scenario();
    fx.write("src/extra.rs", "");
    let text = "pub fn helper() -> u32 {\n    41 + 1\n}\n";
    suggest_accept(&l, "smollm2", "src/extra.rs", 0, text);
    fx.write("src/extra.rs", text);
    git(&fx.repo, &["add", "-A"]);
    let models = staged_ai_models(&fx.repo, &fx.opts).unwrap();
    assert_eq!(models, ["smollm2"]);
    let msg = fx.tmp.path().join("MSG");
    std::fs::write(&msg, "add helper\n").unwrap();
    assert!(add_assisted_by(&msg, &models).unwrap());
    assert!(!add_assisted_by(&msg, &models).unwrap());
    let m = std::fs::read_to_string(&msg).unwrap();
    assert_eq!(m, "add helper\n\nAssisted-by: cairn:smollm2\n");
    assert!(!m.contains("Signed-off-by"));
}

/// A teammate's or CI's clone: it fetched the commits and `refs/notes/cairn`, and has
/// no ledger. Blame, reports, the gate, review and verify all work from the notes.
#[test]
fn clone_with_only_the_notes_has_everything() {
    let (fx, _l, c1) = scenario();
    let clone = fx.tmp.path().join("clone");
    let status = std::process::Command::new("git")
        .args(["clone", "-q"])
        .arg(&fx.repo)
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success());
    git(
        &clone,
        &["fetch", "-q", "origin", "refs/notes/cairn:refs/notes/cairn"],
    );
    let classes: Vec<String> = blame(&clone, "src/main.rs", None)
        .unwrap()
        .iter()
        .map(|b| b.class.clone())
        .collect();
    assert_eq!(classes, ["human", "ai-modified", "ai", "human", "human"]);
    let json = report(&clone, None, ReportFormat::Json, None).unwrap();
    let summary: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(summary["totals"]["ai"], 1);
    assert_eq!(summary["totals"]["aiModified"], 1);
    // The bundle carries the records the attribution rests on.
    let bundle = report(&clone, None, ReportFormat::Intoto, None).unwrap();
    assert_eq!(bundle.lines().count(), 2 + 3);

    let v = verify(&clone, None, None).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
    assert!(
        v.checked.iter().any(|c| c.contains("3 embedded records")),
        "{:?}",
        v.checked
    );
    assert!(
        !check(&clone, None, true, &CheckOptions::default())
            .unwrap()
            .passed
    );
    let rkey = keys::load_or_create(
        &FileKeyStore::new(fx.tmp.path().join("reviewer-keys")),
        keys::REVIEWER_KEY,
    )
    .unwrap();
    let who = ReviewerIdentity {
        name: "Rev Iewer".into(),
        email: "rev@example.com".into(),
    };
    review(&clone, &format!("{c1}~1..{c1}"), &rkey, &who).unwrap();
    assert!(
        check(&clone, None, true, &CheckOptions::default())
            .unwrap()
            .passed
    );
    // The review kept the records in the note: it still verifies in full.
    let v = verify(&clone, None, None).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
    assert!(
        v.checked
            .iter()
            .any(|c| c.contains("3 embedded records, 1 reviews")),
        "{:?}",
        v.checked
    );
}

fn note_lines(fx: &Fixture, commit: &str) -> Vec<String> {
    git(
        &fx.repo,
        &["notes", "--ref", "refs/notes/cairn", "show", commit],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn set_note(fx: &Fixture, commit: &str, lines: &[String]) {
    git(
        &fx.repo,
        &[
            "notes",
            "--ref",
            "refs/notes/cairn",
            "add",
            "-f",
            "-m",
            &lines.join("\n"),
            commit,
        ],
    );
}

fn failures(fx: &Fixture) -> String {
    let v = verify(&fx.repo, None, None).unwrap();
    v.failures.iter().map(|f| f.to_string() + "\n").collect()
}

/// The statement binds its records by digest: a record removed from the note, one
/// added, or one altered is caught, while reports read the note without decoding them.
#[test]
fn records_in_the_note_are_bound_by_the_statement() {
    let (fx, l, c1) = scenario();
    let lines = note_lines(&fx, &c1);
    // ai-commit v2, then the suggested, accepted and edited records of the suggestion.
    assert_eq!(lines.len(), 4);
    let env: Envelope = serde_json::from_str(&lines[0]).unwrap();
    let st: Statement = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    assert_eq!(
        st.predicate_type,
        "https://cairn.dev/provenance/ai-commit/v2"
    );
    let bound: Vec<String> = st.predicate["recordDigests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let ledger = std::fs::read_to_string(l.path()).unwrap();
    for (line, digest) in lines[1..].iter().zip(&bound) {
        assert_eq!(&digest::sha256_hex(line.as_bytes()), digest);
        assert!(
            ledger.lines().any(|l| l == line),
            "record line is a ledger line"
        );
    }
    assert!(failures(&fx).is_empty());

    // A record removed from the note.
    set_note(&fx, &c1, &[&lines[..2], &lines[3..]].concat());
    let f = failures(&fx);
    assert!(f.contains("is missing from the note"), "{f}");

    // A record added that the statement does not bind (here: another ledger line).
    let extra = ledger.lines().nth(1).unwrap().to_string();
    set_note(&fx, &c1, &[lines.clone(), vec![extra]].concat());
    let f = failures(&fx);
    assert!(f.contains("does not bind"), "{f}");

    // A record altered in the note: no longer bound, and the bound one is missing.
    let mut altered = lines.clone();
    let mut e: Envelope = serde_json::from_str(&altered[2]).unwrap();
    let sig = &e.signatures[0].sig;
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    e.signatures[0].sig = format!("{flipped}{}", &sig[1..]);
    altered[2] = String::from_utf8(e.to_line()).unwrap();
    assert_ne!(altered[2], lines[2]);
    set_note(&fx, &c1, &altered);
    let f = failures(&fx);
    assert!(
        f.contains("does not bind") && f.contains("is missing from the note"),
        "{f}"
    );

    // Lines in another order (as a notes merge may leave them) still read and verify.
    let mut shuffled = lines.clone();
    shuffled.reverse();
    set_note(&fx, &c1, &shuffled);
    assert_eq!(failures(&fx), "");
    assert_eq!(
        check(&fx.repo, None, false, &CheckOptions::default())
            .unwrap()
            .ai_regions,
        2
    );
}

/// Notes written in the v1 form (records inside the ai-commit payload) are still read.
#[test]
fn v1_notes_are_still_read() {
    let (fx, _l, c1) = scenario();
    let lines = note_lines(&fx, &c1);
    let env: Envelope = serde_json::from_str(&lines[0]).unwrap();
    let mut st: Statement = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    let records: Vec<serde_json::Value> = lines[1..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let p = st.predicate.as_object_mut().unwrap();
    p.remove("recordDigests");
    p.insert("records".into(), records.into());
    st.predicate_type = "https://cairn.dev/provenance/ai-commit/v1".into();
    let key = ed25519_dalek::SigningKey::from_bytes(
        &FileKeyStore::new(fx.tmp.path().join("keys"))
            .load(keys::DEVICE_KEY)
            .unwrap()
            .unwrap(),
    );
    let v1 = Envelope::sign(&jcs::to_vec(&st).unwrap(), &key);
    set_note(&fx, &c1, &[String::from_utf8(v1.to_line()).unwrap()]);

    let b = blame_text(&fx, "src/main.rs");
    assert!(
        b.contains("L02 ai-modified") && b.contains("L03 ai "),
        "{b}"
    );
    let v = verify(&fx.repo, None, None).unwrap();
    assert!(v.ok(), "{:?}", v.failures);
    assert!(
        v.checked.iter().any(|c| c.contains("3 embedded records")),
        "{:?}",
        v.checked
    );
    // A review keeps the v1 note as it was, with the review after it.
    let rkey = keys::load_or_create(
        &FileKeyStore::new(fx.tmp.path().join("reviewer-keys")),
        keys::REVIEWER_KEY,
    )
    .unwrap();
    let who = ReviewerIdentity {
        name: "Rev Iewer".into(),
        email: "rev@example.com".into(),
    };
    review(&fx.repo, "HEAD~1..HEAD", &rkey, &who).unwrap();
    let after = note_lines(&fx, &c1);
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], String::from_utf8(v1.to_line()).unwrap());
    assert!(
        check(&fx.repo, None, true, &CheckOptions::default())
            .unwrap()
            .passed
    );
    assert!(verify(&fx.repo, None, None).unwrap().ok());
}

/// A suggestion whose record names third-party code under a licence: accepted,
/// committed, attested; `check` with that licence denied fails and names the package,
/// with another licence denied it passes.
#[test]
fn deny_licence_fails_a_range_whose_ai_lines_reproduce_denied_code() {
    let fx = Fixture::new();
    let l = fx.ledger();
    fx.write("src/lib.rs", "// lib\n");
    let c0 = fx.commit("initial");
    attest_with(&l, &c0, None).unwrap();
    let text = "pub fn copied() -> u32 {\n    41 + 1\n}\n";
    let id = l
        .append(Event::Suggested {
            generator: generator("m"),
            input: input(),
            output: text.into(),
            location: loc("src/lib.rs", 1),
            references: vec![cairn_provenance::ReferenceFact {
                package: "gplthing".into(),
                version: "1.0.0".into(),
                licence: "GPL-3.0-only".into(),
                path: "/registry/gplthing-1.0.0/src/lib.rs".into(),
                lines: [10, 12],
                matched_chars: 160,
            }],
            withheld: false,
        })
        .unwrap();
    l.append(Event::Accepted {
        record_id: id,
        partial: false,
        final_text: text.into(),
        location: loc("src/lib.rs", 1),
    })
    .unwrap();
    fx.write("src/lib.rs", &format!("// lib\n{text}"));
    let c1 = fx.commit("copied");
    attest_with(&l, &c1, None).unwrap();

    let deny = |ids: &[&str]| CheckOptions {
        deny_licences: ids.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let out = check(&fx.repo, None, false, &deny(&["GPL-3.0-only"])).unwrap();
    assert!(!out.passed);
    assert_eq!(out.denied.len(), 1, "{out:?}");
    let d = &out.denied[0];
    assert_eq!(
        (d.package.as_str(), d.licence.as_str()),
        ("gplthing", "GPL-3.0-only")
    );
    assert_eq!(d.region.path, "src/lib.rs");
    assert!(
        check(&fx.repo, None, false, &deny(&["AGPL-3.0-only"]))
            .unwrap()
            .passed
    );
    assert!(
        check(&fx.repo, None, false, &CheckOptions::default())
            .unwrap()
            .passed
    );

    // The report lists the reference per commit and counts its lines per licence.
    let d = report_data(&fx.repo, None, None).unwrap();
    assert_eq!(d.references.len(), 1);
    let r = &d.references[0];
    assert_eq!(
        (r.package.as_str(), r.licence.as_str(), r.path.as_str()),
        ("gplthing", "GPL-3.0-only", "src/lib.rs")
    );
    assert_eq!(r.commit, c1);
    assert_eq!(d.reference_lines_by_licence.get("GPL-3.0-only"), Some(&3));
    let jsonl = report(&fx.repo, None, ReportFormat::Json, None).unwrap();
    assert!(
        jsonl
            .lines()
            .any(|l| l.contains("\"type\":\"reference\"") && l.contains("gplthing")),
        "{jsonl}"
    );
}
