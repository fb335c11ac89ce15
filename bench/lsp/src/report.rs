//! The report on stdout: the run's header, the markdown table of the passes, the summary
//! lines, and with `--breakdown` the engine's breakdown table.

use std::path::Path;

use crate::burst::{Burst, BurstRequest};
use crate::probes::Probes;
use crate::sequential::Sequential;
use crate::server::Memory;
use crate::session::Session;
use crate::stats::{cell, ms};
use crate::summary::{
    Breakdown, Summary, OVERHEAD_P50_TARGET_MS, OVERHEAD_P95_TARGET_MS, SHORT_TOKENS,
};
use crate::Args;

/// What was run, on what.
pub(crate) struct Run<'a> {
    pub(crate) args: &'a Args,
    pub(crate) repo_src: &'a Path,
    pub(crate) commit: Option<&'a str>,
    pub(crate) session: &'a Session,
    pub(crate) model_name: &'a str,
    pub(crate) load_start: &'a str,
    pub(crate) load_end: &'a str,
}

impl Run<'_> {
    /// The server's build profile, from its path.
    pub(crate) fn profile(&self) -> &'static str {
        if self
            .args
            .cairn
            .components()
            .any(|c| c.as_os_str() == "release")
        {
            "release"
        } else {
            "dev"
        }
    }
}

pub(crate) fn print(run: &Run<'_>, s: &Summary, seq: &Sequential, burst: &Burst, memory: &Memory) {
    print_header(run);
    print_table(run.args, s, burst);
    print_lines(s, seq, burst, memory);
}

fn print_header(run: &Run<'_>) {
    let (a, session) = (run.args, run.session);
    println!(
        "bench/lsp: {} on {}::{} (line {}), {} keystrokes of {} body characters; repository {}{}",
        run.model_name,
        a.file,
        session.function,
        session.line,
        session.typed.len(),
        session.body_chars,
        run.repo_src.display(),
        run.commit
            .map(|c| format!(" @ {}", &c[..c.len().min(10)]))
            .unwrap_or_default()
    );
    println!(
        "server: {} lsp ({} build); load average {} at start, {} at end",
        a.cairn.display(),
        run.profile(),
        run.load_start,
        run.load_end
    );
    println!();
}

fn print_table(a: &Args, s: &Summary, burst: &Burst) {
    println!("| mode | requests | model calls | typing-through hits | cancelled | server p50 / p95 ms | direct model p50 / p95 ms | overhead p50 / p95 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| sequential, all requests | {} | {} | {} | {} | {} | – | – |",
        s.requests,
        s.model_calls,
        s.hits,
        s.cancelled,
        cell(&s.all_server)
    );
    println!(
        "| sequential, model calls | {} | {} | – | – | {} | {} | **{}** |",
        s.model_calls,
        s.model_calls,
        cell(&s.call_server),
        cell(&s.call_direct),
        cell(&s.overhead)
    );
    println!(
        "| sequential, model calls generating ≤ {SHORT_TOKENS} tokens (less model jitter) | {} | {} | – | – | {} | {} | {} |",
        s.short,
        s.short,
        cell(&s.short_server),
        cell(&s.short_direct),
        cell(&s.short_overhead)
    );
    println!(
        "| sequential, typing-through hits | {} | 0 | {} | – | {} | – | {} |",
        s.hits,
        s.hits,
        cell(&s.hit_server),
        cell(&s.hit_server)
    );
    if a.burst {
        print_burst_row(a.burst_interval_ms, burst);
    }
    println!();
}

fn print_burst_row(interval_ms: u64, burst: &Burst) {
    let requests = &burst.requests;
    let answered: Vec<&BurstRequest> = requests
        .iter()
        .filter(|b| b.outcome == "item" || b.outcome == "empty")
        .collect();
    let b_cancelled = requests.iter().filter(|b| b.outcome == "cancelled").count();
    let b_hits = requests.iter().filter(|b| b.cache_hit).count();
    let last = requests.last();
    println!(
        "| burst (no waiting{}), final request | {} sent, {} answered | – | {} | {} | final: {} | final prompt: {} | {} |",
        if interval_ms > 0 {
            format!(", {interval_ms} ms apart")
        } else {
            String::new()
        },
        requests.len(),
        answered.len(),
        b_hits,
        b_cancelled,
        last.map(|b| format!("{} ({})", ms(b.latency_ms), b.outcome))
            .unwrap_or_default(),
        match (burst.final_direct_ms, burst.final_truncated_ms) {
            (Some(d), Some(t)) => format!("{} (KV cache cut back to the first keystroke's prompt: {})", ms(d), ms(t)),
            (Some(d), None) => ms(d),
            _ => "–".into(),
        },
        match (last, burst.final_direct_ms) {
            (Some(b), Some(d)) => ms(b.latency_ms - d),
            _ => "–".into(),
        }
    );
}

