//! cairn-text: positions, ranges and edits over text in the editor's terms — zero-based
//! lines and UTF-16 columns, as LSP counts them — and the conversions to byte offsets.
//! A leaf crate: it knows nothing of files, models, the index, the ledger or any protocol,
//! and it never panics on a position that is outside the text (it clamps or says `None`).

use serde::{Deserialize, Serialize};

/// A position in a document: zero-based line and character (UTF-16 code units, as LSP).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

impl Position {
    pub fn new(line: u32, character: u32) -> Self {
        Position { line, character }
    }
}

/// A half-open range `[start, end)` of a document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

impl Range {
    pub fn new(start: Position, end: Position) -> Self {
        Range { start, end }
    }

    /// An empty range at `at` (where an insertion goes).
    pub fn at(at: Position) -> Self {
        Range { start: at, end: at }
    }

    /// The 1-based inclusive lines it covers; a range ending at column 0 ends with the
    /// line before it (whole-line ranges end at the next line's start).
    pub fn lines_1based(&self) -> (u32, u32) {
        let start = self.start.line + 1;
        let end = if self.end.character == 0 && self.end.line > self.start.line {
            self.end.line
        } else {
            self.end.line + 1
        };
        (start, end.max(start))
    }
}

/// One document change, as LSP reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextChange {
    /// Replace `range` with `text`.
    Incremental { range: Range, text: String },
    /// The document's whole new text.
    Full { text: String },
}

/// The largest char boundary of `s` at or before `i` (clamped to `s.len()`).
pub fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// UTF-16 length of `s`.
pub fn utf16_len(s: &str) -> u32 {
    s.chars().map(|c| c.len_utf16() as u32).sum()
}

/// Byte offset in `line` of UTF-16 column `character` (clamped to the line's end).
pub fn utf16_to_byte(line: &str, character: u32) -> usize {
    let mut units = 0u32;
    for (i, c) in line.char_indices() {
        if units >= character {
            return i;
        }
        units += c.len_utf16() as u32;
    }
    line.len()
}

/// Byte offset of a position. A character past the end of its line clamps to the line's
/// end (as LSP asks; a `\r` before the line break is not part of the line); a line past
/// the end of the text is `None`.
pub fn offset_at(text: &str, pos: Position) -> Option<usize> {
    let mut start = 0usize;
    for _ in 0..pos.line {
        start += text[start..].find('\n')? + 1;
    }
    let line = text[start..].split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    Some(start + utf16_to_byte(line, pos.character))
}

/// The position of byte `offset` (floored to a char boundary, clamped to the text).
pub fn position_at(text: &str, offset: usize) -> Position {
    let offset = floor_char_boundary(text, offset);
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position::new(line, utf16_len(&before[line_start..]))
}

/// Where `inserted` ends when inserted at `start`.
pub fn end_after(start: Position, inserted: &str) -> Position {
    match inserted.rfind('\n') {
        None => Position::new(start.line, start.character + utf16_len(inserted)),
        Some(i) => Position::new(
            start.line + inserted.matches('\n').count() as u32,
            utf16_len(&inserted[i + 1..]),
        ),
    }
}

/// Byte offset in `text` — a piece of a document that starts at document position
/// `start` — of document position `p`, clamped to the piece.
pub fn offset_in(text: &str, start: Position, p: Position) -> usize {
    if p <= start {
        return 0;
    }
    let mut offset = 0;
    for (i, line) in text.split('\n').enumerate() {
        if start.line + i as u32 == p.line {
            let ch = if i == 0 {
                p.character.saturating_sub(start.character)
            } else {
                p.character
            };
            return offset + utf16_to_byte(line, ch);
        }
        offset += line.len() + 1;
    }
    text.len()
}

/// Where position `p` (at or after the edit's end `b`) moves when `[a, b)` becomes
/// `inserted`.
pub fn shift(p: Position, a: Position, b: Position, inserted: &str) -> Position {
    let ins_end = end_after(a, inserted);
    if p.line == b.line {
        Position::new(
            ins_end.line,
            ins_end.character + p.character.saturating_sub(b.character),
        )
    } else {
        Position::new(p.line + ins_end.line - b.line, p.character)
    }
}

/// The range of 1-based inclusive lines `first..=last` of `text`, clamped to the text,
/// as whole lines (it ends at the start of the next line, or at the end of the text).
pub fn line_range(text: &str, first: usize, last: usize) -> Range {
    let lines = text.split_inclusive('\n').count().max(1);
    let a = first.clamp(1, lines);
    let z = last.clamp(a, lines);
    let start = Position::new((a - 1) as u32, 0);
    let end = if z >= lines {
        position_at(text, text.len())
    } else {
        Position::new(z as u32, 0)
    };
    Range::new(start, end)
}

/// A change that does not fit the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("change to {path} at {line}:{character} is outside the document ({lines} lines)")]
pub struct ChangeError {
    pub path: String,
    pub line: u32,
    pub character: u32,
    pub lines: usize,
}

