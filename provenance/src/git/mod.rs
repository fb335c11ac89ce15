//! The few git operations provenance needs, through the `git` binary: what a hook reads
//! goes through one `cat-file` session ([`CatFile`]) and one diff ([`commit_diff`]).

mod cat_file;
mod diff;

pub use cat_file::{CatFile, Object};
pub use diff::{commit_diff, staged_added_lines, AddedLines, CommitDiff};

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The notes ref Cairn writes to.
pub const NOTES_REF: &str = "refs/notes/cairn";

pub(crate) fn git_bytes(repo: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let err = |stderr: String| Error::Git {
        repo: repo.into(),
        args: args.join(" "),
        stderr,
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| err(format!("cannot run git: {e}")))?;
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin piped");
        let data = input.to_vec();
        std::thread::spawn(move || {
            let _ = si.write_all(&data);
        });
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("git did not finish: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(out.stdout)
}

pub(crate) fn git(repo: &Path, args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&git_bytes(repo, args, None)?).into_owned())
}

/// The top-level directory of the work tree containing `path`.
pub fn repo_root(path: &Path) -> Result<PathBuf> {
    // A work tree's top holds `.git` (a directory, or a file in a linked worktree or a
    // submodule): the hooks run there, and this saves them a git process each.
    if std::env::var_os("GIT_WORK_TREE").is_none() && path.join(".git").exists() {
        if let Ok(root) = std::fs::canonicalize(path) {
            return Ok(root);
        }
    }
    Ok(PathBuf::from(
        git(path, &["rev-parse", "--show-toplevel"])?.trim(),
    ))
}

/// Full commit id of a revision.
pub fn resolve(repo: &Path, rev: &str) -> Result<String> {
    Ok(git(
        repo,
        &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
    )?
    .trim()
    .to_string())
}

/// Commits of a range, oldest first. `A..B` is git's range; a single revision means
/// that commit and its ancestors; `None` means everything reachable from HEAD.
pub fn commits_in_range(repo: &Path, range: Option<&str>) -> Result<Vec<String>> {
    let spec = range.unwrap_or("HEAD");
    let out = git(repo, &["rev-list", "--reverse", "--topo-order", spec])?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Metadata of a commit: (author name, author email, author time ISO, subject, parents).
#[derive(Debug, Clone, Default)]
pub struct CommitInfo {
    pub id: String,
    pub author_name: String,
    pub author_email: String,
    pub time: String,
    pub subject: String,
    pub parents: Vec<String>,
}

/// One `git log` call over exactly `commits` (in their order): each commit's `format`
/// (fields split by `%x1f`), one string per commit.
fn log_each(repo: &Path, commits: &[String], format: &str) -> Result<Vec<String>> {
    if commits.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = commits.join("\n");
    input.push('\n');
    let format = format!("--format={format}%x1e");
    let out = git_bytes(
        repo,
        &["log", "--no-walk=unsorted", "--stdin", &format],
        Some(input.as_bytes()),
    )?;
    Ok(String::from_utf8_lossy(&out)
        .split('\x1e')
        .map(str::to_string)
        .collect())
}

/// Metadata for many commits with one `git log` call.
pub fn commit_infos(repo: &Path, commits: &[String]) -> Result<HashMap<String, CommitInfo>> {
    let mut map = HashMap::new();
    for rec in log_each(repo, commits, "%H%x1f%an%x1f%ae%x1f%aI%x1f%P%x1f%s")? {
        let f: Vec<&str> = rec.trim_start_matches('\n').split('\x1f').collect();
        if f.len() < 6 {
            continue;
        }
        map.insert(
            f[0].to_string(),
            CommitInfo {
                id: f[0].into(),
                author_name: f[1].into(),
                author_email: f[2].into(),
                time: f[3].into(),
                parents: f[4].split_whitespace().map(str::to_string).collect(),
                subject: f[5].into(),
            },
        );
    }
    Ok(map)
}

/// The commits that commits of `commits` revert (`git revert`'s "This reverts commit X.").
pub fn reverted_commits(repo: &Path, commits: &[String]) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for rec in log_each(repo, commits, "%H%x1f%B")? {
        let Some((by, body)) = rec.trim_start_matches('\n').split_once('\x1f') else {
            continue;
        };
        for l in body.lines() {
            if let Some(rest) = l.trim().strip_prefix("This reverts commit ") {
                let sha: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
                if sha.len() >= 7 {
                    map.insert(resolve(repo, &sha).unwrap_or(sha), by.to_string());
                }
            }
        }
    }
    Ok(map)
}

/// `git patch-id --stable` of a commit (empty for a commit without changes).
pub fn patch_id(repo: &Path, commit: &str) -> Result<String> {
    let diff = git_bytes(
        repo,
        &["diff-tree", "-p", "--root", "--no-color", commit],
        None,
    )?;
    let out = git_bytes(repo, &["patch-id", "--stable"], Some(&diff))?;
    Ok(String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string())
}

/// Blob id of `path` at `commit`, if it exists there.
pub fn blob_at(repo: &Path, commit: &str, path: &str) -> Option<String> {
    git(
        repo,
        &["rev-parse", "--verify", "-q", &format!("{commit}:{path}")],
    )
    .ok()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
}

