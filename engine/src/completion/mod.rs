//! The completion pipeline, in the order a request goes through it:
//! window (`window`) → shape (`shape`: a line or a block, decided before the model runs)
//! → cross-file context (`context_for`, kept per 40-line region so consecutive prompts
//! share a prefix and the model's KV cache) → redaction when the route is remote → the
//! model (one item when automatic, up to three when invoked: greedy plus sampled) →
//! clean-up (`cleanup`) → one `suggested` record per item → the items.
//! A newer request for the same document cancels the older one; text typed through a
//! suggestion is served from it (`typing`); while the person types at one place, the
//! local model's prompt keeps splitting where the typing started (`anchor`), so each
//! keystroke evaluates only its own tokens.
//!
//! Over 600 lines as one room: the pipeline reads top to bottom here; its parts (window,
//! shape, cleanup, typing) are in their own files.

mod anchor;
mod cleanup;
mod fit;
mod prefill;
mod shape;
mod typing;
mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_models::{
    CompletionRequest, ContextFile, Generation, PromptBudget, Sampling, Speed, StopReason,
};
use cairn_provenance::{ContextSource, Event, InputFacts, Location, Mode};
use parking_lot::Mutex;
use serde::Serialize;

use crate::records::{context_source, generator_of};
use crate::workspace::Workspace;
use crate::{redact, CancellationToken, EngineError, ModelError, Position, Range, Snippet, Usage};

pub use shape::Shape;
pub use window::{CompletionOptions, Window, DEFAULT_LATENCY_BUDGET_MS};

use anchor::Anchor;
use typing::Recent;

/// How a completion was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The user asked (a key binding): several items are worth the wait.
    Invoked,
    /// As the user types: one item, as fast as possible.
    Automatic,
}

#[derive(Debug, Clone)]
pub struct CompleteRequest {
    /// Path as the editor knows it: absolute, or relative to the repository root.
    pub path: String,
    pub position: Position,
    pub trigger: Trigger,
    /// Items wanted when invoked (automatic requests get one).
    pub max_items: usize,
}

/// One completion shown to the user, with its ledger record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub record_id: String,
    pub text: String,
    /// Where it goes: an empty range at the cursor.
    pub range: Range,
    /// Third-party code it reproduces (package, version, licence, lines), also in its
    /// record. Empty when none, or while the reference index is being built.
    pub references: Vec<crate::ReferenceMatch>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    pub context_ms: f64,
    pub model_ms: f64,
    pub ledger_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub items: Vec<Suggestion>,
    /// Served from an earlier suggestion the user is typing through (no model call).
    pub from_cache: bool,
    pub multiline: bool,
    pub context: Vec<ContextSource>,
    pub timings: Timings,
    /// The model's usage for the first generation, even when clean-up left nothing of it
    /// (none when served from an earlier suggestion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// How the first generation's prompt was built: `fim`, `prefix` (none when served
    /// from an earlier suggestion or when the model was not asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The latency budget and what it cut for the first generation (none when served from
    /// an earlier suggestion or when the model was not asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetFacts>,
}

/// A completion's latency budget, as decided before the model ran and as the model's
/// prompt fitting carried it out. The ledger records it with the suggestion.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetFacts {
    /// The budget (ms); `None` when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_budget_ms: Option<u64>,
    /// The model's measured speed on this machine (tokens/s), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_tokens_per_s: Option<f64>,
    /// Tokens the request asked for, and what the budget reserved for generation before
    /// the prompt was fitted (the model raises it to what the prompt left: `prompt.maxTokens`).
    pub max_tokens_asked: u32,
    pub max_tokens: u32,
    /// What the model's prompt fitting kept and cut, in tokens (local models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptBudget>,
}