/// Applies one change to `text`. A range past the end is an error and leaves the text
/// as it was; a reversed range is taken in order.
pub fn apply_change(text: &mut String, path: &str, change: &TextChange) -> Result<(), ChangeError> {
    match change {
        TextChange::Full { text: new } => {
            text.clone_from(new);
            Ok(())
        }
        TextChange::Incremental { range, text: new } => {
            let err = |p: Position| ChangeError {
                path: path.to_string(),
                line: p.line,
                character: p.character,
                lines: text.lines().count(),
            };
            let start = offset_at(text, range.start).ok_or_else(|| err(range.start))?;
            let end = offset_at(text, range.end).ok_or_else(|| err(range.end))?;
            let (start, end) = (start.min(end), start.max(end));
            text.replace_range(start..end, new);
            Ok(())
        }
    }
}

/// `text` with `range` replaced by `new_text`; `None` when the range is not in the text.
/// An end just past the last line (a whole-lines range of a file without a final line
/// break) means the end of the text.
pub fn replace_range(text: &str, range: Range, new_text: &str) -> Option<String> {
    let s = offset_at(text, range.start)?;
    let e = offset_at(text, range.end).or_else(|| {
        (range.end.line as usize == text.split('\n').count() && range.end.character == 0)
            .then_some(text.len())
    })?;
    if e < s {
        return None;
    }
    let mut out = String::with_capacity(text.len() + new_text.len());
    out.push_str(&text[..s]);
    out.push_str(new_text);
    out.push_str(&text[e..]);
    Some(out)
}

/// The line of `text` that holds byte `offset`, split at the offset: (before, after),
/// without the line break.
pub fn line_around(text: &str, offset: usize) -> (&str, &str) {
    let offset = floor_char_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    (&text[start..offset], &text[offset..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: u32, character: u32) -> Position {
        Position::new(line, character)
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
        assert_eq!(position_at(t, 2), p(0, 1), "floored to a char boundary");
        assert_eq!(
            offset_at("ab\r\ncd", p(0, 9)),
            Some(2),
            "a CR is not in the line"
        );
    }

    #[test]
    fn changes_apply_and_bad_ranges_leave_the_text() {
        let mut t = String::from("hello\nworld\n");
        let change = TextChange::Incremental {
            range: Range::new(p(1, 0), p(1, 5)),
            text: "there".into(),
        };
        apply_change(&mut t, "a", &change).unwrap();
        assert_eq!(t, "hello\nthere\n");
        let bad = TextChange::Incremental {
            range: Range::new(p(9, 0), p(9, 1)),
            text: "x".into(),
        };
        let e = apply_change(&mut t, "a", &bad).unwrap_err();
        assert!(e.to_string().contains("outside the document"), "{e}");
        assert_eq!(t, "hello\nthere\n");
        assert_eq!(end_after(p(1, 2), "ab\ncde"), p(2, 3));
        assert_eq!(end_after(p(1, 2), "ab"), p(1, 4));
    }

    #[test]
    fn line_ranges_clamp_and_cover_whole_lines() {
        let t = "a\nb\nc\n";
        assert_eq!(line_range(t, 2, 2), Range::new(p(1, 0), p(2, 0)));
        assert_eq!(line_range(t, 2, 99), Range::new(p(1, 0), p(3, 0)));
        assert_eq!(line_range(t, 2, 2).lines_1based(), (2, 2));
        assert_eq!(Range::at(p(4, 2)).lines_1based(), (5, 5));
    }

    #[test]
    fn replacing_a_range_past_the_last_line_means_the_end() {
        let t = "a\nb\nc\n";
        assert_eq!(
            replace_range(t, Range::new(p(1, 0), p(2, 0)), "B\n").as_deref(),
            Some("a\nB\nc\n")
        );
        assert_eq!(
            replace_range(t, Range::at(p(3, 0)), "d\n").as_deref(),
            Some("a\nb\nc\nd\n")
        );
        assert_eq!(
            replace_range("a\nb", Range::new(p(1, 0), p(2, 0)), "c\n").as_deref(),
            Some("a\nc\n")
        );
        assert_eq!(
            replace_range("a\n", Range::new(p(5, 0), p(5, 0)), "x"),
            None
        );
    }

    #[test]
    fn pieces_of_a_document_map_positions() {
        // A piece starting at 2:3 of its document.
        let piece = "xy\nzw";
        assert_eq!(offset_in(piece, p(2, 3), p(2, 4)), 1);
        assert_eq!(offset_in(piece, p(2, 3), p(3, 1)), 4);
        assert_eq!(offset_in(piece, p(2, 3), p(9, 0)), piece.len());
        assert_eq!(shift(p(4, 5), p(4, 0), p(4, 2), "abc\nd"), p(5, 4));
        assert_eq!(line_around("ab\ncd\n", 4), ("c", "d"));
    }
}
