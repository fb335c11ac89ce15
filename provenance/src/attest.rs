//! Attribution of commits: match a commit's added lines to accepted spans by line
//! hash, and write an `ai-commit` statement into `refs/notes/cairn`; and `blame`.
//!
//! Over 600 lines as one room: attributing a commit (matching, recovery by content, the
//! note) and blame read and write the same note and span types.

use crate::digest::{is_trivial_line, line_hash, sha256_hex};
use crate::dsse::Envelope;
use crate::error::Result;
use crate::git::{self, NOTES_REF};
use crate::jcs;
use crate::keys::{key_id, public_key_b64};
use crate::ledger::{now_rfc3339, Ledger, LedgerOptions};
use crate::notes::{AiCommit, Checkpoint, FileAttribution, KeyInfo, Note, Region};
use crate::record::{
    record_of_payload, Event, LineClass, Record, RecordId, Statement, Subject, PREDICATE_AI_COMMIT,
};
use crate::span_index::{SpanIndex, SPAN_INDEX};
use std::collections::{HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone)]
struct Candidate {
    class: LineClass,
    record_id: String,
    model: String,
    /// The commit whose note this was recovered from (cherry-pick, squash-merge).
    from: Option<String>,
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

pub(crate) fn record_of_line(line: &str) -> Option<Record> {
    let env: Envelope = serde_json::from_str(line).ok()?;
    record_of_payload(&env.payload_bytes().ok()?)
        .ok()
        .map(|(_, r)| r)
}

fn line_of(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

/// Candidates and record envelopes from the ledger: accepted spans, as last edited.
#[derive(Default)]
struct Sources {
    /// (path, line hash) → candidate
    lines: HashMap<(String, String), Candidate>,
    /// record id → envelope lines of that suggestion's records carried by notes
    envelopes: HashMap<String, Vec<String>>,
    /// key id → public key of the ledgers that signed records carried from notes
    keys: HashMap<String, KeyInfo>,
}

impl Sources {
    fn from_index(idx: &SpanIndex) -> Sources {
        let mut s = Sources::default();
        for (rid, (path, lines)) in &idx.spans {
            let m = idx
                .model
                .get(rid)
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            for (h, class) in lines {
                s.lines.insert(
                    (path.clone(), h.clone()),
                    Candidate {
                        class: *class,
                        record_id: rid.clone(),
                        model: m.clone(),
                        from: None,
                    },
                );
            }
        }
        s
    }

    /// The envelope lines of a suggestion's records: the ledger's (where `index` says
    /// they are), then those only notes have.
    fn envelope_lines(&self, rid: &str, ledger: &Path, index: &SpanIndex) -> Result<Vec<String>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut out = Vec::new();
        if let Some(refs) = index.lines.get(rid) {
            let err = |e: std::io::Error| crate::Error::Io {
                path: ledger.into(),
                source: e,
            };
            let mut f = std::fs::File::open(ledger).map_err(err)?;
            for (off, len, digest) in refs {
                f.seek(SeekFrom::Start(*off)).map_err(err)?;
                let mut buf = vec![0; *len as usize];
                f.read_exact(&mut buf).map_err(err)?;
                if &sha256_hex(&buf) != digest {
                    let _ = std::fs::remove_file(ledger.with_file_name(SPAN_INDEX));
                    return Err(crate::Error::Invalid(format!(
                        "{} changed under its span index (removed; run the command again, and \
                         `cairn verify`)",
                        ledger.display()
                    )));
                }
                out.push(line_of(&buf));
            }
        }
        for l in self.envelopes.get(rid).into_iter().flatten() {
            if !out.contains(l) {
                out.push(l.clone());
            }
        }
        Ok(out)
    }

    /// Attribution carried by an earlier note (copied by amend/rebase, the pre-rewrite
    /// commit, or a commit it is recovered from: `from`). Every ai-commit statement of a
    /// concatenated note counts.
    fn add_note(&mut self, note: &Note, from: Option<&str>) {
        let statements = note.ai_commit.iter().chain(&note.concatenated);
        for (_, _, ac) in statements.clone() {
            for k in std::iter::once(&ac.signer).chain(&ac.record_signers) {
                self.keys
                    .entry(k.keyid.clone())
                    .or_insert_with(|| k.clone());
            }
        }
        for line in &note.records {
            if let Some(r) = record_of_line(line) {
                let rid = r.suggestion_id().unwrap_or("").to_string();
                let list = self.envelopes.entry(rid).or_default();
                if !list.contains(line) {
                    list.push(line.clone());
                }
            }
        }
        for (_, _, ac) in statements {
            for f in &ac.files {
                for r in &f.regions {
                    for h in &r.line_hashes {
                        self.lines
                            .entry((f.path.clone(), h.clone()))
                            .or_insert_with(|| Candidate {
                                class: r.class,
                                record_id: r.record_id.clone(),
                                model: r.model.clone(),
                                from: from.map(str::to_string),
                            });
                    }
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

/// Re-attest commits rewritten by amend or rebase (`post-rewrite` hook input: old new
/// pairs). A squash or fixup maps several old commits to one new one: it is attested
/// once, from all of their notes, into one note.
pub fn attest_rewritten(
    repo: &Path,
    pairs: &[(String, String)],
    opts: &LedgerOptions,
) -> Result<Vec<AttestOutcome>> {
    let ledger = Ledger::open(repo, opts.clone())?;
    let mut order: Vec<&str> = Vec::new();
    let mut olds: HashMap<&str, Vec<String>> = HashMap::new();
    for (old, new) in pairs {
        if !olds.contains_key(new.as_str()) {
            order.push(new);
        }
        olds.entry(new).or_default().push(old.clone());
    }
    order
        .into_iter()
        .map(|new| attest_from(&ledger, new, &olds[new], &Recovery::None))
        .collect()
}

/// Where else to look for a commit's attribution when its own lines are not in the
/// ledger or in a note copied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Only the commit's `(cherry picked from commit …)` trailers (`git cherry-pick -x`).
    None,
    /// The notes of these commits (a squash-merged branch's commits, a cherry-pick's source).
    From(Vec<String>),
    /// The notes of every attested commit that is not an ancestor of this one.
    AllNotes,
}

/// Attribute `commit` with an open ledger. `rewritten_from` names the commit this one
/// replaced (amend/rebase), whose attribution is carried over where lines still match.
pub fn attest_with(
    ledger: &Ledger,
    commit: &str,
    rewritten_from: Option<&str>,
) -> Result<AttestOutcome> {
    let olds: Vec<String> = rewritten_from.map(str::to_string).into_iter().collect();
    attest_from(ledger, commit, &olds, &Recovery::None)
}

/// Attribute `commit` recovering attribution by line content from other commits' notes:
/// after a squash-merge made elsewhere (the new commit has no note, the branch commits
/// do) or a cherry-pick. The statement names the commits it recovered from.
pub fn attest_recovering(
    ledger: &Ledger,
    commit: &str,
    recovery: &Recovery,
) -> Result<AttestOutcome> {
    attest_from(ledger, commit, &[], recovery)
}

fn cherry_picked_from(msg: &str) -> Vec<String> {
    msg.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("(cherry picked from commit ")?
                .strip_suffix(')')
                .map(str::to_string)
        })
        .collect()
}

fn recovery_sources(
    repo: &Path,
    cat: &mut git::CatFile,
    commit: &str,
    message: &str,
    recovery: &Recovery,
) -> Result<Vec<String>> {
    let mut from = cherry_picked_from(message);
    match recovery {
        Recovery::None => {}
        Recovery::From(list) => from.extend(list.iter().cloned()),
        Recovery::AllNotes => {
            let listed = git::git(repo, &["notes", "--ref", NOTES_REF, "list"]).unwrap_or_default();
            let ancestors: HashSet<String> = git::commits_in_range(repo, Some(commit))?
                .into_iter()
                .collect();
            from.extend(
                listed
                    .lines()
                    .filter_map(|l| l.split_whitespace().nth(1))
                    .filter(|c| !ancestors.contains(*c))
                    .map(str::to_string),
            );
        }
    }
    let mut out = Vec::new();
    for c in from {
        let full = cat.resolve(&c)?.unwrap_or(c);
        if full != commit && !out.contains(&full) {
            out.push(full);
        }
    }
    Ok(out)
}

/// The notes of `commits`: a hook's few through its `cat-file` session, many (a
/// recovery over every note) as [`git::read_notes`] reads them.
fn notes_of(
    repo: &Path,
    cat: &mut git::CatFile,
    commits: &[String],
) -> Result<HashMap<String, String>> {
    if commits.len() > 8 {
        return git::read_notes(repo, commits);
    }
    let mut map = HashMap::new();
    for c in commits {
        if let Some(t) = cat.note_text(NOTES_REF, c)? {
            map.insert(c.clone(), t);
        }
    }
    Ok(map)
}

fn attest_from(
    ledger: &Ledger,
    commit: &str,
    rewritten_from: &[String],
    recovery: &Recovery,
) -> Result<AttestOutcome> {
    let repo = ledger.repo_root().to_path_buf();
    // Every read of the commit, its notes and the witness's checkpoint goes through one
    // git process.
    let mut cat = git::CatFile::open(&repo)?;
    let (commit, parents, message) = cat.commit(commit)?;
    let mut index = SpanIndex::load(ledger.path(), &repo.to_string_lossy())?;
    let mut sources = Sources::from_index(&index);
    let mut lookup = vec![commit.clone()];
    for old in rewritten_from {
        lookup.push(cat.resolve(old)?.unwrap_or_else(|| old.to_string()));
    }
    let recover = recovery_sources(&repo, &mut cat, &commit, &message, recovery)?;
    lookup.extend(recover.iter().cloned());
    let notes = notes_of(&repo, &mut cat, &lookup)?;
    let existing = notes
        .get(&commit)
        .map(|t| Note::parse(t))
        .unwrap_or_default();
    let mut carried_from = rewritten_from.first().cloned();
    sources.add_note(&existing, None);
    if let Some((_, _, ac)) = &existing.ai_commit {
        if ac.commit != commit && carried_from.is_none() {
            carried_from = Some(ac.commit.clone()); // note copied by notes.rewriteRef
        }
    }
    for old in lookup.iter().skip(1).take(rewritten_from.len()) {
        if let Some(t) = notes.get(old) {
            sources.add_note(&Note::parse(t), None);
        }
    }
    for c in &recover {
        if let Some(t) = notes.get(c) {
            sources.add_note(&Note::parse(t), Some(c));
        }
    }
    let mut recovered_from: Vec<String> = Vec::new();

    let mut files = Vec::new();
    let mut used: HashSet<String> = HashSet::new();
    let diff = git::commit_diff(&repo, &commit, parents.len(), &mut cat)?;
    for (path, added) in diff.added {
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
            if let Some(f) = &c.from {
                if !recovered_from.contains(f) {
                    recovered_from.push(f.clone());
                }
            }
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
                    tool: None,
                    unsigned: false,
                }),
            }
        }
        files.push(FileAttribution {
            blob: diff.blobs.get(&path).cloned(),
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
    let mut records: Vec<String> = Vec::new();
    for r in &used {
        records.extend(sources.envelope_lines(r, ledger.path(), &index)?);
    }
    // The ledger as it is now (others may have appended since it was read).
    index.catch_up(ledger.path())?;
    let (tree_size, root_hash) = index.head();
    let vk = ledger.public_key();
    // Carried records keep their own signer: name each other ledger's key once.
    let mut record_signers: Vec<KeyInfo> = Vec::new();
    for line in &records {
        let kid = serde_json::from_str::<Envelope>(line)
            .ok()
            .and_then(|e| e.signatures.first().map(|s| s.keyid.clone()));
        if let Some(k) = kid.filter(|k| k != ledger.key_id()) {
            match sources.keys.get(&k) {
                Some(info) if !record_signers.contains(info) => record_signers.push(info.clone()),
                Some(_) => {}
                None => tracing::warn!(keyid = %k, "carried record signed by a key no note names"),
            }
        }
    }
    let ac = AiCommit {
        commit: commit.clone(),
        patch_id: diff.patch_id,
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
        record_signers,
        recovered_from,
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
        concatenated: vec![],
        errors: vec![],
        imported: None,
    };
    git::write_note(&repo, &commit, &note.to_text())?;
    let record_ids: Vec<RecordId> = used.iter().filter_map(|r| r.parse().ok()).collect();
    ledger.append(Event::Committed {
        commit: commit.clone(),
        note_digest: sha256_hex(&env.to_line()),
        records: record_ids,
    })?;
    // The witnesses see the ledger's new tail (the record just appended included).
    let witnessed = index.catch_up(ledger.path()).and_then(|()| {
        index.save(ledger.path());
        let (size, root) = index.head();
        crate::witness::refresh_at(ledger, size, root, &mut cat)
    });
    if let Err(e) = witnessed {
        tracing::warn!("cairn: checkpoint not witnessed: {e}");
    }
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
    let index = SpanIndex::load(&path, &root.to_string_lossy())?;
    // The post-commit hook saves the index; save it here only when catching up was
    // real work (a long editing session since the last commit, or a large rebuild).
    if index.caught_up > 256 * 1024 {
        index.save(&path);
    }
    let sources = Sources::from_index(&index);
    let mut models = Vec::new();
    for (path, added) in git::staged_added_lines(&root)? {
        for (_, t) in added {
            if !is_trivial_line(&t) {
                if let Some(c) = sources.lines.get(&(path.clone(), line_hash(&t))) {
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
    /// The other tool an imported line's attribution comes from (`git-ai/cursor` …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Imported from another tool: no signature backs it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsigned: bool,
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
    let mut notes: HashMap<String, Note> = git::read_notes(repo, &commits)?
        .into_iter()
        .map(|(c, t)| (c, Note::parse(&t)))
        .collect();
    let imports = crate::interop::import(repo, &commits)?;
    let mut warnings = imports.warnings.clone();
    for (c, imp) in &imports.by_commit {
        let ac = crate::interop::to_ai_commit(repo, c, imp, &mut warnings)?;
        let note = notes.entry(c.clone()).or_default();
        let merged = crate::interop::merge(note.ai_commit.as_ref().map(|(_, _, a)| a), ac);
        note.imported = Some(merged);
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(lines
        .into_iter()
        .map(|l| {
            let ac = notes.get(&l.commit).and_then(|n| n.attribution());
            let region = ac.and_then(|ac| {
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
                tool: region.and_then(|r| r.tool.clone()),
                unsigned: region.is_some_and(|r| r.unsigned),
            }
        })
        .collect())
}

/// Notes ref name, for messages and hooks.
pub fn notes_ref() -> &'static str {
    NOTES_REF
}
