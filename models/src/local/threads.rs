//! Decode threads that follow the machine's load.
//!
//! Generating one token at a time, llama.cpp's threads spin between the layers' small
//! matrix products: with every core decoding, the 0.5B model on this 2-core VM generates
//! 24–28 tokens/s while the machine is otherwise idle, but 1.9 with a build beside it
//! (one thread fewer: 13–15 idle, 8.8 beside the build). So a request decodes with every
//! core ("wide") only when the other cores were idle just before it, and with one fewer
//! ("narrow", the configured default) otherwise. A wide decode whose tokens come slower
//! than narrow ones do ([`SLOW_IN_A_ROW`] of them: one alone is a hiccup) falls back to
//! narrow for the rest of the request and for [`WIDE_PAUSE`] after it.
//!
//! How busy the other cores were is read from `/proc/stat` and `/proc/self/stat` (Linux;
//! elsewhere decoding stays narrow): the cores other processes kept busy since the request
//! before (at most the last second or so while the model is idle). This process's own
//! threads are left out (the model's, and those that prepared the request); see
//! [`CpuTimes::others_busy_since`].
//!
//! llama-cpp-2 (pinned at 0.1.160) does not wrap `llama_set_n_threads` and keeps the
//! context pointer private; its `Debug` output prints the pointer, which is taken from
//! there and checked against what the safe wrapper reports before it is used
//! ([`raw_context`]). Where that fails, decoding stays narrow.

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_sys_2::llama_context;

/// A wide decode is chosen while other processes kept fewer cores than this busy before
/// the request.
const WIDE_BELOW_BUSY_CORES: f64 = 0.5;
/// How long decoding stays narrow after a wide decode came out slower than narrow.
const WIDE_PAUSE: Duration = Duration::from_secs(10);
/// Wide tokens in a row slower than 1.2× a narrow one that make a decode fall back.
const SLOW_IN_A_ROW: u32 = 2;
/// The shortest window worth measuring the machine's load over (`/proc/stat` counts in
/// hundredths of a second); a shorter one keeps the last measurement.
const MIN_WINDOW: Duration = Duration::from_millis(150);
/// While the model is idle, the measurement window restarts this often, so a request
/// sees the last second or two, not the minutes since the previous one.
pub(super) const IDLE_TICK: Duration = Duration::from_secs(1);

/// The decode thread count of one model's context, and what chooses it.
pub(super) struct DecodeThreads {
    raw: Option<NonNull<llama_context>>,
    narrow: i32,
    wide: i32,
    batch: i32,
    /// What the context decodes with now.
    current: i32,
    /// Chosen for the request in flight (before [`DecodeThreads::apply`]).
    chosen: i32,
    /// The request in flight went from wide to narrow.
    fell_back: bool,
    /// What a narrow token takes, while the request in flight decodes wide.
    narrow_token: Option<Duration>,
    /// Wide tokens in a row slower than 1.2× `narrow_token`.
    slow_in_a_row: u32,
    /// No wide decode before this (a wide decode fell back).
    wide_paused_until: Option<Instant>,
    load: BusyCores,
}

impl DecodeThreads {
    /// `narrow` is what the context was made with; `wide` is used where the load allows
    /// it and it is more (it is never more than the cores).
    pub(super) fn new(ctx: &LlamaContext<'_>, narrow: i32, wide: i32, batch: i32) -> Self {
        let raw = if wide > narrow {
            let raw = raw_context(ctx, narrow, batch);
            if raw.is_none() {
                tracing::warn!("cannot reach llama.cpp's context to change its decode threads: decoding stays at {narrow}");
            }
            raw
        } else {
            None
        };
        DecodeThreads {
            raw,
            narrow,
            wide: if raw.is_some() { wide } else { narrow },
            batch,
            current: narrow,
            chosen: narrow,
            fell_back: false,
            narrow_token: None,
            slow_in_a_row: 0,
            wide_paused_until: None,
            load: BusyCores::new(),
        }
    }

    /// Whether this context can decode wide at all.
    pub(super) fn can_widen(&self) -> bool {
        self.wide > self.narrow
    }

    /// Chooses the thread count for the next request from the load just before it.
    pub(super) fn choose(&mut self) {
        self.fell_back = false;
        let paused = self
            .wide_paused_until
            .is_some_and(|until| Instant::now() < until);
        let busy = self.load.measure();
        let wide = self.can_widen() && wide_allowed(busy, paused);
        self.chosen = if wide { self.wide } else { self.narrow };
        tracing::debug!(
            threads = self.chosen,
            others_busy_cores = busy,
            paused,
            "decode threads for the request"
        );
    }

    /// Whether the request in flight was chosen wide (and has not fallen back).
    pub(super) fn is_wide(&self) -> bool {
        self.chosen > self.narrow
    }

