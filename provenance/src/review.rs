//! Review sign-off over a commit range, and the CI gate that requires it.

use crate::digest::sha256_hex;
use crate::dsse::Envelope;
use crate::error::{Error, Result};
use crate::git;
use crate::jcs;
use crate::keys::{key_id, parse_public_key, public_key_b64};
use crate::ledger::now_rfc3339;
use crate::notes::{AiCommit, Note, Review, ReviewedCommit, Reviewer};
use crate::record::{LineClass, Statement, Subject, PREDICATE_REVIEW};
use ed25519_dalek::SigningKey;
use std::collections::HashMap;
use std::path::Path;

/// Identity of the person reviewing (the key is theirs, not the device key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewerIdentity {
    pub name: String,
    pub email: String,
}

/// An AI-assisted region in a commit range.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AiRegion {
    pub commit: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub class: LineClass,
    pub model: String,
    pub record_id: String,
    pub line_hashes: Vec<String>,
    /// The other tool an imported region comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Imported from another tool: no signature backs it.
    pub unsigned: bool,
}

/// Notes of a range: (commit, parsed note) for commits that have one, oldest first,
/// plus the commits without one.
pub(crate) struct RangeNotes {
    pub commits: Vec<String>,
    pub notes: HashMap<String, Note>,
    /// Notes and imported records that did not read, naming commit and file.
    pub warnings: Vec<String>,
}

pub(crate) fn range_notes(repo: &Path, range: Option<&str>) -> Result<RangeNotes> {
    let commits = git::commits_in_range(repo, range)?;
    let texts: Vec<(String, String)> = git::read_notes(repo, &commits)?.into_iter().collect();
    let mut notes = parse_all(&texts);
    let mut warnings = Vec::new();
    for c in &commits {
        if let Some(n) = notes.get(c) {
            for e in &n.errors {
                warnings.push(format!("note on {} ({}): {e}", &c[..12], git::NOTES_REF));
            }
        }
    }
    let imports = crate::interop::import(repo, &commits)?;
    warnings.extend(imports.warnings);
    for c in &commits {
        let Some(imp) = imports.by_commit.get(c) else {
            continue;
        };
        let ac = crate::interop::to_ai_commit(repo, c, imp, &mut warnings)?;
        let note = notes.entry(c.clone()).or_default();
        let merged = crate::interop::merge(note.ai_commit.as_ref().map(|(_, _, a)| a), ac);
        note.imported = Some(merged);
    }
    Ok(RangeNotes {
        commits,
        notes,
        warnings,
    })
}

/// Parse notes on all cores: a long range's notes are hundreds of megabytes.
fn parse_all(texts: &[(String, String)]) -> HashMap<String, Note> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = texts.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|(commit, text)| (commit.clone(), Note::parse(text)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("note parser panicked"))
            .collect()
    })
}

pub(crate) fn regions_of(commit: &str, ac: &AiCommit) -> Vec<AiRegion> {
    ac.files
        .iter()
        .flat_map(|f| {
            f.regions.iter().map(move |r| AiRegion {
                commit: commit.to_string(),
                path: f.path.clone(),
                start_line: r.start_line,
                end_line: r.end_line,
                class: r.class,
                model: r.model.clone(),
                record_id: r.record_id.clone(),
                line_hashes: r.line_hashes.clone(),
                tool: r.tool.clone(),
                unsigned: r.unsigned,
            })
        })
        .collect()
}

/// All AI-assisted regions of a range (what `cairn review` shows).
pub fn ai_regions(repo: &Path, range: Option<&str>) -> Result<Vec<AiRegion>> {
    let rn = range_notes(repo, range)?;
    Ok(rn
        .commits
        .iter()
        .filter_map(|c| {
            let ac = rn.notes.get(c)?.attribution()?;
            Some(regions_of(c, ac))
        })
        .flatten()
        .collect())
}

/// What a review recorded.
#[derive(Debug, Clone)]
pub struct ReviewOutcome {
    pub review: Review,
    pub regions: Vec<AiRegion>,
}

