//! What shape of completion the cursor wants, read from the syntax around it, and the
//! clean-up that keeps a completion inside the block it started in.
//!
//! The decision is made up front (before the model runs) so that a single-line
//! request stops at the first newline and costs a few tokens, while a block request
//! is allowed to run on and is cut at the end of the current scope afterwards.

use cairn_indexer::Lang;

/// The shape the cursor asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// A block (several lines) rather than the rest of the current line.
    pub multiline: bool,
    /// Lines after the first with less indentation than this close the block the
    /// completion started in (measured in columns, a tab counts as 4).
    pub min_indent: usize,
    /// The cursor sits inside a comment or a string literal.
    pub in_comment_or_string: bool,
}

/// Indentation width of a line (tab = 4 columns).
pub fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

const CLOSERS: &[char] = &[')', ']', '}', '"', '\'', '`', ';', ',', ':'];

fn opens_block(lang: Option<Lang>, line: &str) -> bool {
    let t = line.trim_end();
    if t.ends_with('{') || t.ends_with('(') || t.ends_with('[') || t.ends_with("=>") {
        return true;
    }
    // A Python-style header: `def f():`, `if x:`, `else:` (not a dict entry `"a":`).
    t.ends_with(':')
        && matches!(lang, Some(Lang::Python) | None)
        && !t.trim_start().starts_with('"')
}

/// Reads the shape at byte `offset` of `text` (the window given to the model, so the
/// parse is bounded by the window, not the document). `path` picks the grammar.
pub fn shape_at(path: &str, text: &str, offset: usize) -> Shape {
    let lang = Lang::from_path(std::path::Path::new(path));
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let before = &text[line_start..offset];
    let after = &text[offset..line_end];
    let in_comment_or_string = lang.is_some_and(|l| inside_comment_or_string(l, text, offset));

    // Code after the cursor on the same line: the user is finishing this line.
    let after_is_code = after.trim().chars().any(|c| !CLOSERS.contains(&c));
    let cursor_line_blank = before.trim().is_empty();
    let header = !cursor_line_blank && opens_block(lang, before);
    let multiline = !in_comment_or_string && !after_is_code && (cursor_line_blank || header);

    let min_indent = if header {
        indent_of(before) + 1
    } else if cursor_line_blank && !before.is_empty() {
        indent_of(before)
    } else if cursor_line_blank {
        // An empty line with no indentation yet: the previous line tells the scope.
        match text[..line_start]
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
        {
            Some(prev) if opens_block(lang, prev) => indent_of(prev) + 1,
            Some(prev) => indent_of(prev),
            None => 0,
        }
    } else {
        indent_of(before)
    };
    Shape {
        multiline,
        min_indent,
        in_comment_or_string,
    }
}

fn inside_comment_or_string(lang: Lang, text: &str, offset: usize) -> bool {
    let mut parser = tree_sitter::Parser::new();
    if parser.set_language(&lang.grammar()).is_err() {
        return false;
    }
    let Some(tree) = parser.parse(text, None) else {
        return false;
    };
    let probe = offset.saturating_sub(1);
    let Some(mut node) = tree
        .root_node()
        .descendant_for_byte_range(probe, offset.max(probe))
    else {
        return false;
    };
    loop {
        let kind = node.kind();
        if kind.contains("comment") {
            // A line comment ends at the newline; the cursor right after it is code.
            let (start, end) = (node.start_byte(), node.end_byte());
            let strictly_inside = start < offset && offset < end;
            let at_end_of_line_comment = offset == end && !text[start..end].contains('\n');
            return strictly_inside || at_end_of_line_comment;
        }
        if kind.contains("string") && !kind.contains("content") {
            // Strictly inside the quotes: after the opening one, before the closing one.
            return node.start_byte() < offset && offset < node.end_byte();
        }
        match node.parent() {
            Some(p) => node = p,
            None => return false,
        }
    }
}

/// Net bracket depth change of `s`, ignoring brackets inside simple quoted strings.
fn bracket_depths(s: &str) -> impl Iterator<Item = (usize, i32)> + '_ {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    s.char_indices().map(move |(i, c)| {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                '"' | '\'' | '`' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
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
            let is_closer = t.chars().all(|c| matches!(c, ')' | ']' | '}' | ';' | ','));
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

    fn at(path: &str, text_with_cursor: &str) -> Shape {
        let offset = text_with_cursor.find('|').unwrap();
        let text = text_with_cursor.replacen('|', "", 1);
        shape_at(path, &text, offset)
    }

    #[test]
    fn finishing_a_line_is_single_line() {
        let s = at("a.py", "def f(x):\n    return x +|\n");
        assert!(!s.multiline);
        let s = at("a.py", "x = foo(|bar)\n");
        assert!(!s.multiline);
    }

    #[test]
    fn closers_after_the_cursor_still_allow_a_block_after_an_opener() {
        let s = at("a.rs", "fn main() {|}\n");
        assert!(s.multiline);
        assert_eq!(s.min_indent, 1);
    }

    #[test]
    fn an_empty_line_in_a_body_wants_a_block_at_its_indent() {
        let s = at("a.py", "def f(x):\n    |\n");
        assert!(s.multiline);
        assert_eq!(s.min_indent, 4);
        let s = at("a.py", "def f(x):\n|\n");
        assert!(s.multiline);
        assert_eq!(s.min_indent, 1);
    }

    #[test]
    fn comments_and_strings_are_single_line() {
        let s = at("a.py", "x = 1  # compute the |\n");
        assert!(s.in_comment_or_string);
        assert!(!s.multiline);
        let s = at("a.py", "msg = \"hello |\"\n");
        assert!(s.in_comment_or_string);
        let s = at("a.rs", "// a note\n|\n");
        assert!(!s.in_comment_or_string);
        assert!(s.multiline);
    }

    #[test]
    fn a_block_is_cut_where_its_scope_ends() {
        let shape = Shape {
            multiline: true,
            min_indent: 4,
            in_comment_or_string: false,
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
        };
        let c = "\n    let x = 1;\n}\nfn other() {}";
        assert_eq!(cut_to_scope(c, &shape, ""), "\n    let x = 1;\n}");
        assert_eq!(cut_to_scope(c, &shape, "\n}\n"), "\n    let x = 1;");
    }

    #[test]
    fn a_line_never_closes_a_bracket_twice() {
        assert_eq!(balance_line("a, b))", ")"), "a, b");
        assert_eq!(balance_line("a, (b))", ")\n"), "a, (b)");
        assert_eq!(balance_line("a, b", ")"), "a, b");
        assert_eq!(balance_line("\")\" + x", ""), "\")\" + x");
    }
}
