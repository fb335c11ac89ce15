//! Secret redaction for text that leaves the machine (prompts to remote model backends).
//!
//! Each secret becomes `<redacted:KIND>`, so a model still sees where a key was and of
//! which kind, and never any part of it. Callers record `count` and `kinds` in the
//! ledger, never the text that was replaced.
//!
//! Rules run in priority order (provider-specific shapes first, then bearer and AWS
//! secret keys, `.env` values, URL credentials and secret-named assignments); a later rule never redacts inside a span
//! an earlier one took. Every rule is one pass of a compiled regex over the text, and the
//! output is built in one pass at the end; when something was found, one more round
//! checks the output (see `redact`). The generic rule is deliberately conservative: a
//! value is redacted only when its key names a secret and the value itself looks like
//! one (length, Shannon entropy, not a reference, call, identifier or placeholder).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Redacted text, with how many secrets were replaced and of which kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    pub text: String,
    pub count: usize,
    pub kinds: BTreeMap<&'static str, usize>,
}

const PLACEHOLDER_PREFIX: &str = "<redacted:";

/// Redacts secrets from `text`. `path` (repository-relative or absolute), when known,
/// turns on whole-value redaction for `.env`-style files and whole-file redaction for
/// private-key files.
pub fn redact(text: &str, path: Option<&str>) -> Redaction {
    let kind = FileKind::of(path);
    if kind == FileKind::PrivateKey && !text.trim().is_empty() {
        let placeholder = placeholder("private-key");
        if text.trim() == placeholder {
            return Redaction::unchanged(text);
        }
        return Redaction {
            text: placeholder,
            count: 1,
            kinds: BTreeMap::from([("private-key", 1)]),
        };
    }
    let mut result = scan(text, kind);
    // A placeholder gives its neighbours new context (a word boundary, a shorter value),
    // so a second round can find what the first could not see. It only runs when the
    // first found something, and in practice finds nothing; the loop makes `redact`
    // idempotent.
    let mut rounds = 1;
    while result.count > 0 && rounds < MAX_ROUNDS {
        let again = scan(&result.text, kind);
        if again.count == 0 {
            break;
        }
        result.text = again.text;
        result.count += again.count;
        for (k, n) in again.kinds {
            *result.kinds.entry(k).or_insert(0) += n;
        }
        rounds += 1;
    }
    result
}

const MAX_ROUNDS: usize = 4;

/// One round: every rule once over `text`, then the output in one pass.
fn scan(text: &str, kind: FileKind) -> Redaction {
    let mut spans = Spans::default();
    private_key_blocks(text, &mut spans);
    for rule in TOKEN_RULES.iter() {
        rule.apply(text, &mut spans);
    }
    for rule in CONTEXT_RULES.iter() {
        rule.apply(text, &mut spans);
    }
    match kind {
        FileKind::KeyValue => key_value_lines(text, &mut spans),
        FileKind::Netrc => NETRC.apply(text, &mut spans),
        _ => {}
    }
    url_passwords(text, &mut spans);
    generic_assignments(text, kind == FileKind::Config, &mut spans);
    spans.render(text)
}

impl Redaction {
    fn unchanged(text: &str) -> Redaction {
        Redaction {
            text: text.to_owned(),
            count: 0,
            kinds: BTreeMap::new(),
        }
    }
}

fn placeholder(kind: &str) -> String {
    format!("{PLACEHOLDER_PREFIX}{kind}>")
}

/// How a file's name changes what counts as a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// Source code, prose or unknown: a bare identifier is a reference, not a literal.
    Code,
    /// Configuration formats where unquoted values are literals (YAML, TOML, shell...).
    Config,
    /// `.env`, `.npmrc`, `.pypirc`, AWS `credentials`: every `KEY=value` value is redacted.
    KeyValue,
    /// `.netrc`: `password`/`account` tokens.
    Netrc,
    /// `id_rsa` and friends: the whole file.
    PrivateKey,
}

impl FileKind {
    fn of(path: Option<&str>) -> FileKind {
        let Some(path) = path else {
            return FileKind::Code;
        };
        let base = path
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(path)
            .to_ascii_lowercase();
        let ext = base.rsplit_once('.').map_or("", |(_, e)| e);
        const KEY_FILES: [&str; 6] = [
            "id_rsa",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            "id_ecdsa_sk",
            "id_ed25519_sk",
        ];
        if KEY_FILES.contains(&base.as_str()) || matches!(ext, "key" | "ppk") {
            return FileKind::PrivateKey;
        }
        // Templates are meant to be shared; their values are scanned like config.
        const TEMPLATES: [&str; 7] = [
            "example", "sample", "template", "dist", "defaults", "tpl", "schema",
        ];
        let env_like = base == ".env"
            || base == ".envrc"
            || base.starts_with(".env.")
            || base.ends_with(".env");
        if env_like && TEMPLATES.iter().any(|t| base.ends_with(&format!(".{t}"))) {
            return FileKind::Config;
        }
        if env_like || matches!(base.as_str(), ".npmrc" | ".pypirc" | "credentials") {
            return FileKind::KeyValue;
        }
        if base == ".netrc" || base == "_netrc" {
            return FileKind::Netrc;
        }
        let config_base = matches!(base.as_str(), "dockerfile" | "containerfile" | "makefile");
        let config_ext = matches!(
            ext,
            "yaml"
                | "yml"
                | "toml"
                | "ini"
                | "cfg"
                | "conf"
                | "config"
                | "properties"
                | "json"
                | "jsonc"
                | "xml"
                | "sh"
                | "bash"
                | "zsh"
                | "fish"
                | "ps1"
                | "tf"
                | "tfvars"
                | "hcl"
        );
        if config_base || config_ext {
            FileKind::Config
        } else {
            FileKind::Code
        }
    }
}

/// Accepted spans, non-overlapping, by start byte.
#[derive(Default)]
struct Spans {
    by_start: BTreeMap<usize, (usize, &'static str)>,
}

impl Spans {
    /// Takes `start..end` unless it is empty or overlaps a span already taken.
    fn add(&mut self, start: usize, end: usize, kind: &'static str) -> bool {
        if start >= end {
            return false;
        }
        // Taken spans do not overlap, so the one starting last before `end` also ends last.
        if let Some((_, &(prev_end, _))) = self.by_start.range(..end).next_back() {
            if prev_end > start {
                return false;
            }
        }
        self.by_start.insert(start, (end, kind));
        true
    }

    /// The parts of `start..end` no taken span covers.
    fn gaps(&self, start: usize, end: usize) -> Vec<(usize, usize)> {
        let mut at = start;
        if let Some((_, &(prev_end, _))) = self.by_start.range(..start).next_back() {
            at = at.max(prev_end);
        }
        let mut gaps = Vec::new();
        for (&s, &(e, _)) in self.by_start.range(start..end) {
            if s > at {
                gaps.push((at, s));
            }
            at = at.max(e);
        }
        if at < end {
            gaps.push((at, end));
        }
        gaps
    }

