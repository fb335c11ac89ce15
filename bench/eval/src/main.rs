//! `cairn-eval`: runs public benchmarks through Cairn's engine and writes one JSON line
//! per item; `bench/eval/score.py` executes and scores them, `bench/run` does both.
//!
//! Every completion goes through `Workspace::complete_with` — the window, tree-sitter
//! shape, retrieval, prompt template, post-processing and ledger record that editors
//! get — never a shortcut to the model. Nothing here knows any item's answer: the
//! ground truth is read only by the scorer.
//!
//! Over 600 lines as one room: a subcommand per benchmark, each one function over the
//! shared set-up at the top.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
// The latency peer calls the model layer itself (below the engine), so the harness
// uses cairn-models directly for it; everything else goes through the engine.
use cairn_engine::{
    CancellationToken, ChatTurn, CompleteRequest, Completion, Config, ContextChoice, IndexOptions,
    IndexState, LocalSpec, ModelSpec, Position, RemoteOptions, Snippet, SnippetKind, Trigger,
    Workspace, WorkspaceOptions,
};
use cairn_models::{Backend, CompletionRequest, LocalModel, LocalOptions, RemoteModel};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(about = "Cairn's evaluation harness (see bench/README.md, Evaluations)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// HumanEval-infilling: Cairn completes each hole; score.py runs the tests.
    Humaneval(HumanevalArgs),
    /// CrossCodeEval: first-line completion with no cross-file context, the benchmark's
    /// own retrieved chunks, and Cairn's retrieval over a checkout of the repository.
    Cceval(CcevalArgs),
    /// SWE-bench issues through the chat path: the sources a chat answer is grounded in
    /// (and, for some, the sources the answer cites).
    Chat(ChatArgs),
    /// Latency of the same completion prompts: Cairn's local backend with and without
    /// prefix reuse, and an OpenAI-compatible server (the peer).
    Latency(LatencyArgs),
    /// Prints the default model's path (verified against its sha256).
    DefaultModel,
    /// Prints a catalogue model's path (`tiny`, `coder-0.5b`, `coder-1.5b`), installing
    /// it first when it is missing (as `cairn models setup NAME` does).
    ModelPath { name: String },
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// A GGUF file for Cairn's local backend (default: the default model from the cache).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// An OpenAI-compatible endpoint (`http://HOST:PORT/v1`) instead of a local model.
    #[arg(long, conflicts_with = "gguf")]
    endpoint: Option<String>,
    /// The model id sent to the endpoint.
    #[arg(long, default_value = "default")]
    remote_model: String,
    /// The endpoint's `/completions` takes `suffix` (fill-in-the-middle).
    #[arg(long)]
    remote_fim: bool,
    /// llama.cpp threads (default: Cairn's own, cores - 1).
    #[arg(long)]
    threads: Option<i32>,
    /// The completion latency budget (ms; 0 = none). Default: the product's, so the
    /// numbers are what an editor gets on this machine.
    #[arg(long)]
    latency_budget_ms: Option<u64>,
}

impl ModelArgs {
    fn config(&self) -> Result<Config> {
        let mut cfg = Config::default();
        cfg.completion.latency_budget_ms = self.latency_budget_ms;
        let spec = if let Some(url) = &self.endpoint {
            ModelSpec::Remote(RemoteOptions {
                base_url: url.clone(),
                model: self.remote_model.clone(),
                fim: self.remote_fim,
                first_token_timeout_ms: 600_000,
                total_timeout_ms: 600_000,
                ..Default::default()
            })
        } else if self.gguf.is_some() || self.threads.is_some() {
            let path = match &self.gguf {
                Some(p) => p.clone(),
                None => default_model_path()?,
            };
            ModelSpec::Local(LocalSpec {
                path: Some(path),
                n_threads: self.threads,
                n_threads_batch: self.threads,
                ..Default::default()
            })
        } else {
            return Ok(cfg);
        };
        cfg.models.insert("eval".into(), spec);
        cfg.routing.complete = "eval".into();
        cfg.routing.chat = "eval".into();
        Ok(cfg)
    }

