//! A commit's diff as attribution reads it: the lines it adds (zero context, as `git
//! blame` diffs), each changed path's blob and its patch id; and the staged lines the
//! trailer hook looks at.

use super::{git_bytes, unquote, CatFile};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A path and the lines added to it: (1-based new line number, text).
pub type AddedLines = (String, Vec<(u32, String)>);

/// What attribution needs from a commit's diff.
#[derive(Debug, Clone, Default)]
pub struct CommitDiff {
    /// Lines the commit adds, per path (new-side numbers, 1-based): against its parent,
    /// or for a merge, the lines in none of its parents (a conflict's resolution; lines
    /// taken from either side keep the attribution of the commits that wrote them).
    pub added: Vec<AddedLines>,
    /// Each changed path's blob in the commit.
    pub blobs: HashMap<String, String>,
    /// `git patch-id --stable` of the commit (empty for a merge or a commit without
    /// changes, as git gives).
    pub patch_id: String,
}

/// [`CommitDiff`] of a commit whose parent count is known. A merge: its lines from the
/// combined diff, its blobs through `cat`, no patch id (`diff-tree -p` shows nothing
/// for a merge). Any other commit: lines and blobs from one `diff-tree -U0 --raw`,
/// while `diff-tree -p | patch-id` runs beside it.
pub fn commit_diff(
    repo: &Path,
    commit: &str,
    parents: usize,
    cat: &mut CatFile,
) -> Result<CommitDiff> {
    if parents > 1 {
        let added = merge_added_lines(repo, commit, parents)?;
        let mut blobs = HashMap::new();
        for (path, _) in &added {
            if path.contains('\n') {
                continue;
            }
            if let Some(o) = cat.get(&format!("{commit}:{path}"))? {
                blobs.insert(path.clone(), o.id);
            }
        }
        return Ok(CommitDiff {
            added,
            blobs,
            patch_id: String::new(),
        });
    }
    let patch_id = PatchId::start(repo, commit)?;
    // Zero context, as `git blame` diffs: with context git may place a change
    // differently (which `}` moved), and the lines a note names must be blame's.
    let out = match git_bytes(
        repo,
        &[
            "diff-tree",
            "-r",
            "-p",
            "-U0",
            "--raw",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--root",
            "-m",
            "--first-parent",
            commit,
        ],
        None,
    ) {
        Ok(out) => out,
        Err(e) => {
            let _ = patch_id.finish(); // no processes left behind
            return Err(e);
        }
    };
    let (added, blobs) = parse_patch_with_raw(&out);
    Ok(CommitDiff {
        added,
        blobs,
        patch_id: patch_id.finish()?,
    })
}

/// `git diff-tree -p --root <commit> | git patch-id --stable`, the two processes piped
/// to each other and running while the caller does other work.
struct PatchId {
    repo: PathBuf,
    diff: Child,
    patch_id: Child,
}

impl PatchId {
    // Exactly the diff patch ids were always taken over, so they stay comparable.
    const DIFF: [&'static str; 4] = ["diff-tree", "-p", "--root", "--no-color"];

    fn start(repo: &Path, commit: &str) -> Result<PatchId> {
        let err = |args: &str, e: std::io::Error| Error::Git {
            repo: repo.into(),
            args: args.into(),
            stderr: format!("cannot run git: {e}"),
        };
        let mut diff = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(Self::DIFF)
            .arg(commit)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err("diff-tree -p", e))?;
        let out = diff.stdout.take().expect("stdout piped");
        let patch_id = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["patch-id", "--stable"])
            .stdin(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let patch_id = match patch_id {
            Ok(p) => p,
            Err(e) => {
                let _ = diff.kill();
                let _ = diff.wait();
                return Err(err("patch-id --stable", e));
            }
        };
        Ok(PatchId {
            repo: repo.into(),
            diff,
            patch_id,
        })
    }

    fn finish(self) -> Result<String> {
        let failed = |args: &str, out: &std::process::Output| Error::Git {
            repo: self.repo.clone(),
            args: args.into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        };
        let ids = self.patch_id.wait_with_output().map_err(|e| Error::Git {
            repo: self.repo.clone(),
            args: "patch-id --stable".into(),
            stderr: format!("git did not finish: {e}"),
        })?;
        let diff = self.diff.wait_with_output().map_err(|e| Error::Git {
            repo: self.repo.clone(),
            args: Self::DIFF.join(" "),
            stderr: format!("git did not finish: {e}"),
        })?;
        if !diff.status.success() {
            return Err(failed(&Self::DIFF.join(" "), &diff));
        }
        if !ids.status.success() {
            return Err(failed("patch-id --stable", &ids));
        }
        Ok(String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string())
    }
}

