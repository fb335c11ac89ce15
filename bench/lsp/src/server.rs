//! The server's life: started in the copy, initialized, waited for until its index is
//! ready; at the end its memory read and it shut down.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_lsp_client::file_uri;
use serde_json::{json, Value};

use crate::client::Client;
use crate::fail;
use crate::sandbox::Sandbox;
use crate::stats::vm_kib;

/// `cairn lsp`, up with its index ready.
pub(crate) struct Server {
    pub(crate) client: Client,
    /// The completion model it reports.
    pub(crate) model_name: String,
}

impl Server {
    pub(crate) fn start(cairn: &Path, sandbox: &Sandbox) -> Server {
        let log = sandbox.path.join("server.log");
        let mut client = Client::start(cairn, &sandbox.repo, &sandbox.env, &log);
        let root_uri = file_uri(&sandbox.repo);
        let t = Instant::now();
        client.call(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": "repo"}],
                "capabilities": {"textDocument": {"inlineCompletion": {}}},
            }),
            Duration::from_secs(300),
        );
        client.notify("initialized", json!({}));
        let model_name = wait_for_index(&mut client, t);
        Server { client, model_name }
    }
}

/// Polls `cairn/status` until the index has opened; returns the model's name.
fn wait_for_index(client: &mut Client, started: Instant) -> String {
    let mut model_name = String::from("?");
    loop {
        let s = client.call("cairn/status", Value::Null, Duration::from_secs(30));
        if let Some(e) = s["modelError"].as_str() {
            fail(format!("the server has no model: {e}"));
        }
        model_name = s["model"]["name"]
            .as_str()
            .unwrap_or(&model_name)
            .to_string();
        let state = s["index"]["state"].as_str().unwrap_or("").to_string();
        if !matches!(state.as_str(), "opening" | "indexing") {
            eprintln!(
                "bench_lsp: server up in {:.1} s, index {state} ({} files)",
                started.elapsed().as_secs_f64(),
                s["index"]["files"]
            );
            return model_name;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Memory at the end of the passes, in KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) server_rss_kib: Option<u64>,
    pub(crate) server_hwm_kib: Option<u64>,
    pub(crate) driver_hwm_kib: Option<u64>,
}

/// Reads the server's and this process's memory, then shuts the server down.
pub(crate) fn stop(client: Client) -> Memory {
    let pid = client.pid();
    let memory = Memory {
        server_rss_kib: vm_kib(pid, "VmRSS:"),
        server_hwm_kib: vm_kib(pid, "VmHWM:"),
        driver_hwm_kib: vm_kib(std::process::id(), "VmHWM:"),
    };
    client.shutdown();
    memory
}
