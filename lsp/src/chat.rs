//! `cairn/chat` (partial results as `$/progress`) and the code actions that run a chat
//! kind on a selection (Explain, Fix, Write a test …: one row each in the engine's table),
//! whose edits are applied only after the person agrees.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FocusArgs {
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
    /// Ask the model even when the response cache holds an answer.
    #[serde(default)]
    pub no_cache: bool,
    #[serde(default)]
    pub partial_result_token: Option<ProgressToken>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CitationOut {
    n: usize,
    path: String,
    uri: Option<Uri>,
    start_line: usize,
    end_line: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EditOut {
    record_id: String,
    uri: Option<Uri>,
    path: String,
    range: Range,
    new_text: String,
    /// Third-party code the edit reproduces.
    references: Vec<cairn_engine::ReferenceMatch>,
}

impl CairnServer {
    pub(crate) async fn chat(&self, params: ChatParams) -> Result<Value> {
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
            no_cache: params.no_cache,
        };
        let answer = self
            .run_chat(&ws, turn, params.partial_result_token)
            .await?;
        Ok(self.answer_json(&ws, &answer))
    }

    pub(crate) async fn run_chat(
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

    pub(crate) fn answer_json(&self, ws: &Workspace, a: &ChatAnswer) -> Value {
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
                references: e.references.clone(),
            })
            .collect();
        // Edits `references = "block"` withheld: where they would have gone and what they
        // reproduce, never their text.
        let withheld: Vec<Value> = a
            .withheld
            .iter()
            .map(|w| {
                json!({"recordId": w.record_id, "uri": uri_of(ws, &w.path), "path": w.path,
                       "range": lsp_range(w.range), "references": w.references})
            })
            .collect();
        json!({
            "conversationId": a.conversation_id,
            "recordId": a.record_id,
            "answer": a.answer,
            "citations": citations,
            "citationMarks": a.citation_marks,
            "edits": edits,
            "withheld": withheld,
            "sources": a.sources,
            "sourcesError": a.sources_error,
            "model": {"name": a.model.name, "origin": a.model.origin, "modelId": a.model.model_id},
            "stopReason": a.stop_reason,
            // From the response cache: {fromRecord, at} of the original answer.
            "cached": a.cached,
        })
    }

    /// Explain / Fix / Write a test from a code action: the answer streams into a
    /// work-done progress, then an edit is offered and applied only if the user agrees.
    pub(crate) async fn focused_action(
        &self,
        kind: ChatKind,
        a: FocusArgs,
    ) -> Result<Option<Value>> {
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
            no_cache: false,
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
        for w in &answer.withheld {
            let names: Vec<String> = w.references.iter().map(|r| r.label()).collect();
            self.client
                .show_message(
                    MessageType::WARNING,
                    format!(
                        "Cairn withheld a proposed change to {}: it reproduces {} \
                         (references = \"block\").",
                        w.path,
                        names.join(", ")
                    ),
                )
                .await;
        }
        if info.edits == EditTarget::None || answer.edits.is_empty() {
            self.client
                .show_message(MessageType::INFO, answer.answer.clone())
                .await;
            return Ok(Some(self.answer_json(&ws, &answer)));
        }
        for edit in &answer.edits {
            let mut question = format!(
                "Cairn proposes a change to {} (lines {}-{}):\n{}",
                edit.path,
                edit.range.start.line + 1,
                edit.range.end.line.max(edit.range.start.line) + 1,
                edit.new_text
            );
            for r in &edit.references {
                question.push_str(&format!(
                    "\nIt reproduces {}: {} lines {}-{}.",
                    r.label(),
                    r.path,
                    r.lines[0],
                    r.lines[1]
                ));
            }
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
                    let r = ws.accept(&edit.record_id, false, None).await;
                    if let Some(uri) = uri_of(&ws, &edit.path) {
                        self.publish_references(&uri).await;
                    }
                    r
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
}
