//! Opening, writing and maintaining the on-disk index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::analyze::{analyze_text, FileAnalysis};
use crate::lang::{label_for, Lang};
use crate::schema::{self, Fields, FileRecord, DOC_FILE};
use crate::tokenize::{CodeTokenizer, CODE_TOKENIZER};
use crate::walk::{self, ReadOutcome, WalkEntry};
use crate::{Error, IndexOptions, Result};

mod update;

/// Bumped whenever the schema or the meaning of stored fields changes; an index
/// with another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 3;
const META_FILE: &str = "cairn-index.json";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Meta {
    schema_version: u32,
    repo_root: String,
}

#[derive(Debug, Clone)]
pub(crate) struct FileState {
    pub hash: String,
    pub size: u64,
    pub mtime: u64,
    /// The language label and counts, so the writer's statistics need no pass over
    /// the stored documents (which touches most of the index's doc store).
    pub lang: String,
    pub n_chunks: u64,
    pub n_symbols: u64,
}

#[derive(Clone, Copy)]
struct FileMeta<'a> {
    label: &'a str,
    hash: &'a str,
    size: u64,
    mtime: u64,
}

/// A repository's index. Cheap to clone; clones share one writer and reader.
#[derive(Clone)]
pub struct Index {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub dir: PathBuf,
    pub options: IndexOptions,
    pub reader: IndexReader,
    pub writer: Option<Mutex<IndexWriter>>,
    pub fields: Fields,
    pub files: Mutex<HashMap<String, FileState>>,
    pub notice: Option<String>,
}

/// What an update pass is doing, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressPhase {
    Walking,
    Indexing,
    Committing,
    Done,
}

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: ProgressPhase,
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Counts of one `update_all` pass.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    pub files_seen: u64,
    pub indexed: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub skipped_binary: u64,
    pub skipped_large: u64,
    pub skipped_symlinks: u64,
    pub errors: u64,
    pub bytes_indexed: u64,
    pub commits: u64,
    pub elapsed_ms: u64,
}

/// The index's contents; `run` is set when returned by `update_all`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndexStats {
    pub files: u64,
    pub symbols: u64,
    pub chunks: u64,
    pub source_bytes: u64,
    /// Bytes on disk of the index directory.
    pub index_bytes: u64,
    /// Files per language label.
    pub languages: BTreeMap<String, u64>,
    pub index_dir: PathBuf,
    pub run: Option<RunStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SkipReason {
    Binary,
    TooLarge,
    Ignored,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Indexed { symbols: usize, chunks: usize },
    Unchanged,
    Skipped(SkipReason),
    Removed,
}

/// `<data dir>/cairn/indexes/<root name>-<hash of root>`: per user, per repository.
pub fn default_index_dir(repo_root: &Path) -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "cairn").ok_or(Error::NoDataDir)?;
    let root = repo_root.to_string_lossy();
    let digest = {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(root.as_bytes())[..8])
    };
    let name: String = repo_root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(dirs
        .data_dir()
        .join("indexes")
        .join(format!("{name}-{digest}")))
}

fn tantivy_err(dir: &Path) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
    move |source| Error::Tantivy {
        path: dir.to_path_buf(),
        source,
    }
}

fn dir_err(dir: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::IndexDir {
        path: dir.to_path_buf(),
        source,
    }
}

/// Removes everything in `dir` (not `dir` itself).
fn wipe_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(dir_err(dir))? {
        let entry = entry.map_err(dir_err(dir))?;
        let p = entry.path();
        let r = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(dir_err(dir))?;
    }
    Ok(())
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

enum Opened {
    Ok(tantivy::Index),
    Rebuild(String),
}