    fn label(&self) -> String {
        match (&self.endpoint, &self.gguf) {
            (Some(u), _) => format!("{} @ {u}", self.remote_model),
            (None, Some(p)) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |f| f.to_string_lossy().into()),
            (None, None) => "default".into(),
        }
    }
}

fn default_model_path() -> Result<PathBuf> {
    let mut reg = cairn_models::Registry::open_default()?;
    let entry = reg
        .verified(cairn_models::registry::DEFAULT_MODEL_NAME)
        .map_err(|e| anyhow!("the default model: {e} (run `make setup`)"))?;
    Ok(entry.path.clone())
}

#[derive(Args)]
struct Selection {
    /// Keep about 1 item in K, chosen by a hash of the item's id (deterministic, blind
    /// to content). 1 = every item.
    #[arg(long, default_value_t = 1)]
    sample: u64,
    /// At most this many items (after sampling), in file order.
    #[arg(long)]
    limit: Option<usize>,
    /// Run shard I of N (`I/N`, 0-based) of the selected items, for parallel processes.
    #[arg(long, default_value = "0/1")]
    shard: String,
}

impl Selection {
    fn pick<T>(&self, items: Vec<T>, id: impl Fn(&T) -> String) -> Result<Vec<T>> {
        let (i, n) = self
            .shard
            .split_once('/')
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            .filter(|(i, n)| *n > 0 && i < n)
            .ok_or_else(|| anyhow!("--shard wants I/N with I < N, got {:?}", self.shard))?;
        let k = self.sample.max(1);
        let mut picked: Vec<T> = items
            .into_iter()
            .filter(|it| k == 1 || hash_u64(&id(it)) % k == 0)
            .collect();
        if let Some(l) = self.limit {
            picked.truncate(l);
        }
        Ok(picked
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % n == i)
            .map(|(_, t)| t)
            .collect())
    }
}

