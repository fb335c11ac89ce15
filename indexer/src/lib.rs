//! Cairn's repository index: walks a repository, extracts symbols and chunks
//! with tree-sitter, stores them in an on-disk tantivy index kept live with
//! `notify`, and answers retrieval for chat (`search`) and completions (`context_for`).
//!
//! Architecture invariant: this crate knows nothing of LSP, models or the
//! provenance ledger. It is plain synchronous code; async callers run it on
//! `spawn_blocking`.

mod analyze;
mod index;
mod lang;
mod schema;
mod search;
mod tokenize;
mod walk;
mod watch;

use std::path::PathBuf;

pub use analyze::{analyze_text, Chunk, FileAnalysis, Symbol};
pub use index::{
    default_index_dir, FileOutcome, Index, IndexStats, Progress, ProgressPhase, RunStats,
    SkipReason, SCHEMA_VERSION,
};
pub use lang::{label_for as language_label, Lang, SymbolKind};
pub use search::{
    MatchReason, Retriever, RetrieverHit, RetrieverRun, SearchExplanation, SearchHit, SearchQuery,
    Snippet, SnippetKind,
};
pub use walk::{CAIRN_IGNORE, DEFAULT_SKIP_DIRS};
pub use watch::{WatchEvent, Watcher};

/// Errors from the index. Bad input files are never errors: they are skipped
/// and counted in [`RunStats`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("repository root {path} is not a readable directory: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use index directory {path}: {source}")]
    IndexDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("index at {path}: {source}")]
    Tantivy {
        path: PathBuf,
        source: tantivy::TantivyError,
    },
    #[error("the index at {0} is being written by another process; this one can only read it")]
    ReadOnly(PathBuf),
    #[error("path {0} is outside the repository root")]
    OutsideRoot(PathBuf),
    #[error("indexing was cancelled")]
    Cancelled,
    #[error("file watcher: {0}")]
    Watch(#[from] notify::Error),
    #[error("no data directory for this user; pass IndexOptions::index_dir")]
    NoDataDir,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an [`Index`] is opened and what it indexes.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Where the index lives. Default: [`default_index_dir`] (the user's data
    /// dir, keyed by repository root), never inside the repository.
    pub index_dir: Option<PathBuf>,
    /// Files larger than this are skipped. Default 1 MiB.
    pub max_file_bytes: u64,
    /// Directory names never descended into.
    pub skip_dirs: Vec<String>,
    /// Open for reading only, even if no other process writes.
    pub read_only: bool,
    /// Threads parsing files during `update_all`. Default: available cores.
    pub parse_threads: usize,
    /// tantivy writer memory budget in bytes (one indexing thread). Default 64 MB.
    pub writer_memory: usize,
    /// Commit after this many bytes of source indexed, so a killed run resumes.
    /// Default 128 MB: each commit ends a segment, and a cold pass that leaves
    /// fewer segments than the merge policy's minimum (8) needs no merge.
    pub commit_every_bytes: u64,
    /// Quiet time before a batch of file events is applied. Default 150 ms.
    pub watch_debounce: std::time::Duration,
    /// More changed paths than this in one batch trigger a full incremental
    /// pass (branch switch, checkout) instead of per-file updates. Default 500.
    pub watch_batch_rescan: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            index_dir: None,
            max_file_bytes: 1024 * 1024,
            skip_dirs: DEFAULT_SKIP_DIRS.iter().map(|s| s.to_string()).collect(),
            read_only: false,
            parse_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            writer_memory: 64_000_000,
            commit_every_bytes: 128 * 1024 * 1024,
            watch_debounce: std::time::Duration::from_millis(150),
            watch_batch_rescan: 500,
        }
    }
}
