//! Percentiles, table cells, and what the machine and the processes say about themselves.

use std::time::Instant;

use serde::Serialize;

pub(crate) fn pct(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Spread {
    pub(crate) n: usize,
    pub(crate) p50: Option<f64>,
    pub(crate) p95: Option<f64>,
    pub(crate) max: Option<f64>,
}

pub(crate) fn spread(v: &[f64]) -> Spread {
    Spread {
        n: v.len(),
        p50: pct(v, 50.0),
        p95: pct(v, 95.0),
        max: pct(v, 100.0),
    }
}

/// `p50 / p95` of a spread, or a dash when it is empty.
pub(crate) fn cell(s: &Spread) -> String {
    match (s.p50, s.p95) {
        (Some(a), Some(b)) => format!("{} / {}", ms(a), ms(b)),
        _ => "–".into(),
    }
}

pub(crate) fn ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Median and p95 of `n` runs of `f`, in ms.
pub(crate) fn probe(n: usize, mut f: impl FnMut()) -> Spread {
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    spread(&v)
}

/// A `/proc/PID/status` line in KiB (`VmRSS:`, `VmHWM:`).
pub(crate) fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
