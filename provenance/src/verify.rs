//! `verify`: signatures, the ledger chain, note checkpoints against the ledger, and
//! statement subjects against git objects.

use crate::digest::{merkle_leaf, merkle_root, sha256_hex};
use crate::dsse::Envelope;
use crate::error::Result;
use crate::git;
use crate::keys::{key_id, parse_public_key, ssh_public_key};
use crate::ledger::{verify_ledger_file, Failure};
use crate::notes::{AiCommit, Note};
use crate::record::record_of_payload;
use crate::review::range_notes;
use crate::signers::{AllowedSigners, ALLOWED_SIGNERS_FILE};
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// What `verify` looked at and what it found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// One line per thing checked, for the user.
    pub checked: Vec<String>,
    pub failures: Vec<Failure>,
    /// Problems that do not fail verification (an allowed-signers line that does not read).
    pub warnings: Vec<String>,
    /// Every key that signed a statement or a record, and whether the repository trusts it.
    pub signers: Vec<SignerSummary>,
    /// The signer of each embedded record.
    pub records: Vec<RecordSigner>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A signing key seen by `verify`.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignerSummary {
    pub keyid: String,
    /// The `ssh-ed25519 …` form, to paste into `.cairn/allowed_signers`.
    pub ssh_key: String,
    /// Principals the allowed-signers file lists the key under.
    pub principal: Option<String>,
    /// `None` when the repository has no allowed-signers file.
    pub trusted: Option<bool>,
    /// ai-commit statements signed (attestations).
    pub statements: usize,
    /// Embedded ledger records signed.
    pub records: usize,
    /// Whether it is the local ledger's key (this device).
    pub this_device: bool,
}

/// Which key signed one embedded record.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordSigner {
    pub commit: String,
    pub record: Option<String>,
    pub keyid: String,
    pub principal: Option<String>,
    pub trusted: Option<bool>,
}

/// The allowed-signers file (if any) and the signers met so far.
struct Trust {
    allowed: Option<AllowedSigners>,
    seen: BTreeMap<String, SignerSummary>,
}

impl Trust {
    fn trusted(&self, keyid: &str) -> Option<bool> {
        self.allowed.as_ref().map(|a| a.principal(keyid).is_some())
    }
    fn principal(&self, keyid: &str) -> Option<String> {
        self.allowed
            .as_ref()
            .and_then(|a| a.principal(keyid))
            .map(str::to_string)
    }
    fn saw(&mut self, key: &VerifyingKey) -> &mut SignerSummary {
        let kid = key_id(key);
        let (principal, trusted) = (self.principal(&kid), self.trusted(&kid));
        self.seen
            .entry(kid.clone())
            .or_insert_with(|| SignerSummary {
                keyid: kid,
                ssh_key: ssh_public_key(key),
                principal,
                trusted,
                ..Default::default()
            })
    }
    fn untrusted(&self, what: &str, keyid: &str) -> Option<String> {
        let a = self.allowed.as_ref()?;
        (a.principal(keyid).is_none()).then(|| {
            format!(
                "{what} signed by key {} which {} does not list",
                &keyid[..16.min(keyid.len())],
                ALLOWED_SIGNERS_FILE
            )
        })
    }
}

/// (ledger id, key id, line digests, Merkle leaves) of the local ledger.
type LedgerInfo = (String, String, HashSet<String>, Vec<[u8; 32]>);

/// Verify the local ledger (if `ledger_file` exists), its checkpoints in the git and
/// the default local witness, and the notes of `range`.
pub fn verify(
    repo: &Path,
    range: Option<&str>,
    ledger_file: Option<&Path>,
) -> Result<VerifyReport> {
    let local = crate::witness::local_witness_dir(repo);
    verify_witnessed(repo, range, ledger_file, local.as_deref())
}

