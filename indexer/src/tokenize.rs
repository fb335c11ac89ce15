//! Code-aware tokenization shared by indexing and querying.
//!
//! An identifier such as `parseHTTPResponse` or `parse_http_response` is indexed
//! both whole (`parsehttpresponse`, `parse_http_response`) and as its parts
//! (`parse`, `http`, `response`), so both identifier and natural-language queries
//! find it.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Longest token kept; longer runs are hashes, base64 or minified noise.
const MAX_TOKEN_LEN: usize = 64;

/// Calls `f(whole_or_part, byte_start, byte_end)` for every token of `text`.
pub(crate) fn for_each_token(text: &str, mut f: impl FnMut(&str, usize, usize)) {
    let mut lower = String::new();
    for_each_word(text, |word, start| {
        let trimmed = word.trim_matches('_');
        if trimmed.len() < 2 || trimmed.len() > MAX_TOKEN_LEN {
            return;
        }
        let end = start + word.len();
        lower.clear();
        lower.extend(trimmed.chars().flat_map(char::to_lowercase));
        f(&lower, start, end);
        let mut parts = 0;
        split_identifier(trimmed, |_| parts += 1);
        if parts > 1 {
            split_identifier(trimmed, |part| {
                if part.len() >= 2 {
                    let p: String = part.chars().flat_map(char::to_lowercase).collect();
                    f(&p, start, end);
                }
            });
        }
    });
}

/// Maximal runs of alphanumerics and `_`, with their byte offset.
pub(crate) fn for_each_word(text: &str, mut f: impl FnMut(&str, usize)) {
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let is_word = c.is_alphanumeric() || c == '_';
        match (is_word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                f(&text[s..i], s);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        f(&text[s..], s);
    }
}

/// Splits `snake_case`, `camelCase` and `HTTPServer` into parts.
pub(crate) fn split_identifier(ident: &str, mut f: impl FnMut(&str)) {
    for piece in ident.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<(usize, char)> = piece.char_indices().collect();
        let mut start = 0;
        for k in 1..chars.len() {
            let (i, c) = chars[k];
            let prev = chars[k - 1].1;
            let next_lower = chars.get(k + 1).is_some_and(|&(_, n)| n.is_lowercase());
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_uppercase() && c.is_uppercase() && next_lower)
                || (prev.is_numeric() && c.is_alphabetic() && c.is_uppercase());
            if boundary {
                f(&piece[start..i]);
                start = i;
            }
        }
        f(&piece[start..]);
    }
}

/// Tokens of `text`, deduplicated, in first-seen order.
pub(crate) fn token_set(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for_each_token(text, |t, _, _| {
        if seen.insert(t.to_string()) {
            out.push(t.to_string());
        }
    });
    out
}

/// Query terms with their counts, stopwords removed, most frequent first
/// (ties in first-seen order), at most `max` of them.
pub(crate) fn query_terms(text: &str, max: usize) -> Vec<(String, u32)> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for_each_token(text, |t, _, _| {
        if is_stopword(t) {
            return;
        }
        let c = counts.entry(t.to_string()).or_insert(0);
        if *c == 0 {
            order.push(t.to_string());
        }
        *c += 1;
    });
    let mut terms: Vec<(String, u32)> = order
        .into_iter()
        .map(|t| {
            let c = counts[&t];
            (t, c)
        })
        .collect();
    // Stable sort keeps first-seen order among equal counts.
    terms.sort_by_key(|t| std::cmp::Reverse(t.1));
    terms.truncate(max);
    terms
}

pub(crate) fn is_stopword(t: &str) -> bool {
    STOPWORDS.binary_search(&t).is_ok()
}

pub(crate) fn is_keyword(t: &str) -> bool {
    KEYWORDS.binary_search(&t).is_ok()
}

// Sorted, for binary search.
const STOPWORDS: &[&str] = &[
    "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because",
    "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doesn", "don",
    "each", "either", "else", "even", "for", "from", "get", "got", "had", "has", "have", "he",
    "her", "here", "his", "how", "however", "if", "in", "into", "is", "isn", "it", "its", "just",
    "like", "ll", "may", "me", "might", "more", "most", "much", "must", "my", "no", "not", "now",
    "of", "on", "one", "only", "or", "other", "our", "out", "should", "since", "so", "some",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "to", "too", "us", "use", "used", "using", "ve", "very", "was", "way", "we", "were",
    "what", "when", "where", "whether", "which", "while", "who", "why", "will", "with", "would",
    "you", "your",
];

