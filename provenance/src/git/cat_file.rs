//! One `git cat-file --batch` process answering a hook's reads in turn: its commit, the
//! notes it looks up (walking the notes tree's fan-out as git does) and the witness's
//! checkpoint.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// An object read through a [`CatFile`] session.
#[derive(Debug, Clone)]
pub struct Object {
    /// Full object id (hex).
    pub id: String,
    /// `blob`, `tree`, `commit` or `tag`.
    pub kind: String,
    pub data: Vec<u8>,
}

/// One `git cat-file --batch` answering many reads in turn: a hook reads its commit,
/// the notes it looks up and the witness's checkpoint through one git process instead
/// of one process each. Names are anything git resolves (`HEAD^{commit}`, an object
/// id, `refs/notes/cairn^{tree}`).
pub struct CatFile {
    repo: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl CatFile {
    pub fn open(repo: &Path) -> Result<CatFile> {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Git {
                repo: repo.into(),
                args: "cat-file --batch".into(),
                stderr: format!("cannot run git: {e}"),
            })?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        Ok(CatFile {
            repo: repo.into(),
            child,
            stdin,
            stdout,
        })
    }

    fn err(&self, name: &str, e: impl std::fmt::Display) -> Error {
        Error::Git {
            repo: self.repo.clone(),
            args: format!("cat-file --batch ({name})"),
            stderr: e.to_string(),
        }
    }

    /// The object `name` resolves to; `None` when it names nothing here.
    pub fn get(&mut self, name: &str) -> Result<Option<Object>> {
        if name.contains('\n') {
            return Err(self.err(name, "an object name cannot hold a newline"));
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.err(name, "the session is closed"));
        };
        if let Err(e) = writeln!(stdin, "{name}").and_then(|_| stdin.flush()) {
            return Err(self.err(name, e));
        }
        let mut header = String::new();
        match self.stdout.read_line(&mut header) {
            Ok(0) => return Err(self.err(name, "git cat-file ended early")),
            Ok(_) => {}
            Err(e) => return Err(self.err(name, e)),
        }
        // `<id> <type> <size>`, or `<name> missing` / `<name> ambiguous`.
        let f: Vec<&str> = header.split_whitespace().collect();
        let size = match f.as_slice() {
            [_, _, size] => size.parse::<usize>().ok(),
            _ => None,
        };
        let Some(size) = size else {
            return Ok(None);
        };
        let mut data = vec![0; size + 1];
        if let Err(e) = self.stdout.read_exact(&mut data) {
            return Err(self.err(name, e));
        }
        data.pop();
        Ok(Some(Object {
            id: f[0].to_string(),
            kind: f[1].to_string(),
            data,
        }))
    }

    /// The full id of the commit `rev` names, if it names one.
    pub fn resolve(&mut self, rev: &str) -> Result<Option<String>> {
        Ok(self
            .get(&format!("{rev}^{{commit}}"))?
            .filter(|o| o.kind == "commit")
            .map(|o| o.id))
    }

    /// The note `notes_ref` holds for `object` (a full hex id), found the way git finds
    /// it: through the notes tree's fan-out directories (`ab/cdef…`), however deep.
    pub fn note(&mut self, notes_ref: &str, object: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut tree) = self.get(&format!("{notes_ref}^{{tree}}"))? else {
            return Ok(None); // no notes ref yet
        };
        let mut rest = object;
        loop {
            if tree.kind != "tree" {
                return Ok(None);
            }
            let mut fanout = None;
            for (mode, name, id) in tree_entries(&tree.data, tree.id.len() / 2) {
                if name == rest.as_bytes() && mode != b"40000" {
                    return Ok(self.get(&id)?.map(|o| o.data));
                }
                if rest.len() > 2 && name == &rest.as_bytes()[..2] && mode == b"40000" {
                    fanout = Some(id);
                }
            }
            let Some(id) = fanout else {
                return Ok(None);
            };
            let Some(sub) = self.get(&id)? else {
                return Ok(None);
            };
            tree = sub;
            rest = &rest[2..];
        }
    }

    /// [`CatFile::note`] as text (invalid UTF-8 replaced).
    pub fn note_text(&mut self, notes_ref: &str, object: &str) -> Result<Option<String>> {
        Ok(self.note(notes_ref, object)?.map(|t| {
            String::from_utf8(t)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }))
    }

    /// A commit's full id, its parents and its message (`rev` peeled to a commit).
    pub fn commit(&mut self, rev: &str) -> Result<(String, Vec<String>, String)> {
        let Some(obj) = self.get(&format!("{rev}^{{commit}}"))? else {
            return Err(Error::Invalid(format!("{rev} is not a commit")));
        };
        let text = String::from_utf8_lossy(&obj.data);
        let (headers, message) = text.split_once("\n\n").unwrap_or((&text, ""));
        let parents = headers
            .lines()
            .filter_map(|l| l.strip_prefix("parent "))
            .map(|p| p.trim().to_string())
            .collect();
        Ok((obj.id, parents, message.to_string()))
    }
}

impl Drop for CatFile {
    fn drop(&mut self) {
        drop(self.stdin.take()); // end of input: cat-file exits
        let _ = self.child.wait();
    }
}

/// Entries of a raw tree object: (mode, name, hex id).
fn tree_entries(data: &[u8], id_len: usize) -> Vec<(&[u8], &[u8], String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some(sp) = data[at..].iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(nul) = data[at + sp..].iter().position(|&b| b == 0) else {
            break;
        };
        let name_end = at + sp + nul;
        if name_end + 1 + id_len > data.len() {
            break;
        }
        out.push((
            &data[at..at + sp],
            &data[at + sp + 1..name_end],
            hex::encode(&data[name_end + 1..name_end + 1 + id_len]),
        ));
        at = name_end + 1 + id_len;
    }
    out
}