/// [`verify`] with the local witness in `witness_dir` (none when `None`).
pub fn verify_witnessed(
    repo: &Path,
    range: Option<&str>,
    ledger_file: Option<&Path>,
    witness_dir: Option<&Path>,
) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let mut ledger_info: Option<LedgerInfo> = None;
    let mut trust = Trust {
        allowed: AllowedSigners::load(repo),
        seen: BTreeMap::new(),
    };
    match &trust.allowed {
        Some(a) => {
            rep.warnings.extend(a.warnings.iter().cloned());
            rep.checked.push(format!(
                "{}: {} trusted keys",
                a.path.display(),
                a.len()
            ));
        }
        None => rep.warnings.push(format!(
            "no {ALLOWED_SIGNERS_FILE} in the repository: signatures are checked, but no signer is \
             known to be trusted; list the team's keys there (the `ssh-ed25519 …` key shown for each signer)"
        )),
    }
    let (found, unreadable) = crate::witness::collect(repo, witness_dir)?;
    rep.failures.extend(unreadable);
    let mut witnessed = false;
    if let Some(path) = ledger_file.filter(|p| p.exists()) {
        let check = verify_ledger_file(path, None)?;
        rep.checked.push(format!(
            "ledger {}: {} records, {} signatures, chain {}",
            path.display(),
            check.records,
            check.signatures_checked,
            if check.failures.is_empty() {
                "intact"
            } else {
                "BROKEN"
            }
        ));
        let bytes = std::fs::read(path).map_err(|source| crate::Error::Io {
            path: path.into(),
            source,
        })?;
        let leaves: Vec<[u8; 32]> = bytes
            .split(|&b| b == b'\n')
            .take(check.records as usize)
            .map(merkle_leaf)
            .collect();
        if let Some(k) = &check.public_key {
            trust.saw(k).this_device = true;
        }
        if let (Some(id), Some(k)) = (&check.ledger_id, &check.public_key) {
            let view = crate::witness::LedgerView {
                ledger_id: id,
                key: k,
                leaves: &leaves,
            };
            let line = crate::witness::check(&found, Some(&view), &mut rep.failures);
            rep.checked.push(line);
            witnessed = true;
            ledger_info = Some((
                id.clone(),
                key_id(k),
                check.digests.iter().cloned().collect(),
                leaves,
            ));
        }
        rep.failures.extend(check.failures);
    }
    if !witnessed {
        let line = crate::witness::check(&found, None, &mut rep.failures);
        rep.checked.push(line);
    }

    let rn = range_notes(repo, range)?;
    let mut roots: HashMap<u64, String> = HashMap::new();
    let (mut n_notes, mut n_records, mut n_reviews) = (0, 0, 0);
    for c in &rn.commits {
        let Some(note) = rn.notes.get(c) else {
            continue;
        };
        n_notes += 1;
        let place = format!("note on {}", &c[..12.min(c.len())]);
        let mut fail = |record: Option<String>, message: String| {
            rep.failures.push(Failure {
                place: place.clone(),
                record,
                message,
            })
        };
        for e in &note.errors {
            fail(None, e.clone());
        }
        if let Some((env, st, ac)) = &note.ai_commit {
            match parse_public_key(&ac.signer.public_key) {
                Ok(k) if key_id(&k) == ac.signer.keyid => {
                    if let Err(e) = env.verify(&k) {
                        fail(None, format!("ai-commit statement: {e}"));
                    }
                    trust.saw(&k).statements += 1;
                    if let Some(m) = trust.untrusted("the ai-commit statement is", &ac.signer.keyid)
                    {
                        fail(None, m);
                    }
                    let local = ledger_info.as_ref().map(|l| (l.0.as_str(), &l.2));
                    n_records +=
                        check_records(c, note, ac, local, &mut trust, &mut rep.records, &mut fail);
                }
                _ => fail(None, "ai-commit signer key is malformed".into()),
            }
            let subject_commit = st
                .subject
                .iter()
                .find_map(|s| s.digest.get("gitCommit"))
                .cloned()
                .unwrap_or_default();
            if subject_commit != *c || ac.commit != *c {
                fail(
                    None,
                    format!(
                        "statement is for commit {subject_commit}, not this one (copied by a rewrite?); \
                         run `cairn attest {c}`"
                    ),
                );
            }
            for s in &st.subject {
                if let Some(blob) = s.digest.get("gitBlob") {
                    let actual = git::blob_at(repo, c, &s.name);
                    if actual.as_deref() != Some(blob.as_str()) {
                        fail(
                            None,
                            format!(
                                "subject {} has blob {blob} but the commit has {}",
                                s.name,
                                actual.unwrap_or_else(|| "no such file".into())
                            ),
                        );
                    }
                }
            }
            if let (Some(cp), Some((lid, lkey, _, leaves))) = (&ac.checkpoint, &ledger_info) {
                if &cp.ledger_id == lid {
                    if lkey != &ac.signer.keyid {
                        fail(None, "signed by a key other than the ledger's".into());
                    }
                    if cp.tree_size as usize > leaves.len() {
                        fail(
                            None,
                            format!(
                                "checkpoint covers {} records but the ledger has only {} (records deleted?)",
                                cp.tree_size,
                                leaves.len()
                            ),
                        );
                    } else {
                        let root = roots.entry(cp.tree_size).or_insert_with(|| {
                            hex::encode(merkle_root(&leaves[..cp.tree_size as usize]))
                        });
                        if root != &cp.root_hash {
                            fail(
                                None,
                                format!(
                                    "checkpoint root over {} records does not match the ledger (ledger rewritten?)",
                                    cp.tree_size
                                ),
                            );
                        }
                    }
                }
            }
        }
        for (env, _, rv) in &note.reviews {
            n_reviews += 1;
            let ok = parse_public_key(&rv.reviewer.public_key)
                .ok()
                .filter(|k| key_id(k) == rv.reviewer.keyid)
                .map(|k| env.verify(&k));
            match ok {
                Some(Ok(())) => {}
                Some(Err(e)) => fail(None, format!("review by {}: {e}", rv.reviewer.email)),
                None => fail(None, format!("review by {}: bad key", rv.reviewer.email)),
            }
            let digest = sha256_hex(&crate::jcs::to_vec(&rv.commits).unwrap_or_default());
            if digest != rv.diff_digest {
                fail(
                    None,
                    format!(
                        "review by {}: diff digest does not match its commits",
                        rv.reviewer.email
                    ),
                );
            }
        }
    }
    rep.checked.push(format!(
        "notes: {n_notes} of {} commits attested, {n_records} embedded records, {n_reviews} reviews",
        rn.commits.len()
    ));
    let imported = rn.notes.values().filter(|n| n.imported.is_some()).count();
    if imported > 0 {
        rep.checked.push(format!(
            "imports: {imported} commits carry other tools' attribution (git-ai, Agent Trace), \
             unsigned: nothing here can verify it"
        ));
    }
    // Cairn notes that do not read are failures above; the rest are warnings.
    rep.warnings.extend(
        rn.warnings
            .iter()
            .filter(|w| !w.starts_with("note on "))
            .cloned(),
    );
    rep.signers = trust.seen.into_values().collect();
    Ok(rep)
}