/// Applies the latency budget to a request before it runs: the backend fits the prompt in
/// tokens to what the budget leaves after reserving half of it for generation (at the
/// measured decode speed, at least a line's worth), then gives generation whatever the
/// prompt did not spend (a prompt the KV cache already holds costs nothing); the request
/// gives up at twice the budget (a machine suddenly busier than measured). No speed (a
/// remote API), or no budget: the request is left as it is.
fn apply_budget(
    req: &mut CompletionRequest,
    budget: Option<Duration>,
    speed: Option<Speed>,
) -> BudgetFacts {
    let asked = req.max_tokens;
    let mut reserved = asked;
    if let (Some(b), Some(s)) = (budget, speed) {
        reserved = cairn_models::budget::generation_reserve(b, s, asked);
        req.latency_budget = Some(b);
    }
    BudgetFacts {
        latency_budget_ms: budget.map(|b| b.as_millis() as u64),
        prompt_tokens_per_s: speed.map(|s| s.prompt_tokens_per_s),
        decode_tokens_per_s: speed.map(|s| s.decode_tokens_per_s),
        max_tokens_asked: asked,
        max_tokens: reserved,
        prompt: None,
    }
}

/// The record's prompt mode, as the model built the prompt.
fn mode_of(g: &Generation) -> Mode {
    match g.prompt.mode.as_str() {
        "prefix" => Mode::Prefix,
        "chat" => Mode::Chat,
        _ => Mode::Fim,
    }
}

/// Where a completion's cross-file context comes from.
#[derive(Debug, Clone, Default)]
pub enum ContextChoice {
    /// The repository index (`context_for`): what editors get.
    #[default]
    Retrieve,
    /// Snippets the caller brings (an extension with its own retrieval, an evaluation).
    Given(Vec<Snippet>),
    /// No cross-file context.
    Without,
}

/// Lines of a region whose retrieved context is reused while the cursor stays in it.
const CONTEXT_REGION_LINES: usize = 40;

/// The completion side of a session: requests in flight, the last suggestion per
/// document (typing through) and the retrieved context per document region.
#[derive(Default)]
pub(crate) struct CompletionState {
    inflight: Mutex<HashMap<String, (u64, CancellationToken)>>,
    requests: AtomicU64,
    recent: Mutex<HashMap<String, Recent>>,
    context: Mutex<HashMap<String, (usize, Vec<Snippet>)>>,
    /// The prefill waiting for its pause or running (one model, one place at a time).
    prefill: Mutex<Option<CancellationToken>>,
    /// Where the last local prompt split its document (see `anchor`).
    anchor: Mutex<Option<Anchor>>,
}

impl CompletionState {
    pub(crate) fn forget_document(&self, key: &str) {
        self.recent.lock().remove(key);
        self.context.lock().remove(key);
        let mut anchor = self.anchor.lock();
        if anchor.as_ref().is_some_and(|a| a.key() == key) {
            *anchor = None;
        }
        drop(anchor);
        if let Some((_, t)) = self.inflight.lock().remove(key) {
            t.cancel();
        }
    }

    /// Splits a local model's request at the anchor when the person has only typed
    /// since it was set (returns true); otherwise the request's own split becomes the
    /// anchor.
    fn anchor(&self, key: &str, text: &str, window: &Window, req: &mut CompletionRequest) -> bool {
        let mut anchor = self.anchor.lock();
        match anchor
            .as_ref()
            .and_then(|a| Some((a, a.typed(key, text, window.offset)?)))
        {
            Some((a, typed)) => {
                a.apply(req, typed);
                true
            }
            None => {
                *anchor = Some(Anchor::new(key, window));
                false
            }
        }
    }

    /// A decision was made on `record_id`: typing through it ends.
    pub(crate) fn forget_record(&self, record_id: &str) {
        self.recent.lock().retain(|_, r| r.record_id != record_id);
    }
}

/// A request made ready for the model: what it sees, and what the record says of it.
struct Prepared {
    request: CompletionRequest,
    window: Window,
    shape: Shape,
    sources: Vec<ContextSource>,
    context_ms: f64,
    redactions: BTreeMap<String, usize>,
    budget: BudgetFacts,
    /// Split at an earlier request's anchor: typing continues where it started.
    at_anchor: bool,
}

impl Prepared {
    /// The budget facts with what the model's prompt fitting did for `g`.
    fn budget_of(&self, g: &Generation) -> BudgetFacts {
        BudgetFacts {
            prompt: g.prompt.budget.clone(),
            ..self.budget.clone()
        }
    }