fn try_open(dir: &Path, schema: &tantivy::schema::Schema) -> Result<Opened> {
    let meta_path = dir.join(META_FILE);
    let has_tantivy = dir.join("meta.json").exists();
    match std::fs::read(&meta_path) {
        Ok(bytes) => match serde_json::from_slice::<Meta>(&bytes) {
            Ok(m) if m.schema_version == SCHEMA_VERSION => {}
            Ok(m) => {
                return Ok(Opened::Rebuild(format!(
                    "index at {} has schema version {}, this build uses {}; rebuilding it",
                    dir.display(),
                    m.schema_version,
                    SCHEMA_VERSION
                )))
            }
            Err(e) => {
                return Ok(Opened::Rebuild(format!(
                    "index metadata {} is unreadable ({e}); rebuilding the index",
                    meta_path.display()
                )))
            }
        },
        Err(_) if has_tantivy => {
            return Ok(Opened::Rebuild(format!(
                "index at {} has no {META_FILE}; rebuilding it",
                dir.display()
            )))
        }
        Err(_) => {
            let idx = create_index(dir, schema).map_err(tantivy_err(dir))?;
            return Ok(Opened::Ok(idx));
        }
    }
    if !has_tantivy {
        let idx = create_index(dir, schema).map_err(tantivy_err(dir))?;
        return Ok(Opened::Ok(idx));
    }
    match tantivy::Index::open_in_dir(dir) {
        Ok(idx) if idx.schema() == *schema => {
            // Loading segment metadata catches truncated or missing segment files.
            match idx.searchable_segment_metas() {
                Ok(_) => Ok(Opened::Ok(idx)),
                Err(e) => Ok(Opened::Rebuild(format!(
                    "index at {} is corrupt ({e}); rebuilding it",
                    dir.display()
                ))),
            }
        }
        Ok(_) => Ok(Opened::Rebuild(format!(
            "index at {} has a different schema; rebuilding it",
            dir.display()
        ))),
        Err(e) => Ok(Opened::Rebuild(format!(
            "index at {} is corrupt ({e}); rebuilding it",
            dir.display()
        ))),
    }
}

