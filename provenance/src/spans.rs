//! Following accepted spans through later edits of a document.
//!
//! The engine calls [`SpanTracker::track`] when a suggestion is accepted and
//! [`SpanTracker::apply_change`] for every change the editor reports (LSP
//! `TextDocumentContentChangeEvent`: a range edit, or the full text). Positions are
//! LSP positions (zero-based line, UTF-16 character). [`SpanTracker::surviving`]
//! says which accepted lines are still there, changed or gone, and
//! [`SpanTracker::take_edited_events`] turns changes into `Edited` events for the ledger.

use crate::digest::{line_hash, split_lines};
use crate::record::{Event, LineClass, LineState, Position, Range, RecordId};
use cairn_text::{end_after, offset_in, shift};
use std::collections::{BTreeMap, HashSet};

pub use cairn_text::TextChange;

#[derive(Debug, Clone)]
struct Span {
    record_id: RecordId,
    start: Position,
    text: String,
    original: HashSet<String>,
    changed: bool,
    dirty: bool,
    vanished: bool,
}

/// A tracked span as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurvivingSpan {
    pub record_id: RecordId,
    pub range: Range,
    pub text: String,
    /// One entry per current line: `ai` when unchanged since acceptance, `ai-modified` otherwise.
    pub lines: Vec<LineState>,
    pub changed: bool,
}

/// Tracks accepted spans per document path.
#[derive(Debug, Default, Clone)]
pub struct SpanTracker {
    docs: BTreeMap<String, Vec<Span>>,
}

impl SpanTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start tracking `text`, inserted at `range.start` of `path` by accepting suggestion `record_id`.
    pub fn track(&mut self, record_id: RecordId, path: &str, range: Range, text: &str) {
        let original = split_lines(text).map(line_hash).collect();
        self.docs.entry(path.to_string()).or_default().push(Span {
            record_id,
            start: range.start,
            text: text.to_string(),
            original,
            changed: false,
            dirty: false,
            vanished: false,
        });
    }

    /// Apply one editor change to every span tracked in `path`.
    pub fn apply_change(&mut self, path: &str, change: &TextChange) {
        let Some(spans) = self.docs.get_mut(path) else {
            return;
        };
        for span in spans.iter_mut().filter(|s| !s.vanished) {
            match change {
                TextChange::Incremental { range, text } => apply_incremental(span, *range, text),
                TextChange::Full { text } => apply_full(span, text),
            }
        }
    }

    /// The spans of `path` that still exist, with per-line state.
    pub fn surviving(&self, path: &str) -> Vec<SurvivingSpan> {
        self.docs
            .get(path)
            .into_iter()
            .flatten()
            .filter(|s| !s.vanished)
            .map(|s| SurvivingSpan {
                record_id: s.record_id,
                range: Range::new(s.start, end_after(s.start, &s.text)),
                text: s.text.clone(),
                lines: line_states(s),
                changed: s.changed,
            })
            .collect()
    }

    /// `Edited` events for spans of `path` changed since the last call (vanished spans included).
    pub fn take_edited_events(&mut self, path: &str) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(spans) = self.docs.get_mut(path) {
            for s in spans.iter_mut().filter(|s| s.dirty) {
                s.dirty = false;
                out.push(Event::Edited {
                    record_id: s.record_id,
                    path: path.to_string(),
                    lines: if s.vanished { vec![] } else { line_states(s) },
                    vanished: s.vanished,
                });
            }
            spans.retain(|s| !s.vanished);
        }
        out
    }

    /// Forget a document (closed without saving, or deleted).
    pub fn forget(&mut self, path: &str) {
        self.docs.remove(path);
    }
}

fn line_states(s: &Span) -> Vec<LineState> {
    split_lines(&s.text)
        .map(|l| {
            let hash = line_hash(l);
            let class = if s.original.contains(&hash) {
                LineClass::Ai
            } else {
                LineClass::AiModified
            };
            LineState { hash, class }
        })
        .collect()
}

fn apply_incremental(span: &mut Span, range: Range, inserted: &str) {
    let (a, b) = (range.start, range.end);
    let s = span.start;
    let e = end_after(s, &span.text);
    if b <= s && !(a == b && a == s && span.text.is_empty()) {
        // Entirely before the span (an insertion exactly at its start stays outside).
        span.start = shift(s, a, b, inserted);
        return;
    }
    if a >= e {
        return; // Entirely after.
    }
    // Overlap: splice the edit into the span's text.
    let ra = offset_in(&span.text, s, a.max(s));
    let rb = offset_in(&span.text, s, b.min(e));
    let mut text = String::with_capacity(span.text.len() + inserted.len());
    text.push_str(&span.text[..ra]);
    text.push_str(inserted);
    text.push_str(&span.text[rb..]);
    if a < s {
        span.start = a;
    }
    span.text = text;
    span.changed = true;
    span.dirty = true;
    if span.text.trim().is_empty() {
        span.vanished = true;
    }
}

