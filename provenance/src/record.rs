//! The facts the engine hands over, and the in-toto statements they become.

use crate::digest::{line_hashes, sha256_hex, split_lines};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Predicate of every ledger event record (suggested, accepted, …).
pub const PREDICATE_EVENT: &str = "https://cairn.dev/provenance/event/v1";
/// Predicate of the first line of every ledger: its id and public key.
pub const PREDICATE_LEDGER_HEADER: &str = "https://cairn.dev/provenance/ledger-header/v1";
/// Predicate of the attribution of one commit, kept in `refs/notes/cairn`; it binds the
/// ledger records that follow it in the note by their envelope digests.
pub const PREDICATE_AI_COMMIT: &str = "https://cairn.dev/provenance/ai-commit/v2";
/// The first form of the attribution, with the record envelopes inside its payload
/// (still read; no longer written).
pub const PREDICATE_AI_COMMIT_V1: &str = "https://cairn.dev/provenance/ai-commit/v1";
/// Predicate of a reviewer's sign-off, kept in `refs/notes/cairn`.
pub const PREDICATE_REVIEW: &str = "https://cairn.dev/provenance/review/v1";

/// A record id (UUIDv7, time-ordered).
pub type RecordId = uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn new(name: impl Into<String>, algo: &str, digest: impl Into<String>) -> Self {
        Subject {
            name: name.into(),
            digest: BTreeMap::from([(algo.to_string(), digest.into())]),
        }
    }
}

impl Statement {
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: Value) -> Self {
        Statement {
            type_: STATEMENT_TYPE.into(),
            subject,
            predicate_type: predicate_type.into(),
            predicate,
        }
    }
}

/// Where the suggestion came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    /// Cairn's version.
    pub tool_version: String,
    /// Model id as the user knows it (e.g. `SmolLM2-135M-Instruct.Q4_1`).
    pub model_id: String,
    pub origin: Origin,
    /// SHA-256 of the GGUF file, for local models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf_sha256: Option<String>,
    /// Endpoint URL, for remote models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Model name as the remote endpoint reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_model: Option<String>,
    /// Runtime, e.g. `llama.cpp b4000 cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Sampling parameters (temperature, top_p, seed, max_tokens …).
    #[serde(default)]
    pub sampling: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Local,
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fill in the middle: the model saw the text before and after the cursor.
    Fim,
    /// Prefix continuation: the model saw only the text before the cursor (a model
    /// without FIM tokens, or nothing after the cursor).
    Prefix,
    Chat,
    /// An edit a coding agent made and registered (through `cairn mcp`): the generator
    /// names the agent's tool (`runtime`) and model.
    Agent,
}

/// One retrieved context source that went into the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextSource {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    /// SHA-256 of the snippet text.
    pub content_digest: String,
    pub retriever: String,
    pub score: f64,
}

/// The prompt side of a suggestion, as the engine knows it. The prompt itself is
/// kept only as a salted commitment unless `store_prompt` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFacts {
    pub mode: Mode,
    /// SHA-256 of the prompt template.
    pub template_digest: String,
    pub prompt: String,
    pub store_prompt: bool,
    pub context: Vec<ContextSource>,
    /// Secrets removed from the prompt before it left the machine, counted per kind
    /// (never their content). Empty for local models.
    pub redactions: BTreeMap<String, usize>,
    /// How the prompt was fitted to its budget (latency budget, measured speed, tokens
    /// of context, prefix and suffix kept and cut), as the writer describes it; recorded
    /// as `input.budget` when present.
    pub budget: Option<Value>,
}

pub use cairn_text::{Position, Range};

/// Where a suggestion was shown or inserted. `path` is relative to the repository
/// root (an absolute path under the root is made relative).
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub base_commit: Option<String>,
    pub path: String,
    pub range: Range,
}

/// State of one line of a tracked span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineClass {
    Ai,
    AiModified,
    Human,
}

