//! The reference index of a repository: every package's segment merged into one sorted
//! table of fingerprints, opened from the data dir, rebuilt only for packages that
//! changed, and asked whether a text reproduces indexed code.
//!
//! Over 600 lines as one room: the lookup, the clustering of hits by diagonal and the
//! alignment that confirms them all read the table's private layout.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::discover::{discover, lockfiles, DiscoverOptions, Ecosystem, Package};
use crate::fingerprint::{kgram_hashes, kgram_hashes_raw, FingerprintParams};
use crate::licence::LicenceDetector;
use crate::segment::{
    build_segment, mtime_ns, read_segment, segment_key, segment_path, write_segment, FileLimits,
    Segment, CHECKPOINT,
};
use crate::tokens::{lex, lex_from, Kind, Syntax, Token};
use crate::warnings::{WarningKind, Warnings};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reference index at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reference indexing was cancelled")]
    Cancelled,
    #[error("no data directory for the reference index (set XDG_DATA_HOME or HOME)")]
    NoDataDir,
}

/// `<data dir>/cairn/references`: one store per user, shared by every repository (a
/// crate version used by two repositories is fingerprinted once).
pub fn default_dir() -> Result<PathBuf, Error> {
    let dirs = directories::ProjectDirs::from("", "", "cairn").ok_or(Error::NoDataDir)?;
    Ok(dirs.data_dir().join("references"))
}

#[derive(Debug, Clone)]
pub struct ReferenceConfig {
    pub params: FingerprintParams,
    pub limits: FileLimits,
    /// A match is reported when it covers at least this many characters of the text
    /// checked (Copilot's public-code filter uses about 150).
    pub min_chars: usize,
    /// A fingerprint found in more places than this is too common to say anything.
    pub max_postings: usize,
    /// Worker threads for building segments.
    pub threads: usize,
    pub discover: DiscoverOptions,
    /// An askalono cache file to use instead of the one found on disk.
    pub licence_store: Option<PathBuf>,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            params: FingerprintParams::default(),
            limits: FileLimits::default(),
            min_chars: 150,
            max_postings: 256,
            threads: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
            discover: DiscoverOptions::default(),
            licence_store: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Discovering,
    Indexing {
        done: usize,
        total: usize,
        package: String,
    },
    Merging,
}

/// What a build or update did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildReport {
    pub packages: usize,
    pub by_ecosystem: BTreeMap<Ecosystem, usize>,
    pub licences: BTreeMap<String, usize>,
    /// Segments fingerprinted in this run.
    pub built: usize,
    /// Segments reused from the data dir.
    pub reused: usize,
    /// False when the lockfiles were unchanged and the saved package list was used.
    pub discovered: bool,
    pub files: usize,
    pub bytes: u64,
    pub fingerprints: usize,
    /// Bytes the index's segments take on disk.
    pub disk_bytes: u64,
    pub seconds: f64,
    pub warnings: Warnings,
}

#[derive(Debug, Clone)]
pub struct IndexedFile {
    pub package: u32,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: u64,
    pub syntax: Syntax,
    pub checkpoints: Vec<u32>,
}

/// A stretch of the checked text that reproduces indexed code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub package: String,
    pub version: String,
    /// SPDX expression or "unknown".
    pub licence: String,
    pub ecosystem: Ecosystem,
    /// The source file on disk.
    pub path: PathBuf,
    /// Lines of the source file, 1-based, inclusive.
    pub lines: [u32; 2],
    /// Characters of the checked text covered by the match.
    pub matched_chars: usize,
    /// Lines of the checked text, 1-based, inclusive.
    pub text_lines: [u32; 2],
    /// Byte range of the checked text.
    pub text_range: [usize; 2],
    /// Every matched token is identical (no renamed identifiers).
    pub verbatim: bool,
}

/// A check's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub references: Vec<Reference>,
    /// Candidate regions aligned against their sources.
    pub candidates: usize,
    /// Candidates whose source changed or vanished since indexing (not used).
    pub stale: usize,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct ProjectState {
    root: PathBuf,
    lockfiles: Vec<(PathBuf, u64, u64)>,
    extra_roots: Vec<PathBuf>,
    params: FingerprintParams,
    limits: FileLimits,
    keys: Vec<String>,
}

