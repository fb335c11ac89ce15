//! A workspace session: one repository, its index (built and kept live in the
//! background), its ledger, its open documents and the configured models. Front ends
//! (LSP, desktop, terminal, MCP) hold one `Arc<Workspace>` and translate their protocol
//! to its calls.
//!
//! The rooms: this file opens the session and answers status and path questions;
//! `documents` keeps the editor's texts, `indexing` the background index, `suggestions`
//! what was shown and what the person decided. Completion and chat pipelines live in
//! `crate::completion` and `crate::chat`.

mod documents;
mod indexing;
mod suggestions;

pub use suggestions::AcceptedReference;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_provenance::{Event, Ledger, RecordId};
use serde::Serialize;

use crate::chat::{ChatCache, ChatCacheOptions, Conversations};
use crate::completion::{CompletionOptions, CompletionState};
use crate::references::{ReferenceHandle, ReferenceOptions, ReferenceStatus};
use crate::{
    Config, Engine, EngineError, IndexOptions, LedgerOptions, ModelIdentity, Provenance,
    RouteChoice,
};

pub use crate::chat::{CachedAnswer, ChatAnswer, ChatTurn, ProposedEdit, WithheldEdit};
pub use crate::completion::{
    CompleteRequest, Completion, ContextChoice, Suggestion, Timings, Trigger,
};
pub use indexing::IndexState;

use documents::Documents;
use indexing::IndexHandle;
use suggestions::{HeadCache, Suggestions};

/// How a workspace is opened.
#[derive(Debug, Clone)]
pub struct WorkspaceOptions {
    pub index: IndexOptions,
    pub ledger: LedgerOptions,
    pub completion: CompletionOptions,
    /// Characters of retrieved context given to a completion.
    pub context_chars: usize,
    /// Characters of retrieved sources given to a chat turn.
    pub chat_source_chars: usize,
    /// Keep the index live with a file watcher.
    pub watch: bool,
    /// Do not index at all (a bare chat, or tests of other parts).
    pub no_index: bool,
    /// The reference tracker (third-party code in suggestions).
    pub references: ReferenceOptions,
    /// The chat response cache.
    pub chat_cache: ChatCacheOptions,
}

