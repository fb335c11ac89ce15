//! Fitting a completion prompt to its budget, in tokens.
//!
//! A prompt is a sequence of segments: fixed parts (control tokens, the repository
//! name, the current file's header), context files, the prefix and the suffix. Two
//! limits apply: a hard cap on the prompt's length, and (with a latency budget) a cap on
//! the tokens *not already in the KV cache* — those are what cost time. To fit:
//!
//! 1. context files are dropped, last first, except that a file the KV cache already
//!    holds is kept (it costs nothing) unless the hard cap needs the room;
//! 2. the suffix is cut from its end to about a quarter of the room left, then the
//!    prefix from its start to what still fits (the longest prefix that fits wins, and a
//!    prefix start the cache holds is the cheap one), then the suffix grows back into
//!    what the prefix left unused. Cuts fall on line boundaries where there are any.
//!
//! A keystroke while typing at one place (the prompt ends in the typed text, after the
//! FIM middle token) spends its typed tokens and at most [`TYPING_GROWTH_TOKENS`] more
//! ([`plan_typing`]): the budget bounds a cold request, not every keystroke.
//!
//! The prefix always keeps at least `min_prefix` tokens and the suffix about `min_suffix`
//! (the front end asks for the enclosing definition: its signature before the cursor,
//! its rest after it): a prompt that still does not fit is marked over budget rather
//! than emptied. Pure code over token ids, so it is tested without a model.

use std::ops::Range;
use std::time::Duration;

use crate::types::Speed;

/// About a line of code: a budget never caps generation below it (a cut line is not worth
/// showing).
pub const MIN_GENERATION_TOKENS: u32 = 16;

/// The share of the followed prompt speed a plan counts on. One request's prompt
/// evaluation runs up to ~20 % either side of the followed speed on a 2-core machine
/// (HumanEval cold: 118–188 tokens/s), and a cold prompt is most of a cold request's time:
/// planned at the followed speed itself, the first completion in a file landed 13 % over
/// its plan in one editor session of five, and over 2 s in two. A warm request (a few new
/// tokens) loses a token or so of generation to it.
pub const PROMPT_SPEED_SHARE: f64 = 0.85;

/// The prompt speed a plan counts on: [`PROMPT_SPEED_SHARE`] of the followed one.
pub fn planned_prompt_speed(speed: &Speed) -> f64 {
    (speed.prompt_tokens_per_s * PROMPT_SPEED_SHARE).max(1e-3)
}

