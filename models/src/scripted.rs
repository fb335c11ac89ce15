//! A backend that answers with given text, token by token: for testing what callers do
//! with a model's output (the engine's clean-up, streaming, cancellation) as data,
//! without a model. It honours everything a real backend does — stop strings,
//! `max_tokens`, cancellation between tokens, deadlines — and keeps the requests it got.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::stop::StopMatcher;
use crate::types::*;
use crate::{Backend, ModelError};

/// What a request to a [`ScriptedModel`] was.
#[derive(Debug, Clone)]
pub enum ScriptedRequest {
    Complete(CompletionRequest),
    Chat(ChatRequest),
}

#[derive(Default)]
struct Script {
    /// Replies in order; the last one repeats once the others are used.
    replies: VecDeque<Vec<String>>,
    last: Vec<String>,
    seen: Vec<ScriptedRequest>,
}

/// A model whose replies are written in advance, each as a list of tokens.
#[derive(Clone)]
pub struct ScriptedModel {
    name: String,
    fim: bool,
    token_delay: Duration,
    script: Arc<Mutex<Script>>,
}

impl ScriptedModel {
    /// A FIM model named `name` with no replies yet (it answers with nothing).
    pub fn new(name: &str) -> ScriptedModel {
        ScriptedModel {
            name: name.to_string(),
            fim: true,
            token_delay: Duration::ZERO,
            script: Arc::default(),
        }
    }

    /// Whether it claims fill-in-the-middle.
    pub fn with_fim(mut self, fim: bool) -> ScriptedModel {
        self.fim = fim;
        self
    }

    /// Time between tokens (to test cancellation and deadlines).
    pub fn with_token_delay(mut self, d: Duration) -> ScriptedModel {
        self.token_delay = d;
        self
    }

    /// Queues a reply given as tokens.
    pub fn reply_tokens(&self, tokens: impl IntoIterator<Item = impl Into<String>>) -> &Self {
        let mut s = self.lock();
        let t: Vec<String> = tokens.into_iter().map(Into::into).collect();
        s.last = t.clone();
        s.replies.push_back(t);
        self
    }

    /// Queues a reply, split into tokens at word and line boundaries (as a tokenizer
    /// would split it, roughly: a token never spans a line break).
    pub fn reply(&self, text: &str) -> &Self {
        self.reply_tokens(split_tokens(text))
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<ScriptedRequest> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_reply(&self, req: ScriptedRequest) -> Vec<String> {
        let mut s = self.lock();
        s.seen.push(req);
        match s.replies.pop_front() {
            Some(r) => r,
            None => s.last.clone(),
        }
    }

    fn generate(
        &self,
        tokens: Vec<String>,
        limits: Limits,
        mode: &str,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        let identity = self.identity();
        let delay = self.token_delay;
        let mode = mode.to_string();
        let Limits {
            max_tokens,
            stops,
            deadline,
        } = limits;
        Box::pin(async move {
            let started = Instant::now();
            let mut stop = StopMatcher::new(&stops);
            let mut out = String::new();
            let mut generated = 0u32;
            let mut first = None;
            let mut reason = StopReason::EndOfGeneration;
            for t in tokens {
                if cancel.is_cancelled() {
                    return Err(ModelError::Cancelled);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    reason = StopReason::Deadline;
                    break;
                }
                if generated >= max_tokens {
                    reason = StopReason::MaxTokens;
                    break;
                }
                if !delay.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                    }
                }
                generated += 1;
                first.get_or_insert_with(|| started.elapsed());
                let released = stop.push(&t);
                if !released.is_empty() {
                    out.push_str(&released);
                    emit(&sink, StreamEvent::Text(released));
                }
                if let Some(s) = stop.stopped() {
                    reason = StopReason::StopString(s.to_string());
                    break;
                }
            }
            if stop.stopped().is_none() {
                let rest = stop.finish();
                if !rest.is_empty() {
                    out.push_str(&rest);
                    emit(&sink, StreamEvent::Text(rest));
                }
            }
            Ok(Generation {
                text: out,
                stop_reason: reason,
                usage: Usage {
                    generated_tokens: generated,
                    time_to_first_token: first,
                    total_time: started.elapsed(),
                    ..Usage::default()
                },
                model: identity,
                sampling: Sampling::default(),
                prompt: PromptInfo {
                    mode,
                    template: "scripted".into(),
                    template_sha256: String::new(),
                    prompt_sha256: String::new(),
                    budget: None,
                },
                fallback: None,
            })
        })
    }
}

/// What bounds a generation.
struct Limits {
    max_tokens: u32,
    stops: Vec<String>,
    deadline: Option<Instant>,
}

/// Splits text the way tests want tokens: words with their leading space, punctuation
/// on its own, line breaks on their own.
pub fn split_tokens(text: &str) -> Vec<String> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        let spaces_only = cur.chars().all(|x| x == ' ' || x == '\t');
        let continues = if c == '\n' {
            false
        } else if c == ' ' || c == '\t' {
            spaces_only
        } else if word(c) {
            spaces_only || cur.chars().last().is_some_and(word)
        } else {
            spaces_only
        };
        if !continues && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        if c == '\n' || !(word(c) || c == ' ' || c == '\t') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Backend for ScriptedModel {
    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            name: self.name.clone(),
            origin: Origin::Local,
            gguf_sha256: None,
            endpoint: None,
            model_id: self.name.clone(),
            quantization: None,
            runtime: "scripted".into(),
        }
    }

    fn supports_fim(&self) -> bool {
        self.fim
    }

    fn complete(
        &self,
        req: CompletionRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        let limits = Limits {
            max_tokens: req.max_tokens,
            stops: req.stop.clone(),
            deadline: req.deadline,
        };
        let tokens = self.next_reply(ScriptedRequest::Complete(req));
        let mode = if self.fim { "fim" } else { "prefix" };
        self.generate(tokens, limits, mode, sink, cancel)
    }

    fn chat(
        &self,
        req: ChatRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Generation, ModelError>> {
        let limits = Limits {
            max_tokens: req.max_tokens,
            stops: req.stop.clone(),
            deadline: req.deadline,
        };
        let tokens = self.next_reply(ScriptedRequest::Chat(req));
        self.generate(tokens, limits, "chat", sink, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_at_words_punctuation_and_lines() {
        assert_eq!(
            split_tokens("a + b)\n    x_1"),
            ["a", " +", " b", ")", "\n", "    x_1"]
        );
    }

    #[tokio::test]
    async fn replies_stop_at_stop_strings_and_max_tokens() {
        let m = ScriptedModel::new("s");
        m.reply("x = 1\ny = 2\n").reply("one two three");
        let mut req = CompletionRequest::new("", "");
        req.stop = vec!["\n".into()];
        let g = m
            .complete(req.clone(), None, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(g.text, "x = 1");
        assert_eq!(g.stop_reason, StopReason::StopString("\n".into()));
        req.max_tokens = 2;
        let g = m
            .complete(req, None, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            (g.text.as_str(), g.stop_reason),
            ("one two", StopReason::MaxTokens)
        );
        assert_eq!(m.requests().len(), 2);
    }

    #[tokio::test]
    async fn cancellation_is_honoured_between_tokens() {
        let m = ScriptedModel::new("s").with_token_delay(Duration::from_millis(20));
        m.reply("a b c d e f g h");
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c2.cancel();
        });
        let r = m
            .complete(CompletionRequest::new("", ""), None, cancel)
            .await;
        assert!(matches!(r, Err(ModelError::Cancelled)));
    }
}