impl LineClass {
    pub fn as_str(self) -> &'static str {
        match self {
            LineClass::Ai => "ai",
            LineClass::AiModified => "ai-modified",
            LineClass::Human => "human",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineState {
    pub hash: String,
    pub class: LineClass,
}

/// Third-party code a suggestion reproduces, as the reference tracker found it on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceFact {
    pub package: String,
    pub version: String,
    /// SPDX expression, or "unknown".
    pub licence: String,
    /// The source file (on the machine that checked).
    pub path: String,
    /// Lines of the source file, 1-based, inclusive.
    pub lines: [u32; 2],
    /// Characters of the suggestion covered by the match.
    pub matched_chars: usize,
}

/// What happened, as the engine reports it. The ledger turns each into a signed record.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // built once per event, moved straight into the ledger
pub enum Event {
    /// The assistant produced `output` for the user (before it is shown).
    Suggested {
        generator: Generator,
        input: InputFacts,
        output: String,
        location: Location,
        /// Third-party code the output reproduces (empty when none, or not checked).
        references: Vec<ReferenceFact>,
        /// The output was withheld from the person by the reference policy ("block").
        withheld: bool,
    },
    /// The user accepted suggestion `record_id` (wholly, or `partial`), inserting `final_text`.
    Accepted {
        record_id: RecordId,
        partial: bool,
        final_text: String,
        location: Location,
    },
    /// The user dismissed suggestion `record_id`, or it timed out.
    Rejected { record_id: RecordId, reason: String },
    /// A person changed an accepted span of suggestion `record_id`; `lines` is the
    /// span's current content, line by line.
    Edited {
        record_id: RecordId,
        path: String,
        lines: Vec<LineState>,
        vanished: bool,
    },
    /// The assistant answered a chat turn with `output` (before the answer returns to
    /// the person). `edits` are the `suggested` records of the edits the answer proposed;
    /// `cached_from` is the `answered` record of the earlier answer this one repeats from
    /// the response cache (no model ran).
    Answered {
        generator: Generator,
        input: InputFacts,
        output: String,
        base_commit: Option<String>,
        edits: Vec<RecordId>,
        cached_from: Option<RecordId>,
    },
    /// A commit was attributed (written by `attest`).
    Committed {
        commit: String,
        note_digest: String,
        records: Vec<RecordId>,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Suggested { .. } => "suggested",
            Event::Accepted { .. } => "accepted",
            Event::Rejected { .. } => "rejected",
            Event::Edited { .. } => "edited",
            Event::Answered { .. } => "answered",
            Event::Committed { .. } => "committed",
        }
    }
}

/// Who acted: the git identity and the device key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub device_key: String,
}

pub(crate) fn location_json(repo: &str, loc: &Location, text: &str) -> Value {
    let hashes = line_hashes(text);
    let n = split_lines(text).count() as u32;
    serde_json::json!({
        "repo": repo,
        "baseCommit": loc.base_commit,
        "path": loc.path,
        "range": loc.range,
        "ranges": [{
            "startLine": loc.range.start.line + 1,
            "endLine": loc.range.start.line + n.max(1),
            "lineHashes": hashes,
        }],
    })
}

