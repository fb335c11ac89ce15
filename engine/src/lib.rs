//! cairn-engine: the one door to Cairn for every front end. A [`Workspace`] ties a
//! repository's index, the model backends and the provenance ledger into completions and
//! chat; [`RepoIndex`], [`Provenance`] and [`ModelStore`] are the operations the command
//! line and the desktop app run without a session (indexing, attribution, model files).
//! It must never speak a front end's protocol (LSP, Tauri, a terminal): front ends
//! translate, and they call only this crate — never the core crates behind it.

mod agent;
mod chat;
mod completion;
pub mod config;
mod index;
mod logging;
mod models;
mod provenance;
mod records;
pub mod redact;
mod references;
mod types;
mod workspace;

pub use agent::{
    redact_lines, AgentChange, AgentEdit, BlameLine, FileLines, RecordedAgentEdit, RecordedChange,
    MAX_AGENT_CHANGES, MAX_AGENT_CHANGE_LINES, MAX_AGENT_FILE_BYTES,
};
pub use chat::{
    ChatCacheOptions, ChatKind, ChatKindInfo, Citation, CitationMark, EditTarget, Source,
    CHAT_KINDS,
};
pub use completion::{BudgetFacts, CompletionOptions, Window, DEFAULT_LATENCY_BUDGET_MS};
pub use config::Config;
pub use index::{IndexWatch, RepoIndex};
pub use logging::init_logging;
pub use models::{
    check_model_file, gpu_backend, shutdown_model_threads, ApiKeys, CatalogueItem, Engine,
    ModelStore,
};
pub use provenance::{LedgerEvent, LedgerSummary, ModelDecisions, Provenance, NOTES_REF};
pub use references::{
    ReferenceIndexReport, ReferenceMatch, ReferenceOptions, ReferencePolicy, ReferenceStatus,
    ReferenceWarning, References,
};
pub use types::*;
pub use workspace::{
    AcceptedReference, CachedAnswer, ChatAnswer, ChatTurn, CompleteRequest, Completion,
    ContextChoice, IndexState, LedgerStatus, ProposedEdit, Status, Suggestion, Timings, Trigger,
    WithheldEdit, Workspace, WorkspaceOptions,
};

/// Every failure an operation reports, with a message a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Model(#[from] cairn_models::ModelError),
    #[error(transparent)]
    Index(#[from] cairn_indexer::Error),
    #[error(transparent)]
    Provenance(#[from] cairn_provenance::Error),
    #[error("{0}")]
    Input(String),
    /// A part the request needs (model, ledger) could not be opened.
    #[error("{0}")]
    Unavailable(String),
}

impl EngineError {
    /// The request was cancelled (by the caller or a newer request).
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            EngineError::Model(cairn_models::ModelError::Cancelled)
        )
    }
}
