//! One file in, symbols and chunks out: tree-sitter where a grammar exists,
//! windows of lines otherwise. Pure functions, no I/O.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tree_sitter::{Node, Parser, Tree};

use crate::lang::{Lang, SymbolKind};

mod symbols;

use symbols::*;

/// Chunk size limits. A definition larger than this is split along its children.
pub(crate) const MAX_CHUNK_LINES: usize = 80;
pub(crate) const MAX_CHUNK_CHARS: usize = 3000;
/// A definition at least this long gets a chunk of its own; shorter ones are
/// grouped with their neighbours.
const MIN_STANDALONE_LINES: usize = 4;
/// Lines per chunk for files without a grammar.
pub(crate) const TEXT_WINDOW_LINES: usize = 50;
/// Above this share of bytes inside ERROR nodes a file is chunked as text.
const MAX_ERROR_SHARE: f64 = 0.5;
const MAX_CHUNK_DEPTH: usize = 48;
const PARSE_DEADLINE: Duration = Duration::from_secs(3);
/// A signature (a definition's first line) is cut to this many bytes.
pub(crate) const MAX_SIGNATURE_BYTES: usize = 200;

/// A symbol definition found in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Symbol {
    pub name: String,
    pub kind: SymbolKind,
    /// Enclosing definitions, outermost first, joined with `::` or `.`.
    pub scope: Option<String>,
    /// The definition's first line, trimmed.
    pub signature: String,
    /// Repository-relative path with `/` separators.
    pub path: String,
    pub lang: String,
    pub start_byte: usize,
    pub end_byte: usize,
    /// 1-based, inclusive.
    pub start_line: usize,
    /// 1-based, inclusive.
    pub end_line: usize,
}

/// A retrievable region of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start_byte: usize,
    pub end_byte: usize,
    /// 1-based, inclusive.
    pub start_line: usize,
    /// 1-based, inclusive.
    pub end_line: usize,
    pub text: String,
    /// Names of the symbols defined in the chunk.
    pub symbols: Vec<String>,
    /// Scope of the enclosing definition(s), e.g. `Parser` for a method chunk.
    pub context: String,
    /// SHA-256 of the text, hex, first 16 digits.
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct FileAnalysis {
    pub symbols: Vec<Symbol>,
    pub chunks: Vec<Chunk>,
    /// True when the chunks follow the syntax tree; false for text windows.
    pub syntactic: bool,
}

/// Analyzes one file. `lang_label` is stored on symbols; `lang` picks the grammar.
pub fn analyze_text(
    parser: &mut Parser,
    path: &str,
    lang: Option<Lang>,
    lang_label: &str,
    text: &str,
    cancel: &dyn Fn() -> bool,
) -> FileAnalysis {
    let lines = LineIndex::new(text);
    let Some(lang) = lang else {
        return FileAnalysis {
            symbols: Vec::new(),
            chunks: window_chunks(text, &lines, 0, lines.count().saturating_sub(1), ""),
            syntactic: false,
        };
    };
    let tree = parse(parser, lang, text, cancel);
    let Some(tree) = tree else {
        return FileAnalysis {
            symbols: Vec::new(),
            chunks: window_chunks(text, &lines, 0, lines.count().saturating_sub(1), ""),
            syntactic: false,
        };
    };
    let root = tree.root_node();
    let (symbols, error_bytes) = collect_symbols(lang, root, text, path, lang_label, &lines);
    let error_share = if text.is_empty() {
        0.0
    } else {
        error_bytes as f64 / text.len() as f64
    };
    if error_share > MAX_ERROR_SHARE {
        let mut chunks = window_chunks(text, &lines, 0, lines.count().saturating_sub(1), "");
        attach_symbols(&mut chunks, &symbols);
        return FileAnalysis {
            symbols,
            chunks,
            syntactic: false,
        };
    }
    let mut chunker = Chunker {
        lang,
        text,
        lines: &lines,
        chunks: Vec::new(),
        last_line: None,
    };
    chunker.chunk_children(root, 0, None);
    let mut chunks = chunker.chunks;
    attach_symbols(&mut chunks, &symbols);
    FileAnalysis {
        symbols,
        chunks,
        syntactic: true,
    }
}

