//! The shape rules: provider tokens, context rules, `.netrc`, private key blocks, URL
//! credentials and `.env`-style key/value lines.

use super::*;

/// One regex whose group 1 (or the whole match, without groups) is the secret.
pub(super) struct Rule {
    pub(super) kind: &'static str,
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

    pub(super) fn apply(&self, text: &str, spans: &mut Spans) {
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

pub(super) fn always(_: &str) -> bool {
    true
}

/// Lowercase, uppercase and digit classes present: random tokens have at least two.
pub(super) fn char_classes(s: &str) -> usize {
    let lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    usize::from(lower) + usize::from(upper) + usize::from(digit)
}

pub(super) fn mixed(s: &str) -> bool {
    char_classes(s) >= 2
}

/// `sk-` alone is a common prefix in kebab-case words; a key mixes all three classes.
pub(super) fn openai_like(s: &str) -> bool {
    let rest = s.strip_prefix("sk-").unwrap_or(s);
    let prefixed = ["proj-", "svcacct-", "admin-"]
        .iter()
        .any(|p| rest.starts_with(p));
    char_classes(rest) == 3 || (prefixed && char_classes(rest) >= 2)
}

pub(super) fn high_entropy(s: &str) -> bool {
    shannon_entropy(s) >= 3.0 && !is_placeholder(s) && !is_word_like(s)
}

/// Provider-specific shapes: a prefix no ordinary text has, then a random body.
/// (?-u:\b) is an ASCII word boundary; it keeps the regexes on the fast DFA path.
pub(super) static TOKEN_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
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
pub(super) static CONTEXT_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
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

pub(super) static NETRC: LazyLock<Rule> = LazyLock::new(|| {
    Rule::new(
        "password",
        r"(?-u:\b)(?:password|passwd|account)[ \t\r\n]+([^\s]+)",
        |s| !s.starts_with(PLACEHOLDER_PREFIX),
    )
});

/// `-----BEGIN … PRIVATE KEY-----` to its END line (or the end of the text, when a
/// window cut it): the body goes, the armour lines stay so the model knows what was there.
pub(super) static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----([\s\S]*?)(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)",
    )
    .expect("valid")
});

pub(super) fn private_key_blocks(text: &str, spans: &mut Spans) {
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

pub(super) fn trim_breaks_start(mut s: &str) -> &str {
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

pub(super) fn trim_breaks_end(mut s: &str) -> &str {
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
pub(super) static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)[a-z][a-z0-9+.\-]{0,30}://[^\s:/?#@\x22'`<>\\]{0,256}:([^\s/?#\x22'`<>\\]{1,256})@",
    )
    .expect("valid")
});

pub(super) fn url_passwords(text: &str, spans: &mut Spans) {
    for caps in URL_CREDENTIALS.captures_iter(text) {
        let Some(pw) = caps.get(1) else { continue };
        if !is_reference(pw.as_str()) && !is_placeholder(pw.as_str()) {
            spans.add(pw.start(), pw.end(), "url-password");
        }
    }
}

/// `KEY=value` lines of `.env`-style files: every value, quotes kept. A token inside a
/// value keeps its own kind; the rest of the value goes around it.
pub(super) static KEY_VALUE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mR)^[ \t]*(?:export[ \t]+)?[^\s=#;\[][^=\r\n]*?[ \t]*=[ \t]*([^\r\n]*?)[ \t]*$")
        .expect("valid")
});

pub(super) fn key_value_lines(text: &str, spans: &mut Spans) {
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
pub(super) fn line_value(raw: &str) -> (usize, &str) {
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
pub(super) static ASSIGNMENT_HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i:pass|pw|secret|token|key|auth|cred|bearer)[A-Za-z0-9_.\-]*[\x22'`]?\]?[ \t]*[=:]",
    )
    .expect("valid")
});

/// A key, an assignment (`=`, `:`, `=>`, `:=`) and a value, at the start of the haystack.
/// `looks_like_literal_secret`, `classify_key` and `random_enough` decide.
pub(super) static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
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
