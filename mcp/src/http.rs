//! Streamable HTTP on a loopback address only (the SDK's service under hyper): no remote
//! host can reach it, `Host` must be a loopback name (DNS rebinding), and requests from a
//! browser page (any `Origin`) are refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::{CairnMcp, MAX_MESSAGE_BYTES};

/// Refuses an address other machines could reach.
pub(crate) fn loopback_only(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "--http {addr}: Cairn serves MCP over HTTP on loopback only (127.0.0.1 or [::1]); \
         use stdio for anything else"
    ))
}

pub(crate) async fn serve(server: CairnMcp, addr: SocketAddr) -> Result<(), String> {
    loopback_only(addr)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(["localhost", "127.0.0.1", "::1", "[::1]"])
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_MESSAGE_BYTES)
        .with_cancellation_token(stop.child_token());
    let inflight = server.inflight();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    // The address goes to stderr so a caller that asked for port 0 learns the port.
    eprintln!("cairn mcp: serving MCP at http://{local}/mcp");
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept on {local}: {e}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let svc = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!("an HTTP connection ended: {e}");
            }
        });
    }
    stop.cancel();
    inflight.settle(Duration::from_secs(30)).await;
    Ok(())
}