/// Check the records a note's ai-commit statement binds: each bound digest has its
/// line, every record is signed by the key of the ledger that wrote it (the attesting
/// key or one of the note's `recordSigners`; batch-verified), is in the local ledger
/// when it comes from it, and backs the lines the regions claim. Each record's signer
/// is noted in `signers`.
fn check_records(
    commit: &str,
    note: &Note,
    ac: &AiCommit,
    local: Option<(&str, &HashSet<String>)>,
    trust: &mut Trust,
    signers: &mut Vec<RecordSigner>,
    fail: &mut impl FnMut(Option<String>, String),
) -> usize {
    let digests: HashSet<String> = note
        .records
        .iter()
        .map(|l| sha256_hex(l.as_bytes()))
        .collect();
    for d in &ac.record_digests {
        if !digests.contains(d) {
            fail(
                None,
                format!(
                    "record {} bound by the ai-commit statement is missing from the note",
                    &d[..16.min(d.len())]
                ),
            );
        }
    }
    let mut keys: HashMap<String, VerifyingKey> = HashMap::new();
    for k in std::iter::once(&ac.signer).chain(&ac.record_signers) {
        match parse_public_key(&k.public_key) {
            Ok(v) if key_id(&v) == k.keyid => {
                keys.insert(k.keyid.clone(), v);
            }
            _ => fail(
                None,
                format!(
                    "record signer key {} is malformed",
                    &k.keyid[..16.min(k.keyid.len())]
                ),
            ),
        }
    }
    let mut signed = Vec::with_capacity(note.records.len());
    let mut facts = Vec::with_capacity(note.records.len());
    for line in &note.records {
        let parts = serde_json::from_str::<Envelope>(line)
            .map_err(|e| format!("not a DSSE envelope: {e}"))
            .and_then(|env| env.signed_parts().map_err(|e| e.to_string()));
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                fail(None, format!("embedded record: {e}"));
                continue;
            }
        };
        match record_of_payload(parts.payload()) {
            Ok((_, record)) => {
                let Some(key) = keys.get(&parts.keyid).copied() else {
                    fail(
                        record.record_id.clone(),
                        format!(
                            "embedded record: signed by key {} which the note does not name",
                            &parts.keyid[..16.min(parts.keyid.len())]
                        ),
                    );
                    continue;
                };
                facts.push((sha256_hex(line.as_bytes()), record, key));
                signed.push(parts);
            }
            Err(e) => fail(
                None,
                format!("embedded record: payload is not an in-toto statement: {e}"),
            ),
        }
    }
    let mut bad = vec![false; signed.len()];
    for (n, chunk) in signed.chunks(256).enumerate() {
        let msgs: Vec<&[u8]> = chunk.iter().map(|s| s.message.as_slice()).collect();
        let sigs: Vec<ed25519_dalek::Signature> = chunk.iter().map(|s| s.sig).collect();
        let ks: Vec<VerifyingKey> = facts[n * 256..n * 256 + chunk.len()]
            .iter()
            .map(|f| f.2)
            .collect();
        if ed25519_dalek::verify_batch(&msgs, &sigs, &ks).is_ok() {
            continue;
        }
        for (i, s) in chunk.iter().enumerate() {
            bad[n * 256 + i] = ks[i].verify_strict(&s.message, &s.sig).is_err();
        }
    }
    let mut hashes: HashMap<String, HashSet<String>> = HashMap::new();
    for ((digest, p, key), bad) in facts.into_iter().zip(bad) {
        let kid = key_id(&key);
        if bad {
            fail(
                p.record_id.clone(),
                format!(
                    "embedded record: signature does not verify with its signer's key {}",
                    &kid[..16]
                ),
            );
            continue;
        }
        trust.saw(&key).records += 1;
        signers.push(RecordSigner {
            commit: commit.to_string(),
            record: p.record_id.clone(),
            keyid: kid.clone(),
            principal: trust.principal(&kid),
            trusted: trust.trusted(&kid),
        });
        if let Some(m) = trust.untrusted("embedded record", &kid) {
            fail(p.record_id.clone(), m);
        }
        if let Some((lid, d)) = local {
            if p.ledger_id.as_deref() == Some(lid) && !d.contains(&digest) {
                fail(
                    p.record_id.clone(),
                    "embedded record is not in the ledger (deleted or altered there)".into(),
                );
            }
        }
        let owner = p.suggestion_id().unwrap_or_default().to_string();
        hashes
            .entry(owner)
            .or_default()
            .extend(p.line_hashes().map(str::to_string));
    }
    for f in &ac.files {
        for r in &f.regions {
            let known = hashes.get(&r.record_id);
            if r.line_hashes
                .iter()
                .any(|h| !known.is_some_and(|k| k.contains(h)))
            {
                fail(
                    Some(r.record_id.clone()),
                    format!(
                        "{}:{}-{} claims lines that no embedded signed record contains",
                        f.path, r.start_line, r.end_line
                    ),
                );
            }
        }
    }
    note.records.len()
}
