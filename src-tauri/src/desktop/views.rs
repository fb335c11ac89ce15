//! What the window's commands return: plain serialisable views of the engine's answers.

use super::*;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    pub name: String,
    pub origin: Origin,
    pub model_id: String,
    pub endpoint: Option<String>,
    pub quantization: Option<String>,
    pub sha256: Option<String>,
    pub runtime: String,
}

impl From<&ModelIdentity> for ModelView {
    fn from(m: &ModelIdentity) -> Self {
        ModelView {
            name: m.name.clone(),
            origin: m.origin,
            model_id: m.model_id.clone(),
            endpoint: m.endpoint.clone(),
            quantization: m.quantization.clone(),
            sha256: m.gguf_sha256.clone(),
            runtime: m.runtime.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub repo: String,
    pub version: String,
    pub files: Option<u64>,
    pub languages: BTreeMap<String, u64>,
    pub chat_model: Option<ModelView>,
    pub complete_model: Option<ModelView>,
    /// `local` or `remote` (of the chat model), `none` when no model loaded.
    pub backend: String,
    pub model_error: Option<DesktopError>,
    pub index: IndexState,
    /// Which opening of the repository this is, and how many index events had been sent
    /// when `index` was read: the window keeps whichever of a status and an
    /// `index-progress` event is newer (they travel on different channels).
    pub generation: u64,
    pub index_seq: u64,
    pub ledger_path: Option<String>,
    pub ledger_error: Option<String>,
    pub gpu_backend: Option<String>,
    /// Whether editors (`cairn lsp --remote auto`) reach this window's engine.
    pub editors: EditorsView,
    /// The focused chat kinds (Explain, Fix …) the side panel offers, from the engine's
    /// table: a new kind appears without a change here or in the window.
    pub chat_kinds: Vec<ChatKindView>,
    /// The reference index of the repository's dependencies (state, packages) and this
    /// session's counts of suggestions that matched third-party code and were withheld.
    pub references: cairn_engine::ReferenceStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatKindView {
    pub name: String,
    pub button: String,
}

pub(super) fn focused_kinds() -> Vec<ChatKindView> {
    cairn_engine::CHAT_KINDS
        .iter()
        .filter(|k| k.needs_selection)
        .map(|k| ChatKindView {
            name: k.name.to_string(),
            button: k.button.to_string(),
        })
        .collect()
}

/// A chat turn as the window asks it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChatRequest {
    /// Chosen by the window; deltas carry it.
    pub request_id: String,
    pub question: String,
    pub conversation: Option<String>,
    /// `ask` (default), `explain`, `fix` or `test`.
    pub kind: Option<String>,
    /// The selection the question is about: a repository path and 1-based lines.
    pub path: Option<String>,
    pub start_line: Option<u32>,
    pub end_line: Option<u32>,
    pub max_tokens: Option<u32>,
    /// Ask the model even when the response cache holds an answer.
    pub no_cache: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditView {
    pub record_id: String,
    pub path: String,
    /// 1-based lines of the file the edit replaces (an insertion has `end < start`).
    pub start_line: u32,
    pub end_line: u32,
    pub new_text: String,
    /// The file before and after, for the diff (absent for files over the size limit).
    pub old_file: Option<String>,
    pub new_file: Option<String>,
    /// Why it cannot be applied, when it cannot.
    pub problem: Option<String>,
    pub model: ModelView,
    /// The sources the model was given, as `path:start-end`.
    pub context_files: Vec<String>,
    /// Third-party code the edit reproduces (package, version, licence, source lines),
    /// shown beside the diff.
    pub references: Vec<cairn_engine::ReferenceMatch>,
}

/// A proposed edit the `block` policy withheld: where it would have gone and what it
/// reproduces (its text is not shown).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithheldEditView {
    pub record_id: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub references: Vec<cairn_engine::ReferenceMatch>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatView {
    pub request_id: String,
    pub conversation_id: String,
    /// The answer's `answered` ledger record.
    pub record_id: String,
    pub answer: String,
    pub citations: Vec<cairn_engine::Citation>,
    /// Where each citation stands in `answer` (UTF-16 offsets): the window links these.
    pub citation_marks: Vec<CitationMark>,
    pub sources: Vec<cairn_engine::Source>,
    /// Why the answer has no repository sources, when retrieval failed.
    pub sources_error: Option<String>,
    pub edits: Vec<EditView>,
    /// Edits withheld because they reproduce third-party code (`references = "block"`).
    pub withheld: Vec<WithheldEditView>,
    pub model: ModelView,
    /// From the command's start: first streamed text, and the whole turn.
    pub first_token_ms: Option<f64>,
    pub total_ms: f64,
    pub usage: UsageView,
    /// The model that was asked, when another (the fallback) answered.
    pub fallback_from: Option<String>,
    /// Set when the answer came from the response cache: the original answer's record and
    /// when it was given.
    pub cached: Option<cairn_engine::CachedAnswer>,
}

/// The model's side of a turn.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    pub prompt_tokens: u32,
    /// Prompt tokens whose state the model kept from the previous request.
    pub reused_prompt_tokens: u32,
    pub generated_tokens: u32,
    /// From the model request to its first token (prompt evaluation included).
    pub model_first_token_ms: Option<f64>,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedView {
    pub record_id: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceView {
    /// Committed, attested lines (from git notes); `None` with `reportError` when the
    /// range cannot be read (no commits yet, say).
    pub report: Option<ReportData>,
    pub report_error: Option<DesktopError>,
    /// Suggestions and decisions in this repository's ledger, committed or not.
    pub ledger: LedgerSummary,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportView {
    pub path: String,
    pub bytes: usize,
    pub format: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditorSetup {
    /// The bundled `cairn` binary, when found.
    pub cairn: Option<String>,
    /// Where the binary was found: `bundled` (next to the app), `build` (cargo's target
    /// folder), `path` or `none`.
    pub found: String,
    pub neovim: String,
    pub vscode: String,
}
