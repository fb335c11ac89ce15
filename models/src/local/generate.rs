//! Generation: the prompt evaluated (the cached prefix reused), tokens sampled until a stop
//! condition, drafts verified in one batch.

use super::*;

impl Worker<'_> {
    /// Evaluates the prompt (reusing the cached prefix) and samples until a stop condition.
    pub(super) fn generate(
        &mut self,
        tokens: &[LlamaToken],
        limits: &Limits<'_>,
        sink: &TokenSink,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<(String, StopReason, Usage), ModelError> {
        let n_ctx = self.ctx.n_ctx() as usize;
        let mut usage = Usage {
            prompt_tokens: tokens.len() as u32,
            ..Default::default()
        };

        // Reuse the longest common prefix; at least the last prompt token is evaluated
        // again so that its logits are fresh.
        let mut common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        common = common.min(tokens.len() - 1);
        if !self.reuse_prefix {
            common = 0;
        }
        if self
            .ctx
            .kv_cache_seq_rm(0, Some(common as u32), None)
            .is_err()
        {
            self.reset();
            common = 0;
        }
        self.cached.truncate(common);
        usage.reused_prompt_tokens = common as u32;

        let mut batch = LlamaBatch::new(self.n_batch.max(1), 1);
        let rest = &tokens[common..];
        for (ci, chunk) in rest.chunks(self.n_batch.max(1)).enumerate() {
            if self.stopped(cancel) {
                return Ok((String::new(), StopReason::Cancelled, usage));
            }
            batch.clear();
            let last_chunk = (ci + 1) * self.n_batch.max(1) >= rest.len();
            for (i, &t) in chunk.iter().enumerate() {
                let pos = (self.cached.len() + i) as i32;
                let logits = last_chunk && i + 1 == chunk.len();
                batch
                    .add(t, pos, &[0], logits)
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            if let Err(e) = self.ctx.decode(&mut batch) {
                self.reset();
                return Err(ModelError::Runtime(format!(
                    "prompt evaluation failed: {e}"
                )));
            }
            self.cached.extend_from_slice(chunk);
        }
        usage.prompt_time = started.elapsed();
        let narrow_token = self.narrow_token_time();
        self.decode.apply(narrow_token);

        let mut sampler = build_sampler(limits.sampling);
        let mut matcher = StopMatcher::new(&limits.stop);
        let mut decoder = encoding_rs::UTF_8.new_decoder();
        let mut piece_bytes = Vec::with_capacity(32);
        let mut piece = String::new();
        let vocab = self.model.vocab();
        // Prompt-lookup decoding (greedy only): tokens already known to be the greedy
        // continuation, each with whether its keys and values are in the cache already.
        let lookup = limits.sampling.is_greedy() && self.lookup_draft > 0;
        let max_draft = if lookup {
            self.lookup_draft
        } else if limits.speculative {
            self.draft_tokens * 2
        } else {
            0
        };
        let mut known: VecDeque<(LlamaToken, bool)> = VecDeque::new();
        let mut draft_len = if lookup {
            self.lookup_draft.min(4)
        } else {
            self.draft_tokens
        };
        let stop_reason = loop {
            if self.stopped(cancel) {
                break StopReason::Cancelled;
            }
            if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                break StopReason::Deadline;
            }
            if usage.generated_tokens >= limits.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.cached.len() >= n_ctx {
                break StopReason::ContextFull;
            }
            let (token, evaluated) = match (known.pop_front(), &limits.heal) {
                (Some(k), _) => k,
                (None, Some(heal)) if usage.generated_tokens == 0 => {
                    let pieces = self.pieces.as_ref().expect("built by heal()");
                    let mut cands = self.ctx.token_data_array();
                    for c in cands.data.iter_mut() {
                        let ok = usize::try_from(c.id().0)
                            .ok()
                            .and_then(|i| pieces.get(i))
                            .is_some_and(|p| p.starts_with(heal));
                        if !ok {
                            c.set_logit(f32::NEG_INFINITY);
                        }
                    }
                    cands.apply_sampler(&mut sampler);
                    match cands.selected_token() {
                        Some(t) => (t, false),
                        None => break StopReason::EndOfGeneration,
                    }
                }
                (None, _) => (sampler.sample(&self.ctx, -1), false),
            };
            // A control token never belongs in the text: end of text, FIM padding, a new
            // file or repository, end of turn (Qwen2.5-Coder marks all of them).
            if vocab.is_eog(token) || vocab.is_control(token) {
                break StopReason::EndOfGeneration;
            }
            usage.generated_tokens += 1;
            if usage.time_to_first_token.is_none() {
                usage.time_to_first_token = Some(started.elapsed());
            }
            piece_bytes.clear();
            vocab.token_to_piece_into(token, &mut piece_bytes, false, None);
            if let (Some(heal), 1) = (&limits.heal, usage.generated_tokens) {
                // The healed text is already in the document.
                piece_bytes.drain(..heal.len().min(piece_bytes.len()));
            }
            piece.clear();
            piece.reserve(
                decoder
                    .max_utf8_buffer_length(piece_bytes.len())
                    .unwrap_or(64),
            );
            let _ = decoder.decode_to_string(&piece_bytes, &mut piece, false);
            let out = matcher.push(&piece);
            if !out.is_empty() {
                emit(sink, StreamEvent::Text(out));
            }
            if let Some(stop) = matcher.stopped() {
                break StopReason::StopString(stop.to_string());
            }
            if matcher.repeated() {
                break StopReason::Repetition;
            }
            if evaluated {
                continue;
            }
            // Evaluate the token, and with it a draft of what may follow it.
            let room = (limits.max_tokens - usage.generated_tokens) as usize;
            let room = room.min(n_ctx.saturating_sub(self.cached.len() + 1));
            let draft = if lookup {
                lookup_draft(&self.cached, token, draft_len.min(room))
            } else if let (true, Some(d)) = (limits.speculative, self.draft.as_mut()) {
                d.propose(&self.cached, token, draft_len.min(room))?
            } else {
                Vec::new()
            };
            let p0 = self.cached.len();
            batch.clear();
            for (i, &t) in std::iter::once(&token).chain(&draft).enumerate() {
                batch
                    .add(t, (p0 + i) as i32, &[0], true)
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            let decoding = Instant::now();
            if let Err(e) = self.ctx.decode(&mut batch) {
                self.reset();
                return Err(ModelError::Runtime(format!("decode failed: {e}")));
            }
            self.cached.push(token);
            if draft.is_empty() {
                self.decode.token_took(decoding.elapsed());
                continue;
            }
            // Keep the draft as far as it is what greedy decoding picks; the first
            // mismatch position's choice is the next token.
            let mut accepted = 0;
            let next = loop {
                let best = sampler.sample(&self.ctx, accepted as i32);
                if accepted < draft.len() && best == draft[accepted] {
                    accepted += 1;
                } else {
                    break best;
                }
            };
            if accepted < draft.len()
                && self
                    .ctx
                    .kv_cache_seq_rm(0, Some((p0 + 1 + accepted) as u32), None)
                    .is_err()
            {
                self.reset();
                return Err(ModelError::Runtime(
                    "cannot drop rejected draft tokens from the KV cache".into(),
                ));
            }
            self.cached.extend_from_slice(&draft[..accepted]);
            known.extend(draft[..accepted].iter().map(|&t| (t, true)));
            known.push_back((next, false));
            usage.drafted_tokens += draft.len() as u32;
            usage.accepted_draft_tokens += accepted as u32;
            draft_len = if accepted == draft.len() {
                (draft_len * 2).min(max_draft)
            } else {
                (accepted + 1).clamp(1, max_draft.max(1))
            };
        };
        usage.decode_threads = self.decode.current() as u32;
        let tail = matcher.finish();
        if !tail.is_empty() {
            emit(sink, StreamEvent::Text(tail));
        }
        Ok((matcher.text().to_string(), stop_reason, usage))
    }
}

/// Prompt lookup: the tokens that followed the latest earlier occurrence of the last
/// few tokens (`history` then `last`), longest match first (5 tokens down to 3), at most
/// `max` of them.
pub(super) fn lookup_draft(
    history: &[LlamaToken],
    last: LlamaToken,
    max: usize,
) -> Vec<LlamaToken> {
    if max == 0 {
        return Vec::new();
    }
    for n in (3..=5usize).rev() {
        if history.len() < n {
            continue;
        }
        let head = &history[history.len() + 1 - n..];
        // A match at j covers history[j..j + n]; something must follow it in history.
        let found = (0..history.len() - n)
            .rev()
            .find(|&j| history[j + n - 1] == last && history[j..j + n - 1] == *head);
        if let Some(j) = found {
            let from = j + n;
            return history[from..(from + max).min(history.len())].to_vec();
        }
    }
    Vec::new()
}

/// Breaks up control-token text inside chat content with a zero-width space, so that
/// parsing the templated prompt for special tokens finds only the template's own.
pub fn defuse_control_text(content: &str, control_texts: &[String]) -> String {
    let mut out = content.to_string();
    for t in control_texts {
        if out.contains(t.as_str()) {
            let mut chars = t.chars();
            let first = chars.next().unwrap_or_default();
            let broken = format!("{first}\u{200b}{}", chars.as_str());
            out = out.replace(t.as_str(), &broken);
        }
    }
    out
}

pub(super) fn build_sampler(s: &Sampling) -> LlamaSampler {
    if s.is_greedy() {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_k(s.top_k),
            LlamaSampler::top_p(s.top_p, 1),
            LlamaSampler::temp(s.temperature),
            LlamaSampler::dist(s.seed),
        ])
    }
}
