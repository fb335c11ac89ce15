//! The completion window: the prefix and suffix around the cursor given to the model,
//! cut on line boundaries, with a start that holds still while the person types.

use cairn_models::CompletionRequest;

use cairn_text::floor_char_boundary as floor_boundary;

use super::shape::Shape;

#[derive(Debug, Clone)]
pub struct CompletionOptions {
    /// Characters of text before the cursor given to the model (~4 chars a token).
    pub prefix_chars: usize,
    /// Characters after the cursor.
    pub suffix_chars: usize,
    /// Tokens a block (multi-line) completion may generate; a line gets at most 48. The
    /// latency budget caps it further where the model's speed is known, so a larger cap
    /// costs time only where the machine can afford it.
    pub max_tokens: u32,
    /// Repository name for models with repository tokens.
    pub repo_name: Option<String>,
    /// What a cold completion may take on this machine (ms), prompt evaluation and
    /// generation together, from the model's measured speed: the prompt is cut in tokens
    /// to fit (what the KV cache holds costs nothing and stays), generation is capped at
    /// half of it, and the request gives up at twice it. `None` or 0: no budget (only
    /// the model's hard cap on prompt tokens). Backends that do not know their speed
    /// (remote APIs) ignore it.
    pub latency_budget_ms: Option<u64>,
    /// Warm the local model for the place the cursor rests at (see
    /// `Workspace::cursor_moved`).
    pub prefill: bool,
}

/// The default latency budget: a cold inline completion with the default model
/// (Qwen2.5-Coder-0.5B Q4_K_M) on a 2-core CPU in about 2 s.
pub const DEFAULT_LATENCY_BUDGET_MS: u64 = 2_000;

impl Default for CompletionOptions {
    fn default() -> Self {
        CompletionOptions {
            prefix_chars: 6_000,
            suffix_chars: 2_000,
            // A block of ~8 lines: HumanEval's multi-line holes average 5.1 lines
            // (50-60 tokens), and 64 cut 101 of 165 of them short (bench/README.md).
            max_tokens: 128,
            repo_name: None,
            latency_budget_ms: Some(DEFAULT_LATENCY_BUDGET_MS),
            prefill: true,
        }
    }
}

/// The most of the prefix the latency budget must keep for the enclosing definition
/// (~400 tokens); a longer definition keeps its last part, cut on a line.
pub const SCOPE_FLOOR_BYTES: usize = 1_600;

/// The most of the suffix the budget must keep for the rest of the definition (~200
/// tokens).
pub const SCOPE_SUFFIX_FLOOR_BYTES: usize = 800;

/// Prefix and suffix around the cursor, cut on line boundaries where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub prefix: String,
    pub suffix: String,
    /// Byte offset of the cursor in the document.
    pub offset: usize,
}

impl Window {
    pub fn cut(text: &str, offset: usize, opts: &CompletionOptions) -> Window {
        let offset = floor_boundary(text, offset.min(text.len()));
        // The start moves in steps (up to 1 KiB), not with every keystroke, so consecutive
        // requests share their prompt's head and the model's KV cache holds.
        let step = (opts.prefix_chars / 4).clamp(1, 1024);
        let raw_start = offset.saturating_sub(opts.prefix_chars);
        let aligned = if raw_start == 0 {
            0
        } else {
            raw_start.div_ceil(step) * step
        };
        let mut p_start = floor_boundary(text, aligned.min(offset));
        if p_start > 0 {
            // Start on a whole line.
            if let Some(nl) = text[p_start..offset].find('\n') {
                p_start += nl + 1;
            }
        }
        let mut s_end = floor_boundary(text, (offset + opts.suffix_chars).min(text.len()));
        if s_end < text.len() {
            if let Some(nl) = text[offset..s_end].rfind('\n') {
                s_end = offset + nl + 1;
            }
        }
        Window {
            prefix: text[p_start..offset].to_string(),
            suffix: text[offset..s_end].to_string(),
            offset,
        }
    }

    /// The text of the cursor's line before and after the cursor.
    pub fn cursor_line(&self) -> (&str, &str) {
        (
            self.prefix.rsplit('\n').next().unwrap_or(""),
            self.suffix.split('\n').next().unwrap_or(""),
        )
    }

