//! Completions: `textDocument/inlineCompletion` (ghost text) and the
//! `textDocument/completion` fallback, each item carrying its record and the accept command;
//! `cairn/cursorMoved` (and the end of each edit) warms the model for the cursor's place.

use super::*;

/// `cairn/cursorMoved`: the editor's cursor rests at `position` (Cairn's editor plugins
/// send it on cursor moves; any client may).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CursorMovedParams {
    text_document: TextDocumentIdentifier,
    position: Position,
}

/// Reports the cursor to the engine now (so that a completion request handled after this
/// supersedes the report) and warms the model for a completion at `at` in the background
/// (the engine waits for the cursor to rest first and gives the model up to any real
/// request).
pub(crate) fn warm_for_cursor(ws: &Arc<Workspace>, path: String, at: cairn_text::Position) {
    tokio::spawn(ws.cursor_moved(&path, at));
}

impl CairnServer {
    pub(crate) async fn cursor_moved(&self, p: CursorMovedParams) {
        if let Ok(ws) = self.ws() {
            warm_for_cursor(ws, path_of(&p.text_document.uri), pos(p.position));
        }
    }

    pub(crate) async fn complete(
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

    pub(crate) fn accept_command(&self, uri: &Uri, record_id: &str) -> Command {
        Command {
            title: "Accept Cairn suggestion".into(),
            command: CMD_ACCEPT.into(),
            arguments: Some(vec![json!({"recordId": record_id, "uri": uri})]),
        }
    }

    pub(crate) async fn inline_completion(
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
            .map(|s| {
                // An inline item has no label: the accept command's title names the
                // third-party code it reproduces.
                let mut command = self.accept_command(&tdp.text_document.uri, &s.record_id);
                if let Some(r) = s.references.first() {
                    command.title = format!("Accept Cairn suggestion (matches {})", r.label());
                    if let Some(arg) = command.arguments.as_mut().and_then(|a| a.first_mut()) {
                        arg["references"] = json!(s.references);
                    }
                }
                InlineCompletionItem {
                    insert_text: s.text,
                    filter_text: None,
                    range: Some(lsp_range(s.range)),
                    command: Some(command),
                    insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
                }
            })
            .collect();
        Ok(Some(InlineCompletionResponse::List(InlineCompletionList {
            items,
        })))
    }
}
