//! What Cairn keeps in `refs/notes/cairn`: per commit, one `ai-commit` statement, the
//! ledger records it binds by digest, then any `review` statements; one DSSE envelope
//! per line.

use crate::digest::sha256_hex;
use crate::dsse::Envelope;
use crate::error::Error;
use crate::jcs;
use crate::record::{
    LineClass, Statement, Subject, PREDICATE_AI_COMMIT, PREDICATE_AI_COMMIT_V1, PREDICATE_EVENT,
    PREDICATE_REVIEW,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub ledger_id: String,
    pub tree_size: u64,
    pub root_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub keyid: String,
    pub public_key: String,
}

/// A run of added lines of one class that came from one suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub start_line: u32,
    pub end_line: u32,
    pub class: LineClass,
    pub record_id: String,
    pub model: String,
    pub line_hashes: Vec<String>,
    /// The other tool an imported region comes from (`git-ai/cursor`, `agent-trace/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Imported from another tool's record: no signature backs it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileAttribution {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    pub added_lines: u32,
    pub ai_lines: u32,
    pub ai_modified_lines: u32,
    pub human_lines: u32,
    pub regions: Vec<Region>,
}

/// Predicate of an `ai-commit` statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiCommit {
    pub commit: String,
    pub patch_id: String,
    pub time: String,
    pub signer: KeyInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten_from: Option<String>,
    pub files: Vec<FileAttribution>,
    /// Envelope digests (SHA-256 of the JCS line) of the signed ledger records the
    /// regions come from. The records themselves follow the statement as lines of the
    /// note, so the attribution can be checked on any clone without the author's
    /// ledger, and readers that only need the attribution never decode them.
    pub record_digests: Vec<String>,
    /// Keys of the ledgers that signed carried records (those copied from the note of
    /// the commit this one replaced, attested elsewhere), other than `signer`: each
    /// record verifies against the key of the ledger that signed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_signers: Vec<KeyInfo>,
    /// Commits whose notes some of this commit's attribution was recovered from by line
    /// content (a cherry-pick's source, the commits of a branch squash-merged elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered_from: Vec<String>,
}

/// The v1 ai-commit predicate, which embedded the record envelopes themselves.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AiCommitV1 {
    commit: String,
    patch_id: String,
    time: String,
    signer: KeyInfo,
    #[serde(default)]
    checkpoint: Option<Checkpoint>,
    #[serde(default)]
    rewritten_from: Option<String>,
    files: Vec<FileAttribution>,
    records: Vec<Envelope>,
}