    /// The model request for this window and the shape the cursor wants: a line stops
    /// at the first line break and costs a few tokens; a block may run on.
    pub fn request(
        &self,
        path: &str,
        shape: &Shape,
        opts: &CompletionOptions,
    ) -> CompletionRequest {
        let mut req = CompletionRequest::new(self.prefix.clone(), self.suffix.clone());
        req.path = Some(path.to_string());
        req.repo_name = opts.repo_name.clone();
        req.max_tokens = if shape.multiline {
            opts.max_tokens
        } else {
            opts.max_tokens.min(48)
        };
        // The budget keeps the enclosing definition's first lines (its signature)
        // with the body up to the cursor, up to about 400 tokens.
        req.keep_prefix_bytes = shape
            .scope_start
            .map_or(0, |s| self.prefix.len().saturating_sub(s))
            .min(SCOPE_FLOOR_BYTES);
        req.keep_suffix_bytes = shape
            .scope_end
            .map_or(0, |e| e.saturating_sub(self.prefix.len()))
            .min(SCOPE_SUFFIX_FLOOR_BYTES);
        req.stop = if shape.multiline {
            vec!["\n\n\n".into()]
        } else {
            vec!["\n".into()]
        };
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(multiline: bool) -> Shape {
        Shape {
            multiline,
            min_indent: 0,
            in_comment_or_string: false,
            scope_start: None,
            scope_end: None,
            lang: None,
        }
    }

    #[test]
    fn a_line_request_stops_at_the_line_break() {
        let t = "def f(x):\n    return x +  # done\n";
        let off = t.find(" # done").unwrap();
        let w = Window::cut(t, off, &CompletionOptions::default());
        assert_eq!(w.prefix, "def f(x):\n    return x + ");
        assert_eq!(w.cursor_line(), ("    return x + ", " # done"));
        let opts = CompletionOptions::default();
        assert_eq!(w.request("a.py", &shape(false), &opts).stop, vec!["\n"]);
        assert_eq!(w.request("a.py", &shape(true), &opts).stop, vec!["\n\n\n"]);
    }

    #[test]
    fn the_request_keeps_the_enclosing_definition_through_the_budget() {
        let t = "import os\n\ndef f(x):\n    y = x * 2\n    return y +\n";
        let off = t.rfind(" +").unwrap() + 2;
        let opts = CompletionOptions::default();
        let w = Window::cut(t, off, &opts);
        let s = crate::completion::shape::shape_at("a.py", &w.prefix, w.prefix.len());
        let req = w.request("a.py", &s, &opts);
        assert_eq!(
            &w.prefix[w.prefix.len() - req.keep_prefix_bytes..],
            "def f(x):\n    y = x * 2\n    return y +"
        );
        let long = format!("def g():\n{}    return", "    pass\n".repeat(400));
        let w = Window::cut(&long, long.len(), &opts);
        let s = crate::completion::shape::shape_at("a.py", &w.prefix, w.prefix.len());
        assert_eq!(
            w.request("a.py", &s, &opts).keep_prefix_bytes,
            SCOPE_FLOOR_BYTES
        );
    }

    #[test]
    fn the_window_start_holds_still_while_typing() {
        let line = "x".repeat(99) + "\n";
        let t = line.repeat(200);
        let opts = CompletionOptions::default();
        let starts: std::collections::BTreeSet<usize> = (10_000..10_500)
            .map(|off| off - Window::cut(&t, off, &opts).prefix.len())
            .collect();
        assert!(starts.len() <= 2, "{starts:?}");
        let w = Window::cut(&t, 15_000, &opts);
        assert!(w.prefix.len() <= opts.prefix_chars && w.prefix.len() > opts.prefix_chars - 1200);
    }

    #[test]
    fn windows_cut_on_line_boundaries() {
        let t = "aaaa\nbbbb\ncccc\ndddd\n";
        let opts = CompletionOptions {
            prefix_chars: 7,
            suffix_chars: 7,
            ..Default::default()
        };
        let w = Window::cut(t, 10, &opts);
        assert_eq!(w.prefix, "bbbb\n");
        assert_eq!(w.suffix, "cccc\n");
    }
}
