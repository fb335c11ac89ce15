//! The servers under test, each started in the copy, initialized and left to settle:
//! `cairn lsp` as the tree builds it, lsp-ai 0.7.0 with its llama.cpp backend, and
//! llama-cpp-python's server behind the thin adapter `bench/lsp/peers/llama_cpp_lsp.py`.
//! Each reports the settings it ran with.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_lsp_client::file_uri;
use serde_json::{json, Value};

use super::pass::Method;
use super::Options;
use crate::client::Client;
use crate::fail;
use crate::sandbox::Sandbox;
use crate::server::Server;

/// The prompt every peer is given, in tokens, and how many it may generate.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Window {
    pub(crate) prefix_tokens: u32,
    pub(crate) suffix_tokens: u32,
    pub(crate) max_tokens: u32,
}

/// A server up and idle, ready for the file to be opened.
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) client: Client,
    pub(crate) method: Method,
    /// The processes that do its work (memory and idleness are read from them).
    pub(crate) pids: Vec<u32>,
    /// The model server behind an adapter, ended after it.
    pub(crate) backend: Option<Child>,
    /// From the start of its process until it was initialized and idle.
    pub(crate) ready_s: f64,
    pub(crate) settings: Value,
    pub(crate) log: PathBuf,
}

impl Target {
    /// Shuts the server down (and the model server behind it).
    pub(crate) fn stop(self) {
        self.client.shutdown();
        if let Some(mut b) = self.backend {
            let _ = b.kill();
            let _ = b.wait();
        }
    }
}

/// `cairn lsp` with its defaults (an empty config), index ready and idle.
pub(crate) fn cairn(o: &Options, cairn: &Path, sandbox: &Sandbox) -> (Target, String) {
    let t = Instant::now();
    let Server {
        mut client,
        model_name,
    } = Server::start(cairn, sandbox);
    let status = client.call("cairn/status", Value::Null, Duration::from_secs(30));
    let pids = vec![client.pid()];
    let ready_s = settle(t, &pids);
    let settings = json!({
        "binary": cairn,
        "config": "defaults (empty CAIRN_CONFIG)",
        "model": status["model"],
        "threads": {"decode": o.threads, "batch": o.threads_batch,
                    "from": "LocalOptions defaults of this tree (cores − 1, cores)"},
        "request": "textDocument/inlineCompletion, automatic trigger",
    });
    let target = Target {
        name: "cairn",
        client,
        method: Method::Inline,
        pids,
        backend: None,
        ready_s,
        settings,
        log: sandbox.path.join("server.log"),
    };
    (target, model_name)
}

/// lsp-ai 0.7.0, configured for Qwen FIM on the GGUF (see `bench/README.md`).
pub(crate) fn lsp_ai(
    o: &Options,
    bin: &Path,
    gguf: &Path,
    sandbox: &Sandbox,
    w: Window,
    chars_per_token: f64,
) -> Target {
    // lsp-ai cuts `max_context` × 4 characters around the cursor, half before it; this
    // gives it the characters the other servers' token windows hold in this file.
    let chars = f64::from(w.prefix_tokens + w.suffix_tokens) * chars_per_token;
    let max_context = (chars / 4.0).round().max(1.0) as u64;
    let config = json!({
        "memory": {"file_store": {}},
        "models": {"model1": {
            "type": "llama_cpp",
            "file_path": gguf,
            "n_ctx": o.n_ctx,
            "n_gpu_layers": 0,
            // Its limiter (default 1 request/s) holds requests back; off, so the pass
            // measures the model call, as it does for the others.
            "max_requests_per_second": 1000.0,
        }},
        "completion": {
            "model": "model1",
            "parameters": {
                "fim": {"start": "<|fim_prefix|>", "middle": "<|fim_suffix|>", "end": "<|fim_middle|>"},
                "max_context": max_context,
                "max_tokens": w.max_tokens,
            },
        },
    });
    let log = sandbox.path.join("lsp-ai.log");
    let mut cmd = Command::new(bin);
    cmd.current_dir(&sandbox.repo)
        .env("LSP_AI_LOG", "lsp_ai=info")
        .env("LSP_AI_N_THREADS", o.threads.to_string())
        .env("LSP_AI_N_THREADS_BATCH", o.threads_batch.to_string());
    let t = Instant::now();
    let mut client = Client::spawn(cmd, &log, &format!("{} (lsp-ai)", bin.display()));
    initialize(&mut client, sandbox, Some(config.clone()));
    let pids = vec![client.pid()];
    let ready_s = settle(t, &pids);
    let settings = json!({
        "binary": bin,
        "version": "lsp-ai 0.7.0 (crates.io, feature llama_cpp, its Cargo.lock: llama-cpp-2 0.1.55; \
                    thread counts from the environment, see bench/lsp/peers/install-lsp-ai)",
        "initializationOptions": config,
        "window": format!("max_context {max_context} tokens × 4 characters, half before the cursor \
                           (≈ {} + {} tokens at {chars_per_token:.2} characters a token)",
                          w.prefix_tokens, w.suffix_tokens),
        "threads": format!(
            "{} decode, {} batch, from LSP_AI_N_THREADS and LSP_AI_N_THREADS_BATCH, which the build of \
             bench/lsp/peers/install-lsp-ai reads (lsp-ai 0.7.0 has no setting: as published, llama.cpp's \
             default of 4 and 4)",
            o.threads, o.threads_batch
        ),
        "context": "a new llama.cpp context per request (no KV cache kept between requests)",
        "stops": "the model's end-of-sequence token only (151645 <|im_end|>), or max_tokens",
        "request": "textDocument/completion (lsp-ai has no inlineCompletion)",
    });
    Target {
        name: "lsp-ai",
        client,
        method: Method::Completion,
        pids,
        backend: None,
        ready_s,
        settings,
        log,
    }
}

