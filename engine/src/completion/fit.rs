//! Fits a block completion to the code around it: of the model's lines, show the ones
//! that leave the definition around the cursor parsing. A small model often writes one
//! line too many (an `else:` whose body the text below already has, a closing brace the
//! suffix already closes) or starts a block at the wrong indentation (a line after `if
//! …:` at the `if`'s own column); either breaks the code it lands in. The parser says
//! which, so the fix is the same in every language the index knows.
//!
//! Candidates, in the order they are preferred: the completion as it is, then shorter by
//! whole lines (longest first); in Python, where indentation is syntax, then the same
//! moved as a whole to the indentation the lines around the cursor ask for. The first
//! candidate with no syntax error near the cursor wins; when none is clean, the one with
//! the fewest errors, and the completion as it is keeps a tie. A block the generation
//! stopped short of its end (the token limit, the deadline) is judged with the brackets it
//! left open closed: it is unfinished, not broken.

use cairn_indexer::Lang;

use super::cleanup::code_brackets;
use super::shape::{indent_of, opens_block, Shape};
use super::window::Window;

/// The most lines of a completion tried one by one (a longer block is only tried whole).
const MAX_LINES: usize = 32;

/// Lines of text before and after the completion where an error counts, when the
/// cursor is in no named definition.
const NEAR_LINES: usize = 20;

/// The completion, or the candidate that parses best where it lands (see the module
/// doc). `out` is what the clean-up kept so far; a line completion is returned as is.
/// `cut`: the generation stopped before the model ended it.
pub fn fit_to_syntax(out: &str, window: &Window, shape: &Shape, cut: bool) -> String {
    let Some(lang) = shape.lang else {
        return out.to_string();
    };
    if !shape.multiline || out.trim().is_empty() {
        return out.to_string();
    }
    let Some(mut landing) = Landing::parse(window, shape, lang, out, cut) else {
        return out.to_string();
    };
    let as_is = landing.errors_as_is();
    if as_is == 0 {
        return out.to_string();
    }
    let mut best = (as_is, out.to_string());
    for candidate in candidates(out, window, lang) {
        let e = landing.errors(&candidate);
        if e < best.0 {
            best = (e, candidate);
            if e == 0 {
                break;
            }
        }
    }
    if best.0 < as_is {
        tracing::debug!(
            "completion fitted to the syntax around it: {as_is} errors -> {}; {:?} -> {:?}",
            best.0,
            out,
            best.1
        );
    }
    best.1
}

/// The candidates after the completion as it is, in the order they are preferred.
fn candidates(out: &str, window: &Window, lang: Lang) -> Vec<String> {
    let lines: Vec<&str> = out.split('\n').collect();
    if lines.len() > MAX_LINES {
        return Vec::new();
    }
    let mut all: Vec<String> = shorter(&lines).collect();
    if lang == Lang::Python {
        let (before, _) = window.cursor_line();
        if before.trim().is_empty() {
            let now = indent_of(before) + indent_of(lines[0]);
            for want in wanted_indents(window) {
                if let Some(moved) =
                    moved_by(&lines, indent_of(before), want as isize - now as isize)
                {
                    let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
                    all.push(moved.join("\n"));
                    all.extend(shorter(&moved));
                }
            }
        }
    }
    all
}

/// The lines cut after each line but the last, longest first.
fn shorter<'a>(lines: &'a [&'a str]) -> impl Iterator<Item = String> + 'a {
    (1..lines.len())
        .rev()
        .map(|k| lines[..k].join("\n").trim_end().to_string())
        .filter(|s| !s.trim().is_empty())
}

/// The indentations a block starting at the cursor's blank line may have: the one the
/// line above asks for (deeper after a line that opens a block), then the next code
/// line's below the cursor.
fn wanted_indents(window: &Window) -> Vec<usize> {
    let above = window.prefix[..window.prefix.len() - window.cursor_line().0.len()]
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty());
    let below = window.suffix.lines().skip(1).find(|l| !l.trim().is_empty());
    let mut want = Vec::new();
    if let Some(above) = above {
        let opens = opens_block(Some(Lang::Python), above) && !above.trim_start().starts_with('#');
        let deeper = below
            .map(indent_of)
            .filter(|&b| b > indent_of(above))
            .unwrap_or(indent_of(above) + 4);
        want.push(if opens { deeper } else { indent_of(above) });
    }
    if let Some(below) = below {
        want.push(indent_of(below));
    }
    want.dedup();
    want
}

/// The lines moved by `delta` columns (spaces), the first line's own indentation only
/// (the cursor's `fixed` columns stay); `None` when a line would need to lose more
/// indentation than it has.
fn moved_by(lines: &[&str], fixed: usize, delta: isize) -> Option<Vec<String>> {
    if delta == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            out.push(line.to_string());
            continue;
        }
        let own = indent_of(line);
        let total = own + if i == 0 { fixed } else { 0 };
        let new_total = total as isize + delta;
        let floor = if i == 0 { fixed as isize } else { 0 };
        if new_total < floor || line.starts_with('\t') {
            return None;
        }
        let keep = (new_total as usize) - if i == 0 { fixed } else { 0 };
        out.push(format!("{}{}", " ".repeat(keep), line.trim_start()));
    }
    Some(out)
}

