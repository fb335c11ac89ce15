//! `cairn lsp` under test, through the shared test client (`cairn_lsp_client`), and what
//! its inline-completion answers say.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_engine::Position;
use cairn_lsp_client::{LspClient, Response};
use serde_json::{json, Value};

use crate::fail;

/// JSON-RPC `RequestCancelled`.
const REQUEST_CANCELLED: i64 = -32800;

/// `cairn lsp` under test; every failure to talk to it ends the benchmark.
pub(crate) struct Client {
    inner: LspClient,
}

impl Client {
    pub(crate) fn start(cairn: &Path, repo: &Path, env: &[(&str, String)], log: &Path) -> Client {
        let mut cmd = Command::new(cairn);
        cmd.arg("lsp").current_dir(repo);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Client::spawn(
            cmd,
            log,
            &format!("{} lsp (build it: cargo build -p cairn)", cairn.display()),
        )
    }

    /// Any stdio server: `cmd` with its stderr in `log`; `what` names it in the error.
    pub(crate) fn spawn(mut cmd: Command, log: &Path, what: &str) -> Client {
        cmd.stderr(std::fs::File::create(log).expect("server log file"));
        let inner =
            LspClient::spawn(cmd).unwrap_or_else(|e| fail(format!("cannot start {what}: {e}")));
        Client { inner }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.inner.pid()
    }

    pub(crate) fn notify(&self, method: &str, params: Value) {
        self.inner.notify(method, params);
    }

    /// Sends a request; returns its id and the instant just before it was written.
    pub(crate) fn request(&mut self, method: &str, params: Value) -> (i64, Instant) {
        self.inner.send_request(method, params)
    }

    pub(crate) fn wait(&mut self, id: i64, timeout: Duration) -> Response {
        self.inner
            .wait(id, timeout)
            .unwrap_or_else(|e| fail(format!("{e} (see the server log with --keep)")))
    }

    pub(crate) fn call(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        self.inner
            .call(method, params, timeout)
            .unwrap_or_else(|e| fail(e))
    }

    pub(crate) fn shutdown(self) {
        for n in self.inner.take_notifications() {
            if matches!(
                n["method"].as_str(),
                Some("window/showMessage" | "window/logMessage")
            ) {
                eprintln!(
                    "  server: {}",
                    n["params"]["message"].as_str().unwrap_or("")
                );
            }
        }
        self.inner.shutdown(Duration::from_secs(10));
    }
}

pub(crate) fn lsp_pos(p: Position) -> Value {
    json!({"line": p.line, "character": p.character})
}

/// One answer to `textDocument/inlineCompletion`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    pub(crate) cancelled: bool,
    pub(crate) error: Option<String>,
    pub(crate) record_id: Option<String>,
    pub(crate) text: Option<String>,
}

pub(crate) fn answer_of(msg: &Value) -> Answer {
    if let Some(e) = msg.get("error") {
        return Answer {
            cancelled: e["code"].as_i64() == Some(REQUEST_CANCELLED),
            error: Some(e["message"].as_str().unwrap_or("").to_string()),
            ..Answer::default()
        };
    }
    let result = &msg["result"];
    let items = result
        .get("items")
        .or(Some(result))
        .and_then(Value::as_array);
    let first = items.and_then(|i| i.first());
    Answer {
        record_id: first
            .and_then(|i| i["command"]["arguments"][0]["recordId"].as_str())
            .map(String::from),
        text: first
            .and_then(|i| i["insertText"].as_str())
            .map(String::from),
        ..Answer::default()
    }
}
