//! The local backend: llama.cpp through `llama-cpp-2`.
//!
//! One dedicated thread owns the model and its context for the life of the process;
//! requests reach it over a channel and answers come back on a oneshot, so decoding never
//! runs on the async runtime. The KV cache of sequence 0 is kept between requests and the
//! longest common token prefix with the previous prompt is reused: typing one more
//! character evaluates only the last few tokens.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::budget;
use crate::stop::StopMatcher;
use crate::template::{self, FimFamily, FimTokens, PartRole, Prompt, PromptPart, VocabTokens};
use crate::types::*;
use crate::{Backend, ModelError};

/// How the local model is run. Defaults suit a laptop without a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalOptions {
    /// Context window in tokens (capped at the model's training context).
    pub n_ctx: u32,
    /// Tokens per decode call while evaluating a prompt.
    pub n_batch: u32,
    /// Threads for generation (one token at a time). Default: one fewer than the cores
    /// (at least 1), because llama.cpp's workers spin and collapse when they compete
    /// with a build for cores.
    pub n_threads: Option<i32>,
    /// Threads for prompt batches. Default: all cores (a prompt batch is the part of a
    /// cold completion that takes longest, and it is short).
    pub n_threads_batch: Option<i32>,
    /// Layers offloaded to the GPU. Default: all when a GPU backend is compiled in, else 0.
    pub n_gpu_layers: Option<u32>,
    /// Keep the KV cache of the previous prompt and evaluate only the tokens after the
    /// common prefix (the main latency lever while typing). Off: every prompt is
    /// evaluated from the start (benchmarks compare the two).
    pub reuse_prefix: bool,
    /// Prompt-lookup decoding for greedy requests: when the last few tokens (3 to 5)
    /// occurred earlier in the prompt or the output, up to this many of the tokens that
    /// followed them there are checked in one batch and kept as far as they match the
    /// model's own greedy choices; the text is the greedy text either way. 0 (the
    /// default) turns it off: on CPU a drafted token costs about 0.7 of a decode, so it
    /// pays only when most drafts are accepted, and measured on SmolLM2 it did not
    /// (bench/README.md, Models). Worth trying where a batch costs about one decode (GPU).
    pub lookup_draft: u32,
    /// A completion prompt never gets longer than this many tokens, whatever the
    /// request holds (a 20 MB one-line file included): context files, then the start of
    /// the prefix and the end of the suffix are cut. The context window caps it too.
    pub max_prompt_tokens: u32,
    /// Measure prompt and decode speed when the model loads (a short fixed probe; the
    /// result is cached per model and machine, see [`crate::speed`]). Needed for
    /// latency budgets; off: budgets are ignored.
    pub speed_probe: bool,
    /// Speculative decoding: a smaller model with the same vocabulary (coder-0.5b for
    /// coder-1.5b) drafts `draft_tokens` tokens that this model checks in one batch.
    /// Greedy chat requests only; the text is this model's greedy text either way.
    pub draft_model: Option<PathBuf>,
    /// Tokens the draft model proposes at a time (adapted while generating: doubled
    /// after a full acceptance, shortened after a miss).
    pub draft_tokens: u32,
}

/// Tokens the prefix keeps whatever the budget (the cursor's line or so).
const MIN_PREFIX_TOKENS: usize = 32;
/// Prompt batch while prefilling: small, so that a real request waits at most one.
const PREFILL_BATCH: usize = 64;

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            n_ctx: 4096,
            n_batch: 512,
            n_threads: None,
            n_threads_batch: None,
            n_gpu_layers: None,
            reuse_prefix: true,
            lookup_draft: 0,
            max_prompt_tokens: 2048,
            speed_probe: true,
            draft_model: None,
            draft_tokens: 4,
        }
    }
}

impl LocalOptions {
    pub fn threads(&self) -> i32 {
        self.n_threads.unwrap_or_else(|| {
            let cores = crate::speed::cores() as i32;
            (cores - 1).clamp(1, 8)
        })
    }

    pub fn threads_batch(&self) -> i32 {
        self.n_threads_batch
            .unwrap_or_else(|| (crate::speed::cores() as i32).clamp(1, 16))
    }

    pub fn gpu_layers(&self) -> u32 {
        self.n_gpu_layers
            .unwrap_or(if crate::gpu_backend().is_some() {
                u32::MAX
            } else {
                0
            })
    }
}

/// What the worker learned from the GGUF when it loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModelInfo {
    pub vocab: VocabTokens,
    /// Text of every control token (`<|im_end|>`, `<file_sep>` …): chat content that
    /// contains one is defused so it cannot act as the token.
    pub control_texts: Vec<String>,
    pub n_ctx: u32,
    pub n_ctx_train: u32,
    pub chat_template: Option<String>,
    pub n_params: u64,
    /// The speed measured (or read from the cache) when the model loaded.
    pub measured_speed: Option<Speed>,
    /// Whether a draft model for speculative decoding is loaded.
    pub draft: bool,
}

fn backend() -> Result<&'static LlamaBackend, ModelError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            let backend = LlamaBackend::init().map_err(|e| e.to_string());
            register_exit_hook();
            backend
        })
        .as_ref()
        .map_err(|e| ModelError::Runtime(format!("cannot initialise llama.cpp: {e}")))
}

