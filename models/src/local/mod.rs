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

mod fit;
mod generate;
mod thread;
mod threads;
mod vocab;
mod worker;

pub use generate::*;
use thread::*;
pub use vocab::*;
use worker::*;

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
    /// with a build for cores; a request decodes with every core while the other cores
    /// were idle just before it (see `local/threads.rs`). Set, it is used always.
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

    /// Decode threads while the machine is otherwise idle: every core (at most 8),
    /// unless `n_threads` is set.
    pub fn wide_threads(&self) -> i32 {
        match self.n_threads {
            Some(n) => n,
            None => (crate::speed::cores() as i32).clamp(1, 8),
        }
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
