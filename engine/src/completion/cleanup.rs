//! The clean-up of what the model returned, before anyone sees it: a line completion
//! ends at its line and never closes a bracket the text after the cursor closes; a block
//! ends where its scope ends and keeps the lines that leave the code around it parsing
//! (`fit`); neither repeats the text that follows the cursor; nothing that is only white
//! space is shown.

use super::fit::fit_to_syntax;
use super::shape::{indent_of, Shape};
use super::window::Window;

/// The text to show for the model's raw output at `window` (empty: show nothing).
/// `cut`: the generation stopped before the model ended it (the token limit, the
/// deadline, a full context), so its last line may be unfinished: a block drops that
/// line (a half-written line is broken code), a line is shown as far as it got.
pub fn finish(raw: &str, window: &Window, shape: &Shape, cut: bool) -> String {
    let mut out = raw.to_string();
    if cut && shape.multiline {
        if let Some(end) = out.rfind('\n') {
            out.truncate(end + 1);
        }
    }
    let (before, after) = window.cursor_line();
    if before.trim().is_empty() && shape.multiline {
        // On a blank line the block starts here, not after blank lines.
        out = out.trim_start_matches(['\n', '\r']).to_string();
    }
    if !before.is_empty() && before.trim().is_empty() {
        // The cursor already sits at the line's indentation: a model that indents
        // again would shift the line.
        out = out.trim_start_matches([' ', '\t']).to_string();
    }
    if shape.multiline {
        out = cut_to_scope(&out, shape, &window.suffix);
    } else {
        out = out.split('\n').next().unwrap_or("").to_string();
        out = balance_line(&out, after);
    }
    let out = drop_repeated_suffix(&out, window, shape.multiline);
    fit_to_syntax(&out, window, shape, cut)
}