/// A model thread, as the process sees it at exit.
struct WorkerHandle {
    jobs: mpsc::Sender<Msg>,
    closing: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn lock_workers() -> std::sync::MutexGuard<'static, Vec<WorkerHandle>> {
    static WORKERS: Mutex<Vec<WorkerHandle>> = Mutex::new(Vec::new());
    WORKERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Stops every model thread: the job in flight ends as if cancelled (between tokens or
/// prompt batches), each thread frees its context and model, and this waits up to
/// `timeout` for them. Returns whether all of them ended.
///
/// Call it before the process exits. llama.cpp keeps global state that C++ destructors
/// tear down at exit; a model thread still decoding, or freeing its model because the
/// last handle was dropped during shutdown, races those destructors and can crash the
/// process after its work is done. Later requests to a stopped model fail with
/// `WorkerGone`.
pub fn shutdown_workers(timeout: Duration) -> bool {
    let handles: Vec<WorkerHandle> = std::mem::take(&mut *lock_workers());
    for h in &handles {
        h.closing.store(true, Ordering::Relaxed);
        let _ = h.jobs.send(Msg::Close);
    }
    let deadline = Instant::now() + timeout;
    let mut all = true;
    for h in handles {
        while !h.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if h.thread.is_finished() {
            let _ = h.thread.join();
        } else {
            all = false;
        }
    }
    all
}

/// The safety net for processes that exit without calling [`shutdown_workers`] (tests,
/// tools): registered right after llama.cpp initialises, so it runs before the
/// destructors llama.cpp registered while initialising.
fn register_exit_hook() {
    extern "C" fn at_exit() {
        shutdown_workers(Duration::from_secs(5));
    }
    // SAFETY: `atexit` only records a function pointer; `at_exit` never unwinds
    // (shutdown_workers does not panic: poisoned locks are recovered, joins are checked).
    #[allow(unsafe_code)]
    unsafe {
        libc::atexit(at_exit);
    }
}

/// Checks that a path is a readable GGUF file before llama.cpp sees it, so the user gets
/// an error that names the file and says what to do.
pub fn check_gguf(path: &Path) -> Result<(), ModelError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    if n < 4 || &magic != b"GGUF" {
        return Err(ModelError::NotGguf {
            path: path.to_path_buf(),
            found: String::from_utf8_lossy(&magic[..n])
                .escape_debug()
                .to_string(),
        });
    }
    Ok(())
}

enum JobKind {
    Complete(CompletionRequest),
    Chat(ChatRequest),
}

enum Msg {
    Job(Box<Job>),
    Prefill(Box<PrefillJob>),
    /// Stop: free the context and the model, then end the thread.
    Close,
}

struct PrefillJob {
    req: CompletionRequest,
    cancel: CancellationToken,
    reply: oneshot::Sender<Result<Prefilled, ModelError>>,
}

struct Job {
    kind: JobKind,
    sink: TokenSink,
    cancel: CancellationToken,
    reply: oneshot::Sender<Result<Generation, ModelError>>,
}

/// A GGUF model loaded into llama.cpp, served by its own thread.
pub struct LocalModel {
    jobs: mpsc::Sender<Msg>,
    identity: ModelIdentity,
    info: Arc<LocalModelInfo>,
    /// The speed the budget uses: the probe's, then followed by real requests.
    speed: Arc<Mutex<Option<Speed>>>,
}

impl LocalModel {
    /// Loads `path` and starts its worker thread. `sha256` is the file's digest when the
    /// caller already knows it (the registry does); otherwise it is computed.
    pub fn load(
        name: &str,
        path: &Path,
        sha256: Option<String>,
        options: LocalOptions,
    ) -> Result<LocalModel, ModelError> {
        check_gguf(path)?;
        let sha256 = match sha256 {
            Some(s) => s,
            None => crate::registry::sha256_file(path)?,
        };
        backend()?;
        let (jobs, rx) = mpsc::channel::<Msg>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let path_buf = path.to_path_buf();
        let closing = Arc::new(AtomicBool::new(false));
        let speed = Arc::new(Mutex::new(None));
        let thread = std::thread::Builder::new()
            .name(format!("cairn-llama:{name}"))
            .spawn({
                let name = name.to_string();
                let closing = closing.clone();
                let speed = speed.clone();
                move || {
                    worker(
                        path_buf, name, sha256, options, rx, ready_tx, closing, speed,
                    )
                }
            })
            .map_err(|e| ModelError::Runtime(format!("cannot start the model thread: {e}")))?;
        {
            let mut workers = lock_workers();
            // Threads of models dropped since have ended; forget them.
            workers.retain(|w| !w.thread.is_finished());
            workers.push(WorkerHandle {
                jobs: jobs.clone(),
                closing,
                thread,
            });
        }
        let (info, identity) = ready_rx.recv().map_err(|_| {
            ModelError::WorkerGone("the model thread exited while loading".into())
        })??;
        Ok(LocalModel {
            jobs,
            identity,
            info: Arc::new(info),
            speed,
        })
    }

    pub fn info(&self) -> &LocalModelInfo {
        &self.info
    }

    fn submit(
        &self,
        kind: JobKind,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        let (reply, rx) = oneshot::channel();
        // The job has a token of its own, cancelled when the caller drops this future
        // (an editor that moved on, a request the LSP client cancelled): an answer
        // nobody waits for stops at the next batch or token instead of running on.
        let job_cancel = cancel.child_token();
        let on_drop = job_cancel.clone().drop_guard();
        let sent = self.jobs.send(Msg::Job(Box::new(Job {
            kind,
            sink,
            cancel: job_cancel,
            reply,
        })));
        Box::pin(async move {
            sent.map_err(|_| ModelError::WorkerGone("the model thread has stopped".into()))?;
            let r = rx.await.map_err(|_| {
                ModelError::WorkerGone("the model thread dropped the request".into())
            })?;
            on_drop.disarm();
            r
        })
    }
}

impl Drop for LocalModel {
    /// The registry of model threads holds a sender too, so dropping this one alone
    /// would not end the thread: ask it to free the model and stop.
    fn drop(&mut self) {
        let _ = self.jobs.send(Msg::Close);
    }
}

impl Backend for LocalModel {
    fn identity(&self) -> ModelIdentity {
        self.identity.clone()
    }

    fn supports_fim(&self) -> bool {
        self.info.vocab.fim.is_some()
    }

    fn complete(
        &self,
        req: CompletionRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        self.submit(JobKind::Complete(req), sink, cancel)
    }

    fn chat(
        &self,
        req: ChatRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        self.submit(JobKind::Chat(req), sink, cancel)
    }