    /// Where the first taken span inside `start..end` begins.
    fn first_start_in(&self, start: usize, end: usize) -> Option<usize> {
        self.by_start.range(start..end).next().map(|(&s, _)| s)
    }

    fn render(self, text: &str) -> Redaction {
        if self.by_start.is_empty() {
            return Redaction::unchanged(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut kinds = BTreeMap::new();
        let mut at = 0;
        for (&start, &(end, kind)) in &self.by_start {
            out.push_str(&text[at..start]);
            out.push_str(PLACEHOLDER_PREFIX);
            out.push_str(kind);
            out.push('>');
            *kinds.entry(kind).or_insert(0) += 1;
            at = end;
        }
        out.push_str(&text[at..]);
        Redaction {
            text: out,
            count: self.by_start.len(),
            kinds,
        }
    }
}

/// One regex whose group 1 (or the whole match, without groups) is the secret.
struct Rule {
    kind: &'static str,
    re: Regex,
    check: fn(&str) -> bool,
}

impl Rule {
    fn new(kind: &'static str, pattern: &str, check: fn(&str) -> bool) -> Rule {
        Rule {
            kind,
            re: Regex::new(pattern).expect("redaction patterns are valid"),
            check,
        }
    }

    fn apply(&self, text: &str, spans: &mut Spans) {
        for caps in self.re.captures_iter(text) {
            let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                continue;
            };
            if (self.check)(m.as_str()) {
                spans.add(m.start(), m.end(), self.kind);
            }
        }
    }
}

fn always(_: &str) -> bool {
    true
}

/// Lowercase, uppercase and digit classes present: random tokens have at least two.
fn char_classes(s: &str) -> usize {
    let lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    usize::from(lower) + usize::from(upper) + usize::from(digit)
}

fn mixed(s: &str) -> bool {
    char_classes(s) >= 2
}

/// `sk-` alone is a common prefix in kebab-case words; a key mixes all three classes.
fn openai_like(s: &str) -> bool {
    let rest = s.strip_prefix("sk-").unwrap_or(s);
    let prefixed = ["proj-", "svcacct-", "admin-"]
        .iter()
        .any(|p| rest.starts_with(p));
    char_classes(rest) == 3 || (prefixed && char_classes(rest) >= 2)
}

fn high_entropy(s: &str) -> bool {
    shannon_entropy(s) >= 3.0 && !is_placeholder(s) && !is_word_like(s)
}

/// Provider-specific shapes: a prefix no ordinary text has, then a random body.
/// (?-u:\b) is an ASCII word boundary; it keeps the regexes on the fast DFA path.
static TOKEN_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        Rule::new(
            "aws-access-key",
            r"(?-u:\b)((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|A3T[A-Z0-9])[A-Z0-9]{16})(?-u:\b)",
            always,
        ),
        Rule::new(
            "github-token",
            r"(?-u:\b)(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})(?-u:\b)",
            always,
        ),
        Rule::new(
            "gitlab-token",
            r"(?-u:\b)(gl(?:pat|ptt|dt|rt|ft|cbt|soat|imt)-[A-Za-z0-9_\-]{20,})",
            always,
        ),
        Rule::new(
            "slack-webhook",
            r"(?i)https?://hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9/_+\-]{20,})",
            always,
        ),
        Rule::new(
            "slack-token",
            r"(?-u:\b)(xox[abeoprs]-[A-Za-z0-9\-]{10,}|xapp-[0-9]-[A-Za-z0-9\-]{10,})",
            always,
        ),
        Rule::new(
            "stripe-key",
            r"(?-u:\b)((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})(?-u:\b)",
            always,
        ),
        Rule::new(
            "google-api-key",
            r"(?-u:\b)(AIza[A-Za-z0-9_\-]{35})(?:[^A-Za-z0-9_\-]|$)",
            always,
        ),
        Rule::new(
            "anthropic-key",
            r"(?-u:\b)(sk-ant-[A-Za-z0-9_\-]{20,})",
            mixed,
        ),
        Rule::new(
            "openai-key",
            r"(?-u:\b)(sk-[A-Za-z0-9_\-]{20,})",
            openai_like,
        ),
        Rule::new(
            "huggingface-token",
            r"(?-u:\b)(hf_[A-Za-z0-9]{30,})(?-u:\b)",
            mixed,
        ),
        Rule::new(
            "npm-token",
            r"(?-u:\b)(npm_[A-Za-z0-9]{36,})(?-u:\b)",
            mixed,
        ),
        Rule::new("pypi-token", r"(?-u:\b)(pypi-[A-Za-z0-9_\-]{50,})", mixed),
        Rule::new(
            "sendgrid-key",
            r"(?-u:\b)(SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})(?-u:\b)",
            always,
        ),
        Rule::new(
            "jwt",
            r"(?-u:\b)(eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})",
            always,
        ),
    ]
});

/// Shapes that are only secrets in context.
static CONTEXT_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // `Authorization: Bearer …`, `curl -H "Authorization: Basic …"`.
        Rule::new(
            "bearer-token",
            r"(?i)(?-u:\b)(?:bearer|basic)[ \t]+([A-Za-z0-9._~+/\-]{16,}=*)",
            high_entropy,
        ),
        Rule::new(
            "aws-secret-key",
            r"(?i)(?:aws[A-Za-z0-9_.\-]*secret|secret_?access_?key)[A-Za-z0-9_.\-]*[\x22'`]?\]?[ \t]*(?:=>|:=|=|:)[ \t]*[\x22'`]?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
            |s| shannon_entropy(s) >= 4.0,
        ),
    ]
});

static NETRC: LazyLock<Rule> = LazyLock::new(|| {
    Rule::new(
        "password",
        r"(?-u:\b)(?:password|passwd|account)[ \t\r\n]+([^\s]+)",
        |s| !s.starts_with(PLACEHOLDER_PREFIX),
    )
});

/// `-----BEGIN … PRIVATE KEY-----` to its END line (or the end of the text, when a
/// window cut it): the body goes, the armour lines stay so the model knows what was there.
static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----([\s\S]*?)(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)",
    )
    .expect("valid")
});

fn private_key_blocks(text: &str, spans: &mut Spans) {
    for caps in PRIVATE_KEY.captures_iter(text) {
        let Some(body) = caps.get(1) else { continue };
        // Keep the line breaks around the body (real ones, or `\n` escapes in JSON).
        let s = body.as_str();
        let lead = s.len() - trim_breaks_start(s).len();
        let inner = trim_breaks_end(&s[lead..]);
        if inner.is_empty() || inner.starts_with(PLACEHOLDER_PREFIX) {
            continue;
        }
        let start = body.start() + lead;
        spans.add(start, start + inner.len(), "private-key");
    }
}

fn trim_breaks_start(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        let t = t
            .strip_prefix("\\n")
            .or_else(|| t.strip_prefix("\\r"))
            .unwrap_or(t);
        if t.len() == s.len() {
            return s;
        }
        s = t;
    }
}

