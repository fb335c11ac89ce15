//! Fitting a completion prompt to the token cap and the latency budget.

use super::*;

impl Worker<'_> {
    /// Builds the completion prompt and fits it to the token cap and, with a budget and
    /// a measured speed, to the latency budget (see [`crate::budget`]).
    pub(super) fn fit_completion(
        &mut self,
        req: &CompletionRequest,
        budget: Option<Duration>,
    ) -> Result<Fitted, ModelError> {
        let mut prompt = template::completion_prompt(&self.info.vocab, req);
        let n_ctx = self.ctx.n_ctx() as usize;
        let reserve = (req.max_tokens as usize).min(n_ctx / 2);
        let cap = self
            .max_prompt_tokens
            .min(n_ctx.saturating_sub(reserve + 1));
        self.pieces();
        let model = self.model;
        let vocab = model.vocab();
        let pieces = self.pieces.as_ref().expect("built above");
        let piece = |t: LlamaToken| -> &[u8] {
            usize::try_from(t.0)
                .ok()
                .and_then(|i| pieces.get(i))
                .map_or(&[][..], Vec::as_slice)
        };
        let newline_cut = |toks: &[LlamaToken], i: usize| {
            (i > 0 && piece(toks[i - 1]).ends_with(b"\n"))
                || (i < toks.len() && piece(toks[i]).starts_with(b"\n"))
        };

        // Tokens of every part; huge texts are tokenized from the cursor outwards only
        // as far as the cap can reach (then cut in tokens).
        let mut segments: Vec<budget::Segment<LlamaToken>> = Vec::new();
        // Per part: its segment and its token range in that segment.
        let mut part_at: Vec<(usize, std::ops::Range<usize>)> =
            Vec::with_capacity(prompt.parts.len());
        let mut whole = Vec::with_capacity(prompt.parts.len());
        let bos = vocab.should_add_bos() && vocab.bos().0 >= 0;
        if bos {
            segments.push(budget::Segment::new(
                budget::SegmentKind::Fixed,
                vec![vocab.bos()],
            ));
        }
        let mut prev_role = None;
        for (part, role) in prompt.parts.iter().zip(&prompt.roles) {
            let (kind, toks, complete) = match (part, role) {
                (PromptPart::Special(t), PartRole::Context(_)) => (
                    budget::SegmentKind::Context,
                    vocab.tokenize(t.as_bytes(), false, true),
                    true,
                ),
                (PromptPart::Special(t), _) => (
                    budget::SegmentKind::Fixed,
                    vocab.tokenize(t.as_bytes(), false, true),
                    true,
                ),
                (PromptPart::Text(t), PartRole::Prefix) => {
                    let (toks, complete) = tokenize_bounded(model, t, cap, true);
                    (budget::SegmentKind::Prefix, toks, complete)
                }
                (PromptPart::Text(t), PartRole::Suffix) => {
                    let (toks, complete) = tokenize_bounded(model, t, cap, false);
                    (budget::SegmentKind::Suffix, toks, complete)
                }
                (PromptPart::Text(t), PartRole::Context(_)) => {
                    let (toks, complete) = tokenize_bounded(model, t, cap, false);
                    (budget::SegmentKind::Context, toks, complete)
                }
                (PromptPart::Text(t), PartRole::Fixed | PartRole::Middle) => (
                    budget::SegmentKind::Fixed,
                    vocab.tokenize(t.as_bytes(), false, false),
                    true,
                ),
            };
            whole.push(complete);
            // A context file's parts form one segment; everything else is its own.
            let merge = matches!(role, PartRole::Context(_)) && prev_role == Some(*role);
            prev_role = Some(*role);
            if merge {
                let si = segments.len() - 1;
                let last = &mut segments[si];
                let at = last.tokens.len();
                last.tokens.extend(toks);
                part_at.push((si, at..last.tokens.len()));
            } else {
                let n = toks.len();
                segments.push(budget::Segment::new(kind, toks));
                part_at.push((segments.len() - 1, 0..n));
            }
        }
        for seg in &mut segments {
            let toks = &seg.tokens;
            match seg.kind {
                budget::SegmentKind::Prefix | budget::SegmentKind::Suffix => {
                    seg.cuts = (1..toks.len()).filter(|&i| newline_cut(toks, i)).collect();
                }
                _ => {}
            }
        }
        let speed = self.current_speed();
        // With a budget, generation is first given half of it (at least a line's worth):
        // the prompt is fitted to the rest. What the prompt then costs less (the KV
        // cache holds it) goes back to generation below.
        let reserve = match (budget, speed) {
            (Some(b), Some(s)) => budget::generation_reserve(b, s, req.max_tokens),
            _ => req.max_tokens,
        };
        let allowed_new = match (budget, speed) {
            (Some(b), Some(s)) => {
                let decode = reserve as f64 / s.decode_tokens_per_s.max(1e-3);
                let left = (b.as_secs_f64() - decode).max(0.0);
                Some((left * budget::planned_prompt_speed(&s)) as usize)
            }
            _ => None,
        };
        // The prefix floor: the request's bytes (its enclosing definition) in tokens,
        // never less than the cursor's line or so, never more than half the hard cap.
        let floor_tokens = segments
            .iter()
            .find(|s| s.kind == budget::SegmentKind::Prefix)
            .map_or(0, |s| {
                tokens_covering(s.tokens.iter().rev(), req.keep_prefix_bytes, piece)
            });
        let suffix_floor = segments
            .iter()
            .find(|s| s.kind == budget::SegmentKind::Suffix)
            .map_or(0, |s| {
                tokens_covering(s.tokens.iter(), req.keep_suffix_bytes, piece)
            });
        let limits = budget::Limits {
            cap,
            allowed_new,
            min_prefix: floor_tokens.max(MIN_PREFIX_TOKENS).min(cap / 2),
            min_suffix: suffix_floor.min(cap / 4),
        };
        let cached: &[LlamaToken] = if self.reuse_prefix { &self.cached } else { &[] };
        // A keystroke while typing at an anchor: its typed tokens and a little growth.
        let typed: usize = part_at
            .iter()
            .zip(&prompt.roles)
            .filter(|(_, r)| **r == PartRole::Middle)
            .map(|((_, r), _)| r.len())
            .sum();
        let plan = budget::plan_typing(
            &segments,
            cached,
            &limits,
            typed,
            budget::TYPING_GROWTH_TOKENS,
        );
        let tokens = plan.tokens(&segments);
        let max_tokens = match (budget, speed) {
            (Some(b), Some(s)) => {
                let prompt_s = plan.new_tokens() as f64 / budget::planned_prompt_speed(&s);
                let left = (b.as_secs_f64() - prompt_s).max(0.0);
                let affordable = (left * s.decode_tokens_per_s) as u32;
                affordable.clamp(reserve, req.max_tokens.max(reserve))
            }
            _ => req.max_tokens,
        };

        // What was kept and cut, for the record; the prompt's parts follow the plan so
        // that its digest is that of what the model saw.
        let mut report = PromptBudget {
            budget_ms: budget.map(|b| b.as_millis() as u64),
            cap_tokens: cap as u32,
            allowed_new_tokens: allowed_new.map(|a| a as u32),
            cached_tokens: plan.cached as u32,
            new_tokens: plan.new_tokens() as u32,
            estimated_ms: speed
                .map(|s| s.estimate(plan.new_tokens() as u32, max_tokens).as_millis() as u64),
            over_budget: plan.over_budget,
            max_tokens,
            ..Default::default()
        };
        for (seg, keep) in segments.iter().zip(&plan.keep) {
            let (kept, cut) = (keep.len() as u32, (seg.tokens.len() - keep.len()) as u32);
            match seg.kind {
                budget::SegmentKind::Context => {
                    if keep.is_empty() {
                        report.context_files_dropped += 1;
                        report.context_tokens_dropped += cut;
                    } else {
                        report.context_files_kept += 1;
                        report.context_tokens_kept += kept;
                    }
                }
                budget::SegmentKind::Prefix => {
                    report.prefix_tokens_kept += kept;
                    report.prefix_tokens_cut += cut;
                }
                budget::SegmentKind::Suffix => {
                    report.suffix_tokens_kept += kept;
                    report.suffix_tokens_cut += cut;
                }
                budget::SegmentKind::Fixed => {}
            }
        }
        // The parts as the plan left them: dropped ones go, cut ones are the text of
        // their kept tokens.
        let mut parts = Vec::new();
        let mut roles = Vec::new();
        for (pi, (part, role)) in prompt.parts.iter().zip(&prompt.roles).enumerate() {
            let (si, r) = &part_at[pi];
            let keep = &plan.keep[*si];
            let kept = r.start.max(keep.start)..r.end.min(keep.end);
            if kept.start >= kept.end && !r.is_empty() {
                continue;
            }
            let part = if kept == *r && whole[pi] {
                part.clone()
            } else {
                let mut bytes = Vec::new();
                for &t in &segments[*si].tokens[kept] {
                    bytes.extend_from_slice(piece(t));
                }
                PromptPart::Text(String::from_utf8_lossy(&bytes).into_owned())
            };
            parts.push(part);
            roles.push(*role);
        }
        report.middle_tokens = typed as u32;
        prompt.parts = parts;
        prompt.roles = roles;
        prompt.info.prompt_sha256 = template::sha256_hex(prompt.text().as_bytes());
        prompt.info.budget = Some(report);
        Ok(Fitted {
            prompt,
            tokens,
            max_tokens,
        })
    }
}

/// How many of `tokens` (in the order given: from the cursor outwards) it takes to
/// cover `bytes` bytes of their text.
fn tokens_covering<'a, 'p, T: Copy + 'a>(
    tokens: impl Iterator<Item = &'a T>,
    bytes: usize,
    piece: impl Fn(T) -> &'p [u8],
) -> usize {
    let mut covered = 0;
    let mut n = 0;
    for &t in tokens {
        if covered >= bytes {
            break;
        }
        covered += piece(t).len();
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::tokens_covering;

    #[test]
    fn the_floor_counts_tokens_from_the_cursor_back() {
        let pieces: [&[u8]; 4] = [b"def f", b"(x):\n", b"    return", b" x"];
        let piece = |i: usize| pieces[i];
        let toks = [0, 1, 2, 3];
        assert_eq!(tokens_covering(toks.iter().rev(), 0, piece), 0);
        assert_eq!(tokens_covering(toks.iter().rev(), 2, piece), 1);
        assert_eq!(tokens_covering(toks.iter().rev(), 3, piece), 2);
        assert_eq!(tokens_covering(toks.iter().rev(), 1000, piece), 4);
        // A suffix counts from its start.
        assert_eq!(tokens_covering(toks.iter(), 6, piece), 2);
    }
}