    fn speed(&self) -> Option<Speed> {
        *self
            .speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn prefill(
        &self,
        req: CompletionRequest,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Prefilled, ModelError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .jobs
            .send(Msg::Prefill(Box::new(PrefillJob { req, cancel, reply })));
        Box::pin(async move {
            sent.map_err(|_| ModelError::WorkerGone("the model thread has stopped".into()))?;
            rx.await.map_err(|_| {
                ModelError::WorkerGone("the model thread dropped the request".into())
            })?
        })
    }
}

type Ready = Result<(LocalModelInfo, ModelIdentity), ModelError>;

#[allow(clippy::too_many_arguments)]
fn worker(
    path: PathBuf,
    name: String,
    sha256: String,
    options: LocalOptions,
    jobs: mpsc::Receiver<Msg>,
    ready: mpsc::Sender<Ready>,
    closing: Arc<AtomicBool>,
    speed: Arc<Mutex<Option<Speed>>>,
) {
    let backend = match backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let params = LlamaModelParams::default().with_n_gpu_layers(options.gpu_layers());
    let model = match LlamaModel::load_from_file(backend, &path, &params) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(ModelError::LoadFailed {
                path: path.clone(),
                detail: e.to_string(),
            }));
            return;
        }
    };
    let n_ctx = options.n_ctx.min(model.n_ctx_train().max(256)).max(256);
    let threads = options.threads();
    let threads_batch = options.threads_batch();
    let ctx_params = || {
        LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(options.n_batch.min(n_ctx))
            .with_n_ubatch(options.n_batch.min(n_ctx))
            .with_n_threads(threads)
            .with_n_threads_batch(threads_batch)
    };
    let ctx = match model.new_context(backend, ctx_params()) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(ModelError::LoadFailed {
                path: path.clone(),
                detail: format!("cannot create a context of {n_ctx} tokens: {e}"),
            }));
            return;
        }
    };
    // The draft model for speculative decoding, on this same thread.
    let draft_model = match &options.draft_model {
        Some(dp) => {
            if let Err(e) = check_gguf(dp) {
                let _ = ready.send(Err(e));
                return;
            }
            match LlamaModel::load_from_file(backend, dp, &params) {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = ready.send(Err(ModelError::LoadFailed {
                        path: dp.clone(),
                        detail: e.to_string(),
                    }));
                    return;
                }
            }
        }
        None => None,
    };
    let draft = match &draft_model {
        Some(dm) => {
            if dm.n_vocab() != model.n_vocab() {
                let _ = ready.send(Err(ModelError::Config(format!(
                    "draft model {} has a vocabulary of {} tokens, {} has {}: a draft model must share the model's tokenizer (coder-0.5b drafts for coder-1.5b)",
                    options.draft_model.as_deref().unwrap_or(Path::new("")).display(),
                    dm.n_vocab(),
                    path.display(),
                    model.n_vocab()
                ))));
                return;
            }
            match dm.new_context(backend, ctx_params()) {
                Ok(c) => Some(Draft {
                    model: dm,
                    ctx: c,
                    cached: Vec::new(),
                }),
                Err(e) => {
                    let _ = ready.send(Err(ModelError::LoadFailed {
                        path: options.draft_model.clone().unwrap_or_default(),
                        detail: format!("cannot create the draft model's context: {e}"),
                    }));
                    return;
                }
            }
        }
        None => None,
    };
    let vocab = vocab_tokens(&model);
    let chat_template = model
        .chat_template(None)
        .ok()
        .and_then(|t| t.to_string().ok());
    let control_texts = {
        let v = model.vocab();
        let mut texts: Vec<String> = v
            .tokens()
            .filter(|&t| v.is_control(t))
            .filter_map(|t| token_text(&model, t))
            .filter(|t| t.chars().count() >= 2)
            .collect();
        texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
        texts.dedup();
        texts
    };
    let model_id = model.meta_val_str("general.name").unwrap_or_else(|_| {
        path.file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    });
    let quantization = model
        .meta_val_str("general.file_type")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .and_then(file_type_name)
        .map(str::to_string);
    let identity = ModelIdentity {
        name,
        origin: Origin::Local,
        gguf_sha256: Some(sha256.clone()),
        endpoint: None,
        model_id,
        quantization,
        runtime: format!("llama.cpp (llama-cpp-2 {})", crate::LLAMA_CPP_2_VERSION),
    };
    let mut info = LocalModelInfo {
        vocab,
        control_texts,
        n_ctx: ctx.n_ctx(),
        n_ctx_train: model.n_ctx_train(),
        chat_template,
        n_params: model.n_params(),
        measured_speed: None,
        draft: draft.is_some(),
    };
    let mut state = Worker {
        model: &model,
        ctx,
        cached: Vec::new(),
        info: info.clone(),
        identity: identity.clone(),
        n_batch: options.n_batch.min(n_ctx) as usize,
        reuse_prefix: options.reuse_prefix,
        lookup_draft: options.lookup_draft as usize,
        max_prompt_tokens: options.max_prompt_tokens.max(64) as usize,
        draft,
        draft_tokens: options.draft_tokens.max(1) as usize,
        pieces: None,
        closing,
        speed: speed.clone(),
        speed_store: None,
    };
    // How fast this model runs here: cached per model and machine, else measured now.
    if options.speed_probe {
        let policy = crate::speed::probe_policy();
        let key = crate::speed::SpeedKey::for_this_machine(
            &sha256,
            options.gpu_layers(),
            threads,
            threads_batch,
        );
        let cache = crate::speed::SpeedCache::open_default();
        let measured = match policy {
            crate::speed::ProbePolicy::Off => None,
            crate::speed::ProbePolicy::Cached => cache.get(&key).map(|m| m.speed),
            crate::speed::ProbePolicy::Again => None,
        }
        .or_else(|| {
            if policy == crate::speed::ProbePolicy::Off {
                return None;
            }
            let s = state.probe_speed().ok()?;
            cache.put(&key, s);
            Some(s)
        });
        info.measured_speed = measured;
        state.info.measured_speed = measured;
        state.speed_store = measured.map(|s| (cache, key, s));
        *speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = measured;
    }
    if ready.send(Ok((info, identity))).is_err() {
        return;
    }
    // Jobs in arrival order; a prefill that finds anything waiting gives way to it.
    let mut pending: VecDeque<Msg> = VecDeque::new();
    loop {
        let msg = match pending.pop_front() {
            Some(m) => m,
            None => match jobs.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
        };
        match msg {
            Msg::Close => break,
            Msg::Job(job) => {
                let job = *job;
                if job.cancel.is_cancelled() || state.closing.load(Ordering::Relaxed) {
                    let _ = job.reply.send(Err(ModelError::Cancelled));
                    continue;
                }
                // A panic inside llama.cpp bindings must not take the process down with it.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    state.run(job.kind, &job.sink, &job.cancel)
                }))
                .unwrap_or_else(|_| {
                    state.reset();
                    Err(ModelError::Runtime(
                        "llama.cpp worker panicked; the KV cache was reset".into(),
                    ))
                });
                let _ = job.reply.send(result);
            }
            Msg::Prefill(job) => {
                let job = *job;
                while let Ok(m) = jobs.try_recv() {
                    pending.push_back(m);
                }
                if !pending.is_empty()
                    || job.cancel.is_cancelled()
                    || state.closing.load(Ordering::Relaxed)
                {
                    let _ = job.reply.send(Ok(Prefilled {
                        abandoned: true,
                        ..Default::default()
                    }));
                    continue;
                }
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    state.prefill(&job.req, &job.cancel, &jobs, &mut pending)
                }))
                .unwrap_or_else(|_| {
                    state.reset();
                    Err(ModelError::Runtime(
                        "llama.cpp worker panicked; the KV cache was reset".into(),
                    ))
                });
                let _ = job.reply.send(result);
            }
        }
    }
}

/// GGUF `general.file_type` values (llama_ftype) for the common quantizations.
fn file_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

