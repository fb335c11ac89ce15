//! A small language-agnostic code lexer: whitespace and comments dropped, each token
//! hashed twice — verbatim (`raw`) and normalised (`norm`: identifiers that are not
//! keywords become one placeholder when identifiers are normalised).
//!
//! Token starts are always outside comments and strings, so lexing can resume at any
//! recorded token start (the index keeps such checkpoints instead of token streams).

/// How a file writes comments; chosen from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Syntax {
    /// `//` and `/* */` (Rust, C family, Go, Java, JS/TS, C#, Swift, Kotlin, Scala).
    Slash,
    /// Rust: `Slash` plus lifetimes (`'a` is not a character literal).
    Rust,
    /// `#` comments (Python, Ruby, shell, Perl, R) and triple-quoted strings.
    Hash,
    /// `//`, `/* */` and `#` (PHP).
    Both,
}

impl Syntax {
    /// The syntax for a path's extension; `None` for files that are not code.
    pub fn for_path(path: &std::path::Path) -> Option<Syntax> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "rs" => Syntax::Rust,
            "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" | "go" | "java" | "js"
            | "mjs" | "cjs" | "jsx" | "ts" | "mts" | "cts" | "tsx" | "cs" | "swift" | "kt"
            | "kts" | "scala" | "dart" | "m" | "mm" | "zig" => Syntax::Slash,
            "py" | "pyi" | "rb" | "sh" | "bash" | "pl" | "pm" | "r" | "jl" | "ex" | "exs" => {
                Syntax::Hash
            }
            "php" => Syntax::Both,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ident,
    Keyword,
    Number,
    Str,
    Punct,
}

#[derive(Debug, Clone, Copy)]
pub struct Token {
    /// Byte range in the lexed text.
    pub start: u32,
    pub end: u32,
    pub kind: Kind,
    /// Hash of the verbatim token.
    pub raw: u64,
    /// Hash after normalisation (equal to `raw` unless an identifier was normalised).
    pub norm: u64,
}

/// Keywords of the languages above; an identifier in this set is never normalised, so
/// structure (`fn`, `if`, `return` …) stays in the fingerprint.
const KEYWORDS: &[&str] = &[
    "abstract",
    "and",
    "as",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "crate",
    "def",
    "default",
    "defer",
    "del",
    "do",
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
    "interface",
    "is",
    "lambda",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "new",
    "nil",
    "None",
    "not",
    "null",
    "or",
    "package",
    "pass",
    "private",
    "protected",
    "pub",
    "public",
    "raise",
    "range",
    "ref",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "switch",
    "this",
    "throw",
    "trait",
    "True",
    "False",
    "true",
    "try",
    "type",
    "typeof",
    "undefined",
    "unsafe",
    "use",
    "var",
    "void",
    "where",
    "while",
    "with",
    "yield",
    "chan",
    "select",
    "map",
    "dyn",
    "int",
    "char",
    "bool",
    "float",
    "double",
    "long",
    "unsigned",
    "signed",
    "short",
    "sizeof",
    "typedef",
    "union",
    "goto",
    "volatile",
    "register",
    "auto",
    "inline",
    "virtual",
    "template",
    "typename",
    "namespace",
    "using",
    "operator",
    "friend",
    "delete",
    "instanceof",
    "of",
    "let",
];

fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// FNV-1a, then a final mix so nearby inputs spread over all 64 bits.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const IDENT_PLACEHOLDER: u64 = 0x5eed_1de7_0000_0001;
const STR_SALT: u64 = 0x0057_0000_0000_0000;

/// Lexes `text` from byte `from` (a token start or 0) and calls `f` for each token;
/// `f` returns false to stop.
pub fn lex_from(
    text: &str,
    from: usize,
    syntax: Syntax,
    normalise: bool,
    mut f: impl FnMut(Token) -> bool,
) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = from.min(n);
    // `from` must be on a char boundary; resume points always are, but be safe.
    while i < n && !text.is_char_boundary(i) {
        i += 1;
    }
    let slash = matches!(syntax, Syntax::Slash | Syntax::Rust | Syntax::Both);
    let hash_comments = matches!(syntax, Syntax::Hash | Syntax::Both);
    while i < n {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if slash && c == b'/' && i + 1 < n && b[i + 1] == b'/' {
            i = line_end(b, i);
            continue;
        }
        if slash && c == b'/' && i + 1 < n && b[i + 1] == b'*' {
            i = match find(b, i + 2, b"*/") {
                Some(j) => j + 2,
                None => n,
            };
            continue;
        }
        if hash_comments && c == b'#' {
            i = line_end(b, i);
            continue;
        }
        let start = i;
        let kind;
        if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 {
            i += 1;
            while i < n && (b[i] == b'_' || b[i].is_ascii_alphanumeric() || b[i] >= 0x80) {
                i += 1;
            }
            let word = &text[start..i];
            kind = if is_keyword(word) {
                Kind::Keyword
            } else {
                Kind::Ident
            };
        } else if c.is_ascii_digit() {
            i += 1;
            while i < n && (b[i] == b'_' || b[i] == b'.' || b[i].is_ascii_alphanumeric()) {
                // `1..2` is a range, not a number.
                if b[i] == b'.' && i + 1 < n && b[i + 1] == b'.' {
                    break;
                }
                i += 1;
            }
            kind = Kind::Number;
        } else if c == b'"' || c == b'`' || (c == b'\'' && !is_lifetime(b, i, syntax)) {
            i = string_end(b, i, syntax);
            kind = Kind::Str;
        } else {
            // One punctuation character (a whole UTF-8 char when non-ASCII).
            i += 1;
            while i < n && !text.is_char_boundary(i) {
                i += 1;
            }
            kind = Kind::Punct;
        }
        let slice = &b[start..i];
        let raw = match kind {
            Kind::Str => hash_bytes(slice) ^ STR_SALT,
            _ => hash_bytes(slice),
        };
        let norm = if normalise && kind == Kind::Ident {
            IDENT_PLACEHOLDER
        } else {
            raw
        };
        let tok = Token {
            start: start as u32,
            end: i as u32,
            kind,
            raw,
            norm,
        };
        if !f(tok) {
            return;
        }
    }
}

