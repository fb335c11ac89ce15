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

mod chat;
mod reports;
mod views;

pub use views::*;

/// Event names the UI listens to.
pub mod events {
    /// `{generation, seq, index}`: the index state of the open repository; `seq` numbers
    /// the events (see `StatusView::index_seq`).
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
    /// Index events sent, over all openings (never reset, so a larger number is newer).
    index_seq: Arc<AtomicU64>,
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
            index_seq: Arc::new(AtomicU64::new(0)),
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
        let seq = self.index_seq.clone();
        tokio::spawn(async move {
            // The state is read before its number is taken, so a status that saw number n
            // (`status_of`) holds a state at least as new as event n.
            let first = rx.borrow_and_update().clone();
            let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
            events.emit(
                events::INDEX,
                json!({"generation": generation, "seq": n, "index": first}),
            );
            while rx.changed().await.is_ok() {
                let state = rx.borrow_and_update().clone();
                if current.load(Ordering::SeqCst) != generation {
                    break;
                }
                let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
                let done = !matches!(state, IndexState::Opening | IndexState::Indexing { .. });
                events.emit(
                    events::INDEX,
                    json!({"generation": generation, "seq": n, "index": state}),
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
        // Numbers first, then the state (see `forward_index`).
        let generation = self.generation.load(Ordering::SeqCst);
        let index_seq = self.index_seq.load(Ordering::SeqCst);
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
            references: s.references,
            generation,
            index_seq,
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
