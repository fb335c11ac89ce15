//! The default code model, `coder-0.5b` (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, greedy):
//! repository-level FIM, its stop tokens, the recorded prompt mode, the loop guard, the
//! latency budget and prefill. Kept few and short: on a 2-core CI machine the model
//! evaluates a few dozen prompt tokens a second.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use cairn_models::*;

fn model() -> &'static LocalModel {
    static M: OnceLock<LocalModel> = OnceLock::new();
    M.get_or_init(|| own("coder"))
}

/// An instance of its own, for tests that depend on what its KV cache holds.
fn own(name: &str) -> LocalModel {
    let (path, sha) = common::coder_model();
    LocalModel::load(name, &path, Some(sha), LocalOptions::default()).expect("coder-0.5b loads")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn complete(m: &LocalModel, r: CompletionRequest) -> Generation {
    rt().block_on(m.complete(r, None, CancellationToken::new()))
        .unwrap()
}

fn shop_request() -> CompletionRequest {
    let mut r = CompletionRequest::new(
        "from utils import frobnicate_total\n\n\ndef checkout(cart):\n    total = ",
        "\n    return total\n",
    );
    r.path = Some("shop/cart.py".into());
    r.repo_name = Some("acme/shop".into());
    r.context = vec![ContextFile {
        path: "shop/utils.py".into(),
        text: "def frobnicate_total(items, tax=0.2):\n    \"\"\"Sum of prices plus tax.\"\"\"\n    return sum(i.price for i in items) * (1 + tax)\n".into(),
    }];
    r.max_tokens = 24;
    r
}

#[test]
fn identity_vocabulary_and_measured_speed() {
    let m = model();
    let id = m.identity();
    assert_eq!(
        id.gguf_sha256.as_deref(),
        Some(registry::DEFAULT_MODEL_SHA256)
    );
    assert_eq!(id.quantization.as_deref(), Some("Q4_K_M"));
    assert!(m.supports_fim());
    let v = &m.info().vocab;
    assert_eq!(v.fim.as_ref().unwrap().family, template::FimFamily::Qwen);
    assert_eq!(v.repo_name.as_deref(), Some("<|repo_name|>"));
    assert_eq!(v.file_sep.as_deref(), Some("<|file_sep|>"));
    let s = m.speed().expect("the speed was measured at load");
    assert!(
        s.prompt_tokens_per_s > 1.0 && s.decode_tokens_per_s > 0.5,
        "{s:?}"
    );
    // With more than one core, decoding can switch to every core while the others are
    // idle: the probe measured that too (llama.cpp's context was reached to switch it).
    if cairn_models::speed::cores() >= 2 {
        assert!(s.wide_decode_tokens_per_s.is_some_and(|w| w > 0.5), "{s:?}");
    }
}

#[test]
fn repository_fim_uses_the_context_file_and_stops_at_the_suffix() {
    let g = complete(model(), shop_request());
    assert_eq!(g.prompt.mode, "fim");
    assert_eq!(g.prompt.template, "qwen");
    let threads = g.usage.decode_threads as usize;
    assert!(
        (1..=cairn_models::speed::cores().max(1)).contains(&threads),
        "{:?}",
        g.usage
    );
    assert!(g.text.starts_with("frobnicate_total("), "{:?}", g.text);
    assert!(
        !g.text.contains("return total"),
        "the suffix is not written again: {:?}",
        g.text
    );
    assert!(
        !g.text.contains("<|") && !g.text.contains("```"),
        "{:?}",
        g.text
    );
    assert_ne!(g.stop_reason, StopReason::MaxTokens, "{g:?}");
    let b = g.prompt.budget.as_ref().unwrap();
    assert_eq!(b.context_files_kept, 1);
}

#[test]
fn fim_ends_on_the_models_end_token_and_no_suffix_means_prefix_mode() {
    let mut r = CompletionRequest::new("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n");
    r.max_tokens = 32;
    let g = complete(model(), r);
    assert_eq!(g.prompt.mode, "fim");
    assert!(g.text.starts_with("a + b"), "{:?}", g.text);
    assert!(
        matches!(
            g.stop_reason,
            StopReason::EndOfGeneration | StopReason::StopString(_)
        ),
        "{g:?}"
    );
    assert!(g.usage.generated_tokens < 32);

    let mut r = CompletionRequest::new("def add(a, b):\n    return", "");
    r.max_tokens = 4;
    let g = complete(model(), r);
    assert_eq!(g.prompt.mode, "prefix", "no suffix: prefix continuation");
}

#[test]
fn the_loop_guard_stops_a_completion_that_repeats_a_line() {
    let mut r = CompletionRequest::new("print('hello')\nprint('hello')\nprint('hello')\n", "");
    r.max_tokens = 64;
    let g = complete(model(), r);
    assert_eq!(g.stop_reason, StopReason::Repetition, "{g:?}");
    assert_eq!(g.text, "print('hello')\n");
    assert!(g.usage.generated_tokens < 30, "{:?}", g.usage);
}

/// ~100 short Python functions: a prefix far over any small budget.
fn long_prefix() -> String {
    let mut s = String::from("import math\n\n");
    for i in 0..100 {
        s.push_str(&format!(
            "def f{i}(x):\n    return x * {i} + math.sqrt({i})\n\n"
        ));
    }
    s.push_str("def main():\n    total = f1(2) + f2(3)\n    print(");
    s
}

fn context_files() -> Vec<ContextFile> {
    (0..2)
        .map(|i| ContextFile {
            path: format!("lib/helpers{i}.py"),
            text: format!(
                "def helper{i}(values):\n    \"\"\"Adds the values and scales them by {i}.\"\"\"\n    return sum(values) * {i}\n"
            ),
        })
        .collect()
}

#[test]
fn a_latency_budget_cuts_a_cold_prompt_in_tokens_and_typing_reuses_the_cut() {
    let m = own("budget");
    let s = m.speed().unwrap();
    // Room for about 80 new prompt tokens plus the 8 generated ones.
    let budget = s.estimate(80, 8);
    let mut r = CompletionRequest::new(long_prefix(), "total)\n");
    r.path = Some("app/main.py".into());
    r.repo_name = Some("acme/app".into());
    r.context = context_files();
    r.max_tokens = 8;
    r.latency_budget = Some(budget);
    let cold = complete(&m, r.clone());
    let b = cold.prompt.budget.clone().unwrap();
    assert_eq!(b.budget_ms, Some(budget.as_millis() as u64));
    let allowed = b.allowed_new_tokens.unwrap();
    assert!((60..=100).contains(&allowed), "{b:?}");
    assert!(!b.over_budget, "{b:?}");
    assert!(b.new_tokens <= allowed, "{b:?}");
    assert_eq!(b.context_files_dropped, 2, "context goes first: {b:?}");
    assert!(
        b.prefix_tokens_cut > 1000 && b.prefix_tokens_kept >= 32,
        "{b:?}"
    );
    assert_eq!(b.suffix_tokens_cut, 0, "{b:?}");
    assert!(cold.usage.prompt_tokens <= allowed + 1, "{:?}", cold.usage);

    // One character typed: the same cut, so the cache serves all but the last tokens.
    let mut typed = r.clone();
    typed.prefix.push('t');
    let warm = complete(&m, typed);
    let w = warm.prompt.budget.clone().unwrap();
    if w.prefix_tokens_kept <= b.prefix_tokens_kept + 2 {
        assert!(
            warm.usage.reused_prompt_tokens + 12 >= warm.usage.prompt_tokens,
            "{:?}",
            warm.usage
        );
    } else {
        // The followed speed rose enough that a longer prefix fits the budget cold.
        assert!(w.new_tokens <= w.allowed_new_tokens.unwrap(), "{w:?}");
    }
}

#[test]
fn prefill_warms_the_cache_and_a_tight_budget_keeps_what_it_holds() {
    let m = own("prefill");
    let mut r = CompletionRequest::new(
        "def main():\n    values = [1, 2, 3]\n    total = helper1(",
        ")\n",
    );
    r.path = Some("app/main.py".into());
    r.repo_name = Some("acme/app".into());
    r.context = context_files();
    r.max_tokens = 6;
    let p = rt()
        .block_on(m.prefill(r.clone(), CancellationToken::new()))
        .unwrap();
    assert!(!p.abandoned, "{p:?}");
    assert_eq!(p.cached_tokens, p.target_tokens);
    assert!(p.target_tokens > 60, "{p:?}");

    // A budget far below the context's size: the cached context stays.
    r.latency_budget = Some(m.speed().unwrap().estimate(12, 6));
    let g = complete(&m, r);
    let b = g.prompt.budget.unwrap();
    assert_eq!(b.context_files_kept, 2, "{b:?}");
    assert!(b.cached_tokens + 1 >= p.target_tokens, "{b:?}");
    assert!(
        g.usage.reused_prompt_tokens + 1 >= p.target_tokens,
        "{:?}",
        g.usage
    );
}

#[test]
fn prefill_gives_way_to_a_real_request_between_batches() {
    let m = own("giveway");
    let mut long = CompletionRequest::new(long_prefix(), "");
    long.max_tokens = 4;
    let rt = rt();
    let prefill = m.prefill(long, CancellationToken::new());
    let prefill = rt.spawn(prefill);
    std::thread::sleep(Duration::from_millis(300));
    let mut r = CompletionRequest::new("x = 1\ny = ", "");
    r.max_tokens = 2;
    let g = rt
        .block_on(m.complete(r, None, CancellationToken::new()))
        .unwrap();
    assert!(g.usage.generated_tokens >= 1);
    let p = rt.block_on(prefill).unwrap().unwrap();
    assert!(p.abandoned, "{p:?}");
    assert!(p.evaluated_tokens < p.target_tokens, "{p:?}");
}