fn trim_breaks_end(mut s: &str) -> &str {
    loop {
        let t = s.trim_end();
        let t = t
            .strip_suffix("\\n")
            .or_else(|| t.strip_suffix("\\r"))
            .unwrap_or(t);
        if t.len() == s.len() {
            return s;
        }
        s = t;
    }
}

/// `scheme://user:password@host`: only the password goes. The password may contain `@`
/// (badly encoded), so it runs to the last `@` before the path.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)[a-z][a-z0-9+.\-]{0,30}://[^\s:/?#@\x22'`<>\\]{0,256}:([^\s/?#\x22'`<>\\]{1,256})@",
    )
    .expect("valid")
});

fn url_passwords(text: &str, spans: &mut Spans) {
    for caps in URL_CREDENTIALS.captures_iter(text) {
        let Some(pw) = caps.get(1) else { continue };
        if !is_reference(pw.as_str()) && !is_placeholder(pw.as_str()) {
            spans.add(pw.start(), pw.end(), "url-password");
        }
    }
}

/// `KEY=value` lines of `.env`-style files: every value, quotes kept. A token inside a
/// value keeps its own kind; the rest of the value goes around it.
static KEY_VALUE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mR)^[ \t]*(?:export[ \t]+)?[^\s=#;\[][^=\r\n]*?[ \t]*=[ \t]*([^\r\n]*?)[ \t]*$")
        .expect("valid")
});

fn key_value_lines(text: &str, spans: &mut Spans) {
    for caps in KEY_VALUE_LINE.captures_iter(text) {
        let Some(v) = caps.get(1) else { continue };
        let (offset, value) = line_value(v.as_str());
        if value.is_empty() || is_reference(value) || is_placeholder(value) {
            continue;
        }
        let start = v.start() + offset;
        for (s, e) in spans.gaps(start, start + value.len()) {
            let gap = &text[s..e];
            let trimmed = gap.trim_start();
            let s = s + (gap.len() - trimmed.len());
            let e = s + trimmed.trim_end().len();
            spans.add(s, e, "env-value");
        }
    }
}

/// `"x" # note` → (1, x); `x # note` → (0, x): where the value starts, and the value.
fn line_value(raw: &str) -> (usize, &str) {
    for q in ['"', '\'', '`'] {
        if let Some(rest) = raw.strip_prefix(q) {
            if let Some(end) = rest.find(q) {
                return (1, &rest[..end]);
            }
        }
    }
    (0, raw.find(" #").map_or(raw, |i| raw[..i].trim_end()))
}

/// Where a secret-named assignment may be: a key word, the rest of the identifier and
/// an assignment operator. Starting at the key word (not the identifier) lets the regex
/// engine skip ahead on literals; `generic_assignments` then finds where the key starts.
static ASSIGNMENT_HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i:pass|pw|secret|token|key|auth|cred|bearer)[A-Za-z0-9_.\-]*[\x22'`]?\]?[ \t]*[=:]",
    )
    .expect("valid")
});

/// A key, an assignment (`=`, `:`, `=>`, `:=`) and a value, at the start of the haystack.
/// `looks_like_literal_secret`, `classify_key` and `random_enough` decide.
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        \A
        (?P<key>[A-Za-z0-9_.\-]+)
        ["'`]?\]?[\ \t]*
        (?:=>|:=|=|:)
        [\ \t]*
        (?:
            "(?P<dq>[^"\s]+)"
          | '(?P<sq>[^'\s]+)'
          | `(?P<bq>[^`\s]+)`
          | (?P<uq>[^\s"'`,;=:<>(){}\[\]\\][^\s"'`,;<>(){}\[\]\\]*)
        )
        "#,
    )
    .expect("valid")
});

/// Keys longer than this are not names a person wrote.
const MAX_KEY_BACKTRACK: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    Password,
    Secret,
}

impl KeyClass {
    fn kind(self) -> &'static str {
        match self {
            KeyClass::Password => "password",
            KeyClass::Secret => "secret",
        }
    }
}

fn generic_assignments(text: &str, config: bool, spans: &mut Spans) {
    let bytes = text.as_bytes();
    for hint in ASSIGNMENT_HINT.find_iter(text) {
        // Back to the start of the identifier; ASCII bytes only, so a char boundary.
        let floor = hint.start().saturating_sub(MAX_KEY_BACKTRACK);
        let mut key_start = hint.start();
        while key_start > floor
            && (bytes[key_start - 1].is_ascii_alphanumeric()
                || matches!(bytes[key_start - 1], b'_' | b'.' | b'-'))
        {
            key_start -= 1;
        }
        if !text.is_char_boundary(key_start) {
            continue;
        }
        let Some(caps) = ASSIGNMENT.captures(&text[key_start..]) else {
            continue;
        };
        let (Some(key), Some((value, quoted))) = (caps.name("key"), assignment_value(&caps)) else {
            continue;
        };
        let (start, mut end) = (key_start + value.start(), key_start + value.end());
        let mut next = text[end..].chars().next();
        // An unquoted value stops where an earlier rule's redaction starts, as it will
        // when the placeholder is there.
        if let Some(cut) = spans.first_start_in(start, end).filter(|_| !quoted) {
            end = cut;
            next = Some('<');
        }
        let value = &text[start..end];
        if !looks_like_literal_secret(value, quoted, config, next) {
            continue;
        }
        if let Some(class) = classify_key(key.as_str()) {
            if random_enough(value, class) {
                spans.add(start, end, class.kind());
            }
        }
    }
}

fn assignment_value<'t>(caps: &Captures<'t>) -> Option<(regex::Match<'t>, bool)> {
    if let Some(m) = caps.name("uq") {
        return Some((m, false));
    }
    ["dq", "sq", "bq"]
        .iter()
        .find_map(|g| caps.name(g))
        .map(|m| (m, true))
}

/// The words of an identifier: split at non-alphanumerics and camelCase humps.
fn split_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            // `apiKey` → api|Key; `APIKey` → API|Key.
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Words that, at the end of a key, say it names something about a secret
/// (`token_url`, `password_file`, `api_key_header`), not the secret.
const METADATA_SUFFIXES: &[&str] = &[
    "url",
    "uri",
    "urls",
    "endpoint",
    "hostname",
    "domain",
    "issuer",
    "audience",
    "realm",
    "region",
    "server",
    "user",
    "username",
    "email",
    "login",
    "host",
    "file",
    "files",
    "path",
    "dir",
    "name",
    "names",
    "type",
    "types",
    "kind",
    "header",
    "headers",
    "prompt",
    "field",
    "fields",
    "env",
    "var",
    "length",
    "len",
    "size",
    "limit",
    "hash",
    "expiry",
    "expires",
    "expiration",
    "ttl",
    "timeout",
    "count",
    "min",
    "max",
    "policy",
    "pattern",
    "regex",
    "label",
    "hint",
    "format",
    "mode",
    "method",
    "version",
    "required",
    "enabled",
    "disabled",
    "provider",
    "scope",
    "scopes",
    "ref",
    "location",
    "store",
    "storage",
    "manager",
    "service",
    "class",
    "factory",
    "helper",
    "validator",
    "placeholder",
    "message",
    "msg",
    "error",
    "description",
    "title",
    "text",
    "reset",
    "strength",
    "rule",
    "rules",
    "schema",
    "usage",
    "index",
    "position",
    "offset",
    "cache",
    "source",
    "prefix",
    "suffix",
    "separator",
    "regexp",
    "encoding",
];

