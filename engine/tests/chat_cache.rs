//! The chat response cache on real parts: a git repository, the real index and ledger, the
//! `tiny` model (SmolLM2-135M through llama.cpp) and a loopback OpenAI-style endpoint that
//! counts the requests it answers (so "no model ran" is a count, not a timing).
//!
//! A question asked again over the same sources, conversation, model and settings is
//! answered from the cache, says so, and its `answered` record points at the original's;
//! an edited source, another model, another question, a follow-up, `no_cache` or
//! `[chat] cache = false` ask the model; an answer cut by the token limit or the loop guard
//! is not kept; the cache survives a restart and a damaged file, and stays in its bounds.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_provenance as prov;

use common::{init_and_commit, options_in};

use cairn_engine::{
    CancellationToken, ChatAnswer, ChatTurn, Config, IndexState, StopReason, StreamEvent, Usage,
    Workspace, WorkspaceOptions,
};

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";

struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    opts: WorkspaceOptions,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("calc.py"), CALC).unwrap();
    init_and_commit(&repo);
    let opts = options_in(dir.path());
    Fixture { dir, repo, opts }
}

impl Fixture {
    fn cache_file(&self) -> PathBuf {
        self.dir.path().join("ledger").join("chat-cache.jsonl")
    }

    fn ledger(&self) -> PathBuf {
        prov::ledger_path(&self.repo, &self.opts.ledger).unwrap()
    }

    /// The `answered` record with this id.
    fn answered(&self, id: &str) -> prov::Record {
        let entries = prov::read_entries(&self.ledger()).unwrap();
        let e = entries
            .into_iter()
            .find(|e| e.record_id().map(|r| r.to_string()).as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no record {id}"));
        assert_eq!(e.event(), Some("answered"));
        e.record
    }
}

fn tiny() -> Config {
    toml::from_str("[routing]\ncomplete = \"tiny\"\nchat = \"tiny\"\n").unwrap()
}

fn turn(q: &str) -> ChatTurn {
    ChatTurn {
        question: q.into(),
        max_tokens: Some(128),
        ..Default::default()
    }
}

async fn ask(ws: &Workspace, t: ChatTurn) -> ChatAnswer {
    ws.chat(t, None, CancellationToken::new()).await.unwrap()
}

async fn ready(ws: &Workspace) {
    let mut rx = ws.index_events();
    let wait = async {
        loop {
            let s = rx.borrow_and_update().clone();
            if !matches!(s, IndexState::Opening | IndexState::Indexing { .. }) {
                return s;
            }
            rx.changed().await.unwrap();
        }
    };
    let state = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap();
    assert!(matches!(state, IndexState::Ready { .. }), "{state:?}");
}

const QUESTION: &str = "What does add return? Answer in one short sentence.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_question_is_answered_from_the_cache_and_its_record_points_at_the_original() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, tiny(), f.opts.clone()).unwrap();
    assert!(ws.status().model_error.is_none(), "{:?}", ws.status());
    ready(&ws).await;

    let first = ask(&ws, turn(QUESTION)).await;
    assert!(first.cached.is_none());
    // The fixture's question gets a whole answer from this model: otherwise nothing
    // below would be cached and the test would prove nothing.
    assert_eq!(first.stop_reason, StopReason::EndOfGeneration, "{first:?}");
    assert!(first.usage.generated_tokens > 0);
    assert!(
        first.sources.iter().any(|s| s.path == "calc.py"),
        "{first:?}"
    );
    let original = f.answered(&first.record_id);
    assert_eq!(original.cached_from, None);
    assert_eq!(
        original.input.as_ref().and_then(|i| i.mode.as_deref()),
        Some("chat")
    );

