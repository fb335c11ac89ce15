//! Requests, results and identities shared by every backend.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;
pub use tokio_util::sync::CancellationToken;

/// Where a model runs; provenance records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Local,
    Remote,
}

/// Sampling parameters. Greedy (temperature 0) is the default: completions should be
/// reproducible, and provenance records exactly what was used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub seed: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            seed: 0,
        }
    }
}

impl Sampling {
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// Who produced a generation, down to the weights' digest. This is what the provenance
/// ledger writes into a record's `generator`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// The name the user knows it by (registry or config name).
    pub name: String,
    pub origin: Origin,
    /// sha256 of the GGUF file (local models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gguf_sha256: Option<String>,
    /// Base URL of the API (remote models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The model id sent to the API (remote) or the GGUF's `general.name` (local).
    pub model_id: String,
    /// Quantization, e.g. `Q4_1`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// Runtime, e.g. `llama.cpp (llama-cpp-2 0.1.160)` or `openai-compatible`.
    pub runtime: String,
}

/// A file given to the model as extra context (retrieved snippets, neighbouring files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextFile {
    pub path: String,
    pub text: String,
}

/// Fill-in-the-middle or prefix completion.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    /// Text before the cursor.
    pub prefix: String,
    /// Text after the cursor; empty means plain continuation.
    pub suffix: String,
    /// Text already typed at the start of the hole: the prompt's prefix ends where the
    /// person started typing, and what they typed since comes after the FIM middle
    /// token, as the start of the text being filled in. Consecutive requests while
    /// typing then share everything up to it (suffix included) in the KV cache, and
    /// evaluate only the newly typed tokens. Empty for most requests; a model without
    /// FIM reads it after the prefix.
    pub middle: String,
    /// Path of the file being edited, relative to the repository root.
    pub path: Option<String>,
    /// Repository name, used by models with repository tokens.
    pub repo_name: Option<String>,
    /// Other files shown to the model before the current one.
    pub context: Vec<ContextFile>,
    pub max_tokens: u32,
    /// Generation stops before any of these strings (they are not part of the output).
    pub stop: Vec<String>,
    pub sampling: Sampling,
    /// Give up (and return what was generated so far) at this instant.
    pub deadline: Option<Instant>,
    /// Size the prompt so that a completion is expected to take at most this long on
    /// this machine: (prompt tokens not already in the KV cache) / prompt speed +
    /// `max_tokens` / decode speed. Context files are dropped (last first), then the
    /// prefix is cut from its start and the suffix from its end, in tokens; what the KV
    /// cache already holds is kept even beyond the budget. `None`: only the hard cap in
    /// tokens applies ([`crate::LocalOptions::max_prompt_tokens`]). Backends that cannot
    /// measure their speed ignore it.
    pub latency_budget: Option<Duration>,
    /// The latency budget never cuts the prefix shorter than this many bytes before the
    /// cursor (the front end sets it to where the enclosing definition starts: a body
    /// without its signature is completed blind). Only the hard cap in tokens can cut
    /// deeper; a prompt this floor pushes past the budget is marked over budget.
    pub keep_prefix_bytes: usize,
    /// The same for the suffix: bytes after the cursor the budget keeps (to the end of
    /// the enclosing definition: without what follows, a model fills a one-line hole
    /// with a block).
    pub keep_suffix_bytes: usize,
}

impl CompletionRequest {
    pub fn new(prefix: impl Into<String>, suffix: impl Into<String>) -> Self {
        CompletionRequest {
            prefix: prefix.into(),
            suffix: suffix.into(),
            middle: String::new(),
            path: None,
            repo_name: None,
            context: Vec::new(),
            max_tokens: 64,
            stop: Vec::new(),
            sampling: Sampling::default(),
            deadline: None,
            latency_budget: None,
            keep_prefix_bytes: 0,
            keep_suffix_bytes: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    pub sampling: Sampling,
    pub deadline: Option<Instant>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            max_tokens: 512,
            stop: Vec::new(),
            sampling: Sampling::default(),
            deadline: None,
        }
    }
}

/// What a streaming consumer receives.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More text of the answer.
    Text(String),
    /// Everything streamed so far is void: the primary backend failed mid-answer and the
    /// router starts again on the fallback.
    Reset { reason: String },
}

/// Optional channel that receives the text as it is generated.
pub type TokenSink = Option<UnboundedSender<StreamEvent>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were generated.
    MaxTokens,
    /// One of the request's stop strings appeared (it is cut from the text).
    StopString(String),
    /// The request's deadline passed.
    Deadline,
    /// The caller cancelled.
    Cancelled,
    /// The context window filled up.
    ContextFull,
    /// The text started repeating itself (the same line, sentence or run of words over
    /// and over); the repeated tail was removed from the text.
    Repetition,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV state was reused from the previous request (not evaluated).
    pub reused_prompt_tokens: u32,
    pub generated_tokens: u32,
    /// Tokens proposed by prompt-lookup decoding and checked in a batch (local backend).
    #[serde(default)]
    pub drafted_tokens: u32,
    /// Of those, the ones that matched the model's own greedy choice and were kept.
    #[serde(default)]
    pub accepted_draft_tokens: u32,
    #[serde(with = "duration_ms")]
    pub prompt_time: Duration,
    #[serde(with = "duration_ms_opt")]
    pub time_to_first_token: Option<Duration>,
    #[serde(with = "duration_ms")]
    pub total_time: Duration,
    /// Threads the local backend's last token was decoded with (0: not known, remote).
    #[serde(default)]
    pub decode_threads: u32,
}

