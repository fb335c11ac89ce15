//! A repository's index without a session: what `cairn index`, `cairn search` and
//! `cairn symbols` (and the MCP tools) run. A [`crate::Workspace`] keeps its own index
//! live; this is the same index opened for one job.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use cairn_indexer::{Index, Watcher};

use crate::{
    EngineError, IndexOptions, IndexProgress, IndexStats, SearchExplanation, SearchHit,
    SearchQuery, Symbol, WatchEvent,
};

/// One repository's index, opened for a command.
pub struct RepoIndex {
    index: Index,
}

/// A running watcher; dropping it stops watching.
pub struct IndexWatch {
    _watcher: Watcher,
}

impl RepoIndex {
    /// Opens (creating it if needed) the index of `root`. Another process writing it
    /// makes this one read-only ([`RepoIndex::is_writable`]).
    pub fn open(root: &Path, options: IndexOptions) -> Result<RepoIndex, EngineError> {
        Ok(RepoIndex {
            index: Index::open(root, options)?,
        })
    }

    /// Opens for reading only, so a running writer (`cairn index --watch`, an editor's
    /// session) is never disturbed.
    pub fn open_read_only(
        root: &Path,
        index_dir: Option<PathBuf>,
    ) -> Result<RepoIndex, EngineError> {
        Self::open(
            root,
            IndexOptions {
                index_dir,
                read_only: true,
                ..Default::default()
            },
        )
    }

    pub(crate) fn from_index(index: Index) -> RepoIndex {
        RepoIndex { index }
    }

    /// A notice worth showing (an index rebuilt for a new schema, opened read-only …).
    pub fn notice(&self) -> Option<&str> {
        self.index.notice()
    }

    pub fn is_writable(&self) -> bool {
        self.index.is_writable()
    }

    pub fn index_dir(&self) -> &Path {
        self.index.index_dir()
    }

    /// Brings the index up to date with the files (unchanged files are skipped).
    pub fn update(
        &self,
        progress: &(dyn Fn(IndexProgress) + Sync),
        cancel: &AtomicBool,
    ) -> Result<IndexStats, EngineError> {
        if !self.index.is_writable() {
            return Err(EngineError::Unavailable(format!(
                "another process is indexing {} (index at {}); search works meanwhile",
                self.index.root().display(),
                self.index.index_dir().display()
            )));
        }
        Ok(self.index.update_all(progress, cancel)?)
    }

    /// Applies file changes as they happen until the returned watch is dropped.
    pub fn watch(
        &self,
        on_event: impl Fn(WatchEvent) + Send + 'static,
    ) -> Result<IndexWatch, EngineError> {
        Ok(IndexWatch {
            _watcher: self.index.watch_with(on_event)?,
        })
    }

    pub fn stats(&self) -> Result<IndexStats, EngineError> {
        Ok(self.index.stats()?)
    }

    /// BM25 over chunks, symbol names and paths, fused by rank, with why each matched.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchExplanation, EngineError> {
        Ok(self.index.search_explain(query)?)
    }

    /// The hits alone.
    pub fn search_hits(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, EngineError> {
        Ok(self.index.search(query)?)
    }

    /// Definitions by name (case-insensitive; `Type::method` or `Type.method` narrows).
    pub fn symbols(&self, name: &str) -> Result<Vec<Symbol>, EngineError> {
        Ok(self.index.symbols(name)?)
    }
}
