//! Completions inside a latency budget on the default code model (coder-0.5b through
//! llama.cpp): the prompt is cut in tokens to what this machine evaluates in time, the
//! result and its ledger record say the prompt mode and what the budget kept and cut, and
//! a request nobody waits for any more stops costing model time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_provenance as prov;

use cairn_engine::{
    CancellationToken, CompleteRequest, Config, ContextChoice, FileKeyStore, LedgerOptions,
    Position, Trigger, Workspace, WorkspaceOptions, DEFAULT_LATENCY_BUDGET_MS,
};

fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// ~150 small functions, then a function being written: a prefix far over what a 2 s
/// budget evaluates on a small CPU.
fn big_file() -> String {
    let mut s = String::from("import math\n\n\n");
    for i in 0..150 {
        s.push_str(&format!(
            "def scale_{i}(values):\n    return [v * {i} + math.sqrt({i}) for v in values]\n\n\n"
        ));
    }
    s.push_str("def mean(values):\n    total = \n    return total / len(values)\n");
    s
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    opts: WorkspaceOptions,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("stats.py"), big_file()).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["config", "user.name", "Test"]);
    git(&repo, &["config", "user.email", "t@example.com"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "init"]);
    let opts = WorkspaceOptions {
        ledger: LedgerOptions::default()
            .with_dir(dir.path().join("ledger"))
            .with_key_store(Arc::new(FileKeyStore::new(dir.path().join("keys")))),
        watch: false,
        no_index: true,
        ..Default::default()
    };
    Fixture {
        _dir: dir,
        repo,
        opts,
    }
}

fn request(ws: &Workspace, text: &str, line: usize, col: usize) -> CompleteRequest {
    let path = ws.root().join("stats.py").to_string_lossy().into_owned();
    ws.open_document(&path, 1, text.to_string());
    CompleteRequest {
        path,
        position: Position::new(line as u32, col as u32),
        trigger: Trigger::Automatic,
        max_items: 1,
    }
}

