//! What the person was shown and what they did with it: suggestions waiting for a
//! decision, accepts whose text has not reached the document yet, and accepted spans
//! followed through later edits (which become `edited` records, and, for spans that
//! reproduce third-party code, the marks front ends show over them).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_provenance::{Event, LineClass, Location, RecordId, SpanTracker};
use parking_lot::Mutex;
use serde::Serialize;

use super::Workspace;
use crate::{EngineError, Position, Range, ReferenceMatch, TextChange};

/// Suggestions kept for a decision at most (the oldest are forgotten first).
const SHOWN_CAP: usize = 10_000;

/// A suggestion the user has seen, kept until accepted, rejected or evicted.
#[derive(Debug, Clone)]
struct Shown {
    path: String,
    range: Range,
    text: String,
    references: Vec<ReferenceMatch>,
}

/// An accepted suggestion whose text has not reached the document yet.
#[derive(Debug, Clone)]
struct PendingAccept {
    record_id: RecordId,
    range: Range,
    text: String,
}

#[derive(Default)]
struct Waiting {
    shown: HashMap<RecordId, Shown>,
    order: VecDeque<RecordId>,
}

#[derive(Default)]
pub(super) struct Suggestions {
    waiting: Mutex<Waiting>,
    pending_accepts: Mutex<HashMap<String, Vec<PendingAccept>>>,
    spans: Mutex<SpanTracker>,
    /// Accepted suggestions that reproduce third-party code, by document: what their
    /// spans are marked with while any of their lines remain.
    accepted_references: Mutex<HashMap<String, HashMap<RecordId, Vec<ReferenceMatch>>>>,
}

/// Lines of a document that came from an accepted suggestion reproducing third-party
/// code, where they stand now (front ends mark them: an LSP diagnostic, a gutter note).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedReference {
    pub record_id: String,
    /// The accepted lines still as they were accepted, first to last, as they stand
    /// after the edits since.
    pub range: Range,
    pub references: Vec<ReferenceMatch>,
}

impl Suggestions {
    pub(super) fn follow_change(&self, key: &str, change: &TextChange) {
        self.spans.lock().apply_change(key, change);
    }

    pub(super) fn forget_document(&self, key: &str) {
        self.pending_accepts.lock().remove(key);
        self.spans.lock().forget(key);
        self.accepted_references.lock().remove(key);
    }

    /// The marks for `key`: each followed span with references, over its lines that are
    /// still as accepted. A span whose lines are all gone or rewritten has none, and is
    /// forgotten once it has vanished.
    fn accepted_references(&self, key: &str) -> Vec<AcceptedReference> {
        let mut all = self.accepted_references.lock();
        let Some(by_record) = all.get_mut(key) else {
            return Vec::new();
        };
        let surviving = self.spans.lock().surviving(key);
        let pending: Vec<RecordId> = self
            .pending_accepts
            .lock()
            .get(key)
            .map(|l| l.iter().map(|p| p.record_id).collect())
            .unwrap_or_default();
        by_record
            .retain(|id, _| pending.contains(id) || surviving.iter().any(|s| s.record_id == *id));
        let mut out = Vec::new();
        for span in &surviving {
            let Some(references) = by_record.get(&span.record_id) else {
                continue;
            };
            let kept: Vec<usize> = span
                .lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.class == LineClass::Ai)
                .map(|(i, _)| i)
                .collect();
            let (Some(&first), Some(&last)) = (kept.first(), kept.last()) else {
                continue;
            };
            let start = if first == 0 {
                span.range.start
            } else {
                Position::new(span.range.start.line + first as u32, 0)
            };
            let end = if last + 1 == span.lines.len() {
                span.range.end
            } else {
                Position::new(span.range.start.line + last as u32 + 1, 0)
            };
            out.push(AcceptedReference {
                record_id: span.record_id.to_string(),
                range: Range::new(start, end),
                references: references.clone(),
            });
        }
        if by_record.is_empty() {
            all.remove(key);
        }
        out
    }

    /// Starts following accepted spans once their text is in the document (editors
    /// insert before or after they report acceptance).
    fn resolve_pending_accepts(&self, key: &str, text: &str) {
        let mut pending = self.pending_accepts.lock();
        let Some(list) = pending.get_mut(key) else {
            return;
        };
        list.retain(|p| {
            let s = cairn_text::offset_at(text, p.range.start);
            let e = cairn_text::offset_at(text, p.range.end);
            let present =
                matches!((s, e), (Some(s), Some(e)) if text.get(s..e) == Some(p.text.as_str()));
            if present {
                self.spans.lock().track(p.record_id, key, p.range, &p.text);
            }
            !present
        });
    }
}

/// HEAD, for the record's location. Read once, then refreshed in the background when
/// older than a few seconds, so no request waits on git after the first.
#[derive(Default)]
pub(super) struct HeadCache {
    read: Arc<Mutex<Option<HeadRead>>>,
}

/// When HEAD was last read, and what it was.
type HeadRead = (Instant, Option<String>);

