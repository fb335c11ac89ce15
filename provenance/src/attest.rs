//! Attribution of commits: match a commit's added lines to accepted spans by line
//! hash, and write an `ai-commit` statement into `refs/notes/cairn`; and `blame`.

use crate::digest::{is_trivial_line, line_hash, sha256_hex};
use crate::dsse::Envelope;
use crate::error::Result;
use crate::git::{self, NOTES_REF};
use crate::jcs;
use crate::keys::{key_id, public_key_b64};
use crate::ledger::{now_rfc3339, Ledger, LedgerEntry, LedgerOptions};
use crate::notes::{AiCommit, Checkpoint, FileAttribution, KeyInfo, Note, Region};
use crate::record::{
    record_of_payload, Event, EventKind, LineClass, Record, RecordId, Statement, Subject,
    PREDICATE_AI_COMMIT,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone)]
struct Candidate {
    class: LineClass,
    record_id: String,
    model: String,
}

/// What an attestation found and wrote.
#[derive(Debug, Clone)]
pub struct AttestOutcome {
    pub commit: String,
    pub ai_lines: u32,
    pub ai_modified_lines: u32,
    pub human_lines: u32,
    pub models: Vec<String>,
    pub statement: AiCommit,
}

fn rel_path(repo: &str, p: &str) -> String {
    let pr = Path::new(p);
    if pr.is_absolute() {
        if let Ok(r) = pr.strip_prefix(repo) {
            return r.to_string_lossy().into_owned();
        }
    }
    p.trim_start_matches("./").to_string()
}

pub(crate) fn record_of_line(line: &str) -> Option<Record> {
    let env: Envelope = serde_json::from_str(line).ok()?;
    record_of_payload(&env.payload_bytes().ok()?)
        .ok()
        .map(|(_, r)| r)
}

fn line_of(e: &LedgerEntry) -> String {
    String::from_utf8_lossy(&e.line).into_owned()
}

/// Candidates and record envelopes from the ledger: accepted spans, as last edited.
#[derive(Default)]
struct Sources {
    /// (path, line hash) → candidate
    lines: HashMap<(String, String), Candidate>,
    /// record id → envelope lines of that suggestion's records (suggested, accepted, edited)
    envelopes: HashMap<String, Vec<String>>,
}

impl Sources {
    fn from_ledger(entries: &[LedgerEntry], repo: &str) -> Sources {
        let mut s = Sources::default();
        let mut model: HashMap<String, String> = HashMap::new();
        // record id → (path, lines) as currently known
        let mut spans: BTreeMap<String, (String, Vec<(String, LineClass)>)> = BTreeMap::new();
        for e in entries {
            let r = &e.record;
            let id = r.record_id.clone().unwrap_or_default();
            let refers = r.refers_to.clone().unwrap_or_default();
            match r.event {
                Some(EventKind::Suggested) => {
                    let m = r.model_id().unwrap_or("unknown").to_string();
                    model.insert(id.clone(), m);
                    s.envelopes.entry(id).or_default().push(line_of(e));
                }
                Some(EventKind::Accepted) => {
                    let path = rel_path(repo, r.location.as_ref().map_or("", |l| l.path.as_str()));
                    let hashes: Vec<(String, LineClass)> = r
                        .line_hashes()
                        .map(|h| (h.to_string(), LineClass::Ai))
                        .collect();
                    spans.insert(refers.clone(), (path, hashes));
                    s.envelopes.entry(refers).or_default().push(line_of(e));
                }
                Some(EventKind::Edited) => {
                    let Some(span) = &r.span else { continue };
                    let path = rel_path(repo, &span.path);
                    let lines: Vec<(String, LineClass)> = span
                        .lines
                        .iter()
                        .map(|l| (l.hash.clone(), l.class))
                        .collect();
                    spans.insert(refers.clone(), (path, lines));
                    s.envelopes.entry(refers).or_default().push(line_of(e));
                }
                _ => {}
            }
        }
        for (rid, (path, lines)) in spans {
            let m = model.get(&rid).cloned().unwrap_or_else(|| "unknown".into());
            for (h, class) in lines {
                s.lines.insert(
                    (path.clone(), h),
                    Candidate {
                        class,
                        record_id: rid.clone(),
                        model: m.clone(),
                    },
                );
            }
        }
        s
    }

    /// Attribution carried by an earlier note (copied by amend/rebase, or the pre-rewrite commit).
    fn add_note(&mut self, note: &Note) {
        let Some((_, _, ac)) = &note.ai_commit else {
            return;
        };
        for line in &note.records {
            if let Some(r) = record_of_line(line) {
                let rid = r.suggestion_id().unwrap_or("").to_string();
                let list = self.envelopes.entry(rid).or_default();
                if !list.contains(line) {
                    list.push(line.clone());
                }
            }
        }
        for f in &ac.files {
            for r in &f.regions {
                for h in &r.line_hashes {
                    self.lines
                        .entry((f.path.clone(), h.clone()))
                        .or_insert_with(|| Candidate {
                            class: r.class,
                            record_id: r.record_id.clone(),
                            model: r.model.clone(),
                        });
                }
            }
        }
    }
}

