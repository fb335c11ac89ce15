//! The numbers the report and the JSON file give: spreads over the sequential pass's
//! keystrokes and, with `--breakdown`, over the engine's own timings.

use crate::breakdown::EngineTiming;
use crate::sequential::Keystroke;
use crate::stats::{pct, spread, Spread};

pub(crate) const OVERHEAD_P50_TARGET_MS: f64 = 10.0;
pub(crate) const OVERHEAD_P95_TARGET_MS: f64 = 25.0;
/// Model calls this short vary less with the machine's load.
pub(crate) const SHORT_TOKENS: u32 = 16;

/// The sequential pass, summed up.
pub(crate) struct Summary {
    pub(crate) requests: usize,
    pub(crate) model_calls: usize,
    pub(crate) hits: usize,
    pub(crate) cancelled: usize,
    /// Errors other than cancellations.
    pub(crate) errors: usize,
    pub(crate) all_server: Spread,
    pub(crate) call_server: Spread,
    pub(crate) call_direct: Spread,
    pub(crate) overhead: Spread,
    /// The overhead's 25th and 75th percentiles.
    pub(crate) overhead_iqr: (Option<f64>, Option<f64>),
    /// Model calls generating at most [`SHORT_TOKENS`].
    pub(crate) short: usize,
    pub(crate) short_server: Spread,
    pub(crate) short_direct: Spread,
    pub(crate) short_overhead: Spread,
    pub(crate) hit_server: Spread,
    pub(crate) prepare: Spread,
    pub(crate) disagree: usize,
    /// Model calls whose prompt was mostly re-evaluated (reused < 50%).
    pub(crate) reevaluated: usize,
    pub(crate) mean_generated: f64,
    /// Whether the overhead met both targets.
    pub(crate) met: bool,
}

fn col(ks: &[&Keystroke], f: fn(&Keystroke) -> f64) -> Spread {
    spread(&ks.iter().map(|k| f(k)).collect::<Vec<_>>())
}

fn col_opt(ks: &[&Keystroke], f: fn(&Keystroke) -> Option<f64>) -> Spread {
    spread(&ks.iter().filter_map(|k| f(k)).collect::<Vec<_>>())
}

impl Summary {
    pub(crate) fn of(keys: &[Keystroke]) -> Summary {
        let model_calls: Vec<&Keystroke> = keys.iter().filter(|k| k.direct_ms.is_some()).collect();
        let hits: Vec<&Keystroke> = keys.iter().filter(|k| k.cache_hit).collect();
        let short: Vec<&Keystroke> = model_calls
            .iter()
            .copied()
            .filter(|k| k.generated_tokens.is_some_and(|g| g <= SHORT_TOKENS))
            .collect();
        let overhead_v: Vec<f64> = model_calls.iter().filter_map(|k| k.overhead_ms).collect();
        let overhead = spread(&overhead_v);
        let mean_generated = if model_calls.is_empty() {
            0.0
        } else {
            model_calls
                .iter()
                .filter_map(|k| k.generated_tokens)
                .sum::<u32>() as f64
                / model_calls.len() as f64
        };
        Summary {
            requests: keys.len(),
            model_calls: model_calls.len(),
            hits: hits.len(),
            cancelled: keys.iter().filter(|k| k.cancelled).count(),
            errors: keys
                .iter()
                .filter(|k| k.error.is_some() && !k.cancelled)
                .count(),
            all_server: spread(&keys.iter().map(|k| k.server_ms).collect::<Vec<_>>()),
            call_server: col(&model_calls, |k| k.server_ms),
            call_direct: col_opt(&model_calls, |k| k.direct_ms),
            overhead,
            overhead_iqr: (pct(&overhead_v, 25.0), pct(&overhead_v, 75.0)),
            short: short.len(),
            short_server: col(&short, |k| k.server_ms),
            short_direct: col_opt(&short, |k| k.direct_ms),
            short_overhead: col_opt(&short, |k| k.overhead_ms),
            hit_server: col(&hits, |k| k.server_ms),
            prepare: col_opt(&model_calls, |k| k.prepare_ms),
            disagree: model_calls
                .iter()
                .filter(|k| k.outputs_agree == Some(false))
                .count(),
            reevaluated: model_calls
                .iter()
                .filter(|k| {
                    matches!((k.prompt_tokens, k.reused_prompt_tokens), (Some(p), Some(r)) if r * 2 < p)
                })
                .count(),
            mean_generated,
            met: meets_targets(overhead.p50, overhead.p95),
        }
    }
}

/// Whether a p50 and a p95 are within the overhead targets.
pub(crate) fn meets_targets(p50: Option<f64>, p95: Option<f64>) -> bool {
    p50.is_some_and(|v| v <= OVERHEAD_P50_TARGET_MS)
        && p95.is_some_and(|v| v <= OVERHEAD_P95_TARGET_MS)
}

/// The breakdown pass, summed up.
pub(crate) struct Breakdown {
    /// Model calls (not from the typing-through cache).
    pub(crate) calls: usize,
    pub(crate) hits: usize,
    pub(crate) context: Spread,
    pub(crate) ledger: Spread,
    pub(crate) other: Spread,
    pub(crate) engine_overhead: Spread,
    pub(crate) model: Spread,
    /// Typing-through hits, total.
    pub(crate) cached: Spread,
    /// The component estimate of the overhead, measured without the model in the way:
    /// the LSP round trip of a typing-through hit (protocol, transport, the cache path)
    /// plus the engine's own overhead; p50 and p95.
    pub(crate) estimate: (Option<f64>, Option<f64>),
    pub(crate) estimate_met: bool,
}

impl Breakdown {
    pub(crate) fn of(timings: &[EngineTiming], seq: &Summary) -> Breakdown {
        let calls: Vec<&EngineTiming> = timings.iter().filter(|t| !t.from_cache).collect();
        let col =
            |f: fn(&EngineTiming) -> f64| spread(&calls.iter().map(|t| f(t)).collect::<Vec<_>>());
        let engine_overhead = col(|t| t.overhead_ms);
        let cached = spread(
            &timings
                .iter()
                .filter(|t| t.from_cache)
                .map(|t| t.total_ms)
                .collect::<Vec<_>>(),
        );
        let sum = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a + b);
        let (c50, c95) = (
            sum(seq.hit_server.p50, engine_overhead.p50),
            sum(seq.hit_server.p95, engine_overhead.p95),
        );
        Breakdown {
            calls: calls.len(),
            hits: timings.len() - calls.len(),
            context: col(|t| t.context_ms),
            ledger: col(|t| t.ledger_ms),
            other: col(|t| t.other_ms),
            engine_overhead,
            model: col(|t| t.model_ms),
            cached,
            estimate: (c50, c95),
            estimate_met: meets_targets(c50, c95),
        }
    }
}
