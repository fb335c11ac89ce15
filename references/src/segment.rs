//! One package's fingerprints: built from its files, persisted as one file in the data
//! dir (`segments/<key>.seg`), reused while the package is unchanged.
//!
//! Format: `CAIRNREF`, u32 format version, u32 header length, JSON header (key, params,
//! package, files), per file its checkpoints (u32 count + u32 byte offsets of every
//! `CHECKPOINT`-th token), u64 posting count + postings (u64 hash, u32 file, u32 token,
//! u32 low bits of the same k-gram's verbatim hash),
//! and a trailing u64 checksum of everything before it. Little-endian throughout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::discover::Package;
use crate::fingerprint::{fingerprints, kgram_hashes_raw, FingerprintParams};
use crate::tokens::{hash_bytes, lex, Syntax};
use crate::warnings::{WarningKind, Warnings};

pub const FORMAT_VERSION: u32 = 2;
/// A checkpoint (byte offset of a token start) every this many tokens, so a region of a
/// source file can be re-lexed without the whole token stream being stored.
pub const CHECKPOINT: usize = 32;
const MAGIC: &[u8; 8] = b"CAIRNREF";

/// Limits on what is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLimits {
    /// Files over this many bytes are skipped (generated tables, bundles).
    pub max_file_bytes: u64,
    /// Files with a line over this many bytes are taken as minified and skipped.
    pub max_line_bytes: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            max_file_bytes: 1024 * 1024,
            max_line_bytes: 5_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFile {
    pub path: PathBuf,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch (0 when unknown); a file whose
    /// size or time differs at lookup is stale and not used to confirm a match.
    pub mtime_ns: u64,
    pub syntax: Syntax,
    pub tokens: u32,
    #[serde(skip)]
    pub checkpoints: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    key: String,
    params: FingerprintParams,
    limits: FileLimits,
    package: Package,
    files: Vec<SegmentFile>,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub key: String,
    pub package: Package,
    pub files: Vec<SegmentFile>,
    /// (hash, file index within this segment, token position, verbatim hash's low 32
    /// bits), unsorted.
    pub postings: Vec<(u64, u32, u32, u32)>,
    /// Bytes of source indexed.
    pub bytes: u64,
}

pub fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The key that names a package's segment: what it is, where, its manifest's state and
/// the parameters; any change gives a new key (and a rebuild of that package only).
pub fn segment_key(pkg: &Package, params: &FingerprintParams, limits: &FileLimits) -> String {
    use sha2::Digest;
    let manifest = pkg.manifest.as_ref().and_then(|m| {
        let meta = std::fs::metadata(m).ok()?;
        Some((m.clone(), meta.len(), mtime_ns(&meta)))
    });
    let root_meta = std::fs::metadata(&pkg.root).ok().map(|m| mtime_ns(&m));
    let id = serde_json::json!({
        "format": FORMAT_VERSION,
        "ecosystem": pkg.ecosystem,
        "name": pkg.name,
        "version": pkg.version,
        "root": pkg.root,
        "root_mtime": if pkg.files.is_some() || pkg.manifest.is_some() { None } else { root_meta },
        "manifest": manifest,
        "licence": pkg.licence,
        "params": params,
        "limits": limits,
    });
    let d = sha2::Sha256::digest(id.to_string().as_bytes());
    hex::encode(&d[..16])
}

/// The code files of a package: its recorded files, else a walk of its root that skips
/// nested `node_modules`, VCS and build directories and never loops on symlinks.
pub fn package_files(pkg: &Package, warnings: &mut Warnings) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(files) = &pkg.files {
        for f in files {
            if Syntax::for_path(f).is_some() && f.is_file() {
                out.push(f.clone());
            }
        }
        return out;
    }
    let mut visited = std::collections::HashSet::new();
    let mut stack = vec![pkg.root.clone()];
    while let Some(dir) = stack.pop() {
        let canon = match dir.canonicalize() {
            Ok(c) => c,
            Err(_) => {
                warnings.add(WarningKind::MissingDir, &dir, "vanished");
                continue;
            }
        };
        if !visited.insert(canon.clone()) {
            warnings.add(WarningKind::SymlinkLoop, &dir, "directory reached twice");
            continue;
        }
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                warnings.add(WarningKind::Unreadable, &dir, e);
                continue;
            }
        };
        let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(ft) = e.file_type() else { continue };
            let is_dir = if ft.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) => {
                        if m.is_dir() {
                            // A link to a directory above this one is a loop.
                            if let Ok(t) = path.canonicalize() {
                                if canon.starts_with(&t) {
                                    warnings.add(
                                        WarningKind::SymlinkLoop,
                                        &path,
                                        "symlink to an enclosing directory",
                                    );
                                    continue;
                                }
                            }
                        }
                        m.is_dir()
                    }
                    Err(_) => continue, // dangling link
                }
            } else {
                ft.is_dir()
            };
            if is_dir {
                if matches!(
                    name.as_ref(),
                    "node_modules" | ".git" | ".hg" | ".svn" | "target" | "__pycache__" | ".venv"
                ) {
                    continue;
                }
                stack.push(path);
            } else if Syntax::for_path(&path).is_some() {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Fingerprints one package's files.
pub fn build_segment(
    pkg: &Package,
    key: String,
    params: &FingerprintParams,
    limits: &FileLimits,
    cancel: &AtomicBool,
    warnings: &mut Warnings,
) -> Option<Segment> {
    let mut files = Vec::new();
    let mut postings = Vec::new();
    let mut bytes = 0u64;
    for path in package_files(pkg, warnings) {
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => {
                warnings.add(WarningKind::MissingDir, &path, "vanished");
                continue;
            }
        };
        if meta.len() > limits.max_file_bytes {
            warnings.add(
                WarningKind::TooLarge,
                &path,
                format!("{} bytes (limit {})", meta.len(), limits.max_file_bytes),
            );
            continue;
        }
        let Ok(raw) = std::fs::read(&path) else {
            warnings.add(WarningKind::Unreadable, &path, "read failed");
            continue;
        };
        let Ok(text) = String::from_utf8(raw) else {
            warnings.add(WarningKind::NotUtf8, &path, "not UTF-8");
            continue;
        };
        if text.lines().any(|l| l.len() > limits.max_line_bytes) {
            warnings.add(
                WarningKind::Generated,
                &path,
                "minified or generated (long lines)",
            );
            continue;
        }
        let Some(syntax) = Syntax::for_path(&path) else {
            continue;
        };
        let toks = lex(&text, syntax, params.normalise_identifiers);
        let file_idx = files.len() as u32;
        let raw = kgram_hashes_raw(&toks, params.k);
        for fp in fingerprints(&toks, params) {
            postings.push((fp.hash, file_idx, fp.pos, raw[fp.pos as usize] as u32));
        }
        let checkpoints = toks.iter().step_by(CHECKPOINT).map(|t| t.start).collect();
        bytes += text.len() as u64;
        files.push(SegmentFile {
            path,
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            syntax,
            tokens: toks.len() as u32,
            checkpoints,
        });
    }
    Some(Segment {
        key,
        package: pkg.clone(),
        files,
        postings,
        bytes,
    })
}

