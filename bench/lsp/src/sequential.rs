//! The sequential pass: each keystroke's request waited for, and when the server called
//! the model, the same prompt straight to the model layer in-process.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cairn_engine::{CancellationToken, Position};
use serde::Serialize;

use crate::client::{answer_of, Client};
use crate::doc::Doc;
use crate::fail;
use crate::inprocess::{agree, InProcess};
use crate::session::{change, position_at, Session};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Keystroke {
    pub(crate) i: usize,
    pub(crate) ch: String,
    pub(crate) line: u32,
    pub(crate) character: u32,
    pub(crate) server_ms: f64,
    pub(crate) cache_hit: bool,
    pub(crate) cancelled: bool,
    pub(crate) error: Option<String>,
    pub(crate) record_id: Option<String>,
    pub(crate) server_text: Option<String>,
    /// `Workspace::completion_request` in-process (window, shape, retrieval): not timed
    /// into `direct_ms`.
    pub(crate) prepare_ms: Option<f64>,
    pub(crate) direct_ms: Option<f64>,
    pub(crate) overhead_ms: Option<f64>,
    pub(crate) direct_text: Option<String>,
    pub(crate) prompt_tokens: Option<u32>,
    pub(crate) reused_prompt_tokens: Option<u32>,
    pub(crate) generated_tokens: Option<u32>,
    pub(crate) outputs_agree: Option<bool>,
}

/// What the sequential pass measured.
pub(crate) struct Sequential {
    /// The warm-up request at the start position, not counted.
    pub(crate) warmup: Keystroke,
    pub(crate) keys: Vec<Keystroke>,
    pub(crate) wall_s: f64,
    /// The cursor on the empty line before the first keystroke.
    pub(crate) start_pos: Position,
    /// Record ids the server has answered with so far.
    pub(crate) seen_ids: HashSet<String>,
}

/// The server and the in-process peer, asked in turn.
struct Peer<'a> {
    client: &'a mut Client,
    local: &'a InProcess,
    doc: &'a mut Doc,
    seen_ids: &'a mut HashSet<String>,
}

impl Peer<'_> {
    /// Types `ch` at `at` on both sides; returns the cursor after it.
    fn type_char(&mut self, at: Position, ch: char) -> Position {
        self.doc.version += 1;
        let (tc, lsp_change, next) = change(at, ch);
        self.doc.did_change(self.client, lsp_change);
        self.local
            .ws
            .change_document(&self.doc.path, self.doc.version, &[tc])
            .unwrap_or_else(|e| fail(e));
        next
    }

    /// One inline completion from the server, waited for; then, if the server called the
    /// model, the same prompt straight to the model layer.
    fn step(&mut self, i: usize, ch: char, at: Position) -> Keystroke {
        let (id, sent) = self.doc.inline_completion(self.client, at);
        let r = self.client.wait(id, Duration::from_secs(600));
        let server_ms = r.at.duration_since(sent).as_secs_f64() * 1e3;
        let ans = answer_of(&r.msg);
        // A typing-through hit repeats the record id of an earlier suggestion; a model
        // call makes a new record (or none, for an empty item).
        let cache_hit = ans
            .record_id
            .as_ref()
            .is_some_and(|id| self.seen_ids.contains(id));
        if let Some(id) = &ans.record_id {
            self.seen_ids.insert(id.clone());
        }
        let mut k = Keystroke {
            i,
            ch: ch.to_string(),
            line: at.line,
            character: at.character,
            server_ms,
            cache_hit,
            cancelled: ans.cancelled,
            error: ans.error.clone(),
            record_id: ans.record_id.clone(),
            server_text: ans.text.clone(),
            prepare_ms: None,
            direct_ms: None,
            overhead_ms: None,
            direct_text: None,
            prompt_tokens: None,
            reused_prompt_tokens: None,
            generated_tokens: None,
            outputs_agree: None,
        };
        if cache_hit || ans.error.is_some() {
            return k;
        }
        let (ws, rt) = (&self.local.ws, &self.local.rt);
        let t_prep = Instant::now();
        let req = rt
            .block_on(ws.completion_request(&self.doc.path, at))
            .unwrap_or_else(|e| fail(e));
        k.prepare_ms = Some(t_prep.elapsed().as_secs_f64() * 1e3);
        let engine = self.local.engine();
        let t_model = Instant::now();
        let g = rt
            .block_on(engine.complete_raw(req, CancellationToken::new()))
            .unwrap_or_else(|e| fail(format!("direct model call: {e}")));
        let direct_ms = t_model.elapsed().as_secs_f64() * 1e3;
        k.direct_ms = Some(direct_ms);
        k.overhead_ms = Some(server_ms - direct_ms);
        k.prompt_tokens = Some(g.usage.prompt_tokens);
        k.reused_prompt_tokens = Some(g.usage.reused_prompt_tokens);
        k.generated_tokens = Some(g.usage.generated_tokens);
        k.outputs_agree = Some(agree(ans.text.as_deref().unwrap_or(""), &g.text));
        k.direct_text = Some(g.text);
        k
    }
}

/// Opens the document on both sides, warms up, then types the session keystroke by
/// keystroke, waiting for each answer.
pub(crate) fn run(
    client: &mut Client,
    local: &InProcess,
    doc: &mut Doc,
    session: &Session,
) -> Sequential {
    doc.did_open(client, &session.start_text);
    local
        .ws
        .open_document(&doc.path, doc.version, session.start_text.clone());
    let mut at = position_at(&session.start_text, session.offset);
    let start_pos = at;
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut keys: Vec<Keystroke> = Vec::new();
    let mut peer = Peer {
        client,
        local,
        doc,
        seen_ids: &mut seen_ids,
    };
    // Warm-up, not counted: the cursor lands on the empty line (an editor asks here
    // too). Both model instances evaluate the cold prompt and fault the weights in.
    let warmup = peer.step(usize::MAX, '\0', at);
    eprintln!(
        "bench_lsp: warm-up at the start position: {:.0} ms server, {} direct",
        warmup.server_ms,
        warmup
            .direct_ms
            .map_or("no".into(), |d| format!("{d:.0} ms"))
    );
    let t_seq = Instant::now();
    for (i, &ch) in session.typed.iter().enumerate() {
        at = peer.type_char(at, ch);
        let k = peer.step(i, ch, at);
        if i % 10 == 0 || i + 1 == session.typed.len() {
            progress(i, session.typed.len(), &k);
        }
        keys.push(k);
    }
    let wall_s = t_seq.elapsed().as_secs_f64();
    Sequential {
        warmup,
        keys,
        wall_s,
        start_pos,
        seen_ids,
    }
}

/// A progress line on stderr.
fn progress(i: usize, n: usize, k: &Keystroke) {
    eprintln!(
        "  [{:>4}/{}] {:>8.1} ms server{}{}",
        i + 1,
        n,
        k.server_ms,
        if k.cache_hit { " (typing-through)" } else { "" },
        k.direct_ms
            .map(|d| format!(", {d:.1} ms direct, overhead {:.1} ms", k.server_ms - d))
            .unwrap_or_default()
    );
}
