//! The append-only, signed, hash-chained ledger: one DSSE envelope per line.
//!
//! Line 0 is a header statement publishing the ledger id and the device's public
//! key. Every later line carries `seq` (its line number) and `prev` (SHA-256 of
//! the previous line's bytes) inside its signed predicate. Appends take an
//! exclusive file lock (so writers in different processes never fork the chain),
//! catch up with lines other processes appended, write, `fsync`, and only then
//! acknowledge. Concurrent appends within a process share one `fsync` (group commit).

use crate::digest::{merkle_leaf, merkle_root, sha256_hex};
use crate::dsse::Envelope;
use crate::error::{Error, IoContext, Result};
use crate::jcs;
use crate::keys::{self, key_id, public_key_b64, KeyStore, DEVICE_KEY};
use crate::record::{
    event_body, record_of_payload, Actor, Event, EventKind, Record, RecordId, Statement, Subject,
    PREDICATE_EVENT, PREDICATE_LEDGER_HEADER,
};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// File name of the ledger inside its directory.
pub const LEDGER_FILE: &str = "ledger.jsonl";

/// How to open a ledger. Defaults: directory from [`ledger_dir`], device key from
/// the store named by `CAIRN_KEY_STORE` (OS keyring by default), actor from `git config`.
#[derive(Clone, Default)]
pub struct LedgerOptions {
    /// The directory holding `ledger.jsonl` for this repository (overrides the data dir).
    pub dir: Option<PathBuf>,
    pub key_store: Option<Arc<dyn KeyStore>>,
    pub actor: Option<Actor>,
    /// The local witness directory for this repository's checkpoints (overrides
    /// [`crate::witness::local_witness_dir`]); kept apart from the ledger on purpose.
    pub witness_dir: Option<PathBuf>,
}

impl std::fmt::Debug for LedgerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerOptions")
            .field("dir", &self.dir)
            .field("key_store", &self.key_store.as_ref().map(|k| k.describe()))
            .field("actor", &self.actor)
            .field("witness_dir", &self.witness_dir)
            .finish()
    }
}

impl LedgerOptions {
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
    pub fn with_witness_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.witness_dir = Some(dir.into());
        self
    }
    pub fn with_key_store(mut self, store: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(store);
        self
    }
    pub fn key_store(&self) -> Result<Arc<dyn KeyStore>> {
        match &self.key_store {
            Some(k) => Ok(k.clone()),
            None => Ok(Arc::from(keys::key_store_from_env()?)),
        }
    }
}

/// The ledger directory for a repository: `opts.dir` if set, else
/// `$CAIRN_DATA_DIR/ledgers/<key>` if set, else `<user data dir>/cairn/ledgers/<key>`,
/// where `<key>` is the repository folder name and a digest of its canonical path.
pub fn ledger_dir(repo_root: &Path, opts: &LedgerOptions) -> Result<PathBuf> {
    if let Some(d) = &opts.dir {
        return Ok(d.clone());
    }
    let key = repo_key(repo_root)?;
    let base = match std::env::var_os("CAIRN_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => directories::ProjectDirs::from("dev", "cairn", "cairn")
            .map(|p| p.data_dir().to_path_buf())
            .ok_or_else(|| {
                Error::Invalid("no user data directory (HOME unset?); set CAIRN_DATA_DIR".into())
            })?,
    };
    Ok(base.join("ledgers").join(key))
}

/// A repository's key among Cairn's per-repository directories: the folder name and a
/// digest of the canonical path.
pub fn repo_key(repo_root: &Path) -> Result<String> {
    let root = std::fs::canonicalize(repo_root).at(repo_root)?;
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(format!(
        "{name}-{}",
        &sha256_hex(root.to_string_lossy().as_bytes())[..16]
    ))
}

/// The ledger file path for a repository.
pub fn ledger_path(repo_root: &Path, opts: &LedgerOptions) -> Result<PathBuf> {
    Ok(ledger_dir(repo_root, opts)?.join(LEDGER_FILE))
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One parsed ledger line.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub seq: u64,
    /// The canonical envelope bytes as stored (without the newline).
    pub line: Vec<u8>,
    pub envelope: Envelope,
    pub statement: Statement,
    /// The statement's predicate, typed: what every reader of the ledger goes by.
    pub record: Record,
}