/// All tokens of a text.
pub fn lex(text: &str, syntax: Syntax, normalise: bool) -> Vec<Token> {
    let mut out = Vec::with_capacity(text.len() / 4);
    lex_from(text, 0, syntax, normalise, |t| {
        out.push(t);
        true
    });
    out
}

fn line_end(b: &[u8], i: usize) -> usize {
    match b[i..].iter().position(|&c| c == b'\n') {
        Some(p) => i + p + 1,
        None => b.len(),
    }
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    if from >= b.len() {
        return None;
    }
    b[from..]
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| from + p)
}

/// Rust: `'a` (lifetime or label) unless it closes as a char literal (`'a'`, `'\n'`).
fn is_lifetime(b: &[u8], i: usize, syntax: Syntax) -> bool {
    if syntax != Syntax::Rust {
        return false;
    }
    let n = b.len();
    if i + 1 >= n {
        return true;
    }
    if b[i + 1] == b'\\' {
        return false;
    }
    // One (possibly multi-byte) char, then a closing quote: a char literal.
    let mut j = i + 1;
    j += utf8_len(b[j]);
    !(j < n && b[j] == b'\'')
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// The end of a string starting at `i`. Backticks and triple quotes may span lines;
/// other strings end at their line's end when unterminated (so one stray quote cannot
/// swallow a file).
fn string_end(b: &[u8], i: usize, syntax: Syntax) -> usize {
    let n = b.len();
    let q = b[i];
    if syntax == Syntax::Hash && i + 2 < n && b[i + 1] == q && b[i + 2] == q {
        let pat = [q, q, q];
        return match find(b, i + 3, &pat) {
            Some(j) => j + 3,
            None => n,
        };
    }
    let multiline = q == b'`' || (q == b'"' && syntax == Syntax::Rust);
    let mut j = i + 1;
    while j < n {
        match b[j] {
            b'\\' => j += 2,
            c if c == q => return j + 1,
            b'\n' if !multiline => return j,
            _ => j += 1,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str, syntax: Syntax) -> Vec<String> {
        lex(src, syntax, false)
            .iter()
            .map(|t| src[t.start as usize..t.end as usize].to_string())
            .collect()
    }

    #[test]
    fn comments_and_whitespace_are_dropped() {
        let a = texts(
            "fn f(x: u32) -> u32 { x + 1 } // done\n/* c */",
            Syntax::Rust,
        );
        assert_eq!(
            a,
            ["fn", "f", "(", "x", ":", "u32", ")", "-", ">", "u32", "{", "x", "+", "1", "}"]
        );
        let b = texts("def f(x):  # c\n    return 'a#b'\n", Syntax::Hash);
        assert_eq!(b, ["def", "f", "(", "x", ")", ":", "return", "'a#b'"]);
    }

    #[test]
    fn rust_lifetimes_and_chars() {
        let a = texts("fn f<'a>(c: char) { 'x'; '\\n'; }", Syntax::Rust);
        assert!(a.contains(&"'x'".to_string()));
        assert!(a.contains(&"'\\n'".to_string()));
        assert!(a.contains(&"a".to_string()), "{a:?}");
    }

    #[test]
    fn normalised_identifiers_share_a_hash_and_keywords_do_not() {
        let a = lex("let alpha = beta;", Syntax::Rust, true);
        let b = lex("let gamma = delta;", Syntax::Rust, true);
        let na: Vec<u64> = a.iter().map(|t| t.norm).collect();
        let nb: Vec<u64> = b.iter().map(|t| t.norm).collect();
        assert_eq!(na, nb);
        assert_ne!(a[1].raw, b[1].raw);
        assert_eq!(a[0].kind, Kind::Keyword);
    }

    #[test]
    fn lexing_resumes_at_any_token_start() {
        let src = "a /* x */ b \"s // t\" c // d\n e";
        let all = lex(src, Syntax::Slash, false);
        for (k, t) in all.iter().enumerate() {
            let mut rest = Vec::new();
            lex_from(src, t.start as usize, Syntax::Slash, false, |t| {
                rest.push(t.raw);
                true
            });
            let expect: Vec<u64> = all[k..].iter().map(|t| t.raw).collect();
            assert_eq!(rest, expect);
        }
    }

    #[test]
    fn unterminated_strings_and_odd_bytes_do_not_panic() {
        for src in [
            "\"abc",
            "'",
            "`",
            "/*",
            "\"\"\"x",
            "é'",
            "'é",
            "x\u{2028}y",
            "1..2",
        ] {
            for s in [Syntax::Rust, Syntax::Slash, Syntax::Hash, Syntax::Both] {
                let _ = lex(src, s, true);
            }
        }
    }
}
