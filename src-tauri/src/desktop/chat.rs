//! Chat turns and the edits they propose: streamed deltas, diffs, Apply and Dismiss.

use super::*;

impl Desktop {
    pub fn cancel_chat(&self, request_id: &str) -> bool {
        match self.chats.lock().remove(request_id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// One chat turn: deltas stream to `events` as they come; the answer comes back
    /// with its citations and proposed edits (each already recorded as `suggested`).
    pub async fn chat(&self, req: ChatRequest, events: Arc<dyn EventSink>) -> Result<ChatView> {
        let started = Instant::now();
        let ws = self.workspace()?;
        let name = req.kind.as_deref().unwrap_or("ask");
        let kind = ChatKind::from_name(name).ok_or_else(|| {
            DesktopError::new(
                ErrorKind::Input,
                format!("{name:?} is not a kind of chat turn"),
                format!("Use {}", ChatKind::names()),
            )
        })?;
        let range = match (&req.path, req.start_line, req.end_line) {
            (Some(p), Some(a), b) => {
                if ws.inside_repo(p).is_none() {
                    return Err(outside(p, ws.root()));
                }
                let a = a.max(1);
                let b = b.unwrap_or(a).max(a);
                Some(Range::new(Position::new(a - 1, 0), Position::new(b, 0)))
            }
            (None, None, None) => None,
            _ => {
                return Err(DesktopError::new(
                    ErrorKind::Input,
                    "A selection needs a file and a first line",
                    "Select lines in the side panel first",
                ))
            }
        };
        if kind.info().needs_selection && range.is_none() {
            return Err(DesktopError::new(
                ErrorKind::Input,
                format!("{} works on a selection", kind.info().title),
                "Open a file in the side panel, select lines, then choose the action",
            ));
        }
        let cancel = CancellationToken::new();
        self.chats
            .lock()
            .insert(req.request_id.clone(), cancel.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StreamEvent>();
        let request_id = req.request_id.clone();
        let sink = events.clone();
        let forward = tokio::spawn(async move {
            // The first text goes out at once; after it, text is sent in batches (each event
            // costs the window a JavaScript call, and a local model shares the CPU with it).
            let mut first: Option<Duration> = None;
            let mut held = String::new();
            let mut due: Option<tokio::time::Instant> = None;
            let send = |text: &str| {
                sink.emit(
                    events::CHAT_DELTA,
                    json!({"requestId": request_id, "text": text}),
                )
            };
            loop {
                let ev = match due {
                    Some(at) => tokio::select! {
                        ev = rx.recv() => ev,
                        _ = tokio::time::sleep_until(at) => {
                            send(&std::mem::take(&mut held));
                            due = None;
                            continue;
                        }
                    },
                    None => rx.recv().await,
                };
                match ev {
                    Some(StreamEvent::Text(t)) if first.is_none() => {
                        first = Some(started.elapsed());
                        send(&t);
                    }
                    Some(StreamEvent::Text(t)) => {
                        held.push_str(&t);
                        due.get_or_insert_with(|| tokio::time::Instant::now() + DELTA_BATCH);
                    }
                    Some(StreamEvent::Reset { reason }) => {
                        held.clear();
                        due = None;
                        sink.emit(
                            events::CHAT_RESET,
                            json!({"requestId": request_id, "reason": reason}),
                        );
                    }
                    None => break,
                }
            }
            if !held.is_empty() {
                send(&held);
            }
            first
        });
        let turn = ChatTurn {
            question: req.question.clone(),
            conversation: req.conversation.clone(),
            path: if range.is_some() {
                req.path.clone()
            } else {
                None
            },
            range,
            kind,
            max_tokens: req.max_tokens,
            no_cache: req.no_cache,
        };
        let result = ws.chat(turn, Some(tx), cancel).await;
        self.chats.lock().remove(&req.request_id);
        // Every delta is out before the answer returns (the sender is gone by now).
        let first = tokio::time::timeout(Duration::from_secs(2), forward)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let answer = result?;
        let model = ModelView::from(&answer.model);
        let context_files: Vec<String> = answer
            .sources
            .iter()
            .map(|s| format!("{}:{}-{}", s.path, s.start_line, s.end_line))
            .collect();
        let mut edits = Vec::new();
        for e in &answer.edits {
            let (view, pending) = self.edit_view(&ws, e, &model, &context_files);
            if let Some(p) = pending {
                self.edits.lock().insert(e.record_id.clone(), p);
            }
            edits.push(view);
        }
        let withheld = answer
            .withheld
            .iter()
            .map(|w| {
                let (start_line, end_line) = lines_of(w.range);
                WithheldEditView {
                    record_id: w.record_id.clone(),
                    path: w.path.clone(),
                    start_line,
                    end_line,
                    references: w.references.clone(),
                }
            })
            .collect();
        Ok(ChatView {
            request_id: req.request_id,
            conversation_id: answer.conversation_id,
            record_id: answer.record_id,
            answer: answer.answer,
            citations: answer.citations,
            citation_marks: answer.citation_marks,
            sources: answer.sources,
            sources_error: answer.sources_error,
            edits,
            withheld,
            model,
            first_token_ms: first.map(ms),
            total_ms: ms(started.elapsed()),
            usage: UsageView {
                prompt_tokens: answer.usage.prompt_tokens,
                reused_prompt_tokens: answer.usage.reused_prompt_tokens,
                generated_tokens: answer.usage.generated_tokens,
                model_first_token_ms: answer.usage.time_to_first_token.map(ms),
                tokens_per_s: (answer.usage.generation_tokens_per_s() * 10.0).round() / 10.0,
            },
            fallback_from: answer.fallback.as_ref().map(|f| f.from.clone()),
            cached: answer.cached,
        })
    }

    fn edit_view(
        &self,
        ws: &Workspace,
        e: &cairn_engine::ProposedEdit,
        model: &ModelView,
        context_files: &[String],
    ) -> (EditView, Option<PendingEdit>) {
        let (start_line, end_line) = lines_of(e.range);
        let mut view = EditView {
            record_id: e.record_id.clone(),
            path: e.path.clone(),
            start_line,
            end_line,
            new_text: e.new_text.clone(),
            old_file: None,
            new_file: None,
            problem: None,
            model: model.clone(),
            context_files: context_files.to_vec(),
            references: e.references.clone(),
        };
        let abs = match checked_abs(ws, &e.path) {
            Ok(a) => a,
            Err(err) => {
                view.problem = Some(err.to_string());
                return (view, None);
            }
        };
        let old = match std::fs::metadata(&abs) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            _ => match files::read_text(&abs, &e.path) {
                Ok(t) => t,
                Err(err) => {
                    view.problem = Some(err.to_string());
                    return (view, None);
                }
            },
        };
        let Some(new) = cairn_text::replace_range(&old, e.range, &e.new_text) else {
            view.problem = Some(format!(
                "The edit's lines {start_line}-{end_line} are not in {} as it is now. Ask again.",
                e.path
            ));
            return (view, None);
        };
        if old.len() <= MAX_DIFF_BYTES && new.len() <= MAX_DIFF_BYTES {
            view.old_file = Some(old.clone());
            view.new_file = Some(new.clone());
        }
        (
            view,
            Some(PendingEdit {
                path: e.path.clone(),
                old_file: old,
                new_file: Some(new),
                start_line,
                end_line,
            }),
        )
    }

    /// Writes a proposed edit to its file (inside the repository only) and records
    /// `accepted`. A file changed since the proposal is left alone.
    pub async fn apply_edit(&self, record_id: &str) -> Result<AppliedView> {
        let ws = self.workspace()?;
        let pending = self.edits.lock().get(record_id).cloned().ok_or_else(|| {
            DesktopError::new(
                ErrorKind::Input,
                format!("No proposed edit {record_id} is waiting in this window"),
                "Ask again to get a new proposal",
            )
        })?;
        let abs = checked_abs(&ws, &pending.path)?;
        let current = match std::fs::metadata(&abs) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            _ => files::read_text(&abs, &pending.path)?,
        };
        if current != pending.old_file {
            return Err(DesktopError::new(
                ErrorKind::Stale,
                format!(
                    "{} changed on disk after the edit was proposed; it was not applied",
                    pending.path
                ),
                "Ask again so the edit is made against the file as it is now",
            ));
        }
        let new_file = pending.new_file.clone().unwrap_or_default();
        let existed = abs.exists();
        files::write_atomic(&abs, &new_file)?;
        if let Err(e) = ws.accept(record_id, false, None).await {
            // No applied change without its ledger record: put the file back.
            let restored = if existed {
                files::write_atomic(&abs, &pending.old_file)
            } else {
                std::fs::remove_file(&abs).map_err(|io| DesktopError::io("remove", &abs, &io))
            };
            if let Err(r) = restored {
                tracing::error!(
                    "could not restore {} after a failed accept: {r}",
                    abs.display()
                );
            }
            return Err(e.into());
        }
        self.edits.lock().remove(record_id);
        Ok(AppliedView {
            record_id: record_id.to_string(),
            path: pending.path,
            start_line: pending.start_line,
            end_line: pending.end_line,
        })
    }

    /// Records `rejected` for a proposed edit; the file is not touched.
    pub async fn dismiss_edit(&self, record_id: &str) -> Result<()> {
        let ws = self.workspace()?;
        ws.reject(record_id, "dismissed in the desktop app").await?;
        self.edits.lock().remove(record_id);
        Ok(())
    }

    // ---- files -----------------------------------------------------------------
}

/// The 1-based lines an edit's range replaces. A range ending at column 0 ends with the
/// line before it (an insertion has `end < start`).
fn lines_of(range: Range) -> (u32, u32) {
    let start_line = range.start.line + 1;
    let end_line = if range.end.character == 0 {
        range.end.line
    } else {
        range.end.line + 1
    };
    (start_line, end_line)
}