/// Record `reviewer`'s approval of the AI-assisted lines of `range`, bound to the
/// digest of what was reviewed and signed with the reviewer's own key. The signed
/// statement is appended to the note of every AI-assisted commit in the range.
pub fn review(
    repo: &Path,
    range: &str,
    reviewer_key: &SigningKey,
    reviewer: &ReviewerIdentity,
) -> Result<ReviewOutcome> {
    let rn = range_notes(repo, Some(range))?;
    let mut reviewed = Vec::new();
    let mut regions = Vec::new();
    for c in &rn.commits {
        let Some(ac) = rn.notes.get(c).and_then(|n| n.attribution()) else {
            continue;
        };
        if !ac.has_ai() {
            continue;
        }
        if ac.signer.keyid == key_id(&reviewer_key.verifying_key()) {
            return Err(Error::Invalid(format!(
                "commit {c} was attested with this same key; a review must be signed with the \
                 reviewer's own key, not the device key that recorded the suggestions"
            )));
        }
        regions.extend(regions_of(c, ac));
        reviewed.push(ReviewedCommit {
            commit: c.clone(),
            patch_id: ac.patch_id.clone(),
            regions_digest: ac.regions_digest(),
        });
    }
    if reviewed.is_empty() {
        return Err(Error::Invalid(format!(
            "no AI-assisted commits in {range} (nothing to review; were they attested?)"
        )));
    }
    let vk = reviewer_key.verifying_key();
    let rv = Review {
        reviewer: Reviewer {
            name: reviewer.name.clone(),
            email: reviewer.email.clone(),
            keyid: key_id(&vk),
            public_key: public_key_b64(&vk),
        },
        range: range.to_string(),
        time: now_rfc3339(),
        diff_digest: sha256_hex(&jcs::to_vec(&reviewed)?),
        commits: reviewed,
    };
    let subject = rv
        .commits
        .iter()
        .map(|c| {
            Subject::new(
                format!("git+commit:{}", c.commit),
                "gitCommit",
                c.commit.clone(),
            )
        })
        .collect();
    let st = Statement::new(subject, PREDICATE_REVIEW, serde_json::to_value(&rv)?);
    let env = Envelope::sign(&jcs::to_vec(&st)?, reviewer_key);
    for c in &rv.commits {
        let mut note = rn.notes.get(&c.commit).cloned().unwrap_or_default();
        note.reviews.push((env.clone(), st.clone(), rv.clone()));
        git::write_note(repo, &c.commit, &note.to_text())?;
    }
    Ok(ReviewOutcome {
        review: rv,
        regions,
    })
}

/// Options of the gate.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// If non-empty, only reviews signed by these key ids count.
    pub trusted_reviewers: Vec<String>,
    /// SPDX licence ids an AI-assisted region must not reproduce third-party code under
    /// (`cairn check --deny-licence`); "unknown" may be listed too.
    pub deny_licences: Vec<String>,
}

/// An AI-assisted region whose suggestion reproduced third-party code under a denied
/// licence.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeniedReference {
    pub region: AiRegion,
    pub package: String,
    pub version: String,
    pub licence: String,
    pub path: String,
    pub lines: [u32; 2],
}

/// Whether an SPDX expression can be satisfied without any of `denied` (OR: one
/// alternative suffices; AND: all must be allowed). An expression that does not parse is
/// judged by its identifiers alone: any denied one denies it.
pub fn licence_denied(expression: &str, denied: &[String]) -> bool {
    let is_denied = |id: &str| denied.iter().any(|d| d.eq_ignore_ascii_case(id));
    let spaced = expression.replace('(', " ( ").replace(')', " ) ");
    let toks: Vec<&str> = spaced.split_whitespace().collect();
    let mut at = 0;
    match allowed_expr(&toks, &mut at, &is_denied) {
        Some(ok) if at == toks.len() => !ok,
        _ => toks.iter().any(|t| is_denied(t)),
    }
}

fn allowed_expr(t: &[&str], at: &mut usize, denied: &dyn Fn(&str) -> bool) -> Option<bool> {
    let mut ok = allowed_term(t, at, denied)?;
    while t.get(*at).is_some_and(|x| x.eq_ignore_ascii_case("OR")) {
        *at += 1;
        let rhs = allowed_term(t, at, denied)?;
        ok = ok || rhs;
    }
    Some(ok)
}

fn allowed_term(t: &[&str], at: &mut usize, denied: &dyn Fn(&str) -> bool) -> Option<bool> {
    let mut ok = allowed_factor(t, at, denied)?;
    while t.get(*at).is_some_and(|x| x.eq_ignore_ascii_case("AND")) {
        *at += 1;
        let rhs = allowed_factor(t, at, denied)?;
        ok = ok && rhs;
    }
    Some(ok)
}

fn allowed_factor(t: &[&str], at: &mut usize, denied: &dyn Fn(&str) -> bool) -> Option<bool> {
    let tok = *t.get(*at)?;
    *at += 1;
    if tok == "(" {
        let ok = allowed_expr(t, at, denied)?;
        if t.get(*at) != Some(&")") {
            return None;
        }
        *at += 1;
        return Some(ok);
    }
    let mut ok = !denied(tok);
    if t.get(*at).is_some_and(|x| x.eq_ignore_ascii_case("WITH")) {
        let exception = *t.get(*at + 1)?;
        *at += 2;
        ok = ok && !denied(exception);
    }
    Some(ok)
}

/// The gate's verdict.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckOutcome {
    pub commits: usize,
    pub ai_regions: usize,
    pub unreviewed: Vec<AiRegion>,
    /// Commits in the range without a Cairn note (not attested).
    pub unattested: Vec<String>,
    /// AI-assisted commits reverted later in the range (commit, the revert): their
    /// lines are gone, so they need no review.
    pub reverted: Vec<(String, String)>,
    /// Notes and imported records that did not read (each names its commit and file).
    pub warnings: Vec<String>,
    /// Regions reproducing third-party code under a denied licence.
    pub denied: Vec<DeniedReference>,
    pub passed: bool,
}

