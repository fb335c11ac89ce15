//! The remote backend: any OpenAI-compatible HTTP API (llama.cpp's server,
//! llama-cpp-python, vLLM, Ollama, hosted APIs).
//!
//! Chat goes to `/chat/completions`, completions to `/completions` (with `suffix` for
//! fill-in-the-middle when the server supports it), both streamed as server-sent events.
//! The API key comes from the OS keyring and never appears in errors or logs.
//!
//! Over 600 lines as one room: one protocol — request building, SSE parsing, retries and
//! the error mapping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::stop::StopMatcher;
use crate::template::{self, VocabTokens};
use crate::types::*;
use crate::{Backend, ModelError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteOptions {
    /// Base URL including the version, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Model id sent in requests.
    pub model: String,
    /// Whether `/completions` accepts `suffix` (fill-in-the-middle).
    pub fim: bool,
    pub connect_timeout_ms: u64,
    /// Time allowed until the first streamed token.
    pub first_token_timeout_ms: u64,
    /// Time allowed for a whole request.
    pub total_timeout_ms: u64,
    /// Retries on 429, 5xx and connection errors before any text was streamed.
    pub retries: u32,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            base_url: String::new(),
            model: String::new(),
            fim: false,
            connect_timeout_ms: 3_000,
            first_token_timeout_ms: 30_000,
            total_timeout_ms: 120_000,
            retries: 2,
        }
    }
}

pub struct RemoteModel {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    opts: RemoteOptions,
    client: reqwest::Client,
    api_key: Option<String>,
    identity: ModelIdentity,
}

impl RemoteModel {
    /// `name` is the model's name in Cairn's config; its API key is looked up in the
    /// keyring under that name (none is fine for servers without authentication).
    pub fn new(
        name: &str,
        opts: RemoteOptions,
        api_key: Option<String>,
    ) -> Result<RemoteModel, ModelError> {
        let url = reqwest::Url::parse(&opts.base_url).map_err(|e| {
            ModelError::Config(format!(
                "model `{name}`: base_url `{}` is not a URL: {e}",
                opts.base_url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ModelError::Config(format!(
                "model `{name}`: base_url `{}` must be http or https",
                opts.base_url
            )));
        }
        if opts.model.is_empty() {
            return Err(ModelError::Config(format!(
                "model `{name}`: `model` (the id the API expects) is empty"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(opts.connect_timeout_ms))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Config(format!("cannot build an HTTP client: {e}")))?;
        let identity = ModelIdentity {
            name: name.to_string(),
            origin: Origin::Remote,
            gguf_sha256: None,
            endpoint: Some(opts.base_url.trim_end_matches('/').to_string()),
            model_id: opts.model.clone(),
            quantization: None,
            runtime: "openai-compatible".to_string(),
        };
        Ok(RemoteModel {
            inner: Arc::new(Inner {
                name: name.to_string(),
                opts,
                client,
                api_key,
                identity,
            }),
        })
    }

    /// Like `new`, with the API key read from the keyring.
    pub fn from_keyring(name: &str, opts: RemoteOptions) -> Result<RemoteModel, ModelError> {
        let key = crate::keys::api_key(name)?;
        RemoteModel::new(name, opts, key)
    }
}

enum Endpoint {
    Completions,
    Chat,
}

impl Backend for RemoteModel {
    fn identity(&self) -> ModelIdentity {
        self.inner.identity.clone()
    }

    fn supports_fim(&self) -> bool {
        self.inner.opts.fim
    }

    fn complete(
        &self,
        req: CompletionRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let o = &inner.opts;
            let fim = o.fim && !req.suffix.is_empty();
            let mut plain = req.clone();
            plain.suffix.clear();
            let prompt = template::completion_prompt(&VocabTokens::default(), &plain);
            let mut body = json!({
                "model": o.model,
                "prompt": prompt.text(),
                "max_tokens": req.max_tokens,
                "stream": true,
            });
            let mut stops = req.stop.clone();
            if fim {
                stops.extend(template::fim_stops(&req));
            }
            sampling_fields(&mut body, &req.sampling, &stops);
            let mut info = prompt.info.clone();
            if fim {
                body["suffix"] = json!(req.suffix);
                info.mode = "fim".into();
                info.template = "openai /completions suffix".into();
                info.template_sha256 = template::sha256_hex(
                    b"cairn remote fim v1: prompt=commented context+prefix, suffix",
                );
                info.prompt_sha256 = template::sha256_hex(
                    format!("{}\u{0}{}", prompt.text(), req.suffix).as_bytes(),
                );
            }
            inner
                .run(
                    Endpoint::Completions,
                    body,
                    info,
                    &stops,
                    req.sampling.clone(),
                    req.deadline,
                    sink,
                    cancel,
                )
                .await
        })
    }

    fn chat(
        &self,
        req: ChatRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let messages: Vec<Value> = req
                .messages
                .iter()
                .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
                .collect();
            let mut body = json!({
                "model": inner.opts.model,
                "messages": messages,
                "max_tokens": req.max_tokens,
                "stream": true,
            });
            sampling_fields(&mut body, &req.sampling, &req.stop);
            let canonical = serde_json::to_string(&body["messages"]).unwrap_or_default();
            let info = PromptInfo {
                mode: "chat".into(),
                template: "openai /chat/completions (server-side template)".into(),
                template_sha256: template::sha256_hex(b"openai chat/completions messages v1"),
                prompt_sha256: template::sha256_hex(canonical.as_bytes()),
                budget: None,
            };
            inner
                .run(
                    Endpoint::Chat,
                    body,
                    info,
                    &req.stop,
                    req.sampling.clone(),
                    req.deadline,
                    sink,
                    cancel,
                )
                .await
        })
    }
}

