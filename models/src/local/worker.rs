//! The state one model thread keeps between jobs (KV cache contents, speed, the draft
//! model), and the jobs it runs besides generation: speed probes, prefill, token healing.

use super::*;

pub(super) struct Worker<'m> {
    pub(super) model: &'m LlamaModel,
    pub(super) ctx: LlamaContext<'m>,
    /// The context's decode thread count, chosen per request from the machine's load.
    pub(super) decode: super::threads::DecodeThreads,
    /// Tokens whose keys and values are in sequence 0 of the KV cache, in order.
    pub(super) cached: Vec<LlamaToken>,
    pub(super) info: LocalModelInfo,
    pub(super) identity: ModelIdentity,
    pub(super) n_batch: usize,
    pub(super) reuse_prefix: bool,
    /// See [`LocalOptions::lookup_draft`].
    pub(super) lookup_draft: usize,
    /// See [`LocalOptions::max_prompt_tokens`].
    pub(super) max_prompt_tokens: usize,
    /// See [`LocalOptions::draft_model`].
    pub(super) draft: Option<Draft<'m>>,
    pub(super) draft_tokens: usize,
    /// Each token's bytes, built the first time token healing or budgeting needs them.
    pub(super) pieces: Option<Vec<Vec<u8>>>,
    /// Set by [`shutdown_workers`]: the job in flight stops as if cancelled.
    pub(super) closing: Arc<AtomicBool>,
    /// Shared with [`LocalModel::speed`].
    pub(super) speed: Arc<Mutex<Option<Speed>>>,
    /// Where the followed speed is written back, and the speed last written: a probe
    /// taken while the machine was busy (or idle) is corrected by what real requests
    /// take, for this process and the next one.
    pub(super) speed_store: Option<(crate::speed::SpeedCache, crate::speed::SpeedKey, Speed)>,
}

/// The draft model of speculative decoding and its own KV cache.
pub(super) struct Draft<'m> {
    pub(super) model: &'m LlamaModel,
    pub(super) ctx: LlamaContext<'m>,
    pub(super) cached: Vec<LlamaToken>,
}

impl Draft<'_> {
    /// Brings the draft's cache to `history` + `last` and proposes up to `max` greedy
    /// tokens to follow (fewer when it reaches an end-of-generation or control token).
    pub(super) fn propose(
        &mut self,
        history: &[LlamaToken],
        last: LlamaToken,
        max: usize,
    ) -> Result<Vec<LlamaToken>, ModelError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let want_len = history.len() + 1;
        let at = |i: usize| if i < history.len() { history[i] } else { last };
        let mut common = self
            .cached
            .iter()
            .enumerate()
            .take_while(|&(i, t)| i < want_len && *t == at(i))
            .count();
        common = common.min(want_len - 1);
        if self
            .ctx
            .kv_cache_seq_rm(0, Some(common as u32), None)
            .is_err()
        {
            self.ctx.clear_kv_cache();
            self.cached.clear();
            common = 0;
        }
        self.cached.truncate(common);
        let n_batch = self.ctx.n_batch().max(1) as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let rest: Vec<LlamaToken> = (common..want_len).map(at).collect();
        for (ci, chunk) in rest.chunks(n_batch).enumerate() {
            batch.clear();
            let last_chunk = (ci + 1) * n_batch >= rest.len();
            for (i, &t) in chunk.iter().enumerate() {
                batch
                    .add(
                        t,
                        (self.cached.len() + i) as i32,
                        &[0],
                        last_chunk && i + 1 == chunk.len(),
                    )
                    .map_err(|e| ModelError::Runtime(format!("draft batch: {e}")))?;
            }
            self.ctx
                .decode(&mut batch)
                .map_err(|e| ModelError::Runtime(format!("draft model: {e}")))?;
            self.cached.extend_from_slice(chunk);
        }
        let vocab = self.model.vocab();
        let mut greedy = LlamaSampler::greedy();
        let mut out = Vec::with_capacity(max);
        let n_ctx = self.ctx.n_ctx() as usize;
        for i in 0..max {
            let t = greedy.sample(&self.ctx, -1);
            if vocab.is_eog(t) || vocab.is_control(t) {
                break;
            }
            out.push(t);
            if i + 1 == max || self.cached.len() + 1 >= n_ctx {
                break;
            }
            batch.clear();
            batch
                .add(t, self.cached.len() as i32, &[0], true)
                .map_err(|e| ModelError::Runtime(format!("draft batch: {e}")))?;
            self.ctx
                .decode(&mut batch)
                .map_err(|e| ModelError::Runtime(format!("draft model: {e}")))?;
            self.cached.push(t);
        }
        Ok(out)
    }
}

