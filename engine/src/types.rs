//! The plain data the engine's operations take and return, named here so front ends
//! never import a core crate. Only data (and the option structs that configure the
//! engine's parts) is listed: every operation on it is the engine's.

pub use cairn_text::{Position, Range, TextChange};

pub use cairn_models::{
    config::{LocalSpec, DEFAULT as DEFAULT_MODEL},
    router::RouteChoice,
    CancellationToken, Fallback, ModelEntry, ModelError, ModelIdentity, ModelSpec,
    Origin as ModelOrigin, Prefilled, PromptBudget, RemoteOptions, RoutingConfig, Speed,
    StopReason, StreamEvent, TokenSink, Usage,
};

pub use cairn_indexer::{
    IndexOptions, IndexStats, MatchReason, Progress as IndexProgress,
    ProgressPhase as IndexProgressPhase, RetrieverHit, RetrieverRun, RunStats, SearchExplanation,
    SearchHit, SearchQuery, Snippet, SnippetKind, Symbol, WatchEvent,
};

pub use cairn_provenance::{
    keys::KeyStore, AiRegion, AttestOutcome, BlameEntry, CheckOptions, CheckOutcome, ContextSource,
    FileKeyStore, InitOutcome, LedgerOptions, LineClass, ReportData, ReportFormat, ReviewOutcome,
    ReviewerIdentity, VerifyReport,
};
