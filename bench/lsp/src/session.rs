//! The typing session: which function's body is deleted, what is typed back, and the
//! positions and edits each keystroke makes.

use std::path::{Path, PathBuf};

use cairn_engine::{Position, Range, TextChange};
use cairn_indexer::{analyze_text, language_label, Lang, SymbolKind};
use serde_json::{json, Value};

use crate::client::lsp_pos;
use crate::{fail, Args};

/// Where the deleted body was and what the user types back.
pub(crate) struct Session {
    /// The file's text with the body deleted (an empty line left between the braces).
    pub(crate) start_text: String,
    /// Byte offset of the cursor in `start_text`.
    pub(crate) offset: usize,
    /// The characters typed, in order.
    pub(crate) typed: Vec<char>,
    /// The whole deleted body (what the user goes on to type after `typed`).
    pub(crate) body: String,
    pub(crate) function: String,
    pub(crate) body_chars: usize,
    pub(crate) line: usize,
}

/// The source repository (canonical) and the session in its file, as the arguments ask;
/// warns when the session is too short to measure well.
pub(crate) fn load(a: &Args) -> (PathBuf, Session) {
    let repo_src = std::fs::canonicalize(&a.repo)
        .unwrap_or_else(|e| fail(format!("repository {}: {e}", a.repo.display())));
    let source = std::fs::read_to_string(repo_src.join(&a.file))
        .unwrap_or_else(|e| fail(format!("{}: {e}", repo_src.join(&a.file).display())));
    let session = session_for(&a.file, &source, a.function.as_deref(), a.keystrokes);
    if session.typed.len() < 100 {
        eprintln!(
            "bench_lsp: only {} keystrokes (the body of {} has {} characters); pick a longer function for ≥ 100 requests",
            session.typed.len(),
            session.function,
            session.body_chars
        );
    }
    (repo_src, session)
}

pub(crate) fn position_at(text: &str, offset: usize) -> Position {
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    Position::new(line, before[start..].encode_utf16().count() as u32)
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The chosen function (or, unnamed, the one with the longest body) and its body: for
/// brace languages the lines between the line of the first `{` and the closing brace's
/// line, otherwise the lines after the first.
fn session_for(path: &str, text: &str, name: Option<&str>, keystrokes: usize) -> Session {
    let lang = Lang::from_path(Path::new(path));
    let mut parser = tree_sitter::Parser::new();
    let analysis = analyze_text(
        &mut parser,
        path,
        lang,
        &language_label(Path::new(path)),
        text,
        &|| false,
    );
    let body_of = |start: usize, end: usize| -> Option<(usize, usize)> {
        let def = &text[start..end];
        let (s, e) = if def.trim_end().ends_with('}') && def.contains('{') {
            let open = start + def.find('{')?;
            let s = open + text[open..].find('\n')? + 1;
            let close = start + def.rfind('}')?;
            (s, line_start(text, close))
        } else {
            let s = start + def.find('\n')? + 1;
            let e = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
            (s, e)
        };
        // All but the body's last newline: an empty line stays for the cursor.
        (e > s + 1).then(|| (s, e - 1))
    };
    let functions: Vec<_> = analysis
        .symbols
        .iter()
        .filter(|s| matches!(s.kind, SymbolKind::Function | SymbolKind::Method))
        .filter_map(|s| body_of(s.start_byte, s.end_byte).map(|b| (s, b)))
        .collect();
    let chosen = match name {
        Some(n) => functions
            .iter()
            .find(|(s, _)| s.name == n)
            .unwrap_or_else(|| {
                let names: Vec<&str> = functions.iter().map(|(s, _)| s.name.as_str()).collect();
                fail(format!(
                    "no function {n:?} with a body in {path}; functions: {}",
                    names.join(", ")
                ))
            }),
        None => functions
            .iter()
            .max_by_key(|(_, (s, e))| e - s)
            .unwrap_or_else(|| fail(format!("no function with a body in {path}"))),
    };
    let (sym, (s, e)) = chosen;
    let body = &text[*s..*e];
    let body_chars = body.chars().count();
    let n = if keystrokes == 0 {
        body_chars
    } else {
        keystrokes.min(body_chars)
    };
    Session {
        start_text: format!("{}{}", &text[..*s], &text[*e..]),
        offset: *s,
        typed: body.chars().take(n).collect(),
        body: body.to_string(),
        function: sym.name.clone(),
        body_chars,
        line: sym.start_line,
    }
}

/// Typing `ch` at `at`: the edit for the workspace, the same for LSP, and the cursor after.
pub(crate) fn change(at: Position, ch: char) -> (TextChange, Value, Position) {
    let range = Range::new(at, at);
    let next = if ch == '\n' {
        Position::new(at.line + 1, 0)
    } else {
        Position::new(at.line, at.character + ch.len_utf16() as u32)
    };
    let text = ch.to_string();
    let lsp = json!({"range": {"start": lsp_pos(at), "end": lsp_pos(at)}, "text": text});
    (TextChange::Incremental { range, text }, lsp, next)
}
