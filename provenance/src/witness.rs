//! Witnesses for the ledger's tail: signed checkpoints kept outside the ledger file.
//!
//! A hash chain sees an edit, a deletion or a reordering inside it, but not its own
//! tail cut off: the shortened file is still a valid chain. Certificate Transparency's
//! answer is a signed tree head that others keep; this module writes one — a C2SP
//! `tlog-checkpoint` signed note (origin `cairn.dev/ledger/<ledger id>`, tree size,
//! RFC 6962 Merkle root, a `time` extension line) signed with the device key — to two
//! places the ledger file's owner does not rewrite by accident:
//!
//! - **git**: a note in [`CHECKPOINTS_REF`] on a fixed object named after the ledger,
//!   so it is pushed and fetched with `refs/notes/*` beside the attribution notes and
//!   every refresh stays in the ref's history (each a commit);
//! - **a local witness**: one file per ledger under [`local_witness_dir`], which is in
//!   the user's state directory, never in the data directory that holds the ledger.
//!
//! The hooks refresh both after every attestation. `verify` fails when the ledger is
//! shorter than, or disagrees with, any checkpoint it finds (git history included).
//! See SCHEMA.md ("Witnesses") for what each protects against and what it cannot.

use crate::digest::{merkle_leaf, merkle_roots_at, sha256};
use crate::error::{IoContext, Result};
use crate::git;
use crate::ledger::{now_rfc3339, repo_key, Failure, Ledger};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The notes ref holding the ledgers' checkpoints (one note per ledger).
pub const CHECKPOINTS_REF: &str = "refs/notes/cairn-checkpoints";
/// A checkpoint's origin line is this prefix and the ledger id.
pub const ORIGIN_PREFIX: &str = "cairn.dev/ledger/";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SIG_PREFIX: &str = "\u{2014} ";

/// A ledger's signed tree head: how many records it had and their Merkle root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeHead {
    pub ledger_id: String,
    pub size: u64,
    /// Hex RFC 6962 root over the first `size` ledger lines.
    pub root: String,
    pub time: String,
}

impl TreeHead {
    pub fn origin(&self) -> String {
        format!("{ORIGIN_PREFIX}{}", self.ledger_id)
    }

    /// The note text the signature covers (C2SP tlog-checkpoint body).
    pub fn body(&self) -> String {
        let root = hex::decode(&self.root).unwrap_or_default();
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin(),
            self.size,
            B64.encode(root),
            self.time
        )
    }

    /// The signed note: body, a blank line, one signature line.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let origin = self.origin();
        let sig = key.sign(body.as_bytes());
        let mut blob = note_key_id(&origin, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{body}\n{SIG_PREFIX}{origin} {}\n", B64.encode(blob))
    }
}

/// C2SP signed-note key id of an ed25519 key: SHA-256(name || LF || 0x01 || key)[..4].
pub fn note_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut data = name.as_bytes().to_vec();
    data.push(b'\n');
    data.push(0x01);
    data.extend_from_slice(key.as_bytes());
    let h = sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

/// A checkpoint as found in one witness.
#[derive(Debug, Clone)]
pub struct Found {
    pub head: TreeHead,
    /// Where it was found, for messages: `refs/notes/cairn-checkpoints@1a2b3c4d5e6f`,
    /// `local witness /home/…/x.checkpoint`.
    pub source: String,
    body: String,
    sigs: Vec<(String, [u8; 4], Signature)>,
}

impl Found {
    /// Whether a signature by `key` under the checkpoint's origin verifies.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let origin = self.head.origin();
        let kid = note_key_id(&origin, key);
        self.sigs.iter().any(|(n, k, s)| {
            n == &origin && k == &kid && key.verify_strict(self.body.as_bytes(), s).is_ok()
        })
    }

    /// `checkpoint cairn.dev/ledger/<id> size N (<source>)`: how failures name it.
    pub fn name(&self) -> String {
        format!(
            "checkpoint {} size {} of {} ({})",
            self.head.origin(),
            self.head.size,
            self.head.time,
            self.source
        )
    }
}

/// Parse the signed notes in `text` (several may be concatenated). Each unreadable
/// note gives an error message instead.
pub fn parse_checkpoints(text: &str, source: &str) -> Vec<Result<Found, String>> {
    let mut out = Vec::new();
    let mut body: Vec<&str> = Vec::new();
    let mut sigs: Vec<&str> = Vec::new();
    let mut in_sigs = false;
    let mut finish = |body: &mut Vec<&str>, sigs: &mut Vec<&str>| {
        if !body.is_empty() || !sigs.is_empty() {
            out.push(parse_one(body, sigs, source));
        }
        body.clear();
        sigs.clear();
    };
    for line in text.split('\n') {
        if !in_sigs {
            if line.is_empty() {
                in_sigs = !body.is_empty();
            } else {
                body.push(line);
            }
        } else if line.starts_with(SIG_PREFIX) {
            sigs.push(line);
        } else if !line.is_empty() {
            finish(&mut body, &mut sigs);
            in_sigs = false;
            body.push(line);
        }
    }
    finish(&mut body, &mut sigs);
    out
}

