//! What the engine's integration tests share: git in a temporary repository, and
//! workspace options that keep the index, ledger and keys inside the test's directory.

#![allow(dead_code)] // each test binary uses a part

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use cairn_engine::{FileKeyStore, IndexOptions, LedgerOptions, WorkspaceOptions};

/// Runs git in `repo` (the user's global config left out), asserting it succeeds.
pub fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// Makes `repo` a git repository whose first commit holds what is there.
pub fn init_and_commit(repo: &Path) {
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["config", "user.name", "Test"]);
    git(repo, &["config", "user.email", "t@example.com"]);
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "init"]);
}

/// Index, ledger and keys under `dir`; no watcher (the tests drive changes).
pub fn options_in(dir: &Path) -> WorkspaceOptions {
    WorkspaceOptions {
        index: IndexOptions {
            index_dir: Some(dir.join("index")),
            ..Default::default()
        },
        ledger: LedgerOptions::default()
            .with_dir(dir.join("ledger"))
            .with_key_store(Arc::new(FileKeyStore::new(dir.join("keys")))),
        watch: false,
        ..Default::default()
    }
}