/// The last `suggested` record's `input`.
fn last_input(ws: &Workspace) -> prov::RecordedInput {
    let path = ws.status().ledger.path.unwrap();
    prov::read_entries(&path)
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| e.record.input.clone())
        .expect("a suggested record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_completion_fits_the_budget_and_its_record_says_what_was_cut() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    let text = big_file();
    let line = text.lines().position(|l| l == "    total = ").unwrap();
    let req = request(&ws, &text, line, "    total = ".len());

    let started = Instant::now();
    let c = ws
        .complete_with(req, CancellationToken::new(), ContextChoice::Without)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(c.mode.as_deref(), Some("fim"), "{c:?}");
    let b = c.budget.clone().expect("budget facts");
    assert_eq!(b.latency_budget_ms, Some(DEFAULT_LATENCY_BUDGET_MS));
    let decode = b
        .decode_tokens_per_s
        .expect("the model's speed was measured");
    assert!(b.max_tokens <= b.max_tokens_asked, "{b:?}");
    assert!(
        b.max_tokens as f64 <= (decode * 1.0).max(16.0) + 1.0,
        "generation gets half the budget: {b:?}"
    );
    let p = b.prompt.clone().expect("the model fitted the prompt");
    assert_eq!(p.budget_ms, Some(DEFAULT_LATENCY_BUDGET_MS));
    assert!(p.prefix_tokens_cut > 500, "the big prefix was cut: {p:?}");
    assert!(
        p.over_budget || p.new_tokens <= p.allowed_new_tokens.unwrap(),
        "{p:?}"
    );
    // The model stops at twice the budget, whatever the machine's load.
    let cap = Duration::from_millis(2 * DEFAULT_LATENCY_BUDGET_MS) + Duration::from_secs(2);
    assert!(
        Duration::from_secs_f64(c.timings.model_ms / 1000.0) < cap,
        "{:?} (total {took:?})",
        c.timings
    );
    let item = c.items.first().expect("a suggestion");
    assert!(!item.text.contains("<|"), "{item:?}");

    let input = last_input(&ws);
    assert_eq!(input.mode.as_deref(), Some("fim"));
    let rec = &input.extra["budget"];
    assert_eq!(rec["latencyBudgetMs"], DEFAULT_LATENCY_BUDGET_MS);
    assert_eq!(rec["prompt"]["prefixTokensCut"], p.prefix_tokens_cut);
    assert_eq!(rec["maxTokens"], b.max_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_after_the_cursor_is_recorded_as_prefix_mode() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    let text = "def mean(values):\n    return sum(values) / ";
    let req = request(&ws, text, 1, "    return sum(values) / ".len());
    let c = ws
        .complete_with(req, CancellationToken::new(), ContextChoice::Without)
        .await
        .unwrap();
    assert_eq!(c.mode.as_deref(), Some("prefix"), "{c:?}");
    if !c.items.is_empty() {
        assert_eq!(last_input(&ws).mode.as_deref(), Some("prefix"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_zero_is_no_budget() {
    let f = fixture();
    let mut config = Config::default();
    config.completion.latency_budget_ms = Some(0);
    let ws = Workspace::open(&f.repo, config, f.opts.clone()).unwrap();
    let text = "def mean(values):\n    total = \n    return total / len(values)\n";
    let req = request(&ws, text, 1, "    total = ".len());
    let c = ws
        .complete_with(req, CancellationToken::new(), ContextChoice::Without)
        .await
        .unwrap();
    let b = c.budget.unwrap();
    assert_eq!(b.latency_budget_ms, None);
    assert_eq!(b.max_tokens, b.max_tokens_asked);
    assert_eq!(b.prompt.unwrap().allowed_new_tokens, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_cursor_warms_the_model_and_the_budget_then_keeps_the_whole_prompt() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    // ~40 functions before the cursor: over what the 2 s budget evaluates cold here.
    let text: String = big_file()
        .split("\n\n\n")
        .skip(110)
        .collect::<Vec<_>>()
        .join("\n\n\n");
    let line = text.lines().position(|l| l == "    total = ").unwrap();
    let req = request(&ws, &text, line, "    total = ".len());
    let at = req.position;

    // Not open, past the end: nothing runs, nothing fails.
    assert_eq!(ws.cursor_moved("elsewhere.py", at).await, None);
    assert_eq!(
        ws.cursor_moved(&req.path, Position::new(9_999, 0)).await,
        None
    );
    // A completion request supersedes a cursor report made before it, even when the
    // report's work has not started yet (a front end spawns it; the request may be
    // handled first).
    let early = ws.cursor_moved(&req.path, at);
    let mut other = req.clone();
    other.position = Position::new(0, 0);
    let _ = ws
        .complete_with(other, CancellationToken::new(), ContextChoice::Without)
        .await;
    assert_eq!(early.await, None, "superseded before its pause");

    let p = ws.cursor_moved(&req.path, at).await.expect("a prefill ran");
    assert!(!p.abandoned, "{p:?}");
    assert_eq!(p.cached_tokens, p.target_tokens, "{p:?}");
    assert!(p.target_tokens > 600, "{p:?}");

    let c = ws
        .complete_with(req, CancellationToken::new(), ContextChoice::Without)
        .await
        .unwrap();
    let u = c.usage.clone().unwrap();
    assert!(u.reused_prompt_tokens + 1 >= u.prompt_tokens, "{u:?}");
    let facts = c.budget.unwrap();
    let b = facts.prompt.clone().unwrap();
    assert_eq!(
        b.prefix_tokens_cut, 0,
        "the warm prompt is kept whole: {b:?}"
    );
    assert!(!b.over_budget, "{b:?}");
    assert!(b.new_tokens <= 1, "{b:?}");
    // What the prompt did not spend goes to generation: about the whole budget's worth.
    assert!(b.max_tokens >= facts.max_tokens, "{facts:?}");
    let decode = facts.decode_tokens_per_s.unwrap();
    if decode >= 10.0 && facts.max_tokens < facts.max_tokens_asked {
        assert!(b.max_tokens > facts.max_tokens, "{facts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_at_one_place_evaluates_only_the_typed_tokens() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    let before = "def mean(values):\n    total = ";
    let after = "\n    return total / len(values)\n\n\ndef spread(values):\n    return max(values) - min(values)\n";
    let complete = |typed: &str, after: &str| {
        let text = format!("{before}{typed}{after}");
        let mut req = request(&ws, &text, 1, "    total = ".len() + typed.len());
        // Invoked: typing through the first suggestion would serve it without the model.
        req.trigger = Trigger::Invoked;
        ws.complete_with(req, CancellationToken::new(), ContextChoice::Without)
    };
    let first = complete("", after).await.unwrap();
    let cold = first.budget.unwrap().prompt.unwrap();
    assert_eq!(cold.middle_tokens, 0, "{cold:?}");

    // Typed since: the prompt still splits where the typing started; only the typed
    // tokens (and the one token healing takes back) are evaluated.
    let c = complete("sum(val", after).await.unwrap();
    let p = c.budget.clone().unwrap().prompt.unwrap();
    let u = c.usage.clone().unwrap();
    assert!(p.middle_tokens >= 2, "{p:?}");
    assert!(p.new_tokens <= p.middle_tokens + 1, "{p:?}");
    assert!(
        u.reused_prompt_tokens + p.middle_tokens + 1 >= u.prompt_tokens,
        "{u:?} {p:?}"
    );
    assert_eq!(p.suffix_tokens_kept, cold.suffix_tokens_kept, "{p:?}");
    let rec = &last_input(&ws).extra["budget"]["prompt"];
    assert_eq!(rec["middleTokens"], p.middle_tokens);
    if let Some(item) = c.items.first() {
        assert!(
            !item.text.starts_with("sum(val"),
            "the typed text is not repeated: {item:?}"
        );
    }

    // A pause in that typing warms nothing: the cache holds all but the typed tokens.
    let text = format!("{before}sum(values{after}");
    let path = request(&ws, &text, 1, 0).path;
    let at = Position::new(1, ("    total = sum(values").len() as u32);
    let warmed = ws.prefill_at(&path, at, CancellationToken::new()).await;
    assert_eq!(warmed.unwrap(), None);

    // An edit after the cursor (an editor closing the bracket) moves the split.
    let c = complete("sum(val", &format!("){after}")).await.unwrap();
    let p = c.budget.unwrap().prompt.unwrap();
    assert_eq!(p.middle_tokens, 0, "{p:?}");
}
