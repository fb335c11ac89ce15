//! cairn-models: the model backends. Local GGUF models through llama.cpp, remote models
//! behind an OpenAI-compatible API, prompt templates, the model cache, and routing with
//! fallback. It must never know about the index, the ledger or any front end's protocol.

use std::path::PathBuf;

use futures_util::future::BoxFuture;

pub mod budget;
pub mod config;
pub mod install;
pub mod keys;
pub mod local;
pub mod progress;
pub mod pull;
pub mod registry;
pub mod remote;
pub mod repetition;
pub mod router;
pub mod scripted;
pub mod speed;
pub mod stop;
pub mod template;
pub mod types;

pub use config::{ModelSpec, ModelsConfig, RoutingConfig};
pub use install::{CatalogueModel, InstallOptions, CATALOGUE};
pub use local::{LocalModel, LocalOptions};
pub use registry::{ModelEntry, Registry};
pub use remote::{RemoteModel, RemoteOptions};
pub use router::Router;
pub use scripted::ScriptedModel;
pub use types::*;

/// The llama-cpp-2 release this crate is pinned to; recorded in provenance.
pub const LLAMA_CPP_2_VERSION: &str = "0.1.160";

/// The GPU backend compiled in, if any.
pub fn gpu_backend() -> Option<&'static str> {
    if cfg!(feature = "cuda") {
        Some("cuda")
    } else if cfg!(feature = "vulkan") {
        Some("vulkan")
    } else if cfg!(feature = "metal") {
        Some("metal")
    } else {
        None
    }
}

/// A model that can fill in the middle / continue a prefix, and chat. Both stream text
/// to an optional sink, stop between tokens when `cancel` fires, and return usage and
/// the model's identity for provenance.
pub trait Backend: Send + Sync {
    fn identity(&self) -> ModelIdentity;

    /// Whether a suffix is used (true FIM) rather than ignored.
    fn supports_fim(&self) -> bool;

    fn complete(
        &self,
        req: CompletionRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>>;

    fn chat(
        &self,
        req: ChatRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>>;

    /// How fast this model runs here (local models: measured at load, then followed by
    /// real requests); `None` when unknown (remote models).
    fn speed(&self) -> Option<Speed> {
        None
    }

    /// Warms the KV cache for a completion that may follow: evaluates the prompt `req`
    /// would get (all but its last token), without generating. Lowest priority: it
    /// is abandoned (between prompt batches) the moment a real request arrives, and what
    /// it evaluated by then stays in the cache. The job is queued when this is called;
    /// the future only reports what it did, so it may be dropped. Backends without a
    /// KV cache of their own do nothing.
    fn prefill(
        &self,
        req: CompletionRequest,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Prefilled, ModelError>> {
        let _ = (req, cancel);
        Box::pin(async { Ok(Prefilled::default()) })
    }
}

/// Every error names the file or URL involved and says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {path} does not exist: run `cairn models setup` for the default model, or `cairn models add PATH` for another GGUF")]
    MissingFile { path: PathBuf },
    #[error(
        "{path} is not a GGUF model file (it starts with \"{found}\"): point Cairn at a .gguf file"
    )]
    NotGguf { path: PathBuf, found: String },
    #[error("cannot load {path}: {detail}; the file may be truncated or corrupt: download it again and run `cairn models add {path}`")]
    LoadFailed { path: PathBuf, detail: String },
    #[error("model file {path} changed since it was registered (sha256 is now {actual}, the registry has {expected}): run `cairn models add {path}` to register it again")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("the prompt is {prompt_tokens} tokens but the model's context holds {n_ctx}: shorten the input or raise `n_ctx`")]
    PromptTooLong { prompt_tokens: usize, n_ctx: usize },
    #[error("{url}: {message}")]
    Remote {
        url: String,
        message: String,
        /// Worth trying again later (timeouts, 429, 5xx, dropped connections).
        transient: bool,
    },
    #[error("{url}: the server refused the API key (HTTP {status}): store the right key with `cairn models login {model}`")]
    Unauthorized {
        url: String,
        status: u16,
        model: String,
    },
    #[error("no model named `{0}`: see `cairn models list`, or add it to the [models] table of the config")]
    UnknownModel(String),
    #[error("model `{name}` is not installed: run `cairn models setup {name}`")]
    NotInstalled { name: String },
    /// Installing a catalogue model failed; the message says what and what to do.
    #[error("{0}")]
    Install(String),
    /// `cairn models pull` failed; the message says what and what to do.
    #[error("{url}: {message}")]
    Download { url: String, message: String },
    #[error("invalid model configuration: {0}")]
    Config(String),
    #[error("keyring: {0}")]
    Keyring(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the request was cancelled")]
    Cancelled,
    #[error("llama.cpp: {0}")]
    Runtime(String),
    #[error("the local model is not running: {0}")]
    WorkerGone(String),
}