/// The text with the completion in it, parsed once; each candidate is parsed again from
/// that tree (tree-sitter reparses only what the edit touched).
struct Landing<'a> {
    parser: tree_sitter::Parser,
    window: &'a Window,
    shape: &'a Shape,
    cut: bool,
    /// The window with the completion as it is, its parse, and where the completion
    /// (with its closers) ends in it.
    text: String,
    tree: tree_sitter::Tree,
    end: usize,
}

impl<'a> Landing<'a> {
    fn parse(
        window: &'a Window,
        shape: &'a Shape,
        lang: Lang,
        as_is: &str,
        cut: bool,
    ) -> Option<Self> {
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&lang.grammar()).ok()?;
        let inserted = inserted(as_is, cut);
        let text = format!("{}{inserted}{}", window.prefix, window.suffix);
        let tree = parser.parse(&text, None)?;
        Some(Landing {
            parser,
            window,
            shape,
            cut,
            end: window.prefix.len() + inserted.len(),
            text,
            tree,
        })
    }

    fn errors_as_is(&self) -> usize {
        self.errors_in(&self.tree, self.end)
    }

    fn errors(&mut self, candidate: &str) -> usize {
        let start = self.window.prefix.len();
        let inserted = inserted(candidate, self.cut);
        let new = format!("{}{inserted}{}", self.window.prefix, self.window.suffix);
        let new_end = start + inserted.len();
        let mut tree = self.tree.clone();
        tree.edit(&tree_sitter::InputEdit {
            start_byte: start,
            old_end_byte: self.end,
            new_end_byte: new_end,
            start_position: point_at(&self.text, start),
            old_end_position: point_at(&self.text, self.end),
            new_end_position: point_at(&new, new_end),
        });
        match self.parser.parse(&new, Some(&tree)) {
            Some(tree) => self.errors_in(&tree, new_end),
            None => usize::MAX,
        }
    }

    /// Syntax errors (error and missing nodes, and in Python what indentation breaks)
    /// that touch the text near the completion, which ends at `end`: the definition
    /// around the cursor when there is one, else `NEAR_LINES` lines either side. Errors
    /// elsewhere in the window (where it cuts a construct in two) are the same for every
    /// candidate and do not count.
    fn errors_in(&self, tree: &tree_sitter::Tree, end: usize) -> usize {
        let (window, shape) = (self.window, self.shape);
        let shift = end - window.prefix.len();
        let lo = shape
            .scope_start
            .unwrap_or_else(|| nth_line_start_back(&window.prefix, NEAR_LINES));
        let hi = shape.scope_end.map_or_else(
            || end + nth_line_end(&window.suffix, NEAR_LINES),
            |e| e + shift,
        );
        count_errors(tree.root_node(), lo, hi, shape.lang == Some(Lang::Python))
    }
}

/// What goes between prefix and suffix for `completion`: itself, and when the
/// generation was `cut`, a line closing the brackets it left open.
fn inserted(completion: &str, cut: bool) -> String {
    let close = if cut {
        closers(completion)
    } else {
        String::new()
    };
    if close.is_empty() {
        completion.to_string()
    } else {
        format!("{completion}\n{close}")
    }
}

/// The closing brackets for the ones `text` leaves open, innermost first (brackets in
/// simple quoted strings do not count).
fn closers(text: &str) -> String {
    let mut open = Vec::new();
    for (_, c) in code_brackets(text) {
        match c {
            '(' => open.push(')'),
            '[' => open.push(']'),
            '{' => open.push('}'),
            _ if open.last() == Some(&c) => {
                open.pop();
            }
            _ => {}
        }
    }
    open.iter().rev().collect()
}

/// Row and byte column of `byte` in `text`.
fn point_at(text: &str, byte: usize) -> tree_sitter::Point {
    let before = &text[..byte];
    let row = before.matches('\n').count();
    let column = byte - before.rfind('\n').map_or(0, |i| i + 1);
    tree_sitter::Point { row, column }
}

fn nth_line_start_back(text: &str, n: usize) -> usize {
    text.rmatch_indices('\n').nth(n).map_or(0, |(i, _)| i + 1)
}

fn nth_line_end(text: &str, n: usize) -> usize {
    text.match_indices('\n')
        .nth(n)
        .map_or(text.len(), |(i, _)| i)
}

