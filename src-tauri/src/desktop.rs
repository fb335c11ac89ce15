//! What the window's commands do, without the window: one open repository
//! (`cairn_engine::Workspace`), its chat turns and the edits they proposed, the
//! provenance view and the settings. Events (index progress, streamed answers) go to
//! an [`EventSink`]: the Tauri app passes the window, tests pass a recorder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_engine::config::{user_config_path, Config};
use cairn_engine::{
    CancellationToken, ChatKind, ChatTurn, CitationMark, EngineError, IndexState, LedgerSummary,
    ModelIdentity, ModelOrigin as Origin, Position, Range, ReportData, ReportFormat, StreamEvent,
    Workspace, WorkspaceOptions,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::editor::{Launcher, OpenedView};
use crate::error::{DesktopError, ErrorKind, Result};
use crate::files::{self, Lines};
use crate::settings::{self, SettingsForm, SettingsView};
use crate::sharing::{EditorsView, EngineSharing};

/// Where the window's events go.
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: &str, payload: Value);
}

/// Event names the UI listens to.
pub mod events {
    /// `{generation, index}`: the index state of the open repository.
    pub const INDEX: &str = "index-progress";
    /// `{requestId, text}`: more text of a streamed answer.
    pub const CHAT_DELTA: &str = "chat-delta";
    /// `{requestId, reason}`: the text so far is void (the router fell back).
    pub const CHAT_RESET: &str = "chat-reset";
}

#[derive(Clone)]
pub struct DesktopOptions {
    /// The user config file the settings form edits.
    pub user_config: PathBuf,
    /// Recent repositories (JSON); `None` keeps no list.
    pub state_file: Option<PathBuf>,
    pub workspace: WorkspaceOptions,
    /// The `cairn lsp --remote auto` daemon socket the app serves while a repository is
    /// open, so editors share its engine; `None` serves none.
    pub editor_socket: Option<PathBuf>,
    /// How "Open in editor" starts the person's editor.
    pub launcher: Launcher,
}