/// Trims trailing white space and never returns the text that already follows the
/// cursor (models without FIM tend to repeat it).
fn drop_repeated_suffix(text: &str, window: &Window, multiline: bool) -> String {
    let mut out = text.trim_end().to_string();
    if multiline {
        // Stop before the first line that repeats the next non-empty line of the suffix.
        // A line of closing brackets repeats it only at its column: the `}` of an inner
        // block is not the `}` below that closes the function.
        let next = (window.suffix.lines().enumerate()).find(|(_, l)| !l.trim().is_empty());
        if let Some((at, next)) = next {
            let closers_only = next.trim().chars().all(|c| CLOSING_LINE.contains(&c));
            let column = (closers_only && at > 0).then(|| indent_of(next));
            let mut kept = Vec::new();
            for (i, l) in out.lines().enumerate() {
                let same_column = i == 0 || column.is_none_or(|c| indent_of(l) == c);
                if l.trim() == next.trim() && same_column {
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

/// What a line of only closing brackets is made of.
const CLOSING_LINE: [char; 5] = [')', ']', '}', ';', ','];

/// The brackets of `s` outside simple quoted strings, with their byte offsets. A `'` or
/// `"` string ends at its line's end (an apostrophe in a comment opens none for long).
pub(super) fn code_brackets(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    s.char_indices().filter(move |&(_, c)| {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q || (c == '\n' && q != '`') {
                quote = None;
            }
            return false;
        }
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
            return false;
        }
        matches!(c, '(' | '[' | '{' | ')' | ']' | '}')
    })
}

/// Net bracket depth after each bracket of `s` (see [`code_brackets`]).
fn bracket_depths(s: &str) -> impl Iterator<Item = (usize, i32)> + '_ {
    let mut depth = 0i32;
    code_brackets(s).map(move |(i, c)| {
        depth += if matches!(c, '(' | '[' | '{') { 1 } else { -1 };
        (i, depth)
    })
}

/// Cuts a block completion at the end of the scope it started in: the first later
/// line indented less than `min_indent` ends it. A closing-bracket line that ends the
/// scope is kept when the text after the cursor does not already close it.
pub fn cut_to_scope(completion: &str, shape: &Shape, suffix: &str) -> String {
    let mut lines = completion.split('\n');
    let mut out = vec![lines.next().unwrap_or("")];
    let next_suffix_line = suffix
        .split('\n')
        .skip(1)
        .map(str::trim)
        .find(|l| !l.is_empty())
        .or_else(|| {
            let first = suffix.split('\n').next().unwrap_or("").trim();
            (!first.is_empty()).then_some(first)
        });
    for line in lines {
        if !line.trim().is_empty() && indent_of(line) < shape.min_indent {
            let t = line.trim();
            let is_closer = t.chars().all(|c| CLOSING_LINE.contains(&c));
            if is_closer && next_suffix_line != Some(t) {
                out.push(line);
            }
            break;
        }
        out.push(line);
    }
    out.join("\n")
}

/// A single-line completion that closes a bracket the text after the cursor already
/// closes is cut before that bracket, so the line never ends up with two.
pub fn balance_line(completion: &str, after_cursor: &str) -> String {
    let rest = after_cursor.trim_start();
    let Some(first_closer) = rest.chars().next().filter(|c| matches!(c, ')' | ']' | '}')) else {
        return completion.to_string();
    };
    for (i, depth) in bracket_depths(completion) {
        if depth < 0 {
            let c = completion[i..].chars().next().unwrap_or(' ');
            if c == first_closer {
                return completion[..i].trim_end().to_string();
            }
            break;
        }
    }
    completion.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_cut_where_its_scope_ends() {
        let shape = Shape {
            multiline: true,
            min_indent: 4,
            in_comment_or_string: false,
            scope_start: None,
            scope_end: None,
            lang: None,
        };
        let c = "total = 0\n    for x in xs:\n        total += x\n    return total\n\ndef g():\n    pass";
        assert_eq!(
            cut_to_scope(c, &shape, "\n"),
            "total = 0\n    for x in xs:\n        total += x\n    return total\n"
        );
    }

    #[test]
    fn a_closing_brace_is_kept_only_when_the_suffix_lacks_it() {
        let shape = Shape {
            multiline: true,
            min_indent: 1,
            in_comment_or_string: false,
            scope_start: None,
            scope_end: None,
            lang: None,
        };
        let c = "\n    let x = 1;\n}\nfn other() {}";
        assert_eq!(cut_to_scope(c, &shape, ""), "\n    let x = 1;\n}");
        assert_eq!(cut_to_scope(c, &shape, "\n}\n"), "\n    let x = 1;");
    }

    #[test]
    fn a_block_cut_by_the_token_limit_drops_its_unfinished_line() {
        let shape = Shape {
            multiline: true,
            min_indent: 8,
            in_comment_or_string: false,
            scope_start: None,
            scope_end: None,
            lang: None,
        };
        let t = "def f(xs):\n    for x in xs:\n        \n    return xs\n";
        let off = t.find("        \n").unwrap() + 8;
        let w = Window::cut(t, off, &super::super::window::CompletionOptions::default());
        let raw = "if x > 0:\n            print(x\n";
        let unfinished = "if x > 0:\n            print(x";
        assert_eq!(
            finish(raw, &w, &shape, false),
            "if x > 0:\n            print(x"
        );
        assert_eq!(finish(unfinished, &w, &shape, true), "if x > 0:");
        // The model ended it: every line is finished.
        assert_eq!(finish(unfinished, &w, &shape, false), unfinished);
        // One unfinished line is all there is: shown as far as it got.
        assert_eq!(finish("if x >", &w, &shape, true), "if x >");
        let line = Shape {
            multiline: false,
            ..shape
        };
        assert_eq!(finish("if x >", &w, &line, true), "if x >");
    }

    #[test]
    fn a_line_never_closes_a_bracket_twice() {
        assert_eq!(balance_line("a, b))", ")"), "a, b");
        assert_eq!(balance_line("a, (b))", ")\n"), "a, (b)");
        assert_eq!(balance_line("a, b", ")"), "a, b");
        assert_eq!(balance_line("\")\" + x", ""), "\")\" + x");
    }

    #[test]
    fn a_repeated_suffix_is_dropped() {
        let w = Window {
            prefix: "x = f(".into(),
            suffix: ")\n".into(),
            offset: 6,
        };
        assert_eq!(drop_repeated_suffix("1, 2)", &w, false), "1, 2");
        let w = Window {
            prefix: "def f():\n".into(),
            suffix: "\nprint(f())\n".into(),
            offset: 9,
        };
        assert_eq!(
            drop_repeated_suffix("    return 1\nprint(f())\nmore", &w, true),
            "    return 1"
        );
        assert_eq!(drop_repeated_suffix("  \n ", &w, true), "");
        // The `}` of an inner block is not the function's `}` below the cursor.
        let w = Window {
            prefix: "function f(xs) {\n  ".into(),
            suffix: "\n}\n".into(),
            offset: 19,
        };
        let body = "for (const x of xs) {\n    g(x);\n  }\n  return xs;";
        assert_eq!(drop_repeated_suffix(body, &w, true), body);
        assert_eq!(
            drop_repeated_suffix("return xs;\n}\nmodule.exports = f;", &w, true),
            "return xs;"
        );
    }
}