fn hash_u64(s: &str) -> u64 {
    let d = Sha256::digest(s.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

#[derive(Args)]
struct HumanevalArgs {
    /// HumanEval-SingleLineInfilling.jsonl(.gz) or HumanEval-MultiLineInfilling.jsonl(.gz).
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// The editor was idle at the hole before the request: the cursor's report warmed the
    /// model there first (`Workspace::prefill_at`, what `cairn/cursorMoved` starts), and
    /// the latency is the request's alone (the prefill's time is written beside it).
    #[arg(long)]
    prefill: bool,
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct CcevalArgs {
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// A directory with one checkout per `metadata.repository` (bench/eval/cceval-checkouts.sh);
    /// without it the `cairn` condition is skipped.
    #[arg(long)]
    checkouts: Option<PathBuf>,
    /// Conditions to run, comma-separated: none, benchmark, cairn.
    #[arg(long, default_value = "none,benchmark,cairn")]
    conditions: String,
    /// The editor was idle at the cursor before each request (see `humaneval --prefill`).
    #[arg(long)]
    prefill: bool,
    /// Characters of cross-file context a prompt may hold, for the benchmark's chunks and
    /// Cairn's retrieval alike (default: the product's).
    #[arg(long)]
    context_chars: Option<usize>,
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct ChatArgs {
    /// swebench_dev.jsonl.
    #[arg(long)]
    data: PathBuf,
    /// One checkout per instance_id (bench/retrieval/checkouts.sh).
    #[arg(long)]
    checkouts: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Also have the model answer (and cite) for 1 instance in K by id hash; 0 = never.
    #[arg(long, default_value_t = 0)]
    answer_sample: u64,
    /// Tokens per answer.
    #[arg(long, default_value_t = 256)]
    answer_tokens: u32,
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct LatencyArgs {
    /// A HumanEval-infilling file: the prompts are every hole of the first problems, in
    /// file order, as an editor session visiting one file after another.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 8)]
    problems: usize,
    /// The peer: an OpenAI-compatible server serving the same GGUF.
    #[arg(long)]
    server: Option<String>,
    #[arg(long, default_value = "m")]
    server_model: String,
    /// Tokens generated per request (the same cap on every side).
    #[arg(long, default_value_t = 16)]
    max_tokens: u32,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // `CAIRN_LOG` (e.g. `cairn_models=debug`) as in every Cairn process.
    cairn_engine::init_logging();
    // A private ledger and key for the run (every completion writes a signed record);
    // the caller's environment wins if it sets them.
    let scratch = tempfile::Builder::new().prefix("cairn-eval-").tempdir()?;
    for (k, v) in [
        (
            "CAIRN_KEY_STORE",
            format!("file:{}", scratch.path().join("keys").display()),
        ),
        (
            "CAIRN_DATA_DIR",
            scratch.path().join("data").display().to_string(),
        ),
    ] {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Humaneval(a) => humaneval(&rt, scratch.path(), a),
        Cmd::Cceval(a) => cceval(&rt, scratch.path(), a),
        Cmd::Chat(a) => chat(&rt, scratch.path(), a),
        Cmd::Latency(a) => latency(&rt, a),
        Cmd::ModelPath { name } => {
            let mut reg = cairn_models::Registry::open_default()?;
            let entry = reg
                .install(&name, &mut cairn_models::InstallOptions::default())
                .map_err(|e| anyhow!("model `{name}`: {e}"))?;
            println!("{}", entry.path.display());
            Ok(())
        }
        Cmd::DefaultModel => {
            println!("{}", default_model_path()?.display());
            Ok(())
        }
    }
}

// ---- input ---------------------------------------------------------------------

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a valid item", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

/// The LSP position (UTF-16 columns) at the end of `prefix`.
fn position_after(prefix: &str) -> Position {
    let line = prefix.matches('\n').count() as u32;
    let last = prefix.rsplit('\n').next().unwrap_or("");
    Position::new(line, last.encode_utf16().count() as u32)
}

struct Output(std::fs::File);

impl Output {
    fn create(path: &Path) -> Result<Output> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Output(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        ))
    }

    fn write(&mut self, v: &Value) -> Result<()> {
        writeln!(self.0, "{v}")?;
        self.0.flush()?;
        Ok(())
    }
}

fn options(index_dir: Option<PathBuf>, context_chars: Option<usize>) -> WorkspaceOptions {
    let product = WorkspaceOptions::default();
    WorkspaceOptions {
        context_chars: context_chars.unwrap_or(product.context_chars),
        watch: false,
        no_index: index_dir.is_none(),
        index: IndexOptions {
            index_dir,
            ..Default::default()
        },
        // Off, so a background reference build never competes with what is measured.
        references: cairn_engine::ReferenceOptions {
            policy: cairn_engine::ReferencePolicy::Off,
            ..Default::default()
        },
        ..product
    }
}

/// The workspace's model must load: a benchmark of a missing model is an error.
fn open_workspace(
    root: &Path,
    model: &ModelArgs,
    index_dir: Option<PathBuf>,
    context_chars: Option<usize>,
) -> Result<Arc<Workspace>> {
    let ws = Workspace::open(root, model.config()?, options(index_dir, context_chars))?;
    ws.models()
        .map_err(|e| anyhow!("model {}: {e}", model.label()))?;
    Ok(ws)
}

/// Waits for the background index to be searchable.
fn wait_indexed(rt: &tokio::runtime::Runtime, ws: &Workspace) -> Result<u64> {
    let mut rx = ws.index_events();
    rt.block_on(async {
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                IndexState::Ready { files } | IndexState::ReadOnly { files, .. } => {
                    return Ok(files)
                }
                IndexState::Error { message } => bail!("index: {message}"),
                IndexState::Disabled => bail!("index disabled"),
                _ => {}
            }
            if tokio::time::timeout(Duration::from_secs(600), rx.changed())
                .await
                .is_err()
            {
                bail!("index not ready after 10 minutes");
            }
        }
    })
}

/// One completion through the engine, as an editor's explicit request for one item
/// (greedy; no typing-through cache).
/// With `prefill`, the model is warmed at the cursor first (an editor idle there) for the
/// prompt this request makes (its own context condition), and its time is returned beside
/// the request's.
fn complete(
    rt: &tokio::runtime::Runtime,
    ws: &Workspace,
    path: &str,
    prefix: &str,
    suffix: &str,
    context: ContextChoice,
    prefill: bool,
) -> (Result<Completion, String>, f64, Option<f64>) {
    ws.open_document(path, 1, format!("{prefix}{suffix}"));
    let position = position_after(prefix);
    let prefill_ms = prefill.then(|| {
        let t = Instant::now();
        let warm = ws.prefill_with(path, position, context.clone(), CancellationToken::new());
        if let Err(e) = rt.block_on(warm) {
            eprintln!("prefill {path}: {e}");
        }
        t.elapsed().as_secs_f64() * 1e3
    });
    let req = CompleteRequest {
        path: path.to_string(),
        position,
        trigger: Trigger::Invoked,
        max_items: 1,
    };
    let t = Instant::now();
    let r = rt
        .block_on(ws.complete_with(req, CancellationToken::new(), context))
        .map_err(|e| e.to_string());
    let ms = t.elapsed().as_secs_f64() * 1e3;
    ws.close_document(path);
    (r, ms, prefill_ms)
}

fn completion_facts(r: &Result<Completion, String>, wall_ms: f64) -> Value {
    match r {
        Ok(c) => {
            let u = c.usage.as_ref();
            json!({
                "completion": c.items.first().map(|i| i.text.clone()).unwrap_or_default(),
                "multiline": c.multiline,
                "prompt_tokens": u.map(|u| u.prompt_tokens),
                "reused_tokens": u.map(|u| u.reused_prompt_tokens),
                "generated_tokens": u.map(|u| u.generated_tokens),
                "prompt_ms": u.map(|u| u.prompt_time.as_secs_f64() * 1e3),
                "decode_threads": u.map(|u| u.decode_threads),
                "max_tokens": c.budget.as_ref().and_then(|b| b.prompt.as_ref()).map(|p| p.max_tokens),
                "context_snippets": c.context.len(),
                "context_ms": c.timings.context_ms,
                "model_ms": c.timings.model_ms,
                "latency_ms": wall_ms,
            })
        }
        Err(e) => json!({"completion": "", "error": e, "latency_ms": wall_ms}),
    }
}

// ---- HumanEval-infilling -------------------------------------------------------

#[derive(Deserialize)]
struct HumanevalItem {
    task_id: String,
    prompt: String,
    suffix: String,
}

fn humaneval(rt: &tokio::runtime::Runtime, scratch: &Path, a: HumanevalArgs) -> Result<()> {
    let items: Vec<HumanevalItem> = read_jsonl(&a.data)?;
    let items = a.select.pick(items, |i| i.task_id.clone())?;
    let root = scratch.join("humaneval");
    std::fs::create_dir_all(&root)?;
    let ws = open_workspace(&root, &a.model, None, None)?;
    let mut out = Output::create(&a.out)?;
    let label = a.model.label();
    let total = items.len();
    for (n, it) in items.into_iter().enumerate() {
        // One file per task, as a user would have it open. The hole is whole lines (every
        // prompt ends with a line break and every answer with one): in an editor that is
        // an empty line where the user is about to write, so the document holds one, the
        // cursor sits on it, and what ends up between prompt and suffix is the inserted
        // text followed by that line's own break.
        let path = format!("{}.py", it.task_id.replace('/', "_"));
        let suffix = format!("\n{}", it.suffix);
        let (r, ms, prefill_ms) = complete(
            rt,
            &ws,
            &path,
            &it.prompt,
            &suffix,
            ContextChoice::Without,
            a.prefill,
        );
        let mut v = completion_facts(&r, ms);
        if let Some(p) = prefill_ms {
            v["prefill_ms"] = json!(p);
        }
        if let Some(c) = v["completion"].as_str() {
            v["completion"] = json!(format!("{c}\n"));
        }
        v["task_id"] = json!(it.task_id);
        v["model"] = json!(label);
        out.write(&v)?;
        progress("humaneval", n + 1, total);
    }
    Ok(())
}

fn progress(what: &str, done: usize, total: usize) {
    if done == total || done % 10 == 0 {
        eprintln!("{what}: {done}/{total}");
    }
}

// ---- CrossCodeEval -------------------------------------------------------------

#[derive(Deserialize)]
struct CcItem {
    prompt: String,
    right_context: String,
    metadata: CcMeta,
    crossfile_context: CcContext,
}

#[derive(Deserialize)]
struct CcMeta {
    task_id: String,
    repository: String,
    file: String,
}

#[derive(Deserialize)]
struct CcContext {
    list: Vec<CcChunk>,
}

#[derive(Deserialize)]
struct CcChunk {
    retrieved_chunk: String,
    filename: String,
    score: f32,
}

fn cceval(rt: &tokio::runtime::Runtime, scratch: &Path, a: CcevalArgs) -> Result<()> {
    let items: Vec<CcItem> = read_jsonl(&a.data)?;
    let items = a.select.pick(items, |i| i.metadata.task_id.clone())?;
    let conditions: Vec<&str> = a.conditions.split(',').map(str::trim).collect();
    for c in &conditions {
        if !["none", "benchmark", "cairn"].contains(c) {
            bail!("unknown condition {c:?}: none, benchmark, cairn");
        }
    }
    let mut out = Output::create(&a.out)?;
    let label = a.model.label();
    let total = items.len();

    // The first two conditions need no repository: a bare workspace.
    if conditions.iter().any(|c| *c == "none" || *c == "benchmark") {
        let root = scratch.join("cceval");
        std::fs::create_dir_all(&root)?;
        let ws = open_workspace(&root, &a.model, None, a.context_chars)?;
        for (n, it) in items.iter().enumerate() {
            for cond in conditions.iter().filter(|c| **c != "cairn") {
                let context = if *cond == "none" {
                    ContextChoice::Without
                } else {
                    // The benchmark's chunks, best first; the engine fits them into the
                    // same character budget as its own retrieval.
                    let mut chunks: Vec<&CcChunk> = it.crossfile_context.list.iter().collect();
                    chunks.sort_by(|x, y| y.score.total_cmp(&x.score));
                    ContextChoice::Given(
                        chunks
                            .into_iter()
                            .map(|c| Snippet {
                                path: c.filename.clone(),
                                start_line: 1,
                                end_line: 1 + c.retrieved_chunk.matches('\n').count(),
                                text: c.retrieved_chunk.clone(),
                                score: c.score,
                                kind: SnippetKind::Similar,
                                reason: "the benchmark's retrieved chunk".into(),
                            })
                            .collect(),
                    )
                };
                let (r, ms, prefill_ms) = complete(
                    rt,
                    &ws,
                    &it.metadata.file,
                    &it.prompt,
                    &it.right_context,
                    context,
                    a.prefill,
                );
                let mut v = completion_facts(&r, ms);
                if let Some(p) = prefill_ms {
                    v["prefill_ms"] = json!(p);
                }
                v["task_id"] = json!(it.metadata.task_id);
                v["condition"] = json!(cond);
                v["model"] = json!(label);
                out.write(&v)?;
            }
            progress("cceval (none, benchmark)", n + 1, total);
        }
    }

    if !conditions.contains(&"cairn") {
        return Ok(());
    }
    let Some(checkouts) = &a.checkouts else {
        eprintln!("cceval: no --checkouts, the cairn condition is skipped");
        return Ok(());
    };
    // Cairn's own retrieval: per repository, a private copy of the checkout indexed by
    // the workspace. For each item the file holds what the user has written so far
    // (prompt + right context, not the line being completed) and is saved, so the
    // index never holds the answer; afterwards the original file is put back.
    let mut by_repo: BTreeMap<&str, Vec<&CcItem>> = BTreeMap::new();
    for it in &items {
        by_repo
            .entry(it.metadata.repository.as_str())
            .or_default()
            .push(it);
    }
    let mut done = 0;
    for (repo, its) in by_repo {
        let src = checkouts.join(repo);
        if !src.is_dir() {
            eprintln!(
                "cceval: no checkout {}; its {} items are skipped",
                src.display(),
                its.len()
            );
            for it in its {
                out.write(
                    &json!({"task_id": it.metadata.task_id, "condition": "cairn",
                    "model": label, "skipped": format!("no checkout of {repo}")}),
                )?;
            }
            continue;
        }
        let root = scratch.join("cceval-repos").join(repo);
        copy_dir(&src, &root)?;
        let ws = open_workspace(
            &root,
            &a.model,
            Some(scratch.join("cceval-index").join(repo)),
            a.context_chars,
        )?;
        let files = wait_indexed(rt, &ws)?;
        for it in its {
            let path = it.metadata.file.as_str();
            let abs = root.join(path);
            let original = std::fs::read(&abs).ok();
            let text = format!("{}{}", it.prompt, it.right_context);
            std::fs::write(&abs, &text).with_context(|| format!("write {}", abs.display()))?;
            ws.open_document(path, 1, text);
            rt.block_on(ws.save_document(path));
            ws.close_document(path);
            let (r, ms, prefill_ms) = complete(
                rt,
                &ws,
                path,
                &it.prompt,
                &it.right_context,
                ContextChoice::Retrieve,
                a.prefill,
            );
            let mut v = completion_facts(&r, ms);
            if let Some(p) = prefill_ms {
                v["prefill_ms"] = json!(p);
            }
            v["task_id"] = json!(it.metadata.task_id);
            v["condition"] = json!("cairn");
            v["model"] = json!(label);
            v["indexed_files"] = json!(files);
            out.write(&v)?;
            // Put the file back as the repository had it.
            match original {
                Some(bytes) => {
                    std::fs::write(&abs, &bytes)?;
                    ws.open_document(path, 2, String::from_utf8_lossy(&bytes).into_owned());
                    rt.block_on(ws.save_document(path));
                    ws.close_document(path);
                }
                None => {
                    std::fs::remove_file(&abs)?;
                    rt.block_on(ws.forget_file(path));
                }
            }
            done += 1;
            progress("cceval (cairn)", done, total);
        }
    }
    Ok(())
}

fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        std::fs::remove_dir_all(dst)?;
    }
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &to)?;
        }
        // Symlinks are left out: the index never follows them out of the root anyway.
    }
    Ok(())
}

