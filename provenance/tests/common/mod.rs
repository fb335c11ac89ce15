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
            .with_key_store(Arc::new(FileKeyStore::new(tmp.path().join("keys"))));
        Fixture { tmp, repo, opts }
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::open(&self.repo, self.opts.clone()).unwrap()
    }

    pub fn ledger_file(&self) -> PathBuf {
        self.opts.dir.clone().unwrap().join("ledger.jsonl")
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