pub struct ReferenceIndex {
    params: FingerprintParams,
    min_chars: usize,
    max_postings: usize,
    packages: Vec<Package>,
    files: Vec<IndexedFile>,
    hashes: Vec<u64>,
    /// Where each run of hashes sharing their top `dir_bits` bits starts in `hashes`
    /// (one more entry for the end): a lookup reads one entry here and searches a
    /// dozen hashes, instead of ~24 scattered reads of a binary search.
    dir: Vec<u32>,
    dir_bits: u32,
    /// (file, token position, verbatim k-gram hash's low bits), parallel to `hashes`;
    /// within one hash ordered by the verbatim bits.
    postings: Vec<(u32, u32, u32)>,
    bytes: u64,
}

impl std::fmt::Debug for ReferenceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceIndex")
            .field("packages", &self.packages.len())
            .field("files", &self.files.len())
            .field("fingerprints", &self.hashes.len())
            .finish()
    }
}

fn project_state_path(dir: &Path, root: &Path) -> PathBuf {
    use sha2::Digest;
    let d = sha2::Sha256::digest(root.to_string_lossy().as_bytes());
    dir.join("projects")
        .join(format!("{}.json", hex::encode(&d[..12])))
}

fn lockfile_states(root: &Path) -> Vec<(PathBuf, u64, u64)> {
    lockfiles(root)
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            Some((p, m.len(), mtime_ns(&m)))
        })
        .collect()
}

