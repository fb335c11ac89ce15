//! The completion window around the cursor and the clean-up of what the model returns.

use crate::models::CompletionRequest;

#[derive(Debug, Clone)]
pub struct CompletionOptions {
    /// Characters of text before the cursor given to the model (~4 chars a token).
    pub prefix_chars: usize,
    /// Characters after the cursor.
    pub suffix_chars: usize,
    pub max_tokens: u32,
    /// Repository name for models with repository tokens.
    pub repo_name: Option<String>,
}

impl Default for CompletionOptions {
    fn default() -> Self {
        CompletionOptions {
            prefix_chars: 6_000,
            suffix_chars: 2_000,
            max_tokens: 64,
            repo_name: None,
        }
    }
}

/// Prefix and suffix around the cursor, cut on line boundaries where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub prefix: String,
    pub suffix: String,
    /// Byte offset of the cursor in the document.
    pub offset: usize,
    /// Whether one line or a block is wanted.
    pub multiline: bool,
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
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
        let prefix = &text[p_start..offset];
        let suffix = &text[offset..s_end];
        let line_before = prefix.rsplit('\n').next().unwrap_or("");
        let line_after = suffix.split('\n').next().unwrap_or("");
        // A block is wanted on an otherwise empty line; text on the cursor's line means
        // the user is finishing that line. (Tree-sitter scope rules come with the index.)
        let multiline = line_after.trim().is_empty() && line_before.trim().is_empty();
        Window {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            offset,
            multiline,
        }
    }

    pub fn request(&self, path: &str, opts: &CompletionOptions) -> CompletionRequest {
        let mut req = CompletionRequest::new(self.prefix.clone(), self.suffix.clone());
        req.path = Some(path.to_string());
        req.repo_name = opts.repo_name.clone();
        req.max_tokens = if self.multiline {
            opts.max_tokens
        } else {
            opts.max_tokens.min(48)
        };
        req.stop = if self.multiline {
            vec!["\n\n\n".into()]
        } else {
            vec!["\n".into()]
        };
        req
    }
}

/// Trims what the model produced: no trailing whitespace, and never the text that
/// already follows the cursor (models without FIM tend to repeat it).
pub fn postprocess(text: &str, window: &Window) -> String {
    let mut out = text.trim_end().to_string();
    if window.multiline {
        // Stop before the first line that repeats the next non-empty line of the suffix.
        if let Some(next) = window.suffix.lines().map(str::trim).find(|l| !l.is_empty()) {
            let mut kept = Vec::new();
            for l in out.lines() {
                if l.trim() == next {
                    break;
                }
                kept.push(l);
            }
            out = kept.join("\n").trim_end().to_string();
        }
    } else {
        let rest = window.suffix.split('\n').next().unwrap_or("").trim_end();
        if !rest.is_empty() {
            if let Some(stripped) = out.strip_suffix(rest) {
                out = stripped.to_string();
            }
        }
    }
    if out.trim().is_empty() {
        String::new()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_when_text_follows_the_cursor() {
        let t = "def f(x):\n    return x +  # done\n";
        let off = t.find(" # done").unwrap();
        let w = Window::cut(t, off, &CompletionOptions::default());
        assert!(!w.multiline);
        assert_eq!(w.prefix, "def f(x):\n    return x + ");
        assert_eq!(
            w.request("a.py", &CompletionOptions::default()).stop,
            vec!["\n"]
        );
    }

    #[test]
    fn block_on_an_empty_line_after_an_opener() {
        let t = "fn main() {\n    \n}\n";
        let off = t.find("\n}").unwrap();
        let w = Window::cut(t, off, &CompletionOptions::default());
        assert!(w.multiline);
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

    #[test]
    fn postprocess_drops_a_repeated_suffix() {
        let w = Window {
            prefix: "x = f(".into(),
            suffix: ")\n".into(),
            offset: 6,
            multiline: false,
        };
        assert_eq!(postprocess("1, 2)", &w), "1, 2");
        let w = Window {
            prefix: "def f():\n".into(),
            suffix: "\nprint(f())\n".into(),
            offset: 9,
            multiline: true,
        };
        assert_eq!(
            postprocess("    return 1\nprint(f())\nmore", &w),
            "    return 1"
        );
        assert_eq!(postprocess("  \n ", &w), "");
    }
}
