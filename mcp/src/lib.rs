//! cairn-mcp: Cairn as a Model Context Protocol server, so any coding agent (Claude Code,
//! Copilot agent mode, Cursor, Zed, Continue …) searches the repository through Cairn's
//! index and registers the edits it made in Cairn's signed ledger, where they are
//! attributed, reviewed and gated like Cairn's own suggestions.
//! It is a thin front end: MCP in, `cairn-engine` calls, MCP out. It must never call a core
//! crate, write a repository file, reach a path outside the repository, let repository text
//! leave unredacted, or act on anything the repository's text says.
//!
//! Built on the official Rust SDK, `rmcp` 3.11.0 (pinned; `schemars` 1 for the tools' JSON
//! Schemas, `hyper` 1 for streamable HTTP), serving MCP 2025-06-18 and newer revisions as
//! the SDK negotiates them; tested with the official Python SDK (`mcp` 2.3.0) over stdio.

mod http;
pub mod schema;
mod server;
pub mod shared;
mod transport;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::{Workspace, WorkspaceOptions};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};

pub use server::{
    CairnMcp, EngineShare, Inflight, ToolOptions, INDEX_STATUS_URI, LEDGER_SUMMARY_URI,
    MAX_BLAME_LINES, MAX_HITS, MAX_READ_BYTES, MAX_ROWS,
};
pub use transport::{bounded_copy, MAX_MESSAGE_BYTES, TOO_LARGE_METHOD};

/// How `cairn mcp` runs.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// The repository root.
    pub root: PathBuf,
    /// Let `record_edit` write ledger records (off by default).
    pub record_edits: bool,
    /// Serve streamable HTTP on this loopback address instead of stdio.
    pub http: Option<SocketAddr>,
    /// The MCP socket of the `cairn lsp --remote auto` daemon, to share its engine when it
    /// has this repository open.
    pub daemon_socket: Option<PathBuf>,
}

/// How long a stopping server waits for work a client started (a ledger append) to end.
const SETTLE: Duration = Duration::from_secs(30);

/// Runs `cairn mcp`: on the daemon's engine when it has the repository open (stdio is
/// forwarded to it), else on a workspace of this process's own; over stdio, or streamable
/// HTTP on loopback.
pub async fn run(opts: McpOptions) -> Result<(), String> {
    if let Some(addr) = opts.http {
        http::loopback_only(addr)?;
    }
    if opts.http.is_none() {
        if let Some(socket) = &opts.daemon_socket {
            match shared::connect(socket, &opts.root, opts.record_edits).await {
                Ok(Some(stream)) => {
                    tracing::info!("sharing the engine of the daemon at {}", socket.display());
                    return shared::forward_stdio(stream)
                        .await
                        .map_err(|e| format!("the shared engine at {}: {e}", socket.display()));
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("no shared engine at {}: {e}", socket.display()),
            }
        }
    }
    let ws = open_workspace_with(&opts.root, opts.record_edits)?;
    let server = CairnMcp::new(
        ws,
        ToolOptions {
            record_edits: opts.record_edits,
            ..Default::default()
        },
    );
    match opts.http {
        Some(addr) => http::serve(server, addr).await,
        None => {
            serve_stream(server, tokio::io::stdin(), tokio::io::stdout()).await;
            Ok(())
        }
    }
}

/// A workspace for MCP alone: the index (kept live) and the ledger; no model is loaded,
/// since no tool generates text.
pub fn open_workspace(root: &Path) -> Result<Arc<Workspace>, String> {
    open_workspace_with(root, false)
}

/// The same; with `record_edits`, also the reference index of the repository's
/// dependencies (built in the background), which every recorded edit is checked against.
pub fn open_workspace_with(root: &Path, record_edits: bool) -> Result<Arc<Workspace>, String> {
    let mut references = cairn_engine::ReferenceOptions::default();
    match cairn_engine::Config::load(Some(root)) {
        Ok(config) => references.apply_config(&config),
        Err(e) => tracing::warn!("reference settings left at their defaults: {e}"),
    }
    if !record_edits {
        // Nothing else this server does produces code to check.
        references.policy = cairn_engine::ReferencePolicy::Off;
    } else if references.policy == cairn_engine::ReferencePolicy::Block {
        // An agent's edit is already on disk: it is recorded with its references, not
        // withheld.
        references.policy = cairn_engine::ReferencePolicy::Show;
    }
    let options = WorkspaceOptions {
        watch: true,
        references,
        ..Default::default()
    };
    Workspace::open_with(
        root,
        Err("cairn mcp loads no model: its tools search, read and record".into()),
        options,
    )
    .map_err(|e| e.to_string())
}

/// Serves one MCP session over a byte stream (stdio, a socket) until the client leaves,
/// then waits for work it started to finish.
pub async fn serve_stream<R, W>(server: CairnMcp, read: R, write: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let inflight = server.inflight();
    let (pipe_in, pipe_out) = tokio::io::duplex(256 * 1024);
    let pump = tokio::spawn(bounded_copy(read, pipe_in, MAX_MESSAGE_BYTES));
    // The pump already replaced any longer line; the SDK's own bound stays above it.
    let transport = AsyncRwTransport::new_server(pipe_out, write)
        .with_max_line_length(MAX_MESSAGE_BYTES + 64 * 1024);
    match server.serve(transport).await {
        Ok(running) => {
            if let Err(e) = running.waiting().await {
                tracing::debug!("the MCP session ended: {e}");
            }
        }
        Err(e) => tracing::warn!("the MCP session did not start: {e}"),
    }
    pump.abort();
    if !inflight.settle(SETTLE).await {
        tracing::warn!("work a client started was still running after {SETTLE:?}");
    }
}
