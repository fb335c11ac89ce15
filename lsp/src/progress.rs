//! What the server reports about itself: `cairn/status` and the index's `$/progress`.

use super::*;

impl CairnServer {
    pub(crate) async fn status(&self) -> Result<Value> {
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
            // The reference index and this session's counts: suggestions that matched
            // third-party code, and those withheld by `references = "block"`.
            "references": s.references,
        }))
    }

    pub(crate) async fn report_index_progress(&self, ws: Arc<Workspace>) {
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