fn classify_key(key: &str) -> Option<KeyClass> {
    let words = split_words(key);
    let last = words.last()?;
    if METADATA_SUFFIXES.contains(&last.as_str()) {
        return None;
    }
    let password = words.iter().any(|w| {
        w.contains("passw")
            || w.contains("passphrase")
            || matches!(w.as_str(), "pwd" | "pw" | "pass" | "pword")
            || w.ends_with("pwd")
    });
    if password {
        return Some(KeyClass::Password);
    }
    const KEY_QUALIFIERS: &[&str] = &[
        "api",
        "access",
        "private",
        "secret",
        "signing",
        "master",
        "encryption",
        "auth",
        "account",
        "shared",
        "client",
        "app",
        "license",
        "session",
        "webhook",
    ];
    let secret_word = |w: &String| {
        (w.contains("secret") && !w.contains("secretar"))
            || w.ends_with("token")
            || w.ends_with("apikey")
            || matches!(
                w.as_str(),
                "auth"
                    | "authorization"
                    | "credential"
                    | "credentials"
                    | "creds"
                    | "cred"
                    | "bearer"
                    | "privatekey"
                    | "accesskey"
                    | "signingkey"
                    | "masterkey"
                    | "encryptionkey"
                    | "authkey"
                    | "accountkey"
                    | "sessionkey"
                    | "appkey"
            )
    };
    let qualified_key = words
        .windows(2)
        .any(|p| p[1] == "key" && KEY_QUALIFIERS.contains(&p[0].as_str()));
    (qualified_key || words.iter().any(secret_word)).then_some(KeyClass::Secret)
}

/// A literal (not a call, reference, placeholder, path, name or identifier) of at least
/// 8 characters. Checked before the key, as it rules out most candidates cheaply.
fn looks_like_literal_secret(value: &str, quoted: bool, config: bool, next: Option<char>) -> bool {
    // `os.environ["X"]`, `get_token()`: a call or subscript, not a literal.
    if !quoted && matches!(next, Some('(' | '[')) {
        return false;
    }
    if value.chars().count() < 8 || is_reference(value) || is_placeholder(value) {
        return false;
    }
    if value.contains("://") || is_path(value) || is_hostname(value) {
        return false;
    }
    if is_word_like(value) {
        return false;
    }
    !(!quoted && !config && is_code_identifier(value))
}

/// Shannon entropy high enough for the key's class: passwords are often short and
/// human-made, tokens are long and random.
fn random_enough(value: &str, class: KeyClass) -> bool {
    let n = value.chars().count();
    let digits_only = value.bytes().all(|b| b.is_ascii_digit());
    let entropy = shannon_entropy(value);
    match class {
        KeyClass::Password => entropy >= 2.5,
        KeyClass::Secret => !digits_only && entropy >= ((n as f64).log2() - 0.5).min(3.3),
    }
}

/// Values that point at a secret instead of being one.
fn is_reference(v: &str) -> bool {
    let t = v.trim();
    let mut chars = t.chars();
    if chars.next() == Some('$')
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '{' | '('))
    {
        return true;
    }
    const MARKERS: &[&str] = &[
        "${",
        "$(",
        "{{",
        "}}",
        "%(",
        "%s",
        "process.env",
        "import.meta.env",
        "os.environ",
        "getenv",
        "env::var",
        "env(",
        "env[",
        "env.",
        "secrets.",
        "vault:",
    ];
    let lower = t.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m)) || (t.starts_with('{') && t.ends_with('}'))
}

/// Obvious placeholders: `<your-key>`, `changeme`, `xxxx`, `None`, already redacted.
fn is_placeholder(v: &str) -> bool {
    let t = v.trim();
    if t.is_empty() || t.contains(PLACEHOLDER_PREFIX) {
        return true;
    }
    if (t.starts_with('<') && t.ends_with('>')) || (t.starts_with('[') && t.ends_with(']')) {
        return true;
    }
    if is_placeholder_word(t) {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    const PARTS: &[&str] = &[
        "xxxx",
        "****",
        "....",
        "example",
        "placeholder",
        "changeme",
        "change_me",
        "change-me",
        "replace_me",
        "replace-me",
        "replaceme",
        "your_",
        "your-",
        "yourapi",
        "insert_",
        "insert-",
        "redacted",
        "dummy",
    ];
    if PARTS.iter().any(|p| lower.contains(p)) {
        return true;
    }
    // `aaaaaaaa`, `--------`; a number such as `3000` is a value, not a placeholder.
    if t.chars().count() < 6 || t.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut distinct: Vec<char> = Vec::new();
    for c in t.chars() {
        if !distinct.contains(&c) {
            distinct.push(c);
            if distinct.len() > 2 {
                return false;
            }
        }
    }
    true
}

fn is_placeholder_word(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "changeme",
        "changeit",
        "password",
        "passwd",
        "pass",
        "secret",
        "token",
        "apikey",
        "api_key",
        "todo",
        "fixme",
        "test",
        "testing",
        "sample",
        "default",
        "notset",
        "not_set",
        "unset",
        "empty",
        "***",
        "\"\"",
        "''",
    ];
    let lower = v.trim().to_ascii_lowercase();
    WORDS.contains(&lower.as_str())
}

fn is_path(v: &str) -> bool {
    v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("../")
        || v.starts_with("~/")
        || v.get(1..3) == Some(":\\")
}

/// `myapp.auth0.com`, `api.example.co.uk`: lowercase labels and a letters-only TLD.
fn is_hostname(v: &str) -> bool {
    let Some((head, tld)) = v.rsplit_once('.') else {
        return false;
    };
    tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_lowercase())
        && !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
}

/// Names rather than secrets: `access_token`, `BEARER`, `Bearer`, `client-credentials`,
/// `myApiKey`. Random letters mix cases about evenly; words and camelCase do not.
fn is_word_like(v: &str) -> bool {
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'-' | b'.'))
    {
        return false;
    }
    let letters = v.bytes().filter(u8::is_ascii_alphabetic).count();
    let upper = v.bytes().filter(u8::is_ascii_uppercase).count();
    letters == 0 || upper == 0 || upper == letters || (upper as f64) < 0.3 * letters as f64
}

/// `self.token`, `settings.SECRET_KEY`, `default_token2`: in code, an unquoted identifier
/// is a variable. Random strings have several separate runs of digits; names rarely do.
fn is_code_identifier(v: &str) -> bool {
    let mut bytes = v.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return false;
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':'))
    {
        return false;
    }
    let mut runs = 0;
    let mut in_digits = false;
    for b in v.bytes() {
        let d = b.is_ascii_digit();
        if d && !in_digits {
            runs += 1;
        }
        in_digits = d;
    }
    runs < 2
}