impl ReferenceIndex {
    /// Opens the repository's reference index from `dir`, bringing it up to date: when
    /// no lockfile changed, the saved package list is loaded; otherwise dependencies are
    /// discovered again and only new or changed packages are fingerprinted.
    pub fn open_or_build(
        root: &Path,
        dir: &Path,
        cfg: &ReferenceConfig,
        progress: &(dyn Fn(Progress) + Sync),
        cancel: &AtomicBool,
    ) -> Result<(ReferenceIndex, BuildReport), Error> {
        let started = std::time::Instant::now();
        let state_path = project_state_path(dir, root);
        let locks = lockfile_states(root);
        if let Ok(text) = std::fs::read_to_string(&state_path) {
            if let Ok(state) = serde_json::from_str::<ProjectState>(&text) {
                if state.root == root
                    && state.lockfiles == locks
                    && state.extra_roots == cfg.discover.extra_roots
                    && state.params == cfg.params
                    && state.limits == cfg.limits
                {
                    let mut segs = Vec::new();
                    let mut ok = true;
                    for key in &state.keys {
                        match read_segment(&segment_path(dir, key), &cfg.params, &cfg.limits) {
                            Ok(s) => segs.push(s),
                            Err(_) => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    if ok {
                        let mut report = BuildReport {
                            reused: segs.len(),
                            ..BuildReport::default()
                        };
                        progress(Progress::Merging);
                        let idx = Self::merge(segs, cfg, &mut report);
                        report.disk_bytes = disk_bytes(dir, &state.keys);
                        report.seconds = started.elapsed().as_secs_f64();
                        return Ok((idx, report));
                    }
                }
            }
        }
        progress(Progress::Discovering);
        let detector = LicenceDetector::new(
            cfg.licence_store
                .clone()
                .or_else(|| std::env::var_os("CAIRN_LICENCE_STORE").map(PathBuf::from)),
        );
        let mut warnings = Warnings::default();
        let packages = discover(root, &cfg.discover, &detector, &mut warnings);
        let (idx, mut report, keys) =
            Self::from_packages(packages, dir, cfg, progress, cancel, warnings)?;
        let state = ProjectState {
            root: root.to_path_buf(),
            lockfiles: locks,
            extra_roots: cfg.discover.extra_roots.clone(),
            params: cfg.params,
            limits: cfg.limits,
            keys,
        };
        write_atomic(
            &state_path,
            &serde_json::to_vec_pretty(&state).unwrap_or_default(),
        )?;
        report.discovered = true;
        report.seconds = started.elapsed().as_secs_f64();
        Ok((idx, report))
    }

    /// Indexes the given packages, reusing saved segments; returns the index, the report
    /// and the segment keys in order.
    pub fn from_packages(
        packages: Vec<Package>,
        dir: &Path,
        cfg: &ReferenceConfig,
        progress: &(dyn Fn(Progress) + Sync),
        cancel: &AtomicBool,
        warnings: Warnings,
    ) -> Result<(ReferenceIndex, BuildReport, Vec<String>), Error> {
        let started = std::time::Instant::now();
        std::fs::create_dir_all(dir.join("segments")).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let total = packages.len();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let built = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Segment>>> = Mutex::new(vec![None; total]);
        let shared_warnings = Mutex::new(warnings);
        let write_error: Mutex<Option<Error>> = Mutex::new(None);
        let threads = cfg.threads.max(1).min(total.max(1));
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let pkg = &packages[i];
                    let key = segment_key(pkg, &cfg.params, &cfg.limits);
                    let path = segment_path(dir, &key);
                    let mut w = Warnings::default();
                    let seg = if path.is_file() {
                        match read_segment(&path, &cfg.params, &cfg.limits) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                w.add(WarningKind::CorruptSegment, &path, format!("{e}; rebuilt"));
                                None
                            }
                        }
                    } else {
                        None
                    };
                    let seg = match seg {
                        Some(s) => Some(s),
                        None => {
                            let s =
                                build_segment(pkg, key, &cfg.params, &cfg.limits, cancel, &mut w);
                            if let Some(s) = &s {
                                built.fetch_add(1, Ordering::Relaxed);
                                if let Err(source) = write_segment(dir, s, &cfg.params, &cfg.limits)
                                {
                                    *write_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                        Some(Error::Io {
                                            path: path.clone(),
                                            source,
                                        });
                                }
                            }
                            s
                        }
                    };
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = seg;
                    shared_warnings
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .merge(w);
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(Progress::Indexing {
                        done: d,
                        total,
                        package: format!("{} {}", pkg.name, pkg.version),
                    });
                });
            }
        });
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if let Some(e) = write_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        let segs: Vec<Segment> = results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
            .collect();
        let keys: Vec<String> = segs.iter().map(|s| s.key.clone()).collect();
        let built = built.load(Ordering::Relaxed);
        let mut report = BuildReport {
            built,
            reused: segs.len() - built.min(segs.len()),
            warnings: shared_warnings
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
            ..BuildReport::default()
        };
        progress(Progress::Merging);
        let idx = Self::merge(segs, cfg, &mut report);
        report.disk_bytes = disk_bytes(dir, &keys);
        report.seconds = started.elapsed().as_secs_f64();
        Ok((idx, report, keys))
    }

    fn merge(
        segs: Vec<Segment>,
        cfg: &ReferenceConfig,
        report: &mut BuildReport,
    ) -> ReferenceIndex {
        let mut packages = Vec::with_capacity(segs.len());
        let mut files = Vec::new();
        let n: usize = segs.iter().map(|s| s.postings.len()).sum();
        // (hash, verbatim low bits, file, token): within one fingerprint the exact
        // postings of a k-gram are one run, found by binary search.
        let mut all: Vec<(u64, u32, u32, u32)> = Vec::with_capacity(n);
        let mut bytes = 0;
        for seg in segs {
            let pkg_idx = packages.len() as u32;
            let base = files.len() as u32;
            *report
                .by_ecosystem
                .entry(seg.package.ecosystem)
                .or_default() += 1;
            *report
                .licences
                .entry(seg.package.licence.clone())
                .or_default() += 1;
            bytes += seg.bytes;
            for f in seg.files {
                files.push(IndexedFile {
                    package: pkg_idx,
                    path: f.path,
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    syntax: f.syntax,
                    checkpoints: f.checkpoints,
                });
            }
            all.extend(
                seg.postings
                    .into_iter()
                    .map(|(h, f, p, r)| (h, r, f + base, p)),
            );
            packages.push(seg.package);
        }
        all.sort_unstable();
        let hashes: Vec<u64> = all.iter().map(|x| x.0).collect();
        let (dir, dir_bits) = directory(&hashes);
        let postings = all.iter().map(|x| (x.2, x.3, x.1)).collect();
        report.packages = packages.len();
        report.files = files.len();
        report.bytes = bytes;
        report.fingerprints = n;
        ReferenceIndex {
            params: cfg.params,
            min_chars: cfg.min_chars,
            max_postings: cfg.max_postings,
            packages,
            files,
            hashes,
            dir,
            dir_bits,
            postings,
            bytes,
        }
    }

    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// Every indexed file with its package's name.
    pub fn indexed_files(&self) -> impl Iterator<Item = (&Path, &str)> + '_ {
        self.files.iter().map(|f| {
            (
                f.path.as_path(),
                self.packages[f.package as usize].name.as_str(),
            )
        })
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    pub fn fingerprint_count(&self) -> usize {
        self.hashes.len()
    }

    pub fn indexed_bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes the in-memory tables take (approximately).
    pub fn memory_bytes(&self) -> usize {
        self.hashes.len() * 8
            + self.dir.len() * 4
            + self.postings.len() * 12
            + self
                .files
                .iter()
                .map(|f| f.checkpoints.len() * 4 + f.path.as_os_str().len() + 64)
                .sum::<usize>()
    }

    pub fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// Checks a text with the configured report length. `syntax` is the text's
    /// language when known (from its path); C-like comments are assumed otherwise.
    pub fn check(&self, text: &str, syntax: Option<Syntax>) -> Check {
        self.check_with(text, syntax, self.min_chars)
    }

    pub fn check_with(&self, text: &str, syntax: Option<Syntax>, min_chars: usize) -> Check {
        let mut out = Check::default();
        let syntax = syntax.unwrap_or(Syntax::Slash);
        let q = lex(text, syntax, self.params.normalise_identifiers);
        let k = self.params.k;
        if q.len() < k || self.hashes.is_empty() {
            return out;
        }
        // Every k-gram of the text against the kept fingerprints of the index; a hit
        // whose verbatim hash agrees too is an exact hit.
        let raw = kgram_hashes_raw(&q, k);
        // file, diagonal, text pos, source pos, evidence
        let mut hits: Vec<(u32, i64, u32, u32, u32)> = Vec::new();
        // Evidence per file, each k-gram of the text counted once (a file that repeats a
        // common line is not more like the text), to keep only the files that can hold
        // the best clusters: (the last text position seen, its evidence, the total).
        let mut file_score: HashMap<u32, (usize, u32, usize)> = HashMap::new();
        for (qpos, h) in kgram_hashes(&q, k).into_iter().enumerate() {
            let Some((lo, hi)) = self.postings_of(h) else {
                continue;
            };
            let exact_q = raw[qpos] as u32;
            // The run's postings of this very k-gram (not only its renamed form).
            let run = &self.postings[lo..hi];
            let a = run.partition_point(|p| p.2 < exact_q);
            let b = a + run[a..].partition_point(|p| p.2 == exact_q);
            let renamed_weight = rarity(hi - lo, self.max_postings);
            let exact_weight = 4 * rarity(b - a, self.max_postings);
            // A fingerprint too common to say anything still counts where it is exact.
            let (lo, hi) = if hi - lo > self.max_postings {
                (lo + a, lo + b)
            } else {
                (lo, hi)
            };
            for &(file, spos, r) in &self.postings[lo..hi] {
                let evidence = if r == exact_q {
                    exact_weight
                } else {
                    renamed_weight
                };
                let fs = file_score.entry(file).or_insert((usize::MAX, 0, 0));
                if fs.0 != qpos {
                    *fs = (qpos, evidence, fs.2 + evidence as usize);
                } else if evidence > fs.1 {
                    fs.2 += (evidence - fs.1) as usize;
                    fs.1 = evidence;
                }
                hits.push((file, spos as i64 - qpos as i64, qpos as u32, spos, evidence));
            }
            if hits.len() > 200_000 {
                break;
            }
        }
        if hits.is_empty() {
            return out;
        }
        // A file's evidence bounds that of its clusters: hits in files far down the
        // ranking cannot make the best candidates, and sorting them costs the most.
        if file_score.len() > CANDIDATE_FILES {
            let mut scores: Vec<usize> = file_score.values().map(|f| f.2).collect();
            let nth = scores.len() - CANDIDATE_FILES;
            let (_, &mut floor, _) = scores.select_nth_unstable(nth);
            hits.retain(|h| file_score[&h.0].2 >= floor);
        }
        // Clusters: hits in one file on nearby diagonals, ranked by their evidence (an
        // exact hit counts four times, a rare k-gram more than a common one: among
        // near-duplicate files only the rare ones tell the copied file apart).
        hits.sort_unstable();
        let mut clusters: Vec<(usize, usize, usize)> = Vec::new(); // range in `hits`, score
        let mut start = 0;
        for i in 1..=hits.len() {
            let split =
                i == hits.len() || hits[i].0 != hits[start].0 || hits[i].1 - hits[i - 1].1 > 16;
            if split {
                clusters.push((start, i, cluster_score(&hits[start..i])));
                start = i;
            }
        }
        clusters.sort_by_key(|&(_, _, score)| std::cmp::Reverse(score));
        clusters.truncate(MAX_CANDIDATES);

        let mut found: Vec<(usize, Reference)> = Vec::new();
        let mut texts: HashMap<u32, Option<std::sync::Arc<String>>> = HashMap::new();
        // Once a match covers (nearly) the whole text, clusters with much less evidence
        // than the one that gave it are not aligned: they are look-alikes, and each
        // alignment reads a file.
        let mut full_at: Option<usize> = None;
        for (a, b, score) in clusters {
            if full_at.is_some_and(|best| score * 2 < best) {
                break;
            }
            let file_id = hits[a].0;
            let file = &self.files[file_id as usize];
            let src = texts
                .entry(file_id)
                .or_insert_with(|| read_current(file).map(std::sync::Arc::new))
                .clone();
            let Some(src) = src else {
                out.stale += 1;
                continue;
            };
            let mut seeds: Vec<(u32, u32)> = hits[a..b].iter().map(|h| (h.2, h.3)).collect();
            seeds.sort_unstable();
            // The source tokens the cluster's alignments may reach, lexed once.
            let lo = seeds
                .iter()
                .map(|&(qp, sp)| (sp as usize).saturating_sub(qp as usize + 16))
                .min()
                .unwrap_or(0);
            let hi = seeds
                .iter()
                .map(|&(qp, sp)| sp as usize + (q.len() - qp as usize) + 64)
                .max()
                .unwrap_or(0);
            let (s, base) = lex_window(&src, file, lo, hi, self.params.normalise_identifiers);
            let mut covered_to: i64 = -1; // in text tokens
            for (qpos, spos) in seeds {
                if (qpos as i64) < covered_to {
                    continue;
                }
                out.candidates += 1;
                let Some(sj) = (spos as usize).checked_sub(base) else {
                    continue;
                };
                let Some(r) = align(&q, &s, qpos as usize, sj, k) else {
                    continue;
                };
                covered_to = r.qb as i64;
                if !plausible(&q[r.qa..r.qb], &r, syntax == file.syntax) {
                    continue;
                }
                let start = q[r.qa].start as usize;
                let end = q[r.qb - 1].end as usize;
                let chars = text[start..end].chars().count();
                if chars < min_chars {
                    continue;
                }
                if (r.qb - r.qa) * 10 >= q.len() * 9 && full_at.is_none() {
                    full_at = Some(score);
                }
                let pkg = &self.packages[file.package as usize];
                let s_start = s[r.sa].start as usize;
                let s_end = s[r.sb - 1].end as usize;
                found.push((
                    r.identical,
                    Reference {
                        package: pkg.name.clone(),
                        version: pkg.version.clone(),
                        licence: pkg.licence.clone(),
                        ecosystem: pkg.ecosystem,
                        path: file.path.clone(),
                        lines: [
                            line_of(&src, s_start),
                            line_of(&src, s_end.saturating_sub(1)),
                        ],
                        matched_chars: chars,
                        text_lines: [line_of(text, start), line_of(text, end.saturating_sub(1))],
                        text_range: [start, end],
                        verbatim: r.verbatim,
                    },
                ));
            }
        }
        // Longest first; one reference per package for overlapping stretches of text.
        found.sort_by(|(ia, a), (ib, b)| {
            b.matched_chars
                .cmp(&a.matched_chars)
                .then_with(|| ib.cmp(ia))
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.version.cmp(&b.version))
                .then_with(|| a.path.cmp(&b.path))
        });
        let mut kept: Vec<Reference> = Vec::new();
        for (_, r) in found {
            let dup = kept.iter().any(|k| {
                k.package == r.package
                    && overlap(k.text_range, r.text_range) * 2 > (r.text_range[1] - r.text_range[0])
            });
            if !dup && kept.len() < 8 {
                kept.push(r);
            }
        }
        out.references = kept;
        out
    }
}

