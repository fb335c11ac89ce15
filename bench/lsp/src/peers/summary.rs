//! The comparison's numbers: per server the cold first completion, the keystrokes'
//! latencies, matches and prompt sizes; the table on stdout, the ratios against the
//! issue's targets, and the JSON file.

use std::path::Path;

use serde_json::{json, Value};

use super::pass::{Ask, Pass};
use super::targets::Window;
use super::Measured;
use crate::fail;
use crate::session::Session;
use crate::stats::{cell, ms, pct, spread, Spread};

/// Target: Cairn's per-keystroke p50 and p95 at most this share of the better peer's.
const RATIO_TARGET: f64 = 0.5;
/// Target: the first completion in a cold file, idle.
const COLD_TARGET_MS: f64 = 2000.0;

/// What was run, on what.
pub(crate) struct Run<'a> {
    pub(crate) repo_src: &'a Path,
    pub(crate) commit: Option<&'a str>,
    pub(crate) file: &'a str,
    pub(crate) session: &'a Session,
    pub(crate) model_name: &'a str,
    pub(crate) gguf: &'a Path,
    pub(crate) window: Window,
    /// Cairn's medians, when its records had them.
    pub(crate) cairn_window: Option<Window>,
    pub(crate) threads: (i32, i32),
    pub(crate) load_start: &'a str,
    pub(crate) load_end: &'a str,
}

/// One server's numbers.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerSummary {
    pub(crate) cold_ms: f64,
    pub(crate) cold_kind: &'static str,
    pub(crate) cold_matched: bool,
    pub(crate) all: Spread,
    pub(crate) model_calls: Spread,
    pub(crate) typing_through: usize,
    pub(crate) empty: usize,
    pub(crate) errors: usize,
    pub(crate) matched: usize,
    pub(crate) keystrokes: usize,
    pub(crate) prompt_tokens_p50: Option<f64>,
    pub(crate) generated_tokens_p50: Option<f64>,
}

pub(crate) fn summarize(p: &Pass) -> ServerSummary {
    let ms_of = |f: &dyn Fn(&Ask) -> bool| -> Vec<f64> {
        p.keys.iter().filter(|a| f(a)).map(|a| a.ms).collect()
    };
    let count = |kind: &str| p.keys.iter().filter(|a| a.kind == kind).count();
    let model: Vec<&Ask> = p.keys.iter().filter(|a| a.kind == "model").collect();
    let tokens = |f: &dyn Fn(&Ask) -> Option<u32>| -> Option<f64> {
        let v: Vec<f64> = model.iter().filter_map(|a| f(a)).map(f64::from).collect();
        pct(&v, 50.0)
    };
    ServerSummary {
        cold_ms: p.cold.ms,
        cold_kind: p.cold.kind,
        cold_matched: p.cold.matched,
        all: spread(&ms_of(&|_| true)),
        model_calls: spread(&ms_of(&|a| a.kind == "model")),
        typing_through: count("typing-through"),
        empty: count("empty"),
        errors: count("error"),
        matched: p.keys.iter().filter(|a| a.matched).count(),
        keystrokes: p.keys.len(),
        prompt_tokens_p50: tokens(&|a| a.prompt_tokens),
        generated_tokens_p50: tokens(&|a| a.generated_tokens),
    }
}

/// Cairn's median prompt over its model calls, from its records: tokens before the
/// cursor (prefix and retrieved context, which come first in its prompt), after it,
/// and the cap on generated tokens.
pub(crate) fn cairn_window(p: &Pass) -> Option<Window> {
    let asks: Vec<&Ask> = std::iter::once(&p.cold)
        .chain(p.keys.iter())
        .filter(|a| a.kind == "model")
        .collect();
    let med = |f: &dyn Fn(&Value) -> Option<u64>| -> Option<u32> {
        let v: Vec<f64> = asks
            .iter()
            .filter_map(|a| f(&a.data))
            .map(|v| v as f64)
            .collect();
        pct(&v, 50.0).map(|v| v.round() as u32)
    };
    Some(Window {
        prefix_tokens: med(&|d| {
            Some(d["prefixTokens"].as_u64()? + d["contextTokens"].as_u64().unwrap_or(0))
        })?,
        suffix_tokens: med(&|d| d["suffixTokens"].as_u64())?,
        max_tokens: med(&|d| d["maxTokens"].as_u64())?,
    })
}

