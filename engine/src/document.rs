//! Open documents as the editor sees them, and LSP positions (zero-based line,
//! UTF-16 character) over their text.

use crate::provenance::{Position, Range, TextChange};

/// Byte offset of an LSP position. A character past the end of its line clamps to
/// the line's end (as LSP asks); a line past the end of the text is `None`.
pub fn offset_at(text: &str, pos: Position) -> Option<usize> {
    let mut start = 0usize;
    for _ in 0..pos.line {
        start += text[start..].find('\n')? + 1;
    }
    let line = text[start..].split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut units = 0u32;
    for (i, c) in line.char_indices() {
        if units >= pos.character {
            return Some(start + i);
        }
        units += c.len_utf16() as u32;
    }
    Some(start + line.len())
}

/// The LSP position of byte `offset` (floored to a char boundary).
pub fn position_at(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character = before[line_start..].encode_utf16().count() as u32;
    Position { line, character }
}

/// Where `inserted` ends when inserted at `start`.
pub fn end_after(start: Position, inserted: &str) -> Position {
    match inserted.rfind('\n') {
        None => Position {
            line: start.line,
            character: start.character + inserted.encode_utf16().count() as u32,
        },
        Some(i) => Position {
            line: start.line + inserted.matches('\n').count() as u32,
            character: inserted[i + 1..].encode_utf16().count() as u32,
        },
    }
}

/// One open document.
#[derive(Debug, Clone)]
pub struct Document {
    /// Shared so a request can read a snapshot while later edits copy on write.
    pub text: std::sync::Arc<String>,
    pub version: i32,
}

#[derive(Debug, thiserror::Error)]
#[error("change to {path} at {line}:{character} is outside the document ({lines} lines)")]
pub struct ChangeError {
    pub path: String,
    pub line: u32,
    pub character: u32,
    pub lines: usize,
}

impl Document {
    /// Applies one change. A range past the end is an error and leaves the text as it was.
    pub fn apply(&mut self, path: &str, change: &TextChange) -> Result<(), ChangeError> {
        match change {
            TextChange::Full { text } => {
                self.text = std::sync::Arc::new(text.clone());
                Ok(())
            }
            TextChange::Incremental { range, text } => {
                let err = |p: Position| ChangeError {
                    path: path.to_string(),
                    line: p.line,
                    character: p.character,
                    lines: self.text.lines().count(),
                };
                let start = offset_at(&self.text, range.start).ok_or_else(|| err(range.start))?;
                let end = offset_at(&self.text, range.end).ok_or_else(|| err(range.end))?;
                let (start, end) = (start.min(end), start.max(end));
                std::sync::Arc::make_mut(&mut self.text).replace_range(start..end, text);
                Ok(())
            }
        }
    }

    /// The text of `range`, if it lies inside the document.
    pub fn slice(&self, range: Range) -> Option<&str> {
        let s = offset_at(&self.text, range.start)?;
        let e = offset_at(&self.text, range.end)?;
        self.text.get(s.min(e)..s.max(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn utf16_positions_round_trip() {
        let t = "a😀b\nwörld\n";
        assert_eq!(offset_at(t, p(0, 3)), Some(5)); // after the surrogate pair
        assert_eq!(position_at(t, 5), p(0, 3));
        assert_eq!(offset_at(t, p(1, 99)), Some(13));
        assert_eq!(offset_at(t, p(2, 0)), Some(14));
        assert_eq!(offset_at(t, p(3, 0)), None);
        assert_eq!(position_at(t, 14), p(2, 0));
    }

    #[test]
    fn changes_apply_and_bad_ranges_leave_the_text() {
        let mut d = Document {
            text: std::sync::Arc::new("hello\nworld\n".into()),
            version: 1,
        };
        d.apply(
            "a",
            &TextChange::Incremental {
                range: Range::new(p(1, 0), p(1, 5)),
                text: "there".into(),
            },
        )
        .unwrap();
        assert_eq!(d.text.as_str(), "hello\nthere\n");
        let e = d
            .apply(
                "a",
                &TextChange::Incremental {
                    range: Range::new(p(9, 0), p(9, 1)),
                    text: "x".into(),
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("outside the document"), "{e}");
        assert_eq!(d.text.as_str(), "hello\nthere\n");
        assert_eq!(end_after(p(1, 2), "ab\ncde"), p(2, 3));
        assert_eq!(end_after(p(1, 2), "ab"), p(1, 4));
    }
}
