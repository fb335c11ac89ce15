//! bench/lsp: inline-completion latency of `cairn lsp` during a replayed typing session,
//! against the model layer called directly with the same prompt, in one run.
//!
//! The body of a real function (in a copy of a real repository) is deleted and typed back
//! one character at a time: per keystroke a `textDocument/didChange` (incremental, the one
//! character) and a `textDocument/inlineCompletion` (automatic trigger), waiting for the
//! answer. When the server called the model (not a typing-through hit), the same prompt
//! (`Workspace::completion_request` on an in-process workspace with the same text) goes to
//! `Router::complete` directly; overhead = server latency − direct latency. The server and
//! the direct call alternate, never overlap: on a small machine they would share cores.
//! A burst variant sends every keystroke's request without waiting (a fast typist's
//! editor); `--breakdown` replays the session on the in-process `Workspace::complete` to
//! split the engine's time (context, ledger, the rest) from the LSP layer.
//!
//! bench/lsp/run [--repo DIR] [--file PATH] [--function NAME] [--keystrokes N] [--json OUT]
//!               [--no-burst] [--burst-interval-ms MS] [--breakdown] [--log FILTER] [--keep]

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// The driver picks completion points with the indexer's own analysis and calls the model
// layer directly (`Engine::complete_raw`) to compare; the server it measures is `cairn lsp`.
use cairn_engine::{
    CancellationToken, CompleteRequest, Config, IndexState, Position, Range, TextChange, Trigger,
    Workspace, WorkspaceOptions,
};
use cairn_indexer::{analyze_text, language_label, Lang, SymbolKind};
use cairn_lsp_client::{file_uri, LspClient, Response};
use serde::Serialize;
use serde_json::{json, Value};

const OVERHEAD_P50_TARGET_MS: f64 = 10.0;
const OVERHEAD_P95_TARGET_MS: f64 = 25.0;
/// JSON-RPC `RequestCancelled`.
const REQUEST_CANCELLED: i64 = -32800;
/// Model calls this short vary less with the machine's load.
const SHORT_TOKENS: u32 = 16;

struct Args {
    repo: PathBuf,
    file: String,
    function: Option<String>,
    keystrokes: usize,
    cairn: PathBuf,
    json: Option<PathBuf>,
    burst: bool,
    burst_interval_ms: u64,
    breakdown: bool,
    log: Option<String>,
    keep: bool,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("bench_lsp: {msg}");
    std::process::exit(2)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn args() -> Args {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        repo: git(manifest, &["rev-parse", "--show-toplevel"])
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("..")),
        file: "indexer/src/walk.rs".into(),
        function: None,
        keystrokes: 110,
        cairn: std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("../target"))
            .join("debug/cairn"),
        json: None,
        burst: true,
        burst_interval_ms: 0,
        breakdown: false,
        log: None,
        keep: false,
    };
    let mut function_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| fail(format!("{k} needs a value")))
        };
        match k.as_str() {
            "--repo" => a.repo = PathBuf::from(value()),
            "--file" => a.file = value(),
            "--function" => {
                a.function = Some(value());
                function_given = true;
            }
            "--keystrokes" => {
                a.keystrokes = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--keystrokes N (0: the whole body)"))
            }
            "--cairn" => a.cairn = PathBuf::from(value()),
            "--json" => a.json = Some(PathBuf::from(value())),
            "--no-burst" => a.burst = false,
            "--burst-interval-ms" => {
                a.burst_interval_ms = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--burst-interval-ms MS"))
            }
            "--breakdown" => a.breakdown = true,
            "--log" => a.log = Some(value()),
            "--keep" => a.keep = true,
            other => fail(format!(
                "unknown argument {other}; see the top of lsp/examples/bench_lsp.rs"
            )),
        }
    }
    if !function_given && a.file == "indexer/src/walk.rs" {
        a.function = Some("read_file".into());
    }
    a
}

// ---- the typing session ---------------------------------------------------------

/// Where the deleted body was and what the user types back.
struct Session {
    /// The file's text with the body deleted (an empty line left between the braces).
    start_text: String,
    /// Byte offset of the cursor in `start_text`.
    offset: usize,
    /// The characters typed, in order.
    typed: Vec<char>,
    function: String,
    body_chars: usize,
    line: usize,
}