impl ReferenceIndex {
    /// The range of `hashes` (and `postings`) holding `h`, if any.
    fn postings_of(&self, h: u64) -> Option<(usize, usize)> {
        let b = (h >> (64 - self.dir_bits)) as usize;
        let (start, end) = (self.dir[b] as usize, self.dir[b + 1] as usize);
        let bucket = &self.hashes[start..end];
        let lo = bucket.partition_point(|&x| x < h);
        if lo >= bucket.len() || bucket[lo] != h {
            return None;
        }
        let hi = lo + bucket[lo..].partition_point(|&x| x == h);
        Some((start + lo, start + hi))
    }
}

/// The directory over sorted hashes: about eight hashes per entry, 2^8 to 2^22 entries.
fn directory(hashes: &[u64]) -> (Vec<u32>, u32) {
    let bits = (hashes.len().max(1).ilog2().saturating_sub(3)).clamp(8, 22);
    let n = 1usize << bits;
    let mut dir = Vec::with_capacity(n + 1);
    let mut i = 0;
    for b in 0..n {
        while i < hashes.len() && ((hashes[i] >> (64 - bits)) as usize) < b {
            i += 1;
        }
        dir.push(i as u32);
    }
    dir.push(hashes.len() as u32);
    (dir, bits)
}

/// Candidate clusters aligned per check, best evidence first.
const MAX_CANDIDATES: usize = 40;
/// Files whose hits are clustered per check (those with the most evidence).
const CANDIDATE_FILES: usize = 4 * MAX_CANDIDATES;