pub fn segment_path(dir: &Path, key: &str) -> PathBuf {
    dir.join("segments").join(format!("{key}.seg"))
}

/// Writes a segment atomically (temp file, then rename).
pub fn write_segment(
    dir: &Path,
    seg: &Segment,
    params: &FingerprintParams,
    limits: &FileLimits,
) -> std::io::Result<()> {
    let header = Header {
        key: seg.key.clone(),
        params: *params,
        limits: *limits,
        package: seg.package.clone(),
        files: seg.files.clone(),
    };
    let json = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(json.len() + seg.postings.len() * 20 + 64);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
    buf.extend_from_slice(&json);
    for f in &seg.files {
        buf.extend_from_slice(&(f.checkpoints.len() as u32).to_le_bytes());
        for c in &f.checkpoints {
            buf.extend_from_slice(&c.to_le_bytes());
        }
    }
    buf.extend_from_slice(&(seg.postings.len() as u64).to_le_bytes());
    for (h, f, p, r) in &seg.postings {
        buf.extend_from_slice(&h.to_le_bytes());
        buf.extend_from_slice(&f.to_le_bytes());
        buf.extend_from_slice(&p.to_le_bytes());
        buf.extend_from_slice(&r.to_le_bytes());
    }
    let sum = hash_bytes(&buf);
    buf.extend_from_slice(&sum.to_le_bytes());
    let path = segment_path(dir, &seg.key);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &buf)?;
    std::fs::rename(&tmp, &path)
}

/// Reads a segment back; any inconsistency is an error (the caller rebuilds).
pub fn read_segment(
    path: &Path,
    params: &FingerprintParams,
    limits: &FileLimits,
) -> Result<Segment, String> {
    let buf = std::fs::read(path).map_err(|e| e.to_string())?;
    if buf.len() < 8 + 4 + 4 + 8 + 8 || &buf[..8] != MAGIC {
        return Err("not a segment".into());
    }
    let (body, sum) = buf.split_at(buf.len() - 8);
    if hash_bytes(body) != u64::from_le_bytes(sum.try_into().map_err(|_| "short")?) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader { b: body, at: 8 };
    if r.u32()? != FORMAT_VERSION {
        return Err("other format version".into());
    }
    let len = r.u32()? as usize;
    let json = r.bytes(len)?;
    let mut header: Header = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    if header.params != *params || header.limits != *limits {
        return Err("built with other parameters".into());
    }
    for f in &mut header.files {
        let n = r.u32()? as usize;
        let raw = r.bytes(n.checked_mul(4).ok_or("overflow")?)?;
        f.checkpoints = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
    }
    let n = r.u64()? as usize;
    let raw = r.bytes(n.checked_mul(20).ok_or("overflow")?)?;
    let nfiles = header.files.len() as u32;
    let mut postings = Vec::with_capacity(n);
    for c in raw.chunks_exact(20) {
        let h = u64::from_le_bytes(c[..8].try_into().map_err(|_| "short")?);
        let f = u32::from_le_bytes(c[8..12].try_into().map_err(|_| "short")?);
        let p = u32::from_le_bytes(c[12..16].try_into().map_err(|_| "short")?);
        let v = u32::from_le_bytes(c[16..20].try_into().map_err(|_| "short")?);
        if f >= nfiles {
            return Err("posting names a file that is not there".into());
        }
        postings.push((h, f, p, v));
    }
    let bytes = header.files.iter().map(|f| f.size).sum();
    Ok(Segment {
        key: header.key,
        package: header.package,
        files: header.files,
        postings,
        bytes,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("overflow")?;
        if end > self.b.len() {
            return Err("truncated".into());
        }
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "short")?))
    }
}
