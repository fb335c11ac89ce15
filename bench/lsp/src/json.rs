//! The JSON file (`--json OUT`): the summary and every request, for later comparison.

use std::path::Path;

use cairn_engine::ModelIdentity;
use serde_json::{json, Value};

use crate::breakdown::EngineTiming;
use crate::burst::Burst;
use crate::fail;
use crate::probes::Probes;
use crate::report::Run;
use crate::sequential::Sequential;
use crate::server::Memory;
use crate::summary::{Breakdown, Summary, OVERHEAD_P50_TARGET_MS, OVERHEAD_P95_TARGET_MS};

/// Everything the file holds.
pub(crate) struct Parts<'a> {
    pub(crate) run: &'a Run<'a>,
    pub(crate) identity: &'a ModelIdentity,
    pub(crate) summary: &'a Summary,
    pub(crate) seq: &'a Sequential,
    pub(crate) burst: &'a Burst,
    /// With `--breakdown`: its summary and its requests.
    pub(crate) breakdown: Option<(&'a Breakdown, &'a [EngineTiming])>,
    pub(crate) probes: &'a Probes,
    pub(crate) memory: &'a Memory,
}

/// Writes the file, its directory created if need be.
pub(crate) fn write(out: &Path, p: &Parts<'_>) {
    let v = value(p);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(out, serde_json::to_string_pretty(&v).expect("json"))
        .unwrap_or_else(|e| fail(format!("{}: {e}", out.display())));
}

fn value(p: &Parts<'_>) -> Value {
    let (run, a, s, seq, burst) = (p.run, p.run.args, p.summary, p.seq, p.burst);
    json!({
        "model": run.model_name,
        "model_identity": p.identity,
        "repo": run.repo_src,
        "commit": run.commit,
        "file": a.file,
        "function": run.session.function,
        "keystrokes": run.session.typed.len(),
        "server": a.cairn,
        "server_profile": run.profile(),
        "loadavg_start": run.load_start,
        "loadavg_end": run.load_end,
        "sequential": {
            "all": s.all_server,
            "model_calls": {"server": s.call_server, "direct": s.call_direct, "overhead": s.overhead,
                             "short_overhead": s.short_overhead,
                             "prepare": s.prepare, "reevaluated": s.reevaluated,
                             "mean_generated_tokens": s.mean_generated,
                             "outputs_differ": s.disagree},
            "typing_through": s.hit_server,
            "cancelled": s.cancelled,
            "errors": s.errors,
            "wall_s": seq.wall_s,
            "requests": seq.keys,
        },
        "burst": if a.burst { json!({
            "interval_ms": a.burst_interval_ms,
            "final_direct_ms": burst.final_direct_ms,
            "final_direct": burst.final_direct,
            "wall_s": burst.wall_s,
            "requests": burst.requests,
        }) } else { Value::Null },
        "breakdown": breakdown(p.breakdown),
        "probes": {"git_rev_parse": p.probes.git_rev_parse, "fsync_3k": p.probes.fsync_3k},
        "warmup": seq.warmup,
        "target": {"overhead_p50_ms": OVERHEAD_P50_TARGET_MS,
                   "overhead_p95_ms": OVERHEAD_P95_TARGET_MS, "met": s.met},
        "server_rss_kib": p.memory.server_rss_kib,
        "server_hwm_kib": p.memory.server_hwm_kib,
        "driver_hwm_kib": p.memory.driver_hwm_kib,
    })
}

/// The breakdown object: empty without `--breakdown`.
fn breakdown(b: Option<(&Breakdown, &[EngineTiming])>) -> Value {
    let mut m = serde_json::Map::new();
    if let Some((b, timings)) = b {
        let (c50, c95) = b.estimate;
        m.insert(
            "component_estimate".into(),
            json!({"p50": c50, "p95": c95, "met": b.estimate_met}),
        );
        for (k, v) in [
            ("context", b.context),
            ("ledger", b.ledger),
            ("other", b.other),
            ("engine_overhead", b.engine_overhead),
            ("model", b.model),
            ("typing_through", b.cached),
        ] {
            m.insert(k.into(), json!(v));
        }
        m.insert("requests".into(), json!(timings));
    }
    Value::Object(m)
}