// ---- chat retrieval --------------------------------------------------------------

#[derive(Deserialize)]
struct SweItem {
    instance_id: String,
    query: String,
}

fn chat(rt: &tokio::runtime::Runtime, scratch: &Path, a: ChatArgs) -> Result<()> {
    let items: Vec<SweItem> = read_jsonl(&a.data)?;
    let items = a.select.pick(items, |i| i.instance_id.clone())?;
    let mut out = Output::create(&a.out)?;
    let total = items.len();
    for (n, it) in items.into_iter().enumerate() {
        let root = a.checkouts.join(&it.instance_id);
        if !root.is_dir() {
            out.write(&json!({"instance_id": it.instance_id,
                "skipped": format!("no checkout {}", root.display())}))?;
            continue;
        }
        let ws = open_workspace(
            &root,
            &a.model,
            Some(scratch.join("chat-index").join(&it.instance_id)),
            None,
        )?;
        let t = Instant::now();
        wait_indexed(rt, &ws)?;
        let index_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let sources = rt
            .block_on(ws.chat_sources(&it.query))
            .with_context(|| format!("retrieval for {}", it.instance_id))?;
        let retrieval_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut v = json!({
            "instance_id": it.instance_id,
            "model": a.model.label(),
            "sources": sources.iter().map(|s| json!({"path": s.path, "start_line": s.start_line,
                "end_line": s.end_line, "retriever": s.retriever})).collect::<Vec<_>>(),
            "index_ms": index_ms,
            "retrieval_ms": retrieval_ms,
        });
        if a.answer_sample > 0 && hash_u64(&it.instance_id) % a.answer_sample == 0 {
            let t = Instant::now();
            let turn = ChatTurn {
                question: it.query.clone(),
                conversation: None,
                path: None,
                range: None,
                kind: Default::default(),
                max_tokens: Some(a.answer_tokens),
                // Measured: a repeated item must run the model, not the response cache.
                no_cache: true,
            };
            match rt.block_on(ws.chat(turn, None, CancellationToken::new())) {
                Ok(ans) => {
                    v["answer_sources"] = json!(ans
                        .sources
                        .iter()
                        .map(|s| s.path.clone())
                        .collect::<Vec<_>>());
                    v["cited"] = json!(ans
                        .citations
                        .iter()
                        .map(|c| c.path.clone())
                        .collect::<Vec<_>>());
                    v["answer_ms"] = json!(t.elapsed().as_secs_f64() * 1e3);
                    v["answer_tokens"] = json!(ans.usage.generated_tokens);
                    v["prompt_tokens"] = json!(ans.usage.prompt_tokens);
                }
                Err(e) => v["answer_error"] = json!(e.to_string()),
            }
        }
        out.write(&v)?;
        progress("chat", n + 1, total);
    }
    Ok(())
}