/// Lines the staged changes add, per path (what `prepare-commit-msg` looks at). Fixed
/// prefixes and no external diff, whatever the user's diff settings.
pub fn staged_added_lines(repo: &Path) -> Result<Vec<AddedLines>> {
    let out = git_bytes(
        repo,
        &[
            "diff",
            "--cached",
            "-U0",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--src-prefix=a/",
            "--dst-prefix=b/",
        ],
        None,
    )?;
    Ok(parse_patch_with_raw(&out).0)
}

/// Split `diff-tree -p --raw` output: the added lines per path (new-side numbers) and
/// the new blob of each path (from the raw lines).
fn parse_patch_with_raw(out: &[u8]) -> (Vec<AddedLines>, HashMap<String, String>) {
    let mut blobs = HashMap::new();
    let mut files: Vec<AddedLines> = Vec::new();
    // Lines left in the current hunk: (old side, new side).
    let (mut old_left, mut new_left) = (0u32, 0u32);
    let mut next_line = 0u32;
    for line in out.split(|&b| b == b'\n') {
        if old_left > 0 || new_left > 0 {
            match line.first() {
                Some(b'+') => {
                    if let Some((_, v)) = files.last_mut() {
                        v.push((next_line, String::from_utf8_lossy(&line[1..]).into_owned()));
                    }
                    next_line += 1;
                    new_left = new_left.saturating_sub(1);
                }
                Some(b'-') => old_left = old_left.saturating_sub(1),
                Some(b'\\') => {} // "\ No newline at end of file"
                _ => {
                    next_line += 1;
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
            }
        } else if let Some(raw) = line.strip_prefix(b":") {
            // :<old mode> <new mode> <old id> <new id> <status>\t<path>
            let raw = String::from_utf8_lossy(raw);
            if let Some((meta, path)) = raw.split_once('\t') {
                let id = meta.split_whitespace().nth(3).unwrap_or("");
                if id.bytes().any(|b| b != b'0') {
                    blobs.insert(unquote(path), id.to_string());
                }
            }
        } else if let Some(p) = line.strip_prefix(b"+++ ") {
            if let Some(path) = new_side_path(&String::from_utf8_lossy(p)) {
                files.push((path, Vec::new()));
            }
        } else if let Some(h) = line.strip_prefix(b"@@ ") {
            let h = String::from_utf8_lossy(h);
            let (_, old_len) = hunk_range(&h, '-');
            let (new_start, new_len) = hunk_range(&h, '+');
            (old_left, new_left) = (old_len, new_len);
            next_line = new_start;
        }
    }
    files.retain(|(_, v)| !v.is_empty());
    (files, blobs)
}

/// One side of a hunk header (`@@ -a,b +c,d @@`, or combined `@@@ -a,b -c,d +e,f @@@`):
/// its first line and line count (1 when the count is left out). For `-` the first
/// parent's side.
fn hunk_range(header: &str, side: char) -> (u32, u32) {
    let t = header
        .split_whitespace()
        .find_map(|t| t.strip_prefix(side))
        .unwrap_or("0");
    let mut it = t.split(',');
    let start = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let len = it.next().map_or(1, |n| n.parse().unwrap_or(0));
    (start, len)
}

/// Lines of a merge's result that no parent has, from the combined diff (`--cc`).
fn merge_added_lines(repo: &Path, commit: &str, parents: usize) -> Result<Vec<AddedLines>> {
    let out = git_bytes(
        repo,
        &[
            "diff-tree",
            "-r",
            "--cc",
            "-U0",
            "--no-color",
            "--no-ext-diff",
            commit,
        ],
        None,
    )?;
    let text = String::from_utf8_lossy(&out);
    let mut files: Vec<AddedLines> = Vec::new();
    let mut next_line = 0u32;
    let mut in_hunk = false;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("+++ ") {
            in_hunk = false;
            if let Some(path) = new_side_path(p) {
                files.push((path, Vec::new()));
            }
        } else if line.starts_with("diff --cc ") || line.starts_with("--- ") {
            in_hunk = false;
        } else if line.starts_with("@@@") {
            // @@@ -a,b -c,d +e,f @@@
            in_hunk = true;
            next_line = hunk_range(line, '+').0;
        } else if in_hunk && line.len() >= parents && !line.starts_with('\\') {
            let (cols, body) = line.split_at(parents);
            if cols.contains('-') {
                continue; // a parent's line the result does not have
            }
            if cols.chars().all(|c| c == '+') {
                if let Some((_, v)) = files.last_mut() {
                    v.push((next_line, body.to_string()));
                }
            }
            next_line += 1;
        }
    }
    files.retain(|(_, v)| !v.is_empty());
    Ok(files)
}

/// The path of a `+++ b/<path>` line (`None` for `/dev/null`).
fn new_side_path(p: &str) -> Option<String> {
    // git ends the line with a tab when the name has a space in it.
    let p = unquote(p.strip_suffix('\t').unwrap_or(p));
    if p == "/dev/null" {
        return None;
    }
    Some(p.strip_prefix("b/").map(str::to_string).unwrap_or(p))
}
