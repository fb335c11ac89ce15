#![allow(dead_code, clippy::new_without_default)]
//! Shared fixtures: temp repos driven by the `git` binary, file key stores, sample facts.

use cairn_provenance::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
    pub opts: LedgerOptions,
}

pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "user.name", "Dev One"]);
        git(&repo, &["config", "user.email", "dev@example.com"]);
        git(&repo, &["config", "commit.gpgsign", "false"]);
        let opts = LedgerOptions::default()
            .with_dir(tmp.path().join("ledger"))
            .with_key_store(Arc::new(FileKeyStore::new(tmp.path().join("keys"))))
            .with_witness_dir(tmp.path().join("witness"));
        Fixture { tmp, repo, opts }
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::open(&self.repo, self.opts.clone()).unwrap()
    }

    pub fn ledger_file(&self) -> PathBuf {
        self.opts.dir.clone().unwrap().join("ledger.jsonl")
    }

    pub fn witness_dir(&self) -> PathBuf {
        self.opts.witness_dir.clone().unwrap()
    }

    pub fn write(&self, path: &str, text: &str) {
        let p = self.repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn commit(&self, msg: &str) -> String {
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "-m", msg]);
        git(&self.repo, &["rev-parse", "HEAD"])
    }
}

pub fn generator(model: &str) -> Generator {
    Generator {
        tool_version: "0.1.0".into(),
        model_id: model.into(),
        origin: Origin::Local,
        gguf_sha256: Some("ab".repeat(32)),
        endpoint: None,
        remote_model: None,
        runtime: Some("llama.cpp cpu".into()),
        sampling: [("temperature".to_string(), serde_json::json!(0.2))].into(),
    }
}

pub fn input() -> InputFacts {
    InputFacts {
        mode: Mode::Fim,
        template_digest: "cd".repeat(32),
        prompt: "<fim_prefix>fn main() {<fim_suffix>}<fim_middle>".into(),
        store_prompt: false,
        context: vec![ContextSource {
            path: "src/util.rs".into(),
            start_line: 1,
            end_line: 9,
            content_digest: "ef".repeat(32),
            retriever: "bm25".into(),
            score: 7.25,
        }],
        redactions: Default::default(),
        budget: None,
    }
}

pub fn loc(path: &str, line: u32) -> Location {
    Location {
        base_commit: None,
        path: path.into(),
        range: Range::new(Position::new(line, 0), Position::new(line, 0)),
    }
}

/// Suggest `text` at `path:line` and accept it; returns the suggestion's record id.
pub fn suggest_accept(l: &Ledger, model: &str, path: &str, line: u32, text: &str) -> RecordId {
    let id = l
        .append(Event::Suggested {
            generator: generator(model),
            input: input(),
            output: text.into(),
            location: loc(path, line),
            references: Vec::new(),
            withheld: false,
        })
        .unwrap();
    l.append(Event::Accepted {
        record_id: id,
        partial: false,
        final_text: text.into(),
        location: loc(path, line),
    })
    .unwrap();
    id
}

/// Initial human commit, then an accepted two-line suggestion of which one line is
/// edited before committing, plus one human line.
pub fn scenario() -> (Fixture, Ledger, String) {
    let fx = Fixture::new();
    let l = fx.ledger();
    fx.write("src/main.rs", "fn main() {\n}\n");
    let c0 = fx.commit("initial");
    attest_with(&l, &c0, None).unwrap();

    let text = "    let total = compute(1, 2);\n    println!(\"{total}\");\n";
    let id = suggest_accept(&l, "qwen2.5-coder-1.5b", "src/main.rs", 1, text);
    let mut spans = SpanTracker::new();
    spans.track(
        id,
        "src/main.rs",
        Range::new(Position::new(1, 0), Position::new(1, 0)),
        text,
    );
    // The developer changes `2` to `3` (line 1, characters 27..28).
    spans.apply_change(
        "src/main.rs",
        &TextChange::Incremental {
            range: Range::new(Position::new(1, 27), Position::new(1, 28)),
            text: "3".into(),
        },
    );
    for ev in spans.take_edited_events("src/main.rs") {
        l.append(ev).unwrap();
    }
    fx.write(
        "src/main.rs",
        "fn main() {\n    let total = compute(1, 3);\n    println!(\"{total}\");\n    let human = 5;\n}\n",
    );
    let c1 = fx.commit("use compute");
    let out = attest_with(&l, &c1, None).unwrap();
    assert_eq!(
        (out.ai_lines, out.ai_modified_lines, out.human_lines),
        (1, 1, 1)
    );
    (fx, l, c1)
}

/// Pushes `fx.repo`'s main and notes to a new bare remote and clones it, notes fetched,
/// as a teammate would: the clone's path.
pub fn clone_through_bare_remote(fx: &Fixture, name: &str) -> std::path::PathBuf {
    let bare = fx.tmp.path().join("remote.git");
    git(
        fx.tmp.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(
        &fx.repo,
        &["remote", "add", "origin", bare.to_str().unwrap()],
    );
    git(
        &fx.repo,
        &["push", "-q", "origin", "main", "refs/notes/*:refs/notes/*"],
    );
    let clone = fx.tmp.path().join(name);
    git(
        fx.tmp.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    git(
        &clone,
        &["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"],
    );
    clone
}
