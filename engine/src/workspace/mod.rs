//! A workspace session: one repository, its index (built and kept live in the
//! background), its ledger, its open documents and the configured models. Front ends
//! (LSP, desktop, terminal) hold one `Arc<Workspace>` and translate their protocol to
//! these calls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chat::{self, Citation, Source};
use crate::completion::{CompletionOptions, Window};
use crate::document::{self, Document};
use crate::indexer::{self, Index, IndexOptions, ProgressPhase, SearchQuery, Watcher};
use crate::models::{
    CancellationToken, ChatMessage, ChatRequest, CompletionRequest, ContextFile, Generation,
    ModelIdentity, Origin as ModelOrigin, Role, Sampling, TokenSink,
};
use crate::provenance::{
    ContextSource, Event, Generator, InputFacts, Ledger, LedgerOptions, Location, Mode, Origin,
    Position, Range, RecordId, SpanTracker, TextChange,
};
use crate::{redact, syntax, Config, Engine, EngineError};

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
        }
    }
}

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

/// How a completion was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The user asked (a key binding): several items are worth the wait.
    Invoked,
    /// As the user types: one item, as fast as possible.
    Automatic,
}

#[derive(Debug, Clone)]
pub struct CompleteRequest {
    /// Path as the editor knows it: absolute, or relative to the repository root.
    pub path: String,
    pub position: Position,
    pub trigger: Trigger,
    /// Items wanted when invoked (automatic requests get one).
    pub max_items: usize,
}

/// One completion shown to the user, with its ledger record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub record_id: String,
    pub text: String,
    /// Where it goes: an empty range at the cursor.
    pub range: Range,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    pub context_ms: f64,
    pub model_ms: f64,
    pub ledger_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub items: Vec<Suggestion>,
    /// Served from an earlier suggestion the user is typing through (no model call).
    pub from_cache: bool,
    pub multiline: bool,
    pub context: Vec<ContextSource>,
    pub timings: Timings,
    /// The model's usage for the first item (none when served from an earlier one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::models::Usage>,
}

/// Where a completion's cross-file context comes from.
#[derive(Debug, Clone, Default)]
pub enum ContextChoice {
    /// The repository index (`context_for`): what editors get.
    #[default]
    Retrieve,
    /// Snippets the caller brings (an extension with its own retrieval, an evaluation).
    Given(Vec<indexer::Snippet>),
    /// No cross-file context.
    Without,
}

/// What a chat turn is for; code actions use the focused kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChatKind {
    #[default]
    Ask,
    Explain,
    Fix,
    WriteTest,
}

#[derive(Debug, Clone, Default)]
pub struct ChatTurn {
    pub question: String,
    pub conversation: Option<String>,
    /// The file and selection the question is about, if any.
    pub path: Option<String>,
    pub range: Option<Range>,
    pub kind: ChatKind,
    pub max_tokens: Option<u32>,
}

