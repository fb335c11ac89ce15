//! File work the window needs: the cited lines, an edit applied to a file's text, an
//! atomic write, and the first look at a model file. Paths reach here already checked
//! to be inside the repository (`Workspace::inside_repo`).

use std::io::Write;
use std::path::Path;

use cairn_engine::{EngineError, ModelError};
use serde::Serialize;

use crate::error::{DesktopError, ErrorKind, Result};

/// Files larger than this are not shown in the side panel or diffed whole.
pub const MAX_TEXT_BYTES: u64 = 4 * 1024 * 1024;
/// At most this many lines go to the side panel at once.
pub const MAX_LINES: usize = 2_000;

/// Lines of a file for the citation panel (1-based, inclusive).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lines {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    pub total_lines: usize,
    pub lines: Vec<String>,
}

/// The whole text of a file, refusing binaries, huge files and invalid UTF-8 with a
/// message that says which.
pub fn read_text(abs: &Path, shown_as: &str) -> Result<String> {
    let meta = std::fs::metadata(abs).map_err(|e| DesktopError::io("read", abs, &e))?;
    if meta.is_dir() {
        return Err(DesktopError::new(
            ErrorKind::Input,
            format!("{shown_as} is a folder, not a file"),
            "Choose a file",
        ));
    }
    if meta.len() > MAX_TEXT_BYTES {
        return Err(DesktopError::new(
            ErrorKind::Input,
            format!(
                "{shown_as} is {} MiB, more than the {} MiB the window shows",
                meta.len() / (1024 * 1024),
                MAX_TEXT_BYTES / (1024 * 1024)
            ),
            "Open it in your editor instead",
        ));
    }
    let bytes = std::fs::read(abs).map_err(|e| DesktopError::io("read", abs, &e))?;
    if bytes.contains(&0) {
        return Err(DesktopError::new(
            ErrorKind::Input,
            format!("{shown_as} is a binary file"),
            "Open it with a program made for it",
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        DesktopError::new(
            ErrorKind::Input,
            format!("{shown_as} is not UTF-8 text"),
            "Open it in your editor instead",
        )
    })
}

/// Lines `start..=end` (1-based) of `text`, clamped to the file; at most [`MAX_LINES`].
pub fn lines_of(path: &str, text: &str, start: usize, end: usize) -> Lines {
    let all: Vec<&str> = text.lines().collect();
    let total = all.len();
    let start = start.max(1).min(total.max(1));
    let end = end.max(start).min(total).min(start + MAX_LINES - 1);
    let lines = if total == 0 {
        Vec::new()
    } else {
        all[start - 1..end].iter().map(|l| l.to_string()).collect()
    };
    Lines {
        path: path.to_string(),
        start_line: start,
        end_line: end.max(start.min(total)),
        total_lines: total,
        lines,
    }
}

/// Writes `text` to `abs` through a temporary file in the same folder and a rename, so a
/// crash leaves the old file or the new one, never half of one. Keeps the file's mode.
pub fn write_atomic(abs: &Path, text: &str) -> Result<()> {
    let dir = abs.parent().ok_or_else(|| {
        DesktopError::new(
            ErrorKind::Input,
            format!("{} has no parent folder", abs.display()),
            "Choose a file inside the repository",
        )
    })?;
    std::fs::create_dir_all(dir).map_err(|e| DesktopError::io("create the folder", dir, &e))?;
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cairn-{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        if let Ok(meta) = std::fs::metadata(abs) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, abs)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DesktopError::io("write", abs, &e)
    })
}

/// Checks that `path` is a GGUF model file before it goes into the configuration.
pub fn check_gguf(path: &Path) -> Result<()> {
    cairn_engine::check_model_file(path).map_err(|e| match e {
        EngineError::Model(ModelError::MissingFile { .. }) => DesktopError::new(
            ErrorKind::NotFound,
            format!("There is no model file at {}", path.display()),
            "Choose an existing .gguf file",
        ),
        EngineError::Model(m @ ModelError::NotGguf { .. }) => DesktopError::new(
            ErrorKind::Model,
            m.to_string(),
            "Choose a .gguf file (llama.cpp's format), or pick a model from the cache",
        ),
        other => other.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_clamped() {
        let l = lines_of("a.py", "1\n2\n3\n", 2, 99);
        assert_eq!((l.start_line, l.end_line, l.total_lines), (2, 3, 3));
        assert_eq!(l.lines, vec!["2", "3"]);
        let l = lines_of("e", "", 1, 5);
        assert!(l.lines.is_empty());
    }

    #[test]
    fn gguf_magic_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("model.gguf");
        std::fs::write(&bad, "<html>not a model</html>").unwrap();
        let e = check_gguf(&bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Model);
        assert!(e.message.contains("not a GGUF model file"), "{}", e.message);
        let good = dir.path().join("ok.gguf");
        std::fs::write(&good, b"GGUF\x03\x00\x00\x00").unwrap();
        check_gguf(&good).unwrap();
        let e = check_gguf(&dir.path().join("missing.gguf")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
    }

    #[test]
    fn atomic_write_replaces_and_keeps_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.txt");
        std::fs::write(&f, "old").unwrap();
        write_atomic(&f, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