/// llama-cpp-python's server on loopback, then the adapter in front of it.
pub(crate) fn llama_cpp_python(
    o: &Options,
    gguf: &Path,
    sandbox: &Sandbox,
    w: Window,
    bench_dir: &Path,
) -> Target {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(format!("no free loopback port: {e}")));
    let server_log = sandbox.path.join("llama-cpp-python.log");
    let server_args: Vec<String> = [
        "--model",
        &gguf.to_string_lossy(),
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--model_alias",
        "m",
        "--n_ctx",
        &o.n_ctx.to_string(),
        "--n_threads",
        &o.threads.to_string(),
        "--n_threads_batch",
        &o.threads_batch.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let t = Instant::now();
    let wrapper = bench_dir.join("../tests/peers/llama_cpp_server.py");
    let backend = Command::new(&o.python)
        .arg(&wrapper)
        .args(&server_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&server_log).expect("server log"))
        .spawn()
        .unwrap_or_else(|e| {
            fail(format!(
                "cannot start {} {}: {e} (make setup-test installs llama-cpp-python)",
                o.python.display(),
                wrapper.display()
            ))
        });
    let backend_pid = backend.id();
    let mut backend = Some(backend);
    wait_http(port, &mut backend, &server_log);
    let adapter = bench_dir.join("lsp/peers/llama_cpp_lsp.py");
    let url = format!("http://127.0.0.1:{port}/v1");
    let adapter_args: Vec<String> = vec![
        "--url".into(),
        url,
        "--prefix-tokens".into(),
        w.prefix_tokens.to_string(),
        "--suffix-tokens".into(),
        w.suffix_tokens.to_string(),
        "--max-tokens".into(),
        w.max_tokens.to_string(),
    ];
    let log = sandbox.path.join("adapter.log");
    let mut cmd = Command::new(&o.python);
    cmd.arg(&adapter).args(&adapter_args);
    let mut client = Client::spawn(cmd, &log, &format!("the adapter {}", adapter.display()));
    initialize(&mut client, sandbox, None);
    let pids = vec![backend_pid, client.pid()];
    let ready_s = settle(t, &pids);
    let version = Command::new(&o.python)
        .args(["-c", "import llama_cpp; print(llama_cpp.__version__)"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let settings = json!({
        "server": format!("llama-cpp-python {} (python -m llama_cpp.server through tests/peers/llama_cpp_server.py: weight repacking off)",
                          version.as_deref().unwrap_or("?")),
        "server_args": server_args,
        "adapter": adapter,
        "adapter_args": adapter_args,
        "window": format!("{} prefix + {} suffix tokens (cut in characters at the file's characters per token; prefix from a line start)",
                          w.prefix_tokens, w.suffix_tokens),
        "prompt": "<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>, raw /v1/completions prompt, greedy, repeat_penalty 1",
        "stops": "Qwen's end-of-generation tokens, or max_tokens",
        "context": "one llama.cpp context; the common prefix with the previous prompt is kept",
        "request": "textDocument/inlineCompletion",
    });
    Target {
        name: "llama-cpp-python",
        client,
        method: Method::Inline,
        pids,
        backend,
        ready_s,
        settings,
        log,
    }
}

/// `initialize` (with lsp-ai's configuration as `initializationOptions`) and `initialized`.
fn initialize(client: &mut Client, sandbox: &Sandbox, options: Option<Value>) {
    let root_uri = file_uri(&sandbox.repo);
    let mut params = json!({
        "processId": std::process::id(),
        "rootUri": root_uri,
        "workspaceFolders": [{"uri": root_uri, "name": "repo"}],
        "capabilities": {"textDocument": {"inlineCompletion": {}, "completion": {}}},
    });
    if let Some(o) = options {
        params["initializationOptions"] = o;
    }
    client.call("initialize", params, Duration::from_secs(300));
    client.notify("initialized", json!({}));
}

/// Waits for the model server to answer `GET /v1/models`.
fn wait_http(port: u16, child: &mut Option<Child>, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut l = String::new();
            if BufReader::new(s).read_line(&mut l).is_ok() && l.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        let exited = child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .is_some();
        if exited || Instant::now() > deadline {
            fail(format!(
                "llama-cpp-python's server did not come up on port {port}; its log: {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the processes are idle (model loaded, index built, probes done: under
/// 2 % of a core over half a second, at most two minutes); seconds since `started`.
fn settle(started: Instant, pids: &[u32]) -> f64 {
    let ticks = || -> u64 { pids.iter().filter_map(|&p| cpu_ticks(p)).sum() };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = ticks();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = ticks();
        // Clock ticks are 10 ms: one tick in 500 ms is 2 %.
        if now.saturating_sub(last) <= 1 || Instant::now() > deadline {
            return started.elapsed().as_secs_f64();
        }
        last = now;
    }
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line; `after` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