fn print_lines(s: &Summary, seq: &Sequential, burst: &Burst, memory: &Memory) {
    println!(
        "Overhead (LSP + retrieval + prompt + ledger) p50 {} ms, p95 {} ms — target ≤ {OVERHEAD_P50_TARGET_MS} / ≤ {OVERHEAD_P95_TARGET_MS} ms: {}",
        s.overhead.p50.map(ms).unwrap_or_default(),
        s.overhead.p95.map(ms).unwrap_or_default(),
        if s.met { "met" } else { "NOT met" }
    );
    if let (Some(lo), Some(hi)) = s.overhead_iqr {
        println!(
            "Noise: the paired difference's interquartile range is {} … {} ms; the model call it is taken from lasts {} ms (p50), so on a contended machine this subtraction cannot resolve a 10 ms target — see the component estimate below.",
            ms(lo),
            ms(hi),
            s.call_direct.p50.map(ms).unwrap_or_default()
        );
    }
    println!(
        "In-process Workspace::completion_request (window, tree-sitter shape, retrieval) p50 / p95: {} ms; prompts mostly re-evaluated (reused < 50%): {} of {}; mean generated tokens {:.1}; outputs that differ server vs direct: {}; errors: {}",
        cell(&s.prepare),
        s.reevaluated,
        s.model_calls,
        s.mean_generated,
        s.disagree,
        s.errors
    );
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0));
    println!(
        "Server process: VmRSS {} MiB, VmHWM {} MiB at the end (the driver, with its own model and workspace: VmHWM {} MiB). Sequential session {:.0} s, burst {:.0} s.",
        mib(memory.server_rss_kib),
        mib(memory.server_hwm_kib),
        mib(memory.driver_hwm_kib),
        seq.wall_s,
        burst.wall_s
    );
}

pub(crate) fn print_breakdown(b: &Breakdown, probes: &Probes) {
    println!();
    println!(
        "Breakdown: the same session on Workspace::complete in-process (no LSP), {} model calls, {} typing-through hits",
        b.calls,
        b.hits
    );
    println!();
    println!("| part | p50 / p95 ms |");
    println!("|---|---:|");
    println!(
        "| context retrieval (`context_for`, cached per 40-line region) | {} |",
        cell(&b.context)
    );
    println!(
        "| ledger (base commit + signed append with fsync) | {} |",
        cell(&b.ledger)
    );
    println!(
        "| the rest (typing-through check, window, tree-sitter shape, post-processing) | {} |",
        cell(&b.other)
    );
    println!(
        "| engine overhead (total − model) | {} |",
        cell(&b.engine_overhead)
    );
    println!("| model (inside the engine) | {} |", cell(&b.model));
    println!("| typing-through hit, total | {} |", cell(&b.cached));
    println!(
        "| probe: `git rev-parse --verify -q HEAD` in the copy (20 runs) | {} |",
        cell(&probes.git_rev_parse)
    );
    println!(
        "| probe: 3 KB append + fsync in the data directory (20 runs) | {} |",
        cell(&probes.fsync_3k)
    );
    let (c50, c95) = b.estimate;
    println!(
        "| **component estimate of the overhead**: LSP round trip of a hit + engine overhead | **{} / {}** |",
        c50.map(ms).unwrap_or_default(),
        c95.map(ms).unwrap_or_default()
    );
    println!();
    println!(
        "Component estimate p50 {} ms, p95 {} ms — target ≤ {OVERHEAD_P50_TARGET_MS} / ≤ {OVERHEAD_P95_TARGET_MS} ms: {}",
        c50.map(ms).unwrap_or_default(),
        c95.map(ms).unwrap_or_default(),
        if b.estimate_met { "met" } else { "NOT met" }
    );
}