fn apply_full(span: &mut Span, doc: &str) {
    // Without ranges, find the span again: exact text first, then by line hashes
    // near where it was.
    if let Some(i) = doc.find(&span.text) {
        let before = &doc[..i];
        span.start = end_after(Position::new(0, 0), before);
        return;
    }
    let current: HashSet<String> = split_lines(&span.text).map(line_hash).collect();
    let lines: Vec<&str> = split_lines(doc).collect();
    let hits: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].trim().is_empty())
        .filter(|&i| {
            let h = line_hash(lines[i]);
            current.contains(&h) || span.original.contains(&h)
        })
        .collect();
    let Some(&nearest) = hits
        .iter()
        .min_by_key(|&&i| (i as i64 - span.start.line as i64).abs())
    else {
        span.vanished = true;
        span.dirty = true;
        return;
    };
    // Grow a contiguous block of hits (allowing one-line gaps) around the nearest one.
    let hitset: HashSet<usize> = hits.iter().copied().collect();
    let (mut lo, mut hi) = (nearest, nearest);
    while lo > 0 && (hitset.contains(&(lo - 1)) || (lo > 1 && hitset.contains(&(lo - 2)))) {
        lo -= if hitset.contains(&(lo - 1)) { 1 } else { 2 };
    }
    while hitset.contains(&(hi + 1)) || hitset.contains(&(hi + 2)) {
        hi += if hitset.contains(&(hi + 1)) { 1 } else { 2 };
    }
    let text = lines[lo..=hi].join("\n") + "\n";
    if text != span.text {
        span.changed = true;
        span.dirty = true;
    }
    span.start = Position::new(lo as u32, 0);
    span.text = text;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(l: u32, c: u32) -> Position {
        Position::new(l, c)
    }

    fn show(t: &SpanTracker, path: &str) -> String {
        t.surviving(path)
            .iter()
            .map(|s| {
                let classes: Vec<&str> = s.lines.iter().map(|l| l.class.as_str()).collect();
                format!(
                    "{}:{}-{}:{} {:?} {:?}\n",
                    s.range.start.line,
                    s.range.start.character,
                    s.range.end.line,
                    s.range.end.character,
                    s.text,
                    classes
                )
            })
            .collect()
    }

    fn edit(t: &mut SpanTracker, a: Position, b: Position, text: &str) {
        t.apply_change(
            "f.rs",
            &TextChange::Incremental {
                range: Range::new(a, b),
                text: text.into(),
            },
        );
    }

    #[test]
    fn edits_before_inside_and_after() {
        let id = uuid::Uuid::now_v7();
        let mut t = SpanTracker::new();
        // Accepted "let a = 1;\nlet b = 2;\n" at line 2, col 0.
        t.track(
            id,
            "f.rs",
            Range::new(pos(2, 0), pos(2, 0)),
            "let a = 1;\nlet b = 2;\n",
        );
        expect_test::expect![[r#"
            2:0-4:0 "let a = 1;\nlet b = 2;\n" ["ai", "ai"]
        "#]]
        .assert_eq(&show(&t, "f.rs"));
        // Two lines inserted above: span moves down.
        edit(&mut t, pos(0, 0), pos(0, 0), "// one\n// two\n");
        // Typing after the span does nothing.
        edit(&mut t, pos(7, 0), pos(7, 0), "fn x() {}\n");
        // Change `2` to `20` inside the span (line 5, char 8..9).
        edit(&mut t, pos(5, 8), pos(5, 9), "20");
        expect_test::expect![[r#"
            4:0-6:0 "let a = 1;\nlet b = 20;\n" ["ai", "ai-modified"]
        "#]]
        .assert_eq(&show(&t, "f.rs"));
        let evs = t.take_edited_events("f.rs");
        assert_eq!(evs.len(), 1);
        assert!(t.take_edited_events("f.rs").is_empty());
        // Same-line edit before the span start on its first line shifts the column.
        edit(&mut t, pos(4, 0), pos(4, 0), "    ");
        expect_test::expect![[r#"
            4:4-6:0 "let a = 1;\nlet b = 20;\n" ["ai", "ai-modified"]
        "#]]
        .assert_eq(&show(&t, "f.rs"));
        // Delete the whole span.
        edit(&mut t, pos(4, 0), pos(6, 0), "");
        assert_eq!(show(&t, "f.rs"), "");
        match &t.take_edited_events("f.rs")[..] {
            [Event::Edited { vanished: true, .. }] => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn utf16_columns() {
        let id = uuid::Uuid::now_v7();
        let mut t = SpanTracker::new();
        t.track(
            id,
            "f.rs",
            Range::new(pos(0, 0), pos(0, 0)),
            "let s = \"😀x\";\n",
        );
        // 😀 is two UTF-16 units: columns 9-10; `x` is column 11.
        edit(&mut t, pos(0, 11), pos(0, 12), "y");
        assert_eq!(t.surviving("f.rs")[0].text, "let s = \"😀y\";\n");
    }

    #[test]
    fn full_text_change_relocates_or_drops() {
        let id = uuid::Uuid::now_v7();
        let mut t = SpanTracker::new();
        t.track(
            id,
            "f.rs",
            Range::new(pos(1, 0), pos(1, 0)),
            "fn add(a: i32) -> i32 {\n    a + 1\n}\n",
        );
        t.apply_change(
            "f.rs",
            &TextChange::Full {
                text: "use x;\n\n// hi\nfn add(a: i32) -> i32 {\n    a + 2\n}\n".into(),
            },
        );
        expect_test::expect![[r#"
            3:0-6:0 "fn add(a: i32) -> i32 {\n    a + 2\n}\n" ["ai", "ai-modified", "ai"]
        "#]]
        .assert_eq(&show(&t, "f.rs"));
        t.apply_change(
            "f.rs",
            &TextChange::Full {
                text: "nothing\n".into(),
            },
        );
        assert_eq!(show(&t, "f.rs"), "");
    }
}