/// An edit proposed in a chat answer, with its ledger record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposedEdit {
    pub record_id: String,
    /// Relative to the repository root.
    pub path: String,
    pub range: Range,
    pub new_text: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatAnswer {
    pub conversation_id: String,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub edits: Vec<ProposedEdit>,
    pub sources: Vec<Source>,
    pub model: ModelIdentity,
    pub usage: crate::models::Usage,
    /// Set when the configured model failed and the fallback answered.
    pub fallback: Option<crate::models::Fallback>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: &'static str,
    pub repo: PathBuf,
    pub model: Option<ModelIdentity>,
    pub chat_model: Option<ModelIdentity>,
    pub model_error: Option<String>,
    pub index: IndexState,
    pub ledger: LedgerStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStatus {
    pub path: Option<PathBuf>,
    pub error: Option<String>,
}

/// A suggestion the user has seen, kept until accepted, rejected or evicted.
#[derive(Debug, Clone)]
struct Shown {
    path: String,
    range: Range,
    text: String,
}

/// The last suggestion per document, for typing through it.
#[derive(Debug, Clone)]
struct Recent {
    /// Text just before the cursor when it was made (up to `TAIL` bytes).
    tail: String,
    offset: usize,
    /// The rest of the cursor's line after the cursor.
    after: String,
    text: String,
    record_id: String,
    multiline: bool,
}

/// An accepted suggestion whose text has not reached the document yet.
#[derive(Debug, Clone)]
struct PendingAccept {
    record_id: RecordId,
    range: Range,
    text: String,
}

const TAIL: usize = 2_000;
const SHOWN_CAP: usize = 10_000;

type IndexSlot = Arc<RwLock<Option<Index>>>;
/// When HEAD was last read, and what it was.
type HeadRead = (Instant, Option<String>);

pub struct Workspace {
    root: PathBuf,
    options: WorkspaceOptions,
    models: Result<Engine, String>,
    ledger: Result<Ledger, String>,
    index: IndexSlot,
    index_state: Arc<tokio::sync::watch::Sender<IndexState>>,
    watcher: Arc<Mutex<Option<Watcher>>>,
    stop_indexing: Arc<AtomicBool>,
    docs: Mutex<HashMap<String, Document>>,
    spans: Mutex<SpanTracker>,
    pending_accepts: Mutex<HashMap<String, Vec<PendingAccept>>>,
    shown: Mutex<(HashMap<RecordId, Shown>, VecDeque<RecordId>)>,
    inflight: Mutex<HashMap<String, (u64, CancellationToken)>>,
    requests: std::sync::atomic::AtomicU64,
    recent: Mutex<HashMap<String, Recent>>,
    context_cache: Mutex<HashMap<String, (usize, Vec<indexer::Snippet>)>>,
    conversations: Mutex<HashMap<String, Vec<ChatMessage>>>,
    base_commit: Arc<Mutex<Option<HeadRead>>>,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        self.stop_indexing.store(true, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Workspace {
    /// Opens the repository at `root`: loads the models (blocking: call from
    /// `spawn_blocking` in async code), opens the ledger, and starts indexing in the
    /// background. A model or ledger that cannot be opened is reported by
    /// [`Workspace::status`] and by each call that needs it; the rest keeps working.
    pub fn open(
        root: &Path,
        config: Config,
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
        let models = Engine::open(Some(&root), config).map_err(|e| e.to_string());
        let ledger = Ledger::open(&root, options.ledger.clone()).map_err(|e| e.to_string());
        let (tx, _) = tokio::sync::watch::channel(if options.no_index {
            IndexState::Disabled
        } else {
            IndexState::Opening
        });
        let ws = Arc::new(Workspace {
            root,
            options,
            models,
            ledger,
            index: Arc::new(RwLock::new(None)),
            index_state: Arc::new(tx),
            watcher: Arc::new(Mutex::new(None)),
            stop_indexing: Arc::new(AtomicBool::new(false)),
            docs: Mutex::default(),
            spans: Mutex::default(),
            pending_accepts: Mutex::default(),
            shown: Mutex::default(),
            inflight: Mutex::default(),
            requests: Default::default(),
            recent: Mutex::default(),
            context_cache: Mutex::default(),
            conversations: Mutex::default(),
            base_commit: Arc::default(),
        });
        if !ws.options.no_index {
            ws.start_indexing();
        }
        Ok(ws)
    }

    fn start_indexing(&self) {
        let root = self.root.clone();
        let opts = self.options.index.clone();
        let slot = self.index.clone();
        let state = self.index_state.clone();
        let stop = self.stop_indexing.clone();
        let watch = self.options.watch;
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
                *slot
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(index.clone());
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
                let progress = |p: indexer::Progress| {
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
                        Ok(w) => *lock(&watcher) = Some(w),
                        Err(e) => tracing::warn!("index watcher not started: {e}"),
                    }
                }
            });
        if let Err(e) = spawned {
            self.index_state.send_replace(IndexState::Error {
                message: format!("cannot start the indexing thread: {e}"),
            });
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Index state changes, for progress reports.
    pub fn index_events(&self) -> tokio::sync::watch::Receiver<IndexState> {
        self.index_state.subscribe()
    }

    pub fn index(&self) -> Option<Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn ledger(&self) -> Result<&Ledger, EngineError> {
        self.ledger
            .as_ref()
            .map_err(|e| EngineError::Unavailable(format!("the provenance ledger: {e}")))
    }

    pub fn models(&self) -> Result<&Engine, EngineError> {
        self.models
            .as_ref()
            .map_err(|e| EngineError::Unavailable(e.clone()))
    }

    pub fn status(&self) -> Status {
        let (model, chat_model) = match &self.models {
            Ok(e) => (
                Some(e.router().complete.primary.identity()),
                Some(e.router().chat.primary.identity()),
            ),
            Err(_) => (None, None),
        };
        Status {
            version: env!("CARGO_PKG_VERSION"),
            repo: self.root.clone(),
            model,
            chat_model,
            model_error: self.models.as_ref().err().cloned(),
            index: self.index_state.borrow().clone(),
            ledger: LedgerStatus {
                path: self.ledger.as_ref().ok().map(|l| l.path().to_path_buf()),
                error: self.ledger.as_ref().err().cloned(),
            },
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

    fn abs_path(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    // ---- documents -------------------------------------------------------------

    pub fn open_document(&self, path: &str, version: i32, text: String) {
        let key = self.rel_path(path);
        lock(&self.docs).insert(
            key,
            Document {
                text: Arc::new(text),
                version,
            },
        );
    }

    /// Applies the editor's changes in order. Accepted spans follow the edits and
    /// their changes are written to the ledger. A change outside the document is an
    /// error and the document stays as it was before that change.
    pub fn change_document(
        &self,
        path: &str,
        version: i32,
        changes: &[TextChange],
    ) -> Result<(), EngineError> {
        let key = self.rel_path(path);
        let text = {
            let mut docs = lock(&self.docs);
            let doc = docs.get_mut(&key).ok_or_else(|| {
                EngineError::Input(format!("{path} was changed but never opened"))
            })?;
            let mut spans = lock(&self.spans);
            for c in changes {
                doc.apply(&key, c)
                    .map_err(|e| EngineError::Input(e.to_string()))?;
                spans.apply_change(&key, c);
            }
            doc.version = version;
            doc.text.clone()
        };
        self.resolve_pending_accepts(&key, &text);
        let edited = lock(&self.spans).take_edited_events(&key);
        if !edited.is_empty() {
            if let Ok(ledger) = &self.ledger {
                let ledger = ledger.clone();
                // Span edits are not acknowledged to anyone; write them off the request path.
                std::thread::spawn(move || {
                    if let Err(e) = ledger.append_batch(edited) {
                        tracing::warn!("ledger: edited records not written: {e}");
                    }
                });
            }
        }
        Ok(())
    }

    pub fn close_document(&self, path: &str) {
        let key = self.rel_path(path);
        lock(&self.docs).remove(&key);
        lock(&self.recent).remove(&key);
        lock(&self.context_cache).remove(&key);
        lock(&self.pending_accepts).remove(&key);
        lock(&self.spans).forget(&key);
        if let Some((_, t)) = lock(&self.inflight).remove(&key) {
            t.cancel();
        }
    }

    /// The saved file goes into the index now rather than when the watcher sees it.
    pub async fn save_document(&self, path: &str) {
        let key = self.rel_path(path);
        let (Some(index), Some(text)) = (self.index(), self.doc_text(&key)) else {
            return;
        };
        let abs = self.abs_path(&key);
        let _ = tokio::task::spawn_blocking(move || {
            if index.is_writable() {
                if let Err(e) = index.update_file_text(&abs, &text) {
                    tracing::debug!("index update of {} failed: {e}", abs.display());
                }
            }
        })
        .await;
    }

    fn doc_text(&self, key: &str) -> Option<Arc<String>> {
        lock(&self.docs).get(key).map(|d| d.text.clone())
    }

    fn text_for(&self, key: &str) -> Result<Arc<String>, EngineError> {
        if let Some(t) = self.doc_text(key) {
            return Ok(t);
        }
        let abs = self.abs_path(key);
        std::fs::read_to_string(&abs)
            .map(Arc::new)
            .map_err(|e| EngineError::Input(format!("cannot read {}: {e}", abs.display())))
    }

    // ---- completion ------------------------------------------------------------

    /// Completes at a position. A newer request for the same document cancels this
    /// one; text the user typed through an earlier suggestion is served from it.
    pub async fn complete(
        &self,
        req: CompleteRequest,
        cancel: CancellationToken,
    ) -> Result<Completion, EngineError> {
        self.complete_with(req, cancel, ContextChoice::Retrieve)
            .await
    }

    /// [`Workspace::complete`] with the cross-file context chosen by the caller.
    pub async fn complete_with(
        &self,
        req: CompleteRequest,
        cancel: CancellationToken,
        context: ContextChoice,
    ) -> Result<Completion, EngineError> {
        let started = Instant::now();
        let key = self.rel_path(&req.path);
        let text = self.text_for(&key)?;
        if document::offset_at(&text, req.position).is_none() {
            return Err(EngineError::Input(format!(
                "position {}:{} is past the end of {} ({} lines)",
                req.position.line + 1,
                req.position.character + 1,
                req.path,
                text.lines().count()
            )));
        }
        let ticket = self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some((_, old)) = lock(&self.inflight).insert(key.clone(), (ticket, cancel.clone())) {
            old.cancel();
        }
        let result = self
            .complete_inner(&key, &text, &req, &cancel, started, context)
            .await;
        let mut inflight = lock(&self.inflight);
        if inflight.get(&key).is_some_and(|(t, _)| *t == ticket) {
            inflight.remove(&key);
        }
        result
    }

    async fn complete_inner(
        &self,
        key: &str,
        text: &str,
        req: &CompleteRequest,
        cancel: &CancellationToken,
        started: Instant,
        context: ContextChoice,
    ) -> Result<Completion, EngineError> {
        // Checked by `complete_with` before the request was registered.
        let offset = document::offset_at(text, req.position).unwrap_or(text.len());
        // Typing through serves automatic requests; an invoked one wants fresh candidates.
        let cached = match req.trigger {
            Trigger::Automatic => self.typed_through(key, text, offset, req.position),
            Trigger::Invoked => None,
        };
        if let Some(hit) = cached {
            let mut hit = hit;
            hit.timings.total_ms = ms(started.elapsed());
            return Ok(hit);
        }
        let engine = self.models()?;
        let prepared = self.prepare(key, text, offset, context).await;
        let t_model = Instant::now();
        let n = match req.trigger {
            Trigger::Automatic => 1,
            Trigger::Invoked => req.max_items.clamp(1, 5),
        };
        let mut outputs: Vec<(String, Generation)> = Vec::new();
        for i in 0..n {
            if cancel.is_cancelled() {
                break;
            }
            let mut creq = prepared.request.clone();
            if i > 0 {
                creq.sampling = Sampling {
                    temperature: 0.7,
                    seed: i as u32,
                    ..Sampling::default()
                };
            }
            let g = match engine
                .router()
                .complete
                .complete(creq, None, cancel.clone())
                .await
            {
                Ok(g) => g,
                Err(e) if i > 0 => {
                    tracing::debug!("extra completion item failed: {e}");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let out = prepared.finish(&g.text);
            if !out.is_empty() && !outputs.iter().any(|(t, _)| *t == out) {
                outputs.push((out, g));
            }
        }
        if cancel.is_cancelled() {
            return Err(EngineError::Model(crate::models::ModelError::Cancelled));
        }
        let usage = outputs.first().map(|(_, g)| g.usage.clone());
        let model_ms = ms(t_model.elapsed());
        let t_ledger = Instant::now();
        let at = document::position_at(text, offset);
        let range = Range::new(at, at);
        let base_commit = self.base_commit().await;
        let events: Vec<Event> = outputs
            .iter()
            .map(|(out, g)| Event::Suggested {
                generator: generator_of(g),
                input: InputFacts {
                    mode: Mode::Fim,
                    template_digest: g.prompt.template_sha256.clone(),
                    prompt: prepared.prompt_text(),
                    store_prompt: false,
                    context: prepared.sources.clone(),
                    redactions: prepared.redactions.clone(),
                },
                output: out.clone(),
                location: Location {
                    base_commit: base_commit.clone(),
                    path: key.to_string(),
                    range,
                },
            })
            .collect();
        let ids = self.append(events).await?;
        let ledger_ms = ms(t_ledger.elapsed());
        let items: Vec<Suggestion> = outputs
            .into_iter()
            .zip(ids)
            .map(|((out, _), id)| {
                self.remember_shown(id, key, range, &out);
                Suggestion {
                    record_id: id.to_string(),
                    text: out,
                    range,
                }
            })
            .collect();
        if let Some(first) = items.first() {
            let tail_start = floor(text, offset.saturating_sub(TAIL));
            lock(&self.recent).insert(
                key.to_string(),
                Recent {
                    tail: text[tail_start..offset].to_string(),
                    offset,
                    after: line_after(text, offset).to_string(),
                    text: first.text.clone(),
                    record_id: first.record_id.clone(),
                    multiline: prepared.shape.multiline,
                },
            );
        }
        tracing::debug!(
            path = key,
            items = items.len(),
            context_ms = prepared.context_ms,
            model_ms,
            ledger_ms,
            total_ms = ms(started.elapsed()),
            "completion"
        );
        Ok(Completion {
            items,
            from_cache: false,
            multiline: prepared.shape.multiline,
            context: prepared.sources,
            timings: Timings {
                context_ms: prepared.context_ms,
                model_ms,
                ledger_ms,
                total_ms: ms(started.elapsed()),
            },
            usage,
        })
    }

    /// The model request a completion at `position` of `path` would send, without
    /// sending it (benchmarks compare against the model layer with it).
    pub async fn completion_request(
        &self,
        path: &str,
        position: Position,
    ) -> Result<CompletionRequest, EngineError> {
        let key = self.rel_path(path);
        let text = self.text_for(&key)?;
        let offset = document::offset_at(&text, position)
            .ok_or_else(|| EngineError::Input(format!("position past the end of {path}")))?;
        Ok(self
            .prepare(&key, &text, offset, ContextChoice::Retrieve)
            .await
            .request)
    }

    async fn prepare(
        &self,
        key: &str,
        text: &str,
        offset: usize,
        context: ContextChoice,
    ) -> Prepared {
        let opts = &self.options.completion;
        let mut window = Window::cut(text, offset, opts);
        let window_text = format!("{}{}", window.prefix, window.suffix);
        let shape = syntax::shape_at(key, &window_text, window.prefix.len());
        window.multiline = shape.multiline;
        let mut request = window.request(key, opts);
        let t_ctx = Instant::now();
        let snippets = match context {
            ContextChoice::Retrieve => self.context_snippets(key, text, offset).await,
            ContextChoice::Given(given) => fit_snippets(given, self.options.context_chars),
            ContextChoice::Without => Vec::new(),
        };
        let context_ms = ms(t_ctx.elapsed());
        let sources: Vec<ContextSource> = snippets
            .iter()
            .map(|s| {
                let retriever = format!("{:?}", s.kind).to_lowercase();
                context_source(
                    &s.path,
                    s.start_line,
                    s.end_line,
                    &s.text,
                    retriever,
                    s.score,
                )
            })
            .collect();
        request.context = snippets
            .into_iter()
            .map(|s| ContextFile {
                path: s.path,
                text: s.text,
            })
            .collect();
        let mut redactions = BTreeMap::new();
        if self.completion_goes_remote() {
            let mut scrub = |t: &mut String, path: Option<&str>| {
                let r = redact::redact(t, path);
                for (k, v) in r.kinds {
                    *redactions.entry(k.to_string()).or_insert(0) += v;
                }
                *t = r.text;
            };
            scrub(&mut request.prefix, Some(key));
            scrub(&mut request.suffix, Some(key));
            for c in &mut request.context {
                let path = c.path.clone();
                scrub(&mut c.text, Some(&path));
            }
        }
        Prepared {
            request,
            window,
            shape,
            sources,
            context_ms,
            redactions,
        }
    }

    fn completion_goes_remote(&self) -> bool {
        self.models
            .as_ref()
            .is_ok_and(|e| route_is_remote(&e.router().complete))
    }

    fn chat_goes_remote(&self) -> bool {
        self.models
            .as_ref()
            .is_ok_and(|e| route_is_remote(&e.router().chat))
    }

    /// Retrieved context for a completion. Kept for the same region of a document so
    /// consecutive requests share a prompt prefix (and the model's KV cache).
    async fn context_snippets(
        &self,
        key: &str,
        text: &str,
        offset: usize,
    ) -> Vec<indexer::Snippet> {
        let Some(index) = self.index() else {
            return Vec::new();
        };
        let budget = self.options.context_chars;
        if budget == 0 {
            return Vec::new();
        }
        let line = text[..offset].matches('\n').count();
        let region = line / 40;
        if let Some((r, cached)) = lock(&self.context_cache).get(key) {
            if *r == region {
                return cached.clone();
            }
        }
        // The whole document, so the region excluded from the results is in the same
        // line numbers as the index's chunks of this file.
        let doc = text.to_string();
        let abs = self.abs_path(key);
        let found =
            tokio::task::spawn_blocking(move || index.context_for(&abs, &doc, offset, budget))
                .await;
        let snippets = match found {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!("context_for {key}: {e}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        lock(&self.context_cache).insert(key.to_string(), (region, snippets.clone()));
        snippets
    }

    fn typed_through(
        &self,
        key: &str,
        text: &str,
        offset: usize,
        position: Position,
    ) -> Option<Completion> {
        let recent = lock(&self.recent).get(key).cloned()?;
        if offset < recent.offset || recent.offset > text.len() {
            return None;
        }
        let tail_start = recent.offset.checked_sub(recent.tail.len())?;
        if text.get(tail_start..recent.offset)? != recent.tail {
            return None;
        }
        let typed = text.get(recent.offset..offset)?;
        let rest = recent.text.strip_prefix(typed)?;
        if rest.trim().is_empty() || line_after(text, offset) != recent.after {
            return None;
        }
        let range = Range::new(position, position);
        Some(Completion {
            items: vec![Suggestion {
                record_id: recent.record_id,
                text: rest.to_string(),
                range,
            }],
            from_cache: true,
            multiline: recent.multiline,
            context: Vec::new(),
            timings: Timings::default(),
            usage: None,
        })
    }

    fn remember_shown(&self, id: RecordId, path: &str, range: Range, text: &str) {
        let mut shown = lock(&self.shown);
        let (map, order) = &mut *shown;
        map.insert(
            id,
            Shown {
                path: path.to_string(),
                range,
                text: text.to_string(),
            },
        );
        order.push_back(id);
        while order.len() > SHOWN_CAP {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    async fn append(&self, events: Vec<Event>) -> Result<Vec<RecordId>, EngineError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ledger = self.ledger()?.clone();
        tokio::task::spawn_blocking(move || ledger.append_batch(events))
            .await
            .map_err(|e| EngineError::Unavailable(format!("ledger writer stopped: {e}")))?
            .map_err(|e| EngineError::Unavailable(format!("the provenance ledger: {e}")))
    }

    /// HEAD, for the record's location. Read once, then refreshed in the background
    /// when older than a few seconds, so no request waits on git after the first.
    async fn base_commit(&self) -> Option<String> {
        fn read_head(root: &Path) -> Option<String> {
            std::process::Command::new("git")
                .arg("-C")
                .arg(root)
                .args(["rev-parse", "--verify", "-q", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        }
        let cached = lock(&self.base_commit).clone();
        if let Some((at, c)) = cached {
            if at.elapsed() >= Duration::from_secs(5) {
                // Mark fresh now so one refresh runs at a time.
                *lock(&self.base_commit) = Some((Instant::now(), c.clone()));
                let root = self.root.clone();
                let slot = self.base_commit.clone();
                tokio::task::spawn_blocking(move || {
                    let head = read_head(&root);
                    *lock(&slot) = Some((Instant::now(), head));
                });
            }
            return c;
        }
        let root = self.root.clone();
        let c = tokio::task::spawn_blocking(move || read_head(&root))
            .await
            .ok()
            .flatten();
        *lock(&self.base_commit) = Some((Instant::now(), c.clone()));
        c
    }

    // ---- accept / reject -------------------------------------------------------

    fn parse_id(record_id: &str) -> Result<RecordId, EngineError> {
        record_id
            .parse()
            .map_err(|_| EngineError::Input(format!("{record_id:?} is not a record id")))
    }

    /// The user accepted a suggestion (`partial`: only part of it, `final_text`).
    /// Its span is followed through later edits of the document.
    pub async fn accept(
        &self,
        record_id: &str,
        partial: bool,
        final_text: Option<String>,
    ) -> Result<(), EngineError> {
        let id = Self::parse_id(record_id)?;
        let shown = lock(&self.shown).0.get(&id).cloned().ok_or_else(|| {
            EngineError::Input(format!(
                "no suggestion {record_id} is waiting for a decision in this session"
            ))
        })?;
        let text = final_text.unwrap_or_else(|| shown.text.clone());
        let range = Range::new(
            shown.range.start,
            document::end_after(shown.range.start, &text),
        );
        self.append(vec![Event::Accepted {
            record_id: id,
            partial,
            final_text: text.clone(),
            location: Location {
                base_commit: self.base_commit().await,
                path: shown.path.clone(),
                range,
            },
        }])
        .await?;
        {
            let mut s = lock(&self.shown);
            s.0.remove(&id);
        }
        lock(&self.recent).retain(|_, r| r.record_id != record_id);
        lock(&self.pending_accepts)
            .entry(shown.path.clone())
            .or_default()
            .push(PendingAccept {
                record_id: id,
                range,
                text,
            });
        if let Some(t) = self.doc_text(&shown.path) {
            self.resolve_pending_accepts(&shown.path, &t);
        }
        Ok(())
    }

    /// Starts following accepted spans once their text is in the document (editors
    /// insert before or after they report acceptance).
    fn resolve_pending_accepts(&self, key: &str, text: &str) {
        let mut pending = lock(&self.pending_accepts);
        let Some(list) = pending.get_mut(key) else {
            return;
        };
        list.retain(|p| {
            let s = document::offset_at(text, p.range.start);
            let e = document::offset_at(text, p.range.end);
            let present =
                matches!((s, e), (Some(s), Some(e)) if text.get(s..e) == Some(p.text.as_str()));
            if present {
                lock(&self.spans).track(p.record_id, key, p.range, &p.text);
            }
            !present
        });
    }

    pub async fn reject(&self, record_id: &str, reason: &str) -> Result<(), EngineError> {
        let id = Self::parse_id(record_id)?;
        if lock(&self.shown).0.remove(&id).is_none() {
            return Err(EngineError::Input(format!(
                "no suggestion {record_id} is waiting for a decision in this session"
            )));
        }
        lock(&self.recent).retain(|_, r| r.record_id != record_id);
        self.append(vec![Event::Rejected {
            record_id: id,
            reason: reason.to_string(),
        }])
        .await?;
        Ok(())
    }

    // ---- chat ------------------------------------------------------------------

    /// One chat turn over the repository: retrieval → numbered sources → streamed
    /// answer → citations and proposed edits (each with a `suggested` record).
    pub async fn chat(
        &self,
        turn: ChatTurn,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> Result<ChatAnswer, EngineError> {
        if turn.question.trim().is_empty() && turn.kind == ChatKind::Ask {
            return Err(EngineError::Input("the question is empty".into()));
        }
        let engine = self.models()?;
        let conversation_id = turn
            .conversation
            .clone()
            .unwrap_or_else(|| uuid_like(&turn.question));
        let history = lock(&self.conversations)
            .get(&conversation_id)
            .cloned()
            .unwrap_or_default();

        // The focused selection, if any.
        let focus_key = turn.path.as_deref().map(|p| self.rel_path(p));
        let focus = match (&focus_key, turn.range) {
            (Some(k), Some(r)) => {
                let text = self.text_for(k)?;
                let s = document::offset_at(&text, r.start).ok_or_else(|| {
                    EngineError::Input(format!("the selection starts past the end of {k}"))
                })?;
                let e = document::offset_at(&text, r.end).unwrap_or(text.len());
                let (s, e) = (s.min(e), s.max(e));
                // Whole lines: an edit replaces them.
                let s = text[..s].rfind('\n').map_or(0, |i| i + 1);
                let e = if e > s && text[..e].ends_with('\n') {
                    e
                } else {
                    text[e..].find('\n').map_or(text.len(), |i| e + i + 1)
                };
                Some((k.clone(), s, e, text[s..e].to_string(), text))
            }
            _ => None,
        };
        let question = match turn.kind {
            ChatKind::Ask => turn.question.clone(),
            ChatKind::Explain => format!(
                "Explain what the selected code does and anything surprising in it. {}",
                turn.question
            ),
            ChatKind::Fix => format!(
                "Find the bug in the selected code and fix it. Reply with a short explanation, then the corrected code for the whole selection in one fenced code block. {}",
                turn.question
            ),
            ChatKind::WriteTest => format!(
                "Write a unit test for the selected code, in the file's language and test style. Reply with the test in one fenced code block. {}",
                turn.question
            ),
        };
        let query = match &focus {
            Some((_, _, _, sel, _)) => format!("{question}\n{sel}"),
            None => question.clone(),
        };
        let sources = self.chat_sources(&query).await;
        let focus_arg = focus.as_ref().map(|(k, s, _, sel, text)| {
            (
                k.as_str(),
                text[..*s].matches('\n').count() + 1,
                sel.as_str(),
            )
        });
        let mut user = chat::user_turn(&sources, focus_arg, &question);
        let mut redactions = BTreeMap::new();
        let mut messages = chat::messages(&history, user.clone());
        if self.chat_goes_remote() {
            for m in &mut messages {
                let r = redact::redact(&m.content, None);
                for (k, v) in r.kinds {
                    *redactions.entry(k.to_string()).or_insert(0) += v;
                }
                m.content = r.text;
            }
            user = messages.last().map(|m| m.content.clone()).unwrap_or(user);
        }
        let mut req = ChatRequest::new(messages);
        req.max_tokens = turn.max_tokens.unwrap_or(512);
        let g = engine.router().chat.chat(req, sink, cancel).await?;
        let answer = g.text.trim().to_string();
        let citations = chat::citations(&answer, &sources);

        // Proposed edits: labelled blocks with a target inside the repository, or the
        // first code block for a Fix (replaces the selection) / WriteTest (goes after it).
        let mut raw: Vec<(String, Range, String)> = Vec::new();
        let blocks = chat::code_blocks(&answer);
        for b in blocks.iter().filter(|b| b.labelled) {
            let path = match (&b.path, &focus_key) {
                (Some(p), _) => p.clone(),
                (None, Some(k)) => k.clone(),
                (None, None) => continue,
            };
            let Some(rel) = self.inside_repo(&path) else {
                tracing::info!("dropping an edit for {path}: outside the repository");
                continue;
            };
            let text = match self.text_for(&rel) {
                Ok(t) => t,
                Err(_) => Arc::new(String::new()),
            };
            let range = match b.lines {
                Some((a, z)) => line_range(&text, a, z),
                None => match &focus {
                    Some((k, s, e, _, t)) if *k == rel => {
                        Range::new(document::position_at(t, *s), document::position_at(t, *e))
                    }
                    _ => continue,
                },
            };
            raw.push((rel, range, b.text.clone()));
        }
        if raw.is_empty() {
            if let (Some((k, s, e, _, t)), Some(b)) = (&focus, blocks.first()) {
                match turn.kind {
                    ChatKind::Fix => raw.push((
                        k.clone(),
                        Range::new(document::position_at(t, *s), document::position_at(t, *e)),
                        b.text.clone(),
                    )),
                    ChatKind::WriteTest => {
                        let at = document::position_at(t, *e);
                        raw.push((k.clone(), Range::new(at, at), format!("\n{}", b.text)));
                    }
                    _ => {}
                }
            }
        }
        let base_commit = self.base_commit().await;
        let ctx: Vec<ContextSource> = sources
            .iter()
            .map(|s| {
                let retriever = s.retriever.clone();
                context_source(
                    &s.path,
                    s.start_line,
                    s.end_line,
                    &s.text,
                    retriever,
                    s.score,
                )
            })
            .collect();
        let events: Vec<Event> = raw
            .iter()
            .map(|(path, range, new_text)| Event::Suggested {
                generator: generator_of(&g),
                input: InputFacts {
                    mode: Mode::Chat,
                    template_digest: g.prompt.template_sha256.clone(),
                    prompt: user.clone(),
                    store_prompt: false,
                    context: ctx.clone(),
                    redactions: redactions.clone(),
                },
                output: new_text.clone(),
                location: Location {
                    base_commit: base_commit.clone(),
                    path: path.clone(),
                    range: *range,
                },
            })
            .collect();
        let ids = self.append(events).await?;
        let edits: Vec<ProposedEdit> = raw
            .into_iter()
            .zip(ids)
            .map(|((path, range, new_text), id)| {
                self.remember_shown(id, &path, range, &new_text);
                ProposedEdit {
                    record_id: id.to_string(),
                    path,
                    range,
                    new_text,
                }
            })
            .collect();
        {
            let mut conv = lock(&self.conversations);
            let h = conv.entry(conversation_id.clone()).or_default();
            h.push(ChatMessage::new(Role::User, question));
            h.push(ChatMessage::new(Role::Assistant, answer.clone()));
            // Bounded history: the last 8 turns.
            let excess = h.len().saturating_sub(16);
            h.drain(..excess);
        }
        Ok(ChatAnswer {
            conversation_id,
            answer,
            citations,
            edits,
            sources,
            model: g.model.clone(),
            usage: g.usage.clone(),
            fallback: g.fallback.clone(),
        })
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

    /// The numbered sources a chat turn on `query` is grounded in (what the answer
    /// can cite), best first, within the chat source budget.
    pub async fn chat_sources(&self, query: &str) -> Vec<Source> {
        let Some(index) = self.index() else {
            return Vec::new();
        };
        // One hit per file and no source larger than a quarter of the budget: a long
        // function must not crowd out the other files an answer may need.
        let mut q = SearchQuery::new(query);
        q.limit = 8;
        q.max_per_file = 1;
        let hits = tokio::task::spawn_blocking(move || index.search(&q))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut budget = self.options.chat_source_chars;
        let per_source = (budget / 4).max(400);
        let mut out = Vec::new();
        for h in hits {
            if budget < 200 {
                break;
            }
            let cap = budget.min(per_source);
            let (text, end_line) = if h.text.len() > cap {
                // Whole lines, and the cited range says which ones were shown.
                let cut = floor(&h.text, cap);
                let cut = h.text[..cut].rfind('\n').map_or(cut, |i| i + 1);
                let text = h.text[..cut].to_string();
                let shown = text.lines().count().max(1);
                (text, (h.start_line + shown - 1).min(h.end_line))
            } else {
                (h.text.clone(), h.end_line)
            };
            budget = budget.saturating_sub(text.len());
            out.push(Source {
                n: out.len() + 1,
                path: h.path,
                start_line: h.start_line,
                end_line,
                text,
                score: h.score,
                retriever: h
                    .why
                    .iter()
                    .map(|w| w.retriever.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
            });
        }
        out
    }

    pub fn forget_conversation(&self, id: &str) {
        lock(&self.conversations).remove(id);
    }
}

/// Caller-given snippets in their order, as many as fit in `budget` characters (the
/// first always, cut to the budget if it alone is larger).
fn fit_snippets(given: Vec<indexer::Snippet>, budget: usize) -> Vec<indexer::Snippet> {
    let mut left = budget;
    let mut out = Vec::new();
    for mut s in given {
        if left == 0 {
            break;
        }
        if s.text.len() > left {
            if !out.is_empty() {
                break;
            }
            s.text.truncate(floor(&s.text, left));
        }
        left -= s.text.len();
        out.push(s);
    }
    out
}

struct Prepared {
    request: CompletionRequest,
    window: Window,
    shape: syntax::Shape,
    sources: Vec<ContextSource>,
    context_ms: f64,
    redactions: BTreeMap<String, usize>,
}

impl Prepared {
    fn finish(&self, raw: &str) -> String {
        let mut out = raw.to_string();
        // The cursor already sits at the line's indentation: a model that indents
        // again would shift the line.
        let before = self.window.prefix.rsplit('\n').next().unwrap_or("");
        if before.trim().is_empty() && self.shape.multiline {
            // On a blank line the block starts here, not after blank lines.
            out = out.trim_start_matches(['\n', '\r']).to_string();
        }
        if !before.is_empty() && before.trim().is_empty() {
            out = out.trim_start_matches([' ', '\t']).to_string();
        }
        if self.shape.multiline {
            out = syntax::cut_to_scope(&out, &self.shape, &self.window.suffix);
        } else {
            out = out.split('\n').next().unwrap_or("").to_string();
            out = syntax::balance_line(&out, line_after(&self.window.suffix, 0));
        }
        crate::completion::postprocess(&out, &self.window)
    }

    /// What the commitment in the ledger covers: context, prefix, cursor, suffix.
    fn prompt_text(&self) -> String {
        let mut s = String::new();
        for c in &self.request.context {
            s.push_str(&c.path);
            s.push('\n');
            s.push_str(&c.text);
            s.push('\n');
        }
        s.push_str(&self.request.prefix);
        s.push_str("<cursor>");
        s.push_str(&self.request.suffix);
        s
    }
}

fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn line_after(text: &str, offset: usize) -> &str {
    let rest = &text[offset.min(text.len())..];
    rest.split('\n').next().unwrap_or("")
}

/// The range of 1-based inclusive lines `a..=z` (clamped to the text), whole lines.
fn line_range(text: &str, a: usize, z: usize) -> Range {
    let lines = text.split_inclusive('\n').count();
    let a = a.clamp(1, lines.max(1));
    let z = z.clamp(a, lines.max(1));
    let start = Position::new((a - 1) as u32, 0);
    let end = if z >= lines {
        document::position_at(text, text.len())
    } else {
        Position::new(z as u32, 0)
    };
    Range::new(start, end)
}

fn generator_of(g: &Generation) -> Generator {
    let id = &g.model;
    let mut sampling = BTreeMap::new();
    sampling.insert(
        "temperature".into(),
        serde_json::json!(g.sampling.temperature),
    );
    sampling.insert("topK".into(), serde_json::json!(g.sampling.top_k));
    sampling.insert("topP".into(), serde_json::json!(g.sampling.top_p));
    sampling.insert("seed".into(), serde_json::json!(g.sampling.seed));
    if let Some(q) = &id.quantization {
        sampling.insert("quantization".into(), serde_json::json!(q));
    }
    if let Some(f) = &g.fallback {
        sampling.insert("fallbackFrom".into(), serde_json::json!(f.from));
    }
    let remote = id.origin == ModelOrigin::Remote;
    Generator {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        model_id: id.name.clone(),
        origin: if remote {
            Origin::Remote
        } else {
            Origin::Local
        },
        gguf_sha256: id.gguf_sha256.clone(),
        endpoint: id.endpoint.clone(),
        remote_model: remote.then(|| id.model_id.clone()),
        runtime: Some(id.runtime.clone()),
        sampling,
    }
}

/// Whether any model of the route (primary or fallback) is behind a remote API, so its
/// prompts must be redacted.
fn route_is_remote(route: &crate::models::router::Route) -> bool {
    std::iter::once(&route.primary)
        .chain(route.fallback.as_ref())
        .any(|b| b.identity().origin == ModelOrigin::Remote)
}

/// A retrieved snippet as the record names it (the text only as its digest).
fn context_source(
    path: &str,
    start_line: usize,
    end_line: usize,
    text: &str,
    retriever: String,
    score: f32,
) -> ContextSource {
    ContextSource {
        path: path.to_string(),
        start_line: start_line as u32,
        end_line: end_line as u32,
        content_digest: sha256_hex(text.as_bytes()),
        retriever,
        score: f64::from(score),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A conversation id: time-ordered and unique enough within a user's sessions.
fn uuid_like(seed: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = sha256_hex(format!("{nanos}:{seed}:{}", std::process::id()).as_bytes());
    format!("c-{}", &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges_clamp_and_cover_whole_lines() {
        let t = "a\nb\nc\n";
        assert_eq!(
            line_range(t, 2, 2),
            Range::new(Position::new(1, 0), Position::new(2, 0))
        );
        assert_eq!(
            line_range(t, 2, 99),
            Range::new(Position::new(1, 0), Position::new(3, 0))
        );
    }

    fn snippet(path: &str, text: &str) -> indexer::Snippet {
        indexer::Snippet {
            path: path.into(),
            start_line: 1,
            end_line: 1,
            text: text.into(),
            score: 1.0,
            kind: indexer::SnippetKind::Similar,
            reason: String::new(),
        }
    }

    #[test]
    fn given_snippets_fit_the_budget_in_their_order() {
        let given = vec![
            snippet("a", "aaaa"),
            snippet("b", "bbbb"),
            snippet("c", "cc"),
        ];
        let kept: Vec<String> = fit_snippets(given.clone(), 9)
            .into_iter()
            .map(|s| s.path)
            .collect();
        // "c" would fit after "b" is dropped, but order is the caller's ranking.
        assert_eq!(kept, ["a", "b"]);
        let cut = fit_snippets(vec![snippet("big", "é123456789")], 5);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].text.len() <= 5 && cut[0].text.starts_with('é'));
        assert!(fit_snippets(given, 0).is_empty());
    }
}