fn token_text(model: &LlamaModel, t: LlamaToken) -> Option<String> {
    if t.0 < 0 || t.0 >= model.n_vocab() {
        return None;
    }
    let bytes = model.vocab().token_to_piece(t, true, None);
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// Reads FIM and repository tokens from the model's vocabulary.
pub fn vocab_tokens(model: &LlamaModel) -> VocabTokens {
    let vocab = model.vocab();
    let fim = match (
        token_text(model, vocab.fim_pre()),
        token_text(model, vocab.fim_suf()),
        token_text(model, vocab.fim_mid()),
    ) {
        (Some(prefix), Some(suffix), Some(middle)) => Some(FimTokens {
            family: FimFamily::detect(&prefix),
            prefix,
            suffix,
            middle,
        }),
        // Codestral has no middle token: the prompt ends after the prefix.
        (Some(prefix), Some(suffix), None)
            if FimFamily::detect(&prefix) == FimFamily::Codestral =>
        {
            Some(FimTokens {
                family: FimFamily::Codestral,
                prefix,
                suffix,
                middle: String::new(),
            })
        }
        _ => None,
    };
    let mut candidates = Vec::new();
    for name in [
        "<repo_name>",
        "<|repo_name|>",
        "<reponame>",
        "<file_sep>",
        "<|file_sep|>",
        "<filename>",
    ] {
        let toks = vocab.tokenize(name.as_bytes(), false, true);
        if toks.len() == 1 && vocab.is_control(toks[0])
            || toks.len() == 1 && token_text(model, toks[0]).as_deref() == Some(name)
        {
            candidates.push(name);
        }
    }
    VocabTokens {
        fim,
        ..Default::default()
    }
    .with_repo_tokens(candidates)
}

/// Turns prompt parts into tokens: control tokens parsed, text never.
pub fn tokenize_prompt(model: &LlamaModel, prompt: &Prompt, add_bos: bool) -> Vec<LlamaToken> {
    let vocab = model.vocab();
    let mut out = Vec::new();
    if add_bos && vocab.should_add_bos() && vocab.bos().0 >= 0 {
        out.push(vocab.bos());
    }
    for part in &prompt.parts {
        match part {
            PromptPart::Special(t) => out.extend(vocab.tokenize(t.as_bytes(), false, true)),
            PromptPart::Text(t) => out.extend(vocab.tokenize(t.as_bytes(), false, false)),
        }
    }
    out
}

/// Tokenizes `text` (special tokens never parsed). A long text is tokenized only from
/// its end (`from_end`, a prefix) or its start (a suffix, a context file) as far as
/// `need` tokens reach, growing the slice until it holds more than that; returns whether
/// the whole text was tokenized. The few tokens at a slice's cut are dropped: they may
/// differ from the whole text's.
fn tokenize_bounded(
    model: &LlamaModel,
    text: &str,
    need: usize,
    from_end: bool,
) -> (Vec<LlamaToken>, bool) {
    let vocab = model.vocab();
    let mut bytes = (need * 8).max(4096);
    loop {
        if bytes >= text.len() {
            return (vocab.tokenize(text.as_bytes(), false, false), true);
        }
        let slice = if from_end {
            let mut start = text.len() - bytes;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            &text[start..]
        } else {
            let mut end = bytes;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            &text[..end]
        };
        let mut toks = vocab.tokenize(slice.as_bytes(), false, false);
        if toks.len() > need + 64 {
            if from_end {
                toks.drain(..8);
            } else {
                toks.truncate(toks.len() - 8);
            }
            return (toks, false);
        }
        bytes = bytes.saturating_mul(4);
    }
}

struct Worker<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    /// Tokens whose keys and values are in sequence 0 of the KV cache, in order.
    cached: Vec<LlamaToken>,
    info: LocalModelInfo,
    identity: ModelIdentity,
    n_batch: usize,
    reuse_prefix: bool,
    /// See [`LocalOptions::lookup_draft`].
    lookup_draft: usize,
    /// See [`LocalOptions::max_prompt_tokens`].
    max_prompt_tokens: usize,
    /// See [`LocalOptions::draft_model`].
    draft: Option<Draft<'m>>,
    draft_tokens: usize,
    /// Each token's bytes, built the first time token healing or budgeting needs them.
    pieces: Option<Vec<Vec<u8>>>,
    /// Set by [`shutdown_workers`]: the job in flight stops as if cancelled.
    closing: Arc<AtomicBool>,
    /// Shared with [`LocalModel::speed`].
    speed: Arc<Mutex<Option<Speed>>>,
    /// Where the followed speed is written back, and the speed last written: a probe
    /// taken while the machine was busy (or idle) is corrected by what real requests
    /// take, for this process and the next one.
    speed_store: Option<(crate::speed::SpeedCache, crate::speed::SpeedKey, Speed)>,
}

/// The draft model of speculative decoding and its own KV cache.
struct Draft<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    cached: Vec<LlamaToken>,
}

impl Draft<'_> {
    /// Brings the draft's cache to `history` + `last` and proposes up to `max` greedy
    /// tokens to follow (fewer when it reaches an end-of-generation or control token).
    fn propose(
        &mut self,
        history: &[LlamaToken],
        last: LlamaToken,
        max: usize,
    ) -> Result<Vec<LlamaToken>, ModelError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let want_len = history.len() + 1;
        let at = |i: usize| if i < history.len() { history[i] } else { last };
        let mut common = self
            .cached
            .iter()
            .enumerate()
            .take_while(|&(i, t)| i < want_len && *t == at(i))
            .count();
        common = common.min(want_len - 1);
        if self
            .ctx
            .kv_cache_seq_rm(0, Some(common as u32), None)
            .is_err()
        {
            self.ctx.clear_kv_cache();
            self.cached.clear();
            common = 0;
        }
        self.cached.truncate(common);
        let n_batch = self.ctx.n_batch().max(1) as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let rest: Vec<LlamaToken> = (common..want_len).map(at).collect();
        for (ci, chunk) in rest.chunks(n_batch).enumerate() {
            batch.clear();
            let last_chunk = (ci + 1) * n_batch >= rest.len();
            for (i, &t) in chunk.iter().enumerate() {
                batch
                    .add(
                        t,
                        (self.cached.len() + i) as i32,
                        &[0],
                        last_chunk && i + 1 == chunk.len(),
                    )
                    .map_err(|e| ModelError::Runtime(format!("draft batch: {e}")))?;
            }
            self.ctx
                .decode(&mut batch)
                .map_err(|e| ModelError::Runtime(format!("draft model: {e}")))?;
            self.cached.extend_from_slice(chunk);
        }
        let vocab = self.model.vocab();
        let mut greedy = LlamaSampler::greedy();
        let mut out = Vec::with_capacity(max);
        let n_ctx = self.ctx.n_ctx() as usize;
        for i in 0..max {
            let t = greedy.sample(&self.ctx, -1);
            if vocab.is_eog(t) || vocab.is_control(t) {
                break;
            }
            out.push(t);
            if i + 1 == max || self.cached.len() + 1 >= n_ctx {
                break;
            }
            batch.clear();
            batch
                .add(t, self.cached.len() as i32, &[0], true)
                .map_err(|e| ModelError::Runtime(format!("draft batch: {e}")))?;
            self.ctx
                .decode(&mut batch)
                .map_err(|e| ModelError::Runtime(format!("draft model: {e}")))?;
            self.cached.push(t);
        }
        Ok(out)
    }
}

struct Limits<'a> {
    max_tokens: u32,
    stop: Vec<String>,
    sampling: &'a Sampling,
    deadline: Option<Instant>,
    /// Token healing: the bytes of the prompt's last token, taken off the prompt; the
    /// first generated token must start with them (and they are not output again).
    heal: Option<Vec<u8>>,
    /// Draft with the draft model (greedy chat).
    speculative: bool,
}

/// A fitted completion prompt.
struct Fitted {
    prompt: Prompt,
    tokens: Vec<LlamaToken>,
    /// Tokens up to the end of the prefix (what a prefill evaluates).
    through_prefix: usize,
}

/// The fixed text the speed probe evaluates (any code does: only its length matters).
const PROBE_TEXT: &str = "fn verify(ledger: &Ledger, key: &PublicKey) -> Result<usize, Error> {\n    let mut previous = None;\n    for (seq, line) in ledger.lines().enumerate() {\n        let record = Record::parse(line)?;\n        if record.seq != seq as u64 {\n            return Err(Error::Gap { expected: seq, found: record.seq });\n        }\n        key.verify(&record.payload, &record.signature)?;\n        previous = Some(record.digest());\n    }\n    Ok(previous.map_or(0, |_| ledger.len()))\n}\n";

