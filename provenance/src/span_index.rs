//! What the git hooks need from the ledger, kept beside it (`spans-index.json`) and
//! brought up to date from the lines appended since: the accepted spans (for attribution
//! and the trailer), where each suggestion's records are (read only for the records a
//! commit uses), and the Merkle tree over the ledger's lines (for the checkpoints the
//! hooks sign). So a hook neither parses nor hashes the whole ledger on every commit.
//! Derived data: rebuilt whenever it does not match the ledger.

use crate::digest::{merkle_leaf, sha256_hex, MerkleFrontier};
use crate::error::Result;
use crate::record::{EventKind, LineClass, Record};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A ledger line: byte offset, length, SHA-256.
pub(crate) type LineRef = (u64, u32, String);

/// File name of the index, beside the ledger.
pub(crate) const SPAN_INDEX: &str = "spans-index.json";
const SPAN_INDEX_VERSION: u32 = 2;

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct SpanIndex {
    version: u32,
    /// Bytes of the ledger covered (whole lines only).
    len: u64,
    /// SHA-256 of the (up to) 4 KiB of the ledger before `len`.
    tail: String,
    repo: String,
    /// Suggestion record id → model.
    pub(crate) model: HashMap<String, String>,
    /// Suggestion record id → (path, line hashes and classes) as last accepted or edited.
    pub(crate) spans: BTreeMap<String, (String, Vec<(String, LineClass)>)>,
    /// Suggestion record id → its records' lines in the ledger.
    pub(crate) lines: HashMap<String, Vec<LineRef>>,
    /// The RFC 6962 tree over the covered lines (each non-empty line a leaf, as
    /// `Ledger::checkpoint` counts them): hashed once, when first covered.
    merkle: MerkleFrontier,
    /// Bytes read by the last catch-up (not saved).
    #[serde(skip)]
    pub(crate) caught_up: u64,
}

fn tail_digest(file: &mut std::fs::File, len: u64) -> std::io::Result<String> {
    let start = len.saturating_sub(4096);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0; (len - start) as usize];
    file.read_exact(&mut buf)?;
    Ok(sha256_hex(&buf))
}

pub(crate) fn rel_path(repo: &str, p: &str) -> String {
    let pr = Path::new(p);
    if pr.is_absolute() {
        if let Ok(r) = pr.strip_prefix(repo) {
            return r.to_string_lossy().into_owned();
        }
    }
    p.trim_start_matches("./").to_string()
}

impl SpanIndex {
    /// The index of the ledger at `path`, as saved, brought up to the ledger's end (or
    /// rebuilt when it does not match). Not saved back: see [`SpanIndex::save`].
    pub(crate) fn load(path: &Path, repo: &str) -> Result<SpanIndex> {
        let mut idx: SpanIndex = std::fs::read(path.with_file_name(SPAN_INDEX))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if idx.version != SPAN_INDEX_VERSION || idx.repo != repo {
            idx = SpanIndex::empty(repo);
        }
        idx.catch_up(path)?;
        Ok(idx)
    }

    fn empty(repo: &str) -> SpanIndex {
        SpanIndex {
            version: SPAN_INDEX_VERSION,
            repo: repo.to_string(),
            ..Default::default()
        }
    }

    /// Take in the whole lines appended to the ledger since the index last saw it; start
    /// over when the ledger no longer holds what the index covered.
    pub(crate) fn catch_up(&mut self, path: &Path) -> Result<()> {
        let err = |e: std::io::Error| crate::Error::Io {
            path: path.into(),
            source: e,
        };
        let mut file = std::fs::File::open(path).map_err(err)?;
        let size = file.metadata().map_err(err)?.len();
        let fresh = self.len <= size
            && self.merkle.is_consistent()
            && tail_digest(&mut file, self.len).ok().as_deref() == Some(self.tail.as_str());
        if !fresh {
            let repo = std::mem::take(&mut self.repo);
            *self = SpanIndex::empty(&repo);
        }
        self.caught_up = 0;
        if self.len == size {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.len)).map_err(err)?;
        let mut bytes = Vec::with_capacity((size - self.len) as usize);
        file.read_to_end(&mut bytes).map_err(err)?;
        // Only whole lines (a torn tail is left for verify to report).
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let base = self.len;
        let mut at = 0usize;
        let mut lines: Vec<(u64, &[u8])> = Vec::new();
        for l in bytes[..whole].split_inclusive(|&b| b == b'\n') {
            let line = &l[..l.len() - 1];
            if !line.is_empty() {
                self.merkle.push(merkle_leaf(line));
            }
            lines.push((base + at as u64, line));
            at += l.len();
        }
        for (offset, line, r) in crate::ledger::parse_records(&lines) {
            self.apply(offset, line, &r);
        }
        self.len = base + whole as u64;
        self.caught_up = whole as u64;
        self.tail = tail_digest(&mut file, self.len).map_err(err)?;
        Ok(())
    }

    /// The ledger's size in records and hex Merkle root, as far as the index covers it.
    pub(crate) fn head(&self) -> (u64, String) {
        (self.merkle.size, hex::encode(self.merkle.root()))
    }

    /// Write the index beside the ledger at `path` (best effort: it is derived data).
    pub(crate) fn save(&self, path: &Path) {
        let side = path.with_file_name(SPAN_INDEX);
        let tmp = side.with_extension("json.tmp");
        let Ok(bytes) = serde_json::to_vec(self) else {
            return;
        };
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &side);
        }
    }

    fn apply(&mut self, offset: u64, line: &[u8], r: &Record) {
        let at = (offset, line.len() as u32, sha256_hex(line));
        let id = r.record_id.clone().unwrap_or_default();
        let refers = r.refers_to.clone().unwrap_or_default();
        match r.event {
            Some(EventKind::Suggested) => {
                let m = r.model_id().unwrap_or("unknown").to_string();
                self.model.insert(id.clone(), m);
                self.lines.entry(id).or_default().push(at);
            }
            Some(EventKind::Accepted) => {
                let path = rel_path(
                    &self.repo,
                    r.location.as_ref().map_or("", |l| l.path.as_str()),
                );
                let hashes: Vec<(String, LineClass)> = r
                    .line_hashes()
                    .map(|h| (h.to_string(), LineClass::Ai))
                    .collect();
                self.spans.insert(refers.clone(), (path, hashes));
                self.lines.entry(refers).or_default().push(at);
            }
            Some(EventKind::Edited) => {
                let Some(span) = &r.span else { return };
                let path = rel_path(&self.repo, &span.path);
                let lines: Vec<(String, LineClass)> = span
                    .lines
                    .iter()
                    .map(|l| (l.hash.clone(), l.class))
                    .collect();
                self.spans.insert(refers.clone(), (path, lines));
                self.lines.entry(refers).or_default().push(at);
            }
            _ => {}
        }
    }
}
