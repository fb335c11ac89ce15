//! The append-only, signed, hash-chained ledger: one DSSE envelope per line.
//!
//! Line 0 is a header statement publishing the ledger id and the device's public
//! key. Every later line carries `seq` (its line number) and `prev` (SHA-256 of
//! the previous line's bytes) inside its signed predicate. Appends take an
//! exclusive file lock (so writers in different processes never fork the chain),
//! catch up with lines other processes appended, write, `fsync`, and only then
//! acknowledge. Concurrent appends within a process share one `fsync` (group commit).
//!
//! Over 600 lines as one room: the appender (file lock, catch-up, group commit, fsync)
//! and the readers of its lines share the line format and the writer state; the checks
//! of a whole file are in `check`.

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

mod check;

pub use check::*;

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