pub(crate) fn parse(
    parser: &mut Parser,
    lang: Lang,
    text: &str,
    cancel: &dyn Fn() -> bool,
) -> Option<Tree> {
    if let Err(e) = parser.set_language(&lang.grammar()) {
        tracing::warn!(
            "tree-sitter grammar for {} failed to load: {e}",
            lang.name()
        );
        return None;
    }
    let start = Instant::now();
    let mut progress = |_: &tree_sitter::ParseState| {
        if start.elapsed() > PARSE_DEADLINE || cancel() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let bytes = text.as_bytes();
    let tree = parser.parse_with_options(
        &mut |offset, _| bytes.get(offset..).unwrap_or(&[]),
        None,
        Some(tree_sitter::ParseOptions::new().progress_callback(&mut progress)),
    );
    parser.reset();
    tree
}

/// Byte offsets of line starts.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        if starts.len() > 1 && *starts.last().unwrap_or(&0) == text.len() {
            starts.pop();
        }
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.starts.len()
    }

    /// 0-based line of a byte offset.
    pub(crate) fn line_of(&self, byte: usize) -> usize {
        match self.starts.binary_search(&byte) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    pub(crate) fn line_start(&self, line: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(self.len)
    }

    /// End of the line, excluding its newline.
    pub(crate) fn line_end(&self, line: usize, text: &str) -> usize {
        let next = self.starts.get(line + 1).copied().unwrap_or(self.len);
        if next > 0
            && next <= text.len()
            && text.as_bytes().get(next - 1) == Some(&b'\n')
            && next > self.line_start(line)
        {
            next - 1
        } else {
            next
        }
    }
}

fn hash_text(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    hex::encode(&d[..8])
}

fn make_chunk(text: &str, lines: &LineIndex, first: usize, last: usize, context: &str) -> Chunk {
    let start_byte = lines.line_start(first);
    let end_byte = lines.line_end(last, text).max(start_byte);
    let body = &text[start_byte..end_byte];
    Chunk {
        start_byte,
        end_byte,
        start_line: first + 1,
        end_line: last + 1,
        text: body.to_string(),
        symbols: Vec::new(),
        context: context.to_string(),
        hash: hash_text(body),
    }
}

/// Windows of [`TEXT_WINDOW_LINES`] lines (0-based, inclusive range); a line
/// longer than [`MAX_CHUNK_CHARS`] is cut into pieces.
pub(crate) fn window_chunks(
    text: &str,
    lines: &LineIndex,
    first: usize,
    last: usize,
    context: &str,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    if text.is_empty() {
        return out;
    }
    let mut start = first;
    while start <= last {
        let line_len = lines.line_end(start, text) - lines.line_start(start);
        if line_len > MAX_CHUNK_CHARS {
            // One huge line (minified code, data): split at char boundaries.
            let ls = lines.line_start(start);
            let le = lines.line_end(start, text);
            let mut s = ls;
            while s < le {
                let mut e = (s + MAX_CHUNK_CHARS).min(le);
                while !text.is_char_boundary(e) {
                    e -= 1;
                }
                if e <= s {
                    break;
                }
                let body = &text[s..e];
                if !body.trim().is_empty() {
                    out.push(Chunk {
                        start_byte: s,
                        end_byte: e,
                        start_line: start + 1,
                        end_line: start + 1,
                        text: body.to_string(),
                        symbols: Vec::new(),
                        context: context.to_string(),
                        hash: hash_text(body),
                    });
                }
                s = e;
            }
            start += 1;
            continue;
        }
        let mut end = start;
        let mut chars = line_len;
        while end < last && end - start + 1 < TEXT_WINDOW_LINES {
            let next_len = lines.line_end(end + 1, text) - lines.line_start(end + 1);
            if chars + next_len > MAX_CHUNK_CHARS {
                break;
            }
            chars += next_len + 1;
            end += 1;
        }
        let c = make_chunk(text, lines, start, end, context);
        if !c.text.trim().is_empty() {
            out.push(c);
        }
        start = end + 1;
    }
    out
}

fn attach_symbols(chunks: &mut [Chunk], symbols: &[Symbol]) {
    // Context: the innermost definition that starts before the chunk and covers it.
    for c in chunks.iter_mut() {
        let enclosing = symbols
            .iter()
            .filter(|s| s.start_line < c.start_line && s.end_line >= c.start_line)
            .max_by_key(|s| s.start_line);
        if let Some(s) = enclosing {
            c.context = match &s.scope {
                Some(scope) => format!("{scope}.{}", s.name),
                None => s.name.clone(),
            };
        }
    }
    for s in symbols {
        // The chunk holding the symbol's first line; chunks are sorted by line.
        let i = chunks.partition_point(|c| c.end_line < s.start_line);
        if let Some(c) = chunks.get_mut(i) {
            if c.start_line <= s.start_line && !c.symbols.contains(&s.name) {
                c.symbols.push(s.name.clone());
            }
        }
    }
}

// ---------------------------------------------------------------- chunks

struct Chunker<'a> {
    lang: Lang,
    text: &'a str,
    lines: &'a LineIndex,
    chunks: Vec<Chunk>,
    /// Last 0-based line already emitted, so chunks never overlap.
    last_line: Option<usize>,
}