fn sampling_fields(body: &mut Value, s: &Sampling, stop: &[String]) {
    body["temperature"] = json!(s.temperature.max(0.0));
    if !s.is_greedy() {
        body["top_p"] = json!(s.top_p);
        body["top_k"] = json!(s.top_k);
    }
    body["seed"] = json!(s.seed);
    if !stop.is_empty() {
        // The OpenAI API takes at most 4; the rest are applied here.
        body["stop"] = json!(stop.iter().take(4).collect::<Vec<_>>());
    }
}

/// Shortens a body for an error message, on a character boundary.
fn snippet(s: &str) -> String {
    let t: String = s.trim().chars().take(120).collect();
    t.replace('\n', " ")
}

impl Inner {
    fn url(&self, ep: &Endpoint) -> String {
        let base = self.opts.base_url.trim_end_matches('/');
        match ep {
            Endpoint::Completions => format!("{base}/completions"),
            Endpoint::Chat => format!("{base}/chat/completions"),
        }
    }

    fn err(&self, url: &str, message: impl Into<String>, transient: bool) -> ModelError {
        ModelError::Remote {
            url: url.to_string(),
            message: message.into(),
            transient,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        ep: Endpoint,
        body: Value,
        info: PromptInfo,
        stops: &[String],
        sampling: Sampling,
        deadline: Option<Instant>,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> Result<Generation, ModelError> {
        let started = Instant::now();
        let url = self.url(&ep);
        let total = started + Duration::from_millis(self.opts.total_timeout_ms);
        let deadline = deadline.map_or(total, |d| d.min(total));

        // Send, retrying transient failures with exponential backoff.
        let mut attempt = 0;
        let response = loop {
            let mut rb = self.client.post(&url).json(&body);
            if let Some(k) = &self.api_key {
                rb = rb.bearer_auth(k);
            }
            let sent = tokio::select! {
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                r = tokio::time::timeout_at(deadline.into(), rb.send()) => r,
            };
            let retry_reason = match sent {
                Err(_) => {
                    return Err(self.err(&url, "timed out waiting for the server to answer", true))
                }
                Ok(Err(e)) if e.is_connect() => format!(
                    "cannot connect ({}): is the server running at {}?",
                    root_cause(&e),
                    self.opts.base_url
                ),
                Ok(Err(e)) if e.is_timeout() => "timed out connecting".to_string(),
                Ok(Err(e)) => {
                    return Err(self.err(&url, format!("request failed: {}", root_cause(&e)), true))
                }
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    if status.is_success() {
                        break resp;
                    }
                    let code = status.as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    match code {
                        401 | 403 => {
                            return Err(ModelError::Unauthorized {
                                url,
                                status: code,
                                model: self.name.clone(),
                            })
                        }
                        404 => {
                            return Err(self.err(&url, format!(
                                "HTTP 404 ({}): check base_url (it usually ends in /v1) and the model id `{}`",
                                snippet(&text), self.opts.model
                            ), false))
                        }
                        429 | 500..=599 => format!("HTTP {code}: {}", snippet(&text)),
                        _ => return Err(self.err(&url, format!("HTTP {code}: {}", snippet(&text)), false)),
                    }
                }
            };
            if attempt >= self.opts.retries || Instant::now() >= deadline {
                return Err(self.err(&url, retry_reason, true));
            }
            let backoff = Duration::from_millis(250 * (1 << attempt.min(6)));
            tracing::debug!(%url, attempt, ?backoff, "retrying: {retry_reason}");
            attempt += 1;
            tokio::select! {
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                _ = tokio::time::sleep(backoff) => {}
            }
        };

        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut acc = Accumulator::new(stops, &ep);
        let mut usage = Usage::default();
        let stop_reason;

        if content_type.contains("text/event-stream") {
            let mut stream = response.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let first_deadline = started + Duration::from_millis(self.opts.first_token_timeout_ms);
            'read: loop {
                let limit = if usage.time_to_first_token.is_none() {
                    first_deadline.min(deadline)
                } else {
                    deadline
                };
                let next = tokio::select! {
                    _ = cancel.cancelled() => { stop_reason = StopReason::Cancelled; break 'read; }
                    r = tokio::time::timeout_at(limit.into(), stream.next()) => r,
                };
                let chunk = match next {
                    Err(_) if limit < deadline => {
                        return Err(self.err(
                            &url,
                            format!("no token within {} ms", self.opts.first_token_timeout_ms),
                            true,
                        ))
                    }
                    Err(_) => {
                        stop_reason = StopReason::Deadline;
                        break 'read;
                    }
                    Ok(None) => {
                        if acc.finish_reason.is_some() {
                            stop_reason = acc.reason();
                            break 'read;
                        }
                        return Err(self.err(
                            &url,
                            "the stream ended before the answer was complete (truncated response)",
                            true,
                        ));
                    }
                    Ok(Some(Err(e))) => {
                        return Err(self.err(
                            &url,
                            format!("the stream broke off: {}", root_cause(&e)),
                            true,
                        ))
                    }
                    Ok(Some(Ok(bytes))) => bytes,
                };
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim_end_matches(['\r', '\n']);
                    let Some(data) = line.strip_prefix("data:") else {
                        if line.is_empty()
                            || line.starts_with(':')
                            || line.starts_with("event:")
                            || line.starts_with("id:")
                            || line.starts_with("retry:")
                        {
                            continue;
                        }
                        return Err(self.err(&url, format!("the event stream holds a line that is not server-sent events: `{}`", snippet(line)), false));
                    };
                    let data = data.trim();
                    if data == "[DONE]" {
                        stop_reason = acc.reason();
                        break 'read;
                    }
                    let v: Value = serde_json::from_str(data).map_err(|e| {
                        self.err(
                            &url,
                            format!("the stream holds invalid JSON ({e}): `{}`", snippet(data)),
                            false,
                        )
                    })?;
                    if let Some(msg) = v.get("error") {
                        return Err(self.err(
                            &url,
                            format!(
                                "the server reported an error mid-stream: {}",
                                snippet(&msg.to_string())
                            ),
                            true,
                        ));
                    }
                    if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                        read_usage(u, &mut usage);
                    }
                    let out = acc.push(&v);
                    if !out.is_empty() {
                        if usage.time_to_first_token.is_none() {
                            usage.time_to_first_token = Some(started.elapsed());
                        }
                        emit(&sink, StreamEvent::Text(out));
                    }
                    if acc.matcher.done() {
                        stop_reason = acc.reason();
                        break 'read;
                    }
                    if Instant::now() >= deadline {
                        stop_reason = StopReason::Deadline;
                        break 'read;
                    }
                }
            }
        } else if content_type.contains("json") {
            // A server that ignores `stream: true` answers with one JSON document.
            let text = tokio::select! {
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                t = tokio::time::timeout_at(deadline.into(), response.text()) => t
                    .map_err(|_| self.err(&url, "timed out reading the answer", true))?
                    .map_err(|e| self.err(&url, format!("reading the answer failed: {}", root_cause(&e)), true))?,
            };
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                self.err(
                    &url,
                    format!("the answer is not valid JSON ({e}): `{}`", snippet(&text)),
                    false,
                )
            })?;
            if v.get("choices").is_none() {
                return Err(self.err(
                    &url,
                    format!("the answer has no `choices`: `{}`", snippet(&text)),
                    false,
                ));
            }
            if let Some(u) = v.get("usage") {
                read_usage(u, &mut usage);
            }
            let out = acc.push(&v);
            usage.time_to_first_token = Some(started.elapsed());
            if !out.is_empty() {
                emit(&sink, StreamEvent::Text(out));
            }
            stop_reason = acc.reason();
        } else {
            let text = response.text().await.unwrap_or_default();
            let what = if text.trim_start().starts_with('<') {
                "HTML"
            } else {
                "something else"
            };
            return Err(self.err(
                &url,
                format!(
                    "expected an OpenAI-compatible JSON or event-stream answer but got {what} (content-type `{content_type}`: `{}`): check base_url",
                    snippet(&text)
                ),
                false,
            ));
        }

        let tail = acc.matcher.finish();
        if !tail.is_empty() {
            emit(&sink, StreamEvent::Text(tail));
        }
        if usage.generated_tokens == 0 {
            usage.generated_tokens = acc.pieces;
        }
        usage.total_time = started.elapsed();
        usage.prompt_time = usage.time_to_first_token.unwrap_or(usage.total_time);
        Ok(Generation {
            text: acc.matcher.text().to_string(),
            stop_reason,
            usage,
            model: self.identity.clone(),
            sampling,
            prompt: info,
            fallback: None,
        })
    }
}