impl HeadCache {
    pub(super) async fn get(&self, root: &Path) -> Option<String> {
        fn read_head(root: &Path) -> Option<String> {
            std::process::Command::new("git")
                .arg("-C")
                .arg(root)
                .args(["rev-parse", "--verify", "-q", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        }
        let cached = self.read.lock().clone();
        if let Some((at, c)) = cached {
            if at.elapsed() >= Duration::from_secs(5) {
                // Mark fresh now so one refresh runs at a time.
                *self.read.lock() = Some((Instant::now(), c.clone()));
                let root = root.to_path_buf();
                let slot = self.read.clone();
                tokio::task::spawn_blocking(move || {
                    let head = read_head(&root);
                    *slot.lock() = Some((Instant::now(), head));
                });
            }
            return c;
        }
        let r = root.to_path_buf();
        let c = tokio::task::spawn_blocking(move || read_head(&r))
            .await
            .ok()
            .flatten();
        *self.read.lock() = Some((Instant::now(), c.clone()));
        c
    }
}

fn parse_id(record_id: &str) -> Result<RecordId, EngineError> {
    record_id
        .parse()
        .map_err(|_| EngineError::Input(format!("{record_id:?} is not a record id")))
}

fn not_waiting(record_id: &str) -> EngineError {
    EngineError::Input(format!(
        "no suggestion {record_id} is waiting for a decision in this session"
    ))
}

impl Workspace {
    /// Keeps a suggestion that was just shown for the person's decision, with the
    /// third-party code it reproduces.
    pub(crate) fn remember_shown(
        &self,
        id: RecordId,
        path: &str,
        range: Range,
        text: &str,
        references: &[ReferenceMatch],
    ) {
        let mut w = self.suggestions.waiting.lock();
        w.shown.insert(
            id,
            Shown {
                path: path.to_string(),
                range,
                text: text.to_string(),
                references: references.to_vec(),
            },
        );
        w.order.push_back(id);
        while w.order.len() > SHOWN_CAP {
            if let Some(old) = w.order.pop_front() {
                w.shown.remove(&old);
            }
        }
    }

    /// The document changed: accepts that have arrived start being followed, and the
    /// changes to followed spans are written as `edited` records.
    pub(super) fn suggestions_changed(&self, key: &str, text: &str) {
        self.suggestions.resolve_pending_accepts(key, text);
        let edited = self.suggestions.spans.lock().take_edited_events(key);
        if edited.is_empty() {
            return;
        }
        if let Ok(ledger) = &self.ledger {
            let ledger = ledger.clone();
            // Span edits are not acknowledged to anyone; write them off the request path.
            std::thread::spawn(move || {
                if let Err(e) = ledger.append_batch(edited) {
                    tracing::warn!("ledger: edited records not written: {e}");
                }
            });
        }
    }

    /// The user accepted a suggestion (`partial`: only part of it, `final_text`).
    /// Its span is followed through later edits of the document.
    pub async fn accept(
        &self,
        record_id: &str,
        partial: bool,
        final_text: Option<String>,
    ) -> Result<(), EngineError> {
        let id = parse_id(record_id)?;
        let shown = self
            .suggestions
            .waiting
            .lock()
            .shown
            .get(&id)
            .cloned()
            .ok_or_else(|| not_waiting(record_id))?;
        let text = final_text.unwrap_or_else(|| shown.text.clone());
        let range = Range::new(
            shown.range.start,
            cairn_text::end_after(shown.range.start, &text),
        );
        self.append(vec![Event::Accepted {
            record_id: id,
            partial,
            final_text: text.clone(),
            location: Location {
                base_commit: self.base_commit().await,
                path: shown.path.clone(),
                range,
            },
        }])
        .await?;
        self.suggestions.waiting.lock().shown.remove(&id);
        self.completions.forget_record(record_id);
        if !shown.references.is_empty() {
            self.suggestions
                .accepted_references
                .lock()
                .entry(shown.path.clone())
                .or_default()
                .insert(id, shown.references.clone());
        }
        self.suggestions
            .pending_accepts
            .lock()
            .entry(shown.path.clone())
            .or_default()
            .push(PendingAccept {
                record_id: id,
                range,
                text,
            });
        if let Some(t) = self.doc_text(&shown.path) {
            self.suggestions.resolve_pending_accepts(&shown.path, &t);
        }
        Ok(())
    }

    /// Accepted suggestions in the document at `path` that reproduce third-party code,
    /// over the lines of them that remain as accepted (empty when there are none).
    pub fn accepted_references(&self, path: &str) -> Vec<AcceptedReference> {
        self.suggestions.accepted_references(&self.rel_path(path))
    }

    /// The user dismissed a suggestion (or it timed out): a `rejected` record.
    pub async fn reject(&self, record_id: &str, reason: &str) -> Result<(), EngineError> {
        let id = parse_id(record_id)?;
        if self.suggestions.waiting.lock().shown.remove(&id).is_none() {
            return Err(not_waiting(record_id));
        }
        self.completions.forget_record(record_id);
        self.append(vec![Event::Rejected {
            record_id: id,
            reason: reason.to_string(),
        }])
        .await?;
        Ok(())
    }
}