pub(super) struct Limits<'a> {
    pub(super) max_tokens: u32,
    pub(super) stop: Vec<String>,
    pub(super) sampling: &'a Sampling,
    pub(super) deadline: Option<Instant>,
    /// Token healing: the bytes of the prompt's last token, taken off the prompt; the
    /// first generated token must start with them (and they are not output again).
    pub(super) heal: Option<Vec<u8>>,
    /// Draft with the draft model (greedy chat).
    pub(super) speculative: bool,
}

/// A fitted completion prompt.
pub(super) struct Fitted {
    pub(super) prompt: Prompt,
    pub(super) tokens: Vec<LlamaToken>,
    /// Tokens the request may generate: what it asked, or under a latency budget what
    /// the budget leaves after this prompt (never less than its reserve).
    pub(super) max_tokens: u32,
}

/// Wide decode steps the speed probe takes before it times them.
const WIDE_WARM: usize = 4;

/// The fixed text the speed probe evaluates (any code does: only its length matters).
pub(super) const PROBE_TEXT: &str = "fn verify(ledger: &Ledger, key: &PublicKey) -> Result<usize, Error> {\n    let mut previous = None;\n    for (seq, line) in ledger.lines().enumerate() {\n        let record = Record::parse(line)?;\n        if record.seq != seq as u64 {\n            return Err(Error::Gap { expected: seq, found: record.seq });\n        }\n        key.verify(&record.payload, &record.signature)?;\n        previous = Some(record.digest());\n    }\n    Ok(previous.map_or(0, |_| ledger.len()))\n}\n";