fn read_usage(u: &Value, usage: &mut Usage) {
    if let Some(p) = u.get("prompt_tokens").and_then(Value::as_u64) {
        usage.prompt_tokens = p as u32;
    }
    if let Some(c) = u.get("completion_tokens").and_then(Value::as_u64) {
        usage.generated_tokens = c as u32;
    }
    if let Some(c) = u
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
    {
        usage.reused_prompt_tokens = c as u32;
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Collects streamed choices into text, applying stop strings locally.
struct Accumulator {
    matcher: StopMatcher,
    chat: bool,
    finish_reason: Option<String>,
    pieces: u32,
}

impl Accumulator {
    fn new(stops: &[String], ep: &Endpoint) -> Self {
        Accumulator {
            matcher: StopMatcher::new(stops),
            chat: matches!(ep, Endpoint::Chat),
            finish_reason: None,
            pieces: 0,
        }
    }

    fn push(&mut self, v: &Value) -> String {
        let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
            return String::new();
        };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(f.to_string());
        }
        let text = if self.chat {
            choice
                .get("delta")
                .or_else(|| choice.get("message"))
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
        } else {
            choice.get("text").and_then(Value::as_str)
        };
        match text {
            Some(t) if !t.is_empty() => {
                self.pieces += 1;
                self.matcher.push(t)
            }
            _ => String::new(),
        }
    }

    fn reason(&self) -> StopReason {
        if let Some(s) = self.matcher.stopped() {
            return StopReason::StopString(s.to_string());
        }
        if self.matcher.repeated() {
            return StopReason::Repetition;
        }
        match self.finish_reason.as_deref() {
            Some("length") => StopReason::MaxTokens,
            _ => StopReason::EndOfGeneration,
        }
    }
}
