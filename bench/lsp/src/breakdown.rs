//! The breakdown pass (`--breakdown`): the same session on `Workspace::complete`
//! in-process, no LSP, for the engine's own timings.

use cairn_engine::{CancellationToken, CompleteRequest, Position, Trigger};
use serde::Serialize;

use crate::doc::Doc;
use crate::fail;
use crate::inprocess::InProcess;
use crate::session::{change, Session};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EngineTiming {
    pub(crate) i: usize,
    pub(crate) from_cache: bool,
    pub(crate) context_ms: f64,
    pub(crate) model_ms: f64,
    pub(crate) ledger_ms: f64,
    pub(crate) total_ms: f64,
    /// total − model: what the engine adds to a model call.
    pub(crate) overhead_ms: f64,
    /// total − model − context − ledger: typing-through check, window, tree-sitter shape,
    /// post-processing.
    pub(crate) other_ms: f64,
}

/// Reopens the document in-process, warms up as the server did, then types the session.
pub(crate) fn run(
    local: &InProcess,
    doc: &mut Doc,
    session: &Session,
    start_pos: Position,
) -> Vec<EngineTiming> {
    let (ws, rt) = (&local.ws, &local.rt);
    let path = &doc.path;
    eprintln!("bench_lsp: breakdown pass (Workspace::complete in-process)");
    ws.close_document(path);
    doc.version += 1;
    ws.open_document(path, doc.version, session.start_text.clone());
    let complete = |at: Position| {
        rt.block_on(ws.complete(
            CompleteRequest {
                path: path.clone(),
                position: at,
                trigger: Trigger::Automatic,
                max_items: 3,
            },
            CancellationToken::new(),
        ))
        .unwrap_or_else(|e| fail(e))
    };
    // The same warm-up as the server had.
    complete(start_pos);
    let mut at = start_pos;
    let mut timings = Vec::new();
    for (i, &ch) in session.typed.iter().enumerate() {
        doc.version += 1;
        let (tc, _, next) = change(at, ch);
        ws.change_document(path, doc.version, &[tc])
            .unwrap_or_else(|e| fail(e));
        at = next;
        let c = complete(at);
        let t = &c.timings;
        let (model, context, ledger) = if c.from_cache {
            (0.0, 0.0, 0.0)
        } else {
            (t.model_ms, t.context_ms, t.ledger_ms)
        };
        timings.push(EngineTiming {
            i,
            from_cache: c.from_cache,
            context_ms: context,
            model_ms: model,
            ledger_ms: ledger,
            total_ms: t.total_ms,
            overhead_ms: t.total_ms - model,
            other_ms: t.total_ms - model - context - ledger,
        });
    }
    timings
}
