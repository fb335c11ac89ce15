//! Routing: which model serves completions and which serves chat, each with an optional
//! fallback that answers when the primary fails (a remote that is down, times out or
//! returns garbage). The result says when a fallback answered, and why.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::{ModelSpec, ModelsConfig};
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

#[derive(Clone)]
pub struct Router {
    pub complete: Route,
    pub chat: Route,
}

impl Router {
    /// Loads every model the routing names (each once, even when named twice). Local
    /// models load on the calling thread: call from `spawn_blocking` in async code.
    pub fn from_config(cfg: &ModelsConfig, registry: &mut Registry) -> Result<Router, ModelError> {
        cfg.validate()?;
        let mut loaded: BTreeMap<String, Arc<dyn Backend>> = BTreeMap::new();
        let mut get = |name: &str| -> Result<Arc<dyn Backend>, ModelError> {
            if let Some(b) = loaded.get(name) {
                return Ok(b.clone());
            }
            let b = load(name, &cfg.spec(name)?, registry)?;
            loaded.insert(name.to_string(), b.clone());
            Ok(b)
        };
        let r = &cfg.routing;
        let complete = Route::new(
            get(&r.complete)?,
            r.complete_fallback.as_deref().map(&mut get).transpose()?,
        );
        let chat = Route::new(
            get(&r.chat)?,
            r.chat_fallback.as_deref().map(&mut get).transpose()?,
        );
        Ok(Router { complete, chat })
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
                    let e = registry.verified(r).map_err(|e| match e {
                        ModelError::UnknownModel(n) if n == crate::registry::DEFAULT_MODEL_NAME => ModelError::Config(
                            "the default model is not installed: run `cairn models setup` (or `make setup`)".into(),
                        ),
                        other => other,
                    })?;
                    (e.path, Some(e.sha256))
                }
                (None, None) => {
                    return Err(ModelError::Config(format!(
                        "model `{name}` has neither path nor registry"
                    )))
                }
            };
            Ok(Arc::new(LocalModel::load(name, &path, sha, l.options())?))
        }
        ModelSpec::Remote(r) => Ok(Arc::new(RemoteModel::from_keyring(name, r.clone())?)),
    }
}
