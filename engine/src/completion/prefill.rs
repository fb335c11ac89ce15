//! Warming the model for where the cursor is. When the editor reports that the cursor
//! came to rest somewhere new (a move, or a pause after typing that left the place the
//! last prompt split at: see `anchor`), the prompt a completion there would send is
//! evaluated into the local model's KV cache in the background, at the lowest priority:
//! any real request takes the model between two prompt batches.
//! The completion that follows then pays for its generation only, and its latency
//! budget keeps the whole prompt (what the cache holds costs nothing).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::ContextChoice;
use crate::workspace::Workspace;
use crate::{CancellationToken, EngineError, Position, Prefilled};

/// How long the cursor must rest before the model is warmed for it: moving through a
/// file line by line starts no work.
pub const PREFILL_PAUSE: Duration = Duration::from_millis(200);

impl Workspace {
    /// The editor says the cursor rests at `position` of `path`. The report counts from
    /// this call (a completion request made after it supersedes it, however late the
    /// returned work first runs); after [`PREFILL_PAUSE`] with no newer cursor report and
    /// no completion request, the model is warmed for a completion there. The work ends
    /// when that prefill ended, gave way or was superseded (`None` when nothing ran:
    /// superseded, prefill off, a remote model, a document the editor has not open).
    /// Front ends spawn it and do not wait.
    pub fn cursor_moved(
        self: &Arc<Self>,
        path: &str,
        position: Position,
    ) -> impl Future<Output = Option<Prefilled>> + Send + 'static {
        // Only for documents the editor has open (and the setting on).
        let wanted =
            self.options().completion.prefill && self.doc_text(&self.rel_path(path)).is_some();
        let cancel = wanted.then(|| self.completions.supersede_prefill());
        let (ws, path) = (self.clone(), path.to_string());
        async move {
            let cancel = cancel?;
            tokio::time::sleep(PREFILL_PAUSE).await;
            if cancel.is_cancelled() {
                return None;
            }
            match ws.prefill_at(&path, position, cancel).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!("prefill at {path}:{position:?}: {e}");
                    None
                }
            }
        }
    }

    /// Evaluates the prompt a completion at `position` of `path` would send into the
    /// local model's KV cache now (no pause). `None` when the completion model is remote
    /// (it has no cache of ours to warm) or when typing goes on at the place the last
    /// prompt split (see `anchor`: that prompt is in the cache but for the typed tokens).
    pub async fn prefill_at(
        &self,
        path: &str,
        position: Position,
        cancel: CancellationToken,
    ) -> Result<Option<Prefilled>, EngineError> {
        self.prefill_with(path, position, ContextChoice::Retrieve, cancel)
            .await
    }

    /// [`Self::prefill_at`] for a completion that will be given `context` (an extension
    /// with its own retrieval, an evaluation's conditions): the prompt warmed is the one
    /// that completion makes.
    pub async fn prefill_with(
        &self,
        path: &str,
        position: Position,
        context: ContextChoice,
        cancel: CancellationToken,
    ) -> Result<Option<Prefilled>, EngineError> {
        let engine = self.models()?;
        if engine.completion_goes_remote() {
            return Ok(None);
        }
        let key = self.rel_path(path);
        let text = self.text_for(&key)?;
        let offset = cairn_text::offset_at(&text, position).ok_or_else(|| {
            EngineError::Input(format!(
                "position {}:{} is past the end of {path}",
                position.line + 1,
                position.character + 1
            ))
        })?;
        let prepared = self.prepare(&key, &text, offset, context).await;
        // Typing goes on where it started: the cache holds the prompt up to the typed
        // text already, and a whole new prompt would throw that away for one that the
        // next keystroke may interrupt half-built.
        if cancel.is_cancelled() || prepared.at_anchor {
            return Ok(None);
        }
        let done = engine
            .router()
            .complete
            .prefill(prepared.request, cancel)
            .await?;
        tracing::debug!(
            path = key,
            cached = done.cached_tokens,
            evaluated = done.evaluated_tokens,
            target = done.target_tokens,
            abandoned = done.abandoned,
            "prefill"
        );
        Ok(Some(done))
    }
}

impl super::CompletionState {
    /// A new cursor report: the prefill waiting or running for an earlier one is
    /// cancelled. Returns the token of the new one.
    pub(crate) fn supersede_prefill(&self) -> CancellationToken {
        let token = CancellationToken::new();
        if let Some(old) = self.prefill.lock().replace(token.clone()) {
            old.cancel();
        }
        token
    }

    /// A completion request: a prefill still waiting for its pause has no place to go.
    pub(crate) fn cancel_prefill(&self) {
        if let Some(old) = self.prefill.lock().take() {
            old.cancel();
        }
    }
}