fn position_at(text: &str, offset: usize) -> Position {
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    Position::new(line, before[start..].encode_utf16().count() as u32)
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The chosen function (or, unnamed, the one with the longest body) and its body: for
/// brace languages the lines between the line of the first `{` and the closing brace's
/// line, otherwise the lines after the first.
fn session_for(path: &str, text: &str, name: Option<&str>, keystrokes: usize) -> Session {
    let lang = Lang::from_path(Path::new(path));
    let mut parser = tree_sitter::Parser::new();
    let analysis = analyze_text(
        &mut parser,
        path,
        lang,
        &language_label(Path::new(path)),
        text,
        &|| false,
    );
    let body_of = |start: usize, end: usize| -> Option<(usize, usize)> {
        let def = &text[start..end];
        let (s, e) = if def.trim_end().ends_with('}') && def.contains('{') {
            let open = start + def.find('{')?;
            let s = open + text[open..].find('\n')? + 1;
            let close = start + def.rfind('}')?;
            (s, line_start(text, close))
        } else {
            let s = start + def.find('\n')? + 1;
            let e = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
            (s, e)
        };
        // All but the body's last newline: an empty line stays for the cursor.
        (e > s + 1).then(|| (s, e - 1))
    };
    let functions: Vec<_> = analysis
        .symbols
        .iter()
        .filter(|s| matches!(s.kind, SymbolKind::Function | SymbolKind::Method))
        .filter_map(|s| body_of(s.start_byte, s.end_byte).map(|b| (s, b)))
        .collect();
    let chosen = match name {
        Some(n) => functions
            .iter()
            .find(|(s, _)| s.name == n)
            .unwrap_or_else(|| {
                let names: Vec<&str> = functions.iter().map(|(s, _)| s.name.as_str()).collect();
                fail(format!(
                    "no function {n:?} with a body in {path}; functions: {}",
                    names.join(", ")
                ))
            }),
        None => functions
            .iter()
            .max_by_key(|(_, (s, e))| e - s)
            .unwrap_or_else(|| fail(format!("no function with a body in {path}"))),
    };
    let (sym, (s, e)) = chosen;
    let body = &text[*s..*e];
    let body_chars = body.chars().count();
    let n = if keystrokes == 0 {
        body_chars
    } else {
        keystrokes.min(body_chars)
    };
    Session {
        start_text: format!("{}{}", &text[..*s], &text[*e..]),
        offset: *s,
        typed: body.chars().take(n).collect(),
        function: sym.name.clone(),
        body_chars,
        line: sym.start_line,
    }
}

/// Copies the repository: a shared clone of a git checkout (the chosen file taken from
/// the working tree, so uncommitted edits count), otherwise a plain copy.
fn copy_repo(src: &Path, dst: &Path, file: &str) -> Option<String> {
    let commit = git(src, &["rev-parse", "HEAD"]);
    let copied = if commit.is_some() {
        Command::new("git")
            .args(["clone", "-q", "--shared", "--no-tags"])
            .arg(src)
            .arg(dst)
            .status()
            .is_ok_and(|s| s.success())
    } else {
        Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(dst)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !copied {
        fail(format!(
            "cannot copy {} to {}",
            src.display(),
            dst.display()
        ));
    }
    let target = dst.join(file);
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
    }
    std::fs::copy(src.join(file), &target)
        .unwrap_or_else(|e| fail(format!("cannot copy {file}: {e}")));
    commit
}

// ---- the server, through the shared test client -----------------------------------

/// `cairn lsp` under test; every failure to talk to it ends the benchmark.
struct Client {
    inner: LspClient,
}

impl Client {
    fn start(cairn: &Path, repo: &Path, env: &[(&str, String)], log: &Path) -> Client {
        let mut cmd = Command::new(cairn);
        cmd.arg("lsp")
            .current_dir(repo)
            .stderr(std::fs::File::create(log).expect("server log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let inner = LspClient::spawn(cmd).unwrap_or_else(|e| {
            fail(format!(
                "cannot start {} lsp: {e} (build it: cargo build -p cairn)",
                cairn.display()
            ))
        });
        Client { inner }
    }

    fn pid(&self) -> u32 {
        self.inner.pid()
    }

    fn notify(&self, method: &str, params: Value) {
        self.inner.notify(method, params);
    }

    /// Sends a request; returns its id and the instant just before it was written.
    fn request(&mut self, method: &str, params: Value) -> (i64, Instant) {
        self.inner.send_request(method, params)
    }

    fn wait(&mut self, id: i64, timeout: Duration) -> Response {
        self.inner
            .wait(id, timeout)
            .unwrap_or_else(|e| fail(format!("{e} (see the server log with --keep)")))
    }

    fn call(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        self.inner
            .call(method, params, timeout)
            .unwrap_or_else(|e| fail(e))
    }

    fn shutdown(self) {
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

fn lsp_pos(p: Position) -> Value {
    json!({"line": p.line, "character": p.character})
}

/// One answer to `textDocument/inlineCompletion`.
#[derive(Debug, Clone, Default)]
struct Answer {
    cancelled: bool,
    error: Option<String>,
    record_id: Option<String>,
    text: Option<String>,
}

fn answer_of(msg: &Value) -> Answer {
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

fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---- statistics -------------------------------------------------------------------

fn pct(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    n: usize,
    p50: Option<f64>,
    p95: Option<f64>,
    max: Option<f64>,
}

fn spread(v: &[f64]) -> Spread {
    Spread {
        n: v.len(),
        p50: pct(v, 50.0),
        p95: pct(v, 95.0),
        max: pct(v, 100.0),
    }
}

fn cell(s: &Spread) -> String {
    match (s.p50, s.p95) {
        (Some(a), Some(b)) => format!("{} / {}", ms(a), ms(b)),
        _ => "–".into(),
    }
}

fn ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Whether the server's item and the direct generation say the same thing (the server
/// post-processes: first line or scope, indentation, brackets), compared without spaces.
fn agree(server: &str, direct: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let (s, d) = (norm(server), norm(direct));
    let head: String = s.chars().take(12).collect();
    d.starts_with(&head)
}

// ---- records ----------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct Keystroke {
    i: usize,
    ch: String,
    line: u32,
    character: u32,
    server_ms: f64,
    cache_hit: bool,
    cancelled: bool,
    error: Option<String>,
    record_id: Option<String>,
    server_text: Option<String>,
    /// `Workspace::completion_request` in-process (window, shape, retrieval): not timed
    /// into `direct_ms`.
    prepare_ms: Option<f64>,
    direct_ms: Option<f64>,
    overhead_ms: Option<f64>,
    direct_text: Option<String>,
    prompt_tokens: Option<u32>,
    reused_prompt_tokens: Option<u32>,
    generated_tokens: Option<u32>,
    outputs_agree: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
struct BurstRequest {
    i: usize,
    sent_ms: f64,
    latency_ms: f64,
    outcome: &'static str,
    cache_hit: bool,
    record_id: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct EngineTiming {
    i: usize,
    from_cache: bool,
    context_ms: f64,
    model_ms: f64,
    ledger_ms: f64,
    total_ms: f64,
    /// total − model: what the engine adds to a model call.
    overhead_ms: f64,
    /// total − model − context − ledger: typing-through check, window, tree-sitter shape,
    /// post-processing.
    other_ms: f64,
}

/// The server and the in-process peer, asked in turn.
struct Peer<'a> {
    client: &'a mut Client,
    ws: &'a Workspace,
    rt: &'a tokio::runtime::Runtime,
    uri: &'a str,
    path: &'a str,
    seen_ids: &'a mut HashSet<String>,
}

impl Peer<'_> {
    /// One inline completion from the server, waited for; then, if the server called the
    /// model, the same prompt straight to the model layer.
    fn step(&mut self, i: usize, ch: char, at: Position) -> Keystroke {
        let (id, sent) = self.client.request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": self.uri}, "position": lsp_pos(at),
                   "context": {"triggerKind": 2}}),
        );
        let r = self.client.wait(id, Duration::from_secs(600));
        let server_ms = r.at.duration_since(sent).as_secs_f64() * 1e3;
        let ans = answer_of(&r.msg);
        // A typing-through hit repeats the record id of an earlier suggestion; a model
        // call makes a new record (or none, for an empty item).
        let cache_hit = ans
            .record_id
            .as_ref()
            .is_some_and(|id| self.seen_ids.contains(id));
        if let Some(id) = &ans.record_id {
            self.seen_ids.insert(id.clone());
        }
        let mut k = Keystroke {
            i,
            ch: ch.to_string(),
            line: at.line,
            character: at.character,
            server_ms,
            cache_hit,
            cancelled: ans.cancelled,
            error: ans.error.clone(),
            record_id: ans.record_id.clone(),
            server_text: ans.text.clone(),
            prepare_ms: None,
            direct_ms: None,
            overhead_ms: None,
            direct_text: None,
            prompt_tokens: None,
            reused_prompt_tokens: None,
            generated_tokens: None,
            outputs_agree: None,
        };
        if cache_hit || ans.error.is_some() {
            return k;
        }
        let t_prep = Instant::now();
        let req = self
            .rt
            .block_on(self.ws.completion_request(self.path, at))
            .unwrap_or_else(|e| fail(e));
        k.prepare_ms = Some(t_prep.elapsed().as_secs_f64() * 1e3);
        let engine = self.ws.models().unwrap_or_else(|e| fail(e));
        let t_model = Instant::now();
        let g = self
            .rt
            .block_on(engine.complete_raw(req, CancellationToken::new()))
            .unwrap_or_else(|e| fail(format!("direct model call: {e}")));
        let direct_ms = t_model.elapsed().as_secs_f64() * 1e3;
        k.direct_ms = Some(direct_ms);
        k.overhead_ms = Some(server_ms - direct_ms);
        k.prompt_tokens = Some(g.usage.prompt_tokens);
        k.reused_prompt_tokens = Some(g.usage.reused_prompt_tokens);
        k.generated_tokens = Some(g.usage.generated_tokens);
        k.outputs_agree = Some(agree(ans.text.as_deref().unwrap_or(""), &g.text));
        k.direct_text = Some(g.text);
        k
    }
}