    /// Makes the context decode with the chosen count; a wide decode is then checked
    /// against `narrow_token`, what a narrow token takes (see [`Self::token_took`]).
    pub(super) fn apply(&mut self, narrow_token: Option<Duration>) {
        self.set(self.chosen);
        self.narrow_token = narrow_token.filter(|_| self.is_wide());
        self.slow_in_a_row = 0;
    }

    /// One token of the request in flight took `took`: [`SLOW_IN_A_ROW`] wide tokens in
    /// a row slower than 1.2× a narrow one make it fall back (the load came back during
    /// the request).
    pub(super) fn token_took(&mut self, took: Duration) {
        let Some(narrow) = self.narrow_token else {
            return;
        };
        if took <= narrow.mul_f64(1.2) {
            self.slow_in_a_row = 0;
            return;
        }
        self.slow_in_a_row += 1;
        if self.slow_in_a_row >= SLOW_IN_A_ROW {
            self.fall_back();
        }
    }

    /// Decodes narrow for the rest of the request and for [`WIDE_PAUSE`] after it: the
    /// wide tokens came slower than narrow ones would.
    fn fall_back(&mut self) {
        self.narrow_token = None;
        self.chosen = self.narrow;
        self.fell_back = true;
        self.wide_paused_until = Some(Instant::now() + WIDE_PAUSE);
        self.set(self.narrow);
        tracing::debug!(
            threads = self.narrow,
            "wide decoding came out slower than narrow: narrow for a while"
        );
    }

    /// The request in flight switched thread counts (its decode speed is a mixture).
    pub(super) fn fell_back(&self) -> bool {
        self.fell_back
    }

    /// The thread count decoding uses now.
    pub(super) fn current(&self) -> i32 {
        self.current
    }

    /// The model thread has been idle for [`IDLE_TICK`]: keep the window recent.
    pub(super) fn idle_tick(&mut self) {
        if self.load.window_age() >= IDLE_TICK {
            self.load.measure();
        }
    }

    /// Sets the count for one measurement (the speed probe), whatever the load.
    pub(super) fn force(&mut self, wide: bool) {
        self.chosen = if wide { self.wide } else { self.narrow };
        self.set(self.chosen);
    }

    fn set(&mut self, threads: i32) {
        if threads == self.current {
            return;
        }
        if let Some(raw) = self.raw {
            // SAFETY: `raw` is the live context of the `LlamaContext` this worker owns
            // (checked in `raw_context`), used from the model thread between decodes;
            // the call only stores the two counts in the context's parameters.
            #[allow(unsafe_code)]
            unsafe {
                llama_cpp_sys_2::llama_set_n_threads(raw.as_ptr(), threads, self.batch)
            };
            self.current = threads;
        }
    }
}

/// Whether a request may decode with every core: the cores other processes kept busy were
/// measured and below [`WIDE_BELOW_BUSY_CORES`], and no wide decode fell back lately.
fn wide_allowed(busy_cores: Option<f64>, paused: bool) -> bool {
    !paused && busy_cores.is_some_and(|b| b < WIDE_BELOW_BUSY_CORES)
}

/// The context pointer behind `ctx`, from its `Debug` output (`LlamaContext { context:
/// 0x… }`), kept only where llama.cpp read through it reports the context size, batch
/// sizes and thread counts the safe wrapper and the parameters say.
fn raw_context(
    ctx: &LlamaContext<'_>,
    threads: i32,
    threads_batch: i32,
) -> Option<NonNull<llama_context>> {
    let shown = format!("{ctx:?}");
    let hex = shown.split_once("context: 0x")?.1;
    let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
    let addr = usize::from_str_radix(&digits, 16).ok()?;
    let raw = NonNull::new(std::ptr::with_exposed_provenance_mut::<llama_context>(addr))?;
    // SAFETY: the address is the one llama-cpp-2 holds for this live context (its Debug
    // prints the `NonNull` it wraps); these calls only read the context's parameters.
    #[allow(unsafe_code)]
    let same = unsafe {
        llama_cpp_sys_2::llama_n_ctx(raw.as_ptr()) == ctx.n_ctx()
            && llama_cpp_sys_2::llama_n_batch(raw.as_ptr()) == ctx.n_batch()
            && llama_cpp_sys_2::llama_n_ubatch(raw.as_ptr()) == ctx.n_ubatch()
            && llama_cpp_sys_2::llama_n_threads(raw.as_ptr()) == threads
            && llama_cpp_sys_2::llama_n_threads_batch(raw.as_ptr()) == threads_batch
    };
    same.then_some(raw)
}

/// CPU time counters, in clock ticks (`/proc/stat` and `/proc/self/stat` count in the
/// same unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    /// All time, every core.
    total: u64,
    /// Idle and waiting for I/O.
    idle: u64,
    /// This process's user and system time (every thread).
    own: u64,
}

