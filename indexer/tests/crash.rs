//! kill -9 in the middle of indexing, then reopen: the index opens without a
//! rebuild, keeps what was committed, and the next pass finishes the job.
//!
//! The test re-runs its own binary as the child (the `crash_child` test,
//! ignored unless asked for), which indexes and reports progress on stdout.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use cairn_indexer::{Index, IndexOptions, SearchQuery};

const FILES: usize = 1500;

fn options(idx: &Path) -> IndexOptions {
    IndexOptions {
        index_dir: Some(idx.to_path_buf()),
        parse_threads: 2,
        writer_memory: 32_000_000,
        // Commit often so the kill lands between and during commits.
        commit_every_bytes: 64 * 1024,
        ..Default::default()
    }
}

#[test]
#[ignore = "run by kill_9_during_indexing_then_reopen as its child process"]
fn crash_child() {
    let (Ok(repo), Ok(idx)) = (
        std::env::var("CAIRN_CRASH_REPO"),
        std::env::var("CAIRN_CRASH_IDX"),
    ) else {
        return;
    };
    let index = Index::open(Path::new(&repo), options(Path::new(&idx))).unwrap();
    let never = AtomicBool::new(false);
    index
        .update_all(
            &|p| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "done {}", p.files_done);
                let _ = out.flush();
            },
            &never,
        )
        .unwrap();
    println!("finished");
}

#[test]
fn kill_9_during_indexing_then_reopen() {
    let repo = tempfile::tempdir().unwrap();
    let idx = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let mut body = String::new();
        for j in 0..20 {
            body.push_str(&format!(
                "pub fn handler_{i}_{j}(input: &str) -> usize {{\n    input.len() + {j}\n}}\n\n"
            ));
        }
        std::fs::write(repo.path().join(format!("m{i}.rs")), body).unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CAIRN_CRASH_REPO", repo.path())
        .env("CAIRN_CRASH_IDX", idx.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut killed_at = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("done ") {
            let n: usize = n.trim().parse().unwrap_or(0);
            if n >= FILES / 3 {
                child.kill().unwrap(); // SIGKILL on Unix
                killed_at = Some(n);
                break;
            }
        }
        assert_ne!(
            line, "finished",
            "the child finished before it could be killed"
        );
    }
    let _ = child.wait();
    assert!(killed_at.is_some(), "child never reported progress");

    let index = Index::open(repo.path(), options(idx.path())).unwrap();
    assert!(index.notice().is_none(), "{:?}", index.notice());
    assert!(
        index.is_writable(),
        "the dead child's writer lock is released"
    );
    let committed = index.stats().unwrap().files;
    assert!(committed > 0, "commits before the kill survive");
    assert!(committed < FILES as u64);

    let never = AtomicBool::new(false);
    let run = index.update_all(&|_| {}, &never).unwrap().run.unwrap();
    assert_eq!(run.unchanged, committed, "committed files are not redone");
    assert_eq!(index.stats().unwrap().files, FILES as u64);
    let hits = index.search(&SearchQuery::new("handler_1499_19")).unwrap();
    assert_eq!(hits[0].path, "m1499.rs");
}