/// A cluster's evidence: per position of the text, its best hit (one source line
/// repeated on nearby diagonals is not more evidence).
fn cluster_score(hits: &[(u32, i64, u32, u32, u32)]) -> usize {
    let mut by_pos: Vec<(u32, u32)> = hits.iter().map(|h| (h.2, h.4)).collect();
    by_pos.sort_unstable_by_key(|&(q, e)| (q, std::cmp::Reverse(e)));
    by_pos.dedup_by_key(|&mut (q, _)| q);
    by_pos.iter().map(|&(_, e)| e as usize).sum()
}

/// How much a hit on a fingerprint found in `postings` places says: 1 for one as common
/// as `max_postings` (or more), one more for each halving below it (9 for a unique one
/// at 256), as inverse document frequency weighs a rare term.
fn rarity(postings: usize, max_postings: usize) -> u32 {
    let ratio = max_postings / postings.max(1);
    if ratio <= 1 {
        1
    } else {
        1 + ratio.ilog2()
    }
}

/// Tokens a match must cover at least, whatever its length in characters (comments
/// inside a stretch do not make it longer).
const MIN_TOKENS: usize = 24;
/// A renamed match needs more evidence: this many tokens in one run without a gap …
const MIN_RENAMED_TOKENS: usize = 40;
/// … or `MIN_TOKENS` with at least this many bytes of string literals identical to the
/// source's (renaming names leaves a long message as it was, and it is specific).
const MIN_RENAMED_LITERAL_BYTES: usize = 64;

