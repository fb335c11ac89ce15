//! The chat pipeline, in order: the selection the turn is about → the kind's question
//! (`kinds`) → retrieval (one hit per file, no source over a quarter of the budget) →
//! the prompt with numbered sources fenced as untrusted data (`prompt`) → redaction when
//! the route is remote → the streamed answer → citations and proposed edits (`answer`),
//! each edit with its own `suggested` record, never for a path outside the repository,
//! and the answer's own `answered` record. A turn asked before (same question, sources,
//! conversation, model and settings) is answered from the response cache (`cache`).

mod answer;
mod cache;
mod kinds;
mod prompt;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use cairn_models::{ChatMessage, ChatRequest, Generation, Role, StreamEvent};
use cairn_provenance::{ContextSource, Event, InputFacts, Location, Mode, RecordId};
use parking_lot::Mutex;
use serde::Serialize;

use crate::records::{context_source, generator_of};
use crate::workspace::Workspace;
use crate::{
    redact, CancellationToken, EngineError, Fallback, ModelIdentity, Range, SearchQuery,
    StopReason, TokenSink, Usage,
};

pub use answer::{Citation, CitationMark, Source};
pub(crate) use cache::ChatCache;
pub use cache::ChatCacheOptions;
pub use kinds::{ChatKind, ChatKindInfo, EditTarget, CHAT_KINDS};

#[derive(Debug, Clone, Default)]
pub struct ChatTurn {
    pub question: String,
    /// Continue this conversation (its earlier turns are part of the prompt).
    pub conversation: Option<String>,
    /// The file and selection the question is about, if any.
    pub path: Option<String>,
    pub range: Option<Range>,
    pub kind: ChatKind,
    pub max_tokens: Option<u32>,
    /// Ask the model even when the response cache holds an answer (a fresh answer).
    pub no_cache: bool,
}

/// Where an answer from the response cache came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAnswer {
    /// The `answered` record of the original answer.
    pub from_record: String,
    /// When the original answer was given (RFC 3339, UTC).
    pub at: String,
}

/// An edit proposed in a chat answer, with its ledger record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposedEdit {
    pub record_id: String,
    /// Relative to the repository root.
    pub path: String,
    pub range: Range,
    pub new_text: String,
    /// Third-party code the edit reproduces, also in its record.
    pub references: Vec<crate::ReferenceMatch>,
}

/// An edit the answer proposed that the `block` policy withheld because it reproduces
/// third-party code: where it would have gone and what it reproduces, never its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithheldEdit {
    /// Its `suggested` record (marked withheld).
    pub record_id: String,
    pub path: String,
    pub range: Range,
    pub references: Vec<crate::ReferenceMatch>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatAnswer {
    pub conversation_id: String,
    /// The answer's `answered` ledger record.
    pub record_id: String,
    pub answer: String,
    pub citations: Vec<Citation>,
    /// Where the citations stand in `answer` (UTF-16 offsets), for front ends to link.
    pub citation_marks: Vec<CitationMark>,
    pub edits: Vec<ProposedEdit>,
    /// Edits withheld by `references = "block"`.
    pub withheld: Vec<WithheldEdit>,
    pub sources: Vec<Source>,
    /// Why the answer has no repository sources, when retrieval failed.
    pub sources_error: Option<String>,
    pub model: ModelIdentity,
    pub usage: Usage,
    /// Why the answer ended (the model's end, the token limit, the loop guard …).
    pub stop_reason: StopReason,
    /// Set when the configured model failed and the fallback answered.
    pub fallback: Option<Fallback>,
    /// Set when the answer came from the response cache (no model ran; `usage` is zero).
    pub cached: Option<CachedAnswer>,
}

/// Conversations kept at most; the least recently used go first.
const CONVERSATIONS_CAP: usize = 64;
/// Messages kept per conversation: the last 8 turns.
const HISTORY_MESSAGES: usize = 16;

/// Each conversation's messages, and the ids from least to most recently used.
type History = (HashMap<String, Vec<ChatMessage>>, VecDeque<String>);

/// The turns of each conversation, bounded in number and length.
#[derive(Default)]
pub(crate) struct Conversations {
    inner: Mutex<History>,
}

impl Conversations {
    fn history(&self, id: &str) -> Vec<ChatMessage> {
        self.inner.lock().0.get(id).cloned().unwrap_or_default()
    }