/// All notes under [`NOTES_REF`] for the given commits, read in one batch.
pub fn read_notes(repo: &Path, commits: &[String]) -> Result<HashMap<String, String>> {
    if commits.len() <= 8 {
        // A few look-ups: walking the notes tree to each is cheaper than listing every note.
        let mut cat = CatFile::open(repo)?;
        let mut map = HashMap::new();
        for c in commits {
            if let Some(t) = cat.note_text(NOTES_REF, c)? {
                map.insert(c.clone(), t);
            }
        }
        return Ok(map);
    }
    let list = match git(repo, &["notes", "--ref", NOTES_REF, "list"]) {
        Ok(l) => l,
        Err(_) => return Ok(HashMap::new()), // no notes ref yet
    };
    let blob_of: HashMap<&str, &str> = list
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let blob = it.next()?;
            Some((it.next()?, blob))
        })
        .collect();
    // In the caller's order (ranges are oldest first): that is the order notes were
    // written in, so a pack's delta chains between successive notes are walked forward
    // and each base comes from git's delta-base cache. `git notes list` order (by commit
    // id) made every note rebuild its chain, which grew faster than linearly with the
    // range once the notes outgrew the cache.
    let mut seen = std::collections::HashSet::new();
    let pairs: Vec<(String, String)> = commits
        .iter()
        .filter(|c| seen.insert(c.as_str()))
        .filter_map(|c| Some((blob_of.get(c.as_str())?.to_string(), c.clone())))
        .collect();
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = pairs.iter().map(|(b, _)| b.clone()).collect();
    let mut map = HashMap::new();
    for ((_, commit), blob) in pairs.iter().zip(read_blobs(repo, &ids)?) {
        // A note blob the repository lacks is no note.
        let Some(buf) = blob else { continue };
        let text = String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        map.insert(commit.clone(), text);
    }
    Ok(map)
}

/// The contents of git objects (blobs) by id, read with one `git cat-file --batch`;
/// `None` for an object the repository does not have.
pub fn read_blobs(repo: &Path, ids: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let err = |e: std::io::Error| Error::Git {
        repo: repo.into(),
        args: "cat-file --batch".into(),
        stderr: e.to_string(),
    };
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(err)?;
    let mut stdin = child.stdin.take().expect("piped");
    let list = ids.to_vec();
    let feeder = std::thread::spawn(move || {
        for b in list {
            if writeln!(stdin, "{b}").is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(child.stdout.take().expect("piped"));
    let mut out = Vec::with_capacity(ids.len());
    for _ in ids {
        let mut header = String::new();
        reader.read_line(&mut header).map_err(err)?;
        let f: Vec<&str> = header.split_whitespace().collect();
        if f.len() < 3 {
            out.push(None); // "<id> missing" or "<id> ambiguous"
            continue;
        }
        let size: usize = f[2].parse().unwrap_or(0);
        let mut buf = vec![0; size + 1];
        reader.read_exact(&mut buf).map_err(err)?;
        buf.pop();
        out.push(Some(buf));
    }
    let _ = feeder.join();
    let _ = child.wait();
    Ok(out)
}

/// Whether each object name (`<rev>^{commit}`, `<commit>:<path>` …) names an object here.
pub fn objects_exist(repo: &Path, names: &[String]) -> Result<Vec<bool>> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let mut input = names.join("\n");
    input.push('\n');
    let out = git_bytes(repo, &["cat-file", "--batch-check"], Some(input.as_bytes()))?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .map(|l| !l.ends_with(" missing") && !l.ends_with(" ambiguous"))
        .collect())
}

/// Replace the note on `commit` with `text`.
pub fn write_note(repo: &Path, commit: &str, text: &str) -> Result<()> {
    git_bytes(
        repo,
        &["notes", "--ref", NOTES_REF, "add", "-f", "-F", "-", commit],
        Some(text.as_bytes()),
    )?;
    Ok(())
}

/// One line of `git blame --porcelain`.
#[derive(Debug, Clone)]
pub struct BlameLine {
    pub commit: String,
    pub orig_path: String,
    pub orig_line: u32,
    pub final_line: u32,
    pub text: String,
}

pub fn blame(repo: &Path, rev: Option<&str>, file: &str) -> Result<Vec<BlameLine>> {
    let mut args = vec!["blame", "--porcelain"];
    if let Some(r) = rev {
        args.push(r);
    }
    args.extend(["--", file]);
    let out = git(repo, &args)?;
    let mut lines = Vec::new();
    let mut paths: HashMap<String, String> = HashMap::new();
    let mut cur: Option<(String, u32, u32)> = None;
    for l in out.lines() {
        if let Some(text) = l.strip_prefix('\t') {
            if let Some((c, o, f)) = cur.take() {
                lines.push(BlameLine {
                    orig_path: paths.get(&c).cloned().unwrap_or_else(|| file.to_string()),
                    commit: c,
                    orig_line: o,
                    final_line: f,
                    text: text.to_string(),
                });
            }
        } else if let Some(p) = l.strip_prefix("filename ") {
            if let Some((c, _, _)) = &cur {
                paths.insert(c.clone(), unquote(p));
            }
        } else {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() >= 3 && f[0].len() >= 40 && f[0].chars().all(|c| c.is_ascii_hexdigit()) {
                cur = Some((
                    f[0].to_string(),
                    f[1].parse().unwrap_or(0),
                    f[2].parse().unwrap_or(0),
                ));
            }
        }
    }
    Ok(lines)
}

/// A path as git prints it: as is, or C-quoted (`"a\\tb"`, octal escapes for the bytes
/// of non-ASCII names when `core.quotePath` is on).
pub(crate) fn unquote(p: &str) -> String {
    let Some(inner) = p.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return p.to_string();
    };
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|x| (b'0'..=b'7').contains(x)));
        if let Some(d) = octal {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(match c {
            b'a' => 7,
            b'b' => 8,
            b't' => b'\t',
            b'n' => b'\n',
            b'v' => 11,
            b'f' => 12,
            b'r' => b'\r',
            other => other, // \" and \\
        });
        i += 2;
    }
    String::from_utf8_lossy(&out).into_owned()
}