impl AiCommit {
    pub fn totals(&self) -> (u32, u32, u32) {
        self.files.iter().fold((0, 0, 0), |(a, m, h), f| {
            (a + f.ai_lines, m + f.ai_modified_lines, h + f.human_lines)
        })
    }
    pub fn has_ai(&self) -> bool {
        self.files.iter().any(|f| !f.regions.is_empty())
    }
    /// Digest of the AI-assisted regions' content (paths, classes, line hashes; no
    /// line numbers), which a review is bound to and which survives a rebase.
    pub fn regions_digest(&self) -> String {
        let v: Vec<serde_json::Value> = self
            .files
            .iter()
            .flat_map(|f| {
                f.regions.iter().map(move |r| {
                    serde_json::json!({"path": f.path, "class": r.class, "lineHashes": r.line_hashes})
                })
            })
            .collect();
        sha256_hex(&jcs::to_vec(&v).unwrap_or_default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewedCommit {
    pub commit: String,
    pub patch_id: String,
    pub regions_digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reviewer {
    pub name: String,
    pub email: String,
    pub keyid: String,
    pub public_key: String,
}

/// Predicate of a `review` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub reviewer: Reviewer,
    pub range: String,
    pub time: String,
    pub commits: Vec<ReviewedCommit>,
    /// SHA-256 over the canonical `commits` list: the digest of what was reviewed.
    pub diff_digest: String,
}

/// A parsed note. Statements are kept without their predicate (`Value::Null`);
/// the typed predicate sits beside each.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub ai_commit: Option<(Envelope, Statement, AiCommit)>,
    /// The record envelopes the ai-commit statement binds (`recordDigests`), as their
    /// JCS lines, undecoded.
    pub records: Vec<String>,
    pub reviews: Vec<(Envelope, Statement, Review)>,
    /// Further ai-commit statements: git's notes rewrite concatenates the notes of the
    /// commits a squash or fixup folds together (`notes.rewriteMode=concatenate`, git's
    /// default). `attest` folds them into one statement; until then this is an error.
    pub concatenated: Vec<(Envelope, Statement, AiCommit)>,
    /// Lines that could not be read, with the reason.
    pub errors: Vec<String>,
    /// Cairn's attribution merged with other tools' (git-ai, Agent Trace), when they
    /// have any for this commit: what blame, report and the gate go by.
    pub imported: Option<AiCommit>,
}

impl Note {
    pub fn parse(text: &str) -> Note {
        let mut note = Note::default();
        // Digests the ai-commit statement binds: a line with one of them is a record,
        // kept as it is without decoding it (reports over many commits never need them).
        let mut bound: HashSet<String> = HashSet::new();
        // Records met before the statement (line order is not guaranteed after a merge).
        let mut early: Vec<(usize, &str)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if !bound.is_empty() && bound.contains(&sha256_hex(line.as_bytes())) {
                note.records.push(line.to_string());
                continue;
            }
            let parsed = parse_typed(line.as_bytes()).and_then(|(env, kind, bytes)| {
                // Parse the predicate straight into its type: a detour through
                // `serde_json::Value` triples the cost of reports.
                match kind.as_str() {
                    PREDICATE_AI_COMMIT if note.ai_commit.is_some() => {
                        let t: Typed<AiCommit> = serde_json::from_slice(&bytes)?;
                        bound.extend(t.predicate.record_digests.iter().cloned());
                        if note.ai_commit.as_ref().is_some_and(|(e, _, _)| *e == env) {
                            return Ok(()); // the same statement twice
                        }
                        note.concatenated.push((env, t.statement(), t.predicate));
                    }
                    PREDICATE_AI_COMMIT_V1 if note.ai_commit.is_some() => {
                        return Err(Error::Invalid(
                            "a second ai-commit statement (v1, which cannot be merged)".into(),
                        ))
                    }
                    PREDICATE_AI_COMMIT => {
                        let t: Typed<AiCommit> = serde_json::from_slice(&bytes)?;
                        bound.extend(t.predicate.record_digests.iter().cloned());
                        note.ai_commit = Some((env, t.statement(), t.predicate));
                    }
                    PREDICATE_AI_COMMIT_V1 => {
                        // v1 embedded the records in the signed payload; hold them as
                        // lines like v2 does (to_text writes such a note back unchanged).
                        let t: Typed<AiCommitV1> = serde_json::from_slice(&bytes)?;
                        let st = t.statement();
                        let v1 = t.predicate;
                        let lines: Vec<String> = v1
                            .records
                            .iter()
                            .map(|e| String::from_utf8_lossy(&e.to_line()).into_owned())
                            .collect();
                        let ac = AiCommit {
                            commit: v1.commit,
                            patch_id: v1.patch_id,
                            time: v1.time,
                            signer: v1.signer,
                            checkpoint: v1.checkpoint,
                            rewritten_from: v1.rewritten_from,
                            files: v1.files,
                            record_digests: lines
                                .iter()
                                .map(|l| sha256_hex(l.as_bytes()))
                                .collect(),
                            record_signers: vec![],
                            recovered_from: vec![],
                        };
                        note.records.extend(lines);
                        note.ai_commit = Some((env, st, ac));
                    }
                    PREDICATE_REVIEW => {
                        let t: Typed<Review> = serde_json::from_slice(&bytes)?;
                        note.reviews.push((env, t.statement(), t.predicate));
                    }
                    // Bound by a statement further down (a merged or concatenated note).
                    PREDICATE_EVENT => early.push((i, line)),
                    other => return Err(Error::Invalid(format!("unknown predicate type {other}"))),
                }
                Ok(())
            });
            if let Err(e) = parsed {
                note.errors.push(format!("note line {}: {e}", i + 1));
            }
        }
        if !note.concatenated.is_empty() {
            let commits: Vec<String> = std::iter::once(&note.ai_commit)
                .flatten()
                .map(|(_, _, a)| a)
                .chain(note.concatenated.iter().map(|(_, _, a)| a))
                .map(|a| a.commit[..12.min(a.commit.len())].to_string())
                .collect();
            note.errors.push(format!(
                "the note holds {} ai-commit statements (for {}): git concatenated the notes of \
                 commits folded together by a squash, fixup or notes merge; `cairn attest <commit>` \
                 makes them one",
                commits.len(),
                commits.join(", ")
            ));
        }
        for (i, line) in early {
            if bound.contains(&sha256_hex(line.as_bytes())) {
                note.records.push(line.to_string());
            } else {
                note.errors
                    .push(format!("note line {}: {}", i + 1, unbound()));
            }
        }
        note
    }

    /// The commit's attribution: Cairn's own, with other tools' regions where imported.
    pub fn attribution(&self) -> Option<&AiCommit> {
        self.imported
            .as_ref()
            .or(self.ai_commit.as_ref().map(|(_, _, a)| a))
    }

    /// Whether the ai-commit statement is the v1 form (records inside its payload).
    pub fn is_v1(&self) -> bool {
        self.ai_commit
            .as_ref()
            .is_some_and(|(_, st, _)| st.predicate_type == PREDICATE_AI_COMMIT_V1)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some((env, _, _)) = &self.ai_commit {
            out.push_str(&String::from_utf8_lossy(&env.to_line()));
            out.push('\n');
            if !self.is_v1() {
                for r in &self.records {
                    out.push_str(r);
                    out.push('\n');
                }
            }
        }
        for (env, _, _) in &self.concatenated {
            out.push_str(&String::from_utf8_lossy(&env.to_line()));
            out.push('\n');
        }
        for (env, _, _) in &self.reviews {
            out.push_str(&String::from_utf8_lossy(&env.to_line()));
            out.push('\n');
        }
        out
    }
}

fn unbound() -> Error {
    Error::Invalid(
        "a ledger record that the ai-commit statement does not bind (added or altered after signing?)"
            .into(),
    )
}

#[derive(Deserialize)]
struct Typed<P> {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: P,
}

impl<P> Typed<P> {
    /// The statement without its predicate (kept typed beside it).
    fn statement(&self) -> Statement {
        Statement {
            type_: self.type_.clone(),
            subject: self.subject.clone(),
            predicate_type: self.predicate_type.clone(),
            predicate: serde_json::Value::Null,
        }
    }
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

fn parse_typed(line: &[u8]) -> Result<(Envelope, String, Vec<u8>), Error> {
    let env: Envelope = serde_json::from_slice(line)
        .map_err(|e| Error::Envelope(format!("not a DSSE envelope: {e}")))?;
    let bytes = env.payload_bytes()?;
    let kind: KindOnly = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Envelope(format!("payload is not an in-toto statement: {e}")))?;
    Ok((env, kind.predicate_type, bytes))
}