// ---- latency against a peer ------------------------------------------------------

fn latency(rt: &tokio::runtime::Runtime, a: LatencyArgs) -> Result<()> {
    let items: Vec<HumanevalItem> = read_jsonl(&a.data)?;
    let mut problems: Vec<String> = Vec::new();
    let mut picked = Vec::new();
    for it in items {
        let problem = it.task_id.rsplit_once('/').map_or("", |x| x.0).to_string();
        if !problems.contains(&problem) {
            if problems.len() == a.problems {
                continue;
            }
            problems.push(problem);
        }
        picked.push(it);
    }
    // The exact requests the engine sends for these holes.
    let dir = tempfile::tempdir()?;
    let ws = Workspace::open(dir.path(), Config::default(), options(None, None))?;
    let mut requests = Vec::new();
    for it in &picked {
        let path = format!("{}.py", it.task_id.replace('/', "_"));
        ws.open_document(&path, 1, format!("{}{}", it.prompt, it.suffix));
        let mut req = rt.block_on(ws.completion_request(&path, position_after(&it.prompt)))?;
        ws.close_document(&path);
        req.max_tokens = a.max_tokens;
        requests.push(req);
    }
    drop(ws);

    let gguf = match &a.model.gguf {
        Some(p) => p.clone(),
        None => default_model_path()?,
    };
    let threads = a
        .model
        .threads
        .unwrap_or_else(|| LocalOptions::default().threads());
    let local = |reuse: bool, lookup_draft: u32| -> Result<LocalModel> {
        Ok(LocalModel::load(
            "eval",
            &gguf,
            None,
            LocalOptions {
                n_threads: Some(threads),
                n_threads_batch: Some(threads),
                reuse_prefix: reuse,
                lookup_draft,
                ..Default::default()
            },
        )?)
    };
    let mut sides: Vec<(String, Box<dyn Backend>)> = vec![
        (
            "cairn local, prefix reuse".into(),
            Box::new(local(true, 0)?),
        ),
        ("cairn local, no reuse".into(), Box::new(local(false, 0)?)),
        (
            "cairn local, prefix reuse + prompt lookup 8".into(),
            Box::new(local(true, 8)?),
        ),
    ];
    if let Some(url) = &a.server {
        sides.push((
            "llama-cpp-python server".into(),
            Box::new(RemoteModel::new(
                "peer",
                RemoteOptions {
                    base_url: url.clone(),
                    model: a.server_model.clone(),
                    first_token_timeout_ms: 600_000,
                    total_timeout_ms: 600_000,
                    ..Default::default()
                },
                None,
            )?),
        ));
    }
    let mut rows = Vec::new();
    for (name, backend) in &sides {
        // One warm-up request outside the measurement (page cache, thread pool).
        let mut warm = CompletionRequest::new("def f():\n", "");
        warm.max_tokens = 2;
        rt.block_on(backend.complete(warm, None, CancellationToken::new()))?;
        let mut samples = Vec::new();
        for (i, req) in requests.iter().enumerate() {
            let t = Instant::now();
            let g = rt.block_on(backend.complete(req.clone(), None, CancellationToken::new()))?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let prompt_tokens = g.usage.prompt_tokens;
            samples.push(json!({
                "i": i,
                "latency_ms": ms,
                "prompt_tokens": prompt_tokens,
                "reused_tokens": g.usage.reused_prompt_tokens,
                "generated_tokens": g.usage.generated_tokens,
                "ttft_ms": g.usage.time_to_first_token.map(|d| d.as_secs_f64() * 1e3),
                "chars": g.text.len(),
            }));
        }
        eprintln!("latency: {name} done");
        rows.push(json!({"side": name, "samples": samples}));
    }
    let mut out = Output::create(&a.out)?;
    out.write(&json!({
        "model": gguf.file_name().map(|f| f.to_string_lossy().into_owned()),
        "threads": threads,
        "requests": requests.len(),
        "problems": problems,
        "max_tokens": a.max_tokens,
        "sides": rows,
    }))?;
    Ok(())
}
