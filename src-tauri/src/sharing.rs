//! Editors share the window's engine. While a repository is open the app serves the
//! per-user `cairn lsp` daemon socket itself (`cairn_lsp::shared::serve_daemon` over the
//! app's own [`Workspaces`]), so `cairn lsp --remote auto` in an editor connects to this
//! process and uses the very `Workspace` the window has open: one index writer, one
//! ledger handle, one model in memory. A daemon that already answers on the socket
//! (another window, or a standalone `cairn lsp --daemon`) keeps it: the app reports it
//! and takes over only once that daemon has gone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::Workspace;
use cairn_lsp::shared::{serve_daemon, Workspaces};
use cairn_lsp::ServerOptions;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::UnixStream;

/// How often a daemon that holds the socket is checked for having gone (a file check,
/// never a connection: connecting would keep that daemon's idle clock from running out).
const RECHECK: Duration = Duration::from_millis(500);

/// The app's daemon does not stop for idleness: it lives as long as the window.
const NO_IDLE_EXIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Whether editors reach this window's engine, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditorsView {
    /// `off` (no repository opened yet), `starting`, `serving` (editors reach this app),
    /// `other-daemon` (another Cairn process holds the socket) or `unavailable`.
    pub state: String,
    pub socket: String,
    /// The process that serves the socket: this app's when serving, else the other
    /// daemon's (when the system tells).
    pub pid: Option<u32>,
    /// Editor sessions connected to this app now.
    pub sessions: usize,
    /// One sentence for the status bar's tooltip and the settings page.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Off,
    Starting,
    Serving,
    OtherDaemon { pid: Option<u32> },
    Unavailable { error: String },
}

/// Serves the daemon socket for the workspaces the window opens.
pub struct EngineSharing {
    socket: PathBuf,
    workspaces: Arc<Workspaces>,
    state: Arc<Mutex<State>>,
    started: AtomicBool,
}

impl EngineSharing {
    pub fn new(socket: PathBuf) -> EngineSharing {
        EngineSharing {
            socket,
            workspaces: Arc::new(Workspaces::default()),
            state: Arc::new(Mutex::new(State::Off)),
            started: AtomicBool::new(false),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Offers `ws` to editors (sessions on its root get this very workspace) and, the
    /// first time, starts serving the socket. Must run inside a tokio runtime.
    pub fn share(&self, ws: &Arc<Workspace>, options: ServerOptions) {
        self.workspaces.insert(ws);
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        *self.state.lock() = State::Starting;
        let socket = self.socket.clone();
        let workspaces = self.workspaces.clone();
        let state = self.state.clone();
        tokio::spawn(supervise(socket, options, workspaces, state));
    }

    pub fn view(&self) -> EditorsView {
        let state = self.state.lock().clone();
        let socket = self.socket.display().to_string();
        let sessions = self.workspaces.sessions();
        let (name, pid, message) = match state {
            State::Off => (
                "off",
                None,
                "Editors get this window's engine once a repository is open".to_string(),
            ),
            State::Starting => (
                "starting",
                None,
                format!("Starting to serve editors on {socket}"),
            ),
            State::Serving => (
                "serving",
                Some(std::process::id()),
                format!(
                    "Editors started with `cairn lsp --remote auto` share this window's engine ({} connected, socket {socket})",
                    sessions
                ),
            ),
            State::OtherDaemon { pid } => (
                "other-daemon",
                pid,
                format!(
                    "Another Cairn engine{} serves editors on {socket}; this window takes over when it exits",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                ),
            ),
            State::Unavailable { error } => (
                "unavailable",
                None,
                format!("Editors cannot reach this window's engine: {error}"),
            ),
        };
        EditorsView {
            state: name.to_string(),
            socket,
            pid,
            sessions,
            message,
        }
    }

    /// Removes the socket when this app serves it (the app is exiting), so the next
    /// editor starts a daemon of its own instead of finding a dead socket.
    pub fn shutdown(&self) {
        if *self.state.lock() == State::Serving {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

async fn supervise(
    socket: PathBuf,
    options: ServerOptions,
    workspaces: Arc<Workspaces>,
    state: Arc<Mutex<State>>,
) {
    let set = |s: State| *state.lock() = s;
    loop {
        if let Ok(stream) = UnixStream::connect(&socket).await {
            let pid = stream
                .peer_cred()
                .ok()
                .and_then(|c| c.pid())
                .and_then(|p| u32::try_from(p).ok());
            drop(stream);
            tracing::info!(
                "another Cairn daemon (pid {pid:?}) serves {}; not taking its socket",
                socket.display()
            );
            set(State::OtherDaemon { pid });
            wait_until_gone(&socket, pid).await;
            continue;
        }
        set(State::Starting);
        let serve = serve_daemon(&socket, options.clone(), workspaces.clone(), NO_IDLE_EXIT);
        tokio::pin!(serve);
        let mut marked = false;
        let result = loop {
            tokio::select! {
                r = &mut serve => break r,
                _ = tokio::time::sleep(Duration::from_millis(20)), if !marked => {
                    if socket.exists() {
                        marked = true;
                        tracing::info!("editors share this window's engine on {}", socket.display());
                        set(State::Serving);
                    }
                }
            }
        };
        match result {
            Ok(()) => set(State::Starting),
            // Another daemon bound the socket between the check and the bind.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(RECHECK).await;
            }
            Err(e) => {
                tracing::warn!("cannot serve editors on {}: {e}", socket.display());
                set(State::Unavailable {
                    error: format!("{} ({e})", socket.display()),
                });
                tokio::time::sleep(RECHECK * 20).await;
            }
        }
    }
}

/// Returns once the daemon holding `socket` has gone: its socket file removed (a daemon
/// that exits for idleness removes it) or, where the system tells, its process gone.
async fn wait_until_gone(socket: &Path, pid: Option<u32>) {
    loop {
        tokio::time::sleep(RECHECK).await;
        if !socket.exists() {
            return;
        }
        if let Some(pid) = pid {
            let proc = Path::new("/proc");
            if proc.is_dir() && !proc.join(pid.to_string()).exists() {
                return;
            }
        }
    }
}