    // The same question (whitespace aside), in a new conversation, streamed.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let again = ws
        .chat(
            turn(&format!("  {}\n", QUESTION.replace(' ', "  "))),
            Some(tx),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let cached = again.cached.clone().expect("answered from the cache");
    assert_eq!(cached.from_record, first.record_id);
    assert_eq!(again.answer, first.answer);
    assert_eq!(again.citations, first.citations);
    assert_eq!(again.model, first.model);
    // No model ran.
    assert_eq!(again.usage, Usage::default());
    let mut streamed = String::new();
    while let Ok(ev) = rx.try_recv() {
        if let StreamEvent::Text(t) = ev {
            streamed.push_str(&t);
        }
    }
    assert_eq!(streamed.trim(), again.answer);
    // Its own record, pointing at the original, with the same prompt mode and output.
    assert_ne!(again.record_id, first.record_id);
    let hit = f.answered(&again.record_id);
    assert_eq!(hit.cached_from.as_deref(), Some(first.record_id.as_str()));
    assert_eq!(
        hit.input.as_ref().and_then(|i| i.mode.as_deref()),
        Some("chat")
    );
    assert_eq!(hit.output, original.output);
    assert_eq!(hit.model_id(), original.model_id());

    // A follow-up in the first answer's conversation has history before it: the model runs.
    let follow = ask(
        &ws,
        ChatTurn {
            conversation: Some(first.conversation_id.clone()),
            ..turn(QUESTION)
        },
    )
    .await;
    assert!(follow.cached.is_none());
    assert!(follow.usage.generated_tokens > 0);

    // Another question: the model runs.
    let other = ask(
        &ws,
        turn("What does mul return? Answer in one short sentence."),
    )
    .await;
    assert!(other.cached.is_none());

    // The person asks for a fresh answer.
    let fresh = ask(
        &ws,
        ChatTurn {
            no_cache: true,
            ..turn(QUESTION)
        },
    )
    .await;
    assert!(fresh.cached.is_none());
    assert!(fresh.usage.generated_tokens > 0);
    assert_eq!(f.answered(&fresh.record_id).cached_from, None);

    // The source changes (saved, so the index has it): the model runs.
    let edited = CALC.replace("return a + b", "return a + b + 0");
    std::fs::write(f.repo.join("calc.py"), &edited).unwrap();
    ws.open_document("calc.py", 2, edited);
    ws.save_document("calc.py").await;
    let after_edit = ask(&ws, turn(QUESTION)).await;
    assert!(
        after_edit
            .sources
            .iter()
            .any(|s| s.text.contains("a + b + 0")),
        "{after_edit:?}"
    );
    assert!(after_edit.cached.is_none(), "an edited source must miss");

    let check = prov::verify_ledger_file(&f.ledger(), None).unwrap();
    assert!(check.failures.is_empty(), "{:?}", check.failures);
}

/// A loopback OpenAI-style endpoint. It answers every chat request with one text and
/// counts them; a question holding `LIMIT` is answered as cut by the token limit, one
/// holding `LOOP` with the same line over and over.
fn counting_endpoint() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).to_string();
            let n = {
                let mut s = seen2.lock().unwrap();
                s.push(body.clone());
                s.len()
            };
            let (reply, finish) = if body.contains("LIMIT") {
                (
                    format!("A long answer, number {n}, that"),
                    "length".to_string(),
                )
            } else if body.contains("LOOP") {
                (
                    "The ledger is checked line by line.\n".repeat(8),
                    "stop".into(),
                )
            } else {
                (format!("Answer number {n}."), "stop".into())
            };
            let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": reply}, "finish_reason": null}]});
            let end = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]});
            let sse = format!("data: {chunk}\n\ndata: {end}\n\ndata: [DONE]\n\n");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}",
                sse.len()
            );
        }
    });
    (url, seen)
}

fn remote(url: &str, model: &str, extra: &str) -> Config {
    toml::from_str(&format!(
        "[models.remote]\nkind = \"remote\"\nbase_url = \"{url}\"\nmodel = \"{model}\"\nretries = 0\n[routing]\ncomplete = \"remote\"\nchat = \"remote\"\n{extra}"
    ))
    .unwrap()
}

