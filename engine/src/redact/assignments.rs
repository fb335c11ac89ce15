//! The generic rule: `secret_name = value` assignments, redacted only when the key names a
//! secret and the value looks like one (length, entropy, not a reference or placeholder).

use super::*;

/// Keys longer than this are not names a person wrote.
pub(super) const MAX_KEY_BACKTRACK: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyClass {
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

pub(super) fn generic_assignments(text: &str, config: bool, spans: &mut Spans) {
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

pub(super) fn assignment_value<'t>(caps: &Captures<'t>) -> Option<(regex::Match<'t>, bool)> {
    if let Some(m) = caps.name("uq") {
        return Some((m, false));
    }
    ["dq", "sq", "bq"]
        .iter()
        .find_map(|g| caps.name(g))
        .map(|m| (m, true))
}

/// The words of an identifier: split at non-alphanumerics and camelCase humps.
pub(super) fn split_words(key: &str) -> Vec<String> {
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
pub(super) const METADATA_SUFFIXES: &[&str] = &[
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

pub(super) fn classify_key(key: &str) -> Option<KeyClass> {
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
pub(super) fn looks_like_literal_secret(
    value: &str,
    quoted: bool,
    config: bool,
    next: Option<char>,
) -> bool {
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
pub(super) fn random_enough(value: &str, class: KeyClass) -> bool {
    let n = value.chars().count();
    let digits_only = value.bytes().all(|b| b.is_ascii_digit());
    let entropy = shannon_entropy(value);
    match class {
        KeyClass::Password => entropy >= 2.5,
        KeyClass::Secret => !digits_only && entropy >= ((n as f64).log2() - 0.5).min(3.3),
    }
}

/// Values that point at a secret instead of being one.
pub(super) fn is_reference(v: &str) -> bool {
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
pub(super) fn is_placeholder(v: &str) -> bool {
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

pub(super) fn is_placeholder_word(v: &str) -> bool {
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

pub(super) fn is_path(v: &str) -> bool {
    v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("../")
        || v.starts_with("~/")
        || v.get(1..3) == Some(":\\")
}

/// `myapp.auth0.com`, `api.example.co.uk`: lowercase labels and a letters-only TLD.
pub(super) fn is_hostname(v: &str) -> bool {
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
pub(super) fn is_word_like(v: &str) -> bool {
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
pub(super) fn is_code_identifier(v: &str) -> bool {
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
pub(super) fn shannon_entropy(s: &str) -> f64 {
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