// Sorted. Keywords common to the supported languages; they say nothing about
// which definitions a cursor needs.
const KEYWORDS: &[&str] = &[
    "abstract",
    "and",
    "as",
    "assert",
    "async",
    "auto",
    "await",
    "bool",
    "break",
    "byte",
    "case",
    "catch",
    "char",
    "class",
    "const",
    "continue",
    "crate",
    "def",
    "default",
    "defer",
    "del",
    "delete",
    "do",
    "double",
    "dyn",
    "elif",
    "else",
    "enum",
    "except",
    "export",
    "extends",
    "extern",
    "false",
    "final",
    "finally",
    "float",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "go",
    "if",
    "impl",
    "implements",
    "import",
    "in",
    "int",
    "interface",
    "is",
    "lambda",
    "let",
    "long",
    "loop",
    "match",
    "mod",
    "mut",
    "namespace",
    "new",
    "nil",
    "none",
    "not",
    "null",
    "or",
    "override",
    "package",
    "pass",
    "private",
    "protected",
    "pub",
    "public",
    "raise",
    "ref",
    "return",
    "self",
    "short",
    "signed",
    "static",
    "str",
    "string",
    "struct",
    "super",
    "switch",
    "this",
    "throw",
    "throws",
    "trait",
    "true",
    "try",
    "type",
    "typedef",
    "u32",
    "u64",
    "u8",
    "uint",
    "unsafe",
    "unsigned",
    "use",
    "usize",
    "var",
    "virtual",
    "void",
    "where",
    "while",
    "with",
    "yield",
];

/// The tantivy tokenizer registered as [`CODE_TOKENIZER`].
#[derive(Clone, Default)]
pub(crate) struct CodeTokenizer;

pub(crate) const CODE_TOKENIZER: &str = "cairn_code";

/// Streams tokens without allocating per token (indexing throughput depends on it).
pub(crate) struct CodeTokenStream<'a> {
    text: &'a str,
    pos: usize,
    word: (usize, usize),
    parts: Vec<(usize, usize)>,
    next_part: usize,
    token: Token,
}

fn set_lower(buf: &mut String, s: &str) {
    buf.clear();
    if s.is_ascii() {
        buf.push_str(s);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(s.chars().flat_map(char::to_lowercase));
    }
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        CodeTokenStream {
            text,
            pos: 0,
            word: (0, 0),
            parts: Vec::new(),
            next_part: 0,
            token: Token::default(),
        }
    }
}

impl CodeTokenStream<'_> {
    fn emit(&mut self, start: usize, end: usize) {
        let text = self.text;
        set_lower(&mut self.token.text, &text[start..end]);
        self.token.offset_from = self.word.0;
        self.token.offset_to = self.word.1;
        self.token.position = self.token.position.wrapping_add(1);
        self.token.position_length = 1;
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        loop {
            if let Some(&(s, e)) = self.parts.get(self.next_part) {
                self.next_part += 1;
                self.emit(s, e);
                return true;
            }
            // Next word: a maximal run of alphanumerics and `_`.
            let text = self.text;
            let rest = &text[self.pos..];
            let Some(off) = rest.find(|c: char| c.is_alphanumeric() || c == '_') else {
                self.pos = text.len();
                return false;
            };
            let start = self.pos + off;
            let len = text[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
            let end = start + len;
            self.pos = end;
            let word = &text[start..end];
            let trimmed = word.trim_matches('_');
            if trimmed.len() < 2 || trimmed.len() > MAX_TOKEN_LEN {
                continue;
            }
            let t_start = start + (word.len() - word.trim_start_matches('_').len());
            self.word = (start, end);
            self.parts.clear();
            self.next_part = 0;
            let base = text.as_ptr() as usize;
            let mut count = 0;
            split_identifier(trimmed, |_| count += 1);
            if count > 1 {
                let parts = &mut self.parts;
                split_identifier(trimmed, |p| {
                    if p.len() >= 2 {
                        let s = p.as_ptr() as usize - base;
                        parts.push((s, s + p.len()));
                    }
                });
            }
            self.emit(t_start, t_start + trimmed.len());
            return true;
        }
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        let mut v = Vec::new();
        for_each_token(s, |t, _, _| v.push(t.to_string()));
        v
    }

    #[test]
    fn splits_identifiers() {
        assert_eq!(
            toks("parseHTTPResponse snake_case_name x"),
            [
                "parsehttpresponse",
                "parse",
                "http",
                "response",
                "snake_case_name",
                "snake",
                "case",
                "name"
            ]
        );
        assert_eq!(toks("__init__ v2Api"), ["init", "v2api", "v2", "api"]);
    }

    #[test]
    fn tantivy_stream_matches_for_each_token() {
        let text = "fn parseHTTPResponse(__init__: Vec<u8>) -> Ünïcode_Wörd x _ v2Api";
        let mut tok = CodeTokenizer;
        let mut stream = tok.token_stream(text);
        let mut got = Vec::new();
        while stream.advance() {
            got.push(stream.token().text.clone());
        }
        assert_eq!(got, toks(text));
    }

    #[test]
    fn word_lists_are_sorted() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn query_terms_drop_stopwords() {
        let t = query_terms("the parser fails when the parser sees a tab", 10);
        assert_eq!(t[0], ("parser".to_string(), 2));
        assert!(t.iter().all(|(w, _)| w != "the" && w != "when"));
    }
}