/// Build subject and event-specific predicate fields for an event.
pub(crate) fn event_body(
    ev: &Event,
    repo: &str,
    salt: [u8; 16],
) -> (Vec<Subject>, serde_json::Map<String, Value>) {
    let mut p = serde_json::Map::new();
    p.insert("event".into(), ev.kind().into());
    let subject = match ev {
        Event::Suggested {
            generator,
            input,
            output,
            location,
            references,
            withheld,
        } => {
            let (digest, mut out) = put_generation(&mut p, generator, input, output, salt);
            // Present only when there is something to say, so records without matches
            // keep their earlier form.
            if !references.is_empty() {
                out["references"] = serde_json::to_value(references).unwrap_or_default();
            }
            if *withheld {
                out["withheld"] = Value::Bool(true);
            }
            p.insert("output".into(), out);
            p.insert("location".into(), location_json(repo, location, output));
            vec![Subject::new("suggestion", "sha256", digest)]
        }
        Event::Accepted {
            record_id,
            partial,
            final_text,
            location,
        } => {
            let (digest, out) = output_json(final_text);
            p.insert("refersTo".into(), record_id.to_string().into());
            p.insert(
                "decision".into(),
                serde_json::json!({"decision": if *partial {"partial"} else {"accept"}}),
            );
            p.insert("output".into(), out);
            p.insert("location".into(), location_json(repo, location, final_text));
            vec![Subject::new(location.path.clone(), "sha256", digest)]
        }
        Event::Rejected { record_id, reason } => {
            p.insert("refersTo".into(), record_id.to_string().into());
            p.insert(
                "decision".into(),
                serde_json::json!({"decision": "reject", "reason": reason}),
            );
            vec![record_subject(record_id)]
        }
        Event::Edited {
            record_id,
            path,
            lines,
            vanished,
        } => {
            p.insert("refersTo".into(), record_id.to_string().into());
            p.insert("decision".into(), serde_json::json!({"decision": "edit"}));
            p.insert(
                "span".into(),
                serde_json::json!({"path": path, "lines": lines, "vanished": vanished}),
            );
            vec![record_subject(record_id)]
        }
        Event::Answered {
            generator,
            input,
            output,
            base_commit,
            edits,
            cached_from,
        } => {
            let (digest, out) = put_generation(&mut p, generator, input, output, salt);
            p.insert("output".into(), out);
            p.insert("repo".into(), repo.into());
            p.insert("baseCommit".into(), base_commit.clone().into());
            p.insert(
                "edits".into(),
                edits
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .into(),
            );
            // Present only on an answer from the cache, so other answers keep one form.
            if let Some(from) = cached_from {
                p.insert("cachedFrom".into(), from.to_string().into());
            }
            vec![Subject::new("answer", "sha256", digest)]
        }
        Event::Committed {
            commit,
            note_digest,
            records,
        } => {
            p.insert("commit".into(), commit.clone().into());
            p.insert("noteDigest".into(), note_digest.clone().into());
            p.insert(
                "records".into(),
                records
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .into(),
            );
            vec![Subject::new(
                format!("git+commit:{commit}"),
                "gitCommit",
                commit.clone(),
            )]
        }
    };
    (subject, p)
}

/// The parts a `suggested` and an `answered` record share: `generator` and `input` go
/// into `p`; returns the output's digest and its `output` object (digest, lines), which
/// the caller completes and inserts.
fn put_generation(
    p: &mut serde_json::Map<String, Value>,
    generator: &Generator,
    input: &InputFacts,
    output: &str,
    salt: [u8; 16],
) -> (String, Value) {
    p.insert(
        "generator".into(),
        serde_json::to_value(generator).unwrap_or_default(),
    );
    p.insert("input".into(), input_json(input, salt));
    output_json(output)
}

/// The digest of a record's output text and its `output` object (digest, lines).
fn output_json(text: &str) -> (String, Value) {
    let digest = sha256_hex(text.as_bytes());
    let out = serde_json::json!({"digest": digest, "lines": split_lines(text).count()});
    (digest, out)
}

/// The `input` of a record that carries a prompt: its mode, template, the salted
/// commitment to the prompt (the prompt itself only when the user opted in), context,
/// redactions and budget.
fn input_json(input: &InputFacts, salt: [u8; 16]) -> Value {
    let mut commitment = Vec::with_capacity(16 + input.prompt.len());
    commitment.extend_from_slice(&salt);
    commitment.extend_from_slice(input.prompt.as_bytes());
    let mut inp = serde_json::json!({
        "mode": input.mode,
        "templateDigest": input.template_digest,
        "promptCommitment": {
            "algorithm": "sha256(salt||prompt)",
            "salt": hex::encode(salt),
            "digest": sha256_hex(&commitment),
        },
        "context": input.context,
    });
    if !input.redactions.is_empty() {
        inp["redactions"] = serde_json::to_value(&input.redactions).unwrap_or_default();
    }
    if let Some(b) = &input.budget {
        inp["budget"] = b.clone();
    }
    if input.store_prompt {
        inp["prompt"] = Value::String(input.prompt.clone());
    }
    inp
}

fn record_subject(id: &RecordId) -> Subject {
    Subject::new(
        format!("cairn:record/{id}"),
        "sha256",
        sha256_hex(id.to_string().as_bytes()),
    )
}