/// Shannon entropy in bits per character.
fn shannon_entropy(s: &str) -> f64 {
    let mut ascii = [0u32; 128];
    let mut other: BTreeMap<char, u32> = BTreeMap::new();
    let mut n = 0u32;
    for c in s.chars() {
        n += 1;
        match usize::try_from(u32::from(c)) {
            Ok(i) if i < 128 => ascii[i] += 1,
            _ => *other.entry(c).or_insert(0) += 1,
        }
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    ascii
        .iter()
        .chain(other.values())
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every secret below is FAKE and built at run time from pieces, so that no secret
    // scanner finds a real-looking key in this file.

    /// Deterministic pseudo-random text over `alphabet` (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const UPPER_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    fn fake_from(alphabet: &str, n: usize, seed: u64) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        (0..n).map(|_| *rng.pick(&chars)).collect()
    }

    /// Random letters and digits with all three classes (as real keys have).
    fn fake(n: usize, seed: u64) -> String {
        (0..)
            .map(|k| fake_from(ALNUM, n, seed + 1000 * k))
            .find(|s| char_classes(s) == 3)
            .expect("some seed mixes the classes")
    }

    fn text(input: &str) -> String {
        redact(input, None).text
    }

    fn kinds(r: &Redaction) -> Vec<(&'static str, usize)> {
        r.kinds.iter().map(|(k, n)| (*k, *n)).collect()
    }

    /// (input, expected output) pairs for `redact(input, None)`.
    fn secret_corpus() -> Vec<(String, String)> {
        let aws_id = format!("AKIA{}", fake_from(UPPER_DIGITS, 16, 1));
        let aws_sts = format!("AS{}{}", "IA", fake_from(UPPER_DIGITS, 16, 2));
        let aws_secret = format!("{}/{}+{}", fake(20, 3), fake(9, 4), fake(9, 5));
        assert_eq!(aws_secret.len(), 40);
        let body36 = fake(36, 6);
        let jwt = format!(
            "eyJ{}.eyJ{}.{}",
            fake(30, 7),
            fake(60, 8),
            fake(43, 9).replace('a', "-")
        );
        let pem_body = format!("{}\n{}\n{}==", fake(64, 10), fake(64, 11), fake(30, 12));
        let pem = |label: &str| {
            let label = format!("{label} {}", "PRIVATE KEY");
            let label = label.trim_start();
            format!("-----BEGIN {label}-----\n{pem_body}\n-----END {label}-----")
        };
        vec![
            (
                format!("aws_access_key_id = {aws_id}"),
                "aws_access_key_id = <redacted:aws-access-key>".into(),
            ),
            (
                format!("{{\"AccessKeyId\": \"{aws_sts}\"}}"),
                "{\"AccessKeyId\": \"<redacted:aws-access-key>\"}".into(),
            ),
            (
                format!("AWS_SECRET_ACCESS_KEY={aws_secret}\n"),
                "AWS_SECRET_ACCESS_KEY=<redacted:aws-secret-key>\n".into(),
            ),
            (
                format!("  secretAccessKey: '{aws_secret}',"),
                "  secretAccessKey: '<redacted:aws-secret-key>',".into(),
            ),
            (
                format!("GITHUB_TOKEN=gh{}_{body36}", "p"),
                "GITHUB_TOKEN=<redacted:github-token>".into(),
            ),
            (
                format!("git clone https://x-access-token:gh{}_{body36}@github.com/o/r", "s"),
                "git clone https://x-access-token:<redacted:github-token>@github.com/o/r".into(),
            ),
            (
                format!("tokens = [\"gh{}_{body36}\", 'gh{}_{body36}', gh{}_{body36}]", "o", "u", "r"),
                "tokens = [\"<redacted:github-token>\", '<redacted:github-token>', <redacted:github-token>]".into(),
            ),
            (
                format!("pat: github{}_{}_{}", "_pat", fake(22, 13), fake(59, 14)),
                "pat: <redacted:github-token>".into(),
            ),
            (
                format!("CI_TOKEN: gl{}-{}", "pat", fake(20, 15)),
                "CI_TOKEN: <redacted:gitlab-token>".into(),
            ),
            (
                format!("slack = \"xo{}-{}-{}-{}\"", "xb", "1234567890", "0987654321", fake(24, 16)),
                "slack = \"<redacted:slack-token>\"".into(),
            ),
            (
                format!(
                    "curl -X POST https://hooks.slack.com/services/T{}/B{}/{}",
                    fake_from(UPPER_DIGITS, 8, 17),
                    fake_from(UPPER_DIGITS, 10, 18),
                    fake(24, 19)
                ),
                "curl -X POST https://hooks.slack.com/services/<redacted:slack-webhook>".into(),
            ),
            (
                format!("stripe.api_key = \"sk_{}_{}\"", "live", fake(24, 20)),
                "stripe.api_key = \"<redacted:stripe-key>\"".into(),
            ),
            (
                format!("const restricted = 'rk_{}_{}';", "live", fake(24, 21)),
                "const restricted = '<redacted:stripe-key>';".into(),
            ),
            (
                format!("<script src=\"https://maps.googleapis.com/maps/api/js?key=AI{}{}\">", "za", fake(35, 22)),
                "<script src=\"https://maps.googleapis.com/maps/api/js?key=<redacted:google-api-key>\">".into(),
            ),
            (
                format!("client = OpenAI(api_key=\"sk-{}\")", fake(48, 23)),
                "client = OpenAI(api_key=\"<redacted:openai-key>\")".into(),
            ),
            (
                format!("OPENAI_API_KEY=sk-{}-{}_{}", "proj", fake(40, 24), fake(30, 25)),
                "OPENAI_API_KEY=<redacted:openai-key>".into(),
            ),
            (
                format!("anthropic = Anthropic(api_key='sk-{}-api03-{}-{}AA')", "ant", fake(80, 26), fake(12, 27)),
                "anthropic = Anthropic(api_key='<redacted:anthropic-key>')".into(),
            ),
            (
                format!("login(token=\"hf_{}\")", fake(34, 28)),
                "login(token=\"<redacted:huggingface-token>\")".into(),
            ),
            (
                format!("//registry.npmjs.org/:_authToken=npm_{}", fake(36, 29)),
                "//registry.npmjs.org/:_authToken=<redacted:npm-token>".into(),
            ),
            (
                format!("twine upload -p pypi-{}{}", "AgEIcHlwaS5vcmc", fake(70, 30)),
                "twine upload -p <redacted:pypi-token>".into(),
            ),
            (
                format!("Cookie: session={jwt}; Path=/"),
                "Cookie: session=<redacted:jwt>; Path=/".into(),
            ),
            (
                format!("headers = {{\"Authorization\": \"Bearer {jwt}\"}}"),
                "headers = {\"Authorization\": \"Bearer <redacted:jwt>\"}".into(),
            ),
            (
                format!("-H 'Authorization: Bearer {}'", fake(40, 31)),
                "-H 'Authorization: Bearer <redacted:bearer-token>'".into(),
            ),
            (
                format!("key:\n{}\nrest", pem("RSA")),
                format!(
                    "key:\n-----BEGIN RSA {pk}-----\n<redacted:private-key>\n-----END RSA {pk}-----\nrest",
                    pk = "PRIVATE KEY"
                ),
            ),
            (
                pem("OPENSSH"),
                format!(
                    "-----BEGIN OPENSSH {pk}-----\n<redacted:private-key>\n-----END OPENSSH {pk}-----",
                    pk = "PRIVATE KEY"
                ),
            ),
            (
                pem("EC"),
                format!(
                    "-----BEGIN EC {pk}-----\n<redacted:private-key>\n-----END EC {pk}-----",
                    pk = "PRIVATE KEY"
                ),
            ),
            (
                pem(""),
                format!(
                    "-----BEGIN {pk}-----\n<redacted:private-key>\n-----END {pk}-----",
                    pk = "PRIVATE KEY"
                ),
            ),
            (
                pem("ENCRYPTED"),
                format!(
                    "-----BEGIN ENCRYPTED {pk}-----\n<redacted:private-key>\n-----END ENCRYPTED {pk}-----",
                    pk = "PRIVATE KEY"
                ),
            ),
            (
                pem("PGP").replace("KEY-----", "KEY BLOCK-----"),
                format!(
                    "-----BEGIN PGP {pk} BLOCK-----\n<redacted:private-key>\n-----END PGP {pk} BLOCK-----",
                    pk = "PRIVATE KEY"
                ),
            ),
            (
                // A service-account JSON: the key sits in one string with `\n` escapes.
                format!(
                    "{{\"type\": \"service_account\", \"private_key\": \"{}\"}}",
                    pem("").replace('\n', "\\n")
                ),
                format!(
                    "{{\"type\": \"service_account\", \"private_key\": \"-----BEGIN {pk}-----\\n<redacted:private-key>\\n-----END {pk}-----\"}}",
                    pk = "PRIVATE KEY"
                ),
            ),
            (
                // Cut by the context window before its END line.
                format!("-----BEGIN RSA {}-----\n{}", "PRIVATE KEY", fake(64, 32)),
                format!("-----BEGIN RSA {}-----\n<redacted:private-key>", "PRIVATE KEY"),
            ),
            (
                format!("DATABASE_URL=postgres://admin:{}@db.internal:5432/app", "S3cr3t!pw"),
                "DATABASE_URL=postgres://admin:<redacted:url-password>@db.internal:5432/app".into(),
            ),
            (
                format!("redis = \"rediss://:{}@cache:6380/0\"", fake(16, 33)),
                "redis = \"rediss://:<redacted:url-password>@cache:6380/0\"".into(),
            ),
            (
                format!("amqp://guest:{}@broker/vhost", "p@ss:w0rd"),
                "amqp://guest:<redacted:url-password>@broker/vhost".into(),
            ),
            // Secret-named assignments, one per style.
            (
                format!("password = \"{}\"", "hunter2-Xk9"),
                "password = \"<redacted:password>\"".into(),
            ),
            (
                format!("db.connect(user='app', passwd='{}')", "Tr0ub4dor&3"),
                "db.connect(user='app', passwd='<redacted:password>')".into(),
            ),
            (
                format!("const apiKey = \"{}\";", fake(32, 34)),
                "const apiKey = \"<redacted:secret>\";".into(),
            ),
            (
                format!("  \"client_secret\": \"{}\",", fake(40, 35)),
                "  \"client_secret\": \"<redacted:secret>\",".into(),
            ),
            (
                format!("auth_token = '{}'  # rotate monthly", fake(24, 36)),
                "auth_token = '<redacted:secret>'  # rotate monthly".into(),
            ),
            (
                format!("export AUTH_TOKEN={}", fake(24, 37)),
                "export AUTH_TOKEN=<redacted:secret>".into(),
            ),
            (
                format!("DB_PASSWORD={}\n", "x7Gq2mPz9w"),
                "DB_PASSWORD=<redacted:password>\n".into(),
            ),
            (
                format!("config[:password] => '{}'", "n0t-s0-s3cret!"),
                "config[:password] => '<redacted:password>'".into(),
            ),
            (
                format!("secret := \"{}\"", fake(20, 38)),
                "secret := \"<redacted:secret>\"".into(),
            ),
            (
                format!("'credentials' => '{}',", fake(20, 39)),
                "'credentials' => '<redacted:secret>',".into(),
            ),
            (
                // Many services use UUIDs as API keys; under a secret name it goes.
                "api_key = \"550e8400-e29b-41d4-a716-446655440000\"".into(),
                "api_key = \"<redacted:secret>\"".into(),
            ),
            (
                format!("os.environ[\"API_KEY\"] = \"{}\"", fake(32, 40)),
                "os.environ[\"API_KEY\"] = \"<redacted:secret>\"".into(),
            ),
            (
                format!("Server=db;User Id=sa;Password={};", "Pa55w0rd!x"),
                "Server=db;User Id=sa;Password=<redacted:password>;".into(),
            ),
            (
                format!(
                    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={}==;",
                    fake(86, 41)
                ),
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=<redacted:secret>;".into(),
            ),
            (
                format!("SECRET_KEY = 'django-insecure-{}'", fake(40, 42)),
                "SECRET_KEY = '<redacted:secret>'".into(),
            ),
        ]
    }

    #[test]
    fn every_fake_secret_is_redacted_with_its_kind() {
        for (input, expected) in secret_corpus() {
            let r = redact(&input, None);
            assert_eq!(r.text, expected, "input: {input}");
            assert!(r.count >= 1, "input: {input}");
            let placeholders = expected.matches(PLACEHOLDER_PREFIX).count();
            assert_eq!(r.count, placeholders, "input: {input}");
            for (kind, n) in &r.kinds {
                assert_eq!(expected.matches(&placeholder(kind)).count(), *n, "{input}");
            }
        }
    }

    #[test]
    fn rules_cover_every_kind() {
        let seen: std::collections::BTreeSet<&str> = secret_corpus()
            .iter()
            .flat_map(|(input, _)| redact(input, None).kinds.into_keys())
            .collect();
        let all: std::collections::BTreeSet<&str> = TOKEN_RULES
            .iter()
            .chain(CONTEXT_RULES.iter())
            .map(|r| r.kind)
            .chain(["private-key", "url-password", "password", "secret"])
            .collect();
        // sendgrid is covered by its own test below.
        let missing: Vec<_> = all.difference(&seen).collect();
        assert_eq!(missing, vec![&"sendgrid-key"]);
        let sg = format!("SG.{}.{}", fake(22, 43), fake(43, 44));
        assert_eq!(text(&sg), "<redacted:sendgrid-key>");
    }

    #[test]
    fn ordinary_code_is_left_alone() {
        let cases = [
            "password = os.environ[\"PW\"]",
            "password = os.environ.get(\"DB_PASSWORD\", \"\")",
            "token = get_token()",
            "token = self.session.refresh_token()",
            "api_key: str",
            "def login(password: str, token: Optional[str] = None) -> Session:",
            "const token = process.env.GITHUB_TOKEN;",
            "const apiKey = import.meta.env.VITE_API_KEY",
            "let token = std::env::var(\"TOKEN\")?;",
            "token := os.Getenv(\"TOKEN\")",
            "self.password = password",
            "secret = settings.SECRET_KEY",
            "password = None",
            "auth: null",
            "password = \"\"",
            "api_key = \"<your-api-key>\"",
            "password = \"changeme\"",
            "token = \"xxxxxxxxxxxxxxxx\"",
            "API_KEY=${API_KEY}",
            "password: \"{{ vault_db_password }}\"",
            "token: ${{ secrets.GITHUB_TOKEN }}",
            "max_tokens = 4096",
            "tokenizer = \"bert-base-uncased\"",
            "token_type = \"Bearer\"",
            "grant_type = \"client_credentials\"",
            "auth_method = \"client_secret_basic\"",
            "token_url = \"https://oauth2.example.com/token\"",
            "password_file = \"/run/secrets/db_password\"",
            "auth_header = \"X-Api-Key\"",
            "password_hash = \"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW\"",
            "\"author\": \"Jane Doe\",",
            "authority: login.microsoftonline.com",
            "if password == \"\":",
            "fn auth(token: &str) -> Result<Token, AuthError> {",
            "match token { Token::Ident(name) => name, _ => return None }",
            "id = \"550e8400-e29b-41d4-a716-446655440000\"",
            "let request_id = Uuid::parse_str(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")?;",
            "- [ ] task-list: finish the sk-learn port and the risk-assessment",
            "<div class=\"sk-fading-circle-container-wrapper\">",
            "checksum = \"5a7f4ec0b5b6a1e8c2d9f3b4e6a8c0d2f4b6a8c0e2d4f6a8b0c2d4e6f8a0b2c4\"",
            "\"integrity\": \"sha512-Qm5LW2m3p8xZtYJ7fV9E3lK0aRkq1n3s5u7w9y1A3C5E7G9I1K3M5O7Q9S1U3W5Y7a9c1e3g5i7k9m1o3q5s7u9w==\"",
            "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
            "https://user@example.com/path, http://localhost:8080/, git@github.com:org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "Set the password to something strong: at least twelve characters.",
            "[auth]\nprovider = \"github\"\nscopes = [\"repo\", \"read:org\"]",
            "keyboard = \"QWERTYUIOP1234\"",
            "key = \"user:1234:profile\"",
        ];
        for case in cases {
            let r = redact(case, None);
            assert_eq!(r.text, case);
            assert_eq!(r.count, 0, "{case}");
        }
    }

    #[test]
    fn base64_data_is_left_alone() {
        // A choice: inline images and other blobs are not secrets; only a token shape
        // inside one (vanishingly rare in random base64) would be redacted.
        let blob: String = (0..4000)
            .map(|i| {
                let t = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                t[(i * 7919 + i / 64) % 64] as char
            })
            .collect();
        let img = format!("<img src=\"data:image/png;base64,{blob}=\">");
        assert_eq!(text(&img), img);
        let css = format!("background: url(data:image/png;base64,{blob});");
        assert_eq!(text(&css), css);
    }

    #[test]
    fn config_files_treat_unquoted_values_as_literals() {
        let yaml = format!("db:\n  password: {}\n  user: app\n", "hunter22");
        // In code, `hunter22` would be a variable; in YAML it is the password.
        assert_eq!(
            redact(&yaml, Some("deploy/values.yaml")).text,
            "db:\n  password: <redacted:password>\n  user: app\n"
        );
        assert_eq!(redact(&yaml, Some("src/app.py")).text, yaml);
        let placeholder = "db:\n  password: ${DB_PASSWORD}\n";
        assert_eq!(redact(placeholder, Some("values.yml")).text, placeholder);
    }

    #[test]
    fn env_files_redact_every_value() {
        let env = format!(
            "# local settings\nPORT=3000\nexport NODE_ENV=production\nEMPTY=\nQUOTED_EMPTY=\"\"\n\
             REF=${{OTHER}}\nSECRET=\"{}\" # rotate\nTOKEN=gh{}_{}\r\nPLACE=<your-key>\n",
            "abc",
            "p",
            fake(36, 45)
        );
        let r = redact(&env, Some("/home/u/project/.env"));
        assert_eq!(
            r.text,
            "# local settings\nPORT=<redacted:env-value>\nexport NODE_ENV=<redacted:env-value>\n\
             EMPTY=\nQUOTED_EMPTY=\"\"\nREF=${OTHER}\nSECRET=\"<redacted:env-value>\" # rotate\n\
             TOKEN=<redacted:github-token>\r\nPLACE=<your-key>\n"
        );
        assert_eq!(kinds(&r), vec![("env-value", 3), ("github-token", 1)]);
        let url = format!(
            "DATABASE_URL=postgres://app:{}@db.internal/app\nMIXED=\"abc gh{}_{}\"\n",
            "S3cr3t",
            "p",
            fake(36, 55)
        );
        assert_eq!(
            redact(&url, Some(".env")).text,
            "DATABASE_URL=<redacted:env-value>\n\
             MIXED=\"<redacted:env-value> <redacted:github-token>\"\n"
        );
        for path in [".env.local", "config/prod.env", ".envrc", "credentials"] {
            assert_eq!(
                redact("A=b", Some(path)).text,
                "A=<redacted:env-value>",
                "{path}"
            );
        }
        // Templates are meant to be committed: scanned like config, not wholesale.
        assert_eq!(redact("PORT=3000", Some(".env.example")).text, "PORT=3000");

        let aws = format!(
            "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}/{}\nregion = eu-west-1\n",
            fake_from(UPPER_DIGITS, 16, 46),
            fake(20, 47),
            fake(19, 48)
        );
        assert_eq!(
            redact(&aws, Some("/home/u/.aws/credentials")).text,
            "[default]\naws_access_key_id = <redacted:aws-access-key>\n\
             aws_secret_access_key = <redacted:aws-secret-key>\nregion = <redacted:env-value>\n"
        );
        let pypirc = format!(
            "[pypi]\n  username = __token__\n  password = pypi-{}\n",
            fake(80, 49)
        );
        assert_eq!(
            redact(&pypirc, Some(".pypirc")).text,
            "[pypi]\n  username = <redacted:env-value>\n  password = <redacted:pypi-token>\n"
        );
        let npmrc = format!(
            "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={}\n",
            fake(30, 50)
        );
        assert_eq!(
            redact(&npmrc, Some(".npmrc")).text,
            "registry=<redacted:env-value>\n//registry.npmjs.org/:_authToken=<redacted:env-value>\n"
        );
        let netrc = format!(
            "machine api.example.com\n  login bot\n  password {}\n",
            "s3cr3t-pw"
        );
        assert_eq!(
            redact(&netrc, Some("/home/u/.netrc")).text,
            "machine api.example.com\n  login bot\n  password <redacted:password>\n"
        );
    }

    #[test]
    fn private_key_files_are_redacted_whole() {
        let key = format!(
            "-----BEGIN OPENSSH {}-----\n{}\n",
            "PRIVATE KEY",
            fake(70, 51)
        );
        for path in [
            "/home/u/.ssh/id_ed25519",
            "id_rsa",
            "certs/server.key",
            "putty.ppk",
        ] {
            let r = redact(&key, Some(path));
            assert_eq!(r.text, "<redacted:private-key>");
            assert_eq!(kinds(&r), vec![("private-key", 1)]);
            assert_eq!(redact(&r.text, Some(path)).count, 0);
        }
        assert_eq!(redact("", Some("id_rsa")).count, 0);
        // The public half is not a secret.
        let public = format!("ssh-ed25519 {} u@host", fake(68, 52));
        assert_eq!(redact(&public, Some("id_ed25519.pub")).text, public);
    }

    #[test]
    fn counts_and_kinds_add_up() {
        let input = format!(
            "a = AKIA{}\nb = AKIA{}\npassword = \"{}\"\n",
            fake_from(UPPER_DIGITS, 16, 53),
            fake_from(UPPER_DIGITS, 16, 54),
            "Xk9pQ2mZ7rT4"
        );
        let r = redact(&input, None);
        assert_eq!(r.count, 3);
        assert_eq!(kinds(&r), vec![("aws-access-key", 2), ("password", 1)]);
        assert!(!r.text.contains("AKIA"));
    }

    #[test]
    fn key_words_are_split_sensibly() {
        assert_eq!(split_words("APIKey"), ["api", "key"]);
        assert_eq!(split_words("client_secret"), ["client", "secret"]);
        assert_eq!(split_words("x-access-token"), ["x", "access", "token"]);
        assert_eq!(split_words("dbPassword2"), ["db", "password2"]);
        assert_eq!(classify_key("DB_PASSWORD"), Some(KeyClass::Password));
        assert_eq!(classify_key("apiKey"), Some(KeyClass::Secret));
        assert_eq!(classify_key("GITHUB_TOKEN"), Some(KeyClass::Secret));
        assert_eq!(classify_key("max_tokens"), None);
        assert_eq!(classify_key("monkey"), None);
        assert_eq!(classify_key("token_url"), None);
        assert_eq!(classify_key("author"), None);
        assert_eq!(classify_key("secretary"), None);
    }

    /// Random text, weighted towards the fragments the rules look for.
    fn random_text(rng: &mut Rng) -> String {
        let fragments: &[&str] = &[
            "AKIA",
            "ASIA",
            "ghp_",
            "github_pat_",
            "glpat-",
            "xoxb-",
            "sk_live_",
            "AIza",
            "sk-",
            "sk-ant-",
            "sk-proj-",
            "hf_",
            "npm_",
            "pypi-",
            "eyJ",
            ".",
            "password",
            "token",
            "api_key",
            "secret",
            "Bearer ",
            "auth",
            "=",
            ":",
            "=>",
            ":=",
            "\"",
            "'",
            "`",
            " ",
            "\n",
            "\r\n",
            "\t",
            "@",
            "://",
            "https",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----",
            "-----",
            "\\n",
            "${",
            "}",
            "(",
            "[",
            "]",
            "<",
            ">",
            "<redacted:",
            "#",
            ",",
            ";",
            "/",
            "+",
            "-",
            "_",
            "é",
            "日本",
            "🦀",
            "\u{200b}",
            "\u{0301}",
            "ß",
            "Ω",
            "\0",
            "export ",
            "KEY=",
        ];
        let mut s = String::new();
        for _ in 0..rng.below(40) {
            match rng.below(3) {
                0 => s.push_str(rng.pick::<&str>(fragments)),
                1 => {
                    let n = rng.below(50);
                    let seed = rng.next();
                    s.push_str(&fake_from(ALNUM, n.max(2), seed));
                }
                _ => {
                    let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?');
                    s.push(c);
                }
            }
        }
        s
    }

    #[test]
    fn random_input_never_panics_and_redaction_is_idempotent() {
        let paths = [
            None,
            Some(".env"),
            Some("config.yaml"),
            Some("src/main.rs"),
            Some(".netrc"),
            Some("id_rsa"),
            Some("/é/日本/.npmrc"),
            Some(""),
            Some("/"),
            Some("é.env"),
        ];
        let mut rng = Rng(0x5EED_CA1B);
        for i in 0..10_000 {
            let input = random_text(&mut rng);
            let path = paths[i % paths.len()];
            let once = redact(&input, path);
            let twice = redact(&once.text, path);
            assert_eq!(twice.text, once.text, "input {input:?} path {path:?}");
            assert_eq!(twice.count, 0, "input {input:?} path {path:?}");
            assert_eq!(once.count, once.kinds.values().sum::<usize>());
            assert_eq!(
                once.count == 0,
                once.text == input,
                "input {input:?} path {path:?}"
            );
        }
        // And every secret of the corpus, padded with random text on both sides.
        for (secret, _) in secret_corpus() {
            for _ in 0..20 {
                let input = format!("{}{secret}{}", random_text(&mut rng), random_text(&mut rng));
                let once = redact(&input, None);
                assert_eq!(redact(&once.text, None).count, 0, "input {input:?}");
            }
        }
    }

    #[test]
    fn one_megabyte_is_fast() {
        // Mostly ordinary code with a few secrets, like a large prompt.
        let mut block = String::from(
            "def handler(event, context):\n    token = get_token()\n    \
             headers = {\"Content-Type\": \"application/json\", \"X-Trace\": str(uuid4())}\n    \
             for i, item in enumerate(items):\n        total += item.price * 1.2  # vat\n    \
             return {\"statusCode\": 200, \"body\": json.dumps(total)}\n\n",
        );
        block.push_str("let café = \"日本語のテキスト\"; // ünïcödé\n");
        let mut input = String::new();
        let mut i = 0u64;
        while input.len() < 1 << 20 {
            input.push_str(&block);
            if i % 50 == 0 {
                input.push_str(&format!("api_key = \"{}\"\n", fake(32, 60 + i)));
            }
            i += 1;
        }
        let started = std::time::Instant::now();
        let r = redact(&input, None);
        let elapsed = started.elapsed();
        eprintln!(
            "redact: {} bytes, {} secrets, {elapsed:?}",
            input.len(),
            r.count
        );
        assert!(r.count > 0);
        // Generous: a debug build on a shared machine. Release is far below 50 ms.
        assert!(elapsed.as_secs_f64() < 2.0, "{elapsed:?}");
    }
}
