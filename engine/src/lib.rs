//! cairn-engine: one workspace session. It ties the repository index, the model
//! backends and the provenance ledger into `complete()` and `chat()`.
//! It must never speak a front end's protocol (LSP, Tauri, terminal): front ends translate.

pub use cairn_indexer as indexer;
pub use cairn_models as models;
pub use cairn_provenance as provenance;

pub mod chat;
pub mod completion;
pub mod config;
pub mod document;
pub mod redact;
pub mod syntax;
pub mod workspace;

use std::path::{Path, PathBuf};

use models::{ModelError, Registry, Router};

pub use completion::{CompletionOptions, Window};
pub use config::Config;
pub use workspace::{
    ChatAnswer, ChatKind, ChatTurn, CompleteRequest, Completion, ContextChoice, IndexState,
    ProposedEdit, Status, Suggestion, Trigger, Workspace, WorkspaceOptions,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Input(String),
    /// A part the request needs (model, ledger) could not be opened.
    #[error("{0}")]
    Unavailable(String),
}

/// The configured models of a repository (a [`Workspace`] holds one).
pub struct Engine {
    root: Option<PathBuf>,
    config: Config,
    router: Router,
}

impl Engine {
    /// Loads the configured models. Blocking: local models are read from disk.
    pub fn open(root: Option<&Path>, config: Config) -> Result<Engine, EngineError> {
        let mut registry = Registry::open_default()?;
        let router = Router::from_config(&config.models_config(), &mut registry)?;
        Ok(Engine {
            root: root.map(Path::to_path_buf),
            config,
            router,
        })
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn router(&self) -> &Router {
        &self.router
    }
}