    fn push_turn(&self, id: &str, question: String, answer: String) {
        let mut g = self.inner.lock();
        let (map, order) = &mut *g;
        let h = map.entry(id.to_string()).or_default();
        h.push(ChatMessage::new(Role::User, question));
        h.push(ChatMessage::new(Role::Assistant, answer));
        let excess = h.len().saturating_sub(HISTORY_MESSAGES);
        h.drain(..excess);
        order.retain(|c| c != id);
        order.push_back(id.to_string());
        while order.len() > CONVERSATIONS_CAP {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    fn forget(&self, id: &str) {
        let mut g = self.inner.lock();
        g.0.remove(id);
        g.1.retain(|c| c != id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().0.len()
    }
}

/// The selection a turn is about, widened to whole lines (an edit replaces them).
struct Focus {
    key: String,
    start: usize,
    end: usize,
    text: Arc<String>,
}

impl Focus {
    fn selected(&self) -> &str {
        &self.text[self.start..self.end]
    }

    fn range(&self) -> Range {
        Range::new(
            cairn_text::position_at(&self.text, self.start),
            cairn_text::position_at(&self.text, self.end),
        )
    }

    fn first_line(&self) -> usize {
        self.text[..self.start].matches('\n').count() + 1
    }
}

impl Workspace {
    fn focus(&self, turn: &ChatTurn) -> Result<Option<Focus>, EngineError> {
        let (Some(path), Some(r)) = (&turn.path, turn.range) else {
            return Ok(None);
        };
        let key = self.rel_path(path);
        let text = self.text_for(&key)?;
        let s = cairn_text::offset_at(&text, r.start).ok_or_else(|| {
            EngineError::Input(format!("the selection starts past the end of {key}"))
        })?;
        let e = cairn_text::offset_at(&text, r.end).unwrap_or(text.len());
        let (s, e) = (s.min(e), s.max(e));
        let start = text[..s].rfind('\n').map_or(0, |i| i + 1);
        let end = if e > start && text[..e].ends_with('\n') {
            e
        } else {
            text[e..].find('\n').map_or(text.len(), |i| e + i + 1)
        };
        Ok(Some(Focus {
            key,
            start,
            end,
            text,
        }))
    }

    /// One chat turn over the repository: retrieval → numbered sources → streamed
    /// answer → citations and proposed edits (each with a `suggested` record).
    pub async fn chat(
        &self,
        turn: ChatTurn,
        sink: TokenSink,
        cancel: CancellationToken,
    ) -> Result<ChatAnswer, EngineError> {
        let info = turn.kind.info();
        if turn.question.trim().is_empty() && !info.needs_selection {
            return Err(EngineError::Input("the question is empty".into()));
        }
        let engine = self.models()?;
        let conversation_id = turn
            .conversation
            .clone()
            .unwrap_or_else(|| format!("c-{}", uuid::Uuid::now_v7()));
        let history = self.conversations.history(&conversation_id);
        let focus = self.focus(&turn)?;
        if info.needs_selection && focus.is_none() {
            return Err(EngineError::Input(format!(
                "`{}` works on a selection: give a file and a range",
                info.name
            )));
        }
        let question = turn.kind.question(&turn.question);
        let query = match &focus {
            Some(f) => format!("{question}\n{}", f.selected()),
            None => question.clone(),
        };
        let (sources, sources_error) = match self.chat_sources(&query).await {
            Ok(s) => (s, None),
            Err(e) => {
                tracing::warn!("chat without repository sources: {e}");
                (Vec::new(), Some(e.to_string()))
            }
        };
        let selection = focus
            .as_ref()
            .map(|f| (f.key.as_str(), f.first_line(), f.selected()));
        let mut user = prompt::user_turn(&sources, selection, &question);
        let mut redactions = BTreeMap::new();
        let mut messages = prompt::messages(&history, user.clone());
        if engine.chat_goes_remote() {
            for m in &mut messages {
                let r = redact::redact(&m.content, None);
                for (k, v) in r.kinds {
                    *redactions.entry(k.to_string()).or_insert(0) += v;
                }
                m.content = r.text;
            }
            user = messages.last().map(|m| m.content.clone()).unwrap_or(user);
        }
        let mut req = ChatRequest::new(messages);
        req.max_tokens = turn.max_tokens.unwrap_or(512);
        // The cache key is built from the messages as they would be with the question's
        // whitespace normalised, and before redaction (what the model's input depends on).
        let key =
            (self.chat_cache.enabled() && !turn.no_cache && req.sampling.is_greedy()).then(|| {
                let normalised =
                    prompt::user_turn(&sources, selection, &cache::normalise_question(&question));
                let keyed = prompt::messages(&history, normalised);
                cache::key(info.name, &keyed, &engine.chat_model(), &req)
            });
        let hit = match &key {
            Some(k) => self.cached_answer(k.clone()).await,
            None => None,
        };
        let (g, cached) = match hit {
            Some(entry) => {
                // No model runs: the answer streams as one piece.
                if let Some(tx) = &sink {
                    let _ = tx.send(StreamEvent::Text(entry.generation.text.clone()));
                }
                let mut g = entry.generation;
                g.usage = Usage::default();
                let cached = CachedAnswer {
                    from_record: entry.record_id,
                    at: entry.at,
                };
                (g, Some(cached))
            }
            None => {
                let g = engine.router().chat.chat(req.clone(), sink, cancel).await?;
                (g, None)
            }
        };
        let answer = g.text.trim().to_string();
        let (citations, citation_marks) = answer::citations(&answer, &sources);
        let raw = self.proposed_edits(&answer, turn.kind, focus.as_ref());
        let ctx: Vec<ContextSource> = sources
            .iter()
            .map(|s| {
                context_source(
                    &s.path,
                    s.start_line,
                    s.end_line,
                    &s.text,
                    s.retriever.clone(),
                    s.score,
                )
            })
            .collect();
        let input = InputFacts {
            mode: Mode::Chat,
            template_digest: g.prompt.template_sha256.clone(),
            prompt: user,
            store_prompt: false,
            context: ctx,
            redactions,
            budget: None,
        };
        let base_commit = self.base_commit().await;
        let (edits, withheld) = self
            .record_edits(raw, &g, &input, base_commit.clone())
            .await?;
        let edit_ids = edits
            .iter()
            .map(|e| e.record_id.as_str())
            .chain(withheld.iter().map(|w| w.record_id.as_str()))
            .filter_map(|id| id.parse::<RecordId>().ok())
            .collect();
        let cached_from = cached
            .as_ref()
            .and_then(|c| c.from_record.parse::<RecordId>().ok());
        let record_id = self
            .append(vec![Event::Answered {
                generator: generator_of(&g),
                input,
                output: answer.clone(),
                base_commit,
                edits: edit_ids,
                cached_from,
            }])
            .await?
            .remove(0);
        if let (Some(k), None) = (key, &cached) {
            if cache::cacheable(&req, &g) {
                self.keep_answer(cache::CachedEntry::new(k, record_id.to_string(), g.clone()))
                    .await;
            }
        }
        self.conversations
            .push_turn(&conversation_id, question, answer.clone());
        Ok(ChatAnswer {
            conversation_id,
            record_id: record_id.to_string(),
            answer,
            citations,
            citation_marks,
            edits,
            withheld,
            sources,
            sources_error,
            model: g.model.clone(),
            usage: g.usage.clone(),
            stop_reason: g.stop_reason.clone(),
            fallback: g.fallback.clone(),
            cached,
        })
    }

    /// The cached answer under `key`, read off the async runtime.
    async fn cached_answer(&self, key: String) -> Option<cache::CachedEntry> {
        let cache = self.chat_cache.clone();
        tokio::task::spawn_blocking(move || cache.lookup(&key))
            .await
            .ok()
            .flatten()
    }

    /// Keeps an answer in the response cache; a failure is a warning (the answer stands).
    async fn keep_answer(&self, entry: cache::CachedEntry) {
        let cache = self.chat_cache.clone();
        match tokio::task::spawn_blocking(move || cache.insert(entry)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the chat answer was not cached: {e}"),
            Err(e) => tracing::warn!("the chat answer was not cached: {e}"),
        }
    }

    /// The edits an answer proposes: labelled blocks with a target inside the
    /// repository, else the first code block where the kind puts it.
    fn proposed_edits(
        &self,
        answer: &str,
        kind: ChatKind,
        focus: Option<&Focus>,
    ) -> Vec<(String, Range, String)> {
        let mut raw = Vec::new();
        let blocks = answer::code_blocks(answer);
        for b in blocks.iter().filter(|b| b.labelled) {
            let path = match (&b.path, focus) {
                (Some(p), _) => p.clone(),
                (None, Some(f)) => f.key.clone(),
                (None, None) => continue,
            };
            let Some(rel) = self.inside_repo(&path) else {
                tracing::info!("dropping an edit for {path}: outside the repository");
                continue;
            };
            let text = self.text_for(&rel).unwrap_or_default();
            let range = match (b.lines, focus) {
                (Some((a, z)), _) => cairn_text::line_range(&text, a, z),
                (None, Some(f)) if f.key == rel => f.range(),
                _ => continue,
            };
            raw.push((rel, range, b.text.clone()));
        }
        if raw.is_empty() {
            if let (Some(f), Some(b)) = (focus, blocks.first()) {
                match kind.info().edits {
                    EditTarget::ReplaceSelection => {
                        raw.push((f.key.clone(), f.range(), b.text.clone()))
                    }
                    EditTarget::AfterSelection => {
                        let at = f.range().end;
                        raw.push((f.key.clone(), Range::at(at), format!("\n{}", b.text)));
                    }
                    EditTarget::None => {}
                }
            }
        }
        raw
    }

    /// One `suggested` record per proposed edit, written before the answer returns; the
    /// edits to show, and those the `block` policy withheld.
    async fn record_edits(
        &self,
        raw: Vec<(String, Range, String)>,
        g: &Generation,
        input: &InputFacts,
        base_commit: Option<String>,
    ) -> Result<(Vec<ProposedEdit>, Vec<WithheldEdit>), EngineError> {
        if raw.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let refs = self
            .references
            .check_all(raw.iter().map(|(p, _, t)| (p.clone(), t.clone())).collect())
            .await;
        let block = self.references.policy() == crate::ReferencePolicy::Block;
        let events: Vec<Event> = raw
            .iter()
            .zip(&refs)
            .map(|((path, range, new_text), r)| Event::Suggested {
                generator: generator_of(g),
                input: input.clone(),
                output: new_text.clone(),
                location: Location {
                    base_commit: base_commit.clone(),
                    path: path.clone(),
                    range: *range,
                },
                references: r.iter().map(|m| m.fact()).collect(),
                withheld: block && !r.is_empty(),
            })
            .collect();
        let ids = self.append(events).await?;
        let mut edits = Vec::new();
        let mut withheld = Vec::new();
        for (((path, range, new_text), id), references) in raw.into_iter().zip(ids).zip(refs) {
            if block && !references.is_empty() {
                withheld.push(WithheldEdit {
                    record_id: id.to_string(),
                    path,
                    range,
                    references,
                });
                continue;
            }
            self.remember_shown(id, &path, range, &new_text, &references);
            edits.push(ProposedEdit {
                record_id: id.to_string(),
                path,
                range,
                new_text,
                references,
            });
        }
        Ok((edits, withheld))
    }

    /// The numbered sources a chat turn on `query` is grounded in (what the answer
    /// can cite), best first, within the chat source budget. No index yet: none.
    pub async fn chat_sources(&self, query: &str) -> Result<Vec<Source>, EngineError> {
        let Some(index) = self.index() else {
            return Ok(Vec::new());
        };
        // One hit per file and no source larger than a quarter of the budget: a long
        // function must not crowd out the other files an answer may need.
        let mut q = SearchQuery::new(query);
        q.limit = 8;
        q.max_per_file = 1;
        let hits = tokio::task::spawn_blocking(move || index.search(&q))
            .await
            .map_err(|e| EngineError::Unavailable(format!("the search stopped: {e}")))??;
        let mut budget = self.options().chat_source_chars;
        let per_source = (budget / 4).max(400);
        let mut out = Vec::new();
        for h in hits {
            if budget < 200 {
                break;
            }
            let cap = budget.min(per_source);
            let (text, end_line) = if h.text.len() > cap {
                // Whole lines, and the cited range says which ones were shown.
                let cut = cairn_text::floor_char_boundary(&h.text, cap);
                let cut = h.text[..cut].rfind('\n').map_or(cut, |i| i + 1);
                let text = h.text[..cut].to_string();
                let shown = text.lines().count().max(1);
                (text, (h.start_line + shown - 1).min(h.end_line))
            } else {
                (h.text.clone(), h.end_line)
            };
            budget = budget.saturating_sub(text.len());
            out.push(Source {
                n: out.len() + 1,
                path: h.path,
                start_line: h.start_line,
                end_line,
                text,
                score: h.score,
                retriever: h
                    .why
                    .iter()
                    .map(|w| w.retriever.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
            });
        }
        Ok(out)
    }

    /// Drops a conversation's history (a front end is done with it).
    pub fn forget_conversation(&self, id: &str) {
        self.conversations.forget(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_bounded_and_forgotten() {
        let c = Conversations::default();
        for i in 0..(CONVERSATIONS_CAP + 10) {
            c.push_turn(&format!("c{i}"), "q".into(), "a".into());
        }
        assert_eq!(c.len(), CONVERSATIONS_CAP);
        assert!(c.history("c0").is_empty(), "the oldest went first");
        let last = format!("c{}", CONVERSATIONS_CAP + 9);
        assert_eq!(c.history(&last).len(), 2);
        for _ in 0..20 {
            c.push_turn(&last, "q".into(), "a".into());
        }
        assert_eq!(c.history(&last).len(), HISTORY_MESSAGES);
        c.forget(&last);
        assert!(c.history(&last).is_empty());
    }
}