/// Median and p95 of `n` runs of `f`, in ms.
fn probe(n: usize, mut f: impl FnMut()) -> Spread {
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    spread(&v)
}

fn change(at: Position, ch: char) -> (TextChange, Value, Position) {
    let range = Range::new(at, at);
    let next = if ch == '\n' {
        Position::new(at.line + 1, 0)
    } else {
        Position::new(at.line, at.character + ch.len_utf16() as u32)
    };
    let text = ch.to_string();
    let lsp = json!({"range": {"start": lsp_pos(at), "end": lsp_pos(at)}, "text": text});
    (TextChange::Incremental { range, text }, lsp, next)
}

fn main() {
    let a = args();
    let repo_src = std::fs::canonicalize(&a.repo)
        .unwrap_or_else(|e| fail(format!("repository {}: {e}", a.repo.display())));
    let source = std::fs::read_to_string(repo_src.join(&a.file))
        .unwrap_or_else(|e| fail(format!("{}: {e}", repo_src.join(&a.file).display())));
    let session = session_for(&a.file, &source, a.function.as_deref(), a.keystrokes);
    if session.typed.len() < 100 {
        eprintln!(
            "bench_lsp: only {} keystrokes (the body of {} has {} characters); pick a longer function for ≥ 100 requests",
            session.typed.len(),
            session.function,
            session.body_chars
        );
    }

    // Isolated state: keys, data (index, ledger) and config in a temporary directory;
    // models from the user's cache.
    let tmp = tempfile::Builder::new()
        .prefix("cairn-bench-lsp-")
        .tempdir()
        .expect("temporary directory");
    let tmp_path = tmp.path().to_path_buf();
    let repo = tmp_path.join("repo");
    let commit = copy_repo(&repo_src, &repo, &a.file);
    let file = repo.join(&a.file);
    std::fs::write(&file, &session.start_text).expect("write the truncated file");
    let repo = std::fs::canonicalize(&repo).expect("repository copy");
    let file = repo.join(&a.file);
    std::fs::create_dir_all(tmp_path.join("keys")).expect("key dir");
    std::fs::write(tmp_path.join("config.toml"), "").expect("config file");
    let env: Vec<(&str, String)> = vec![
        (
            "CAIRN_KEY_STORE",
            format!("file:{}", tmp_path.join("keys").display()),
        ),
        (
            "XDG_DATA_HOME",
            tmp_path.join("data").to_string_lossy().into(),
        ),
        (
            "CAIRN_CONFIG",
            tmp_path.join("config.toml").to_string_lossy().into(),
        ),
        ("CAIRN_LOG", a.log.clone().unwrap_or_else(|| "warn".into())),
    ];
    // The in-process workspace must see the same state as the server.
    for k in [
        "CAIRN_DATA_DIR",
        "CAIRN_INDEX_DIR",
        "CAIRN_LEDGER_DIR",
        "CAIRN_REPO",
    ] {
        std::env::remove_var(k);
    }
    for (k, v) in &env {
        std::env::set_var(k, v);
    }

    let load_start = loadavg();
    eprintln!(
        "bench_lsp: {}::{} (line {}), {} of {} body characters typed; copy in {}",
        a.file,
        session.function,
        session.line,
        session.typed.len(),
        session.body_chars,
        tmp_path.display()
    );

    // ---- the server ----
    let log = tmp_path.join("server.log");
    let mut client = Client::start(&a.cairn, &repo, &env, &log);
    let server_pid = client.pid();
    let root_uri = file_uri(&repo);
    let uri = file_uri(&file);
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
                t.elapsed().as_secs_f64(),
                s["index"]["files"]
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // ---- the in-process peer ----
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ws = {
        let repo = repo.clone();
        let config = Config::load(Some(&repo)).unwrap_or_else(|e| fail(e));
        Workspace::open(&repo, config, WorkspaceOptions::default()).unwrap_or_else(|e| fail(e))
    };
    let engine = ws.models().unwrap_or_else(|e| fail(e));
    let identity = engine.completion_model();
    rt.block_on(async {
        let mut rx = ws.index_events();
        let _ = rx
            .wait_for(|s| !matches!(s, IndexState::Opening | IndexState::Indexing { .. }))
            .await;
    });
    let path = file.to_string_lossy().into_owned();
    let language_id = language_label(Path::new(&a.file)).to_ascii_lowercase();

    // ---- sequential: wait for each answer ----
    let mut version = 1;
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": language_id, "version": version,
                                 "text": session.start_text}}),
    );
    ws.open_document(&path, version, session.start_text.clone());
    let mut at = position_at(&session.start_text, session.offset);
    let start_pos = at;
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut keys: Vec<Keystroke> = Vec::new();
    let timeout = Duration::from_secs(600);
    let mut peer = Peer {
        client: &mut client,
        ws: &ws,
        rt: &rt,
        uri: &uri,
        path: &path,
        seen_ids: &mut seen_ids,
    };
    // Warm-up, not counted: the cursor lands on the empty line (an editor asks here
    // too). Both model instances evaluate the cold prompt and fault the weights in.
    let warmup = peer.step(usize::MAX, '\0', at);
    eprintln!(
        "bench_lsp: warm-up at the start position: {:.0} ms server, {} direct",
        warmup.server_ms,
        warmup
            .direct_ms
            .map_or("no".into(), |d| format!("{d:.0} ms"))
    );
    let t_seq = Instant::now();
    for (i, &ch) in session.typed.iter().enumerate() {
        version += 1;
        let (tc, lsp_change, next) = change(at, ch);
        peer.client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version},
                   "contentChanges": [lsp_change]}),
        );
        ws.change_document(&path, version, &[tc])
            .unwrap_or_else(|e| fail(e));
        at = next;
        let k = peer.step(i, ch, at);
        if i % 10 == 0 || i + 1 == session.typed.len() {
            eprintln!(
                "  [{:>4}/{}] {:>8.1} ms server{}{}",
                i + 1,
                session.typed.len(),
                k.server_ms,
                if k.cache_hit { " (typing-through)" } else { "" },
                k.direct_ms
                    .map(|d| format!(", {d:.1} ms direct, overhead {:.1} ms", k.server_ms - d))
                    .unwrap_or_default()
            );
        }
        keys.push(k);
    }
    let seq_wall_s = t_seq.elapsed().as_secs_f64();

    // ---- burst: every keystroke's request without waiting ----
    let mut burst: Vec<BurstRequest> = Vec::new();
    let mut burst_final_direct_ms = None;
    let mut burst_final_direct: Option<Value> = None;
    let mut burst_final_truncated_ms = None;
    let mut burst_wall_s = 0.0;
    if a.burst {
        client.notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        );
        ws.close_document(&path);
        version += 1;
        client.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language_id, "version": version,
                                     "text": session.start_text}}),
        );
        ws.open_document(&path, version, session.start_text.clone());
        at = start_pos;
        let mut sent: Vec<(i64, Instant)> = Vec::new();
        let t0 = Instant::now();
        for &ch in &session.typed {
            version += 1;
            let (_, lsp_change, next) = change(at, ch);
            client.notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uri, "version": version},
                       "contentChanges": [lsp_change]}),
            );
            at = next;
            sent.push(client.request(
                "textDocument/inlineCompletion",
                json!({"textDocument": {"uri": uri}, "position": lsp_pos(at),
                       "context": {"triggerKind": 2}}),
            ));
            if a.burst_interval_ms > 0 {
                std::thread::sleep(Duration::from_millis(a.burst_interval_ms));
            }
        }
        let mut seen: HashSet<String> = seen_ids.clone();
        for (i, (id, at_sent)) in sent.iter().enumerate() {
            let r = client.wait(*id, timeout);
            let ans = answer_of(&r.msg);
            let cache_hit = ans.record_id.as_ref().is_some_and(|x| seen.contains(x));
            if let Some(x) = &ans.record_id {
                seen.insert(x.clone());
            }
            burst.push(BurstRequest {
                i,
                sent_ms: at_sent.duration_since(t0).as_secs_f64() * 1e3,
                latency_ms: r.at.duration_since(*at_sent).as_secs_f64() * 1e3,
                outcome: if ans.cancelled {
                    "cancelled"
                } else if ans.error.is_some() {
                    "error"
                } else if ans.record_id.is_some() {
                    "item"
                } else {
                    "empty"
                },
                cache_hit,
                record_id: ans.record_id,
                text: ans.text,
            });
        }
        burst_wall_s = t0.elapsed().as_secs_f64();
        // The final prompt straight to the model, for scale. The in-process document
        // goes through the same edits after the burst (not during it, so as not to slow
        // it); its retrieval runs after the first one, as the server's first request did
        // (context is kept per region of the file, so the prompt's head matches).
        if let Some(last) = burst.last() {
            if last.outcome != "cancelled" && !last.cache_hit {
                ws.close_document(&path);
                ws.open_document(&path, version, session.start_text.clone());
                let mut p = start_pos;
                let mut first_req = None;
                for (i, &ch) in session.typed.iter().enumerate() {
                    let (tc, _, next) = change(p, ch);
                    ws.change_document(&path, version, &[tc])
                        .unwrap_or_else(|e| fail(e));
                    p = next;
                    if i == 0 {
                        first_req = Some(
                            rt.block_on(ws.completion_request(&path, p))
                                .unwrap_or_else(|e| fail(e)),
                        );
                    }
                }
                let req = rt
                    .block_on(ws.completion_request(&path, p))
                    .unwrap_or_else(|e| fail(e));
                let t = Instant::now();
                if let Ok(g) =
                    rt.block_on(engine.complete_raw(req.clone(), CancellationToken::new()))
                {
                    burst_final_direct_ms = Some(t.elapsed().as_secs_f64() * 1e3);
                    burst_final_direct = Some(json!({
                        "prompt_tokens": g.usage.prompt_tokens,
                        "reused_prompt_tokens": g.usage.reused_prompt_tokens,
                        "generated_tokens": g.usage.generated_tokens,
                        "outputs_agree": agree(last.text.as_deref().unwrap_or(""), &g.text),
                        "text": g.text,
                    }));
                }
                // The same prompt after the model has started the first keystroke's request
                // (one token), as the server's did before that request was cancelled: the
                // KV cache then holds the short prompt, and the final one re-evaluates
                // everything typed since.
                if let Some(mut first) = first_req {
                    first.max_tokens = 1;
                    let _ = rt.block_on(engine.complete_raw(first, CancellationToken::new()));
                    let t = Instant::now();
                    if let Ok(g) = rt.block_on(engine.complete_raw(req, CancellationToken::new())) {
                        burst_final_truncated_ms = Some(t.elapsed().as_secs_f64() * 1e3);
                        if let Some(Value::Object(m)) = &mut burst_final_direct {
                            m.insert(
                                "after_first_keystroke".into(),
                                json!({"ms": burst_final_truncated_ms,
                                       "prompt_tokens": g.usage.prompt_tokens,
                                       "reused_prompt_tokens": g.usage.reused_prompt_tokens,
                                       "generated_tokens": g.usage.generated_tokens}),
                            );
                        }
                    }
                }
            }
        }
    }

    let rss_kib = vm_kib(server_pid, "VmRSS:");
    let hwm_kib = vm_kib(server_pid, "VmHWM:");
    let driver_hwm_kib = vm_kib(std::process::id(), "VmHWM:");
    client.shutdown();

    // ---- breakdown: the engine's own timings, in-process, no LSP ----
    let mut engine_timings: Vec<EngineTiming> = Vec::new();
    if a.breakdown {
        eprintln!("bench_lsp: breakdown pass (Workspace::complete in-process)");
        ws.close_document(&path);
        version += 1;
        ws.open_document(&path, version, session.start_text.clone());
        let complete = |at: Position| {
            rt.block_on(ws.complete(
                CompleteRequest {
                    path: path.clone(),
                    position: at,
                    trigger: Trigger::Automatic,
                    max_items: 3,
                },
                CancellationToken::new(),
            ))
            .unwrap_or_else(|e| fail(e))
        };
        // The same warm-up as the server had.
        complete(start_pos);
        at = start_pos;
        for (i, &ch) in session.typed.iter().enumerate() {
            version += 1;
            let (tc, _, next) = change(at, ch);
            ws.change_document(&path, version, &[tc])
                .unwrap_or_else(|e| fail(e));
            at = next;
            let c = complete(at);
            let t = &c.timings;
            let (model, context, ledger) = if c.from_cache {
                (0.0, 0.0, 0.0)
            } else {
                (t.model_ms, t.context_ms, t.ledger_ms)
            };
            engine_timings.push(EngineTiming {
                i,
                from_cache: c.from_cache,
                context_ms: context,
                model_ms: model,
                ledger_ms: ledger,
                total_ms: t.total_ms,
                overhead_ms: t.total_ms - model,
                other_ms: t.total_ms - model - context - ledger,
            });
        }
    }
    // What a suggestion's ledger step pays besides signing: `git rev-parse HEAD` (the
    // base commit, cached 5 s) and a small append with fsync on the data directory's disk.
    let git_probe = probe(20, || {
        let _ = git(&repo, &["rev-parse", "--verify", "-q", "HEAD"]);
    });
    let fsync_probe = {
        let f = tmp_path.join("data/fsync-probe");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)
            .expect("fsync probe file");
        let line = vec![b'x'; 3000];
        probe(20, || {
            let _ = file.write_all(&line);
            let _ = file.sync_all();
        })
    };
    let load_end = loadavg();

    // ---- report ----
    let model_calls: Vec<&Keystroke> = keys.iter().filter(|k| k.direct_ms.is_some()).collect();
    let hits: Vec<&Keystroke> = keys.iter().filter(|k| k.cache_hit).collect();
    let cancelled = keys.iter().filter(|k| k.cancelled).count();
    let errors = keys
        .iter()
        .filter(|k| k.error.is_some() && !k.cancelled)
        .count();
    let all_server = spread(&keys.iter().map(|k| k.server_ms).collect::<Vec<_>>());
    let call_server = spread(&model_calls.iter().map(|k| k.server_ms).collect::<Vec<_>>());
    let call_direct = spread(
        &model_calls
            .iter()
            .filter_map(|k| k.direct_ms)
            .collect::<Vec<_>>(),
    );
    let overhead_v: Vec<f64> = model_calls.iter().filter_map(|k| k.overhead_ms).collect();
    let overhead = spread(&overhead_v);
    let short: Vec<&&Keystroke> = model_calls
        .iter()
        .filter(|k| k.generated_tokens.is_some_and(|g| g <= SHORT_TOKENS))
        .collect();
    let short_overhead = spread(
        &short
            .iter()
            .filter_map(|k| k.overhead_ms)
            .collect::<Vec<_>>(),
    );
    let hit_server = spread(&hits.iter().map(|k| k.server_ms).collect::<Vec<_>>());
    let prepare = spread(
        &model_calls
            .iter()
            .filter_map(|k| k.prepare_ms)
            .collect::<Vec<_>>(),
    );
    let disagree = model_calls
        .iter()
        .filter(|k| k.outputs_agree == Some(false))
        .count();
    let reevaluated = model_calls
        .iter()
        .filter(|k| {
            matches!((k.prompt_tokens, k.reused_prompt_tokens), (Some(p), Some(r)) if r * 2 < p)
        })
        .count();
    let mean_generated = if model_calls.is_empty() {
        0.0
    } else {
        model_calls
            .iter()
            .filter_map(|k| k.generated_tokens)
            .sum::<u32>() as f64
            / model_calls.len() as f64
    };
    let met = overhead.p50.is_some_and(|v| v <= OVERHEAD_P50_TARGET_MS)
        && overhead.p95.is_some_and(|v| v <= OVERHEAD_P95_TARGET_MS);

    let profile = if a.cairn.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "dev"
    };
    println!(
        "bench/lsp: {} on {}::{} (line {}), {} keystrokes of {} body characters; repository {}{}",
        model_name,
        a.file,
        session.function,
        session.line,
        session.typed.len(),
        session.body_chars,
        repo_src.display(),
        commit
            .as_deref()
            .map(|c| format!(" @ {}", &c[..c.len().min(10)]))
            .unwrap_or_default()
    );
    println!(
        "server: {} lsp ({profile} build); load average {load_start} at start, {load_end} at end",
        a.cairn.display()
    );
    println!();
    println!("| mode | requests | model calls | typing-through hits | cancelled | server p50 / p95 ms | direct model p50 / p95 ms | overhead p50 / p95 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| sequential, all requests | {} | {} | {} | {} | {} | – | – |",
        keys.len(),
        model_calls.len(),
        hits.len(),
        cancelled,
        cell(&all_server)
    );
    println!(
        "| sequential, model calls | {} | {} | – | – | {} | {} | **{}** |",
        model_calls.len(),
        model_calls.len(),
        cell(&call_server),
        cell(&call_direct),
        cell(&overhead)
    );
    println!(
        "| sequential, model calls generating ≤ {SHORT_TOKENS} tokens (less model jitter) | {} | {} | – | – | {} | {} | {} |",
        short.len(),
        short.len(),
        cell(&spread(&short.iter().map(|k| k.server_ms).collect::<Vec<_>>())),
        cell(&spread(&short.iter().filter_map(|k| k.direct_ms).collect::<Vec<_>>())),
        cell(&short_overhead)
    );
    println!(
        "| sequential, typing-through hits | {} | 0 | {} | – | {} | – | {} |",
        hits.len(),
        hits.len(),
        cell(&hit_server),
        cell(&hit_server)
    );
    if a.burst {
        let answered: Vec<&BurstRequest> = burst
            .iter()
            .filter(|b| b.outcome == "item" || b.outcome == "empty")
            .collect();
        let b_cancelled = burst.iter().filter(|b| b.outcome == "cancelled").count();
        let b_hits = burst.iter().filter(|b| b.cache_hit).count();
        let last = burst.last();
        println!(
            "| burst (no waiting{}), final request | {} sent, {} answered | – | {} | {} | final: {} | final prompt: {} | {} |",
            if a.burst_interval_ms > 0 {
                format!(", {} ms apart", a.burst_interval_ms)
            } else {
                String::new()
            },
            burst.len(),
            answered.len(),
            b_hits,
            b_cancelled,
            last.map(|b| format!("{} ({})", ms(b.latency_ms), b.outcome))
                .unwrap_or_default(),
            match (burst_final_direct_ms, burst_final_truncated_ms) {
                (Some(d), Some(t)) => format!("{} (KV cache cut back to the first keystroke's prompt: {})", ms(d), ms(t)),
                (Some(d), None) => ms(d),
                _ => "–".into(),
            },
            match (last, burst_final_direct_ms) {
                (Some(b), Some(d)) => ms(b.latency_ms - d),
                _ => "–".into(),
            }
        );
    }
    println!();
    println!(
        "Overhead (LSP + retrieval + prompt + ledger) p50 {} ms, p95 {} ms — target ≤ {OVERHEAD_P50_TARGET_MS} / ≤ {OVERHEAD_P95_TARGET_MS} ms: {}",
        overhead.p50.map(ms).unwrap_or_default(),
        overhead.p95.map(ms).unwrap_or_default(),
        if met { "met" } else { "NOT met" }
    );
    let iqr = (pct(&overhead_v, 25.0), pct(&overhead_v, 75.0));
    if let (Some(lo), Some(hi)) = iqr {
        println!(
            "Noise: the paired difference's interquartile range is {} … {} ms; the model call it is taken from lasts {} ms (p50), so on a contended machine this subtraction cannot resolve a 10 ms target — see the component estimate below.",
            ms(lo),
            ms(hi),
            call_direct.p50.map(ms).unwrap_or_default()
        );
    }
    println!(
        "In-process Workspace::completion_request (window, tree-sitter shape, retrieval) p50 / p95: {} ms; prompts mostly re-evaluated (reused < 50%): {} of {}; mean generated tokens {:.1}; outputs that differ server vs direct: {}; errors: {}",
        cell(&prepare),
        reevaluated,
        model_calls.len(),
        mean_generated,
        disagree,
        errors
    );
    println!(
        "Server process: VmRSS {} MiB, VmHWM {} MiB at the end (the driver, with its own model and workspace: VmHWM {} MiB). Sequential session {:.0} s, burst {:.0} s.",
        rss_kib.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        hwm_kib.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        driver_hwm_kib.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        seq_wall_s,
        burst_wall_s
    );
    let mut breakdown = serde_json::Map::new();
    if a.breakdown {
        let calls: Vec<&EngineTiming> = engine_timings.iter().filter(|t| !t.from_cache).collect();
        let col =
            |f: fn(&EngineTiming) -> f64| spread(&calls.iter().map(|t| f(t)).collect::<Vec<_>>());
        let (ctx, ledger, other, eng, model) = (
            col(|t| t.context_ms),
            col(|t| t.ledger_ms),
            col(|t| t.other_ms),
            col(|t| t.overhead_ms),
            col(|t| t.model_ms),
        );
        let cached = spread(
            &engine_timings
                .iter()
                .filter(|t| t.from_cache)
                .map(|t| t.total_ms)
                .collect::<Vec<_>>(),
        );
        println!();
        println!(
            "Breakdown: the same session on Workspace::complete in-process (no LSP), {} model calls, {} typing-through hits",
            calls.len(),
            engine_timings.len() - calls.len()
        );
        println!();
        println!("| part | p50 / p95 ms |");
        println!("|---|---:|");
        println!(
            "| context retrieval (`context_for`, cached per 40-line region) | {} |",
            cell(&ctx)
        );
        println!(
            "| ledger (base commit + signed append with fsync) | {} |",
            cell(&ledger)
        );
        println!(
            "| the rest (typing-through check, window, tree-sitter shape, post-processing) | {} |",
            cell(&other)
        );
        println!("| engine overhead (total − model) | {} |", cell(&eng));
        println!("| model (inside the engine) | {} |", cell(&model));
        println!("| typing-through hit, total | {} |", cell(&cached));
        println!(
            "| probe: `git rev-parse --verify -q HEAD` in the copy (20 runs) | {} |",
            cell(&git_probe)
        );
        println!(
            "| probe: 3 KB append + fsync in the data directory (20 runs) | {} |",
            cell(&fsync_probe)
        );
        // Measured without the model in the way: the LSP round trip of a typing-through
        // hit (protocol, transport, the cache path) plus the engine's own overhead.
        let sum = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a + b);
        let (c50, c95) = (sum(hit_server.p50, eng.p50), sum(hit_server.p95, eng.p95));
        let comp_met = c50.is_some_and(|v| v <= OVERHEAD_P50_TARGET_MS)
            && c95.is_some_and(|v| v <= OVERHEAD_P95_TARGET_MS);
        println!(
            "| **component estimate of the overhead**: LSP round trip of a hit + engine overhead | **{} / {}** |",
            c50.map(ms).unwrap_or_default(),
            c95.map(ms).unwrap_or_default()
        );
        println!();
        println!(
            "Component estimate p50 {} ms, p95 {} ms — target ≤ {OVERHEAD_P50_TARGET_MS} / ≤ {OVERHEAD_P95_TARGET_MS} ms: {}",
            c50.map(ms).unwrap_or_default(),
            c95.map(ms).unwrap_or_default(),
            if comp_met { "met" } else { "NOT met" }
        );
        breakdown.insert(
            "component_estimate".into(),
            json!({"p50": c50, "p95": c95, "met": comp_met}),
        );
        for (k, v) in [
            ("context", ctx),
            ("ledger", ledger),
            ("other", other),
            ("engine_overhead", eng),
            ("model", model),
            ("typing_through", cached),
        ] {
            breakdown.insert(k.into(), json!(v));
        }
        breakdown.insert("requests".into(), json!(engine_timings));
    }

    if let Some(out) = &a.json {
        let v = json!({
            "model": model_name,
            "model_identity": identity,
            "repo": repo_src,
            "commit": commit,
            "file": a.file,
            "function": session.function,
            "keystrokes": session.typed.len(),
            "server": a.cairn,
            "server_profile": profile,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "sequential": {
                "all": all_server,
                "model_calls": {"server": call_server, "direct": call_direct, "overhead": overhead,
                                 "short_overhead": short_overhead,
                                 "prepare": prepare, "reevaluated": reevaluated,
                                 "mean_generated_tokens": mean_generated,
                                 "outputs_differ": disagree},
                "typing_through": hit_server,
                "cancelled": cancelled,
                "errors": errors,
                "wall_s": seq_wall_s,
                "requests": keys,
            },
            "burst": if a.burst { json!({
                "interval_ms": a.burst_interval_ms,
                "final_direct_ms": burst_final_direct_ms,
                "final_direct": burst_final_direct,
                "wall_s": burst_wall_s,
                "requests": burst,
            }) } else { Value::Null },
            "breakdown": breakdown,
            "probes": {"git_rev_parse": git_probe, "fsync_3k": fsync_probe},
            "warmup": warmup,
            "target": {"overhead_p50_ms": OVERHEAD_P50_TARGET_MS,
                       "overhead_p95_ms": OVERHEAD_P95_TARGET_MS, "met": met},
            "server_rss_kib": rss_kib,
            "server_hwm_kib": hwm_kib,
            "driver_hwm_kib": driver_hwm_kib,
        });
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(out, serde_json::to_string_pretty(&v).expect("json"))
            .unwrap_or_else(|e| fail(format!("{}: {e}", out.display())));
    }
    drop(ws);
    if a.keep {
        let kept = tmp.keep();
        eprintln!(
            "bench_lsp: kept {} (server log: {})",
            kept.display(),
            kept.join("server.log").display()
        );
    }
}
