//! The isolated copy: the repository cloned into a temporary directory with the body
//! deleted, and keys, data (index, ledger) and config there too; models from the user's
//! cache. The server gets this environment, and so does this process, for the in-process
//! workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::session::Session;
use crate::{fail, git, Args};

pub(crate) struct Sandbox {
    tmp: tempfile::TempDir,
    /// The temporary directory.
    pub(crate) path: PathBuf,
    /// The copy of the repository (canonical).
    pub(crate) repo: PathBuf,
    /// The chosen file in the copy, its body deleted.
    pub(crate) file: PathBuf,
    /// The source repository's `HEAD`, when it is a git checkout.
    pub(crate) commit: Option<String>,
    /// The server's environment (this process has it too).
    pub(crate) env: Vec<(&'static str, String)>,
}

impl Sandbox {
    pub(crate) fn prepare(a: &Args, repo_src: &Path, session: &Session) -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix("cairn-bench-lsp-")
            .tempdir()
            .expect("temporary directory");
        let tmp_path = tmp.path().to_path_buf();
        let repo = tmp_path.join("repo");
        let commit = copy_repo(repo_src, &repo, &a.file);
        let file = repo.join(&a.file);
        std::fs::write(&file, &session.start_text).expect("write the truncated file");
        let repo = std::fs::canonicalize(&repo).expect("repository copy");
        let file = repo.join(&a.file);
        std::fs::create_dir_all(tmp_path.join("keys")).expect("key dir");
        std::fs::write(tmp_path.join("config.toml"), "").expect("config file");
        let env: Vec<(&str, String)> = vec![
            (
                "CAIRN_KEY_STORE",
                format!("file:{}", tmp_path.join("keys").display()),
            ),
            (
                "XDG_DATA_HOME",
                tmp_path.join("data").to_string_lossy().into(),
            ),
            (
                "CAIRN_CONFIG",
                tmp_path.join("config.toml").to_string_lossy().into(),
            ),
            ("CAIRN_LOG", a.log.clone().unwrap_or_else(|| "warn".into())),
        ];
        // The in-process workspace must see the same state as the server.
        for k in [
            "CAIRN_DATA_DIR",
            "CAIRN_INDEX_DIR",
            "CAIRN_LEDGER_DIR",
            "CAIRN_REPO",
        ] {
            std::env::remove_var(k);
        }
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        Sandbox {
            tmp,
            path: tmp_path,
            repo,
            file,
            commit,
            env,
        }
    }

    /// What is typed where, on stderr.
    pub(crate) fn announce(&self, a: &Args, session: &Session) {
        eprintln!(
            "bench_lsp: {}::{} (line {}), {} of {} body characters typed; copy in {}",
            a.file,
            session.function,
            session.line,
            session.typed.len(),
            session.body_chars,
            self.path.display()
        );
    }

    /// Leaves the temporary directory in place (`--keep`) and says where it is.
    pub(crate) fn keep(self) {
        let kept = self.tmp.keep();
        eprintln!(
            "bench_lsp: kept {} (server log: {})",
            kept.display(),
            kept.join("server.log").display()
        );
    }
}

/// Copies the repository: a shared clone of a git checkout (the chosen file taken from
/// the working tree, so uncommitted edits count), otherwise a plain copy.
fn copy_repo(src: &Path, dst: &Path, file: &str) -> Option<String> {
    let commit = git(src, &["rev-parse", "HEAD"]);
    let copied = if commit.is_some() {
        Command::new("git")
            .args(["clone", "-q", "--shared", "--no-tags"])
            .arg(src)
            .arg(dst)
            .status()
            .is_ok_and(|s| s.success())
    } else {
        Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(dst)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !copied {
        fail(format!(
            "cannot copy {} to {}",
            src.display(),
            dst.display()
        ));
    }
    let target = dst.join(file);
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
    }
    std::fs::copy(src.join(file), &target)
        .unwrap_or_else(|e| fail(format!("cannot copy {file}: {e}")));
    commit
}