/// What kind of line a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Suggested,
    Accepted,
    Rejected,
    Edited,
    Answered,
    Committed,
    /// A kind this version does not know (a newer writer's).
    #[serde(other)]
    Unknown,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Suggested => "suggested",
            EventKind::Accepted => "accepted",
            EventKind::Rejected => "rejected",
            EventKind::Edited => "edited",
            EventKind::Answered => "answered",
            EventKind::Committed => "committed",
            EventKind::Unknown => "unknown",
        }
    }
}

/// The prompt side of a suggestion as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordedInput {
    pub mode: Option<String>,
    pub template_digest: Option<String>,
    pub context: Vec<ContextSource>,
    pub redactions: BTreeMap<String, usize>,
    /// Anything else the writer recorded about the prompt (budget decisions …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordedOutput {
    pub digest: String,
    pub lines: u64,
    /// Third-party code the output reproduces (suggested records).
    pub references: Vec<ReferenceFact>,
    /// Withheld by the reference policy.
    pub withheld: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordedDecision {
    /// `accept`, `partial`, `reject` or `edit`.
    pub decision: String,
    pub reason: Option<String>,
}

/// One run of whole lines a record covers (1-based, inclusive) with their line hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordedLines {
    pub start_line: u64,
    pub end_line: u64,
    pub line_hashes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordedLocation {
    pub repo: Option<String>,
    pub base_commit: Option<String>,
    pub path: String,
    pub range: Option<Range>,
    pub ranges: Vec<RecordedLines>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordedSpan {
    pub path: String,
    pub lines: Vec<LineState>,
    pub vanished: bool,
}

/// A ledger line read back: the predicate of its statement, typed. Written by the
/// ledger from an [`Event`] (or as the ledger's header); read by verify, attest, report
/// and the summaries, so every reader agrees on what a record says. Fields a kind of
/// record does not carry are `None` or empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Record {
    /// `None` on the ledger's header line.
    pub event: Option<EventKind>,
    pub record_id: Option<String>,
    pub ledger_id: Option<String>,
    pub seq: Option<u64>,
    pub prev: Option<String>,
    pub time: Option<String>,
    pub actor: Option<Actor>,
    /// The suggestion a decision or an edit is about.
    pub refers_to: Option<String>,
    pub generator: Option<Generator>,
    pub input: Option<RecordedInput>,
    pub output: Option<RecordedOutput>,
    pub decision: Option<RecordedDecision>,
    pub location: Option<RecordedLocation>,
    pub span: Option<RecordedSpan>,
    /// `answered`: the commit the repository was at, the `suggested` records of the edits
    /// the answer proposed, and the earlier answer a cached one repeats.
    pub base_commit: Option<String>,
    pub edits: Vec<String>,
    pub cached_from: Option<String>,
    /// `committed`: the commit, the note's digest and the records it drew on.
    pub commit: Option<String>,
    pub note_digest: Option<String>,
    pub records: Vec<String>,
    /// Header only: the ledger's public key (base64) and its id.
    pub public_key: Option<String>,
    pub keyid: Option<String>,
}

impl Record {
    /// The suggestion this record belongs to: its own id for a suggestion, the one it
    /// refers to for a decision or an edit.
    pub fn suggestion_id(&self) -> Option<&str> {
        self.refers_to.as_deref().or(self.record_id.as_deref())
    }

    /// The line hashes of the text the record is about (accepted text or edited span).
    pub fn line_hashes(&self) -> impl Iterator<Item = &str> + '_ {
        let located = self
            .location
            .iter()
            .flat_map(|l| l.ranges.first())
            .flat_map(|r| r.line_hashes.iter().map(String::as_str));
        let spanned = self
            .span
            .iter()
            .flat_map(|s| s.lines.iter().map(|l| l.hash.as_str()));
        located.chain(spanned)
    }

    pub fn model_id(&self) -> Option<&str> {
        self.generator.as_ref().map(|g| g.model_id.as_str())
    }
}

/// A statement whose predicate is read as a [`Record`], skipping the subject (which
/// readers of records never need).
#[derive(Deserialize)]
struct RecordStatement {
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Record,
}

/// Reads the record out of a statement's payload bytes, with its predicate type.
pub fn record_of_payload(payload: &[u8]) -> serde_json::Result<(String, Record)> {
    let st: RecordStatement = serde_json::from_slice(payload)?;
    Ok((st.predicate_type, st.predicate))
}
