//! Routing: which model serves completions and which serves chat, each with an optional
//! fallback that answers when the primary fails (a remote that is down, times out or
//! returns garbage). The result says when a fallback answered, and why.
//!
//! The route `auto` picks a model for the machine ([`choose_auto`]): coder-1.5b where it
//! is installed and this machine answers with it inside [`CHAT_BUDGET`] (a GPU backend
//! compiled in, or its measured speed), else coder-0.5b. What was chosen and why is in
//! [`Router::choices`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::config::{ModelSpec, ModelsConfig, AUTO};
use crate::install::{CODER_0_5B, CODER_1_5B};
use crate::local::LocalModel;
use crate::registry::Registry;
use crate::remote::RemoteModel;
use crate::types::*;
use crate::{Backend, ModelError};

#[derive(Clone)]
pub struct Route {
    pub primary: Arc<dyn Backend>,
    pub fallback: Option<Arc<dyn Backend>>,
}

impl Route {
    pub fn new(primary: Arc<dyn Backend>, fallback: Option<Arc<dyn Backend>>) -> Self {
        Route { primary, fallback }
    }

    /// Runs `call` on the primary; on failure (not cancellation) voids what was streamed
    /// and runs it on the fallback, noting why.
    async fn run(
        &self,
        sink: TokenSink,
        call: impl Fn(&dyn Backend, TokenSink) -> BoxFuture<'static, Result<Generation, ModelError>>,
    ) -> Result<Generation, ModelError> {
        let first = call(self.primary.as_ref(), sink.clone()).await;
        match (first, &self.fallback) {
            (Err(e), Some(fb)) if !matches!(e, ModelError::Cancelled) => {
                let reason = e.to_string();
                emit(
                    &sink,
                    StreamEvent::Reset {
                        reason: reason.clone(),
                    },
                );
                let mut g = call(fb.as_ref(), sink).await?;
                g.fallback = Some(Fallback {
                    from: self.primary.identity().name,
                    reason,
                });
                Ok(g)
            }
            (r, _) => r,
        }
    }