impl CheckOutcome {
    /// The verdict in one line, as the CLI prints it and the MCP tool returns it.
    pub fn summary_line(&self) -> String {
        format!(
            "{} commits, {} AI-assisted regions, {} unreviewed, {} not attested: {}",
            self.commits,
            self.ai_regions,
            self.unreviewed.len(),
            self.unattested.len(),
            if self.passed {
                "ok"
            } else {
                "FAILED (run `cairn review`)"
            }
        )
    }
}

/// Whether a review statement validly covers the commit with this attribution.
pub(crate) fn review_covers(
    env: &Envelope,
    rv: &Review,
    commit: &str,
    ac: &AiCommit,
    opts: &CheckOptions,
) -> bool {
    let Ok(key) = parse_public_key(&rv.reviewer.public_key) else {
        return false;
    };
    if key_id(&key) != rv.reviewer.keyid || env.verify(&key).is_err() {
        return false;
    }
    if rv.reviewer.keyid == ac.signer.keyid {
        return false; // self-review with the generating device's key does not count
    }
    if !opts.trusted_reviewers.is_empty() && !opts.trusted_reviewers.contains(&rv.reviewer.keyid) {
        return false;
    }
    if sha256_hex(&jcs::to_vec(&rv.commits).unwrap_or_default()) != rv.diff_digest {
        return false;
    }
    let digest = ac.regions_digest();
    rv.commits
        .iter()
        .any(|c| c.regions_digest == digest && (c.commit == commit || c.patch_id == ac.patch_id))
}

/// Check a range: with `require_review`, fails when any AI-assisted region lacks a
/// valid review (signed by a key other than the one that attested it).
pub fn check(
    repo: &Path,
    range: Option<&str>,
    require_review: bool,
    opts: &CheckOptions,
) -> Result<CheckOutcome> {
    let rn = range_notes(repo, range)?;
    let mut out = CheckOutcome {
        commits: rn.commits.len(),
        warnings: rn.warnings.clone(),
        ..Default::default()
    };
    let reverted = git::reverted_commits(repo, &rn.commits)?;
    for c in &rn.commits {
        let Some(note) = rn.notes.get(c) else {
            out.unattested.push(c.clone());
            continue;
        };
        let Some(ac) = note.attribution() else {
            out.unattested.push(c.clone());
            continue;
        };
        let regions = regions_of(c, ac);
        if regions.is_empty() {
            continue;
        }
        if let Some(by) = reverted.get(c) {
            out.reverted.push((c.clone(), by.clone()));
            continue;
        }
        out.ai_regions += regions.len();
        if !opts.deny_licences.is_empty() {
            // The suggestions' records travel in the note: their references name the
            // packages and licences the region's text came from.
            let mut refs: HashMap<String, Vec<crate::ReferenceFact>> = HashMap::new();
            for line in &note.records {
                if let Some(r) = crate::attest::record_of_line(line) {
                    if let (Some(id), Some(o)) = (r.record_id.clone(), r.output) {
                        if !o.references.is_empty() {
                            refs.insert(id, o.references);
                        }
                    }
                }
            }
            for region in &regions {
                for f in refs.get(&region.record_id).into_iter().flatten() {
                    if licence_denied(&f.licence, &opts.deny_licences) {
                        out.denied.push(DeniedReference {
                            region: region.clone(),
                            package: f.package.clone(),
                            version: f.version.clone(),
                            licence: f.licence.clone(),
                            path: f.path.clone(),
                            lines: f.lines,
                        });
                    }
                }
            }
        }
        let reviewed = note
            .reviews
            .iter()
            .any(|(env, _, rv)| review_covers(env, rv, c, ac, opts));
        if !reviewed {
            out.unreviewed.extend(regions);
        }
    }
    out.passed = (!require_review || out.unreviewed.is_empty()) && out.denied.is_empty();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::licence_denied;

    #[test]
    fn a_denied_licence_fails_only_where_no_alternative_avoids_it() {
        let deny = vec!["GPL-3.0-only".to_string(), "unknown".to_string()];
        assert!(licence_denied("GPL-3.0-only", &deny));
        assert!(!licence_denied("MIT OR GPL-3.0-only", &deny));
        assert!(licence_denied("MIT AND GPL-3.0-only", &deny));
        assert!(licence_denied(
            "(MIT OR Apache-2.0) AND gpl-3.0-only",
            &deny
        ));
        assert!(!licence_denied(
            "(MIT OR GPL-3.0-only) AND Apache-2.0",
            &deny
        ));
        assert!(licence_denied("unknown", &deny));
        assert!(!licence_denied("Apache-2.0 WITH LLVM-exception", &deny));
        // Not an expression: any denied identifier in it denies it.
        assert!(licence_denied("GPL-3.0-only OR (", &deny));
        assert!(!licence_denied("MIT", &[]));
    }
}