impl CpuTimes {
    /// The counters now, where the OS has `/proc`.
    fn now() -> Option<CpuTimes> {
        CpuTimes::parse(
            &std::fs::read_to_string("/proc/stat").ok()?,
            &std::fs::read_to_string("/proc/self/stat").ok()?,
        )
    }

    /// From `/proc/stat`'s first line (`cpu user nice system idle iowait irq softirq
    /// steal …`; guest time is already counted in user time) and `/proc/self/stat`
    /// (`pid (comm) state …`, user and system time the 14th and 15th fields).
    fn parse(stat: &str, own_stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().next()?;
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let n: Vec<u64> = fields
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        if n.len() < 5 {
            return None;
        }
        // The command name may hold spaces and parentheses: fields restart after the
        // last ')', at the 3rd.
        let after = own_stat.rsplit_once(')')?.1;
        let mut own = after.split_whitespace().skip(14 - 3);
        let utime: u64 = own.next()?.parse().ok()?;
        let stime: u64 = own.next()?.parse().ok()?;
        Some(CpuTimes {
            total: n.iter().sum(),
            idle: n[3] + n[4],
            own: utime + stime,
        })
    }

    /// Cores that processes other than this one kept busy on average from `earlier` to
    /// `self`, out of `cores`. This process's own threads are left out: right before a
    /// request they mostly prepared it (retrieval, tokenizing) and are done by the time
    /// it decodes; one that keeps working beside a wide decode slows it, and the decode
    /// falls back.
    fn others_busy_since(&self, earlier: &CpuTimes, cores: usize) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let idle = self.idle.checked_sub(earlier.idle)?;
        let own = self.own.checked_sub(earlier.own)?;
        if total == 0 {
            return None;
        }
        let others = total.saturating_sub(idle).saturating_sub(own);
        Some(others as f64 / total as f64 * cores as f64)
    }
}

/// Cores other processes kept busy, over the window since the last measurement (the
/// request before, or the last idle tick). This process's own work, the model's
/// included, is left out, so a window may span jobs.
struct BusyCores {
    start: Option<(Instant, CpuTimes)>,
    last: Option<f64>,
}

impl BusyCores {
    fn new() -> Self {
        BusyCores {
            start: CpuTimes::now().map(|t| (Instant::now(), t)),
            last: None,
        }
    }

    fn window_age(&self) -> Duration {
        self.start.map_or(Duration::ZERO, |(at, _)| at.elapsed())
    }

    /// Busy cores since the window started, and a new window from now; the last
    /// measurement when the window is too short to tell.
    fn measure(&mut self) -> Option<f64> {
        let Some(now) = CpuTimes::now() else {
            return self.last;
        };
        match self.start {
            Some((at, _)) if at.elapsed() < MIN_WINDOW => return self.last,
            Some((_, start)) => {
                if let Some(busy) = now.others_busy_since(&start, crate::speed::cores()) {
                    self.last = Some(busy);
                }
            }
            None => {}
        }
        self.start = Some((Instant::now(), now));
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::{wide_allowed, CpuTimes};

    #[test]
    fn every_core_decodes_only_when_the_others_were_measured_idle() {
        assert!(wide_allowed(Some(0.1), false));
        // Another process (or this one's indexer) on a core, no reading (not Linux), or
        // a wide decode that came out slower a moment ago: one core fewer.
        assert!(!wide_allowed(Some(0.9), false));
        assert!(!wide_allowed(None, false));
        assert!(!wide_allowed(Some(0.1), true));
    }

    #[test]
    fn busy_cores_of_other_processes_come_from_two_readings_of_proc() {
        let own = |ticks: u64| {
            format!(
                "4242 (cairn (lsp) x) S 1 4242 4242 0 -1 4194304 10 0 0 0 {} 5 0 0 20 0 9 0",
                ticks - 5
            )
        };
        let a =
            CpuTimes::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n", &own(30)).unwrap();
        assert_eq!(
            a,
            CpuTimes {
                total: 1000,
                idle: 850,
                own: 30
            }
        );
        // 200 ticks over 2 cores, 100 of them busy, 20 of those this process's: 0.8 of
        // a core for the others.
        let b = CpuTimes::parse("cpu  180 0 70 890 60 0 0 0 0 0\n", &own(50)).unwrap();
        assert_eq!(b.others_busy_since(&a, 2), Some(0.8));
        // Nothing passed, or counters that went backwards: no reading.
        assert_eq!(a.others_busy_since(&a, 2), None);
        assert_eq!(a.others_busy_since(&b, 2), None);
        assert_eq!(CpuTimes::parse("intr 1 2 3\n", &own(30)), None);
        assert_eq!(CpuTimes::parse("cpu  1 2\n", &own(30)), None);
        assert_eq!(
            CpuTimes::parse("cpu  1 2 3 4 5\n", "4242 (cairn) S 1"),
            None
        );
    }
}