impl DesktopOptions {
    /// The user's own files, as `cairn` uses them.
    pub fn for_user() -> DesktopOptions {
        let dirs = directories::ProjectDirs::from("", "", "cairn");
        DesktopOptions {
            user_config: user_config_path().unwrap_or_else(|| PathBuf::from("cairn-config.toml")),
            state_file: dirs.map(|d| d.data_dir().join("desktop.json")),
            workspace: WorkspaceOptions::default(),
            editor_socket: Some(cairn_lsp::shared::default_socket_path()),
            launcher: Launcher::from_env(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    pub name: String,
    pub origin: Origin,
    pub model_id: String,
    pub endpoint: Option<String>,
    pub quantization: Option<String>,
    pub sha256: Option<String>,
    pub runtime: String,
}

impl From<&ModelIdentity> for ModelView {
    fn from(m: &ModelIdentity) -> Self {
        ModelView {
            name: m.name.clone(),
            origin: m.origin,
            model_id: m.model_id.clone(),
            endpoint: m.endpoint.clone(),
            quantization: m.quantization.clone(),
            sha256: m.gguf_sha256.clone(),
            runtime: m.runtime.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub repo: String,
    pub version: String,
    pub files: Option<u64>,
    pub languages: BTreeMap<String, u64>,
    pub chat_model: Option<ModelView>,
    pub complete_model: Option<ModelView>,
    /// `local` or `remote` (of the chat model), `none` when no model loaded.
    pub backend: String,
    pub model_error: Option<DesktopError>,
    pub index: IndexState,
    pub ledger_path: Option<String>,
    pub ledger_error: Option<String>,
    pub gpu_backend: Option<String>,
    /// Whether editors (`cairn lsp --remote auto`) reach this window's engine.
    pub editors: EditorsView,
    /// The focused chat kinds (Explain, Fix …) the side panel offers, from the engine's
    /// table: a new kind appears without a change here or in the window.
    pub chat_kinds: Vec<ChatKindView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatKindView {
    pub name: String,
    pub button: String,
}

fn focused_kinds() -> Vec<ChatKindView> {
    cairn_engine::CHAT_KINDS
        .iter()
        .filter(|k| k.needs_selection)
        .map(|k| ChatKindView {
            name: k.name.to_string(),
            button: k.button.to_string(),
        })
        .collect()
}

/// A chat turn as the window asks it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChatRequest {
    /// Chosen by the window; deltas carry it.
    pub request_id: String,
    pub question: String,
    pub conversation: Option<String>,
    /// `ask` (default), `explain`, `fix` or `test`.
    pub kind: Option<String>,
    /// The selection the question is about: a repository path and 1-based lines.
    pub path: Option<String>,
    pub start_line: Option<u32>,
    pub end_line: Option<u32>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditView {
    pub record_id: String,
    pub path: String,
    /// 1-based lines of the file the edit replaces (an insertion has `end < start`).
    pub start_line: u32,
    pub end_line: u32,
    pub new_text: String,
    /// The file before and after, for the diff (absent for files over the size limit).
    pub old_file: Option<String>,
    pub new_file: Option<String>,
    /// Why it cannot be applied, when it cannot.
    pub problem: Option<String>,
    pub model: ModelView,
    /// The sources the model was given, as `path:start-end`.
    pub context_files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatView {
    pub request_id: String,
    pub conversation_id: String,
    pub answer: String,
    pub citations: Vec<cairn_engine::Citation>,
    /// Where each citation stands in `answer` (UTF-16 offsets): the window links these.
    pub citation_marks: Vec<CitationMark>,
    pub sources: Vec<cairn_engine::Source>,
    /// Why the answer has no repository sources, when retrieval failed.
    pub sources_error: Option<String>,
    pub edits: Vec<EditView>,
    pub model: ModelView,
    /// From the command's start: first streamed text, and the whole turn.
    pub first_token_ms: Option<f64>,
    pub total_ms: f64,
    pub usage: UsageView,
    /// The model that was asked, when another (the fallback) answered.
    pub fallback_from: Option<String>,
}

/// The model's side of a turn.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    pub prompt_tokens: u32,
    /// Prompt tokens whose state the model kept from the previous request.
    pub reused_prompt_tokens: u32,
    pub generated_tokens: u32,
    /// From the model request to its first token (prompt evaluation included).
    pub model_first_token_ms: Option<f64>,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedView {
    pub record_id: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceView {
    /// Committed, attested lines (from git notes); `None` with `reportError` when the
    /// range cannot be read (no commits yet, say).
    pub report: Option<ReportData>,
    pub report_error: Option<DesktopError>,
    /// Suggestions and decisions in this repository's ledger, committed or not.
    pub ledger: LedgerSummary,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportView {
    pub path: String,
    pub bytes: usize,
    pub format: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditorSetup {
    /// The bundled `cairn` binary, when found.
    pub cairn: Option<String>,
    /// Where the binary was found: `bundled` (next to the app), `build` (cargo's target
    /// folder), `path` or `none`.
    pub found: String,
    pub neovim: String,
    pub vscode: String,
}

/// An edit waiting for Apply or Dismiss.
#[derive(Debug, Clone)]
struct PendingEdit {
    path: String,
    old_file: String,
    new_file: Option<String>,
    start_line: u32,
    end_line: u32,
}

struct Session {
    ws: Arc<Workspace>,
}

pub struct Desktop {
    opts: DesktopOptions,
    session: RwLock<Option<Session>>,
    generation: Arc<AtomicU64>,
    edits: Mutex<HashMap<String, PendingEdit>>,
    chats: Mutex<HashMap<String, CancellationToken>>,
    sharing: Option<EngineSharing>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// How long streamed text is held after the first delta, to send it in one event.
const DELTA_BATCH: Duration = Duration::from_millis(80);

/// Whether a file of this size is diffed whole in the window.
const MAX_DIFF_BYTES: usize = 512 * 1024;

impl Desktop {
    pub fn new(opts: DesktopOptions) -> Desktop {
        Desktop {
            sharing: opts.editor_socket.clone().map(EngineSharing::new),
            opts,
            session: RwLock::new(None),
            generation: Arc::new(AtomicU64::new(0)),
            edits: Mutex::default(),
            chats: Mutex::default(),
        }
    }

    pub fn options(&self) -> &DesktopOptions {
        &self.opts
    }

    /// The open workspace.
    pub fn workspace(&self) -> Result<Arc<Workspace>> {
        self.session
            .read()
            .as_ref()
            .map(|s| s.ws.clone())
            .ok_or_else(DesktopError::no_repository)
    }

    // ---- repository ----------------------------------------------------------------

    /// Checks a folder the person typed or picked: it exists, is a folder, can be read.
    pub fn check_folder(path: &str) -> Result<PathBuf> {
        let trimmed = path.trim();
        if trimmed.is_empty() {
            return Err(DesktopError::new(
                ErrorKind::Input,
                "No folder was given",
                "Type or paste the path of a repository folder",
            ));
        }
        let p = match trimmed.strip_prefix("~/") {
            Some(rest) => directories::BaseDirs::new()
                .map(|b| b.home_dir().join(rest))
                .unwrap_or_else(|| PathBuf::from(trimmed)),
            None => PathBuf::from(trimmed),
        };
        let meta = std::fs::metadata(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DesktopError::new(
                ErrorKind::NotFound,
                format!("There is no folder at {}", p.display()),
                "Check the path for typos, or pick the folder from the recent list",
            ),
            std::io::ErrorKind::PermissionDenied => DesktopError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "Cairn cannot reach {}: permission denied on a folder above it",
                    p.display()
                ),
                "Give your user access to the folders on the way (chmod u+x), or open another folder",
            ),
            _ => DesktopError::io("open", &p, &e),
        })?;
        if !meta.is_dir() {
            return Err(DesktopError::new(
                ErrorKind::NotADirectory,
                format!("{} is a file, not a folder", p.display()),
                "Open the repository's top folder instead",
            ));
        }
        if let Err(e) = std::fs::read_dir(&p) {
            return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
                DesktopError::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "Cairn cannot read the folder {}: permission denied",
                        p.display()
                    ),
                    format!(
                        "Give your user read access (chmod u+rx {}), or open another folder",
                        p.display()
                    ),
                )
            } else {
                DesktopError::io("read the folder", &p, &e)
            });
        }
        Ok(p)
    }

    fn load_config(&self, root: &Path) -> Result<Config> {
        Config::load_files(&[
            self.opts.user_config.clone(),
            root.join(".cairn").join("config.toml"),
        ])
        .map_err(|e| {
            DesktopError::new(
                ErrorKind::Config,
                e.to_string(),
                "Fix the file named above, or change the models in Settings",
            )
        })
    }

    /// Opens a repository (replacing the open one) and starts forwarding its index
    /// progress. The model loads here; a model that fails is reported in the status,
    /// and the rest (reading files, provenance) keeps working.
    pub async fn open_repository(
        &self,
        path: &str,
        events: Arc<dyn EventSink>,
    ) -> Result<StatusView> {
        let root = Self::check_folder(path)?;
        let config = self.load_config(&root)?;
        self.close_if_same(&root).await;
        let options = self.opts.workspace.clone();
        let open_root = root.clone();
        let ws = tokio::task::spawn_blocking(move || Workspace::open(&open_root, config, options))
            .await
            .map_err(|e| {
                DesktopError::new(
                    ErrorKind::Io,
                    format!("opening {} stopped: {e}", root.display()),
                    "Try again",
                )
            })??;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let old = self.session.write().replace(Session { ws: ws.clone() });
        drop(old);
        self.edits.lock().clear();
        if let Some(sharing) = &self.sharing {
            sharing.share(
                &ws,
                cairn_lsp::ServerOptions {
                    repo: None,
                    workspace: self.opts.workspace.clone(),
                },
            );
        }
        self.forward_index(&ws, generation, events);
        self.remember_recent(ws.root());
        Ok(self.status_of(&ws))
    }

    /// Reopening the open repository (new settings): the old session goes first, so its
    /// index writer lock is free for the new one (else the new index opens read-only).
    async fn close_if_same(&self, root: &Path) {
        let canon = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let old = {
            let mut slot = self.session.write();
            if slot.as_ref().is_none_or(|s| s.ws.root() != canon) {
                return;
            }
            slot.take().map(|s| Arc::downgrade(&s.ws))
        };
        self.generation.fetch_add(1, Ordering::SeqCst);
        let Some(weak) = old else { return };
        // A turn still streaming holds the workspace a moment longer.
        for _ in 0..100 {
            if weak.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            "the previous session of {} is still in use",
            canon.display()
        );
    }

    fn forward_index(&self, ws: &Arc<Workspace>, generation: u64, events: Arc<dyn EventSink>) {
        let mut rx = ws.index_events();
        let current = self.generation.clone();
        tokio::spawn(async move {
            let first = rx.borrow_and_update().clone();
            events.emit(
                events::INDEX,
                json!({"generation": generation, "index": first}),
            );
            while rx.changed().await.is_ok() {
                if current.load(Ordering::SeqCst) != generation {
                    break;
                }
                let state = rx.borrow_and_update().clone();
                let done = !matches!(state, IndexState::Opening | IndexState::Indexing { .. });
                events.emit(
                    events::INDEX,
                    json!({"generation": generation, "index": state}),
                );
                if !done {
                    // Progress arrives per file; the bar needs no more than ~10 a second.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }

    pub fn status(&self) -> Result<StatusView> {
        let ws = self.workspace()?;
        Ok(self.status_of(&ws))
    }

    fn status_of(&self, ws: &Workspace) -> StatusView {
        let s = ws.status();
        let stats = ws.index_stats();
        let files = match &s.index {
            IndexState::Ready { files } | IndexState::ReadOnly { files, .. } => Some(*files),
            IndexState::Indexing { files_total, .. } => Some(*files_total),
            _ => None,
        };
        let chat_model = s.chat_model.as_ref().map(ModelView::from);
        StatusView {
            repo: s.repo.display().to_string(),
            version: s.version.to_string(),
            files,
            languages: stats.map(|st| st.languages).unwrap_or_default(),
            backend: match &chat_model {
                Some(m) if m.origin == Origin::Remote => "remote".into(),
                Some(_) => "local".into(),
                None => "none".into(),
            },
            chat_model,
            complete_model: s.model.as_ref().map(ModelView::from),
            model_error: s
                .model_error
                .as_deref()
                .map(DesktopError::model_unavailable),
            index: s.index,
            ledger_path: s.ledger.path.map(|p| p.display().to_string()),
            ledger_error: s.ledger.error,
            gpu_backend: cairn_engine::gpu_backend().map(str::to_string),
            editors: self.editors(),
            chat_kinds: focused_kinds(),
        }
    }

    /// Whether editors reach this window's engine (polled by the window).
    pub fn editors(&self) -> EditorsView {
        match &self.sharing {
            Some(s) => s.view(),
            None => EditorsView {
                state: "off".into(),
                socket: String::new(),
                pid: None,
                sessions: 0,
                message: "Serving editors is turned off for this window".into(),
            },
        }
    }

    /// The app is exiting: give the editors' socket back and stop the model threads
    /// before llama.cpp's globals are torn down.
    pub fn shutdown(&self) {
        if let Some(s) = &self.sharing {
            s.shutdown();
        }
        cairn_engine::shutdown_model_threads(std::time::Duration::from_secs(5));
    }

    // ---- recent repositories -------------------------------------------------------

    pub fn recent(&self) -> Vec<String> {
        let Some(f) = &self.opts.state_file else {
            return Vec::new();
        };
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("recent").cloned())
            .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
            .unwrap_or_default()
    }

    fn remember_recent(&self, root: &Path) {
        let Some(f) = &self.opts.state_file else {
            return;
        };
        let root = root.display().to_string();
        let mut list = self.recent();
        list.retain(|r| *r != root);
        list.insert(0, root);
        list.truncate(10);
        let text = json!({ "recent": list }).to_string();
        if let Some(dir) = f.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = files::write_atomic(f, &text) {
            tracing::warn!("recent repositories not saved: {e}");
        }
    }

    // ---- chat ------------------------------------------------------------------

    pub fn cancel_chat(&self, request_id: &str) -> bool {
        match self.chats.lock().remove(request_id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// One chat turn: deltas stream to `events` as they come; the answer comes back
    /// with its citations and proposed edits (each already recorded as `suggested`).
    pub async fn chat(&self, req: ChatRequest, events: Arc<dyn EventSink>) -> Result<ChatView> {
        let started = Instant::now();
        let ws = self.workspace()?;
        let name = req.kind.as_deref().unwrap_or("ask");
        let kind = ChatKind::from_name(name).ok_or_else(|| {
            DesktopError::new(
                ErrorKind::Input,
                format!("{name:?} is not a kind of chat turn"),
                format!("Use {}", ChatKind::names()),
            )
        })?;
        let range = match (&req.path, req.start_line, req.end_line) {
            (Some(p), Some(a), b) => {
                if ws.inside_repo(p).is_none() {
                    return Err(outside(p, ws.root()));
                }
                let a = a.max(1);
                let b = b.unwrap_or(a).max(a);
                Some(Range::new(Position::new(a - 1, 0), Position::new(b, 0)))
            }
            (None, None, None) => None,
            _ => {
                return Err(DesktopError::new(
                    ErrorKind::Input,
                    "A selection needs a file and a first line",
                    "Select lines in the side panel first",
                ))
            }
        };
        if kind.info().needs_selection && range.is_none() {
            return Err(DesktopError::new(
                ErrorKind::Input,
                format!("{} works on a selection", kind.info().title),
                "Open a file in the side panel, select lines, then choose the action",
            ));
        }
        let cancel = CancellationToken::new();
        self.chats
            .lock()
            .insert(req.request_id.clone(), cancel.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StreamEvent>();
        let request_id = req.request_id.clone();
        let sink = events.clone();
        let forward = tokio::spawn(async move {
            // The first text goes out at once; after it, text is sent in batches (each event
            // costs the window a JavaScript call, and a local model shares the CPU with it).
            let mut first: Option<Duration> = None;
            let mut held = String::new();
            let mut due: Option<tokio::time::Instant> = None;
            let send = |text: &str| {
                sink.emit(
                    events::CHAT_DELTA,
                    json!({"requestId": request_id, "text": text}),
                )
            };
            loop {
                let ev = match due {
                    Some(at) => tokio::select! {
                        ev = rx.recv() => ev,
                        _ = tokio::time::sleep_until(at) => {
                            send(&std::mem::take(&mut held));
                            due = None;
                            continue;
                        }
                    },
                    None => rx.recv().await,
                };
                match ev {
                    Some(StreamEvent::Text(t)) if first.is_none() => {
                        first = Some(started.elapsed());
                        send(&t);
                    }
                    Some(StreamEvent::Text(t)) => {
                        held.push_str(&t);
                        due.get_or_insert_with(|| tokio::time::Instant::now() + DELTA_BATCH);
                    }
                    Some(StreamEvent::Reset { reason }) => {
                        held.clear();
                        due = None;
                        sink.emit(
                            events::CHAT_RESET,
                            json!({"requestId": request_id, "reason": reason}),
                        );
                    }
                    None => break,
                }
            }
            if !held.is_empty() {
                send(&held);
            }
            first
        });
        let turn = ChatTurn {
            question: req.question.clone(),
            conversation: req.conversation.clone(),
            path: if range.is_some() {
                req.path.clone()
            } else {
                None
            },
            range,
            kind,
            max_tokens: req.max_tokens,
        };
        let result = ws.chat(turn, Some(tx), cancel).await;
        self.chats.lock().remove(&req.request_id);
        // Every delta is out before the answer returns (the sender is gone by now).
        let first = tokio::time::timeout(Duration::from_secs(2), forward)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let answer = result?;
        let model = ModelView::from(&answer.model);
        let context_files: Vec<String> = answer
            .sources
            .iter()
            .map(|s| format!("{}:{}-{}", s.path, s.start_line, s.end_line))
            .collect();
        let mut edits = Vec::new();
        for e in &answer.edits {
            let (view, pending) = self.edit_view(&ws, e, &model, &context_files);
            if let Some(p) = pending {
                self.edits.lock().insert(e.record_id.clone(), p);
            }
            edits.push(view);
        }
        Ok(ChatView {
            request_id: req.request_id,
            conversation_id: answer.conversation_id,
            answer: answer.answer,
            citations: answer.citations,
            citation_marks: answer.citation_marks,
            sources: answer.sources,
            sources_error: answer.sources_error,
            edits,
            model,
            first_token_ms: first.map(ms),
            total_ms: ms(started.elapsed()),
            usage: UsageView {
                prompt_tokens: answer.usage.prompt_tokens,
                reused_prompt_tokens: answer.usage.reused_prompt_tokens,
                generated_tokens: answer.usage.generated_tokens,
                model_first_token_ms: answer.usage.time_to_first_token.map(ms),
                tokens_per_s: (answer.usage.generation_tokens_per_s() * 10.0).round() / 10.0,
            },
            fallback_from: answer.fallback.as_ref().map(|f| f.from.clone()),
        })
    }

    fn edit_view(
        &self,
        ws: &Workspace,
        e: &cairn_engine::ProposedEdit,
        model: &ModelView,
        context_files: &[String],
    ) -> (EditView, Option<PendingEdit>) {
        let start_line = e.range.start.line + 1;
        // A range ending at column 0 ends with the line before it (an insertion has
        // `end < start`).
        let end_line = if e.range.end.character == 0 {
            e.range.end.line
        } else {
            e.range.end.line + 1
        };
        let mut view = EditView {
            record_id: e.record_id.clone(),
            path: e.path.clone(),
            start_line,
            end_line,
            new_text: e.new_text.clone(),
            old_file: None,
            new_file: None,
            problem: None,
            model: model.clone(),
            context_files: context_files.to_vec(),
        };
        let abs = match checked_abs(ws, &e.path) {
            Ok(a) => a,
            Err(err) => {
                view.problem = Some(err.to_string());
                return (view, None);
            }
        };
        let old = match std::fs::metadata(&abs) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            _ => match files::read_text(&abs, &e.path) {
                Ok(t) => t,
                Err(err) => {
                    view.problem = Some(err.to_string());
                    return (view, None);
                }
            },
        };
        let Some(new) = cairn_text::replace_range(&old, e.range, &e.new_text) else {
            view.problem = Some(format!(
                "The edit's lines {start_line}-{end_line} are not in {} as it is now. Ask again.",
                e.path
            ));
            return (view, None);
        };
        if old.len() <= MAX_DIFF_BYTES && new.len() <= MAX_DIFF_BYTES {
            view.old_file = Some(old.clone());
            view.new_file = Some(new.clone());
        }
        (
            view,
            Some(PendingEdit {
                path: e.path.clone(),
                old_file: old,
                new_file: Some(new),
                start_line,
                end_line,
            }),
        )
    }

    /// Writes a proposed edit to its file (inside the repository only) and records
    /// `accepted`. A file changed since the proposal is left alone.
    pub async fn apply_edit(&self, record_id: &str) -> Result<AppliedView> {
        let ws = self.workspace()?;
        let pending = self.edits.lock().get(record_id).cloned().ok_or_else(|| {
            DesktopError::new(
                ErrorKind::Input,
                format!("No proposed edit {record_id} is waiting in this window"),
                "Ask again to get a new proposal",
            )
        })?;
        let abs = checked_abs(&ws, &pending.path)?;
        let current = match std::fs::metadata(&abs) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            _ => files::read_text(&abs, &pending.path)?,
        };
        if current != pending.old_file {
            return Err(DesktopError::new(
                ErrorKind::Stale,
                format!(
                    "{} changed on disk after the edit was proposed; it was not applied",
                    pending.path
                ),
                "Ask again so the edit is made against the file as it is now",
            ));
        }
        let new_file = pending.new_file.clone().unwrap_or_default();
        let existed = abs.exists();
        files::write_atomic(&abs, &new_file)?;
        if let Err(e) = ws.accept(record_id, false, None).await {
            // No applied change without its ledger record: put the file back.
            let restored = if existed {
                files::write_atomic(&abs, &pending.old_file)
            } else {
                std::fs::remove_file(&abs).map_err(|io| DesktopError::io("remove", &abs, &io))
            };
            if let Err(r) = restored {
                tracing::error!(
                    "could not restore {} after a failed accept: {r}",
                    abs.display()
                );
            }
            return Err(e.into());
        }
        self.edits.lock().remove(record_id);
        Ok(AppliedView {
            record_id: record_id.to_string(),
            path: pending.path,
            start_line: pending.start_line,
            end_line: pending.end_line,
        })
    }

    /// Records `rejected` for a proposed edit; the file is not touched.
    pub async fn dismiss_edit(&self, record_id: &str) -> Result<()> {
        let ws = self.workspace()?;
        ws.reject(record_id, "dismissed in the desktop app").await?;
        self.edits.lock().remove(record_id);
        Ok(())
    }

    // ---- files -----------------------------------------------------------------

    /// Lines of a repository file for the citation panel (1-based, inclusive).
    pub fn read_lines(&self, path: &str, start: usize, end: usize) -> Result<Lines> {
        let ws = self.workspace()?;
        let abs = checked_abs(&ws, path)?;
        let rel = ws.rel_path(&abs.display().to_string());
        let text = files::read_text(&abs, &rel)?;
        Ok(files::lines_of(&rel, &text, start, end))
    }

    // ---- provenance ------------------------------------------------------------

    pub async fn provenance(&self, range: Option<String>) -> Result<ProvenanceView> {
        let ws = self.workspace()?;
        let ledger_error = ws.status().ledger.error;
        let prov = ws.provenance();
        tokio::task::spawn_blocking(move || {
            let (report, report_error) = match prov.report_data(range.as_deref()) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(report_error(&e))),
            };
            let mut ledger = prov.ledger_summary(50);
            if ledger_error.is_some() {
                ledger.error = ledger_error;
            }
            ProvenanceView {
                report,
                report_error,
                ledger,
            }
        })
        .await
        .map_err(|e| DesktopError::new(ErrorKind::Report, e.to_string(), "Try again"))
    }

    /// Writes a report (`json`, `csv`, `html`, `sarif` or `intoto`) to `dest`, or to the
    /// Downloads folder.
    pub async fn export_report(
        &self,
        format: &str,
        range: Option<String>,
        dest: Option<String>,
    ) -> Result<ExportView> {
        let ws = self.workspace()?;
        let fmt = format.parse::<ReportFormat>().map_err(|e| {
            DesktopError::new(
                ErrorKind::Input,
                e.to_string(),
                "Choose one of the export buttons",
            )
        })?;
        let ext = fmt.file_extension();
        let root = ws.root().to_path_buf();
        let prov = ws.provenance();
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repository".into());
        let dest = match dest.filter(|d| !d.trim().is_empty()) {
            Some(d) => PathBuf::from(d.trim()),
            None => directories::UserDirs::new()
                .and_then(|u| u.download_dir().map(Path::to_path_buf))
                .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()))
                .unwrap_or_else(std::env::temp_dir)
                .join(format!("cairn-report-{name}.{ext}")),
        };
        let text = tokio::task::spawn_blocking(move || prov.report(range.as_deref(), fmt))
            .await
            .map_err(|e| DesktopError::new(ErrorKind::Report, e.to_string(), "Try again"))?
            .map_err(|e| report_error(&e))?;
        files::write_atomic(&dest, &text)?;
        Ok(ExportView {
            path: dest.display().to_string(),
            bytes: text.len(),
            format: format.to_string(),
        })
    }

    // ---- settings --------------------------------------------------------------

    pub fn settings(&self) -> SettingsView {
        let repo = self.workspace().ok();
        settings::load(&self.opts.user_config, repo.as_ref().map(|w| w.root()))
    }

    /// Saves the settings; an open repository is reopened so the models change now.
    pub async fn save_settings(
        &self,
        form: SettingsForm,
        events: Arc<dyn EventSink>,
    ) -> Result<(SettingsView, Option<StatusView>)> {
        let path = self.opts.user_config.clone();
        let f = form.clone();
        tokio::task::spawn_blocking(move || settings::save(&path, &f))
            .await
            .map_err(|e| DesktopError::new(ErrorKind::Config, e.to_string(), "Try again"))??;
        let status = match self.workspace() {
            Ok(ws) => {
                let root = ws.root().display().to_string();
                drop(ws);
                Some(self.open_repository(&root, events).await?)
            }
            Err(_) => None,
        };
        Ok((self.settings(), status))
    }

    /// The editor set-up lines, pointing at the bundled `cairn` and sharing this
    /// window's engine (`--remote auto`).
    pub fn editor_setup(&self) -> EditorSetup {
        let (cairn, found) = match find_cairn() {
            Some((p, how)) => (Some(p), how),
            None => (None, "none"),
        };
        let cmd = cairn.clone().unwrap_or_else(|| "cairn".into());
        EditorSetup {
            neovim: format!(
                "require('cairn').setup({{ cmd = {{ '{cmd}', 'lsp', '--remote', 'auto' }} }})"
            ),
            vscode: format!(
                "\"cairn.path\": \"{cmd}\", \"cairn.extraArgs\": [\"--remote\", \"auto\"]"
            ),
            cairn,
            found: found.to_string(),
        }
    }

    /// Opens a repository file in the person's editor at `line` (1-based), else with
    /// the desktop's default application.
    pub async fn open_in_editor(&self, path: &str, line: Option<u32>) -> Result<OpenedView> {
        let ws = self.workspace()?;
        let abs = checked_abs(&ws, path)?;
        if !abs.is_file() {
            return Err(DesktopError::new(
                ErrorKind::NotFound,
                format!("There is no file {path} in {}", ws.root().display()),
                "It may have been moved or deleted; ask again to get current citations",
            ));
        }
        let launcher = self.opts.launcher.clone();
        tokio::task::spawn_blocking(move || launcher.open(&abs, line))
            .await
            .map_err(|e| DesktopError::new(ErrorKind::Editor, e.to_string(), "Try again"))?
    }
}

/// The absolute path of a repository path, refused when it leads outside the repository
/// (`..`, absolute paths elsewhere, symlinks out, a new file under a symlinked folder).
fn checked_abs(ws: &Workspace, path: &str) -> Result<PathBuf> {
    ws.checked_abs(path).ok_or_else(|| outside(path, ws.root()))
}

fn outside(path: &str, root: &Path) -> DesktopError {
    DesktopError::new(
        ErrorKind::OutsideRepository,
        format!(
            "Refusing {path}: it is outside the open repository {}",
            root.display()
        ),
        "Only files inside the repository are shown or changed",
    )
}

fn report_error(e: &EngineError) -> DesktopError {
    DesktopError::new(
        ErrorKind::Report,
        format!("The provenance report cannot be made: {e}"),
        "Commit at least once (reports cover commits), or check the range",
    )
}

/// The `cairn` binary next to this one (where the bundle puts the sidecar, and where
/// cargo builds it), else on `PATH`; with where it was found.
pub fn find_cairn() -> Option<(String, &'static str)> {
    let name = if cfg!(windows) { "cairn.exe" } else { "cairn" };
    let here = std::env::current_exe().ok()?;
    let dir = here.parent()?;
    let beside = dir.join(name);
    if beside.is_file() {
        // Cargo's target/<profile> holds a `.fingerprint` folder; an installed bundle not.
        let how = if dir.join(".fingerprint").is_dir() {
            "build"
        } else {
            "bundled"
        };
        return Some((beside.display().to_string(), how));
    }
    // Test binaries live in target/<profile>/deps.
    if let Some(up) = dir.parent() {
        let p = up.join(name);
        if p.is_file() && up.join(".fingerprint").is_dir() {
            return Some((p.display().to_string(), "build"));
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .map(|p| (p.display().to_string(), "path"))
    })
}