fn count_errors(root: tree_sitter::Node<'_>, lo: usize, hi: usize, python: bool) -> usize {
    let near = |n: &tree_sitter::Node<'_>| n.end_byte() >= lo && n.start_byte() <= hi;
    let mut n = 0;
    let mut stack = vec![root];
    let mut cursor = root.walk();
    while let Some(node) = stack.pop() {
        if !near(&node) {
            continue;
        }
        if node.is_error() || node.is_missing() {
            n += 1;
            continue;
        }
        if python {
            // Indentation is checked here, not by the grammar: every node is looked at.
            if matches!(node.kind(), "block" | "module") {
                n += indentation_errors(node, &mut cursor, &near);
            }
        } else if !node.has_error() {
            continue;
        }
        stack.extend(node.children(&mut cursor));
    }
    n
}

/// What Python rejects and tree-sitter's grammar lets through: a block with no
/// statement (`else:` with nothing under it), and statements of one block that do not
/// start in one column (an unexpected indent, or a dedent to no outer level).
fn indentation_errors<'t>(
    block: tree_sitter::Node<'t>,
    cursor: &mut tree_sitter::TreeCursor<'t>,
    near: &impl Fn(&tree_sitter::Node<'t>) -> bool,
) -> usize {
    let statements: Vec<_> = block
        .named_children(cursor)
        .filter(|c| c.kind() != "comment")
        .collect();
    let Some(first) = statements.first() else {
        return usize::from(block.kind() == "block" && near(&block));
    };
    let column = first.start_position().column;
    statements
        .iter()
        .filter(|s| s.start_position().column != column && near(s))
        .count()
}

#[cfg(test)]
mod tests {
    use super::super::shape::shape_at;
    use super::*;

    /// The fitted completion for `raw` at `|` in `doc`, the generation ended by the model.
    fn fit(path: &str, doc: &str, raw: &str) -> String {
        fit_cut(path, doc, raw, false)
    }

    fn fit_cut(path: &str, doc: &str, raw: &str, cut: bool) -> String {
        let offset = doc.find('|').unwrap();
        let text = doc.replacen('|', "", 1);
        let window = Window {
            prefix: text[..offset].to_string(),
            suffix: text[offset..].to_string(),
            offset,
        };
        let shape = shape_at(path, &text, offset);
        fit_to_syntax(raw, &window, &shape, cut)
    }

    #[test]
    fn a_clean_completion_is_kept_whole() {
        let doc = "def f(n):\n|\n    return n\n";
        let raw = "    if n < 0:\n        n = -n";
        assert_eq!(fit("a.py", doc, raw), raw);
    }

    #[test]
    fn a_line_too_many_is_dropped() {
        // The `else:` has no body: the line below the cursor is at its own column.
        let doc = "def f(n):\n    \"\"\"Doc.\"\"\"\n|\n    return 18 * n\n";
        let raw = "    if n == 1:\n        return 1\n    else:";
        assert_eq!(fit("a.py", doc, raw), "    if n == 1:\n        return 1");
        // The rest of the function again, braces the text below already has.
        let doc = "fn f(x: i32) -> i32 {\n    if x > 0 {\n|\n    }\n    x\n}\n";
        let raw = "        return 1;\n    }\n    x\n}";
        assert_eq!(fit("a.rs", doc, raw), "        return 1;");
    }

    #[test]
    fn a_block_at_the_wrong_indentation_moves_where_the_code_wants_it() {
        let doc = "def f(xs):\n    cnt = 0\n    for x in xs:\n        if x > 0:\n|\n            print(x)\n    return cnt\n";
        assert_eq!(fit("a.py", doc, "        cnt += 1"), "            cnt += 1");
        // Indented on a line the editor already indented: only the model's own part moves.
        let doc = "def f(xs):\n    for x in xs:\n        if x > 0:\n            |\n            print(x)\n";
        assert_eq!(fit("a.py", doc, "cnt += 1"), "cnt += 1");
    }

    #[test]
    fn without_a_clean_candidate_the_completion_stays() {
        let doc = "def f(n):\n|\n    return n\n";
        let raw = "    fruit(\"5 apples\") -> 19 - 5";
        assert_eq!(fit("a.py", doc, raw), raw);
        // Unknown languages and line completions are never touched.
        assert_eq!(fit("a.txt", doc, raw), raw);
        assert_eq!(fit("a.py", "x = f(|)\n", "1, 2))"), "1, 2))");
    }

    #[test]
    fn a_block_cut_short_is_unfinished_not_broken() {
        let doc = "function trim(text) {\n  |\n}\n";
        let raw =
            "var out = [];\n  for (var j = 0; j < text.length; j++) {\n    out.push(text[j]);";
        assert_eq!(fit_cut("a.js", doc, raw, true), raw);
        // Ended by the model, the same lines leave the function unclosed.
        assert_eq!(fit("a.js", doc, raw), "var out = [];");
        assert_eq!(closers("f(a, [1, \"(\"], {"), "})");
    }

    #[test]
    fn errors_far_from_the_cursor_do_not_count() {
        // The window starts inside a definition: an error every candidate shares.
        let doc = "    return x)\ndef g():\n    pass\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\ndef f(n):\n    if n:\n|\n    return n\n";
        assert_eq!(fit("a.py", doc, "    n = 1"), "        n = 1");
    }
}
