//! cairn-lsp: the Language Server Protocol front end of the engine, run as `cairn lsp`.
//!
//! A thin protocol layer: it converts LSP requests into [`Workspace`] calls and their
//! results back into LSP. It holds no state of its own beyond the workspace handle and
//! what the client said it supports. Built on tower-lsp-server 0.23 (the maintained fork
//! of tower-lsp, with LSP 3.18 types); `textDocument/inlineCompletion` is registered as
//! a custom method because the trait has no hook for it yet.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cairn_engine::{
    CancellationToken, ChatAnswer, ChatKind, ChatTurn, CompleteRequest, Config, EditTarget,
    EngineError, IndexState, ModelIdentity, StreamEvent, TextChange, Trigger, Workspace,
    WorkspaceOptions, CHAT_KINDS,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

mod framing;
pub mod shared;

pub use framing::guarded;

pub const CMD_ACCEPT: &str = "cairn.accept";
pub const CMD_REJECT: &str = "cairn.reject";

/// Every command the server executes: accept, reject, and each chat kind's command.
fn commands() -> Vec<String> {
    [CMD_ACCEPT, CMD_REJECT]
        .into_iter()
        .chain(CHAT_KINDS.iter().filter_map(|k| k.command))
        .map(String::from)
        .collect()
}

/// How `cairn lsp` starts.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The repository; otherwise the client's root (workspace folder or rootUri).
    pub repo: Option<PathBuf>,
    pub workspace: WorkspaceOptions,
}

/// Serves LSP on stdin/stdout until the client exits.
pub async fn serve_stdio(options: ServerOptions) {
    let (service, socket) = service(options);
    framing::guarded(tokio::io::stdin(), tokio::io::stdout(), |input, output| {
        Server::new(input, output, socket).serve(service)
    })
    .await;
}

/// The service, for any transport.
pub fn service(
    options: ServerOptions,
) -> (LspService<CairnServer>, tower_lsp_server::ClientSocket) {
    service_with(options, None)
}

/// The service, sharing workspaces with other sessions when `shared` is given.
pub fn service_with(
    options: ServerOptions,
    shared: Option<Arc<shared::Workspaces>>,
) -> (LspService<CairnServer>, tower_lsp_server::ClientSocket) {
    LspService::build(|client| CairnServer {
        client,
        options,
        shared,
        workspace: OnceLock::new(),
        open_error: Mutex::new(None),
        client_caps: Mutex::new(ClientCapabilities::default()),
    })
    .custom_method(
        "textDocument/inlineCompletion",
        CairnServer::inline_completion,
    )
    .custom_method("cairn/chat", CairnServer::chat)
    .custom_method("cairn/status", CairnServer::status)
    .finish()
}

pub struct CairnServer {
    client: Client,
    options: ServerOptions,
    shared: Option<Arc<shared::Workspaces>>,
    workspace: OnceLock<Arc<Workspace>>,
    open_error: Mutex<Option<String>>,
    client_caps: Mutex<ClientCapabilities>,
}

/// `$/progress` with any value: partial results of `cairn/chat`.
enum PartialResult {}

impl notification::Notification for PartialResult {
    type Params = Value;
    const METHOD: &'static str = "$/progress";
}

fn invalid_params(msg: impl Into<String>) -> Error {
    Error::invalid_params(msg.into())
}

fn engine_error(e: EngineError) -> Error {
    match e {
        e if e.is_cancelled() => Error::request_cancelled(),
        EngineError::Input(msg) => invalid_params(msg),
        other => Error {
            code: ErrorCode::InternalError,
            message: other.to_string().into(),
            data: None,
        },
    }
}

fn pos(p: Position) -> cairn_text::Position {
    cairn_text::Position::new(p.line, p.character)
}

fn lsp_pos(p: cairn_text::Position) -> Position {
    Position::new(p.line, p.character)
}

fn lsp_range(r: cairn_text::Range) -> Range {
    Range::new(lsp_pos(r.start), lsp_pos(r.end))
}

fn text_range(r: Range) -> cairn_text::Range {
    cairn_text::Range::new(pos(r.start), pos(r.end))
}

