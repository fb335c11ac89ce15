//! The model thread: loads the GGUF, makes the context, and serves jobs until the model is
//! dropped or the process stops the workers.

use super::*;

type Ready = Result<(LocalModelInfo, ModelIdentity), ModelError>;

#[allow(clippy::too_many_arguments)]
pub(super) fn worker(
    path: PathBuf,
    name: String,
    sha256: String,
    options: LocalOptions,
    jobs: mpsc::Receiver<Msg>,
    ready: mpsc::Sender<Ready>,
    closing: Arc<AtomicBool>,
    speed: Arc<Mutex<Option<Speed>>>,
) {
    let backend = match backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let params = LlamaModelParams::default().with_n_gpu_layers(options.gpu_layers());
    let model = match LlamaModel::load_from_file(backend, &path, &params) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(ModelError::LoadFailed {
                path: path.clone(),
                detail: e.to_string(),
            }));
            return;
        }
    };
    let n_ctx = options.n_ctx.min(model.n_ctx_train().max(256)).max(256);
    let threads = options.threads();
    let threads_batch = options.threads_batch();
    let ctx_params = || {
        LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(options.n_batch.min(n_ctx))
            .with_n_ubatch(options.n_batch.min(n_ctx))
            .with_n_threads(threads)
            .with_n_threads_batch(threads_batch)
    };
    let ctx = match model.new_context(backend, ctx_params()) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(ModelError::LoadFailed {
                path: path.clone(),
                detail: format!("cannot create a context of {n_ctx} tokens: {e}"),
            }));
            return;
        }
    };
    // The draft model for speculative decoding, on this same thread.
    let draft_model = match &options.draft_model {
        Some(dp) => {
            if let Err(e) = check_gguf(dp) {
                let _ = ready.send(Err(e));
                return;
            }
            match LlamaModel::load_from_file(backend, dp, &params) {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = ready.send(Err(ModelError::LoadFailed {
                        path: dp.clone(),
                        detail: e.to_string(),
                    }));
                    return;
                }
            }
        }
        None => None,
    };
    let draft = match &draft_model {
        Some(dm) => {
            if dm.n_vocab() != model.n_vocab() {
                let _ = ready.send(Err(ModelError::Config(format!(
                    "draft model {} has a vocabulary of {} tokens, {} has {}: a draft model must share the model's tokenizer (coder-0.5b drafts for coder-1.5b)",
                    options.draft_model.as_deref().unwrap_or(Path::new("")).display(),
                    dm.n_vocab(),
                    path.display(),
                    model.n_vocab()
                ))));
                return;
            }
            match dm.new_context(backend, ctx_params()) {
                Ok(c) => Some(Draft {
                    model: dm,
                    ctx: c,
                    cached: Vec::new(),
                }),
                Err(e) => {
                    let _ = ready.send(Err(ModelError::LoadFailed {
                        path: options.draft_model.clone().unwrap_or_default(),
                        detail: format!("cannot create the draft model's context: {e}"),
                    }));
                    return;
                }
            }
        }
        None => None,
    };
    let vocab = vocab_tokens(&model);
    let chat_template = model
        .chat_template(None)
        .ok()
        .and_then(|t| t.to_string().ok());
    let control_texts = {
        let v = model.vocab();
        let mut texts: Vec<String> = v
            .tokens()
            .filter(|&t| v.is_control(t))
            .filter_map(|t| token_text(&model, t))
            .filter(|t| t.chars().count() >= 2)
            .collect();
        texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
        texts.dedup();
        texts
    };
    let model_id = model.meta_val_str("general.name").unwrap_or_else(|_| {
        path.file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    });
    let quantization = model
        .meta_val_str("general.file_type")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .and_then(file_type_name)
        .map(str::to_string);
    let identity = ModelIdentity {
        name,
        origin: Origin::Local,
        gguf_sha256: Some(sha256.clone()),
        endpoint: None,
        model_id,
        quantization,
        runtime: format!("llama.cpp (llama-cpp-2 {})", crate::LLAMA_CPP_2_VERSION),
    };
    let mut info = LocalModelInfo {
        vocab,
        control_texts,
        n_ctx: ctx.n_ctx(),
        n_ctx_train: model.n_ctx_train(),
        chat_template,
        n_params: model.n_params(),
        measured_speed: None,
        draft: draft.is_some(),
    };
    let decode = threads::DecodeThreads::new(&ctx, threads, options.wide_threads(), threads_batch);
    let mut state = Worker {
        model: &model,
        ctx,
        decode,
        cached: Vec::new(),
        info: info.clone(),
        identity: identity.clone(),
        n_batch: options.n_batch.min(n_ctx) as usize,
        reuse_prefix: options.reuse_prefix,
        lookup_draft: options.lookup_draft as usize,
        max_prompt_tokens: options.max_prompt_tokens.max(64) as usize,
        draft,
        draft_tokens: options.draft_tokens.max(1) as usize,
        pieces: None,
        closing,
        speed: speed.clone(),
        speed_store: None,
    };
    // How fast this model runs here: cached per model and machine, else measured now.
    if options.speed_probe {
        let policy = crate::speed::probe_policy();
        let key = crate::speed::SpeedKey::for_this_machine(
            &sha256,
            options.gpu_layers(),
            threads,
            threads_batch,
        );
        let cache = crate::speed::SpeedCache::open_default();
        let measured = match policy {
            crate::speed::ProbePolicy::Off => None,
            // A speed cached before wide decoding was measured is measured again.
            crate::speed::ProbePolicy::Cached => cache
                .get(&key)
                .map(|m| m.speed)
                .filter(|s| s.wide_decode_tokens_per_s.is_some() || !state.decode.can_widen()),
            crate::speed::ProbePolicy::Again => None,
        }
        .or_else(|| {
            if policy == crate::speed::ProbePolicy::Off {
                return None;
            }
            let s = state.probe_speed().ok()?;
            cache.put(&key, s);
            Some(s)
        });
        info.measured_speed = measured;
        state.info.measured_speed = measured;
        state.speed_store = measured.map(|s| (cache, key, s));
        *speed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = measured;
    }
    if ready.send(Ok((info, identity))).is_err() {
        return;
    }
    // Jobs in arrival order; a prefill that finds anything waiting gives way to it.
    let mut pending: VecDeque<Msg> = VecDeque::new();
    loop {
        let msg = match pending.pop_front() {
            Some(m) => m,
            None => match jobs.recv_timeout(threads::IDLE_TICK) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    state.decode.idle_tick();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        match msg {
            Msg::Close => break,
            Msg::Job(job) => {
                let job = *job;
                if job.cancel.is_cancelled() || state.closing.load(Ordering::Relaxed) {
                    let _ = job.reply.send(Err(ModelError::Cancelled));
                    continue;
                }
                // A panic inside llama.cpp bindings must not take the process down with it.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    state.run(job.kind, &job.sink, &job.cancel)
                }))
                .unwrap_or_else(|_| {
                    state.reset();
                    Err(ModelError::Runtime(
                        "llama.cpp worker panicked; the KV cache was reset".into(),
                    ))
                });
                let _ = job.reply.send(result);
            }
            Msg::Prefill(job) => {
                let job = *job;
                while let Ok(m) = jobs.try_recv() {
                    pending.push_back(m);
                }
                if !pending.is_empty()
                    || job.cancel.is_cancelled()
                    || state.closing.load(Ordering::Relaxed)
                {
                    let _ = job.reply.send(Ok(Prefilled {
                        abandoned: true,
                        ..Default::default()
                    }));
                    continue;
                }
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    state.prefill(&job.req, &job.cancel, &jobs, &mut pending)
                }))
                .unwrap_or_else(|_| {
                    state.reset();
                    Err(ModelError::Runtime(
                        "llama.cpp worker panicked; the KV cache was reset".into(),
                    ))
                });
                let _ = job.reply.send(result);
            }
        }
    }
}