fn parse_one(body: &[&str], sigs: &[&str], source: &str) -> Result<Found, String> {
    let bad = |m: String| format!("{source}: not a Cairn checkpoint: {m}");
    if body.len() < 3 {
        return Err(bad(format!(
            "{} body lines, 3 or more expected",
            body.len()
        )));
    }
    let ledger_id = body[0].strip_prefix(ORIGIN_PREFIX).ok_or_else(|| {
        bad(format!(
            "origin {:?} is not {ORIGIN_PREFIX}<ledger id>",
            body[0]
        ))
    })?;
    let size: u64 = body[1]
        .parse()
        .map_err(|_| bad(format!("tree size {:?} is not a number", body[1])))?;
    let root = B64
        .decode(body[2])
        .ok()
        .filter(|r| r.len() == 32)
        .ok_or_else(|| bad(format!("root hash {:?} is not base64 of 32 bytes", body[2])))?;
    let time = body[3..]
        .iter()
        .find_map(|l| l.strip_prefix("time "))
        .unwrap_or("")
        .to_string();
    if sigs.is_empty() {
        return Err(bad("no signature line".into()));
    }
    let mut parsed = Vec::new();
    for s in sigs {
        let rest = &s[SIG_PREFIX.len()..];
        let (name, b64) = rest
            .rsplit_once(' ')
            .ok_or_else(|| bad(format!("signature line {s:?} has no signature")))?;
        let blob = B64
            .decode(b64)
            .map_err(|e| bad(format!("signature is not base64: {e}")))?;
        if blob.len() != 4 + 64 {
            return Err(bad(format!(
                "signature is {} bytes, not an ed25519 one (68)",
                blob.len()
            )));
        }
        let kid = [blob[0], blob[1], blob[2], blob[3]];
        let sig = Signature::from_slice(&blob[4..]).map_err(|e| bad(e.to_string()))?;
        parsed.push((name.to_string(), kid, sig));
    }
    let mut text = body.join("\n");
    text.push('\n');
    Ok(Found {
        head: TreeHead {
            ledger_id: ledger_id.to_string(),
            size,
            root: hex::encode(root),
            time,
        },
        source: source.to_string(),
        body: text,
        sigs: parsed,
    })
}

/// The local witness directory of a repository: `$CAIRN_WITNESS_DIR/<repo key>`, else
/// `<user state dir>/cairn/witness/<repo key>` (`~/.local/state` on Linux; the config
/// dir where a platform has no state dir). Never inside the ledger's data directory.
pub fn local_witness_dir(repo_root: &Path) -> Option<PathBuf> {
    let key = repo_key(repo_root).ok()?;
    let base = match std::env::var_os("CAIRN_WITNESS_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let p = directories::ProjectDirs::from("dev", "cairn", "cairn")?;
            p.state_dir()
                .unwrap_or_else(|| p.config_dir())
                .join("witness")
        }
    };
    Some(base.join(key))
}

/// The blob the git witness's note for a ledger hangs on, and its id in a SHA-1 and
/// in a SHA-256 repository.
fn ledger_blob(ledger_id: &str) -> (String, [String; 2]) {
    let content = format!("cairn-ledger:{ledger_id}\n");
    let framed = [
        format!("blob {}\0", content.len()).as_bytes(),
        content.as_bytes(),
    ]
    .concat();
    let sha1 = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(&framed))
    };
    (content, [sha1, crate::digest::sha256_hex(&framed)])
}