/// lsp-ai's log (info level) has llama.cpp's timings after every completion, in order:
/// the prompt tokens evaluated and the tokens decoded.
pub(crate) fn attach_lsp_ai_timings(m: &mut Measured, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut prompt = Vec::new();
    let mut decoded = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("prompt eval time =").nth(1) {
            prompt.push(number_before(rest, " tokens"));
        } else if let Some(rest) = line.split("decoded ").nth(1) {
            decoded.push(number_before(rest, " tokens"));
        }
    }
    let asks: Vec<&mut Ask> = std::iter::once(&mut m.pass.cold)
        .chain(m.pass.keys.iter_mut())
        .collect();
    if prompt.len() != asks.len() {
        eprintln!(
            "bench_lsp: lsp-ai's log has {} timings for {} requests; its prompt sizes are left out",
            prompt.len(),
            asks.len()
        );
        return;
    }
    for (i, a) in asks.into_iter().enumerate() {
        a.prompt_tokens = prompt[i];
        a.generated_tokens = decoded.get(i).copied().flatten();
    }
}

/// The integer just before `unit` in `s` (`"12.3 ms / 305 tokens"` → 305).
fn number_before(s: &str, unit: &str) -> Option<u32> {
    let head = &s[..s.find(unit)?];
    head.rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
}

