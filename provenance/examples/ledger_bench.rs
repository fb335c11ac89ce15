//! Ledger benchmark: appends/s with fsync (sequential, concurrent group commit, batched),
//! verify throughput, and report time over 1,000 commits / 100,000 records.
//! Run: `cargo run --release -p cairn-provenance --example ledger_bench -- [--records N] [--commits N]`
//! (bench/ledger/run.sh wraps it). Prints a Markdown table. `--keep` stops after writing the
//! 1,000-commit repository and leaves it (and its ledger) on disk for profiling reports.

use cairn_provenance::notes::{AiCommit, Checkpoint, FileAttribution, KeyInfo, Note, Region};
use cairn_provenance::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn suggested(i: usize) -> Event {
    Event::Suggested {
        generator: Generator {
            tool_version: "0.1.0".into(),
            model_id: format!("model-{}", i % 3),
            origin: Origin::Local,
            gguf_sha256: Some("ab".repeat(32)),
            endpoint: None,
            remote_model: None,
            runtime: Some("llama.cpp".into()),
            sampling: Default::default(),
        },
        input: InputFacts {
            mode: Mode::Fim,
            template_digest: "cd".repeat(32),
            prompt: format!("prompt {i}"),
            store_prompt: false,
            context: vec![],
            redactions: Default::default(),
            budget: None,
        },
        output: format!("let v{i} = {i};\n"),
        location: Location {
            base_commit: None,
            path: format!("src/f{}.rs", i / 100),
            range: Range::new(Position::new(0, 0), Position::new(0, 0)),
        },
        references: Vec::new(),
        withheld: false,
    }
}

fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn main() {
    let records = arg("--records", 100_000);
    let commits = arg("--commits", 1_000);
    let seq_n = arg("--appends", 2_000);
    let tmp = tempfile::Builder::new()
        .prefix("cairn-ledger-bench")
        .tempdir_in(
            std::env::var("BENCH_DIR")
                .unwrap_or_else(|_| std::env::temp_dir().to_string_lossy().into()),
        )
        .unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let store: Arc<dyn KeyStore> = Arc::new(FileKeyStore::new(tmp.path().join("keys")));
    let open = |dir: &str| {
        Ledger::open(
            &repo,
            LedgerOptions::default()
                .with_dir(tmp.path().join(dir))
                .with_key_store(store.clone()),
        )
        .unwrap()
    };
    let mut rows: Vec<(String, String, String)> = vec![];

    // 1. Sequential appends, one fsync each.
    let l = open("seq");
    let t = Instant::now();
    for i in 0..seq_n {
        l.append(suggested(i)).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    rows.push((
        "append, 1 writer, fsync per record".into(),
        format!("{:.0} records/s", seq_n as f64 / s),
        format!("{seq_n} records in {s:.2} s"),
    ));

    // 2. Concurrent appends from 16 threads: group commit shares fsyncs.
    let l = open("group");
    let threads = 16;
    let per = seq_n * 2 / threads;
    let t = Instant::now();
    std::thread::scope(|sc| {
        for th in 0..threads {
            let l = l.clone();
            sc.spawn(move || {
                for i in 0..per {
                    l.append(suggested(th * per + i)).unwrap();
                }
            });
        }
    });
    let s = t.elapsed().as_secs_f64();
    let n = per * threads;
    rows.push((
        "append, 16 threads, group commit (each call returns after fsync)".into(),
        format!("{:.0} records/s", n as f64 / s),
        format!("{n} records in {s:.2} s"),
    ));

    // 3. Batched appends (append_batch of 100, one fsync per batch) to build the big ledger.
    let l = open("big");
    let t = Instant::now();
    let mut ids = Vec::with_capacity(records);
    let mut i = 0;
    while i < records {
        let n = 100.min(records - i);
        ids.extend(l.append_batch((i..i + n).map(suggested).collect()).unwrap());
        i += n;
    }
    let s = t.elapsed().as_secs_f64();
    rows.push((
        "append_batch(100), fsync per batch".into(),
        format!("{:.0} records/s", records as f64 / s),
        format!("{records} records in {s:.2} s"),
    ));

    // 4. Verify the big ledger.
    let t = Instant::now();
    let check = verify_ledger_file(l.path(), None).unwrap();
    let s = t.elapsed().as_secs_f64();
    assert!(check.failures.is_empty(), "{:?}", &check.failures[..1]);
    rows.push((
        "verify (signatures + chain + canonical form)".into(),
        format!("{:.0} records/s", check.records as f64 / s),
        format!("{} records in {s:.2} s", check.records),
    ));

    // 5. Report over `commits` commits whose notes embed `records` records.
    let entries = l.entries().unwrap();
    let per_commit = records / commits;
    let vk = l.public_key();
    let mut stream = Vec::new();
    for c in 0..commits {
        let body: String = (0..per_commit)
            .map(|k| format!("let v{} = {};\n", c * per_commit + k, k))
            .collect();
        write!(
            stream,
            "commit refs/heads/main\nmark :{}\ncommitter B <b@x> {} +0000\ndata 3\nc{}\n",
            c + 1,
            1_700_000_000 + c,
            c % 10
        )
        .unwrap();
        if c > 0 {
            writeln!(stream, "from :{c}").unwrap();
        }
        write!(
            stream,
            "M 100644 inline src/f{c}.rs\ndata {}\n{body}\n",
            body.len()
        )
        .unwrap();
    }
    write!(
        stream,
        "commit refs/notes/cairn\ncommitter B <b@x> 1700000000 +0000\ndata 5\nnotes\n"
    )
    .unwrap();
    let (tree_size, root_hash) = l.checkpoint().unwrap();
    for c in 0..commits {
        let lines: Vec<String> = entries[1 + c * per_commit..1 + (c + 1) * per_commit]
            .iter()
            .map(|e| String::from_utf8(e.line.clone()).unwrap())
            .collect();
        let regions: Vec<Region> = (0..per_commit)
            .map(|k| Region {
                start_line: k as u32 + 1,
                end_line: k as u32 + 1,
                class: LineClass::Ai,
                record_id: ids[c * per_commit + k].to_string(),
                model: format!("model-{}", k % 3),
                line_hashes: vec![digest::line_hash(&format!(
                    "let v{} = {};",
                    c * per_commit + k,
                    k
                ))],
                tool: None,
                unsigned: false,
            })
            .collect();
        let ac = AiCommit {
            commit: "0".repeat(40),
            patch_id: String::new(),
            time: "2026-01-01T00:00:00Z".into(),
            signer: KeyInfo {
                keyid: keys::key_id(&vk),
                public_key: keys::public_key_b64(&vk),
            },
            checkpoint: Some(Checkpoint {
                ledger_id: l.ledger_id().into(),
                tree_size,
                root_hash: root_hash.clone(),
            }),
            rewritten_from: None,
            files: vec![FileAttribution {
                path: format!("src/f{c}.rs"),
                blob: None,
                added_lines: per_commit as u32,
                ai_lines: per_commit as u32,
                ai_modified_lines: 0,
                human_lines: 0,
                regions,
            }],
            record_digests: lines
                .iter()
                .map(|l| digest::sha256_hex(l.as_bytes()))
                .collect(),
            record_signers: vec![],
            recovered_from: vec![],
        };
        let st = Statement::new(
            vec![Subject::new("git+commit:x", "gitCommit", "0".repeat(40))],
            PREDICATE_AI_COMMIT,
            serde_json::to_value(&ac).unwrap(),
        );
        let env = Envelope::sign(&jcs::to_vec(&st).unwrap(), l.signing_key());
        let note = Note {
            ai_commit: Some((env, st, ac)),
            records: lines,
            reviews: vec![],
            concatenated: vec![],
            errors: vec![],
            imported: None,
        }
        .to_text();
        write!(stream, "N inline :{}\ndata {}\n{note}\n", c + 1, note.len()).unwrap();
    }
    let t = Instant::now();
    let mut fi = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    fi.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(fi.wait().unwrap().success());
    git(&repo, &["reset", "-q", "--hard", "main"]);
    eprintln!(
        "setup: fast-import of {commits} commits + notes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    if std::env::args().any(|a| a == "--keep") {
        eprintln!(
            "kept: repo {} ledger {}",
            repo.display(),
            l.path().display()
        );
        let _ = tmp.keep();
        return;
    }
    for (fmt, name) in [
        (ReportFormat::Json, "json"),
        (ReportFormat::Html, "html"),
        (ReportFormat::Sarif, "sarif"),
    ] {
        let t = Instant::now();
        let out = report(&repo, Some("main"), fmt, Some(l.path())).unwrap();
        let s = t.elapsed().as_secs_f64();
        rows.push((
            format!("report --format {name}, {commits} commits / {records} records"),
            format!("{s:.2} s"),
            format!("{} KiB output", out.len() / 1024),
        ));
    }

    println!("| measurement | result | detail |\n|---|---|---|");
    for (a, b, c) in rows {
        println!("| {a} | {b} | {c} |");
    }
}