/// The object the git witness's note for a ledger hangs on, written the first time
/// only: its id is known, so whether it is there is one read.
fn ledger_object(repo: &Path, ledger_id: &str, cat: &mut git::CatFile) -> Result<String> {
    let (content, ids) = ledger_blob(ledger_id);
    for id in ids {
        if cat.get(&id)?.is_some_and(|o| o.kind == "blob") {
            return Ok(id);
        }
    }
    let out = git::git_bytes(
        repo,
        &["hash-object", "-w", "--stdin"],
        Some(content.as_bytes()),
    )?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// What a refresh wrote, and what it refused to overwrite.
#[derive(Debug, Clone, Default)]
pub struct Refreshed {
    pub head: Option<TreeHead>,
    pub git_written: bool,
    pub local_written: Option<PathBuf>,
    /// A witness holding a larger checkpoint than the ledger is left alone (it is the
    /// evidence `verify` reports); each such case is described here.
    pub warnings: Vec<String>,
}

fn biggest(text: &str, source: &str, ledger_id: &str) -> Option<Found> {
    parse_checkpoints(text, source)
        .into_iter()
        .flatten()
        .filter(|f| f.head.ledger_id == ledger_id)
        .max_by_key(|f| f.head.size)
}

/// Sign a checkpoint of the whole ledger and hand it to both witnesses (what the
/// post-commit and post-rewrite hooks do, through `attest`). A witness is only moved
/// forward: one that already holds a larger checkpoint keeps it.
pub fn refresh(ledger: &Ledger) -> Result<Refreshed> {
    let (size, root) = ledger.checkpoint()?;
    let mut cat = git::CatFile::open(ledger.repo_root())?;
    refresh_at(ledger, size, root, &mut cat)
}

/// [`refresh`] with the ledger's size and root already known (the hooks keep them in
/// the span index), reading through the caller's `cat-file` session.
pub(crate) fn refresh_at(
    ledger: &Ledger,
    size: u64,
    root: String,
    cat: &mut git::CatFile,
) -> Result<Refreshed> {
    let head = TreeHead {
        ledger_id: ledger.ledger_id().to_string(),
        size,
        root,
        time: now_rfc3339(),
    };
    let text = head.sign(ledger.signing_key());
    let mut out = Refreshed::default();
    let stale = |kept: &Found| {
        format!(
            "{} is larger than the ledger ({size} records): left in place; run `cairn verify`",
            kept.name()
        )
    };

    if let Some(dir) = ledger.witness_dir() {
        let file = dir.join(format!("{}.checkpoint", head.ledger_id));
        let old = std::fs::read_to_string(&file).ok();
        let kept = old.as_deref().and_then(|t| {
            biggest(
                t,
                &format!("local witness {}", file.display()),
                &head.ledger_id,
            )
        });
        match kept {
            Some(k) if k.head.size > size => out.warnings.push(stale(&k)),
            Some(k) if k.head.size == size && k.head.root == head.root => {}
            _ => {
                std::fs::create_dir_all(dir).at(dir)?;
                let tmp = file.with_extension("checkpoint.tmp");
                {
                    use std::io::Write;
                    let mut f = std::fs::File::create(&tmp).at(&tmp)?;
                    f.write_all(text.as_bytes()).at(&tmp)?;
                    f.sync_all().at(&tmp)?;
                }
                std::fs::rename(&tmp, &file).at(&file)?;
                out.local_written = Some(file);
            }
        }
    }

    let repo = ledger.repo_root();
    let object = ledger_object(repo, &head.ledger_id, cat)?;
    let old = cat
        .note(CHECKPOINTS_REF, &object)?
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    let kept = old
        .as_deref()
        .and_then(|t| biggest(t, CHECKPOINTS_REF, &head.ledger_id));
    match kept {
        Some(k) if k.head.size > size => out.warnings.push(stale(&k)),
        Some(k) if k.head.size == size && k.head.root == head.root => {}
        _ => {
            git::git_bytes(
                repo,
                &[
                    "notes",
                    "--ref",
                    CHECKPOINTS_REF,
                    "add",
                    "-f",
                    "-F",
                    "-",
                    &object,
                ],
                Some(text.as_bytes()),
            )?;
            out.git_written = true;
        }
    }
    for w in &out.warnings {
        tracing::warn!("{w}");
    }
    out.head = Some(head);
    Ok(out)
}

/// Every checkpoint the witnesses hold for this repository: each version of the git
/// witness's notes in the ref's history (so a ledger rewritten and checkpointed again
/// still disagrees with what was witnessed before), and the local witness's files.
/// Unreadable ones come back as failures.
pub fn collect(repo: &Path, local_dir: Option<&Path>) -> Result<(Vec<Found>, Vec<Failure>)> {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    let take = |text: &str, source: &str, found: &mut Vec<Found>, failures: &mut Vec<Failure>| {
        for r in parse_checkpoints(text, source) {
            match r {
                Ok(f) => found.push(f),
                Err(message) => failures.push(Failure {
                    place: source.to_string(),
                    record: None,
                    message,
                }),
            }
        }
    };
    if git::git(repo, &["rev-parse", "-q", "--verify", CHECKPOINTS_REF]).is_ok() {
        let log = git::git(
            repo,
            &[
                "log",
                "--format=%H",
                "--raw",
                "--no-abbrev",
                "--no-renames",
                CHECKPOINTS_REF,
            ],
        )?;
        let mut seen = BTreeSet::new();
        let mut blobs: Vec<(String, String)> = Vec::new();
        let mut commit = String::new();
        for line in log.lines() {
            if let Some(raw) = line.strip_prefix(':') {
                let f: Vec<&str> = raw.split_whitespace().collect();
                if f.len() >= 5 && !f[4].starts_with('D') && seen.insert(f[3].to_string()) {
                    blobs.push((f[3].to_string(), commit.clone()));
                }
            } else if line.len() >= 40 && line.chars().all(|c| c.is_ascii_hexdigit()) {
                commit = line.to_string();
            }
        }
        let ids: Vec<String> = blobs.iter().map(|(b, _)| b.clone()).collect();
        for ((_, c), blob) in blobs.iter().zip(git::read_blobs(repo, &ids)?) {
            let source = format!("{CHECKPOINTS_REF}@{}", &c[..12.min(c.len())]);
            match blob {
                Some(b) => take(
                    &String::from_utf8_lossy(&b),
                    &source,
                    &mut found,
                    &mut failures,
                ),
                None => failures.push(Failure {
                    place: source,
                    record: None,
                    message: "a checkpoint note the ref's history names is missing".into(),
                }),
            }
        }
    }
    if let Some(dir) = local_dir {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "checkpoint"))
                .collect();
            files.sort();
            for p in files {
                let source = format!("local witness {}", p.display());
                match std::fs::read_to_string(&p) {
                    Ok(t) => take(&t, &source, &mut found, &mut failures),
                    Err(e) => failures.push(Failure {
                        place: source,
                        record: None,
                        message: format!("cannot read: {e}"),
                    }),
                }
            }
        }
    }
    Ok((found, failures))
}

