//! What shape of completion the cursor wants, read from the syntax around it.
//!
//! The decision is made up front (before the model runs) so that a single-line
//! request stops at the first newline and costs a few tokens, while a block request
//! is allowed to run on and is cut at the end of the current scope afterwards
//! (`cleanup`).

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
    /// Byte offset (in the text read) of the line where the innermost named definition
    /// around the cursor starts (function, method, class, impl), when there is one.
    pub scope_start: Option<usize>,
    /// Where that definition ends (byte offset in the text read).
    pub scope_end: Option<usize>,
    /// The language the path names, when the index knows it.
    pub lang: Option<Lang>,
}

/// Indentation width of a line (tab = 4 columns).
pub fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

const CLOSERS: &[char] = &[')', ']', '}', '"', '\'', '`', ';', ',', ':'];

/// Whether `line` opens a block: ends in an opening bracket or `=>`, or (Python) is a
/// header ending in `:`.
pub(super) fn opens_block(lang: Option<Lang>, line: &str) -> bool {
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
    let syntax = lang.map(|l| syntax_at(l, text, offset)).unwrap_or_default();
    let in_comment_or_string = syntax.in_comment_or_string;

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
    let scope_start = syntax
        .scope
        .map(|(s, _)| text[..s].rfind('\n').map_or(0, |i| i + 1));
    let scope_end = syntax.scope.map(|(_, e)| e.max(offset));
    Shape {
        multiline,
        min_indent,
        in_comment_or_string,
        scope_start,
        scope_end,
        lang,
    }
}

/// What one parse of the text says about the cursor.
#[derive(Debug, Default)]
struct Syntax {
    in_comment_or_string: bool,
    /// Start and end byte of the innermost named definition holding the cursor.
    scope: Option<(usize, usize)>,
}

/// A node kind that names a definition whose first line tells what its body is for.
/// Anonymous functions (lambdas, closures, arrow functions) do not: the definition
/// around them does.
fn is_definition(kind: &str) -> bool {
    let named = [
        "function",
        "method",
        "class",
        "impl",
        "trait",
        "interface",
        "struct",
    ]
    .iter()
    .any(|k| kind.contains(k));
    let anonymous = [
        "arrow",
        "lambda",
        "closure",
        "expression",
        "call",
        "type",
        "body",
    ]
    .iter()
    .any(|k| kind.contains(k));
    named && !anonymous
}

fn syntax_at(lang: Lang, text: &str, offset: usize) -> Syntax {
    let mut parser = tree_sitter::Parser::new();
    if parser.set_language(&lang.grammar()).is_err() {
        return Syntax::default();
    }
    let Some(tree) = parser.parse(text, None) else {
        return Syntax::default();
    };
    Syntax {
        in_comment_or_string: inside_comment_or_string(&tree, text, offset),
        scope: enclosing_definition(&tree, text, offset),
    }
}

fn inside_comment_or_string(tree: &tree_sitter::Tree, text: &str, offset: usize) -> bool {
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

/// The definition around the last code before the cursor (whitespace after a statement
/// belongs to no node but the file): its start and end byte.
fn enclosing_definition(
    tree: &tree_sitter::Tree,
    text: &str,
    offset: usize,
) -> Option<(usize, usize)> {
    let code_end = text[..offset].trim_end().len();
    let mut at = tree
        .root_node()
        .descendant_for_byte_range(code_end.saturating_sub(1), code_end);
    while let Some(node) = at {
        if is_definition(node.kind()) && node.start_byte() < offset {
            return Some((node.start_byte(), node.end_byte()));
        }
        at = node.parent();
    }
    None
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
    fn the_scope_is_the_innermost_named_definition() {
        let src = "import os\n\nclass A:\n    def f(self, x):\n        \"\"\"Doc.\"\"\"\n        y = [v for v in x]\n        return |\n";
        let s = at("a.py", src);
        let cursor = src.find('|').unwrap();
        let text = src.replacen('|', "", 1);
        assert_eq!(&text[s.scope_start.unwrap()..cursor], "    def f(self, x):\n        \"\"\"Doc.\"\"\"\n        y = [v for v in x]\n        return ");
        // A closure is not a scope of its own; a function is.
        let s = at(
            "a.rs",
            "fn main() {\n    let f = |x| {\n        x +|\n    };\n}\n",
        );
        assert_eq!(s.scope_start, Some(0));
        let s = at(
            "a.js",
            "const a = 1;\nfunction g(n) {\n  return [1].map((v) => v +|);\n}\n",
        );
        assert_eq!(s.scope_start, Some(13));
        let src = "def f(x):\n    y = |\n    return y\n\ndef g():\n    pass\n";
        let s = at("a.py", src);
        let text = src.replacen('|', "", 1);
        assert_eq!(&text[s.scope_end.unwrap()..], "\n\ndef g():\n    pass\n");
        // Top-level code has none.
        assert_eq!(at("a.py", "x = 1\ny = |\n").scope_start, None);
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
}