/// Whether an aligned stretch is evidence of copying rather than a chance likeness.
/// Verbatim stretches count at `MIN_TOKENS`. Renamed ones must be in the same language,
/// hold one run of `MIN_RENAMED_TOKENS` consistently renamed tokens without a gap (a
/// common iterator chain with one token changed is two short runs, not a copy) or
/// `MIN_TOKENS` with long identical literals, and be structurally varied: a run of
/// `name = other.name,` lines renamed consistently is common code, not a copy (fewer
/// than half of its 4-grams of normalised tokens are distinct).
fn plausible(tokens: &[Token], r: &Region, same_syntax: bool) -> bool {
    if tokens.len() < MIN_TOKENS {
        return false;
    }
    if r.verbatim {
        return true;
    }
    if !same_syntax
        || (r.longest_run < MIN_RENAMED_TOKENS && r.literal_bytes < MIN_RENAMED_LITERAL_BYTES)
    {
        return false;
    }
    let grams: Vec<[u64; 4]> = tokens
        .windows(4)
        .map(|w| [w[0].norm, w[1].norm, w[2].norm, w[3].norm])
        .collect();
    let mut distinct = grams.clone();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() * 2 >= grams.len()
}

fn overlap(a: [usize; 2], b: [usize; 2]) -> usize {
    a[1].min(b[1]).saturating_sub(a[0].max(b[0]))
}