fn open_remote(f: &Fixture, config: Config, opts: &WorkspaceOptions) -> Arc<Workspace> {
    let mut opts = opts.clone();
    opts.no_index = true;
    let ws = Workspace::open(&f.repo, config, opts).unwrap();
    assert!(ws.status().model_error.is_none(), "{:?}", ws.status());
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_sends_nothing_to_the_model_survives_a_restart_and_another_model_misses() {
    let f = fixture();
    let (url, seen) = counting_endpoint();
    let requests = || seen.lock().unwrap().len();
    let ws = open_remote(&f, remote(&url, "m", ""), &f.opts);
    let first = ask(&ws, turn("How is the ledger verified?")).await;
    assert_eq!((first.answer.as_str(), requests()), ("Answer number 1.", 1));
    let again = ask(&ws, turn("How is the ledger verified?")).await;
    assert_eq!(requests(), 1, "a hit must not reach the model");
    assert_eq!(again.answer, "Answer number 1.");
    assert_eq!(again.cached.unwrap().from_record, first.record_id);
    drop(ws);

    // A new session (a restart) reads the cache from disk.
    let ws = open_remote(&f, remote(&url, "m", ""), &f.opts);
    let restarted = ask(&ws, turn("How is the ledger verified?")).await;
    assert_eq!(requests(), 1);
    assert_eq!(restarted.cached.unwrap().from_record, first.record_id);
    drop(ws);

    // Another model behind the same route: asked.
    let ws = open_remote(&f, remote(&url, "m-other", ""), &f.opts);
    let other = ask(&ws, turn("How is the ledger verified?")).await;
    assert!(other.cached.is_none());
    assert_eq!((other.answer.as_str(), requests()), ("Answer number 2.", 2));
    // Another token limit: asked.
    let longer = ask(
        &ws,
        ChatTurn {
            max_tokens: Some(256),
            ..turn("How is the ledger verified?")
        },
    )
    .await;
    assert!(longer.cached.is_none());
    assert_eq!(requests(), 3);
    drop(ws);

    // `[chat] cache = false`: every question goes to the model, and none is kept.
    let ws = open_remote(&f, remote(&url, "m", "[chat]\ncache = false\n"), &f.opts);
    let off = ask(&ws, turn("How is the ledger verified?")).await;
    assert!(off.cached.is_none());
    assert_eq!(requests(), 4);
    let before = std::fs::read(f.cache_file()).unwrap();
    ask(&ws, turn("A question only asked with the cache off?")).await;
    assert_eq!(std::fs::read(f.cache_file()).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_cut_by_the_token_limit_or_the_loop_guard_are_not_kept() {
    let f = fixture();
    let (url, seen) = counting_endpoint();
    let requests = || seen.lock().unwrap().len();
    let ws = open_remote(&f, remote(&url, "m", ""), &f.opts);
    let cut = ask(&ws, turn("Explain LIMIT")).await;
    assert_eq!(cut.stop_reason, StopReason::MaxTokens);
    let looped = ask(&ws, turn("Explain LOOP")).await;
    assert_eq!(looped.stop_reason, StopReason::Repetition);
    for q in ["Explain LIMIT", "Explain LOOP"] {
        assert!(ask(&ws, turn(q)).await.cached.is_none(), "{q}");
    }
    assert_eq!(requests(), 4);
    assert!(!f.cache_file().exists(), "nothing was kept");
}

/// What `tracing` has written at WARN and above in this test binary (a global
/// subscriber: the cache logs from the blocking threads it is read on).
fn warnings() -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOG: std::sync::OnceLock<Buf> = std::sync::OnceLock::new();
    let buf = LOG.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_global_default(sub).unwrap();
        buf
    });
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_file_is_a_warning_and_the_chat_goes_on() {
    let f = fixture();
    let (url, seen) = counting_endpoint();
    let requests = || seen.lock().unwrap().len();
    let file = f.cache_file();
    assert!(!warnings().contains(&file.display().to_string()));
    let ws = open_remote(&f, remote(&url, "m", ""), &f.opts);
    let first = ask(&ws, turn("What is in calc.py?")).await;
    // A crash mid-write: a torn last line.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"{\"v\":1,\"key\":\"0123");
    std::fs::write(&file, &bytes).unwrap();
    drop(ws);
    let ws = open_remote(&f, remote(&url, "m", ""), &f.opts);
    let hit = ask(&ws, turn("What is in calc.py?")).await;
    let log = warnings();
    assert!(
        log.contains(&file.display().to_string()) && log.contains("unreadable"),
        "{log}"
    );
    // The whole line before the torn one still answers.
    assert_eq!(hit.cached.unwrap().from_record, first.record_id);
    assert_eq!(requests(), 1);

    // Bytes that are no cache at all: an empty cache.
    std::fs::write(&file, b"\x89PNG\r\n\x1a\n\x00\x00 not a cache").unwrap();
    drop(ws);
    let ws = open_remote(&f, remote(&url, "m", ""), &f.opts);
    let miss = ask(&ws, turn("What is in calc.py?")).await;
    assert!(miss.cached.is_none());
    assert_eq!(requests(), 2);
    // The answer was kept in a rewritten, readable file.
    let hit = ask(&ws, turn("What is in calc.py?")).await;
    assert_eq!(hit.cached.unwrap().from_record, miss.record_id);
    assert_eq!(requests(), 2);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_to_its_bound_oldest_first() {
    let f = fixture();
    let (url, seen) = counting_endpoint();
    let requests = || seen.lock().unwrap().len();
    let mut opts = f.opts.clone();
    opts.chat_cache.max_entries = 4;
    let ws = open_remote(&f, remote(&url, "m", ""), &opts);
    for i in 0..5 {
        ask(&ws, turn(&format!("Question {i}?"))).await;
    }
    assert_eq!(requests(), 5);
    // Past 4 answers the oldest went, down to 3.
    let lines = std::fs::read_to_string(f.cache_file()).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    for i in [2, 3, 4] {
        assert!(ask(&ws, turn(&format!("Question {i}?")))
            .await
            .cached
            .is_some());
    }
    assert_eq!(requests(), 5);
    assert!(ask(&ws, turn("Question 0?")).await.cached.is_none());
    assert_eq!(requests(), 6);
}
