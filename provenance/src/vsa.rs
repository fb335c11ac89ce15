//! A SLSA verification summary (VSA, `https://slsa.dev/verification_summary/v1`) of the
//! review gate: an in-toto statement, signed by the device key of whoever ran `check`,
//! saying that every AI-assisted line in a range was — or was not — reviewed.

use crate::digest::sha256_hex;
use crate::dsse::Envelope;
use crate::error::Result;
use crate::git;
use crate::jcs;
use crate::ledger::now_rfc3339;
use crate::record::{Statement, Subject};
use crate::review::{range_notes, CheckOptions, CheckOutcome};
use ed25519_dalek::SigningKey;
use serde_json::json;
use std::path::Path;

pub const PREDICATE_VSA: &str = "https://slsa.dev/verification_summary/v1";
/// The policy the gate applies.
pub const POLICY_URI: &str = "https://cairn.dev/policy/ai-assisted-lines-reviewed/v1";
/// The property a passing range is verified to have (SLSA leaves organisation-specific
/// properties to the verifier; this is not a SLSA source level).
pub const VERIFIED_PROPERTY: &str = "CAIRN_AI_ASSISTED_LINES_REVIEWED";

/// The commit a range ends at: `B` of `A..B`, the revision itself otherwise.
fn tip(repo: &Path, range: Option<&str>) -> Result<String> {
    let r = range.unwrap_or("HEAD");
    let end = r.rsplit_once("..").map_or(r, |(_, b)| b);
    let end = end.trim_start_matches('.');
    git::resolve(repo, if end.is_empty() { "HEAD" } else { end })
}

/// The VSA for `outcome` (from [`crate::check`] over the same range and options),
/// signed with `key`, as one DSSE envelope.
pub fn vsa(
    repo: &Path,
    range: Option<&str>,
    outcome: &CheckOutcome,
    opts: &CheckOptions,
    key: &SigningKey,
) -> Result<Envelope> {
    let tip = tip(repo, range)?;
    let origin = git::git(repo, &["remote", "get-url", "origin"])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("file://{}", repo.display()));
    let resource = format!("git+{origin}@{tip}");
    let rn = range_notes(repo, range)?;
    let mut inputs = Vec::new();
    for c in &rn.commits {
        let Some(n) = rn.notes.get(c) else { continue };
        let lines = n
            .ai_commit
            .iter()
            .map(|(e, _, _)| e)
            .chain(n.reviews.iter().map(|(e, _, _)| e));
        for e in lines {
            inputs.push(json!({
                "uri": format!("git+notes:{}@{c}", git::NOTES_REF),
                "digest": {"sha256": sha256_hex(&e.to_line())},
            }));
        }
        if n.imported.is_some() {
            inputs.push(
                json!({"uri": format!("git+notes:{}@{c}", crate::interop::GIT_AI_NOTES_REF)}),
            );
        }
    }
    let policy = json!({
        "requireReview": true,
        "trustedReviewers": opts.trusted_reviewers,
        "range": range.unwrap_or("HEAD"),
    });
    let passed = outcome.unreviewed.is_empty();
    let predicate = json!({
        "verifier": {
            "id": "https://cairn.dev/verifier/cairn-check",
            "version": {"cairn": env!("CARGO_PKG_VERSION")},
        },
        "timeVerified": now_rfc3339(),
        "resourceUri": resource,
        "policy": {
            "uri": POLICY_URI,
            "digest": {"sha256": sha256_hex(&jcs::to_vec(&policy)?)},
        },
        "inputAttestations": inputs,
        "verificationResult": if passed { "PASSED" } else { "FAILED" },
        "verifiedLevels": if passed { vec![VERIFIED_PROPERTY] } else { vec![] },
        "slsaVersion": "1.0",
    });
    let st = Statement::new(
        vec![Subject::new(resource.clone(), "gitCommit", tip)],
        PREDICATE_VSA,
        predicate,
    );
    Ok(Envelope::sign(&jcs::to_vec(&st)?, key))
}