impl LedgerEntry {
    pub fn digest(&self) -> String {
        sha256_hex(&self.line)
    }
    pub fn record_id(&self) -> Option<RecordId> {
        self.record
            .record_id
            .as_deref()
            .and_then(|s| s.parse().ok())
    }
    /// The event's kind (`suggested`, …); `None` on the header.
    pub fn event(&self) -> Option<&'static str> {
        self.record.event.map(EventKind::as_str)
    }
}

pub(crate) fn parse_line(line: &[u8]) -> Result<(Envelope, Statement)> {
    let env: Envelope = serde_json::from_slice(line)
        .map_err(|e| Error::Envelope(format!("not a DSSE envelope: {e}")))?;
    let st: Statement = serde_json::from_slice(&env.payload_bytes()?)
        .map_err(|e| Error::Envelope(format!("payload is not an in-toto statement: {e}")))?;
    Ok((env, st))
}

/// Read all lines of a ledger file (no signature checks; see [`verify_ledger_file`]).
/// A torn last line is an error.
pub fn read_entries(path: &Path) -> Result<Vec<LedgerEntry>> {
    let bytes = std::fs::read(path).at(path)?;
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let offset = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
        return Err(Error::TornTail {
            path: path.into(),
            offset,
        });
    }
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let (envelope, statement) = parse_line(line).map_err(|e| Error::Corrupt {
            path: path.into(),
            line: i as u64 + 1,
            message: e.to_string(),
        })?;
        let record = Record::deserialize(&statement.predicate).map_err(|e| Error::Corrupt {
            path: path.into(),
            line: i as u64 + 1,
            message: format!("the record does not read: {e}"),
        })?;
        out.push(LedgerEntry {
            seq: record.seq.unwrap_or(u64::MAX),
            line: line.to_vec(),
            envelope,
            statement,
            record,
        });
    }
    Ok(out)
}

/// The typed record of every line (lines as stored), read on all cores straight from the
/// payload into [`Record`] (no `serde_json::Value` detour): what attribution needs, at a
/// fraction of [`read_entries`]' cost. Lines that do not read are left out (`verify`
/// reports them). A torn last line is an error, as in [`read_entries`].
pub fn read_records(path: &Path) -> Result<Vec<(Vec<u8>, Record)>> {
    let bytes = std::fs::read(path).at(path)?;
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let offset = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
        return Err(Error::TornTail {
            path: path.into(),
            offset,
        });
    }
    let lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = lines.len().div_ceil(threads).max(1);
    let one = |line: &[u8]| -> Option<(Vec<u8>, Record)> {
        let env: Envelope = serde_json::from_slice(line).ok()?;
        let payload = env.payload_bytes().ok()?;
        let (_, record) = record_of_payload(&payload).ok()?;
        Some((line.to_vec(), record))
    };
    Ok(std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().filter_map(|l| one(l)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("ledger reader panicked"))
            .collect()
    }))
}

/// Typed records of ledger lines given as (offset, bytes), parsed on all cores; lines that
/// do not read are left out.
pub(crate) fn parse_records<'a>(lines: &[(u64, &'a [u8])]) -> Vec<(u64, &'a [u8], Record)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = lines.len().div_ceil(threads).max(1);
    let one = |(off, line): &(u64, &'a [u8])| -> Option<(u64, &'a [u8], Record)> {
        let env: Envelope = serde_json::from_slice(line).ok()?;
        let payload = env.payload_bytes().ok()?;
        let (_, record) = record_of_payload(&payload).ok()?;
        Some((*off, *line, record))
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().filter_map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("ledger reader panicked"))
            .collect()
    })
}

struct Writer {
    file: File,
    len: u64,
    next_seq: u64,
    prev: String,
}

struct Group {
    queue: Vec<(u64, RecordId, Event)>,
    next_ticket: u64,
    leader: bool,
    results: HashMap<u64, std::result::Result<(), String>>,
}

struct Inner {
    path: PathBuf,
    repo: String,
    key: SigningKey,
    keyid: String,
    ledger_id: String,
    actor: Actor,
    witness_dir: Option<PathBuf>,
    writer: Mutex<Writer>,
    group: Mutex<Group>,
    done: Condvar,
}

