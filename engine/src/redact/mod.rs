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

mod assignments;
mod rules;

use assignments::*;
use rules::*;

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

#[cfg(test)]
mod tests;