impl Usage {
    /// Prompt tokens per second actually evaluated (reused tokens excluded).
    pub fn prompt_tokens_per_s(&self) -> f64 {
        let evaluated = self.prompt_tokens.saturating_sub(self.reused_prompt_tokens) as f64;
        per_second(evaluated, self.prompt_time)
    }

    pub fn generation_tokens_per_s(&self) -> f64 {
        let gen_time = self.total_time.saturating_sub(self.prompt_time);
        per_second(self.generated_tokens as f64, gen_time)
    }
}

fn per_second(n: f64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n / d.as_secs_f64()
    }
}

/// How the prompt was built; provenance records the digest, never the prompt itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptInfo {
    /// `fim`, `prefix` or `chat`.
    pub mode: String,
    /// Template family, e.g. `starcoder`, `deepseek-coder`, `chatml (gguf)`.
    pub template: String,
    /// sha256 of the template's definition (the format string or the GGUF chat template).
    pub template_sha256: String,
    /// sha256 of the exact prompt text sent to the model.
    pub prompt_sha256: String,
    /// How the prompt was fitted to the token cap and the latency budget (local
    /// completions; `None` elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<PromptBudget>,
}

/// What fitting a completion prompt to its budget kept and cut, in tokens. Provenance
/// records it so that a reader knows what the model did not see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptBudget {
    /// The latency budget asked for, if any (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<u64>,
    /// The hard cap on prompt tokens.
    pub cap_tokens: u32,
    /// New prompt tokens the budget allowed (those not already in the KV cache), when a
    /// budget was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_new_tokens: Option<u32>,
    /// Prompt tokens already in the KV cache (not evaluated again).
    pub cached_tokens: u32,
    /// Prompt tokens to evaluate.
    pub new_tokens: u32,
    /// Expected time of the request with this prompt (ms), from the measured speed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_ms: Option<u64>,
    pub context_files_kept: u32,
    pub context_files_dropped: u32,
    pub context_tokens_kept: u32,
    pub context_tokens_dropped: u32,
    pub prefix_tokens_kept: u32,
    /// Tokens of the prefix cut from its start. A huge prefix is tokenized only as far
    /// back as the cap can reach, so this counts the cut part of that window.
    pub prefix_tokens_cut: u32,
    pub suffix_tokens_kept: u32,
    pub suffix_tokens_cut: u32,
    /// Tokens of text typed since the prompt's prefix ended, after the FIM middle token
    /// ([`CompletionRequest::middle`]); always kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub middle_tokens: u32,
    /// The budget could not be met even with the least prompt allowed (the prefix keeps
    /// at least its last line or so).
    pub over_budget: bool,
    /// Tokens the request could generate: what it asked, or under a budget what the
    /// budget leaves after this prompt's new tokens (at least half the budget's worth, at
    /// least [`crate::budget::MIN_GENERATION_TOKENS`]).
    #[serde(default)]
    pub max_tokens: u32,
}

/// How fast a model runs on this machine: measured by a short fixed probe when it
/// loads (cached per model, CPU, core count, GPU backend and threads), then followed by
/// what real requests take.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    /// Prompt tokens evaluated per second (batched).
    pub prompt_tokens_per_s: f64,
    /// Tokens generated per second (one at a time), with the configured decode threads
    /// (one fewer than the cores by default).
    pub decode_tokens_per_s: f64,
    /// Tokens generated per second with every core decoding, where the local backend can
    /// switch to that while the other cores are idle (see `LocalOptions::n_threads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide_decode_tokens_per_s: Option<f64>,
}

impl Speed {
    /// This speed as a request decoding with every core (`wide`) or the configured
    /// threads will see it.
    pub fn decoding(&self, wide: bool) -> Speed {
        match (wide, self.wide_decode_tokens_per_s) {
            (true, Some(w)) => Speed {
                decode_tokens_per_s: w,
                ..*self
            },
            _ => *self,
        }
    }

    /// Expected time to evaluate `new_prompt_tokens` and generate `tokens`.
    pub fn estimate(&self, new_prompt_tokens: u32, tokens: u32) -> Duration {
        let p = new_prompt_tokens as f64 / self.prompt_tokens_per_s.max(1e-3);
        let d = tokens as f64 / self.decode_tokens_per_s.max(1e-3);
        Duration::from_secs_f64(p + d)
    }
}

/// What a prefill did: tokens of the request's prompt now in the KV cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefilled {
    /// Tokens of the prompt in the cache when the job ended.
    pub cached_tokens: u32,
    /// Of those, the ones this job evaluated.
    pub evaluated_tokens: u32,
    /// Tokens it meant to have in the cache.
    pub target_tokens: u32,
    /// Abandoned for a real request (or cancelled) before it was done.
    pub abandoned: bool,
}

/// The router's note that the configured model failed and another one answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    pub from: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub stop_reason: StopReason,
    pub usage: Usage,
    pub model: ModelIdentity,
    pub sampling: Sampling,
    pub prompt: PromptInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }
}

mod duration_ms_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = Option::<f64>::deserialize(d)?;
        Ok(ms.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)))
    }
}

/// Sends to an optional sink; a dropped receiver only means nobody is watching.
pub(crate) fn emit(sink: &TokenSink, event: StreamEvent) {
    if let Some(tx) = sink {
        let _ = tx.send(event);
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