pub(crate) fn print(run: &Run<'_>, measured: &[Measured]) {
    let s = run.session;
    println!(
        "bench/lsp --peers: {} ({}) on {}::{} (line {}), {} keystrokes; repository {}{}",
        run.model_name,
        run.gguf.display(),
        run.file,
        s.function,
        s.line,
        s.typed.len(),
        run.repo_src.display(),
        run.commit
            .map(|c| format!(" at {}", &c[..c.len().min(7)]))
            .unwrap_or_default()
    );
    let w = run.window;
    println!(
        "peers' prompt: {} tokens before the cursor, {} after, at most {} generated ({}); threads {} decode / {} batch",
        w.prefix_tokens,
        w.suffix_tokens,
        w.max_tokens,
        match run.cairn_window {
            Some(c) if c.prefix_tokens == w.prefix_tokens
                && c.suffix_tokens == w.suffix_tokens
                && c.max_tokens == w.max_tokens => "Cairn's medians".to_string(),
            Some(c) => format!(
                "flags; Cairn's medians {} / {} / {}",
                c.prefix_tokens, c.suffix_tokens, c.max_tokens
            ),
            None => "flags".to_string(),
        },
        run.threads.0,
        run.threads.1
    );
    println!(
        "load average: {} at the start, {} at the end",
        run.load_start, run.load_end
    );
    println!();
    println!("| server | ready (s) | cold first completion (ms) | all keystrokes p50 / p95 (ms) | model calls | model calls p50 / p95 (ms) | typing-through / empty / errors | first line matches | prompt tokens p50 | RSS (MiB) | load before → after |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let sums: Vec<(&Measured, ServerSummary)> =
        measured.iter().map(|m| (m, summarize(&m.pass))).collect();
    for (m, x) in &sums {
        println!(
            "| {} | {:.1} | {}{} | {} | {} | {} | {} / {} / {} | {} / {} ({:.0} %) | {} | {} | {} → {} |",
            m.name,
            m.ready_s,
            ms(x.cold_ms),
            match x.cold_kind {
                "empty" => " (nothing shown)",
                "error" => " (error)",
                _ if x.cold_matched => " (matches)",
                _ => "",
            },
            cell(&x.all),
            x.model_calls.n,
            cell(&x.model_calls),
            x.typing_through,
            x.empty,
            x.errors,
            x.matched,
            x.keystrokes,
            100.0 * x.matched as f64 / x.keystrokes.max(1) as f64,
            x.prompt_tokens_p50.map_or("–".into(), |v| format!("{v:.0}")),
            m.rss_kib.map_or("–".into(), |k| format!("{}", k / 1024)),
            m.load_before,
            m.load_after
        );
    }
    println!();
    for line in target_lines(&sums) {
        println!("{line}");
    }
}

/// The targets: Cairn's p50 and p95 against the better peer's, and its cold
/// first completion.
fn target_lines(sums: &[(&Measured, ServerSummary)]) -> Vec<String> {
    let Some((_, cairn)) = sums.iter().find(|(m, _)| m.name == "cairn") else {
        return vec![];
    };
    let mut out = Vec::new();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let peers: Vec<&(&Measured, ServerSummary)> =
        sums.iter().filter(|(m, _)| m.name != "cairn").collect();
    for (label, get) in [
        ("p50", (|s: &Spread| s.p50) as fn(&Spread) -> Option<f64>),
        ("p95", |s: &Spread| s.p95),
    ] {
        let best = peers
            .iter()
            .filter_map(|(m, x)| get(&x.all).map(|v| (m.name, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(c), Some((peer, p))) = (get(&cairn.all), best) {
            let r = c / p;
            out.push(format!(
                "- per-keystroke {label}: Cairn {} ms, better peer {peer} {} ms: {r:.2}× (target ≤ {RATIO_TARGET}×: {})",
                ms(c),
                ms(p),
                verdict(r <= RATIO_TARGET)
            ));
        }
    }
    out.push(format!(
        "- cold first completion: Cairn {} ms (target ≤ {} ms idle: {})",
        ms(cairn.cold_ms),
        COLD_TARGET_MS,
        verdict(cairn.cold_ms <= COLD_TARGET_MS && cairn.cold_kind != "error")
    ));
    out
}

pub(crate) fn write_json(out: &Path, run: &Run<'_>, measured: &[Measured]) {
    let servers: Vec<Value> = measured
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "settings": m.settings,
                "readyS": m.ready_s,
                "rssKib": m.rss_kib,
                "hwmKib": m.hwm_kib,
                "loadBefore": m.load_before,
                "loadAfter": m.load_after,
                "wallS": m.pass.wall_s,
                "summary": summarize(&m.pass),
                "cold": m.pass.cold,
                "keystrokes": m.pass.keys,
            })
        })
        .collect();
    let v = json!({
        "mode": "peers",
        "model": run.model_name,
        "gguf": run.gguf,
        "repo": run.repo_src,
        "commit": run.commit,
        "file": run.file,
        "function": run.session.function,
        "keystrokes": run.session.typed.len(),
        "peerWindow": run.window,
        "cairnWindow": run.cairn_window,
        "threads": {"decode": run.threads.0, "batch": run.threads.1},
        "loadavgStart": run.load_start,
        "loadavgEnd": run.load_end,
        "targets": target_lines(&measured.iter().map(|m| (m, summarize(&m.pass))).collect::<Vec<_>>()),
        "servers": servers,
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(out, serde_json::to_string_pretty(&v).expect("json"))
        .unwrap_or_else(|e| fail(format!("{}: {e}", out.display())));
    eprintln!("bench_lsp: wrote {}", out.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_before_a_unit() {
        assert_eq!(
            number_before(" 812.25 ms / 305 tokens (2.66 ms per token)", " tokens"),
            Some(305)
        );
        assert_eq!(number_before("16 tokens in 0.80 s", " tokens"), Some(16));
        assert_eq!(number_before("no unit here", " tokens"), None);
    }
}