fn disk_bytes(dir: &Path, keys: &[String]) -> u64 {
    keys.iter()
        .filter_map(|k| std::fs::metadata(segment_path(dir, k)).ok())
        .map(|m| m.len())
        .sum()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The file's text when it is still the file that was indexed.
fn read_current(file: &IndexedFile) -> Option<String> {
    let meta = std::fs::metadata(&file.path).ok()?;
    if meta.len() != file.size || mtime_ns(&meta) != file.mtime_ns {
        return None;
    }
    String::from_utf8(std::fs::read(&file.path).ok()?).ok()
}

/// Tokens `lo..hi` of a source file, lexed from the checkpoint at or before `lo`;
/// returns them with the index of the first.
fn lex_window(
    src: &str,
    file: &IndexedFile,
    lo: usize,
    hi: usize,
    normalise: bool,
) -> (Vec<Token>, usize) {
    let c = (lo / CHECKPOINT).min(file.checkpoints.len().saturating_sub(1));
    let from = file.checkpoints.get(c).copied().unwrap_or(0) as usize;
    let base = c * CHECKPOINT;
    let mut out = Vec::with_capacity(hi.saturating_sub(base).min(1 << 16));
    let mut i = base;
    lex_from(src, from, file.syntax, normalise, |t| {
        out.push(t);
        i += 1;
        i < hi
    });
    (out, base)
}

fn line_of(text: &str, byte: usize) -> u32 {
    let byte = byte.min(text.len());
    text.as_bytes()[..byte]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u32
        + 1
}

struct Region {
    qa: usize,
    qb: usize,
    sa: usize,
    sb: usize,
    verbatim: bool,
    /// Aligned token pairs whose text is identical (ranks a verbatim source above a
    /// renamed look-alike of the same length).
    identical: usize,
    /// The longest stretch of tokens matched without a gap.
    longest_run: usize,
    /// Bytes of the text's string literals identical to the source's.
    literal_bytes: usize,
}

/// Identifier correspondence between the text and the source: a renamed copy renames
/// consistently (each name of the text stands for one name of the source); a chance
/// structural likeness does not.
#[derive(Default)]
struct Renaming {
    fwd: HashMap<u64, u64>,
}

impl Renaming {
    fn accept(&mut self, a: &Token, b: &Token) -> bool {
        if a.norm != b.norm {
            return false;
        }
        if a.kind != Kind::Ident || b.kind != Kind::Ident {
            return a.raw == b.raw || a.kind != Kind::Ident;
        }
        // Each name of the text stands for one name of the source. The other way round
        // is not required: renaming a local `inner` leaves the field `.inner` alone, so
        // one source name may appear under two names in the copy.
        match self.fwd.get(&a.raw) {
            Some(&x) => x == b.raw,
            None => {
                self.fwd.insert(a.raw, b.raw);
                true
            }
        }
    }
}

/// Confirms a seed (a shared k-gram at text token `qi`, source token `sj`) by
/// alignment: the k-gram must really be equal, then the match grows left exactly and
/// right across small gaps (a trailing comma, a reordered token) while the renaming
/// stays consistent.
fn align(q: &[Token], s: &[Token], qi: usize, sj: usize, k: usize) -> Option<Region> {
    if qi + k > q.len() || sj + k > s.len() {
        return None;
    }
    let mut ren = Renaming::default();
    for t in 0..k {
        if !ren.accept(&q[qi + t], &s[sj + t]) {
            return None;
        }
    }
    let (mut qa, mut sa) = (qi, sj);
    while qa > 0 && sa > 0 && ren.accept(&q[qa - 1], &s[sa - 1]) {
        qa -= 1;
        sa -= 1;
    }
    let (mut i, mut j) = (qi + k, sj + k);
    let (mut qb, mut sb) = (i, j);
    let mut matched = qb - qa;
    let mut gaps = 0;
    let mut run_start = qa;
    let mut longest_run = 0;
    const RESYNC: usize = 6;
    loop {
        if i < q.len() && j < s.len() && ren.accept(&q[i], &s[j]) {
            i += 1;
            j += 1;
            matched += 1;
            qb = i;
            sb = j;
            continue;
        }
        // A name renamed inconsistently ends the match: gaps are for tokens that differ
        // (a trailing comma, a changed literal), not for names that disagree.
        if i < q.len() && j < s.len() && q[i].norm == s[j].norm {
            break;
        }
        if gaps > 2 + matched / 25 {
            break;
        }
        let resync = |di: usize, dj: usize| {
            let (a, b) = (i + di, j + dj);
            a + RESYNC <= q.len()
                && b + RESYNC <= s.len()
                && (0..RESYNC).all(|t| q[a + t].norm == s[b + t].norm)
        };
        let mut jumped = false;
        'search: for d in 1..=3 {
            for (di, dj) in [(d, d), (d, 0), (0, d)] {
                if resync(di, dj) {
                    i += di;
                    j += dj;
                    gaps += 1;
                    jumped = true;
                    break 'search;
                }
            }
        }
        if !jumped {
            break;
        }
        longest_run = longest_run.max(qb - run_start);
        run_start = i;
    }
    longest_run = longest_run.max(qb - run_start);
    let identical = (qa..qb)
        .zip(sa..sb)
        .filter(|&(x, y)| q[x].raw == s[y].raw)
        .count();
    let verbatim = identical == qb - qa && qb - qa == sb - sa;
    let literal_bytes = (qa..qb)
        .zip(sa..sb)
        .filter(|&(x, y)| q[x].kind == Kind::Str && q[x].raw == s[y].raw)
        .map(|(x, _)| (q[x].end - q[x].start) as usize)
        .sum();
    Some(Region {
        qa,
        qb,
        sa,
        sb,
        verbatim,
        identical,
        longest_run,
        literal_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::directory;

    #[test]
    fn the_directory_finds_every_hash_run() {
        let mut x: u64 = 11;
        let mut hashes: Vec<u64> = (0..5_000)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Runs of equal hashes, and both ends of the range.
                match i % 97 {
                    0 => 0,
                    1 => u64::MAX,
                    _ => x & !0xf,
                }
            })
            .collect();
        hashes.sort_unstable();
        for n in [0, 1, 7, 300, hashes.len()] {
            let hs = &hashes[..n];
            let (dir, bits) = directory(hs);
            assert_eq!(dir.len(), (1 << bits) + 1);
            assert_eq!(*dir.last().unwrap() as usize, n);
            for (i, &h) in hs.iter().enumerate() {
                let b = (h >> (64 - bits)) as usize;
                let (s, e) = (dir[b] as usize, dir[b + 1] as usize);
                assert!(s <= i && i < e, "hash {i} of {n} outside its bucket");
                assert!(hs[s..e].iter().all(|&y| y >> (64 - bits) == b as u64));
            }
        }
    }
}
