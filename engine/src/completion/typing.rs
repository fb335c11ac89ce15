//! Typing through a suggestion: while the person types the text a suggestion showed,
//! the rest of it is served again without asking the model.

use super::{Completion, Suggestion, Timings};
use crate::{Position, Range};

/// Text kept before the cursor to recognise the same place again.
const TAIL: usize = 2_000;

/// The last suggestion shown in a document.
#[derive(Debug, Clone)]
pub(super) struct Recent {
    /// Text just before the cursor when it was made (up to `TAIL` bytes).
    tail: String,
    offset: usize,
    /// The rest of the cursor's line after the cursor.
    after: String,
    text: String,
    pub(super) record_id: String,
    references: Vec<crate::ReferenceMatch>,
    multiline: bool,
}

fn line_after(text: &str, offset: usize) -> &str {
    cairn_text::line_around(text, offset).1
}

impl Recent {
    pub(super) fn new(text: &str, offset: usize, shown: &Suggestion, multiline: bool) -> Recent {
        let tail_start = cairn_text::floor_char_boundary(text, offset.saturating_sub(TAIL));
        Recent {
            tail: text[tail_start..offset].to_string(),
            offset,
            after: line_after(text, offset).to_string(),
            text: shown.text.clone(),
            record_id: shown.record_id.clone(),
            references: shown.references.clone(),
            multiline,
        }
    }

    /// The rest of the suggestion when `text` at `offset` is the place it was shown
    /// with some of it typed since; `None` otherwise.
    pub(super) fn typed_through(
        &self,
        text: &str,
        offset: usize,
        position: Position,
    ) -> Option<Completion> {
        if offset < self.offset || self.offset > text.len() {
            return None;
        }
        let tail_start = self.offset.checked_sub(self.tail.len())?;
        if text.get(tail_start..self.offset)? != self.tail {
            return None;
        }
        let typed = text.get(self.offset..offset)?;
        let rest = self.text.strip_prefix(typed)?;
        if rest.trim().is_empty() || line_after(text, offset) != self.after {
            return None;
        }
        Some(Completion {
            items: vec![Suggestion {
                record_id: self.record_id.clone(),
                text: rest.to_string(),
                range: Range::at(position),
                references: self.references.clone(),
            }],
            from_cache: true,
            multiline: self.multiline,
            context: Vec::new(),
            timings: Timings::default(),
            usage: None,
            mode: None,
            budget: None,
        })
    }
}