/// The file path of a `file:` URI; other schemes keep the URI as their name.
fn path_of(uri: &Uri) -> String {
    match uri.to_file_path() {
        Some(p) => p.to_string_lossy().into_owned(),
        None => uri.as_str().to_string(),
    }
}

fn uri_of(ws: &Workspace, path: &str) -> Option<Uri> {
    let p = std::path::Path::new(path);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        ws.root().join(p)
    };
    Uri::from_file_path(abs)
}

/// Cancels the engine's work when the request's future is dropped (`$/cancelRequest`).
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcceptArgs {
    record_id: String,
    #[serde(default)]
    partial: bool,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RejectArgs {
    record_id: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FocusArgs {
    uri: Uri,
    range: Range,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatParams {
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub uri: Option<Uri>,
    #[serde(default)]
    pub range: Option<Range>,
    /// `ask` (default), `explain`, `fix` or `test`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub partial_result_token: Option<ProgressToken>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CitationOut {
    n: usize,
    path: String,
    uri: Option<Uri>,
    start_line: usize,
    end_line: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EditOut {
    record_id: String,
    uri: Option<Uri>,
    path: String,
    range: Range,
    new_text: String,
}

fn args<T: for<'de> Deserialize<'de>>(command: &str, arguments: &[Value]) -> Result<T> {
    let first = arguments
        .first()
        .ok_or_else(|| invalid_params(format!("{command} needs one argument object")))?;
    serde_json::from_value(first.clone())
        .map_err(|e| invalid_params(format!("{command}: bad argument: {e}")))
}

impl CairnServer {
    fn ws(&self) -> Result<&Arc<Workspace>> {
        self.workspace.get().ok_or_else(|| {
            let why = self
                .open_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "the workspace is still opening".into());
            Error {
                code: ErrorCode::InternalError,
                message: why.into(),
                data: None,
            }
        })
    }

    async fn complete(
        &self,
        uri: &Uri,
        position: Position,
        invoked: bool,
    ) -> Result<cairn_engine::Completion> {
        let trigger = if invoked {
            Trigger::Invoked
        } else {
            Trigger::Automatic
        };
        let ws = self.ws()?.clone();
        let token = CancellationToken::new();
        let _guard = CancelOnDrop(token.clone());
        let req = CompleteRequest {
            path: path_of(uri),
            position: pos(position),
            trigger,
            max_items: 3,
        };
        ws.complete(req, token).await.map_err(engine_error)
    }

    /// Whether the client accepts `window/workDoneProgress/create`.
    fn client_supports_progress(&self) -> bool {
        self.client_caps
            .lock()
            .ok()
            .and_then(|c| c.window.as_ref().and_then(|w| w.work_done_progress))
            .unwrap_or(false)
    }

    fn accept_command(&self, uri: &Uri, record_id: &str) -> Command {
        Command {
            title: "Accept Cairn suggestion".into(),
            command: CMD_ACCEPT.into(),
            arguments: Some(vec![json!({"recordId": record_id, "uri": uri})]),
        }
    }

    async fn inline_completion(
        &self,
        params: InlineCompletionParams,
    ) -> Result<Option<InlineCompletionResponse>> {
        let tdp = params.text_document_position;
        let invoked = params.context.trigger_kind == InlineCompletionTriggerKind::INVOKED;
        let done = self
            .complete(&tdp.text_document.uri, tdp.position, invoked)
            .await?;
        let items = done
            .items
            .into_iter()
            .map(|s| InlineCompletionItem {
                insert_text: s.text,
                filter_text: None,
                range: Some(lsp_range(s.range)),
                command: Some(self.accept_command(&tdp.text_document.uri, &s.record_id)),
                insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
            })
            .collect();
        Ok(Some(InlineCompletionResponse::List(InlineCompletionList {
            items,
        })))
    }

    async fn chat(&self, params: ChatParams) -> Result<Value> {
        let ws = self.ws()?.clone();
        let name = params.kind.as_deref().unwrap_or("ask");
        let kind = ChatKind::from_name(name).ok_or_else(|| {
            invalid_params(format!(
                "unknown chat kind {name:?}: use {}",
                ChatKind::names()
            ))
        })?;
        let turn = ChatTurn {
            question: params.question,
            conversation: params.conversation_id,
            path: params.uri.as_ref().map(path_of),
            range: params.range.map(text_range),
            kind,
            max_tokens: params.max_tokens,
        };
        let answer = self
            .run_chat(&ws, turn, params.partial_result_token)
            .await?;
        Ok(self.answer_json(&ws, &answer))
    }

    async fn run_chat(
        &self,
        ws: &Arc<Workspace>,
        turn: ChatTurn,
        partial: Option<ProgressToken>,
    ) -> Result<ChatAnswer> {
        let token = CancellationToken::new();
        let _guard = CancelOnDrop(token.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StreamEvent>();
        let client = self.client.clone();
        let forward = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let Some(t) = &partial {
                    let value = match ev {
                        StreamEvent::Text(delta) => json!({"delta": delta}),
                        StreamEvent::Reset { reason } => json!({"reset": reason}),
                    };
                    client
                        .send_notification::<PartialResult>(json!({"token": t, "value": value}))
                        .await;
                }
            }
        });
        let result = ws.chat(turn, Some(tx), token).await;
        // The sender is gone with the call: the forwarder drains what is left, so every
        // partial result is on the wire before the response.
        let _ = forward.await;
        result.map_err(engine_error)
    }

    fn answer_json(&self, ws: &Workspace, a: &ChatAnswer) -> Value {
        let citations: Vec<CitationOut> = a
            .citations
            .iter()
            .map(|c| CitationOut {
                n: c.n,
                path: c.path.clone(),
                uri: uri_of(ws, &c.path),
                start_line: c.start_line,
                end_line: c.end_line,
            })
            .collect();
        let edits: Vec<EditOut> = a
            .edits
            .iter()
            .map(|e| EditOut {
                record_id: e.record_id.clone(),
                uri: uri_of(ws, &e.path),
                path: e.path.clone(),
                range: lsp_range(e.range),
                new_text: e.new_text.clone(),
            })
            .collect();
        json!({
            "conversationId": a.conversation_id,
            "answer": a.answer,
            "citations": citations,
            "citationMarks": a.citation_marks,
            "edits": edits,
            "sources": a.sources,
            "sourcesError": a.sources_error,
            "model": {"name": a.model.name, "origin": a.model.origin, "modelId": a.model.model_id},
        })
    }

    async fn status(&self) -> Result<Value> {
        let Some(ws) = self.workspace.get() else {
            let err = self.open_error.lock().ok().and_then(|e| e.clone());
            return Ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "repo": null,
                "error": err,
                "index": {"state": "error", "files": 0},
                "ledger": {"path": null},
            }));
        };
        let s = ws.status();
        let mut index = serde_json::to_value(&s.index).unwrap_or(Value::Null);
        index["files"] = json!(s.index.files());
        let model = |m: &Option<ModelIdentity>| {
            m.as_ref().map(|m| {
                json!({"name": m.name, "origin": m.origin, "modelId": m.model_id,
                       "runtime": m.runtime, "endpoint": m.endpoint, "ggufSha256": m.gguf_sha256})
            })
        };
        Ok(json!({
            "version": s.version,
            "repo": s.repo,
            "model": model(&s.model),
            "chatModel": model(&s.chat_model),
            "modelError": s.model_error,
            "index": index,
            "ledger": {"path": s.ledger.path, "error": s.ledger.error},
        }))
    }

    /// Explain / Fix / Write a test from a code action: the answer streams into a
    /// work-done progress, then an edit is offered and applied only if the user agrees.
    async fn focused_action(&self, kind: ChatKind, a: FocusArgs) -> Result<Option<Value>> {
        let ws = self.ws()?.clone();
        let info = kind.info();
        let title = info.progress;
        let progress_ok = self.client_supports_progress();
        let token = ProgressToken::String(format!("cairn/{}", uuid::Uuid::now_v7()));
        let progress = if progress_ok
            && self
                .client
                .create_work_done_progress(token.clone())
                .await
                .is_ok()
        {
            Some(self.client.progress(token, title).begin().await)
        } else {
            None
        };
        let turn = ChatTurn {
            question: String::new(),
            conversation: None,
            path: Some(path_of(&a.uri)),
            range: Some(text_range(a.range)),
            kind,
            max_tokens: None,
        };
        let answer = self.run_chat(&ws, turn, None).await;
        if let Some(p) = progress {
            p.finish().await;
        }
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.client
                    .show_message(MessageType::ERROR, format!("Cairn: {}", e.message))
                    .await;
                return Err(e);
            }
        };
        // A code action is one turn: nobody continues its conversation.
        ws.forget_conversation(&answer.conversation_id);
        if info.edits == EditTarget::None || answer.edits.is_empty() {
            self.client
                .show_message(MessageType::INFO, answer.answer.clone())
                .await;
            return Ok(Some(self.answer_json(&ws, &answer)));
        }
        for edit in &answer.edits {
            let question = format!(
                "Cairn proposes a change to {} (lines {}-{}):\n{}",
                edit.path,
                edit.range.start.line + 1,
                edit.range.end.line.max(edit.range.start.line) + 1,
                edit.new_text
            );
            let choice = self
                .client
                .show_message_request(
                    MessageType::INFO,
                    question,
                    Some(vec![
                        MessageActionItem {
                            title: "Apply".into(),
                            properties: Default::default(),
                        },
                        MessageActionItem {
                            title: "Dismiss".into(),
                            properties: Default::default(),
                        },
                    ]),
                )
                .await
                .ok()
                .flatten();
            let Some(uri) = uri_of(&ws, &edit.path) else {
                continue;
            };
            if choice.is_some_and(|c| c.title == "Apply") {
                let mut changes = std::collections::HashMap::new();
                changes.insert(
                    uri,
                    vec![TextEdit::new(lsp_range(edit.range), edit.new_text.clone())],
                );
                let applied = self
                    .client
                    .apply_edit(WorkspaceEdit::new(changes))
                    .await
                    .map(|r| r.applied)
                    .unwrap_or(false);
                let recorded = if applied {
                    ws.accept(&edit.record_id, false, None).await
                } else {
                    ws.reject(&edit.record_id, "the editor did not apply the edit")
                        .await
                };
                if let Err(e) = recorded {
                    self.client
                        .log_message(MessageType::WARNING, format!("Cairn ledger: {e}"))
                        .await;
                }
            } else if let Err(e) = ws.reject(&edit.record_id, "dismissed").await {
                self.client
                    .log_message(MessageType::WARNING, format!("Cairn ledger: {e}"))
                    .await;
            }
        }
        Ok(Some(self.answer_json(&ws, &answer)))
    }

    async fn report_index_progress(&self, ws: Arc<Workspace>) {
        let progress_ok = self.client_supports_progress();
        let mut rx = ws.index_events();
        let client = self.client.clone();
        tokio::spawn(async move {
            let token = ProgressToken::String("cairn/index".into());
            let mut ongoing = None;
            loop {
                let state = rx.borrow_and_update().clone();
                match &state {
                    IndexState::Opening | IndexState::Indexing { .. } => {
                        if ongoing.is_none()
                            && progress_ok
                            && client
                                .create_work_done_progress(token.clone())
                                .await
                                .is_ok()
                        {
                            ongoing = Some(
                                client
                                    .progress(token.clone(), "Cairn: indexing")
                                    .with_percentage(0)
                                    .begin()
                                    .await,
                            );
                        }
                        if let (
                            Some(p),
                            IndexState::Indexing {
                                files_done,
                                files_total,
                            },
                        ) = (&ongoing, &state)
                        {
                            let pct = if *files_total > 0 {
                                (files_done * 100 / files_total) as u32
                            } else {
                                0
                            };
                            p.report_with_message(format!("{files_done}/{files_total} files"), pct)
                                .await;
                        }
                    }
                    IndexState::Error { message } => {
                        client
                            .show_message(
                                MessageType::WARNING,
                                format!("Cairn: the index is unavailable ({message}); completions work without repository context"),
                            )
                            .await;
                    }
                    _ => {}
                }
                let finished = !matches!(state, IndexState::Opening | IndexState::Indexing { .. });
                if finished {
                    if let Some(p) = ongoing.take() {
                        p.finish_with_message(match &state {
                            IndexState::Ready { files } => format!("{files} files indexed"),
                            other => format!("{other:?}"),
                        })
                        .await;
                    }
                    break;
                }
                if rx.changed().await.is_err() {
                    break;
                }
                // At most ten reports a second.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
    }
}

fn root_of(params: &InitializeParams) -> Option<PathBuf> {
    if let Some(folder) = params.workspace_folders.as_ref().and_then(|f| f.first()) {
        if let Some(p) = folder.uri.to_file_path() {
            return Some(p.into_owned());
        }
    }
    #[allow(deprecated)]
    params
        .root_uri
        .as_ref()
        .and_then(|u| u.to_file_path())
        .map(|p| p.into_owned())
}

impl LanguageServer for CairnServer {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        if let Ok(mut c) = self.client_caps.lock() {
            *c = params.capabilities.clone();
        }
        let root = self
            .options
            .repo
            .clone()
            .or_else(|| root_of(&params))
            .or_else(|| std::env::current_dir().ok());
        let opened = match root {
            None => Err("no repository: pass --repo or open a folder".to_string()),
            Some(root) => {
                let options = self.options.workspace.clone();
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || match shared {
                    Some(s) => s.get_or_open(&root, &options),
                    None => {
                        let config = Config::load(Some(&root)).map_err(|e| e.to_string())?;
                        Workspace::open(&root, config, options).map_err(|e| e.to_string())
                    }
                })
                .await
                .map_err(|e| format!("opening the workspace failed: {e}"))
                .and_then(|r| r)
            }
        };
        match opened {
            Ok(ws) => {
                let _ = self.workspace.set(ws);
            }
            Err(e) => {
                if let Ok(mut slot) = self.open_error.lock() {
                    *slot = Some(e);
                }
            }
        }
        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "cairn".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities: ServerCapabilities {
                position_encoding: Some(PositionEncodingKind::UTF16),
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::INCREMENTAL),
                        save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                        ..Default::default()
                    },
                )),
                completion_provider: Some(CompletionOptions {
                    // Items are complete as sent; resolving would only delay the accept
                    // command (Neovim 0.11 drops it when the buffer changed meanwhile).
                    resolve_provider: Some(false),
                    ..Default::default()
                }),
                inline_completion_provider: Some(OneOf::Left(true)),
                code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: commands(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        match self.workspace.get() {
            Some(ws) => {
                let s = ws.status();
                if let Some(e) = &s.model_error {
                    self.client
                        .show_message(MessageType::ERROR, format!("Cairn: {e}"))
                        .await;
                }
                if let Some(e) = &s.ledger.error {
                    self.client
                        .show_message(
                            MessageType::WARNING,
                            format!("Cairn: suggestions are off because {e}"),
                        )
                        .await;
                }
                self.report_index_progress(ws.clone()).await;
            }
            None => {
                let e = self.open_error.lock().ok().and_then(|e| e.clone());
                self.client
                    .show_message(
                        MessageType::ERROR,
                        format!("Cairn: {}", e.unwrap_or_else(|| "no workspace".into())),
                    )
                    .await;
            }
        }
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, p: DidOpenTextDocumentParams) {
        if let Ok(ws) = self.ws() {
            let d = p.text_document;
            ws.open_document(&path_of(&d.uri), d.version, d.text);
        }
    }

    async fn did_change(&self, p: DidChangeTextDocumentParams) {
        let Ok(ws) = self.ws() else { return };
        let changes: Vec<TextChange> = p
            .content_changes
            .into_iter()
            .map(|c| match c.range {
                Some(r) => TextChange::Incremental {
                    range: text_range(r),
                    text: c.text,
                },
                None => TextChange::Full { text: c.text },
            })
            .collect();
        let path = path_of(&p.text_document.uri);
        if let Err(e) = ws.change_document(&path, p.text_document.version, &changes) {
            self.client
                .log_message(MessageType::WARNING, format!("Cairn: {e}"))
                .await;
        }
    }

    async fn did_save(&self, p: DidSaveTextDocumentParams) {
        if let Ok(ws) = self.ws() {
            ws.save_document(&path_of(&p.text_document.uri)).await;
        }
    }

    async fn did_close(&self, p: DidCloseTextDocumentParams) {
        if let Ok(ws) = self.ws() {
            ws.close_document(&path_of(&p.text_document.uri));
        }
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let tdp = params.text_document_position;
        let invoked = params
            .context
            .as_ref()
            .is_some_and(|c| c.trigger_kind == CompletionTriggerKind::INVOKED);
        let done = self
            .complete(&tdp.text_document.uri, tdp.position, invoked)
            .await?;
        // The model's name only: not the whole status (index, ledger) per request.
        let model = self
            .ws()?
            .models()
            .map(|e| e.completion_model().name)
            .unwrap_or_default();
        let items = done
            .items
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let first = s.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let mut label: String = first.trim().chars().take(80).collect();
                if s.text.trim().lines().count() > 1 {
                    label.push_str(" …");
                }
                CompletionItem {
                    label,
                    kind: Some(CompletionItemKind::TEXT),
                    detail: Some(format!("Cairn · {model}")),
                    documentation: Some(Documentation::MarkupContent(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: format!("```\n{}\n```", s.text),
                    })),
                    sort_text: Some(format!("0{i}")),
                    filter_text: Some(String::new()),
                    preselect: Some(i == 0),
                    insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
                    text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(
                        lsp_range(s.range),
                        s.text.clone(),
                    ))),
                    command: Some(self.accept_command(&tdp.text_document.uri, &s.record_id)),
                    data: Some(json!({"recordId": s.record_id, "uri": tdp.text_document.uri})),
                    ..Default::default()
                }
            })
            .collect();
        Ok(Some(CompletionResponse::List(CompletionList {
            is_incomplete: true,
            items,
        })))
    }

    async fn completion_resolve(&self, item: CompletionItem) -> Result<CompletionItem> {
        Ok(item)
    }

    async fn code_action(&self, p: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let arg = json!({"uri": p.text_document.uri, "range": p.range});
        // Clients without codeActionLiteralSupport take bare commands only (LSP 3.17).
        let literals = self
            .client_caps
            .lock()
            .ok()
            .and_then(|c| {
                c.text_document
                    .as_ref()
                    .and_then(|t| t.code_action.as_ref())
                    .map(|a| a.code_action_literal_support.is_some())
            })
            .unwrap_or(false);
        let action = |title: &str, command: &str, kind: CodeActionKind| {
            let command = Command {
                title: title.into(),
                command: command.into(),
                arguments: Some(vec![arg.clone()]),
            };
            if !literals {
                return CodeActionOrCommand::Command(command);
            }
            CodeActionOrCommand::CodeAction(CodeAction {
                title: title.into(),
                kind: Some(kind),
                command: Some(command),
                ..Default::default()
            })
        };
        Ok(Some(
            CHAT_KINDS
                .iter()
                .filter_map(|k| {
                    let command = k.command?;
                    Some(action(
                        k.title,
                        command,
                        CodeActionKind::new(k.code_action_kind),
                    ))
                })
                .collect(),
        ))
    }

    async fn execute_command(&self, p: ExecuteCommandParams) -> Result<Option<Value>> {
        let ws = self.ws()?.clone();
        match p.command.as_str() {
            CMD_ACCEPT => {
                let a: AcceptArgs = args(CMD_ACCEPT, &p.arguments)?;
                ws.accept(&a.record_id, a.partial, a.text)
                    .await
                    .map_err(engine_error)?;
                Ok(None)
            }
            CMD_REJECT => {
                let a: RejectArgs = args(CMD_REJECT, &p.arguments)?;
                ws.reject(&a.record_id, a.reason.as_deref().unwrap_or("dismissed"))
                    .await
                    .map_err(engine_error)?;
                Ok(None)
            }
            other => match ChatKind::from_command(other) {
                Some(kind) => self.focused_action(kind, args(other, &p.arguments)?).await,
                None => Err(invalid_params(format!("unknown command {other:?}"))),
            },
        }
    }
}