impl Index {
    /// Opens (or creates) the index of the repository at `repo_root`. A corrupt
    /// or incompatible index is rebuilt empty, with [`Index::notice`] saying so.
    /// When another process holds the writer, this one opens read-only and
    /// follows its commits.
    pub fn open(repo_root: &Path, options: IndexOptions) -> Result<Index> {
        let root = repo_root.canonicalize().map_err(|source| Error::Root {
            path: repo_root.to_path_buf(),
            source,
        })?;
        if !root.is_dir() {
            return Err(Error::Root {
                path: root,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let dir = match &options.index_dir {
            Some(d) => d.clone(),
            None => default_index_dir(&root)?,
        };
        std::fs::create_dir_all(&dir).map_err(dir_err(&dir))?;
        let (schema, fields) = schema::build();

        let mut notice = None;
        let tantivy = match try_open(&dir, &schema)? {
            Opened::Ok(i) => i,
            Opened::Rebuild(msg) => {
                tracing::warn!("{msg}");
                notice = Some(msg);
                wipe_dir(&dir)?;
                create_index(&dir, &schema).map_err(tantivy_err(&dir))?
            }
        };
        let meta = Meta {
            schema_version: SCHEMA_VERSION,
            repo_root: root.to_string_lossy().into_owned(),
        };
        let meta_path = dir.join(META_FILE);
        if !meta_path.exists() || notice.is_some() {
            // Written via rename so a crash never leaves a half-written file.
            let tmp = dir.join(format!("{META_FILE}.tmp"));
            let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
            std::fs::write(&tmp, json).map_err(dir_err(&dir))?;
            std::fs::rename(&tmp, &meta_path).map_err(dir_err(&dir))?;
        }
        tantivy.tokenizers().register(CODE_TOKENIZER, CodeTokenizer);
        // Opening a reader loads every segment: a truncated or missing segment
        // file shows up here, and is repaired by rebuilding.
        let (tantivy, reader) = match open_reader(&tantivy) {
            Ok(r) => (tantivy, r),
            Err(e) => {
                let msg = format!("index at {} is corrupt ({e}); rebuilding it", dir.display());
                tracing::warn!("{msg}");
                notice = Some(msg);
                wipe_dir(&dir)?;
                let fresh = create_index(&dir, &schema).map_err(tantivy_err(&dir))?;
                fresh.tokenizers().register(CODE_TOKENIZER, CodeTokenizer);
                let r = open_reader(&fresh).map_err(tantivy_err(&dir))?;
                (fresh, r)
            }
        };
        if notice.is_some() {
            let tmp = dir.join(format!("{META_FILE}.tmp"));
            let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
            std::fs::write(&tmp, json).map_err(dir_err(&dir))?;
            std::fs::rename(&tmp, &meta_path).map_err(dir_err(&dir))?;
        }

        let writer = if options.read_only {
            None
        } else {
            // One indexing thread: the parse threads already fill the cores, and
            // every extra thread adds its own memory arena and its own segments
            // (more merging later).
            let writer_options = tantivy::indexer::IndexWriterOptions::builder()
                .num_worker_threads(1)
                .memory_budget_per_thread(options.writer_memory.max(16_000_000))
                .num_merge_threads(1)
                .build();
            match tantivy.writer_with_options::<TantivyDocument>(writer_options) {
                Ok(w) => Some(Mutex::new(w)),
                Err(tantivy::TantivyError::LockFailure(..)) => {
                    tracing::info!(
                        "index at {} is written by another process; opening read-only",
                        dir.display()
                    );
                    None
                }
                Err(e) => return Err(tantivy_err(&dir)(e)),
            }
        };
        let index = Index {
            inner: Arc::new(Inner {
                root,
                dir,
                options,
                reader,
                writer,
                fields,
                files: Mutex::new(HashMap::new()),
                notice,
            }),
        };
        let files = index.load_file_states()?;
        *lock(&index.inner.files) = files;
        Ok(index)
    }

    /// The canonical repository root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The directory holding the index.
    pub fn index_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Set when opening found a corrupt or incompatible index and rebuilt it.
    pub fn notice(&self) -> Option<&str> {
        self.inner.notice.as_deref()
    }

    /// False when another process holds the writer lock (or `read_only` was asked).
    pub fn is_writable(&self) -> bool {
        self.inner.writer.is_some()
    }

    /// Picks up commits made by other processes (also done automatically
    /// shortly after each commit).
    pub fn reload(&self) -> Result<()> {
        self.inner
            .reader
            .reload()
            .map_err(tantivy_err(&self.inner.dir))
    }

    /// Paths of the indexed files, sorted.
    pub fn indexed_files(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = if self.inner.writer.is_some() {
            // The writer's own record is current (it made every change).
            lock(&self.inner.files).keys().cloned().collect()
        } else {
            self.load_file_states()?.into_keys().collect()
        };
        out.sort();
        Ok(out)
    }

    /// What the index holds now.
    pub fn stats(&self) -> Result<IndexStats> {
        let mut stats = IndexStats {
            index_dir: self.inner.dir.clone(),
            ..Default::default()
        };
        let mut add = |s: &FileState| {
            stats.files += 1;
            stats.symbols += s.n_symbols;
            stats.chunks += s.n_chunks;
            stats.source_bytes += s.size;
            *stats.languages.entry(s.lang.clone()).or_insert(0) += 1;
        };
        if self.inner.writer.is_some() {
            lock(&self.inner.files).values().for_each(&mut add);
        } else {
            // A reader follows another process's commits: read them back.
            self.load_file_states()?.values().for_each(&mut add);
        }
        stats.index_bytes = dir_size(&self.inner.dir);
        Ok(stats)
    }
}

/// A new, empty index. Stored documents are compressed in 4 KiB blocks rather
/// than tantivy's 16 KiB: retrieval fetches a few dozen chunks scattered over
/// the index per request, and each fetch decompresses its whole block.
fn create_index(dir: &Path, schema: &tantivy::schema::Schema) -> tantivy::Result<tantivy::Index> {
    let settings = tantivy::IndexSettings {
        docstore_blocksize: 4096,
        ..Default::default()
    };
    tantivy::Index::builder()
        .schema(schema.clone())
        .settings(settings)
        .create_in_dir(dir)
}

fn open_reader(index: &tantivy::Index) -> tantivy::Result<IndexReader> {
    index
        .reader_builder()
        .reload_policy(ReloadPolicy::OnCommitWithDelay)
        .try_into()
}

fn cancel_workers(next: &AtomicUsize, len: usize) {
    next.store(len, Ordering::Relaxed);
}

/// A poisoned lock only means another thread panicked mid-update; the data is
/// still usable, and the next commit or rebuild repairs the index.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
