//! Typing at an anchor: while the person types at one place, consecutive prompts keep the
//! prefix ending where the typing started (the anchor) and the suffix as it was then, and
//! put what was typed since after the FIM middle token, as the start of the text being
//! filled in (`CompletionRequest::middle`). A fill-in-the-middle prompt puts the suffix
//! after the prefix, so moving the split with every keystroke would make the model
//! evaluate the whole suffix again each time; at an anchor, everything up to the typed
//! text is the KV cache's already and a keystroke costs its own tokens.
//!
//! The model sees the same text either way (the middle of a FIM prompt is a span that
//! starts wherever the hole starts); the anchor moves on (to the cursor) when the typing
//! left its place — an edit before it or after the cursor, another document — or grew
//! past [`MAX_TYPED_BYTES`] or [`MAX_TYPED_LINES`].

use cairn_models::CompletionRequest;

use super::window::Window;

/// Typed text an anchor carries before a request moves it to the cursor (one cold
/// suffix evaluation every few lines of typing).
pub const MAX_TYPED_BYTES: usize = 512;
/// Line breaks typed since the anchor that it carries.
pub const MAX_TYPED_LINES: usize = 4;

/// Where the last prompt sent to the local model split the document. One for the whole
/// session, like the model's KV cache it mirrors.
#[derive(Debug, Clone)]
pub(super) struct Anchor {
    key: String,
    /// Byte offsets of the prompt's prefix in the document: it ends at the anchor.
    start: usize,
    end: usize,
    prefix: String,
    /// The window's suffix at the anchor.
    suffix: String,
}

impl Anchor {
    pub(super) fn new(key: &str, window: &Window) -> Anchor {
        Anchor {
            key: key.to_string(),
            start: window.offset - window.prefix.len(),
            end: window.offset,
            prefix: window.prefix.clone(),
            suffix: window.suffix.clone(),
        }
    }

    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The text typed since the anchor when `text` at `offset` is the anchor's place with
    /// only typing in between (nothing before the anchor or after the cursor changed);
    /// `None` otherwise.
    pub(super) fn typed<'t>(&self, key: &str, text: &'t str, offset: usize) -> Option<&'t str> {
        if key != self.key || offset < self.end || offset - self.end > MAX_TYPED_BYTES {
            return None;
        }
        if text.get(self.start..self.end)? != self.prefix {
            return None;
        }
        let typed = text.get(self.end..offset)?;
        if typed.matches('\n').count() > MAX_TYPED_LINES
            || !text.get(offset..)?.starts_with(&self.suffix)
        {
            return None;
        }
        Some(typed)
    }

    /// `req` (built for the cursor) rewritten to split at the anchor, `typed` being what
    /// [`Anchor::typed`] returned.
    pub(super) fn apply(&self, req: &mut CompletionRequest, typed: &str) {
        req.prefix.clone_from(&self.prefix);
        req.suffix.clone_from(&self.suffix);
        req.middle = typed.to_string();
        req.keep_prefix_bytes = req
            .keep_prefix_bytes
            .saturating_sub(typed.len())
            .min(self.prefix.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::window::CompletionOptions;

    const DOC: &str = "def total(xs):\n    s = 0\n    \n    return s\n";

    fn at(text: &str, offset: usize) -> Window {
        Window::cut(text, offset, &CompletionOptions::default())
    }

    fn typed_at(doc: &str, anchor_at: usize, typed: &str) -> (String, usize) {
        let mut t = doc.to_string();
        t.insert_str(anchor_at, typed);
        (t, anchor_at + typed.len())
    }

    #[test]
    fn typing_after_the_anchor_becomes_the_middle() {
        let hole = DOC.find("    \n").unwrap() + 4;
        let anchor = Anchor::new("a.py", &at(DOC, hole));
        assert_eq!(anchor.typed("a.py", DOC, hole), Some(""));
        let (t, cursor) = typed_at(DOC, hole, "for x in x");
        assert_eq!(anchor.typed("a.py", &t, cursor), Some("for x in x"));
        let mut req = CompletionRequest::new("ignored", "ignored");
        req.keep_prefix_bytes = 20;
        anchor.apply(&mut req, "for x in x");
        assert_eq!(req.prefix, &DOC[..hole]);
        assert_eq!(req.suffix, &DOC[hole..]);
        assert_eq!(
            (req.middle.as_str(), req.keep_prefix_bytes),
            ("for x in x", 10)
        );
        // Through a line break, with the editor's indentation.
        let (t, cursor) = typed_at(DOC, hole, "for x in xs:\n        s += x\n        ");
        assert!(anchor.typed("a.py", &t, cursor).is_some());
    }

    #[test]
    fn the_anchor_moves_when_the_typing_left_its_place() {
        let hole = DOC.find("    \n").unwrap() + 4;
        let anchor = Anchor::new("a.py", &at(DOC, hole));
        let (t, cursor) = typed_at(DOC, hole, "s");
        // Another document; the cursor before the anchor (a backspace through it).
        assert_eq!(anchor.typed("b.py", &t, cursor), None);
        assert_eq!(anchor.typed("a.py", DOC, hole - 1), None);
        // An edit before the anchor, or after the cursor (an editor's closing bracket).
        let before = t.replacen("total", "totals", 1);
        assert_eq!(anchor.typed("a.py", &before, cursor + 1), None);
        let (after, _) = typed_at(&t, cursor, ")");
        assert_eq!(anchor.typed("a.py", &after, cursor), None);
        // Typing past what an anchor carries.
        let (long, cursor) = typed_at(DOC, hole, &"x".repeat(MAX_TYPED_BYTES + 1));
        assert_eq!(anchor.typed("a.py", &long, cursor), None);
        let lines = "x\n".repeat(MAX_TYPED_LINES + 1);
        let (many, cursor) = typed_at(DOC, hole, &lines);
        assert_eq!(anchor.typed("a.py", &many, cursor), None);
        // A cursor that is not on a character boundary of the new text.
        let (t, _) = typed_at(DOC, hole, "é");
        assert_eq!(anchor.typed("a.py", &t, hole + 1), None);
    }
}