impl Default for WorkspaceOptions {
    fn default() -> Self {
        WorkspaceOptions {
            index: IndexOptions::default(),
            ledger: LedgerOptions::default(),
            completion: CompletionOptions::default(),
            context_chars: 1_500,
            chat_source_chars: 6_000,
            watch: true,
            no_index: false,
            references: ReferenceOptions::default(),
            chat_cache: ChatCacheOptions::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: &'static str,
    pub repo: PathBuf,
    pub model: Option<ModelIdentity>,
    pub chat_model: Option<ModelIdentity>,
    /// Which model serves each route and why (`auto` says what it chose here).
    pub routes: Vec<RouteChoice>,
    pub model_error: Option<String>,
    pub index: IndexState,
    pub ledger: LedgerStatus,
    pub references: ReferenceStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStatus {
    pub path: Option<PathBuf>,
    pub error: Option<String>,
}

pub struct Workspace {
    root: PathBuf,
    options: WorkspaceOptions,
    models: Result<Engine, String>,
    ledger: Result<Ledger, String>,
    index: IndexHandle,
    docs: Documents,
    suggestions: Suggestions,
    head: HeadCache,
    pub(crate) completions: CompletionState,
    pub(crate) conversations: Conversations,
    pub(crate) chat_cache: Arc<ChatCache>,
    pub(crate) references: ReferenceHandle,
}

impl Workspace {
    /// Opens the repository at `root`: loads the models (blocking: call from
    /// `spawn_blocking` in async code), opens the ledger, and starts indexing in the
    /// background. A model or ledger that cannot be opened is reported by
    /// [`Workspace::status`] and by each call that needs it; the rest keeps working.
    pub fn open(
        root: &Path,
        config: Config,
        mut options: WorkspaceOptions,
    ) -> Result<Arc<Workspace>, EngineError> {
        if let Some(ms) = config.completion.latency_budget_ms {
            options.completion.latency_budget_ms = Some(ms);
        }
        if let Some(on) = config.completion.prefill {
            options.completion.prefill = on;
        }
        config.chat.apply(&mut options.chat_cache);
        let models = Engine::open(&config).map_err(|e| e.to_string());
        options.references.apply_config(&config);
        Self::open_with(root, models, options)
    }

    /// [`Workspace::open`] with models the caller loaded (or failed to load).
    pub fn open_with(
        root: &Path,
        models: Result<Engine, String>,
        options: WorkspaceOptions,
    ) -> Result<Arc<Workspace>, EngineError> {
        let root = std::fs::canonicalize(root).map_err(|e| {
            EngineError::Input(format!(
                "repository {} cannot be opened: {e}",
                root.display()
            ))
        })?;
        if !root.is_dir() {
            return Err(EngineError::Input(format!(
                "repository {} is not a directory",
                root.display()
            )));
        }
        let ledger = Ledger::open(&root, options.ledger.clone()).map_err(|e| e.to_string());
        // The response cache sits beside the ledger its answers' records are in.
        let cache_dir = options
            .chat_cache
            .dir
            .clone()
            .or_else(|| cairn_provenance::ledger_dir(&root, &options.ledger).ok());
        let chat_cache = Arc::new(ChatCache::new(cache_dir, options.chat_cache.clone()));
        let index = IndexHandle::new(options.no_index);
        let references = ReferenceHandle::new(options.references.clone());
        let ws = Arc::new(Workspace {
            root,
            options,
            models,
            ledger,
            index,
            docs: Documents::default(),
            suggestions: Suggestions::default(),
            head: HeadCache::default(),
            completions: CompletionState::default(),
            conversations: Conversations::default(),
            chat_cache,
            references,
        });
        ws.references.start(&ws.root);
        if !ws.options.no_index {
            ws.index
                .start(&ws.root, ws.options.index.clone(), ws.options.watch);
        }
        Ok(ws)
    }

    /// Third-party code in `text` (the language from `path`), from the session's
    /// reference index; `None` while it is being built or when it is off.
    pub fn check_references(&self, path: &str, text: &str) -> Option<Vec<crate::ReferenceMatch>> {
        self.references.check_now(path, text)
    }

    /// Waits up to `timeout` for a reference index being built: `checked` when it is
    /// ready, else why texts go unchecked (`off`, `building`, `failed: …`).
    pub(crate) async fn references_ready(&self, timeout: std::time::Duration) -> String {
        self.references.ready_within(timeout).await
    }

    /// Waits up to `timeout` for the reference index; true when it is ready.
    pub fn wait_for_references(&self, timeout: std::time::Duration) -> bool {
        self.references.wait_ready(timeout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn options(&self) -> &WorkspaceOptions {
        &self.options
    }

    /// The loaded models, or why they could not be loaded.
    pub fn models(&self) -> Result<&Engine, EngineError> {
        self.models
            .as_ref()
            .map_err(|e| EngineError::Unavailable(e.clone()))
    }

    pub(crate) fn ledger(&self) -> Result<&Ledger, EngineError> {
        self.ledger
            .as_ref()
            .map_err(|e| EngineError::Unavailable(format!("the provenance ledger: {e}")))
    }

    /// The repository's provenance (blame, reports, verify) with this session's ledger.
    pub fn provenance(&self) -> Provenance {
        Provenance::for_workspace(&self.root, self.options.ledger.clone())
    }

    pub fn status(&self) -> Status {
        let (model, chat_model) = match &self.models {
            Ok(e) => (Some(e.completion_model()), Some(e.chat_model())),
            Err(_) => (None, None),
        };
        Status {
            version: env!("CARGO_PKG_VERSION"),
            repo: self.root.clone(),
            model,
            chat_model,
            routes: self.models.as_ref().map(Engine::routes).unwrap_or_default(),
            model_error: self.models.as_ref().err().cloned(),
            index: self.index.state(),
            ledger: LedgerStatus {
                path: self.ledger.as_ref().ok().map(|l| l.path().to_path_buf()),
                error: self.ledger.as_ref().err().cloned(),
            },
            references: self.references.status(),
        }
    }

    /// The repository-relative path for an editor path (absolute or relative). Paths
    /// outside the repository keep their absolute form.
    pub fn rel_path(&self, path: &str) -> String {
        let p = Path::new(path);
        if p.is_absolute() {
            // The editor's path usually is under the (canonical) root as given; only
            // otherwise (a symlinked checkout) ask the filesystem, off the common path.
            let rel = p
                .strip_prefix(&self.root)
                .map(Path::to_path_buf)
                .or_else(|_| {
                    std::fs::canonicalize(p).map_err(|_| ()).and_then(|c| {
                        c.strip_prefix(&self.root)
                            .map(Path::to_path_buf)
                            .map_err(|_| ())
                    })
                });
            return match rel {
                Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
                Err(()) => path.to_string(),
            };
        }
        path.trim_start_matches("./").to_string()
    }

    pub(crate) fn abs_path(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// A path the user may write: relative to and inside the repository root.
    pub fn inside_repo(&self, path: &str) -> Option<String> {
        let rel = self.rel_path(path);
        let p = Path::new(&rel);
        if p.is_absolute()
            || p.components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::Prefix(_)
                )
            })
        {
            return None;
        }
        // A symlink inside the repository may still point out of it.
        let abs = self.root.join(p);
        if let Ok(canon) = std::fs::canonicalize(&abs) {
            if !canon.starts_with(&self.root) {
                return None;
            }
        }
        Some(rel)
    }

    /// The absolute path of a repository path, refused (`None`) when it leads outside
    /// the repository: `..`, absolute paths elsewhere, symlinks out, or a new file under
    /// a folder that resolves outside.
    pub fn checked_abs(&self, path: &str) -> Option<PathBuf> {
        let rel = self.inside_repo(path)?;
        let abs = self.root.join(&rel);
        let mut probe = abs.as_path();
        loop {
            if let Ok(canon) = std::fs::canonicalize(probe) {
                if !canon.starts_with(&self.root) {
                    return None;
                }
                break;
            }
            match probe.parent() {
                Some(p) => probe = p,
                None => break,
            }
        }
        Some(abs)
    }

    /// Appends records to the ledger off the async runtime; their ids in order.
    pub(crate) async fn append(&self, events: Vec<Event>) -> Result<Vec<RecordId>, EngineError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ledger = self.ledger()?.clone();
        tokio::task::spawn_blocking(move || ledger.append_batch(events))
            .await
            .map_err(|e| EngineError::Unavailable(format!("ledger writer stopped: {e}")))?
            .map_err(|e| EngineError::Unavailable(format!("the provenance ledger: {e}")))
    }

    /// HEAD, for a record's location (cached; see [`HeadCache`]).
    pub(crate) async fn base_commit(&self) -> Option<String> {
        self.head.get(&self.root).await
    }
}