    /// What the commitment in the ledger covers: context, prefix, cursor, suffix.
    fn prompt_text(&self) -> String {
        let mut s = String::new();
        for c in &self.request.context {
            s.push_str(&c.path);
            s.push('\n');
            s.push_str(&c.text);
            s.push('\n');
        }
        s.push_str(&self.request.prefix);
        s.push_str(&self.request.middle);
        s.push_str("<cursor>");
        s.push_str(&self.request.suffix);
        s
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Workspace {
    /// Completes at a position. A newer request for the same document cancels this
    /// one; text the user typed through an earlier suggestion is served from it.
    pub async fn complete(
        &self,
        req: CompleteRequest,
        cancel: CancellationToken,
    ) -> Result<Completion, EngineError> {
        self.complete_with(req, cancel, ContextChoice::Retrieve)
            .await
    }

    /// [`Workspace::complete`] with the cross-file context chosen by the caller.
    pub async fn complete_with(
        &self,
        req: CompleteRequest,
        cancel: CancellationToken,
        context: ContextChoice,
    ) -> Result<Completion, EngineError> {
        let started = Instant::now();
        let key = self.rel_path(&req.path);
        let text = self.text_for(&key)?;
        let Some(offset) = cairn_text::offset_at(&text, req.position) else {
            return Err(EngineError::Input(format!(
                "position {}:{} is past the end of {} ({} lines)",
                req.position.line + 1,
                req.position.character + 1,
                req.path,
                text.lines().count()
            )));
        };
        let state = &self.completions;
        state.cancel_prefill();
        let ticket = state.requests.fetch_add(1, Ordering::Relaxed);
        if let Some((_, old)) = state
            .inflight
            .lock()
            .insert(key.clone(), (ticket, cancel.clone()))
        {
            old.cancel();
        }
        let result = self
            .complete_at(&key, &text, offset, &req, &cancel, context)
            .await;
        {
            let mut inflight = state.inflight.lock();
            if inflight.get(&key).is_some_and(|(t, _)| *t == ticket) {
                inflight.remove(&key);
            }
        }
        result.map(|mut c| {
            c.timings.total_ms = ms(started.elapsed());
            c
        })
    }

    async fn complete_at(
        &self,
        key: &str,
        text: &str,
        offset: usize,
        req: &CompleteRequest,
        cancel: &CancellationToken,
        context: ContextChoice,
    ) -> Result<Completion, EngineError> {
        // Typing through serves automatic requests; an invoked one wants fresh candidates.
        if req.trigger == Trigger::Automatic {
            let recent = self.completions.recent.lock().get(key).cloned();
            if let Some(hit) = recent.and_then(|r| r.typed_through(text, offset, req.position)) {
                return Ok(hit);
            }
        }
        let engine = self.models()?;
        let prepared = self.prepare(key, text, offset, context).await;
        let t_model = Instant::now();
        let n = match req.trigger {
            Trigger::Automatic => 1,
            Trigger::Invoked => req.max_items.clamp(1, 5),
        };
        let mut outputs: Vec<(String, Generation)> = Vec::new();
        // What the first generation cost and how its prompt was built, kept even when
        // clean-up leaves nothing of its text.
        let (mut usage, mut mode, mut budget) = (None, None, None);
        for i in 0..n {
            if cancel.is_cancelled() {
                break;
            }
            let mut creq = prepared.request.clone();
            if let Some(b) = creq.latency_budget {
                creq.deadline = Some(Instant::now() + b * 2);
            }
            if i > 0 {
                creq.sampling = Sampling {
                    temperature: 0.7,
                    seed: i as u32,
                    ..Sampling::default()
                };
            }
            let g = match engine
                .router()
                .complete
                .complete(creq, None, cancel.clone())
                .await
            {
                Ok(g) => g,
                Err(e) if i > 0 => {
                    tracing::debug!("extra completion item failed: {e}");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if i == 0 {
                usage = Some(g.usage.clone());
                mode = Some(g.prompt.mode.clone());
                budget = Some(prepared.budget_of(&g));
            }
            let cut = matches!(
                g.stop_reason,
                StopReason::MaxTokens | StopReason::Deadline | StopReason::ContextFull
            );
            let out = cleanup::finish(&g.text, &prepared.window, &prepared.shape, cut);
            if !out.is_empty() && !outputs.iter().any(|(t, _)| *t == out) {
                outputs.push((out, g));
            }
        }
        if cancel.is_cancelled() {
            return Err(EngineError::Model(ModelError::Cancelled));
        }
        let model_ms = ms(t_model.elapsed());
        let t_ledger = Instant::now();
        let range = Range::at(cairn_text::position_at(text, offset));
        let items = self
            .record_suggestions(key, range, &prepared, outputs)
            .await?;
        let ledger_ms = ms(t_ledger.elapsed());
        if let Some(first) = items.first() {
            self.completions.recent.lock().insert(
                key.to_string(),
                Recent::new(text, offset, first, prepared.shape.multiline),
            );
        }
        tracing::debug!(
            path = key,
            items = items.len(),
            context_ms = prepared.context_ms,
            model_ms,
            ledger_ms,
            "completion"
        );
        Ok(Completion {
            items,
            from_cache: false,
            multiline: prepared.shape.multiline,
            context: prepared.sources,
            timings: Timings {
                context_ms: prepared.context_ms,
                model_ms,
                ledger_ms,
                total_ms: 0.0,
            },
            usage,
            mode,
            budget,
        })
    }

    /// One `suggested` record per output, written before any of them is returned. Each
    /// output is first checked against the reference index; under the `block` policy a
    /// match is recorded as withheld and not returned.
    async fn record_suggestions(
        &self,
        key: &str,
        range: Range,
        prepared: &Prepared,
        outputs: Vec<(String, Generation)>,
    ) -> Result<Vec<Suggestion>, EngineError> {
        let base_commit = self.base_commit().await;
        let refs = self
            .references
            .check_all(
                outputs
                    .iter()
                    .map(|(o, _)| (key.to_string(), o.clone()))
                    .collect(),
            )
            .await;
        let block = self.references.policy() == crate::ReferencePolicy::Block;
        let events: Vec<Event> = outputs
            .iter()
            .zip(&refs)
            .map(|((out, g), r)| Event::Suggested {
                generator: generator_of(g),
                input: InputFacts {
                    mode: mode_of(g),
                    template_digest: g.prompt.template_sha256.clone(),
                    prompt: prepared.prompt_text(),
                    store_prompt: false,
                    context: prepared.sources.clone(),
                    redactions: prepared.redactions.clone(),
                    budget: serde_json::to_value(prepared.budget_of(g)).ok(),
                },
                output: out.clone(),
                location: Location {
                    base_commit: base_commit.clone(),
                    path: key.to_string(),
                    range,
                },
                references: r.iter().map(|m| m.fact()).collect(),
                withheld: block && !r.is_empty(),
            })
            .collect();
        let ids = self.append(events).await?;
        Ok(outputs
            .into_iter()
            .zip(ids)
            .zip(refs)
            .filter(|(_, r)| !block || r.is_empty())
            .map(|(((out, _), id), references)| {
                self.remember_shown(id, key, range, &out, &references);
                Suggestion {
                    record_id: id.to_string(),
                    text: out,
                    range,
                    references,
                }
            })
            .collect())
    }

    /// The model request a completion at `position` of `path` would send, without
    /// sending it (benchmarks compare against the model layer with it).
    pub async fn completion_request(
        &self,
        path: &str,
        position: Position,
    ) -> Result<CompletionRequest, EngineError> {
        let key = self.rel_path(path);
        let text = self.text_for(&key)?;
        let offset = cairn_text::offset_at(&text, position)
            .ok_or_else(|| EngineError::Input(format!("position past the end of {path}")))?;
        Ok(self
            .prepare(&key, &text, offset, ContextChoice::Retrieve)
            .await
            .request)
    }

    async fn prepare(
        &self,
        key: &str,
        text: &str,
        offset: usize,
        context: ContextChoice,
    ) -> Prepared {
        let opts = &self.options().completion;
        let window = Window::cut(text, offset, opts);
        // The shape is read from the window (the parse is bounded by it, not the file).
        let window_text = format!("{}{}", window.prefix, window.suffix);
        let shape = shape::shape_at(key, &window_text, window.prefix.len());
        let mut request = window.request(key, &shape, opts);
        let local = self.models().is_ok_and(|e| !e.completion_goes_remote());
        let at_anchor = local && self.completions.anchor(key, text, &window, &mut request);
        let budget = opts
            .latency_budget_ms
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        let speed = self.models().ok().and_then(|e| e.completion_speed());
        let budget_facts = apply_budget(&mut request, budget, speed);
        let t_ctx = Instant::now();
        let budget = self.options().context_chars;
        let snippets = match context {
            ContextChoice::Retrieve => self.context_snippets(key, text, offset).await,
            ContextChoice::Given(given) => fit_snippets(given, budget),
            ContextChoice::Without => Vec::new(),
        };
        let context_ms = ms(t_ctx.elapsed());
        let sources: Vec<ContextSource> = snippets
            .iter()
            .map(|s| {
                let retriever = format!("{:?}", s.kind).to_lowercase();
                context_source(
                    &s.path,
                    s.start_line,
                    s.end_line,
                    &s.text,
                    retriever,
                    s.score,
                )
            })
            .collect();
        request.context = snippets
            .into_iter()
            .map(|s| ContextFile {
                path: s.path,
                text: s.text,
            })
            .collect();
        let mut redactions = BTreeMap::new();
        if self.models().is_ok_and(|e| e.completion_goes_remote()) {
            let mut scrub = |t: &mut String, path: &str| {
                let r = redact::redact(t, Some(path));
                for (k, v) in r.kinds {
                    *redactions.entry(k.to_string()).or_insert(0) += v;
                }
                *t = r.text;
            };
            scrub(&mut request.prefix, key);
            scrub(&mut request.suffix, key);
            for c in &mut request.context {
                let path = c.path.clone();
                scrub(&mut c.text, &path);
            }
        }
        Prepared {
            request,
            window,
            shape,
            sources,
            context_ms,
            redactions,
            budget: budget_facts,
            at_anchor,
        }
    }

    /// Retrieved context for a completion. Kept for the same region of a document so
    /// consecutive requests share a prompt prefix (and the model's KV cache).
    pub(crate) async fn context_snippets(
        &self,
        key: &str,
        text: &str,
        offset: usize,
    ) -> Vec<Snippet> {
        let Some(index) = self.index() else {
            return Vec::new();
        };
        let budget = self.options().context_chars;
        if budget == 0 {
            return Vec::new();
        }
        let region = text[..offset].matches('\n').count() / CONTEXT_REGION_LINES;
        if let Some((r, cached)) = self.completions.context.lock().get(key) {
            if *r == region {
                return cached.clone();
            }
        }
        // The whole document, so the region excluded from the results is in the same
        // line numbers as the index's chunks of this file.
        let doc = text.to_string();
        let abs = self.abs_path(key);
        let found =
            tokio::task::spawn_blocking(move || index.context_for(&abs, &doc, offset, budget))
                .await;
        let snippets = match found {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!("context_for {key}: {e}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        self.completions
            .context
            .lock()
            .insert(key.to_string(), (region, snippets.clone()));
        snippets
    }
}

/// Caller-given snippets in their order, as many as fit in `budget` characters (the
/// first always, cut to the budget if it alone is larger).
fn fit_snippets(given: Vec<Snippet>, budget: usize) -> Vec<Snippet> {
    let mut left = budget;
    let mut out = Vec::new();
    for mut s in given {
        if left == 0 {
            break;
        }
        if s.text.len() > left {
            if !out.is_empty() {
                break;
            }
            s.text
                .truncate(cairn_text::floor_char_boundary(&s.text, left));
        }
        left -= s.text.len();
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SnippetKind;

    fn snippet(path: &str, text: &str) -> Snippet {
        Snippet {
            path: path.into(),
            start_line: 1,
            end_line: 1,
            text: text.into(),
            score: 1.0,
            kind: SnippetKind::Similar,
            reason: String::new(),
        }
    }

    #[test]
    fn given_snippets_fit_the_budget_in_their_order() {
        let given = vec![
            snippet("a", "aaaa"),
            snippet("b", "bbbb"),
            snippet("c", "cc"),
        ];
        let kept: Vec<String> = fit_snippets(given.clone(), 9)
            .into_iter()
            .map(|s| s.path)
            .collect();
        // "c" would fit after "b" is dropped, but order is the caller's ranking.
        assert_eq!(kept, ["a", "b"]);
        let cut = fit_snippets(vec![snippet("big", "é123456789")], 5);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].text.len() <= 5 && cut[0].text.starts_with('é'));
        assert!(fit_snippets(given, 0).is_empty());
    }
}
