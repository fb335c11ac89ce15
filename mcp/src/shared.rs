//! Sharing the engine of `cairn lsp --remote auto`: its per-user daemon also listens on
//! `mcp.sock` beside `lsp.sock` (the same private directory). `cairn mcp` connects, sends
//! one hello line naming the repository, and — when the daemon already has that repository
//! open for an editor — forwards its stdio there, so the agent and the editors share one
//! index, one ledger handle and one set of open documents. Otherwise the daemon says no and
//! `cairn mcp` opens a workspace of its own (the daemon never loads a model for an agent
//! alone).
//!
//! The wire: client → `{"cairnMcp":1,"root":"/abs/root","recordEdits":false}\n`, daemon →
//! `{"ok":true,"pid":N}\n` or `{"ok":false,"reason":"…"}\n`; then MCP's newline-delimited
//! JSON-RPC both ways.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::Workspace;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::{serve_stream, CairnMcp, EngineShare, ToolOptions};

const PROTOCOL: u32 = 1;
const MAX_HELLO: usize = 64 * 1024;
const HELLO_WAIT: Duration = Duration::from_secs(5);

/// The daemon's MCP socket, beside its LSP socket.
pub fn socket_beside(lsp_socket: &Path) -> PathBuf {
    lsp_socket.with_file_name("mcp.sock")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hello {
    cairn_mcp: u32,
    root: PathBuf,
    #[serde(default)]
    record_edits: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Welcome {
    ok: bool,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
}

/// One line, read a byte at a time so nothing after it is consumed.
async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let read = async {
        loop {
            let b = r.read_u8().await?;
            if b == b'\n' {
                return Ok::<_, std::io::Error>(());
            }
            if line.len() >= MAX_HELLO {
                return Err(std::io::Error::other("the hello line is too long"));
            }
            line.push(b);
        }
    };
    tokio::time::timeout(HELLO_WAIT, read)
        .await
        .map_err(|_| std::io::Error::other("no hello line within 5 s"))??;
    Ok(line)
}

async fn write_line<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, v: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// Serves MCP sessions on `socket` for repositories `lookup` has open (it returns the
/// workspace and a guard that keeps the daemon up while the session lasts), until the task
/// is dropped.
pub async fn serve<F, G>(socket: PathBuf, lookup: F) -> std::io::Result<()>
where
    F: Fn(&Path) -> Option<(Arc<Workspace>, G)> + Send + Sync + 'static,
    G: Send + 'static,
{
    if let Some(dir) = socket.parent() {
        // The daemon's private directory (it may not have made it yet): only this user.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    // A socket file nobody answers on is left over from a daemon that died.
    if socket.exists() && UnixStream::connect(&socket).await.is_err() {
        let _ = std::fs::remove_file(&socket);
    }
    let listener = UnixListener::bind(&socket)?;
    let lookup = Arc::new(lookup);
    loop {
        let (stream, _) = listener.accept().await?;
        let lookup = lookup.clone();
        tokio::spawn(async move {
            if let Err(e) = session(stream, lookup.as_ref()).await {
                tracing::debug!("an MCP session on the daemon ended: {e}");
            }
        });
    }
}

async fn session<F, G>(stream: UnixStream, lookup: &F) -> std::io::Result<()>
where
    F: Fn(&Path) -> Option<(Arc<Workspace>, G)>,
{
    let (mut read, mut write) = stream.into_split();
    let hello: Hello = serde_json::from_slice(&read_line(&mut read).await?)
        .map_err(|e| std::io::Error::other(format!("not a hello: {e}")))?;
    let refuse = |reason: String| Welcome {
        ok: false,
        pid: None,
        reason: Some(reason),
    };
    if hello.cairn_mcp != PROTOCOL {
        let why = format!("protocol {} is not {PROTOCOL}", hello.cairn_mcp);
        return write_line(&mut write, &refuse(why)).await;
    }
    let root = std::fs::canonicalize(&hello.root).unwrap_or(hello.root.clone());
    let Some((ws, hold)) = lookup(&root) else {
        let why = format!("no editor session has {} open here", root.display());
        return write_line(&mut write, &refuse(why)).await;
    };
    let pid = std::process::id();
    write_line(
        &mut write,
        &Welcome {
            ok: true,
            pid: Some(pid),
            reason: None,
        },
    )
    .await?;
    let server = CairnMcp::new(
        ws,
        ToolOptions {
            record_edits: hello.record_edits,
            engine: EngineShare::Daemon { pid },
            ..Default::default()
        },
    );
    serve_stream(server, read, write).await;
    drop(hold);
    Ok(())
}

/// Asks the daemon at `socket` to serve `root`; the connection, ready for MCP, when it
/// has the repository open.
pub async fn connect(
    socket: &Path,
    root: &Path,
    record_edits: bool,
) -> std::io::Result<Option<UnixStream>> {
    if !socket.exists() {
        return Ok(None);
    }
    let mut stream = tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(socket))
        .await
        .map_err(|_| std::io::Error::other("the daemon did not answer within 2 s"))??;
    write_line(
        &mut stream,
        &Hello {
            cairn_mcp: PROTOCOL,
            root: root.to_path_buf(),
            record_edits,
        },
    )
    .await?;
    let welcome: Welcome = serde_json::from_slice(&read_line(&mut stream).await?)
        .map_err(|e| std::io::Error::other(format!("the daemon's answer: {e}")))?;
    if welcome.ok {
        Ok(Some(stream))
    } else {
        tracing::debug!(
            "the daemon does not serve {}: {}",
            root.display(),
            welcome.reason.unwrap_or_default()
        );
        Ok(None)
    }
}

/// Connects stdin and stdout to the daemon's session until either side closes.
pub async fn forward_stdio(stream: UnixStream) -> std::io::Result<()> {
    let (mut sock_read, mut sock_write) = stream.into_split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let up = async {
        let r = tokio::io::copy(&mut stdin, &mut sock_write).await;
        let _ = sock_write.shutdown().await;
        r
    };
    let down = async {
        let r = tokio::io::copy(&mut sock_read, &mut stdout).await;
        let _ = stdout.flush().await;
        r
    };
    // The session is over when the daemon's side closes (after our stdin ended and the
    // answers came back, or when the daemon went away); a stdin still open then is not
    // worth waiting for.
    tokio::pin!(up);
    tokio::pin!(down);
    tokio::select! {
        r = &mut down => r.map(|_| ()),
        r = &mut up => {
            r?;
            down.await.map(|_| ())
        }
    }
}