/// Attribute `commit` using the repository's ledger, opened with `opts` (the device
/// key signs the statement). This is what the `post-commit` hook runs.
pub fn attest(repo: &Path, commit: &str, opts: &LedgerOptions) -> Result<AttestOutcome> {
    let ledger = Ledger::open(repo, opts.clone())?;
    attest_with(&ledger, commit, None)
}

/// Re-attest commits rewritten by amend or rebase (`post-rewrite` hook input: old new pairs).
pub fn attest_rewritten(
    repo: &Path,
    pairs: &[(String, String)],
    opts: &LedgerOptions,
) -> Result<Vec<AttestOutcome>> {
    let ledger = Ledger::open(repo, opts.clone())?;
    pairs
        .iter()
        .map(|(old, new)| attest_with(&ledger, new, Some(old)))
        .collect()
}

/// Attribute `commit` with an open ledger. `rewritten_from` names the commit this one
/// replaced (amend/rebase), whose attribution is carried over where lines still match.
pub fn attest_with(
    ledger: &Ledger,
    commit: &str,
    rewritten_from: Option<&str>,
) -> Result<AttestOutcome> {
    let repo = ledger.repo_root().to_path_buf();
    let commit = git::resolve(&repo, commit)?;
    let entries = ledger.entries()?;
    let mut sources = Sources::from_ledger(&entries, &repo.to_string_lossy());
    let mut lookup = vec![commit.clone()];
    if let Some(old) = rewritten_from {
        lookup.push(git::resolve(&repo, old).unwrap_or_else(|_| old.to_string()));
    }
    let notes = git::read_notes(&repo, &lookup)?;
    let existing = notes
        .get(&commit)
        .map(|t| Note::parse(t))
        .unwrap_or_default();
    let mut carried_from = rewritten_from.map(str::to_string);
    sources.add_note(&existing);
    if let Some((_, _, ac)) = &existing.ai_commit {
        if ac.commit != commit && carried_from.is_none() {
            carried_from = Some(ac.commit.clone()); // note copied by notes.rewriteRef
        }
    }
    for old in lookup.iter().skip(1) {
        if let Some(t) = notes.get(old) {
            sources.add_note(&Note::parse(t));
        }
    }

    let mut files = Vec::new();
    let mut used: HashSet<String> = HashSet::new();
    for (path, added) in git::added_lines(&repo, &commit)? {
        let mut cls: Vec<Option<Candidate>> = added
            .iter()
            .map(|(_, text)| {
                if is_trivial_line(text) {
                    None
                } else {
                    sources.lines.get(&(path.clone(), line_hash(text))).cloned()
                }
            })
            .collect();
        // Trivial lines (`}`, blank) count as AI only next to a matched line of the same record.
        loop {
            let mut changed = false;
            for i in 0..added.len() {
                if cls[i].is_some() || !is_trivial_line(&added[i].1) {
                    continue;
                }
                let Some(c) = sources.lines.get(&(path.clone(), line_hash(&added[i].1))) else {
                    continue;
                };
                let adjacent = |j: usize| {
                    added[j].0.abs_diff(added[i].0) == 1
                        && cls[j].as_ref().is_some_and(|n| n.record_id == c.record_id)
                };
                if (i > 0 && adjacent(i - 1)) || (i + 1 < added.len() && adjacent(i + 1)) {
                    cls[i] = Some(c.clone());
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut regions: Vec<Region> = Vec::new();
        let (mut ai, mut aim, mut human) = (0, 0, 0);
        for ((line_no, text), c) in added.iter().zip(&cls) {
            let Some(c) = c else {
                human += 1;
                continue;
            };
            match c.class {
                LineClass::Ai => ai += 1,
                LineClass::AiModified => aim += 1,
                LineClass::Human => human += 1,
            }
            used.insert(c.record_id.clone());
            match regions.last_mut() {
                Some(r)
                    if r.end_line + 1 == *line_no
                        && r.class == c.class
                        && r.record_id == c.record_id =>
                {
                    r.end_line = *line_no;
                    r.line_hashes.push(line_hash(text));
                }
                _ => regions.push(Region {
                    start_line: *line_no,
                    end_line: *line_no,
                    class: c.class,
                    record_id: c.record_id.clone(),
                    model: c.model.clone(),
                    line_hashes: vec![line_hash(text)],
                }),
            }
        }
        files.push(FileAttribution {
            blob: git::blob_at(&repo, &commit, &path),
            path,
            added_lines: added.len() as u32,
            ai_lines: ai,
            ai_modified_lines: aim,
            human_lines: human,
            regions,
        });
    }

    let mut used: Vec<String> = used.into_iter().collect();
    used.sort();
    let records: Vec<String> = used
        .iter()
        .flat_map(|r| sources.envelopes.get(r).cloned().unwrap_or_default())
        .collect();
    let (tree_size, root_hash) = ledger.checkpoint()?;
    let vk = ledger.public_key();
    let ac = AiCommit {
        commit: commit.clone(),
        patch_id: git::patch_id(&repo, &commit)?,
        time: now_rfc3339(),
        signer: KeyInfo {
            keyid: key_id(&vk),
            public_key: public_key_b64(&vk),
        },
        checkpoint: Some(Checkpoint {
            ledger_id: ledger.ledger_id().to_string(),
            tree_size,
            root_hash,
        }),
        rewritten_from: carried_from,
        files,
        record_digests: records.iter().map(|l| sha256_hex(l.as_bytes())).collect(),
    };
    let mut subject = vec![Subject::new(
        format!("git+commit:{commit}"),
        "gitCommit",
        commit.clone(),
    )];
    for f in &ac.files {
        if let Some(b) = &f.blob {
            subject.push(Subject::new(f.path.clone(), "gitBlob", b.clone()));
        }
    }
    let st = Statement::new(subject, PREDICATE_AI_COMMIT, serde_json::to_value(&ac)?);
    let env = Envelope::sign(&jcs::to_vec(&st)?, ledger.signing_key());
    let note = Note {
        ai_commit: Some((env.clone(), st, ac.clone())),
        records,
        reviews: existing.reviews,
        errors: vec![],
    };
    git::write_note(&repo, &commit, &note.to_text())?;
    let record_ids: Vec<RecordId> = used.iter().filter_map(|r| r.parse().ok()).collect();
    ledger.append(Event::Committed {
        commit: commit.clone(),
        note_digest: sha256_hex(&env.to_line()),
        records: record_ids,
    })?;
    let (ai_lines, ai_modified_lines, human_lines) = ac.totals();
    let mut models: Vec<String> = ac
        .files
        .iter()
        .flat_map(|f| f.regions.iter().map(|r| r.model.clone()))
        .collect();
    models.sort();
    models.dedup();
    tracing::debug!(%commit, ai_lines, ai_modified_lines, human_lines, "attested");
    Ok(AttestOutcome {
        commit,
        ai_lines,
        ai_modified_lines,
        human_lines,
        models,
        statement: ac,
    })
}

/// Whether the staged changes hold AI-assisted lines, and from which models
/// (what the `prepare-commit-msg` hook asks before adding `Assisted-by:`).
pub fn staged_ai_models(repo: &Path, opts: &LedgerOptions) -> Result<Vec<String>> {
    let root = git::repo_root(repo)?;
    let path = crate::ledger::ledger_path(&root, opts)?;
    if !path.exists() {
        return Ok(vec![]);
    }
    let entries = crate::ledger::read_entries(&path)?;
    let sources = Sources::from_ledger(&entries, &root.to_string_lossy());
    let diff = git::git(
        &root,
        &["diff", "--cached", "-U0", "--no-color", "--no-renames"],
    )?;
    let mut path = String::new();
    let mut models = Vec::new();
    for l in diff.lines() {
        if let Some(p) = l.strip_prefix("+++ ") {
            path = p.strip_prefix("b/").unwrap_or(p).to_string();
        } else if let Some(t) = l.strip_prefix('+') {
            if !is_trivial_line(t) {
                if let Some(c) = sources.lines.get(&(path.clone(), line_hash(t))) {
                    models.push(c.model.clone());
                }
            }
        }
    }
    models.sort();
    models.dedup();
    Ok(models)
}

/// One line of `cairn blame`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlameEntry {
    pub line: u32,
    pub text: String,
    pub commit: String,
    /// `ai`, `ai-modified`, `human`, or `unattested` (commit has no Cairn note).
    pub class: String,
    pub model: Option<String>,
    pub record_id: Option<String>,
}

/// Per line of `file` at `rev` (default HEAD): who wrote it — human, ai or ai-modified —
/// with model and record id. Uses `git blame`, so it follows lines across commits.
pub fn blame(repo: &Path, file: &str, rev: Option<&str>) -> Result<Vec<BlameEntry>> {
    let lines = git::blame(repo, Some(rev.unwrap_or("HEAD")), file)?;
    let commits: Vec<String> = {
        let mut c: Vec<String> = lines.iter().map(|l| l.commit.clone()).collect();
        c.sort();
        c.dedup();
        c
    };
    let notes: HashMap<String, Note> = git::read_notes(repo, &commits)?
        .into_iter()
        .map(|(c, t)| (c, Note::parse(&t)))
        .collect();
    Ok(lines
        .into_iter()
        .map(|l| {
            let ac = notes.get(&l.commit).and_then(|n| n.ai_commit.as_ref());
            let region = ac.and_then(|(_, _, ac)| {
                ac.files
                    .iter()
                    .find(|f| f.path == l.orig_path)?
                    .regions
                    .iter()
                    .find(|r| r.start_line <= l.orig_line && l.orig_line <= r.end_line)
            });
            BlameEntry {
                line: l.final_line,
                text: l.text,
                commit: l.commit,
                class: match (ac, region) {
                    (_, Some(r)) => r.class.as_str().to_string(),
                    (Some(_), None) => "human".into(),
                    (None, None) => "unattested".into(),
                },
                model: region.map(|r| r.model.clone()),
                record_id: region.map(|r| r.record_id.clone()),
            }
        })
        .collect())
}

/// Notes ref name, for messages and hooks.
pub fn notes_ref() -> &'static str {
    NOTES_REF
}
