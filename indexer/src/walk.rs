//! Repository walk: which files are indexed, and reading them safely.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use ignore::WalkBuilder;

use crate::IndexOptions;

/// File name of Cairn's own ignore file, same syntax as `.gitignore`.
pub const CAIRN_IGNORE: &str = ".cairnignore";

/// Directories skipped by default: dependencies, build output, caches.
pub const DEFAULT_SKIP_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "bower_components",
    "vendor",
    "target",
    "dist",
    "build",
    "out",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradle",
    ".idea",
    ".next",
    "Pods",
];

/// File name suffixes that are generated or lock files.
const SKIP_SUFFIXES: &[&str] = &[
    ".min.js",
    ".min.css",
    ".map",
    ".lock",
    "-lock.json",
    ".pb.go",
    "_pb2.py",
    ".pyc",
    ".o",
    ".a",
    ".so",
    ".dll",
    ".exe",
    ".class",
    ".jar",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".ico",
    ".pdf",
    ".zip",
    ".gz",
    ".tar",
    ".woff",
    ".woff2",
    ".ttf",
];

#[derive(Debug, Clone)]
pub(crate) struct WalkEntry {
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    pub mtime: u64,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct WalkSkips {
    pub large: u64,
    pub symlinks: u64,
    pub errors: u64,
}

/// Repository-relative path with `/` separators, or None outside the root.
pub(crate) fn rel_path(root: &Path, path: &Path) -> Option<String> {
    let rel = if path.is_absolute() {
        path.strip_prefix(root).ok()?
    } else {
        path
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

pub(crate) fn mtime_nanos(md: &std::fs::Metadata) -> u64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn skipped_by_name(rel: &str, options: &IndexOptions) -> bool {
    let lower = rel.to_ascii_lowercase();
    if SKIP_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return true;
    }
    rel.split('/')
        .rev()
        .skip(1)
        .any(|dir| options.skip_dirs.iter().any(|d| d == dir))
}

/// Lists indexable files: honours `.gitignore` (also outside a git repository),
/// `.ignore` and `.cairnignore`, skips hidden files, default-skipped directories,
/// files over the size limit, and every symlink (so the walk never leaves the
/// root and never loops).
pub(crate) fn walk(root: &Path, options: &IndexOptions) -> (Vec<WalkEntry>, WalkSkips) {
    let mut skips = WalkSkips::default();
    let mut out = Vec::new();
    let skip_dirs = options.skip_dirs.clone();
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(true)
        .follow_links(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .require_git(false)
        .ignore(true)
        .parents(true)
        .add_custom_ignore_filename(CAIRN_IGNORE)
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            !(is_dir && e.depth() > 0 && skip_dirs.iter().any(|d| e.file_name() == d.as_str()))
        });
    for entry in builder.build() {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                tracing::debug!("walk: {err}");
                skips.errors += 1;
                continue;
            }
        };
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_symlink() {
            skips.symlinks += 1;
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        let Some(rel) = rel_path(root, entry.path()) else {
            continue;
        };
        if skipped_by_name(&rel, options) {
            continue;
        }
        let md = match entry.metadata() {
            Ok(m) => m,
            Err(_) => {
                skips.errors += 1;
                continue;
            }
        };
        if md.len() > options.max_file_bytes {
            skips.large += 1;
            continue;
        }
        out.push(WalkEntry {
            rel,
            abs: entry.into_path(),
            size: md.len(),
            mtime: mtime_nanos(&md),
        });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    (out, skips)
}

/// What reading a file gave.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    Text {
        text: String,
        blob: String,
        size: u64,
        mtime: u64,
    },
    Binary,
    TooLarge,
    /// Vanished, or became something other than a regular file.
    Gone,
    Error(std::io::Error),
}

/// Reads a file without following a symlink and without trusting its size:
/// a file that grows past the limit while being read is rejected.
pub(crate) fn read_file(path: &Path, max_bytes: u64) -> ReadOutcome {
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ReadOutcome::Gone,
        Err(e) => return ReadOutcome::Error(e),
    };
    if !md.file_type().is_file() {
        return ReadOutcome::Gone;
    }
    if md.len() > max_bytes {
        return ReadOutcome::TooLarge;
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ReadOutcome::Gone,
        Err(e) => return ReadOutcome::Error(e),
    };
    let mut bytes = Vec::with_capacity(md.len() as usize);
    if let Err(e) = file.take(max_bytes + 1).read_to_end(&mut bytes) {
        return ReadOutcome::Error(e);
    }
    if bytes.len() as u64 > max_bytes {
        return ReadOutcome::TooLarge;
    }
    if is_binary(&bytes) {
        return ReadOutcome::Binary;
    }
    let blob = git_blob_id(&bytes);
    let size = bytes.len() as u64;
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        // Invalid UTF-8 is indexed lossily (U+FFFD) rather than dropped.
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    ReadOutcome::Text {
        text,
        blob,
        size,
        mtime: mtime_nanos(&md),
    }
}

/// A NUL byte in the first 8 KiB marks a file as binary (as git and ripgrep do).
pub(crate) fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// Git's blob id (SHA-1 of `blob <len>\0<content>`), which is also the content
/// hash that decides whether a file needs re-indexing.
pub(crate) fn git_blob_id(bytes: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn rel_paths() {
        let root = Path::new("/r");
        assert_eq!(
            rel_path(root, Path::new("/r/a/b.rs")).as_deref(),
            Some("a/b.rs")
        );
        assert_eq!(
            rel_path(root, Path::new("a/./b.rs")).as_deref(),
            Some("a/b.rs")
        );
        assert_eq!(rel_path(root, Path::new("/elsewhere/b.rs")), None);
        assert_eq!(rel_path(root, Path::new("../b.rs")), None);
    }

    #[test]
    fn vanished_file_reads_as_gone() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_file(&d.path().join("nope"), 100),
            ReadOutcome::Gone
        ));
    }
}
