//! One engine per user, reached by every editor: `cairn lsp --remote auto` forwards its
//! stdio to a per-user daemon over a Unix socket (starting the daemon if none answers),
//! the way `gopls -remote=auto` does. The daemon serves each connection as its own LSP
//! session, and sessions on the same repository share one [`Workspace`] (one model in
//! memory, one index writer, one ledger handle).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cairn_engine::{Config, Workspace, WorkspaceOptions};
use tokio::net::{UnixListener, UnixStream};
use tower_lsp_server::Server;

use crate::ServerOptions;

/// Open workspaces by repository root, alive while a session holds them.
#[derive(Default)]
pub struct Workspaces {
    open: Mutex<HashMap<PathBuf, Weak<Workspace>>>,
    /// Sessions connected now (editors, and MCP clients holding one), for a host that shows
    /// them (the desktop app) and for the daemon's idle exit.
    sessions: AtomicUsize,
}

impl Workspaces {
    /// The workspace of `root`, opened on first use (blocking: loads models).
    pub fn get_or_open(
        &self,
        root: &Path,
        options: &WorkspaceOptions,
    ) -> Result<Arc<Workspace>, String> {
        let key = std::fs::canonicalize(root)
            .map_err(|e| format!("repository {} cannot be opened: {e}", root.display()))?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ws) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(ws);
        }
        let config = Config::load(Some(&key)).map_err(|e| e.to_string())?;
        let ws = Workspace::open(&key, config, options.clone()).map_err(|e| e.to_string())?;
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(key, Arc::downgrade(&ws));
        Ok(ws)
    }

    /// The workspace of `root` if a session has it open now (never opens one).
    pub fn get(&self, root: &Path) -> Option<Arc<Workspace>> {
        let key = std::fs::canonicalize(root).ok()?;
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&key).and_then(Weak::upgrade)
    }

    /// Counts a client of another protocol (an MCP session, `cairn mcp`) as a session while
    /// the guard lives, so the daemon does not exit idle under it.
    pub fn hold(self: &Arc<Self>) -> SessionHold {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        SessionHold(self.clone())
    }

    /// Shares a workspace another front end (the desktop app) already has open.
    pub fn insert(&self, ws: &Arc<Workspace>) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(ws.root().to_path_buf(), Arc::downgrade(ws));
    }

    /// How many editor sessions the daemon serving these workspaces has connected now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }
}

/// A session of another protocol, counted while it lives ([`Workspaces::hold`]).
pub struct SessionHold(Arc<Workspaces>);

impl Drop for SessionHold {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The per-user socket: `$XDG_RUNTIME_DIR/cairn/lsp.sock`, else a private directory
/// under the temporary directory.
pub fn default_socket_path() -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("cairn"),
        _ => {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
            std::env::temp_dir().join(format!("cairn-{user}"))
        }
    };
    dir.join("lsp.sock")
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Serves LSP sessions on `socket` until no session has been connected for `idle`.
pub async fn serve_daemon(
    socket: &Path,
    options: ServerOptions,
    shared: Arc<Workspaces>,
    idle: Duration,
) -> std::io::Result<()> {
    if let Some(dir) = socket.parent() {
        private_dir(dir)?;
    }
    // A socket file nobody answers on is left over from a daemon that died.
    if socket.exists() && UnixStream::connect(socket).await.is_err() {
        let _ = std::fs::remove_file(socket);
    }
    let listener = UnixListener::bind(socket)?;
    let sessions = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::time::timeout(idle, listener.accept()).await;
        let (stream, _) = match accepted {
            Ok(r) => r?,
            // Idle: no editor session here, and no other client (an MCP session) holding one.
            Err(_) if sessions.load(Ordering::SeqCst) == 0 && shared.sessions() == 0 => break,
            Err(_) => continue,
        };
        let (read, write) = stream.into_split();
        let (service, client_socket) = crate::service_with(options.clone(), Some(shared.clone()));
        let sessions = sessions.clone();
        sessions.fetch_add(1, Ordering::SeqCst);
        shared.sessions.fetch_add(1, Ordering::SeqCst);
        let counted = shared.clone();
        tokio::spawn(async move {
            crate::guarded(read, write, |input, output| {
                Server::new(input, output, client_socket).serve(service)
            })
            .await;
            sessions.fetch_sub(1, Ordering::SeqCst);
            counted.sessions.fetch_sub(1, Ordering::SeqCst);
        });
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// Connects stdio to the daemon at `socket`, starting one (`daemon_cmd`) if none answers.
pub async fn forward_stdio(
    socket: &Path,
    daemon_cmd: std::process::Command,
) -> std::io::Result<()> {
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(_) => {
            use std::os::unix::process::CommandExt;
            let mut cmd = daemon_cmd;
            // Its own process group: closing this editor must not signal the daemon.
            cmd.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .process_group(0);
            let mut child = cmd.spawn()?;
            let mut last = None;
            let mut connected = None;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                match UnixStream::connect(socket).await {
                    Ok(s) => {
                        connected = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(std::io::Error::other(format!(
                        "the Cairn daemon exited at start ({status})"
                    )));
                }
            }
            // The daemon lives on for other editors; it is not this process's to wait for.
            drop(child);
            connected.ok_or_else(|| {
                last.unwrap_or_else(|| std::io::Error::other("the Cairn daemon did not start"))
            })?
        }
    };
    let (mut sock_read, mut sock_write) = stream.into_split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let up = async {
        let r = tokio::io::copy(&mut stdin, &mut sock_write).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut sock_write).await;
        r
    };
    let down = tokio::io::copy(&mut sock_read, &mut stdout);
    tokio::pin!(up, down);
    // The daemon closes the session after `exit`: that ends this editor's server, whether
    // or not the editor closes stdin too. An editor closing stdin first ends the upload;
    // the daemon then sees the end of the session and closes its side.
    tokio::select! {
        down = &mut down => {
            down?;
        }
        up = &mut up => {
            up?;
            down.await?;
        }
    }
    Ok(())
}