impl Worker<'_> {
    fn stopped(&self, cancel: &CancellationToken) -> bool {
        cancel.is_cancelled() || self.closing.load(Ordering::Relaxed)
    }

    fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    fn current_speed(&self) -> Option<Speed> {
        *self
            .speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows real requests: the budget uses what the machine does now (a build
    /// beside the editor slows it), starting from the probe's numbers.
    fn observe(&mut self, usage: &Usage) {
        let mut guard = self
            .speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(s) = guard.as_mut() else {
            return;
        };
        const ALPHA: f64 = 0.3;
        let evaluated = usage
            .prompt_tokens
            .saturating_sub(usage.reused_prompt_tokens);
        if evaluated >= 32 && !usage.prompt_time.is_zero() {
            let tps = evaluated as f64 / usage.prompt_time.as_secs_f64();
            s.prompt_tokens_per_s += ALPHA * (tps - s.prompt_tokens_per_s);
        }
        if usage.generated_tokens >= 8 && usage.drafted_tokens == 0 {
            if let Some(first) = usage.time_to_first_token {
                let t = usage.total_time.saturating_sub(first).as_secs_f64();
                if t > 0.0 {
                    let tps = (usage.generated_tokens - 1) as f64 / t;
                    s.decode_tokens_per_s += ALPHA * (tps - s.decode_tokens_per_s);
                }
            }
        }
        let now = *s;
        drop(guard);
        self.store_speed(now);
    }

    /// Writes the followed speed back to the speed cache when it moved by more than a
    /// fifth from what the cache holds (so a few requests, not every one, write).
    fn store_speed(&mut self, now: Speed) {
        let Some((cache, key, stored)) = self.speed_store.as_mut() else {
            return;
        };
        let moved = |a: f64, b: f64| (a - b).abs() > 0.2 * b.max(1e-3);
        if moved(now.prompt_tokens_per_s, stored.prompt_tokens_per_s)
            || moved(now.decode_tokens_per_s, stored.decode_tokens_per_s)
        {
            cache.put(key, now);
            *stored = now;
        }
    }

    /// Evaluates a fixed prompt (128 tokens in one batch) and decodes 16 tokens one at a
    /// time, after a short warm-up that pages the weights in. Leaves the cache empty.
    fn probe_speed(&mut self) -> Result<Speed, ModelError> {
        let vocab = self.model.vocab();
        let mut text = String::new();
        let mut tokens = Vec::new();
        while tokens.len() < 160 {
            text.push_str(PROBE_TEXT);
            tokens = vocab.tokenize(text.as_bytes(), false, false);
        }
        let n_ctx = self.ctx.n_ctx() as usize;
        let (warm, prompt, decode) = (16usize, 128usize.min(n_ctx / 2), 16usize);
        self.reset();
        let mut batch = LlamaBatch::new(self.n_batch.max(prompt), 1);
        let mut eval = |ctx: &mut LlamaContext<'_>, toks: &[LlamaToken], at: usize| {
            batch.clear();
            for (i, &t) in toks.iter().enumerate() {
                batch
                    .add(t, (at + i) as i32, &[0], i + 1 == toks.len())
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| ModelError::Runtime(format!("speed probe: {e}")))
        };
        for i in 0..warm {
            eval(&mut self.ctx, &tokens[i..i + 1], i)?;
        }
        self.ctx.clear_kv_cache();
        let t0 = Instant::now();
        for (ci, chunk) in tokens[..prompt].chunks(self.n_batch.max(1)).enumerate() {
            eval(&mut self.ctx, chunk, ci * self.n_batch.max(1))?;
        }
        let prompt_time = t0.elapsed();
        let t1 = Instant::now();
        for i in 0..decode {
            eval(
                &mut self.ctx,
                &tokens[prompt + i..prompt + i + 1],
                prompt + i,
            )?;
        }
        let decode_time = t1.elapsed();
        self.reset();
        let speed = Speed {
            prompt_tokens_per_s: prompt as f64 / prompt_time.as_secs_f64().max(1e-6),
            decode_tokens_per_s: decode as f64 / decode_time.as_secs_f64().max(1e-6),
        };
        tracing::info!(
            model = %self.identity.name,
            prompt_tps = speed.prompt_tokens_per_s,
            decode_tps = speed.decode_tokens_per_s,
            "measured the model's speed"
        );
        Ok(speed)
    }

    fn run(
        &mut self,
        kind: JobKind,
        sink: &TokenSink,
        cancel: &CancellationToken,
    ) -> Result<Generation, ModelError> {
        let started = Instant::now();
        let (prompt, tokens, limits) = match &kind {
            JobKind::Complete(req) => {
                let Fitted {
                    prompt, mut tokens, ..
                } = self.fit_completion(req, req.latency_budget)?;
                // A prompt that ends in text (prefix continuation) ends at a token
                // boundary the model rarely saw in training: a lone "\n" before an
                // indented line, half an identifier. Back off that token and let the
                // model choose any token that starts with its text.
                let heal = if matches!(prompt.parts.last(), Some(PromptPart::Text(_))) {
                    self.heal(&mut tokens)
                } else {
                    None
                };
                let mut stop = req.stop.clone();
                if prompt.info.mode == "fim" {
                    stop.extend(template::fim_stops(req));
                }
                let limits = Limits {
                    max_tokens: req.max_tokens,
                    stop,
                    sampling: &req.sampling,
                    deadline: req.deadline,
                    heal,
                    speculative: false,
                };
                (prompt, tokens, limits)
            }
            JobKind::Chat(req) => {
                let (prompt, tokens) = self.chat_prompt(req)?;
                let limits = Limits {
                    max_tokens: req.max_tokens,
                    stop: req.stop.clone(),
                    sampling: &req.sampling,
                    deadline: req.deadline,
                    heal: None,
                    speculative: self.draft.is_some() && req.sampling.is_greedy(),
                };
                (prompt, tokens, limits)
            }
        };
        let n_ctx = self.ctx.n_ctx() as usize;
        if tokens.is_empty() {
            return Err(ModelError::Runtime("the prompt is empty".into()));
        }
        if tokens.len() >= n_ctx {
            return Err(ModelError::PromptTooLong {
                prompt_tokens: tokens.len(),
                n_ctx,
            });
        }
        let sampling = limits.sampling.clone();
        let (text, stop_reason, mut usage) =
            self.generate(&tokens, &limits, sink, cancel, started)?;
        usage.total_time = started.elapsed();
        self.observe(&usage);
        Ok(Generation {
            text,
            stop_reason,
            usage,
            model: self.identity.clone(),
            sampling,
            prompt: prompt.info,
            fallback: None,
        })
    }

    /// Builds the completion prompt and fits it to the token cap and, with a budget and
    /// a measured speed, to the latency budget (see [`crate::budget`]).
    fn fit_completion(
        &mut self,
        req: &CompletionRequest,
        budget: Option<Duration>,
    ) -> Result<Fitted, ModelError> {
        let mut prompt = template::completion_prompt(&self.info.vocab, req);
        let n_ctx = self.ctx.n_ctx() as usize;
        let reserve = (req.max_tokens as usize).min(n_ctx / 2);
        let cap = self
            .max_prompt_tokens
            .min(n_ctx.saturating_sub(reserve + 1));
        self.pieces();
        let model = self.model;
        let vocab = model.vocab();
        let pieces = self.pieces.as_ref().expect("built above");
        let piece = |t: LlamaToken| -> &[u8] {
            usize::try_from(t.0)
                .ok()
                .and_then(|i| pieces.get(i))
                .map_or(&[][..], Vec::as_slice)
        };
        let newline_cut = |toks: &[LlamaToken], i: usize| {
            (i > 0 && piece(toks[i - 1]).ends_with(b"\n"))
                || (i < toks.len() && piece(toks[i]).starts_with(b"\n"))
        };

        // Tokens of every part; huge texts are tokenized from the cursor outwards only
        // as far as the cap can reach (then cut in tokens).
        let mut segments: Vec<budget::Segment<LlamaToken>> = Vec::new();
        // Per part: its segment and its token range in that segment.
        let mut part_at: Vec<(usize, std::ops::Range<usize>)> =
            Vec::with_capacity(prompt.parts.len());
        let mut whole = Vec::with_capacity(prompt.parts.len());
        let bos = vocab.should_add_bos() && vocab.bos().0 >= 0;
        if bos {
            segments.push(budget::Segment::new(
                budget::SegmentKind::Fixed,
                vec![vocab.bos()],
            ));
        }
        let mut prev_role = None;
        for (part, role) in prompt.parts.iter().zip(&prompt.roles) {
            let (kind, toks, complete) = match (part, role) {
                (PromptPart::Special(t), PartRole::Context(_)) => (
                    budget::SegmentKind::Context,
                    vocab.tokenize(t.as_bytes(), false, true),
                    true,
                ),
                (PromptPart::Special(t), _) => (
                    budget::SegmentKind::Fixed,
                    vocab.tokenize(t.as_bytes(), false, true),
                    true,
                ),
                (PromptPart::Text(t), PartRole::Prefix) => {
                    let (toks, complete) = tokenize_bounded(model, t, cap, true);
                    (budget::SegmentKind::Prefix, toks, complete)
                }
                (PromptPart::Text(t), PartRole::Suffix) => {
                    let (toks, complete) = tokenize_bounded(model, t, cap, false);
                    (budget::SegmentKind::Suffix, toks, complete)
                }
                (PromptPart::Text(t), PartRole::Context(_)) => {
                    let (toks, complete) = tokenize_bounded(model, t, cap, false);
                    (budget::SegmentKind::Context, toks, complete)
                }
                (PromptPart::Text(t), PartRole::Fixed) => (
                    budget::SegmentKind::Fixed,
                    vocab.tokenize(t.as_bytes(), false, false),
                    true,
                ),
            };
            whole.push(complete);
            // A context file's parts form one segment; everything else is its own.
            let merge = matches!(role, PartRole::Context(_)) && prev_role == Some(*role);
            prev_role = Some(*role);
            if merge {
                let si = segments.len() - 1;
                let last = &mut segments[si];
                let at = last.tokens.len();
                last.tokens.extend(toks);
                part_at.push((si, at..last.tokens.len()));
            } else {
                let n = toks.len();
                segments.push(budget::Segment::new(kind, toks));
                part_at.push((segments.len() - 1, 0..n));
            }
        }
        for seg in &mut segments {
            let toks = &seg.tokens;
            match seg.kind {
                budget::SegmentKind::Prefix | budget::SegmentKind::Suffix => {
                    seg.cuts = (1..toks.len()).filter(|&i| newline_cut(toks, i)).collect();
                }
                _ => {}
            }
        }
        let speed = self.current_speed();
        let allowed_new = match (budget, speed) {
            (Some(b), Some(s)) => {
                let decode = req.max_tokens as f64 / s.decode_tokens_per_s.max(1e-3);
                let left = (b.as_secs_f64() - decode).max(0.0);
                Some((left * s.prompt_tokens_per_s) as usize)
            }
            _ => None,
        };
        let limits = budget::Limits {
            cap,
            allowed_new,
            min_prefix: MIN_PREFIX_TOKENS,
        };
        let cached: &[LlamaToken] = if self.reuse_prefix { &self.cached } else { &[] };
        let plan = budget::plan(&segments, cached, &limits);
        let tokens = plan.tokens(&segments);

        // What was kept and cut, for the record; the prompt's parts follow the plan so
        // that its digest is that of what the model saw.
        let mut report = PromptBudget {
            budget_ms: budget.map(|b| b.as_millis() as u64),
            cap_tokens: cap as u32,
            allowed_new_tokens: allowed_new.map(|a| a as u32),
            cached_tokens: plan.cached as u32,
            new_tokens: plan.new_tokens() as u32,
            estimated_ms: speed.map(|s| {
                s.estimate(plan.new_tokens() as u32, req.max_tokens)
                    .as_millis() as u64
            }),
            over_budget: plan.over_budget,
            ..Default::default()
        };
        let mut through_prefix = 0;
        let mut offset = 0;
        for (seg, keep) in segments.iter().zip(&plan.keep) {
            let (kept, cut) = (keep.len() as u32, (seg.tokens.len() - keep.len()) as u32);
            match seg.kind {
                budget::SegmentKind::Context => {
                    if keep.is_empty() {
                        report.context_files_dropped += 1;
                        report.context_tokens_dropped += cut;
                    } else {
                        report.context_files_kept += 1;
                        report.context_tokens_kept += kept;
                    }
                }
                budget::SegmentKind::Prefix => {
                    report.prefix_tokens_kept += kept;
                    report.prefix_tokens_cut += cut;
                    through_prefix = offset + keep.len();
                }
                budget::SegmentKind::Suffix => {
                    report.suffix_tokens_kept += kept;
                    report.suffix_tokens_cut += cut;
                }
                budget::SegmentKind::Fixed => {}
            }
            offset += keep.len();
        }
        // The parts as the plan left them: dropped ones go, cut ones are the text of
        // their kept tokens.
        let mut parts = Vec::new();
        let mut roles = Vec::new();
        for (pi, (part, role)) in prompt.parts.iter().zip(&prompt.roles).enumerate() {
            let (si, r) = &part_at[pi];
            let keep = &plan.keep[*si];
            let kept = r.start.max(keep.start)..r.end.min(keep.end);
            if kept.start >= kept.end && !r.is_empty() {
                continue;
            }
            let part = if kept == *r && whole[pi] {
                part.clone()
            } else {
                let mut bytes = Vec::new();
                for &t in &segments[*si].tokens[kept] {
                    bytes.extend_from_slice(piece(t));
                }
                PromptPart::Text(String::from_utf8_lossy(&bytes).into_owned())
            };
            parts.push(part);
            roles.push(*role);
        }
        prompt.parts = parts;
        prompt.roles = roles;
        prompt.info.prompt_sha256 = template::sha256_hex(prompt.text().as_bytes());
        prompt.info.budget = Some(report);
        Ok(Fitted {
            prompt,
            tokens,
            through_prefix,
        })
    }

    /// Evaluates the prompt `req` would get, through the end of its prefix, into the KV
    /// cache, in small batches; gives way to any other job between batches.
    fn prefill(
        &mut self,
        req: &CompletionRequest,
        cancel: &CancellationToken,
        jobs: &mpsc::Receiver<Msg>,
        pending: &mut VecDeque<Msg>,
    ) -> Result<Prefilled, ModelError> {
        let fitted = self.fit_completion(req, None)?;
        let mut target = &fitted.tokens[..fitted.through_prefix.min(fitted.tokens.len())];
        // Prefix continuation heals its last token: leave that one to the request.
        if matches!(fitted.prompt.parts.last(), Some(PromptPart::Text(_))) && !target.is_empty() {
            target = &target[..target.len() - 1];
        }
        let common = self
            .cached
            .iter()
            .zip(target)
            .take_while(|(a, b)| a == b)
            .count();
        let mut out = Prefilled {
            cached_tokens: common as u32,
            target_tokens: target.len() as u32,
            ..Default::default()
        };
        if common == target.len() || !self.reuse_prefix {
            return Ok(out);
        }
        if self
            .ctx
            .kv_cache_seq_rm(0, Some(common as u32), None)
            .is_err()
        {
            self.reset();
        }
        self.cached.truncate(common.min(self.cached.len()));
        let mut batch = LlamaBatch::new(PREFILL_BATCH, 1);
        let start = self.cached.len();
        for chunk in target[start..].chunks(PREFILL_BATCH) {
            while let Ok(m) = jobs.try_recv() {
                pending.push_back(m);
            }
            if !pending.is_empty() || self.stopped(cancel) {
                out.abandoned = true;
                break;
            }
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let pos = (self.cached.len() + i) as i32;
                batch
                    .add(t, pos, &[0], i + 1 == chunk.len())
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            if let Err(e) = self.ctx.decode(&mut batch) {
                self.reset();
                return Err(ModelError::Runtime(format!("prefill failed: {e}")));
            }
            self.cached.extend_from_slice(chunk);
            out.evaluated_tokens += chunk.len() as u32;
        }
        out.cached_tokens = self.cached.len() as u32;
        Ok(out)
    }

    /// Takes the last token off `tokens` when other tokens extend its text, and
    /// returns that text. A control token or a lone first token is left alone.
    fn heal(&mut self, tokens: &mut Vec<LlamaToken>) -> Option<Vec<u8>> {
        let vocab = self.model.vocab();
        let bos = vocab.should_add_bos().then(|| vocab.bos());
        let min_len = if bos.is_some_and(|b| tokens.first() == Some(&b)) {
            2
        } else {
            1
        };
        if tokens.len() <= min_len {
            return None;
        }
        let last = *tokens.last()?;
        if vocab.is_eog(last) || vocab.is_control(last) {
            return None;
        }
        let pieces = self.pieces();
        let text = pieces.get(usize::try_from(last.0).ok()?)?.clone();
        if text.is_empty() {
            return None;
        }
        let extended = pieces
            .iter()
            .any(|p| p.len() > text.len() && p.starts_with(&text));
        if !extended {
            return None;
        }
        tokens.pop();
        Some(text)
    }

    fn pieces(&mut self) -> &Vec<Vec<u8>> {
        let model = self.model;
        self.pieces.get_or_insert_with(|| {
            let vocab = model.vocab();
            (0..vocab.n_tokens())
                .map(|i| {
                    let mut b = Vec::new();
                    vocab.token_to_piece_into(LlamaToken(i), &mut b, false, None);
                    b
                })
                .collect()
        })
    }

    fn chat_prompt(&self, req: &ChatRequest) -> Result<(Prompt, Vec<LlamaToken>), ModelError> {
        let (tmpl, tmpl_source) = match &self.info.chat_template {
            Some(t) => (
                LlamaChatTemplate::new(t)
                    .map_err(|e| ModelError::Runtime(format!("chat template: {e}")))?,
                t.clone(),
            ),
            None => (
                LlamaChatTemplate::new("chatml").map_err(|e| ModelError::Runtime(e.to_string()))?,
                template::CHATML_TEMPLATE.to_string(),
            ),
        };
        let messages = req
            .messages
            .iter()
            .map(|m| {
                LlamaChatMessage::new(m.role.as_str().to_string(), m.content.replace('\0', ""))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ModelError::Runtime(format!("chat message: {e}")))?;
        let text = self
            .model
            .apply_chat_template(&tmpl, &messages, true)
            .map_err(|e| {
                ModelError::Runtime(format!("cannot apply the model's chat template: {e}"))
            })?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        let prompt = Prompt {
            info: PromptInfo {
                mode: "chat".into(),
                template: if self.info.chat_template.is_some() {
                    "gguf chat template"
                } else {
                    "chatml (fallback)"
                }
                .into(),
                template_sha256: template::sha256_hex(tmpl_source.as_bytes()),
                prompt_sha256: template::sha256_hex(text.as_bytes()),
                budget: None,
            },
            parts: vec![PromptPart::Text(text)],
            roles: Vec::new(),
        };
        Ok((prompt, tokens))
    }

    /// Evaluates the prompt (reusing the cached prefix) and samples until a stop condition.
    fn generate(
        &mut self,
        tokens: &[LlamaToken],
        limits: &Limits<'_>,
        sink: &TokenSink,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<(String, StopReason, Usage), ModelError> {
        let n_ctx = self.ctx.n_ctx() as usize;
        let mut usage = Usage {
            prompt_tokens: tokens.len() as u32,
            ..Default::default()
        };

        // Reuse the longest common prefix; at least the last prompt token is evaluated
        // again so that its logits are fresh.
        let mut common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        common = common.min(tokens.len() - 1);
        if !self.reuse_prefix {
            common = 0;
        }
        if self
            .ctx
            .kv_cache_seq_rm(0, Some(common as u32), None)
            .is_err()
        {
            self.reset();
            common = 0;
        }
        self.cached.truncate(common);
        usage.reused_prompt_tokens = common as u32;

        let mut batch = LlamaBatch::new(self.n_batch.max(1), 1);
        let rest = &tokens[common..];
        for (ci, chunk) in rest.chunks(self.n_batch.max(1)).enumerate() {
            if self.stopped(cancel) {
                return Ok((String::new(), StopReason::Cancelled, usage));
            }
            batch.clear();
            let last_chunk = (ci + 1) * self.n_batch.max(1) >= rest.len();
            for (i, &t) in chunk.iter().enumerate() {
                let pos = (self.cached.len() + i) as i32;
                let logits = last_chunk && i + 1 == chunk.len();
                batch
                    .add(t, pos, &[0], logits)
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            if let Err(e) = self.ctx.decode(&mut batch) {
                self.reset();
                return Err(ModelError::Runtime(format!(
                    "prompt evaluation failed: {e}"
                )));
            }
            self.cached.extend_from_slice(chunk);
        }
        usage.prompt_time = started.elapsed();

        let mut sampler = build_sampler(limits.sampling);
        let mut matcher = StopMatcher::new(&limits.stop);
        let mut decoder = encoding_rs::UTF_8.new_decoder();
        let mut piece_bytes = Vec::with_capacity(32);
        let mut piece = String::new();
        let vocab = self.model.vocab();
        // Prompt-lookup decoding (greedy only): tokens already known to be the greedy
        // continuation, each with whether its keys and values are in the cache already.
        let lookup = limits.sampling.is_greedy() && self.lookup_draft > 0;
        let max_draft = if lookup {
            self.lookup_draft
        } else if limits.speculative {
            self.draft_tokens * 2
        } else {
            0
        };
        let mut known: VecDeque<(LlamaToken, bool)> = VecDeque::new();
        let mut draft_len = if lookup {
            self.lookup_draft.min(4)
        } else {
            self.draft_tokens
        };
        let stop_reason = loop {
            if self.stopped(cancel) {
                break StopReason::Cancelled;
            }
            if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                break StopReason::Deadline;
            }
            if usage.generated_tokens >= limits.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.cached.len() >= n_ctx {
                break StopReason::ContextFull;
            }
            let (token, evaluated) = match (known.pop_front(), &limits.heal) {
                (Some(k), _) => k,
                (None, Some(heal)) if usage.generated_tokens == 0 => {
                    let pieces = self.pieces.as_ref().expect("built by heal()");
                    let mut cands = self.ctx.token_data_array();
                    for c in cands.data.iter_mut() {
                        let ok = usize::try_from(c.id().0)
                            .ok()
                            .and_then(|i| pieces.get(i))
                            .is_some_and(|p| p.starts_with(heal));
                        if !ok {
                            c.set_logit(f32::NEG_INFINITY);
                        }
                    }
                    cands.apply_sampler(&mut sampler);
                    match cands.selected_token() {
                        Some(t) => (t, false),
                        None => break StopReason::EndOfGeneration,
                    }
                }
                (None, _) => (sampler.sample(&self.ctx, -1), false),
            };
            // A control token never belongs in the text: end of text, FIM padding, a new
            // file or repository, end of turn (Qwen2.5-Coder marks all of them).
            if vocab.is_eog(token) || vocab.is_control(token) {
                break StopReason::EndOfGeneration;
            }
            usage.generated_tokens += 1;
            if usage.time_to_first_token.is_none() {
                usage.time_to_first_token = Some(started.elapsed());
            }
            piece_bytes.clear();
            vocab.token_to_piece_into(token, &mut piece_bytes, false, None);
            if let (Some(heal), 1) = (&limits.heal, usage.generated_tokens) {
                // The healed text is already in the document.
                piece_bytes.drain(..heal.len().min(piece_bytes.len()));
            }
            piece.clear();
            piece.reserve(
                decoder
                    .max_utf8_buffer_length(piece_bytes.len())
                    .unwrap_or(64),
            );
            let _ = decoder.decode_to_string(&piece_bytes, &mut piece, false);
            let out = matcher.push(&piece);
            if !out.is_empty() {
                emit(sink, StreamEvent::Text(out));
            }
            if let Some(stop) = matcher.stopped() {
                break StopReason::StopString(stop.to_string());
            }
            if matcher.repeated() {
                break StopReason::Repetition;
            }
            if evaluated {
                continue;
            }
            // Evaluate the token, and with it a draft of what may follow it.
            let room = (limits.max_tokens - usage.generated_tokens) as usize;
            let room = room.min(n_ctx.saturating_sub(self.cached.len() + 1));
            let draft = if lookup {
                lookup_draft(&self.cached, token, draft_len.min(room))
            } else if let (true, Some(d)) = (limits.speculative, self.draft.as_mut()) {
                d.propose(&self.cached, token, draft_len.min(room))?
            } else {
                Vec::new()
            };
            let p0 = self.cached.len();
            batch.clear();
            for (i, &t) in std::iter::once(&token).chain(&draft).enumerate() {
                batch
                    .add(t, (p0 + i) as i32, &[0], true)
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            if let Err(e) = self.ctx.decode(&mut batch) {
                self.reset();
                return Err(ModelError::Runtime(format!("decode failed: {e}")));
            }
            self.cached.push(token);
            if draft.is_empty() {
                continue;
            }
            // Keep the draft as far as it is what greedy decoding picks; the first
            // mismatch position's choice is the next token.
            let mut accepted = 0;
            let next = loop {
                let best = sampler.sample(&self.ctx, accepted as i32);
                if accepted < draft.len() && best == draft[accepted] {
                    accepted += 1;
                } else {
                    break best;
                }
            };
            if accepted < draft.len()
                && self
                    .ctx
                    .kv_cache_seq_rm(0, Some((p0 + 1 + accepted) as u32), None)
                    .is_err()
            {
                self.reset();
                return Err(ModelError::Runtime(
                    "cannot drop rejected draft tokens from the KV cache".into(),
                ));
            }
            self.cached.extend_from_slice(&draft[..accepted]);
            known.extend(draft[..accepted].iter().map(|&t| (t, true)));
            known.push_back((next, false));
            usage.drafted_tokens += draft.len() as u32;
            usage.accepted_draft_tokens += accepted as u32;
            draft_len = if accepted == draft.len() {
                (draft_len * 2).min(max_draft)
            } else {
                (accepted + 1).clamp(1, max_draft.max(1))
            };
        };
        let tail = matcher.finish();
        if !tail.is_empty() {
            emit(sink, StreamEvent::Text(tail));
        }
        Ok((matcher.text().to_string(), stop_reason, usage))
    }
}

/// Prompt lookup: the tokens that followed the latest earlier occurrence of the last
/// few tokens (`history` then `last`), longest match first (5 tokens down to 3), at most
/// `max` of them.
fn lookup_draft(history: &[LlamaToken], last: LlamaToken, max: usize) -> Vec<LlamaToken> {
    if max == 0 {
        return Vec::new();
    }
    for n in (3..=5usize).rev() {
        if history.len() < n {
            continue;
        }
        let head = &history[history.len() + 1 - n..];
        // A match at j covers history[j..j + n]; something must follow it in history.
        let found = (0..history.len() - n)
            .rev()
            .find(|&j| history[j + n - 1] == last && history[j..j + n - 1] == *head);
        if let Some(j) = found {
            let from = j + n;
            return history[from..(from + max).min(history.len())].to_vec();
        }
    }
    Vec::new()
}

/// Breaks up control-token text inside chat content with a zero-width space, so that
/// parsing the templated prompt for special tokens finds only the template's own.
pub fn defuse_control_text(content: &str, control_texts: &[String]) -> String {
    let mut out = content.to_string();
    for t in control_texts {
        if out.contains(t.as_str()) {
            let mut chars = t.chars();
            let first = chars.next().unwrap_or_default();
            let broken = format!("{first}\u{200b}{}", chars.as_str());
            out = out.replace(t.as_str(), &broken);
        }
    }
    out
}

fn build_sampler(s: &Sampling) -> LlamaSampler {
    if s.is_greedy() {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_k(s.top_k),
            LlamaSampler::top_p(s.top_p, 1),
            LlamaSampler::temp(s.temperature),
            LlamaSampler::dist(s.seed),
        ])
    }
}

/// A GGUF's vocabulary alone (no weights): enough to see how prompts tokenize. Used by
/// template tests on vocabulary-only GGUFs and by `cairn models` diagnostics.
pub struct Vocabulary {
    model: LlamaModel,
}

impl Vocabulary {
    pub fn load(path: &Path) -> Result<Vocabulary, ModelError> {
        check_gguf(path)?;
        let backend = backend()?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            ModelError::LoadFailed {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        Ok(Vocabulary { model })
    }

    pub fn tokens(&self) -> VocabTokens {
        vocab_tokens(&self.model)
    }

    /// Token ids of a prompt, as the local backend would feed them (without BOS).
    pub fn tokenize(&self, prompt: &Prompt) -> Vec<i32> {
        tokenize_prompt(&self.model, prompt, false)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    /// The ids of the FIM prefix, suffix and middle tokens (-1 when absent).
    pub fn fim_ids(&self) -> (i32, i32, i32) {
        let v = self.model.vocab();
        (v.fim_pre().0, v.fim_suf().0, v.fim_mid().0)
    }

    /// The id of a control token by its text, if the vocabulary has it as one token.
    pub fn special_id(&self, text: &str) -> Option<i32> {
        let t = self.model.vocab().tokenize(text.as_bytes(), false, true);
        (t.len() == 1).then(|| t[0].0)
    }
}
