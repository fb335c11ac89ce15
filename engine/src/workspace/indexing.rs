//! The session's index: opened and brought up to date on a thread of its own, then kept
//! live by the watcher; read-only when another process writes it. Its state is watched
//! by the front ends (progress bars, `$/progress`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cairn_indexer::{Index, ProgressPhase, Watcher};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use super::Workspace;
use crate::{IndexOptions, IndexStats, RepoIndex};

/// Where the index stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum IndexState {
    Opening,
    #[serde(rename_all = "camelCase")]
    Indexing {
        files_done: u64,
        files_total: u64,
    },
    Ready {
        files: u64,
    },
    /// Another process writes this index; this one reads it.
    ReadOnly {
        files: u64,
        message: String,
    },
    Error {
        message: String,
    },
    Disabled,
}

impl IndexState {
    /// Still opening or indexing.
    pub fn is_busy(&self) -> bool {
        matches!(self, IndexState::Opening | IndexState::Indexing { .. })
    }

    /// Files indexed so far (done so far while indexing).
    pub fn files(&self) -> u64 {
        match self {
            IndexState::Ready { files } | IndexState::ReadOnly { files, .. } => *files,
            IndexState::Indexing { files_done, .. } => *files_done,
            _ => 0,
        }
    }
}

pub(super) struct IndexHandle {
    slot: Arc<RwLock<Option<Index>>>,
    state: Arc<tokio::sync::watch::Sender<IndexState>>,
    watcher: Arc<Mutex<Option<Watcher>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for IndexHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl IndexHandle {
    pub(super) fn new(disabled: bool) -> IndexHandle {
        let (tx, _) = tokio::sync::watch::channel(if disabled {
            IndexState::Disabled
        } else {
            IndexState::Opening
        });
        IndexHandle {
            slot: Arc::default(),
            state: Arc::new(tx),
            watcher: Arc::default(),
            stop: Arc::default(),
        }
    }

    pub(super) fn state(&self) -> IndexState {
        self.state.borrow().clone()
    }

    pub(super) fn start(&self, root: &Path, opts: IndexOptions, watch: bool) {
        let root = root.to_path_buf();
        let slot = self.slot.clone();
        let state = self.state.clone();
        let stop = self.stop.clone();
        let watcher = self.watcher.clone();
        let spawned = std::thread::Builder::new()
            .name("cairn-index".into())
            .spawn(move || {
                let index = match Index::open(&root, opts) {
                    Ok(i) => i,
                    Err(e) => {
                        state.send_replace(IndexState::Error {
                            message: e.to_string(),
                        });
                        return;
                    }
                };
                *slot.write() = Some(index.clone());
                let files = |i: &Index| i.stats().map(|s| s.files).unwrap_or(0);
                if !index.is_writable() {
                    let message = index
                        .notice()
                        .unwrap_or("another process writes this index; this one reads it")
                        .to_string();
                    state.send_replace(IndexState::ReadOnly {
                        files: files(&index),
                        message,
                    });
                    return;
                }
                let progress = |p: cairn_indexer::Progress| {
                    if p.phase != ProgressPhase::Done {
                        state.send_replace(IndexState::Indexing {
                            files_done: p.files_done,
                            files_total: p.files_total,
                        });
                    }
                };
                match index.update_all(&progress, &stop) {
                    Ok(stats) => {
                        state.send_replace(IndexState::Ready { files: stats.files });
                    }
                    Err(e) => {
                        state.send_replace(IndexState::Error {
                            message: e.to_string(),
                        });
                        return;
                    }
                }
                if watch && !stop.load(Ordering::Relaxed) {
                    match index.watch() {
                        Ok(w) => *watcher.lock() = Some(w),
                        Err(e) => tracing::warn!("index watcher not started: {e}"),
                    }
                }
            });
        if let Err(e) = spawned {
            self.state.send_replace(IndexState::Error {
                message: format!("cannot start the indexing thread: {e}"),
            });
        }
    }
}

impl Workspace {
    /// Index state changes, for progress reports.
    pub fn index_events(&self) -> tokio::sync::watch::Receiver<IndexState> {
        self.index.state.subscribe()
    }

    /// The index, once opened.
    pub(crate) fn index(&self) -> Option<Index> {
        self.index.slot.read().clone()
    }

    /// The open index as a [`RepoIndex`] (search, symbols, stats), once opened.
    pub fn repo_index(&self) -> Option<RepoIndex> {
        self.index().map(RepoIndex::from_index)
    }

    /// The index's statistics (files, languages …), once it is ready.
    pub fn index_stats(&self) -> Option<IndexStats> {
        match self.index.state() {
            IndexState::Ready { .. } | IndexState::ReadOnly { .. } => {
                self.index().and_then(|i| i.stats().ok())
            }
            _ => None,
        }
    }

    /// Waits until the index is usable or has failed; the final state.
    pub async fn index_settled(&self) -> IndexState {
        let mut rx = self.index_events();
        let settled = rx.wait_for(|s| !s.is_busy()).await.map(|s| s.clone());
        settled.unwrap_or_else(|_| self.index.state())
    }

    /// Removes a file from the index now (it was deleted behind the watcher's back).
    pub async fn forget_file(&self, path: &str) {
        let key = self.rel_path(path);
        let Some(index) = self.index() else { return };
        let abs = self.abs_path(&key);
        let _ = tokio::task::spawn_blocking(move || {
            if index.is_writable() {
                if let Err(e) = index.remove_file(&abs) {
                    tracing::debug!("index removal of {} failed: {e}", abs.display());
                }
            }
        })
        .await;
    }
}
