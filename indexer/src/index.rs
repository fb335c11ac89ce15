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

    /// Every file's record, read from the file documents' columns.
    fn load_file_states(&self) -> Result<HashMap<String, FileState>> {
        let f = self.inner.fields;
        let te = tantivy_err(&self.inner.dir);
        let searcher = self.inner.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(f.doc_type, DOC_FILE),
            IndexRecordOption::Basic,
        );
        let mut docs: Vec<_> = searcher
            .search(&q, &DocSetCollector)
            .map_err(&te)?
            .into_iter()
            .collect();
        docs.sort();
        let mut out = HashMap::with_capacity(docs.len());
        let missing = |name: &str| {
            tantivy::TantivyError::SchemaError(format!("the index has no `{name}` column"))
        };
        let mut seg = usize::MAX;
        let mut cols = None;
        let (mut path, mut hash, mut lang) = (String::new(), String::new(), String::new());
        for addr in docs {
            if addr.segment_ord as usize != seg {
                seg = addr.segment_ord as usize;
                let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
                let str_col = |name: &str| {
                    ff.str(name)
                        .and_then(|c| c.ok_or_else(|| missing(name)))
                        .map_err(&te)
                };
                cols = Some((
                    str_col("file_path")?,
                    str_col("file_hash")?,
                    str_col("file_lang")?,
                    ff.u64("size").map_err(&te)?,
                    ff.u64("mtime").map_err(&te)?,
                    ff.u64("n_chunks").map_err(&te)?,
                    ff.u64("n_symbols").map_err(&te)?,
                ));
            }
            let Some((c_path, c_hash, c_lang, c_size, c_mtime, c_chunks, c_symbols)) = &cols else {
                continue;
            };
            let d = addr.doc_id;
            let read = |c: &tantivy::columnar::StrColumn, out: &mut String| -> bool {
                out.clear();
                c.ords()
                    .first(d)
                    .is_some_and(|o| c.ord_to_str(o, out).unwrap_or(false))
            };
            if !read(c_path, &mut path) {
                continue;
            }
            read(c_hash, &mut hash);
            read(c_lang, &mut lang);
            out.insert(
                path.clone(),
                FileState {
                    hash: hash.clone(),
                    size: c_size.first(d).unwrap_or(0),
                    mtime: c_mtime.first(d).unwrap_or(0),
                    lang: lang.clone(),
                    n_chunks: c_chunks.first(d).unwrap_or(0),
                    n_symbols: c_symbols.first(d).unwrap_or(0),
                },
            );
        }
        Ok(out)
    }

    fn writer(&self) -> Result<MutexGuard<'_, IndexWriter>> {
        match &self.inner.writer {
            Some(w) => Ok(lock(w)),
            None => Err(Error::ReadOnly(self.inner.dir.clone())),
        }
    }

    pub(crate) fn rel(&self, path: &Path) -> Result<String> {
        let p = if path.is_absolute() {
            // Accept paths through a symlinked root, e.g. /tmp vs /private/tmp.
            match path.strip_prefix(&self.inner.root) {
                Ok(_) => path.to_path_buf(),
                Err(_) => {
                    let parent = path.parent().and_then(|p| p.canonicalize().ok());
                    match (parent, path.file_name()) {
                        (Some(p), Some(n)) => p.join(n),
                        _ => path.to_path_buf(),
                    }
                }
            }
        } else {
            path.to_path_buf()
        };
        walk::rel_path(&self.inner.root, &p).ok_or_else(|| Error::OutsideRoot(path.to_path_buf()))
    }

    fn add_analysis(
        &self,
        w: &IndexWriter,
        rel: &str,
        file: &FileMeta<'_>,
        a: &FileAnalysis,
    ) -> Result<()> {
        let f = &self.inner.fields;
        let te = tantivy_err(&self.inner.dir);
        let FileMeta {
            label: lang_label,
            hash,
            size,
            mtime,
        } = *file;
        w.delete_term(Term::from_field_text(f.path, rel));
        // Each symbol goes with the chunk holding its first line (chunks are
        // sorted by line); one outside every chunk goes with the next one, or
        // the last.
        let mut per_chunk: Vec<Vec<&crate::analyze::Symbol>> = vec![Vec::new(); a.chunks.len()];
        if !a.chunks.is_empty() {
            for s in &a.symbols {
                let i = a.chunks.partition_point(|c| c.end_line < s.start_line);
                per_chunk[i.min(a.chunks.len() - 1)].push(s);
            }
        }
        for (c, syms) in a.chunks.iter().zip(&per_chunk) {
            w.add_document(f.chunk_doc(rel, lang_label, c, syms))
                .map_err(&te)?;
        }
        let rec = FileRecord {
            path: rel,
            lang: lang_label,
            hash,
            size,
            mtime,
            n_chunks: a.chunks.len() as u64,
            n_symbols: a.symbols.len() as u64,
            first_line: a.chunks.first().map_or(0, |c| c.start_line as u64),
        };
        w.add_document(f.file_doc(&rec)).map_err(&te)?;
        lock(&self.inner.files).insert(
            rel.to_string(),
            FileState {
                hash: hash.to_string(),
                size,
                mtime,
                lang: lang_label.to_string(),
                n_chunks: rec.n_chunks,
                n_symbols: rec.n_symbols,
            },
        );
        Ok(())
    }

    fn delete_path(&self, w: &IndexWriter, rel: &str) -> bool {
        let f = &self.inner.fields;
        let mut files = lock(&self.inner.files);
        // A directory removal takes every indexed file under it.
        let prefix = format!("{rel}/");
        let victims: Vec<String> = files
            .keys()
            .filter(|k| k.as_str() == rel || k.starts_with(&prefix))
            .cloned()
            .collect();
        for v in &victims {
            w.delete_term(Term::from_field_text(f.path, v));
            files.remove(v);
        }
        !victims.is_empty()
    }

    fn commit(&self, w: &mut IndexWriter) -> Result<()> {
        w.commit().map_err(tantivy_err(&self.inner.dir))?;
        self.reload()
    }

    /// Indexes `text` as the current content of `path` (an editor's unsaved
    /// buffer) and commits, so searches see it at once.
    pub fn update_file_text(&self, path: &Path, text: &str) -> Result<FileOutcome> {
        let rel = self.rel(path)?;
        let mut w = self.writer()?;
        let outcome = self.index_text(&w, &rel, text, 0)?;
        self.commit(&mut w)?;
        Ok(outcome)
    }

    fn index_text(
        &self,
        w: &IndexWriter,
        rel: &str,
        text: &str,
        mtime: u64,
    ) -> Result<FileOutcome> {
        if text.len() as u64 > self.inner.options.max_file_bytes {
            return Ok(FileOutcome::Skipped(SkipReason::TooLarge));
        }
        if text.as_bytes()[..text.len().min(8192)].contains(&0) {
            return Ok(FileOutcome::Skipped(SkipReason::Binary));
        }
        let hash = walk::git_blob_id(text.as_bytes());
        if lock(&self.inner.files)
            .get(rel)
            .is_some_and(|s| s.hash == hash)
        {
            return Ok(FileOutcome::Unchanged);
        }
        let path = Path::new(rel);
        let label = label_for(path);
        let mut parser = tree_sitter::Parser::new();
        let a = analyze_text(
            &mut parser,
            rel,
            Lang::from_path(path),
            &label,
            text,
            &|| false,
        );
        let meta = FileMeta {
            label: &label,
            hash: &hash,
            size: text.len() as u64,
            mtime,
        };
        self.add_analysis(w, rel, &meta, &a)?;
        Ok(FileOutcome::Indexed {
            symbols: a.symbols.len(),
            chunks: a.chunks.len(),
        })
    }

    /// Re-reads `path` from disk and updates the index (removing it if it is
    /// gone, binary, too large or ignored by name), then commits.
    pub fn update_file(&self, path: &Path) -> Result<FileOutcome> {
        let rel = self.rel(path)?;
        let mut w = self.writer()?;
        let outcome = self.update_rel(&w, &rel)?;
        self.commit(&mut w)?;
        Ok(outcome)
    }

    pub(crate) fn update_rel(&self, w: &IndexWriter, rel: &str) -> Result<FileOutcome> {
        let abs = self.inner.root.join(rel);
        if walk::skipped_by_name(rel, &self.inner.options) {
            self.delete_path(w, rel);
            return Ok(FileOutcome::Skipped(SkipReason::Ignored));
        }
        match walk::read_file(&abs, self.inner.options.max_file_bytes) {
            ReadOutcome::Text { text, mtime, .. } => self.index_text(w, rel, &text, mtime),
            ReadOutcome::Binary => {
                self.delete_path(w, rel);
                Ok(FileOutcome::Skipped(SkipReason::Binary))
            }
            ReadOutcome::TooLarge => {
                self.delete_path(w, rel);
                Ok(FileOutcome::Skipped(SkipReason::TooLarge))
            }
            ReadOutcome::Gone => {
                self.delete_path(w, rel);
                Ok(FileOutcome::Removed)
            }
            ReadOutcome::Error(e) => {
                tracing::warn!("cannot read {}: {e}", abs.display());
                Ok(FileOutcome::Skipped(SkipReason::Ignored))
            }
        }
    }

    /// Removes `path` (a file, or every indexed file under a directory) and commits.
    pub fn remove_file(&self, path: &Path) -> Result<bool> {
        let rel = self.rel(path)?;
        let mut w = self.writer()?;
        let removed = self.delete_path(&w, &rel);
        self.commit(&mut w)?;
        Ok(removed)
    }

    /// Applies a batch of changed paths (from the watcher) with one commit.
    pub(crate) fn apply_batch(&self, rels: &[String]) -> Result<usize> {
        let mut w = self.writer()?;
        let mut changed = 0;
        for rel in rels {
            let abs = self.inner.root.join(rel);
            let outcome = if abs.is_dir() {
                // A new or moved-in directory: index what it holds.
                let mut opts = self.inner.options.clone();
                opts.index_dir = None;
                let (entries, _) = walk::walk(&abs, &opts);
                for e in entries {
                    let sub = format!("{rel}/{}", e.rel);
                    if let FileOutcome::Indexed { .. } = self.update_rel(&w, &sub)? {
                        changed += 1;
                    }
                }
                continue;
            } else {
                self.update_rel(&w, rel)?
            };
            if outcome != FileOutcome::Unchanged {
                changed += 1;
            }
        }
        if changed > 0 {
            self.commit(&mut w)?;
        }
        Ok(changed)
    }

    /// Brings the index up to date with the working tree: new and changed files
    /// are (re)indexed, unchanged ones (same size and mtime, or same content
    /// hash) skipped, vanished ones removed. Commits every
    /// `commit_every_bytes`, so a killed run resumes where it stopped. Setting
    /// `cancel` commits what is done and returns [`Error::Cancelled`].
    pub fn update_all(
        &self,
        progress: &dyn Fn(Progress),
        cancel: &AtomicBool,
    ) -> Result<IndexStats> {
        let started = Instant::now();
        let mut w = self.writer()?;
        let mut run = RunStats::default();
        progress(Progress {
            phase: ProgressPhase::Walking,
            files_done: 0,
            files_total: 0,
            bytes_done: 0,
            bytes_total: 0,
        });
        let (entries, skips) = walk::walk(&self.inner.root, &self.inner.options);
        run.files_seen = entries.len() as u64;
        run.skipped_large = skips.large;
        run.skipped_symlinks = skips.symlinks;
        run.errors = skips.errors;

        // Vanished files.
        let seen: HashSet<&str> = entries.iter().map(|e| e.rel.as_str()).collect();
        let gone: Vec<String> = lock(&self.inner.files)
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for g in &gone {
            self.delete_path(&w, g);
        }
        run.removed = gone.len() as u64;

        // Fast path: same size and mtime as indexed means unchanged.
        let todo: Vec<WalkEntry> = {
            let files = lock(&self.inner.files);
            entries
                .into_iter()
                .filter(|e| {
                    !files
                        .get(&e.rel)
                        .is_some_and(|s| s.size == e.size && s.mtime == e.mtime && e.mtime != 0)
                })
                .collect()
        };
        run.unchanged = run.files_seen - todo.len() as u64;
        let bytes_total: u64 = todo.iter().map(|e| e.size).sum();
        let files_total = todo.len() as u64;
        let known: HashMap<String, String> = lock(&self.inner.files)
            .iter()
            .map(|(k, v)| (k.clone(), v.hash.clone()))
            .collect();

        enum Msg {
            Analyzed {
                idx: usize,
                label: String,
                hash: String,
                size: u64,
                mtime: u64,
                analysis: FileAnalysis,
            },
            SameHash {
                idx: usize,
                size: u64,
                mtime: u64,
            },
            Skip {
                idx: usize,
                reason: Option<SkipReason>,
            },
        }

        let next = AtomicUsize::new(0);
        let threads = self.inner.options.parse_threads.max(1);
        // A few files in flight: each holds its text, chunks and symbols.
        let (tx, rx) = mpsc::sync_channel::<Msg>(4);
        let mut result: Result<()> = Ok(());
        let mut bytes_done = 0u64;
        let mut files_done = 0u64;
        let mut since_commit = 0u64;
        let mut last_progress = Instant::now() - Duration::from_secs(1);
        let max_bytes = self.inner.options.max_file_bytes;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let tx = tx.clone();
                let todo = &todo;
                let next = &next;
                let known = &known;
                scope.spawn(move || {
                    let mut parser = tree_sitter::Parser::new();
                    loop {
                        if cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        let idx = next.fetch_add(1, Ordering::Relaxed);
                        let Some(e) = todo.get(idx) else { return };
                        let msg = match walk::read_file(&e.abs, max_bytes) {
                            ReadOutcome::Text {
                                text,
                                blob,
                                size,
                                mtime,
                            } => {
                                if known.get(&e.rel) == Some(&blob) {
                                    Msg::SameHash { idx, size, mtime }
                                } else {
                                    let path = Path::new(&e.rel);
                                    let label = label_for(path);
                                    let analysis = analyze_text(
                                        &mut parser,
                                        &e.rel,
                                        Lang::from_path(path),
                                        &label,
                                        &text,
                                        &|| cancel.load(Ordering::Relaxed),
                                    );
                                    Msg::Analyzed {
                                        idx,
                                        label,
                                        hash: blob,
                                        size,
                                        mtime,
                                        analysis,
                                    }
                                }
                            }
                            ReadOutcome::Binary => Msg::Skip {
                                idx,
                                reason: Some(SkipReason::Binary),
                            },
                            ReadOutcome::TooLarge => Msg::Skip {
                                idx,
                                reason: Some(SkipReason::TooLarge),
                            },
                            ReadOutcome::Gone => Msg::Skip { idx, reason: None },
                            ReadOutcome::Error(err) => {
                                tracing::warn!("cannot read {}: {err}", e.abs.display());
                                Msg::Skip {
                                    idx,
                                    reason: Some(SkipReason::Ignored),
                                }
                            }
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for msg in rx.iter() {
                if result.is_err() || cancel.load(Ordering::Relaxed) {
                    continue; // drain so workers finish
                }
                let step = (|| -> Result<()> {
                    match msg {
                        Msg::Analyzed {
                            idx,
                            label,
                            hash,
                            size,
                            mtime,
                            analysis,
                        } => {
                            let rel = &todo[idx].rel;
                            let meta = FileMeta {
                                label: &label,
                                hash: &hash,
                                size,
                                mtime,
                            };
                            self.add_analysis(&w, rel, &meta, &analysis)?;
                            run.indexed += 1;
                            run.bytes_indexed += size;
                            since_commit += size;
                            bytes_done += todo[idx].size;
                        }
                        Msg::SameHash { idx, size, mtime } => {
                            // Content unchanged, only the mtime moved: refresh the file record
                            // lazily on the next change; count it as unchanged.
                            let rel = &todo[idx].rel;
                            if let Some(s) = lock(&self.inner.files).get_mut(rel) {
                                s.size = size;
                                s.mtime = mtime;
                            }
                            run.unchanged += 1;
                            bytes_done += todo[idx].size;
                        }
                        Msg::Skip { idx, reason } => {
                            let rel = &todo[idx].rel;
                            if self.delete_path(&w, rel) {
                                run.removed += 1;
                            }
                            match reason {
                                Some(SkipReason::Binary) => run.skipped_binary += 1,
                                Some(SkipReason::TooLarge) => run.skipped_large += 1,
                                Some(SkipReason::Ignored) => run.errors += 1,
                                None => {}
                            }
                            bytes_done += todo[idx].size;
                        }
                    }
                    files_done += 1;
                    if since_commit >= self.inner.options.commit_every_bytes {
                        progress(Progress {
                            phase: ProgressPhase::Committing,
                            files_done,
                            files_total,
                            bytes_done,
                            bytes_total,
                        });
                        self.commit(&mut w)?;
                        run.commits += 1;
                        since_commit = 0;
                    }
                    if last_progress.elapsed() >= Duration::from_millis(50)
                        || files_done == files_total
                    {
                        last_progress = Instant::now();
                        progress(Progress {
                            phase: ProgressPhase::Indexing,
                            files_done,
                            files_total,
                            bytes_done,
                            bytes_total,
                        });
                    }
                    Ok(())
                })();
                if let Err(e) = step {
                    result = Err(e);
                    cancel_workers(&next, todo.len());
                }
            }
        });
        result?;
        progress(Progress {
            phase: ProgressPhase::Committing,
            files_done,
            files_total,
            bytes_done,
            bytes_total,
        });
        self.commit(&mut w)?;
        run.commits += 1;
        drop(w);
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        run.elapsed_ms = started.elapsed().as_millis() as u64;
        progress(Progress {
            phase: ProgressPhase::Done,
            files_done,
            files_total,
            bytes_done,
            bytes_total,
        });
        let mut stats = self.stats()?;
        stats.run = Some(run);
        Ok(stats)
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