/// The tokens a budget keeps for generation before the prompt is fitted: half of it at
/// the measured decode speed, at least [`MIN_GENERATION_TOKENS`], at most `asked`.
pub fn generation_reserve(budget: Duration, speed: Speed, asked: u32) -> u32 {
    let half = (speed.decode_tokens_per_s * budget.as_secs_f64() / 2.0).floor() as u32;
    asked.min(half.max(MIN_GENERATION_TOKENS))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Always kept whole.
    Fixed,
    /// One context file: kept whole or dropped.
    Context,
    /// Text before the cursor: cut from its start.
    Prefix,
    /// Text after the cursor: cut from its end.
    Suffix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<T> {
    pub kind: SegmentKind,
    pub tokens: Vec<T>,
    /// Preferred cut positions (line boundaries), ascending. For a prefix, positions it
    /// may start at; for a suffix, positions it may end at. 0 and `tokens.len()` are
    /// always allowed.
    pub cuts: Vec<usize>,
}

impl<T> Segment<T> {
    pub fn new(kind: SegmentKind, tokens: Vec<T>) -> Self {
        Segment {
            kind,
            tokens,
            cuts: Vec::new(),
        }
    }

    pub fn with_cuts(mut self, cuts: Vec<usize>) -> Self {
        self.cuts = cuts;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The prompt never gets longer than this.
    pub cap: usize,
    /// At most this many tokens not already in the KV cache (`None`: no latency budget).
    pub allowed_new: Option<usize>,
    /// The prefix keeps at least this many tokens (fewer if it has fewer).
    pub min_prefix: usize,
    /// The suffix keeps about this many tokens (to a line end) before the prefix is cut.
    pub min_suffix: usize,
}

/// What is kept of each segment (a token range; empty when dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub keep: Vec<Range<usize>>,
    /// Tokens of the fitted prompt.
    pub total: usize,
    /// Of those, the ones at its start that the KV cache holds.
    pub cached: usize,
    pub over_budget: bool,
}

impl Plan {
    pub fn new_tokens(&self) -> usize {
        self.total - self.cached
    }

    /// The fitted prompt's tokens.
    pub fn tokens<T: Copy>(&self, segments: &[Segment<T>]) -> Vec<T> {
        let mut out = Vec::with_capacity(self.total);
        for (s, r) in segments.iter().zip(&self.keep) {
            out.extend_from_slice(&s.tokens[r.clone()]);
        }
        out
    }
}

/// Length and cached length of the prompt made of `keep`.
fn measure<T: PartialEq>(
    segments: &[Segment<T>],
    keep: &[Range<usize>],
    cached: &[T],
) -> (usize, usize) {
    let mut total = 0;
    let mut common = 0;
    let mut matching = true;
    for (s, r) in segments.iter().zip(keep) {
        let toks = &s.tokens[r.clone()];
        if matching {
            let m = toks
                .iter()
                .zip(cached.get(total..).unwrap_or(&[]))
                .take_while(|(a, b)| a == b)
                .count();
            common += m;
            matching = m == toks.len();
        }
        total += toks.len();
    }
    (total, common)
}

pub fn plan<T: PartialEq>(segments: &[Segment<T>], cached: &[T], limits: &Limits) -> Plan {
    let mut keep: Vec<Range<usize>> = segments.iter().map(|s| 0..s.tokens.len()).collect();
    let fits = |total: usize, common: usize| {
        total <= limits.cap && limits.allowed_new.is_none_or(|a| total - common <= a)
    };
    let done = |keep: Vec<Range<usize>>, over: bool| {
        let (total, cached_n) = measure(segments, &keep, cached);
        Plan {
            keep,
            total,
            cached: cached_n,
            over_budget: over,
        }
    };
    let (total, common) = measure(segments, &keep, cached);
    if fits(total, common) {
        return done(keep, false);
    }

    // 1. Context files, last first; cached ones stay unless the cap needs the room.
    let contexts: Vec<usize> = (0..segments.len())
        .filter(|&i| segments[i].kind == SegmentKind::Context)
        .collect();
    for pass_cap_only in [false, true] {
        for &i in contexts.iter().rev() {
            let (total, common) = measure(segments, &keep, cached);
            if fits(total, common) {
                break;
            }
            if keep[i].is_empty() {
                continue;
            }
            let start: usize = (0..i).map(|j| keep[j].len()).sum();
            let end = start + keep[i].len();
            let in_cache = end <= common;
            if in_cache && !(pass_cap_only && total > limits.cap) {
                continue;
            }
            keep[i] = 0..0;
        }
    }
    let (total, common) = measure(segments, &keep, cached);
    if fits(total, common) {
        return done(keep, false);
    }

    // 2. Suffix then prefix.
    let prefix = segments.iter().position(|s| s.kind == SegmentKind::Prefix);
    let suffix = segments.iter().position(|s| s.kind == SegmentKind::Suffix);
    let prefix_cuts = |i: usize| -> Vec<usize> {
        let s = &segments[i];
        let mut c: Vec<usize> = std::iter::once(0)
            .chain(s.cuts.iter().copied())
            .filter(|&c| c <= s.tokens.len())
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let suffix_ends = |i: usize| -> Vec<usize> {
        let s = &segments[i];
        let mut c: Vec<usize> = std::iter::once(s.tokens.len())
            .chain(s.cuts.iter().copied())
            .filter(|&c| c <= s.tokens.len())
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    // The room for prefix and suffix together.
    let room = {
        let mut k = keep.clone();
        for i in [prefix, suffix].into_iter().flatten() {
            k[i] = 0..0;
        }
        let (t, c) = measure(segments, &k, cached);
        let by_cap = limits.cap.saturating_sub(t);
        match limits.allowed_new {
            Some(a) => by_cap.min(a.saturating_sub(t - c)),
            None => by_cap,
        }
    };
    // Largest suffix end not over `n` tokens: a line end if one fits, else exactly `n`.
    let suffix_to = |i: usize, n: usize| -> usize {
        let len = segments[i].tokens.len();
        if n >= len {
            return len;
        }
        suffix_ends(i)
            .into_iter()
            .filter(|&e| e <= n)
            .max()
            .filter(|&e| e > 0 || n == 0)
            .unwrap_or(n)
    };
    if let Some(si) = suffix {
        keep[si] = 0..suffix_to(si, (room / 4).max(limits.min_suffix));
    }
    if let Some(pi) = prefix {
        let len = segments[pi].tokens.len();
        // Never fewer than `min_prefix` tokens: the cursor's line matters most.
        let floor = len.saturating_sub(limits.min_prefix);
        let starts: Vec<usize> = prefix_cuts(pi)
            .into_iter()
            .filter(|&c| c <= floor)
            .collect();
        let mut chosen = None;
        for &start in &starts {
            keep[pi] = start..len;
            let (t, c) = measure(segments, &keep, cached);
            if fits(t, c) {
                chosen = Some(start);
                break;
            }
        }
        let start = match chosen {
            Some(s) => s,
            None => {
                // No line start fits: the smallest exact start that does (the cost
                // falls as the start moves right), else the floor.
                let fits_at = |start: usize, keep: &mut Vec<Range<usize>>| {
                    keep[pi] = start..len;
                    let (t, c) = measure(segments, keep, cached);
                    fits(t, c)
                };
                if fits_at(floor, &mut keep) {
                    let (mut lo, mut hi) = (0, floor);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if fits_at(mid, &mut keep) {
                            hi = mid;
                        } else {
                            lo = mid + 1;
                        }
                    }
                    lo
                } else {
                    // The latest line start that still keeps `min_prefix` tokens.
                    starts
                        .iter()
                        .copied()
                        .max()
                        .filter(|&c| c > 0 || floor == 0)
                        .unwrap_or(floor)
                }
            }
        };
        keep[pi] = start..len;
    }
    // 3. Let the suffix use what the prefix left.
    if let Some(si) = suffix {
        let ends = suffix_ends(si);
        let mut best = keep[si].end;
        let from = best;
        for e in ends.into_iter().filter(|&e| e > from) {
            let mut k = keep.clone();
            k[si] = 0..e;
            let (t, c) = measure(segments, &k, cached);
            if fits(t, c) {
                best = e;
            } else {
                break;
            }
        }
        keep[si] = 0..best;
    }
    let (t, c) = measure(segments, &keep, cached);
    done(keep, !fits(t, c))
}

/// New prompt tokens a keystroke in a typing run may spend growing the suffix, beyond
/// its typed text (see [`plan_typing`]).
pub const TYPING_GROWTH_TOKENS: usize = 32;

/// The plan for a keystroke while the person types at one place: the prompt splits where
/// the typing started and ends in `typed` tokens after the FIM middle token, and the KV
/// cache holds the rest from the keystrokes before. [`plan`] would spend the whole
/// budget's worth of new tokens on every keystroke (growing the suffix the first cold
/// request cut), so each one would take about the budget. Here a keystroke spends its
/// typed tokens and at most `growth` more, so the suffix grows back a little per
/// keystroke; used only where the cache holds everything before the suffix (the
/// keystrokes before evaluated it), else [`plan`]'s.
pub fn plan_typing<T: PartialEq>(
    segments: &[Segment<T>],
    cached: &[T],
    limits: &Limits,
    typed: usize,
    growth: usize,
) -> Plan {
    let plain = plan(segments, cached, limits);
    // The middle token and the typed text are evaluated again after a grown suffix.
    let tight = typed + 1 + growth;
    if typed == 0 || limits.allowed_new.is_none_or(|a| a <= tight) {
        return plain;
    }
    let typing = plan(
        segments,
        cached,
        &Limits {
            allowed_new: Some(tight),
            ..*limits
        },
    );
    // Only where the cache holds the head (everything before the suffix) of the typing
    // plan: cold, it would cut the prefix to fit; warm, it keeps the head the cache has
    // even where the plain plan would evaluate the whole prompt again for a few more
    // tokens of prefix.
    let head: usize = segments
        .iter()
        .zip(&typing.keep)
        .take_while(|(s, _)| s.kind != SegmentKind::Suffix)
        .map(|(_, k)| k.len())
        .sum();
    if typing.cached < head || typing.over_budget {
        return plain;
    }
    // Growth stops at the first line end that does not fit: a line longer than the growth
    // would stop the suffix for good. Grow into it by tokens; the next keystroke goes on
    // from there (what this one adds, the cache holds then).
    let mut typing = typing;
    if let Some(si) = segments.iter().position(|s| s.kind == SegmentKind::Suffix) {
        let mut keep = typing.keep.clone();
        while keep[si].end < plain.keep[si].end {
            keep[si].end += 1;
            let (total, common) = measure(segments, &keep, cached);
            if total - common > tight || total > limits.cap {
                keep[si].end -= 1;
                break;
            }
        }
        let (total, common) = measure(segments, &keep, cached);
        typing = Plan {
            keep,
            total,
            cached: common,
            over_budget: false,
        };
    }
    typing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(kind: SegmentKind, range: Range<u32>) -> Segment<u32> {
        Segment::new(kind, range.collect())
    }

    fn lines(mut s: Segment<u32>, every: usize) -> Segment<u32> {
        s.cuts = (0..=s.tokens.len()).step_by(every).collect();
        s
    }

    fn prompt() -> Vec<Segment<u32>> {
        vec![
            seg(SegmentKind::Fixed, 0..2),
            seg(SegmentKind::Context, 100..140),
            seg(SegmentKind::Context, 200..240),
            seg(SegmentKind::Fixed, 2..4),
            lines(seg(SegmentKind::Prefix, 1000..1100), 10),
            seg(SegmentKind::Fixed, 4..5),
            lines(seg(SegmentKind::Suffix, 2000..2040), 10),
            seg(SegmentKind::Fixed, 5..6),
        ]
    }

    fn limits(cap: usize, allowed: Option<usize>) -> Limits {
        Limits {
            cap,
            allowed_new: allowed,
            min_prefix: 16,
            min_suffix: 0,
        }
    }

    #[test]
    fn a_prompt_that_fits_is_kept_whole() {
        let p = prompt();
        let plan = plan(&p, &[], &limits(1000, Some(1000)));
        assert_eq!(plan.total, 6 + 80 + 100 + 40);
        assert!(!plan.over_budget);
        assert!(plan
            .keep
            .iter()
            .zip(&p)
            .all(|(k, s)| k.len() == s.tokens.len()));
    }

    #[test]
    fn context_goes_last_first_then_prefix_and_suffix_are_cut_on_lines() {
        let p = prompt();
        // Room for one context file: 226 - 40 = 186.
        let plan1 = plan(&p, &[], &limits(1000, Some(186)));
        assert_eq!(plan1.keep[1], 0..40);
        assert!(plan1.keep[2].is_empty(), "the last context file goes first");
        assert_eq!(plan1.keep[4], 0..100);
        // Room for no context and 60 tokens of prefix + suffix.
        let plan2 = plan(&p, &[], &limits(1000, Some(66)));
        assert!(plan2.keep[1].is_empty() && plan2.keep[2].is_empty());
        let (pre, suf) = (&plan2.keep[4], &plan2.keep[6]);
        assert_eq!(pre.end, 100, "the prefix keeps its end (the cursor)");
        assert_eq!(pre.start % 10, 0, "cut at a line start");
        assert_eq!(suf.start, 0, "the suffix keeps its start");
        assert_eq!(suf.end % 10, 0, "cut at a line end");
        assert!(pre.len() > suf.len());
        assert!(plan2.total <= 66 && !plan2.over_budget, "{plan2:?}");
        assert_eq!(pre.len() + suf.len(), 60);
    }

    #[test]
    fn what_the_cache_holds_is_kept_beyond_the_budget() {
        let p = prompt();
        // The cache holds the fixed head and both context files (a prefill did it).
        let cached: Vec<u32> = (0..2).chain(100..140).chain(200..240).collect();
        let plan = plan(&p, &cached, &limits(1000, Some(60)));
        assert_eq!(plan.keep[1], 0..40);
        assert_eq!(plan.keep[2], 0..40);
        assert_eq!(plan.cached, 82);
        assert!(plan.new_tokens() <= 60, "{plan:?}");
        // The hard cap still wins over the cache.
        let plan = plan_cap(&p, &cached);
        assert!(plan.total <= 120, "{plan:?}");
        assert!(plan.keep[2].is_empty());
    }

    fn plan_cap(p: &[Segment<u32>], cached: &[u32]) -> Plan {
        plan(p, cached, &limits(120, Some(60)))
    }

    #[test]
    fn a_cached_prefix_start_is_reused_while_typing() {
        // Cold: the prefix was cut to fit; the cache then holds that prompt.
        let p = prompt();
        let cold = plan(&p, &[], &limits(1000, Some(50)));
        let cached = cold.tokens(&p);
        // One more token typed at the end of the prefix.
        let mut typed = p.clone();
        typed[4].tokens.push(1100);
        let warm = plan(&typed, &cached, &limits(1000, Some(50)));
        assert_eq!(
            warm.keep[4].start, cold.keep[4].start,
            "same cut: the cache is reused"
        );
        assert!(warm.cached >= 6 + cold.keep[4].len() - 1 - 2, "{warm:?}");
    }

    #[test]
    fn a_keystroke_at_an_anchor_spends_its_typed_tokens_and_a_little_growth() {
        let p = prompt();
        let cold = plan(&p, &[], &limits(1000, Some(50)));
        let cached = cold.tokens(&p);
        // Three tokens typed since, after the middle token.
        let mut typing = p.clone();
        typing.push(seg(SegmentKind::Fixed, 3000..3003));
        let all = plan(&typing, &cached, &limits(1000, Some(50)));
        assert!(
            all.new_tokens() > 30,
            "the plain plan grows the suffix: {all:?}"
        );
        let warm = plan_typing(&typing, &cached, &limits(1000, Some(50)), 3, 8);
        assert!(warm.new_tokens() <= 3 + 1 + 8, "{warm:?}");
        assert_eq!(warm.keep[4], cold.keep[4], "the prefix the cache holds");
        assert!(warm.keep[6].end >= cold.keep[6].end && warm.keep[6].end < all.keep[6].end);
        assert!(!warm.over_budget);
        // A budget that would now take a longer prefix (evaluating the whole prompt again)
        // keeps the prefix the cache holds.
        let wide = plan(&typing, &cached, &limits(1000, Some(200)));
        assert!(wide.keep[4].len() > cold.keep[4].len(), "{wide:?}");
        let warm = plan_typing(&typing, &cached, &limits(1000, Some(200)), 3, 8);
        assert_eq!(warm.keep[4], cold.keep[4]);
        assert!(warm.new_tokens() <= 3 + 1 + 8, "{warm:?}");
        // Lines longer than the growth (one line of 40 tokens): it grows into the line.
        let mut long = typing.clone();
        long[6].cuts.clear();
        let cold_long = plan(&long[..8], &[], &limits(1000, Some(50)));
        let cached_long = cold_long.tokens(&long[..8]);
        let warm = plan_typing(&long, &cached_long, &limits(1000, Some(50)), 3, 8);
        assert!(
            warm.keep[6].end > cold_long.keep[6].end,
            "{cold_long:?} {warm:?}"
        );
        assert!(warm.new_tokens() <= 3 + 1 + 8, "{warm:?}");
        // Cold (nothing cached), the typing plan would cut the prefix: the plain plan.
        assert_eq!(
            plan_typing(&typing, &[], &limits(1000, Some(50)), 3, 8),
            plan(&typing, &[], &limits(1000, Some(50)))
        );
        // Nothing typed, or no budget: the plain plan.
        assert_eq!(
            plan_typing(&typing, &cached, &limits(1000, Some(50)), 0, 8),
            all
        );
        let free = limits(1000, None);
        assert_eq!(
            plan_typing(&typing, &cached, &free, 3, 8),
            plan(&typing, &cached, &free)
        );
    }

    #[test]
    fn a_prefix_without_line_breaks_is_cut_at_the_exact_token() {
        let p = vec![seg(SegmentKind::Prefix, 0..5000)];
        let plan = plan(&p, &[], &limits(1000, None));
        assert_eq!(plan.keep[0], 4000..5000);
        assert!(!plan.over_budget);
    }

    #[test]
    fn the_hard_cap_applies_without_a_budget_and_the_prefix_keeps_a_floor() {
        let p = vec![
            lines(seg(SegmentKind::Prefix, 0..5000), 50),
            seg(SegmentKind::Suffix, 9000..9100),
        ];
        let capped = plan(&p, &[], &limits(1024, None));
        assert!(capped.total <= 1024, "{capped:?}");
        assert!(capped.keep[0].len() >= 700, "{capped:?}");
        let tight = plan(&p, &[], &limits(1024, Some(3)));
        assert!(tight.over_budget);
        assert!(
            tight.keep[0].len() >= 16 && tight.keep[0].len() < 100,
            "{tight:?}"
        );
        assert_eq!(tight.keep[0].end, 5000);
    }
}