    pub async fn complete(
        &self,
        req: CompletionRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> Result<Generation, ModelError> {
        self.run(sink, |b, s| b.complete(req.clone(), s, cancel.clone()))
            .await
    }

    /// Warms the primary's KV cache for a completion that may follow (see
    /// [`Backend::prefill`]); a fallback is not warmed.
    pub async fn prefill(
        &self,
        req: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<Prefilled, ModelError> {
        self.primary.prefill(req, cancel).await
    }

    pub async fn chat(
        &self,
        req: ChatRequest,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> Result<Generation, ModelError> {
        self.run(sink, |b, s| b.chat(req.clone(), s, cancel.clone()))
            .await
    }
}

/// Which model serves a route, and why: what `cairn models list` and `cairn/status`
/// show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteChoice {
    /// `complete` or `chat`.
    pub route: String,
    /// What the configuration asked for (`auto`, or a model name).
    pub requested: String,
    /// The model that serves it.
    pub model: String,
    pub reason: String,
}

/// What `auto` asks of a chat model on this machine: the first token of an answer to
/// a question with retrieved sources (`prompt_tokens`) within `first_token`, and the
/// answer at reading speed or faster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatBudget {
    pub prompt_tokens: u32,
    pub first_token: Duration,
    pub min_decode_tokens_per_s: f64,
}

/// A typical chat prompt (the question, ~1,500 tokens of sources) answered within 10 s,
/// at 8 tokens/s or faster (about reading speed).
pub const CHAT_BUDGET: ChatBudget = ChatBudget {
    prompt_tokens: 1500,
    first_token: Duration::from_secs(10),
    min_decode_tokens_per_s: 8.0,
};

impl ChatBudget {
    /// Whether a model of this speed answers within the budget, and a sentence saying so.
    pub fn check(&self, s: &Speed) -> (bool, String) {
        let first = s.estimate(self.prompt_tokens, 1);
        let ok = first <= self.first_token && s.decode_tokens_per_s >= self.min_decode_tokens_per_s;
        let verdict = format!(
            "measured {:.0} prompt tok/s and {:.1} tok/s here: first token of a {}-token question in {:.1} s (budget {} s), answer at {:.1} tok/s (budget >= {})",
            s.prompt_tokens_per_s,
            s.decode_tokens_per_s,
            self.prompt_tokens,
            first.as_secs_f64(),
            self.first_token.as_secs(),
            s.decode_tokens_per_s,
            self.min_decode_tokens_per_s
        );
        (ok, verdict)
    }
}

#[derive(Clone)]
pub struct Router {
    pub complete: Route,
    pub chat: Route,
    /// Which model serves each route and why (for status displays).
    pub choices: Vec<RouteChoice>,
}

impl Router {
    /// Loads every model the routing names (each once, even when named twice). Local
    /// models load on the calling thread: call from `spawn_blocking` in async code.
    pub fn from_config(cfg: &ModelsConfig, registry: &mut Registry) -> Result<Router, ModelError> {
        cfg.validate()?;
        let mut loaded: BTreeMap<String, Arc<dyn Backend>> = BTreeMap::new();
        let mut choices = Vec::new();
        let mut resolve = |route: &str,
                           name: &str,
                           loaded: &mut BTreeMap<String, Arc<dyn Backend>>,
                           registry: &mut Registry|
         -> Result<Arc<dyn Backend>, ModelError> {
            let (name, reason) = if name == AUTO && !cfg.models.contains_key(AUTO) {
                let c = choose_auto(cfg, registry, loaded)?;
                if let Some(b) = c.backend {
                    loaded.insert(c.model.clone(), b);
                }
                (c.model, c.reason)
            } else {
                (name.to_string(), "configured".to_string())
            };
            if !route.is_empty() {
                choices.push(RouteChoice {
                    route: route.to_string(),
                    requested: if route == "complete" {
                        cfg.routing.complete.clone()
                    } else {
                        cfg.routing.chat.clone()
                    },
                    model: name.clone(),
                    reason,
                });
            }
            if let Some(b) = loaded.get(&name) {
                return Ok(b.clone());
            }
            let b = load(&name, &cfg.spec(&name)?, registry)?;
            loaded.insert(name, b.clone());
            Ok(b)
        };
        let r = &cfg.routing;
        let complete_primary = resolve("complete", &r.complete, &mut loaded, registry)?;
        let complete_fallback = match r.complete_fallback.as_deref() {
            Some(f) => Some(resolve("", f, &mut loaded, registry)?),
            None => None,
        };
        let chat_primary = resolve("chat", &r.chat, &mut loaded, registry)?;
        let chat_fallback = match r.chat_fallback.as_deref() {
            Some(f) => Some(resolve("", f, &mut loaded, registry)?),
            None => None,
        };
        Ok(Router {
            complete: Route::new(complete_primary, complete_fallback),
            chat: Route::new(chat_primary, chat_fallback),
            choices,
        })
    }
}

/// What `auto` resolved to.
pub struct AutoChoice {
    pub model: String,
    pub reason: String,
    /// The chosen model when deciding already loaded it.
    pub backend: Option<Arc<dyn Backend>>,
}

fn auto(model: impl Into<String>, reason: impl Into<String>) -> AutoChoice {
    AutoChoice {
        model: model.into(),
        reason: reason.into(),
        backend: None,
    }
}

/// Resolves `auto`: coder-1.5b where it is installed and answers within
/// [`CHAT_BUDGET`] here (a GPU backend compiled in, or its speed measured on this
/// machine — read from the speed cache, or measured by loading it once), else
/// coder-0.5b. Returns the name, the reason, and the backend when deciding loaded it.
pub fn choose_auto(
    cfg: &ModelsConfig,
    registry: &mut Registry,
    loaded: &BTreeMap<String, Arc<dyn Backend>>,
) -> Result<AutoChoice, ModelError> {
    let small = CODER_0_5B.name.to_string();
    let big = CODER_1_5B.name;
    let Ok(entry) = registry.verified(big) else {
        return Ok(auto(
            small,
            format!("{big} is not installed (`cairn models setup {big}` adds it)"),
        ));
    };
    if let Some(gpu) = crate::gpu_backend() {
        return Ok(auto(big, format!("GPU backend {gpu} compiled in")));
    }
    if let Some(b) = loaded.get(big) {
        if let Some(s) = b.speed() {
            let (ok, why) = CHAT_BUDGET.check(&s);
            return Ok(auto(if ok { big.to_string() } else { small }, why));
        }
    }
    let ModelSpec::Local(spec) = cfg.spec(big)? else {
        return Ok(auto(big, "configured as a remote model"));
    };
    let opts = spec.options();
    let key = crate::speed::SpeedKey::for_this_machine(
        &entry.sha256,
        opts.gpu_layers(),
        opts.threads(),
        opts.threads_batch(),
    );
    if let Some(m) = crate::speed::SpeedCache::open_default().get(&key) {
        let (ok, why) = CHAT_BUDGET.check(&m.speed);
        return Ok(auto(if ok { big.to_string() } else { small }, why));
    }
    // Not measured on this machine yet: load it (the probe measures and caches).
    let backend = load(big, &ModelSpec::Local(spec), registry)?;
    match backend.speed() {
        Some(s) => {
            let (ok, why) = CHAT_BUDGET.check(&s);
            if ok {
                Ok(AutoChoice {
                    model: big.to_string(),
                    reason: why,
                    backend: Some(backend),
                })
            } else {
                Ok(auto(small, why))
            }
        }
        None => Ok(auto(
            small,
            format!("{big}'s speed could not be measured here (CAIRN_SPEED_PROBE=off?)"),
        )),
    }
}

/// Builds one backend from its spec.
pub fn load(
    name: &str,
    spec: &ModelSpec,
    registry: &mut Registry,
) -> Result<Arc<dyn Backend>, ModelError> {
    match spec {
        ModelSpec::Local(l) => {
            let (path, sha) = match (&l.path, &l.registry) {
                (Some(p), _) => (p.clone(), None),
                (None, Some(r)) => {
                    let e = registry.verified(r)?;
                    (e.path, Some(e.sha256))
                }
                (None, None) => {
                    return Err(ModelError::Config(format!(
                        "model `{name}` has neither path nor registry"
                    )))
                }
            };
            let mut options = l.options();
            if let Some(d) = &l.draft {
                options.draft_model = Some(if d.contains('/') || d.ends_with(".gguf") {
                    PathBuf::from(d)
                } else {
                    registry.verified(d)?.path
                });
            }
            Ok(Arc::new(LocalModel::load(name, &path, sha, options)?))
        }
        ModelSpec::Remote(r) => Ok(Arc::new(RemoteModel::from_keyring(name, r.clone())?)),
    }
}