impl Worker<'_> {
    pub(super) fn stopped(&self, cancel: &CancellationToken) -> bool {
        cancel.is_cancelled() || self.closing.load(Ordering::Relaxed)
    }

    pub(super) fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    /// The followed speed as the request in flight decodes (wide or narrow).
    pub(super) fn current_speed(&self) -> Option<Speed> {
        self.speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|s| s.decoding(self.decode.is_wide()))
    }

    /// How long a narrow decode takes per token, as followed.
    pub(super) fn narrow_token_time(&self) -> Option<Duration> {
        self.speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|s| Duration::from_secs_f64(1.0 / s.decode_tokens_per_s.max(1e-3)))
    }

    /// Follows real requests: the budget uses what the machine does now (a build
    /// beside the editor slows it), starting from the probe's numbers.
    pub(super) fn observe(&mut self, usage: &Usage) {
        let mut guard = self
            .speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(s) = guard.as_mut() else {
            return;
        };
        const ALPHA: f64 = 0.3;
        let evaluated = usage
            .prompt_tokens
            .saturating_sub(usage.reused_prompt_tokens);
        if evaluated >= 32 && !usage.prompt_time.is_zero() {
            let tps = evaluated as f64 / usage.prompt_time.as_secs_f64();
            s.prompt_tokens_per_s += ALPHA * (tps - s.prompt_tokens_per_s);
        }
        // Decoding is followed at the thread count it ran with; a request that fell
        // back from wide to narrow ran at neither.
        if usage.generated_tokens >= 8 && usage.drafted_tokens == 0 && !self.decode.fell_back() {
            if let Some(first) = usage.time_to_first_token {
                let t = usage.total_time.saturating_sub(first).as_secs_f64();
                if t > 0.0 {
                    let tps = (usage.generated_tokens - 1) as f64 / t;
                    match (self.decode.is_wide(), s.wide_decode_tokens_per_s.as_mut()) {
                        (true, Some(w)) => *w += ALPHA * (tps - *w),
                        _ => s.decode_tokens_per_s += ALPHA * (tps - s.decode_tokens_per_s),
                    }
                }
            }
        }
        let now = *s;
        drop(guard);
        self.store_speed(now);
    }

    /// Writes the followed speed back to the speed cache when it moved by more than a
    /// fifth from what the cache holds (so a few requests, not every one, write).
    pub(super) fn store_speed(&mut self, now: Speed) {
        let Some((cache, key, stored)) = self.speed_store.as_mut() else {
            return;
        };
        let moved = |a: f64, b: f64| (a - b).abs() > 0.2 * b.max(1e-3);
        if moved(now.prompt_tokens_per_s, stored.prompt_tokens_per_s)
            || moved(now.decode_tokens_per_s, stored.decode_tokens_per_s)
            || moved(
                now.wide_decode_tokens_per_s.unwrap_or(0.0),
                stored.wide_decode_tokens_per_s.unwrap_or(0.0),
            )
        {
            cache.put(key, now);
            *stored = now;
        }
    }

    /// Evaluates a fixed prompt (128 tokens in one batch) and decodes 16 tokens one at a
    /// time, after a short warm-up that pages the weights in; then 16 more with every core
    /// where the context can decode wide. Leaves the cache empty.
    pub(super) fn probe_speed(&mut self) -> Result<Speed, ModelError> {
        let vocab = self.model.vocab();
        let mut text = String::new();
        let mut tokens = Vec::new();
        while tokens.len() < 176 {
            text.push_str(PROBE_TEXT);
            tokens = vocab.tokenize(text.as_bytes(), false, false);
        }
        let n_ctx = self.ctx.n_ctx() as usize;
        let (warm, prompt, decode) = (16usize, 128usize.min(n_ctx / 2), 16usize);
        self.reset();
        let mut batch = LlamaBatch::new(self.n_batch.max(prompt), 1);
        let mut eval = |ctx: &mut LlamaContext<'_>, toks: &[LlamaToken], at: usize| {
            batch.clear();
            for (i, &t) in toks.iter().enumerate() {
                batch
                    .add(t, (at + i) as i32, &[0], i + 1 == toks.len())
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| ModelError::Runtime(format!("speed probe: {e}")))
        };
        for i in 0..warm {
            eval(&mut self.ctx, &tokens[i..i + 1], i)?;
        }
        self.ctx.clear_kv_cache();
        let t0 = Instant::now();
        for (ci, chunk) in tokens[..prompt].chunks(self.n_batch.max(1)).enumerate() {
            eval(&mut self.ctx, chunk, ci * self.n_batch.max(1))?;
        }
        let prompt_time = t0.elapsed();
        let t1 = Instant::now();
        for i in 0..decode {
            eval(
                &mut self.ctx,
                &tokens[prompt + i..prompt + i + 1],
                prompt + i,
            )?;
        }
        let decode_time = t1.elapsed();
        let wide_time = if self.decode.can_widen() {
            // A few untimed tokens first: the first ones after the switch run slow.
            self.decode.force(true);
            let at = prompt + decode;
            let mut t2 = Instant::now();
            let run = (0..WIDE_WARM + decode).try_for_each(|i| {
                if i == WIDE_WARM {
                    t2 = Instant::now();
                }
                eval(&mut self.ctx, &tokens[at + i..at + i + 1], at + i)
            });
            let wide_time = t2.elapsed();
            self.decode.force(false);
            run?;
            Some(wide_time)
        } else {
            None
        };
        self.reset();
        let per_s = |n: usize, t: Duration| n as f64 / t.as_secs_f64().max(1e-6);
        let speed = Speed {
            prompt_tokens_per_s: per_s(prompt, prompt_time),
            decode_tokens_per_s: per_s(decode, decode_time),
            wide_decode_tokens_per_s: wide_time.map(|t| per_s(decode, t)),
        };
        tracing::info!(
            model = %self.identity.name,
            prompt_tps = speed.prompt_tokens_per_s,
            decode_tps = speed.decode_tokens_per_s,
            wide_decode_tps = speed.wide_decode_tokens_per_s,
            "measured the model's speed"
        );
        Ok(speed)
    }

    pub(super) fn run(
        &mut self,
        kind: JobKind,
        sink: &TokenSink,
        cancel: &CancellationToken,
    ) -> Result<Generation, ModelError> {
        let started = Instant::now();
        // Chat and completion alike decode wide while the other cores were idle.
        self.decode.choose();
        let (prompt, tokens, limits) = match &kind {
            JobKind::Complete(req) => {
                let Fitted {
                    prompt,
                    mut tokens,
                    max_tokens,
                } = self.fit_completion(req, req.latency_budget)?;
                // A prompt that ends in text (prefix continuation) ends at a token
                // boundary the model rarely saw in training: a lone "\n" before an
                // indented line, half an identifier. Back off that token and let the
                // model choose any token that starts with its text.
                let heal = if matches!(prompt.parts.last(), Some(PromptPart::Text(_))) {
                    self.heal(&mut tokens)
                } else {
                    None
                };
                let mut stop = req.stop.clone();
                if prompt.info.mode == "fim" {
                    stop.extend(template::fim_stops(req));
                }
                let limits = Limits {
                    max_tokens,
                    stop,
                    sampling: &req.sampling,
                    deadline: req.deadline,
                    heal,
                    speculative: false,
                };
                (prompt, tokens, limits)
            }
            JobKind::Chat(req) => {
                let (prompt, tokens) = self.chat_prompt(req)?;
                let limits = Limits {
                    max_tokens: req.max_tokens,
                    stop: req.stop.clone(),
                    sampling: &req.sampling,
                    deadline: req.deadline,
                    heal: None,
                    speculative: self.draft.is_some() && req.sampling.is_greedy(),
                };
                (prompt, tokens, limits)
            }
        };
        let n_ctx = self.ctx.n_ctx() as usize;
        if tokens.is_empty() {
            return Err(ModelError::Runtime("the prompt is empty".into()));
        }
        if tokens.len() >= n_ctx {
            return Err(ModelError::PromptTooLong {
                prompt_tokens: tokens.len(),
                n_ctx,
            });
        }
        let sampling = limits.sampling.clone();
        let (text, stop_reason, mut usage) =
            self.generate(&tokens, &limits, sink, cancel, started)?;
        usage.total_time = started.elapsed();
        self.observe(&usage);
        Ok(Generation {
            text,
            stop_reason,
            usage,
            model: self.identity.clone(),
            sampling,
            prompt: prompt.info,
            fallback: None,
        })
    }

    /// Evaluates the prompt `req` would get (fitted to the hard cap only: the cache is
    /// what lets the request's latency budget keep all of it) into the KV cache, in
    /// small batches, giving way to any other job between batches. Everything but the
    /// last token: the request evaluates that one again for fresh logits, and a prefix
    /// continuation heals it. A request at the same cursor then evaluates one token; one
    /// after more typing reuses the cache through the prefix it shares.
    pub(super) fn prefill(
        &mut self,
        req: &CompletionRequest,
        cancel: &CancellationToken,
        jobs: &mpsc::Receiver<Msg>,
        pending: &mut VecDeque<Msg>,
    ) -> Result<Prefilled, ModelError> {
        let fitted = self.fit_completion(req, None)?;
        let target = &fitted.tokens[..fitted.tokens.len().saturating_sub(1)];
        let common = self
            .cached
            .iter()
            .zip(target)
            .take_while(|(a, b)| a == b)
            .count();
        let mut out = Prefilled {
            cached_tokens: common as u32,
            target_tokens: target.len() as u32,
            ..Default::default()
        };
        if common == target.len() || !self.reuse_prefix {
            return Ok(out);
        }
        if self
            .ctx
            .kv_cache_seq_rm(0, Some(common as u32), None)
            .is_err()
        {
            self.reset();
        }
        self.cached.truncate(common.min(self.cached.len()));
        let mut batch = LlamaBatch::new(PREFILL_BATCH, 1);
        let start = self.cached.len();
        for chunk in target[start..].chunks(PREFILL_BATCH) {
            while let Ok(m) = jobs.try_recv() {
                pending.push_back(m);
            }
            if !pending.is_empty() || self.stopped(cancel) {
                out.abandoned = true;
                break;
            }
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let pos = (self.cached.len() + i) as i32;
                batch
                    .add(t, pos, &[0], i + 1 == chunk.len())
                    .map_err(|e| ModelError::Runtime(format!("batch: {e}")))?;
            }
            if let Err(e) = self.ctx.decode(&mut batch) {
                self.reset();
                return Err(ModelError::Runtime(format!("prefill failed: {e}")));
            }
            self.cached.extend_from_slice(chunk);
            out.evaluated_tokens += chunk.len() as u32;
        }
        out.cached_tokens = self.cached.len() as u32;
        Ok(out)
    }

    /// Takes the last token off `tokens` when other tokens extend its text, and
    /// returns that text. A control token or a lone first token is left alone.
    pub(super) fn heal(&mut self, tokens: &mut Vec<LlamaToken>) -> Option<Vec<u8>> {
        let vocab = self.model.vocab();
        let bos = vocab.should_add_bos().then(|| vocab.bos());
        let min_len = if bos.is_some_and(|b| tokens.first() == Some(&b)) {
            2
        } else {
            1
        };
        if tokens.len() <= min_len {
            return None;
        }
        let last = *tokens.last()?;
        if vocab.is_eog(last) || vocab.is_control(last) {
            return None;
        }
        let pieces = self.pieces();
        let text = pieces.get(usize::try_from(last.0).ok()?)?.clone();
        if text.is_empty() {
            return None;
        }
        let extended = pieces
            .iter()
            .any(|p| p.len() > text.len() && p.starts_with(&text));
        if !extended {
            return None;
        }
        tokens.pop();
        Some(text)
    }

    pub(super) fn pieces(&mut self) -> &Vec<Vec<u8>> {
        let model = self.model;
        self.pieces.get_or_insert_with(|| {
            let vocab = model.vocab();
            (0..vocab.n_tokens())
                .map(|i| {
                    let mut b = Vec::new();
                    vocab.token_to_piece_into(LlamaToken(i), &mut b, false, None);
                    b
                })
                .collect()
        })
    }

    pub(super) fn chat_prompt(
        &self,
        req: &ChatRequest,
    ) -> Result<(Prompt, Vec<LlamaToken>), ModelError> {
        let (tmpl, tmpl_source) = match &self.info.chat_template {
            Some(t) => (
                LlamaChatTemplate::new(t)
                    .map_err(|e| ModelError::Runtime(format!("chat template: {e}")))?,
                t.clone(),
            ),
            None => (
                LlamaChatTemplate::new("chatml").map_err(|e| ModelError::Runtime(e.to_string()))?,
                template::CHATML_TEMPLATE.to_string(),
            ),
        };
        let messages = req
            .messages
            .iter()
            .map(|m| {
                LlamaChatMessage::new(m.role.as_str().to_string(), m.content.replace('\0', ""))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ModelError::Runtime(format!("chat message: {e}")))?;
        let text = self
            .model
            .apply_chat_template(&tmpl, &messages, true)
            .map_err(|e| {
                ModelError::Runtime(format!("cannot apply the model's chat template: {e}"))
            })?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        let prompt = Prompt {
            info: PromptInfo {
                mode: "chat".into(),
                template: if self.info.chat_template.is_some() {
                    "gguf chat template"
                } else {
                    "chatml (fallback)"
                }
                .into(),
                template_sha256: template::sha256_hex(tmpl_source.as_bytes()),
                prompt_sha256: template::sha256_hex(text.as_bytes()),
                budget: None,
            },
            parts: vec![PromptPart::Text(text)],
            roles: Vec::new(),
        };
        Ok((prompt, tokens))
    }
}
