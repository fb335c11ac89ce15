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
        published_references: Default::default(),
    })
    .custom_method(
        "textDocument/inlineCompletion",
        CairnServer::inline_completion,
    )
    .custom_method("cairn/chat", CairnServer::chat)
    .custom_method("cairn/status", CairnServer::status)
    .custom_method("cairn/cursorMoved", CairnServer::cursor_moved)
    .finish()
}

pub struct CairnServer {
    client: Client,
    options: ServerOptions,
    shared: Option<Arc<shared::Workspaces>>,
    workspace: OnceLock<Arc<Workspace>>,
    open_error: Mutex<Option<String>>,
    client_caps: Mutex<ClientCapabilities>,
    published_references: references::Published,
}

/// `$/progress` with any value: partial results of `cairn/chat`.
enum PartialResult {}

impl notification::Notification for PartialResult {
    type Params = Value;
    const METHOD: &'static str = "$/progress";
}

mod chat;
mod completion;
mod convert;
mod progress;
mod references;

use completion::warm_for_cursor;
use convert::*;

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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcceptArgs {
    record_id: String,
    #[serde(default)]
    partial: bool,
    #[serde(default)]
    text: Option<String>,
    /// The document the suggestion went into (the accept command carries it).
    #[serde(default)]
    uri: Option<Uri>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RejectArgs {
    record_id: String,
    #[serde(default)]
    reason: Option<String>,
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

    /// Whether the client accepts `window/workDoneProgress/create`.
    fn client_supports_progress(&self) -> bool {
        self.client_caps
            .lock()
            .ok()
            .and_then(|c| c.window.as_ref().and_then(|w| w.work_done_progress))
            .unwrap_or(false)
    }
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
        // Where the cursor most likely is now: after the text the last change inserted.
        let cursor = match changes.last() {
            Some(TextChange::Incremental { range, text }) => {
                Some(cairn_text::end_after(range.start, text))
            }
            _ => None,
        };
        let path = path_of(&p.text_document.uri);
        if let Err(e) = ws.change_document(&path, p.text_document.version, &changes) {
            self.client
                .log_message(MessageType::WARNING, format!("Cairn: {e}"))
                .await;
        } else if let Some(at) = cursor {
            warm_for_cursor(ws, path, at);
        }
        self.publish_references(&p.text_document.uri).await;
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
        self.clear_references(&p.text_document.uri).await;
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
                // Third-party code the item reproduces is named where the person looks.
                let mut detail = format!("Cairn · {model}");
                let mut doc = format!("```\n{}\n```", s.text);
                if let Some(r) = s.references.first() {
                    label.push_str(&format!(" ⚠ {}", r.label()));
                    detail.push_str(&format!(" · matches {}", r.label()));
                    doc.push_str("\n\nReproduces third-party code:\n");
                    for r in &s.references {
                        doc.push_str(&format!(
                            "- {} — {} characters, {}:{}-{}\n",
                            r.label(),
                            r.matched_chars,
                            r.path,
                            r.lines[0],
                            r.lines[1]
                        ));
                    }
                }
                CompletionItem {
                    label,
                    kind: Some(CompletionItemKind::TEXT),
                    detail: Some(detail),
                    documentation: Some(Documentation::MarkupContent(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: doc,
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
                    data: Some(
                        json!({"recordId": s.record_id, "uri": tdp.text_document.uri,
                                      "references": s.references}),
                    ),
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
                if let Some(uri) = &a.uri {
                    self.publish_references(uri).await;
                }
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