/// The local ledger as the witnesses are checked against it.
pub struct LedgerView<'a> {
    pub ledger_id: &'a str,
    pub key: &'a VerifyingKey,
    /// Merkle leaves of the ledger's lines, in order.
    pub leaves: &'a [[u8; 32]],
}

/// Leaves of a ledger file's lines (every line, good or bad).
pub fn leaves_of(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(merkle_leaf)
        .collect()
}

/// Check the ledger against every checkpoint found: each checkpoint of this ledger must
/// be signed by its key, cover no more records than it has, and agree with its Merkle
/// root at that size. Without a ledger, any local-witness checkpoint is a failure (the
/// ledger was deleted). Returns a line for the user on what was checked.
pub fn check(
    found: &[Found],
    ledger: Option<&LedgerView<'_>>,
    failures: &mut Vec<Failure>,
) -> String {
    let Some(l) = ledger else {
        let mut n = 0;
        for f in found
            .iter()
            .filter(|f| f.source.starts_with("local witness"))
        {
            n += 1;
            failures.push(Failure {
                place: f.name(),
                record: None,
                message: format!(
                    "the ledger is missing but this checkpoint says it held {} records",
                    f.head.size
                ),
            });
        }
        return format!(
            "witnesses: {} checkpoints, none checked (no local ledger); {n} local",
            found.len()
        );
    };
    let mine: Vec<&Found> = found
        .iter()
        .filter(|f| f.head.ledger_id == l.ledger_id)
        .collect();
    let sizes: BTreeSet<u64> = mine.iter().map(|f| f.head.size).collect();
    let roots = merkle_roots_at(l.leaves, &sizes);
    let have = l.leaves.len() as u64;
    let mut largest = 0;
    for f in &mine {
        let fail = |failures: &mut Vec<Failure>, message: String| {
            failures.push(Failure {
                place: f.name(),
                record: None,
                message,
            })
        };
        if !f.signed_by(l.key) {
            fail(
                failures,
                "not signed by this ledger's key (a forged or altered checkpoint)".into(),
            );
            continue;
        }
        largest = largest.max(f.head.size);
        if f.head.size > have {
            fail(
                failures,
                format!(
                    "the ledger holds {have} records but this checkpoint covers {}: \
                     records were removed from its end (or the ledger was replaced)",
                    f.head.size
                ),
            );
        } else if roots.get(&f.head.size).map(hex::encode).as_deref() != Some(f.head.root.as_str())
        {
            fail(
                failures,
                format!(
                    "the ledger's first {} records do not hash to this checkpoint's root: \
                     the ledger was rewritten",
                    f.head.size
                ),
            );
        }
    }
    let foreign = found.len() - mine.len();
    let tail = have.saturating_sub(largest);
    format!(
        "witnesses: {} checkpoints of this ledger (largest covers {largest} of {have} records; \
         {tail} after it are unwitnessed), {foreign} of other ledgers",
        mine.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_blob_id_is_the_one_git_gives() {
        let (content, ids) = ledger_blob("0190-ab");
        for (format, id) in [("sha1", &ids[0]), ("sha256", &ids[1])] {
            let tmp = tempfile::tempdir().unwrap();
            git::git(
                tmp.path(),
                &["init", "-q", &format!("--object-format={format}")],
            )
            .unwrap();
            let out = git::git_bytes(
                tmp.path(),
                &["hash-object", "--stdin"],
                Some(content.as_bytes()),
            )
            .unwrap();
            assert_eq!(String::from_utf8_lossy(&out).trim(), id, "{format}");
        }
    }
}
