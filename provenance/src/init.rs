//! `cairn init`: git configuration and hooks for a repository.

use crate::error::{IoContext, Result};
use crate::git::{self, NOTES_REF};
use std::path::{Path, PathBuf};

const MARK: &str = "# installed by cairn init";

/// What `init` did.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    pub hooks: Vec<PathBuf>,
    /// Hooks left alone because a non-Cairn hook was already there.
    pub skipped: Vec<PathBuf>,
}

/// Install the `post-commit`, `post-rewrite` and `prepare-commit-msg` hooks (running
/// `cairn_bin`) and make notes follow amend and rebase (`notes.rewriteRef`).
pub fn init_repo(repo: &Path, cairn_bin: &str) -> Result<InitOutcome> {
    let root = git::repo_root(repo)?;
    git::git(&root, &["config", "notes.rewriteRef", NOTES_REF])?;
    git::git(&root, &["config", "notes.rewriteMode", "overwrite"])?;
    git::git(&root, &["config", "notes.rewrite.amend", "true"])?;
    git::git(&root, &["config", "notes.rewrite.rebase", "true"])?;
    let hooks_dir = PathBuf::from(git::git(&root, &["rev-parse", "--git-path", "hooks"])?.trim());
    let hooks_dir = if hooks_dir.is_absolute() {
        hooks_dir
    } else {
        root.join(hooks_dir)
    };
    std::fs::create_dir_all(&hooks_dir).at(&hooks_dir)?;
    let bin = shell_quote(cairn_bin);
    let scripts = [
        (
            "post-commit",
            format!("#!/bin/sh\n{MARK}\n# Attribute the new commit's AI-assisted lines (git notes {NOTES_REF}).\n{bin} attest HEAD --quiet || echo 'cairn: attest failed; run `cairn attest HEAD`' >&2\n"),
        ),
        (
            "post-rewrite",
            format!("#!/bin/sh\n{MARK}\n# Re-attest commits rewritten by amend/rebase (stdin: old new pairs).\n{bin} attest --rewritten --quiet || echo 'cairn: re-attest after rewrite failed' >&2\n"),
        ),
        (
            "prepare-commit-msg",
            format!("#!/bin/sh\n{MARK}\n# Add an Assisted-by trailer when staged lines came from Cairn suggestions.\n# Cairn never adds Signed-off-by.\ncase \"$2\" in merge|squash) exit 0;; esac\n{bin} attest --trailer-for \"$1\" || true\n"),
        ),
    ];
    let mut out = InitOutcome {
        hooks: vec![],
        skipped: vec![],
    };
    for (name, body) in scripts {
        let p = hooks_dir.join(name);
        if let Ok(existing) = std::fs::read_to_string(&p) {
            if !existing.contains(MARK) {
                out.skipped.push(p);
                continue;
            }
        }
        std::fs::write(&p, body).at(&p)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).at(&p)?;
        }
        out.hooks.push(p);
    }
    Ok(out)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Add `Assisted-by: cairn:<model>` trailers to a commit message file (idempotent).
pub fn add_assisted_by(msg_file: &Path, models: &[String]) -> Result<bool> {
    if models.is_empty() {
        return Ok(false);
    }
    let mut text = std::fs::read_to_string(msg_file).at(msg_file)?;
    let mut changed = false;
    for m in models {
        let trailer = format!("Assisted-by: cairn:{m}");
        if !text.contains(&trailer) {
            let out = std::process::Command::new("git")
                .args([
                    "interpret-trailers",
                    "--in-place",
                    "--if-exists",
                    "addIfDifferent",
                    "--trailer",
                    &trailer,
                ])
                .arg(msg_file)
                .status()
                .at(msg_file)?;
            if !out.success() {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("\n{trailer}\n"));
                std::fs::write(msg_file, &text).at(msg_file)?;
            }
            text = std::fs::read_to_string(msg_file).at(msg_file)?;
            changed = true;
        }
    }
    Ok(changed)
}
