//! The burst pass: every keystroke's request sent without waiting (a fast typist's
//! editor), then the final prompt straight to the model layer for scale.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cairn_engine::{CancellationToken, Position};
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{answer_of, Client};
use crate::doc::Doc;
use crate::fail;
use crate::inprocess::{agree, InProcess};
use crate::sequential::Sequential;
use crate::session::{change, Session};
use crate::Args;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct BurstRequest {
    pub(crate) i: usize,
    pub(crate) sent_ms: f64,
    pub(crate) latency_ms: f64,
    pub(crate) outcome: &'static str,
    pub(crate) cache_hit: bool,
    pub(crate) record_id: Option<String>,
    pub(crate) text: Option<String>,
}

/// What the burst pass measured; all empty (`Default`) with `--no-burst`.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    pub(crate) requests: Vec<BurstRequest>,
    pub(crate) wall_s: f64,
    /// The final prompt straight to the model, when the final request was a model call.
    pub(crate) final_direct_ms: Option<f64>,
    pub(crate) final_direct: Option<Value>,
    /// The same after the model's KV cache was cut back to the first keystroke's prompt.
    pub(crate) final_truncated_ms: Option<f64>,
}

/// Reopens the document on both sides, sends the whole session unwaited, collects the
/// answers, then times the final prompt in-process.
pub(crate) fn run(
    client: &mut Client,
    local: &InProcess,
    doc: &mut Doc,
    session: &Session,
    seq: &Sequential,
    a: &Args,
) -> Burst {
    doc.did_close(client);
    local.ws.close_document(&doc.path);
    doc.version += 1;
    doc.did_open(client, &session.start_text);
    local
        .ws
        .open_document(&doc.path, doc.version, session.start_text.clone());
    let t0 = Instant::now();
    let sent = send_all(client, doc, session, seq.start_pos, a.burst_interval_ms);
    let requests = collect(client, &sent, t0, &seq.seen_ids);
    let mut burst = Burst {
        wall_s: t0.elapsed().as_secs_f64(),
        ..Burst::default()
    };
    if let Some(last) = requests.last() {
        if last.outcome != "cancelled" && !last.cache_hit {
            final_direct(local, doc, session, seq.start_pos, last, &mut burst);
        }
    }
    burst.requests = requests;
    burst
}

/// Every keystroke's change and request, not waiting for answers; the ids and send times.
fn send_all(
    client: &mut Client,
    doc: &mut Doc,
    session: &Session,
    start_pos: Position,
    interval_ms: u64,
) -> Vec<(i64, Instant)> {
    let mut at = start_pos;
    let mut sent: Vec<(i64, Instant)> = Vec::new();
    for &ch in &session.typed {
        doc.version += 1;
        let (_, lsp_change, next) = change(at, ch);
        doc.did_change(client, lsp_change);
        at = next;
        sent.push(doc.inline_completion(client, at));
        if interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
    sent
}

/// The answers to the sent requests, in order.
fn collect(
    client: &mut Client,
    sent: &[(i64, Instant)],
    t0: Instant,
    seen_ids: &HashSet<String>,
) -> Vec<BurstRequest> {
    let timeout = Duration::from_secs(600);
    let mut seen: HashSet<String> = seen_ids.clone();
    let mut burst = Vec::new();
    for (i, (id, at_sent)) in sent.iter().enumerate() {
        let r = client.wait(*id, timeout);
        let ans = answer_of(&r.msg);
        let cache_hit = ans.record_id.as_ref().is_some_and(|x| seen.contains(x));
        if let Some(x) = &ans.record_id {
            seen.insert(x.clone());
        }
        burst.push(BurstRequest {
            i,
            sent_ms: at_sent.duration_since(t0).as_secs_f64() * 1e3,
            latency_ms: r.at.duration_since(*at_sent).as_secs_f64() * 1e3,
            outcome: if ans.cancelled {
                "cancelled"
            } else if ans.error.is_some() {
                "error"
            } else if ans.record_id.is_some() {
                "item"
            } else {
                "empty"
            },
            cache_hit,
            record_id: ans.record_id,
            text: ans.text,
        });
    }
    burst
}

/// The final prompt straight to the model, for scale. The in-process document goes
/// through the same edits after the burst (not during it, so as not to slow it); its
/// retrieval runs after the first one, as the server's first request did (context is kept
/// per region of the file, so the prompt's head matches).
fn final_direct(
    local: &InProcess,
    doc: &Doc,
    session: &Session,
    start_pos: Position,
    last: &BurstRequest,
    out: &mut Burst,
) {
    let (ws, rt, engine) = (&local.ws, &local.rt, local.engine());
    let path = &doc.path;
    ws.close_document(path);
    ws.open_document(path, doc.version, session.start_text.clone());
    let mut p = start_pos;
    let mut first_req = None;
    for (i, &ch) in session.typed.iter().enumerate() {
        let (tc, _, next) = change(p, ch);
        ws.change_document(path, doc.version, &[tc])
            .unwrap_or_else(|e| fail(e));
        p = next;
        if i == 0 {
            first_req = Some(
                rt.block_on(ws.completion_request(path, p))
                    .unwrap_or_else(|e| fail(e)),
            );
        }
    }
    let req = rt
        .block_on(ws.completion_request(path, p))
        .unwrap_or_else(|e| fail(e));
    let t = Instant::now();
    if let Ok(g) = rt.block_on(engine.complete_raw(req.clone(), CancellationToken::new())) {
        out.final_direct_ms = Some(t.elapsed().as_secs_f64() * 1e3);
        out.final_direct = Some(json!({
            "prompt_tokens": g.usage.prompt_tokens,
            "reused_prompt_tokens": g.usage.reused_prompt_tokens,
            "generated_tokens": g.usage.generated_tokens,
            "outputs_agree": agree(last.text.as_deref().unwrap_or(""), &g.text),
            "text": g.text,
        }));
    }
    // The same prompt after the model has started the first keystroke's request (one
    // token), as the server's did before that request was cancelled: the KV cache then
    // holds the short prompt, and the final one re-evaluates everything typed since.
    if let Some(mut first) = first_req {
        first.max_tokens = 1;
        let _ = rt.block_on(engine.complete_raw(first, CancellationToken::new()));
        let t = Instant::now();
        if let Ok(g) = rt.block_on(engine.complete_raw(req, CancellationToken::new())) {
            out.final_truncated_ms = Some(t.elapsed().as_secs_f64() * 1e3);
            if let Some(Value::Object(m)) = &mut out.final_direct {
                m.insert(
                    "after_first_keystroke".into(),
                    json!({"ms": out.final_truncated_ms,
                           "prompt_tokens": g.usage.prompt_tokens,
                           "reused_prompt_tokens": g.usage.reused_prompt_tokens,
                           "generated_tokens": g.usage.generated_tokens}),
                );
            }
        }
    }
}