fn is_trivia(kind: &str) -> bool {
    matches!(
        kind,
        "comment"
            | "line_comment"
            | "block_comment"
            | "attribute_item"
            | "inner_attribute_item"
            | "decorator"
            | "annotation"
            | "marker_annotation"
            | "attribute_list"
    )
}

/// Wrapper nodes that stand for the definition they hold.
fn is_definition_wrapper(kind: &str) -> bool {
    matches!(
        kind,
        "decorated_definition"
            | "export_statement"
            | "template_declaration"
            | "impl_item"
            | "declaration_list"
            | "namespace_definition"
    )
}

impl Chunker<'_> {
    fn is_definition(&self, node: Node<'_>) -> bool {
        is_definition_wrapper(node.kind())
            || (role_of(kind_roles(self.lang), node) == KindRole::Definition
                && classify(self.lang, node, self.text, false).is_some())
    }

    fn line_span(&self, node: Node<'_>) -> (usize, usize) {
        let s = self.lines.line_of(node.start_byte());
        let e = self
            .lines
            .line_of(node.end_byte().saturating_sub(1).max(node.start_byte()));
        (s, e)
    }

    fn too_big(&self, first: usize, last: usize) -> bool {
        let bytes = self.lines.line_end(last, self.text) - self.lines.line_start(first);
        last + 1 - first > MAX_CHUNK_LINES || bytes > MAX_CHUNK_CHARS
    }

    fn blank(&self, line: usize) -> bool {
        self.text[self.lines.line_start(line)..self.lines.line_end(line, self.text)]
            .trim()
            .is_empty()
    }

    fn emit(&mut self, first: usize, last: usize) {
        let mut first = match self.last_line {
            Some(l) if first <= l => l + 1,
            _ => first,
        };
        let mut last = last;
        while first < last && self.blank(first) {
            first += 1;
        }
        while last > first && self.blank(last) {
            last -= 1;
        }
        if first > last {
            return;
        }
        let c = make_chunk(self.text, self.lines, first, last, "");
        if !c.text.trim().is_empty() {
            self.chunks.push(c);
        }
        self.last_line = Some(last);
    }

    fn emit_windows(&mut self, first: usize, last: usize) {
        let first = match self.last_line {
            Some(l) if first <= l => l + 1,
            _ => first,
        };
        if first > last {
            return;
        }
        let w = window_chunks(self.text, self.lines, first, last, "");
        self.chunks.extend(w);
        self.last_line = Some(last);
    }

    /// Groups the children of `node` into chunks: small neighbours together,
    /// each sizeable definition alone (with its leading comments), big nodes
    /// split along their own children.
    /// `carry` is the parent's pending group (e.g. a class header), which the
    /// first small children join.
    fn chunk_children(&mut self, node: Node<'_>, depth: usize, carry: Option<(usize, usize)>) {
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        // Pending group as a 0-based line span plus where its trailing trivia starts.
        let mut group: Option<(usize, usize)> = carry;
        let mut trivia_start: Option<usize> = None;
        for child in children {
            let (s, e) = self.line_span(child);
            if self.too_big(s, e) {
                trivia_start = None;
                if depth < MAX_CHUNK_DEPTH && child.child_count() > 0 {
                    let carry = group.take();
                    self.chunk_children(child, depth + 1, carry);
                } else {
                    if let Some((gs, ge)) = group.take() {
                        self.emit(gs, ge);
                    }
                    self.emit_windows(s, e);
                }
                continue;
            }
            if self.is_definition(child) && e + 1 - s >= MIN_STANDALONE_LINES {
                // Leading comments and attributes go with the definition.
                let start = match (group, trivia_start) {
                    (Some((gs, _)), Some(ts)) => {
                        if ts > gs {
                            self.emit(gs, ts - 1);
                        }
                        ts
                    }
                    (Some((gs, ge)), None) => {
                        self.emit(gs, ge);
                        s
                    }
                    (None, _) => s,
                };
                group = None;
                trivia_start = None;
                self.emit(start, e);
                continue;
            }
            group = match group {
                Some((gs, ge)) if !self.too_big(gs, e.max(ge)) => Some((gs, e.max(ge))),
                Some((gs, ge)) => {
                    self.emit(gs, ge);
                    trivia_start = None;
                    Some((s, e))
                }
                None => Some((s, e)),
            };
            if is_trivia(child.kind()) {
                trivia_start.get_or_insert(s);
            } else {
                trivia_start = None;
            }
        }
        if let Some((gs, ge)) = group {
            self.emit(gs, ge);
        }
    }
}