/// A handle on one repository's ledger. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.inner.path)
            .field("ledger_id", &self.inner.ledger_id)
            .finish()
    }
}

fn lock(file: &File, path: &Path) -> Result<()> {
    fs4::fs_std::FileExt::lock_exclusive(file).at(path)
}

fn unlock(file: &File, path: &Path) -> Result<()> {
    fs4::fs_std::FileExt::unlock(file).at(path)
}

/// Read the last complete line of a file whose length is `len` (must end in `\n`).
fn read_last_line(file: &mut File, path: &Path, len: u64) -> Result<Vec<u8>> {
    let mut chunk = 8192u64;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start)).at(path)?;
        let mut buf = vec![0; (len - start) as usize];
        file.read_exact(&mut buf).at(path)?;
        if !buf.ends_with(b"\n") {
            let offset = start + buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
            return Err(Error::TornTail {
                path: path.into(),
                offset,
            });
        }
        let body = &buf[..buf.len() - 1];
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(body[i + 1..].to_vec());
        }
        if start == 0 {
            return Ok(body.to_vec());
        }
        chunk *= 4;
    }
}

fn read_first_line(file: &mut File, path: &Path) -> Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0)).at(path)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = file.read(&mut buf).at(path)?;
        if n == 0 {
            return Ok(out);
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            out.extend_from_slice(&buf[..i]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn seq_of(line: &[u8], path: &Path, line_no: u64) -> Result<u64> {
    let (_, st) = parse_line(line).map_err(|e| Error::Corrupt {
        path: path.into(),
        line: line_no,
        message: e.to_string(),
    })?;
    Record::deserialize(&st.predicate)
        .ok()
        .and_then(|r| r.seq)
        .ok_or_else(|| Error::Corrupt {
            path: path.into(),
            line: line_no,
            message: "no seq in predicate".into(),
        })
}

fn sync_dir(dir: &Path) {
    // Directory fsync makes a newly created ledger file's entry durable; not all
    // platforms allow opening a directory, so failure here is not fatal.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Git identity of the user in `repo` (falls back to `unknown`).
pub fn git_actor(repo: &Path) -> Actor {
    // One `git config` for both keys: the hooks run this on every commit.
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["config", "-z", "--get-regexp", r"^user\.(name|email)$"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut actor = Actor {
        name: "unknown".into(),
        email: "unknown".into(),
        device_key: String::new(),
    };
    for entry in out.split('\0') {
        match entry.split_once('\n') {
            Some(("user.name", v)) => actor.name = v.to_string(),
            Some(("user.email", v)) => actor.email = v.to_string(),
            _ => {}
        }
    }
    actor
}

impl Ledger {
    /// Open (creating on first use) the ledger of the repository at `repo_root`.
    pub fn open(repo_root: &Path, opts: LedgerOptions) -> Result<Ledger> {
        let root = std::fs::canonicalize(repo_root).at(repo_root)?;
        let dir = ledger_dir(&root, &opts)?;
        std::fs::create_dir_all(&dir).at(&dir)?;
        let path = dir.join(LEDGER_FILE);
        let store = opts.key_store()?;
        let key = keys::load_or_create(store.as_ref(), DEVICE_KEY)?;
        let keyid = key_id(&key.verifying_key());
        let mut actor = opts.actor.clone().unwrap_or_else(|| git_actor(&root));
        actor.device_key = keyid.clone();
        let repo = root.to_string_lossy().into_owned();

        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .at(&path)?;
        lock(&file, &path)?;
        let res = (|| -> Result<(Writer, String)> {
            let len = file.metadata().at(&path)?.len();
            if len == 0 {
                let ledger_id = uuid::Uuid::now_v7().to_string();
                let vk = key.verifying_key();
                let st = Statement::new(
                    vec![Subject::new(
                        format!("cairn-ledger:{ledger_id}"),
                        "sha256",
                        sha256_hex(vk.as_bytes()),
                    )],
                    PREDICATE_LEDGER_HEADER,
                    serde_json::json!({
                        "recordId": ledger_id,
                        "ledgerId": ledger_id,
                        "seq": 0,
                        "prev": Value::Null,
                        "time": now_rfc3339(),
                        "repo": repo,
                        "algorithm": "ed25519",
                        "publicKey": public_key_b64(&vk),
                        "keyid": keyid,
                        "toolVersion": env!("CARGO_PKG_VERSION"),
                    }),
                );
                let mut line = Envelope::sign(&jcs::to_vec(&st)?, &key).to_line();
                let prev = sha256_hex(&line);
                line.push(b'\n');
                file.write_all(&line).at(&path)?;
                file.sync_all().at(&path)?;
                sync_dir(&dir);
                return Ok((
                    Writer {
                        len: line.len() as u64,
                        file: file.try_clone().at(&path)?,
                        next_seq: 1,
                        prev,
                    },
                    ledger_id,
                ));
            }
            let first = read_first_line(&mut file, &path)?;
            let (_, header) = parse_line(&first).map_err(|e| Error::Corrupt {
                path: path.clone(),
                line: 1,
                message: e.to_string(),
            })?;
            if header.predicate_type != PREDICATE_LEDGER_HEADER {
                return Err(Error::Corrupt {
                    path: path.clone(),
                    line: 1,
                    message: "first line is not a ledger header".into(),
                });
            }
            let head = Record::deserialize(&header.predicate).unwrap_or_default();
            let ledger_key = head.keyid.clone().unwrap_or_default();
            if ledger_key != keyid {
                return Err(Error::KeyMismatch {
                    path: path.clone(),
                    ledger_key,
                    device_key: keyid.clone(),
                });
            }
            let ledger_id = head.ledger_id.unwrap_or_default();
            let last = read_last_line(&mut file, &path, len)?;
            let seq = seq_of(&last, &path, 0)?;
            Ok((
                Writer {
                    file: file.try_clone().at(&path)?,
                    len,
                    next_seq: seq + 1,
                    prev: sha256_hex(&last),
                },
                ledger_id,
            ))
        })();
        unlock(&file, &path)?;
        let (writer, ledger_id) = res?;
        let witness_dir = match &opts.witness_dir {
            Some(d) => Some(d.clone()),
            None => crate::witness::local_witness_dir(&root),
        };
        Ok(Ledger {
            inner: Arc::new(Inner {
                path,
                repo,
                key,
                keyid,
                ledger_id,
                actor,
                witness_dir,
                writer: Mutex::new(writer),
                group: Mutex::new(Group {
                    queue: Vec::new(),
                    next_ticket: 0,
                    leader: false,
                    results: HashMap::new(),
                }),
                done: Condvar::new(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
    pub fn ledger_id(&self) -> &str {
        &self.inner.ledger_id
    }
    pub fn repo_root(&self) -> &Path {
        Path::new(&self.inner.repo)
    }
    pub fn signing_key(&self) -> &SigningKey {
        &self.inner.key
    }
    pub fn public_key(&self) -> VerifyingKey {
        self.inner.key.verifying_key()
    }
    pub fn key_id(&self) -> &str {
        &self.inner.keyid
    }
    pub fn actor(&self) -> &Actor {
        &self.inner.actor
    }
    /// Where this ledger's local witness keeps its checkpoints (`None`: no such place).
    pub fn witness_dir(&self) -> Option<&Path> {
        self.inner.witness_dir.as_deref()
    }

    /// Append one event; returns after the record is on disk (fsync'd).
    pub fn append(&self, event: Event) -> Result<RecordId> {
        Ok(self.append_all(vec![event])?[0])
    }

    /// Append several events with one fsync; returns their record ids in order.
    pub fn append_batch(&self, events: Vec<Event>) -> Result<Vec<RecordId>> {
        self.append_all(events)
    }

    fn append_all(&self, events: Vec<Event>) -> Result<Vec<RecordId>> {
        let inner = &self.inner;
        let mut g = inner.group.lock().expect("ledger group lock poisoned");
        let mut tickets = Vec::with_capacity(events.len());
        let mut ids = Vec::with_capacity(events.len());
        for ev in events {
            let t = g.next_ticket;
            g.next_ticket += 1;
            let id = uuid::Uuid::now_v7();
            g.queue.push((t, id, ev));
            tickets.push(t);
            ids.push(id);
        }
        loop {
            if tickets.iter().all(|t| g.results.contains_key(t)) {
                let mut err = None;
                for t in &tickets {
                    if let Some(Err(e)) = g.results.remove(t) {
                        err.get_or_insert(e);
                    }
                }
                return match err {
                    None => Ok(ids),
                    Some(e) => Err(Error::Append(e)),
                };
            }
            if !g.leader {
                g.leader = true;
                let batch = std::mem::take(&mut g.queue);
                drop(g);
                let outcome = self.write_batch(&batch).map_err(|e| e.to_string());
                g = inner.group.lock().expect("ledger group lock poisoned");
                for (t, _, _) in &batch {
                    g.results.insert(*t, outcome.clone());
                }
                g.leader = false;
                inner.done.notify_all();
            } else {
                g = inner.done.wait(g).expect("ledger group lock poisoned");
            }
        }
    }

    fn write_batch(&self, batch: &[(u64, RecordId, Event)]) -> Result<()> {
        let inner = &self.inner;
        let path = &inner.path;
        let mut w = inner.writer.lock().expect("ledger writer lock poisoned");
        lock(&w.file, path)?;
        let res = (|| -> Result<()> {
            let len = w.file.metadata().at(path)?.len();
            if len != w.len {
                // Another process appended since we last wrote: continue its chain.
                let last = read_last_line(&mut w.file, path, len)?;
                w.next_seq = seq_of(&last, path, 0)? + 1;
                w.prev = sha256_hex(&last);
                w.len = len;
            }
            let mut buf = Vec::with_capacity(batch.len() * 1024);
            let (mut seq, mut prev) = (w.next_seq, w.prev.clone());
            for (_, id, ev) in batch {
                let line = self.sign_event(ev, *id, seq, &prev)?;
                prev = sha256_hex(&line);
                seq += 1;
                buf.extend_from_slice(&line);
                buf.push(b'\n');
            }
            w.file.write_all(&buf).at(path)?;
            w.file.sync_data().at(path)?;
            w.len += buf.len() as u64;
            w.next_seq = seq;
            w.prev = prev;
            Ok(())
        })();
        if res.is_err() {
            // Re-read the tail next time rather than trusting cached state.
            w.len = u64::MAX;
        }
        unlock(&w.file, path)?;
        res
    }

    fn sign_event(&self, ev: &Event, id: RecordId, seq: u64, prev: &str) -> Result<Vec<u8>> {
        let inner = &self.inner;
        let salt: [u8; 16] = rand::random();
        let (subject, mut p) = event_body(ev, &inner.repo, salt);
        p.insert("recordId".into(), id.to_string().into());
        p.insert("ledgerId".into(), inner.ledger_id.clone().into());
        p.insert("seq".into(), seq.into());
        p.insert("prev".into(), prev.into());
        p.insert("time".into(), now_rfc3339().into());
        p.insert("actor".into(), serde_json::to_value(&inner.actor)?);
        let st = Statement::new(subject, PREDICATE_EVENT, Value::Object(p));
        Ok(Envelope::sign(&jcs::to_vec(&st)?, &inner.key).to_line())
    }

    /// All entries currently in the ledger.
    pub fn entries(&self) -> Result<Vec<LedgerEntry>> {
        read_entries(&self.inner.path)
    }

    /// RFC 6962 Merkle root over all lines so far: (tree size, hex root).
    pub fn checkpoint(&self) -> Result<(u64, String)> {
        checkpoint_of(&self.inner.path, None)
    }
}

/// Merkle checkpoint over the first `size` lines (all when `None`) of a ledger file.
pub fn checkpoint_of(path: &Path, size: Option<u64>) -> Result<(u64, String)> {
    let bytes = std::fs::read(path).at(path)?;
    let mut leaves: Vec<[u8; 32]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(merkle_leaf)
        .collect();
    if let Some(n) = size {
        if n as usize > leaves.len() {
            return Err(Error::Invalid(format!(
                "checkpoint covers {n} records but the ledger {} holds {}",
                path.display(),
                leaves.len()
            )));
        }
        leaves.truncate(n as usize);
    }
    Ok((leaves.len() as u64, hex::encode(merkle_root(&leaves))))
}

/// Move a torn (never acknowledged) last line aside into `ledger.jsonl.torn-<time>`,
/// so the ledger can be appended to again. Returns the file the bytes went to, if any.
/// This is an explicit user action (`cairn verify --quarantine-torn-tail`), never automatic.
pub fn quarantine_torn_tail(path: &Path) -> Result<Option<PathBuf>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)?;
    lock(&file, path)?;
    let res = (|| -> Result<Option<PathBuf>> {
        let bytes = std::fs::read(path).at(path)?;
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(None);
        }
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let side = path.with_extension(format!(
            "jsonl.torn-{}",
            time::OffsetDateTime::now_utc().unix_timestamp()
        ));
        let mut f = File::create(&side).at(&side)?;
        f.write_all(&bytes[keep..]).at(&side)?;
        f.sync_all().at(&side)?;
        file.set_len(keep as u64).at(path)?;
        file.sync_all().at(path)?;
        Ok(Some(side))
    })();
    unlock(&file, path)?;
    res
}

/// One problem found by verification, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// Where: `ledger line N`, `note on <commit>` …
    pub place: String,
    pub record: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.place)?;
        if let Some(r) = &self.record {
            write!(f, " (record {r})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Result of checking a ledger file.
#[derive(Debug, Clone, Default)]
pub struct LedgerCheck {
    pub records: u64,
    pub ledger_id: Option<String>,
    pub public_key: Option<VerifyingKey>,
    pub signatures_checked: u64,
    /// SHA-256 of each good line, by line index (for cross-checking notes).
    pub digests: Vec<String>,
    pub failures: Vec<Failure>,
}

struct Parsed {
    seq: Option<u64>,
    prev: Option<String>,
    record: Option<String>,
    is_header: bool,
    header_key: Option<String>,
    ledger_id: Option<String>,
    signed: Option<crate::dsse::SignedParts>,
    /// SHA-256 of the line's bytes.
    digest: String,
    error: Option<String>,
}

fn parse_for_verify(line: &[u8]) -> Parsed {
    let mut p = Parsed {
        seq: None,
        prev: None,
        record: None,
        is_header: false,
        header_key: None,
        ledger_id: None,
        signed: None,
        digest: sha256_hex(line),
        error: None,
    };
    let env: Envelope = match serde_json::from_slice(line) {
        Ok(e) => e,
        Err(e) => {
            p.error = Some(format!("not a DSSE envelope: {e}"));
            return p;
        }
    };
    let signed = match env.signed_parts() {
        Ok(s) => s,
        Err(e) => {
            p.error = Some(e.to_string());
            return p;
        }
    };
    let (predicate_type, rec) = match record_of_payload(signed.payload()) {
        Ok(r) => r,
        Err(e) => {
            p.error = Some(format!("payload is not an in-toto statement: {e}"));
            return p;
        }
    };
    p.seq = rec.seq;
    p.prev = rec.prev;
    p.record = rec.record_id;
    p.ledger_id = rec.ledger_id;
    p.is_header = predicate_type == PREDICATE_LEDGER_HEADER;
    if p.is_header {
        p.header_key = rec.public_key;
    }
    if env.to_line() != line {
        p.error = Some("envelope is not in canonical form (the line was edited)".into());
        return p;
    }
    p.signed = Some(signed);
    p
}

/// Verify a ledger file: every signature (against the header's key, or `expected_key`),
/// the chain (`seq` without gaps, `prev` digests), canonical form, and the tail.
pub fn verify_ledger_file(path: &Path, expected_key: Option<&VerifyingKey>) -> Result<LedgerCheck> {
    let bytes = std::fs::read(path).at(path)?;
    let mut check = LedgerCheck::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
    if let Some(last) = lines.last() {
        if last.is_empty() {
            lines.pop();
        }
    }
    let torn_line = if torn { lines.pop() } else { None };

    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = lines.len().div_ceil(threads).max(1);
    let parsed: Vec<Parsed> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|l| parse_for_verify(l)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("verify worker panicked"))
            .collect()
    });

    // Trust anchor: the header's published key (or the one the caller expects).
    let header_key = parsed
        .first()
        .filter(|p| p.is_header)
        .and_then(|p| p.header_key.as_deref())
        .and_then(|k| keys::parse_public_key(k).ok());
    if parsed.first().is_some_and(|p| !p.is_header) || (header_key.is_none() && !parsed.is_empty())
    {
        check.failures.push(Failure {
            place: "ledger line 1".into(),
            record: None,
            message: "missing or unreadable ledger header".into(),
        });
    }
    let key = expected_key.copied().or(header_key);
    if let (Some(exp), Some(h)) = (expected_key, header_key) {
        if exp != &h {
            check.failures.push(Failure {
                place: "ledger line 1".into(),
                record: None,
                message: format!(
                    "ledger header key {} is not the expected key {}",
                    &key_id(&h)[..16],
                    &key_id(exp)[..16]
                ),
            });
        }
    }
    check.public_key = key;
    check.ledger_id = parsed.first().and_then(|p| p.ledger_id.clone());

    // Signatures: batch-verify per chunk, falling back to single checks to name culprits.
    let mut bad_sig = vec![false; parsed.len()];
    if let Some(key) = key {
        let kid = key_id(&key);
        let idx: Vec<usize> = (0..parsed.len())
            .filter(|&i| parsed[i].signed.is_some())
            .collect();
        let results: Vec<Vec<usize>> = std::thread::scope(|s| {
            idx.chunks(idx.len().div_ceil(threads).max(1))
                .map(|c| {
                    let parsed = &parsed;
                    let kid = &kid;
                    s.spawn(move || {
                        let mut bad = Vec::new();
                        for sub in c.chunks(256) {
                            let signed = |i: usize| parsed[i].signed.as_ref().expect("filtered");
                            let msgs: Vec<&[u8]> =
                                sub.iter().map(|&i| signed(i).message.as_slice()).collect();
                            let sigs: Vec<Signature> = sub.iter().map(|&i| signed(i).sig).collect();
                            let keys = vec![key; sub.len()];
                            let ids_ok = sub.iter().all(|&i| &signed(i).keyid == kid);
                            if ids_ok && ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
                                continue;
                            }
                            for &i in sub {
                                let s = signed(i);
                                if &s.keyid != kid || key.verify_strict(&s.message, &s.sig).is_err()
                                {
                                    bad.push(i);
                                }
                            }
                        }
                        bad
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().expect("verify worker panicked"))
                .collect()
        });
        for i in results.into_iter().flatten() {
            bad_sig[i] = true;
        }
        check.signatures_checked = idx.len() as u64;
    }

    let mut prev_digest: Option<String> = None;
    for (i, p) in parsed.iter().enumerate() {
        let place = format!("ledger line {}", i + 1);
        let digest = p.digest.clone();
        let fail = |check: &mut LedgerCheck, message: String| {
            check.failures.push(Failure {
                place: place.clone(),
                record: p.record.clone(),
                message,
            })
        };
        if let Some(e) = &p.error {
            fail(&mut check, e.clone());
        } else if bad_sig[i] {
            fail(
                &mut check,
                "signature does not verify with the ledger key (forged or altered record)".into(),
            );
        }
        if p.error.is_none() {
            if p.seq != Some(i as u64) {
                fail(
                    &mut check,
                    format!(
                        "seq is {} where {i} was expected (a record was deleted, inserted or reordered)",
                        p.seq.map_or("missing".into(), |s| s.to_string())
                    ),
                );
            }
            if i > 0 && p.prev.as_deref() != prev_digest.as_deref() {
                fail(
                    &mut check,
                    format!(
                        "previous-record digest does not match line {} (the chain is broken there)",
                        i
                    ),
                );
            }
            if i > 0 && p.is_header {
                fail(
                    &mut check,
                    "a second ledger header inside the ledger".into(),
                );
            }
            if i > 0 && p.ledger_id != check.ledger_id {
                fail(&mut check, "record belongs to another ledger".into());
            }
        }
        check.digests.push(digest.clone());
        prev_digest = Some(digest);
    }
    check.records = parsed.len() as u64;
    if let Some(t) = torn_line {
        check.failures.push(Failure {
            place: format!("ledger line {}", parsed.len() + 1),
            record: None,
            message: format!(
                "torn last line ({} bytes without a newline): an append that never completed; \
                 `cairn verify --quarantine-torn-tail` moves it aside",
                t.len()
            ),
        });
    }
    Ok(check)
}
