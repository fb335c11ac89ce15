//! The workspace session on real parts: a git repository, the real index, the real
//! ledger (file key store), and the default model through llama.cpp. The remote test
//! talks HTTP to a loopback OpenAI-style endpoint that records what it was sent.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// The ledger is read back with the provenance crate itself: these tests check what the
// engine wrote, record by record.
use cairn_provenance as prov;

use common::{init_and_commit, options_in};

use cairn_engine::{
    CancellationToken, ChatKind, ChatTurn, CompleteRequest, Config, ContextChoice, EngineError,
    IndexState, ModelError, Position, Range, Snippet, SnippetKind, StreamEvent, TextChange,
    Trigger, Workspace, WorkspaceOptions,
};

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    opts: WorkspaceOptions,
}

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    \n";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("calc.py"), CALC).unwrap();
    std::fs::write(
        repo.join("util.py"),
        "from calc import add\n\ndef total(xs):\n    s = 0\n    for x in xs:\n        s = add(s, x)\n    return s\n",
    )
    .unwrap();
    init_and_commit(&repo);
    let opts = options_in(dir.path());
    Fixture {
        _dir: dir,
        repo,
        opts,
    }
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

fn events(ws: &Workspace) -> Vec<(String, Option<String>, Option<String>)> {
    let path = ws.status().ledger.path.unwrap();
    prov::read_entries(&path)
        .unwrap()
        .iter()
        .map(|e| {
            (
                e.event().unwrap_or("").to_string(),
                e.record_id().map(|r| r.to_string()),
                e.record.refers_to.clone(),
            )
        })
        .collect()
}

fn at(line: u32, character: u32, trigger: Trigger) -> CompleteRequest {
    CompleteRequest {
        path: "calc.py".into(),
        position: Position::new(line, character),
        trigger,
        max_items: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_is_recorded_accepted_and_followed_into_edits() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    assert!(ws.status().model_error.is_none(), "{:?}", ws.status());
    ready(&ws).await;
    ws.open_document("calc.py", 1, CALC.to_string());

    // The empty line in `mul`'s body: a block, several items when invoked.
    let done = ws
        .complete(at(5, 4, Trigger::Invoked), CancellationToken::new())
        .await
        .unwrap();
    assert!(done.multiline);
    assert!(!done.items.is_empty(), "{done:?}");
    assert!(!done.from_cache);
    for item in &done.items {
        assert!(!item.text.trim().is_empty());
        // Never re-indented past the cursor, never running into the next scope.
        assert!(!item.text.starts_with(' '), "{:?}", item.text);
        assert!(!item.text.contains("\ndef "), "{:?}", item.text);
    }
    // Retrieval found the other file for the prompt.
    assert!(
        done.context.iter().any(|c| c.path == "util.py"),
        "{:?}",
        done.context
    );
    let first = done.items[0].clone();
    let ev = events(&ws);
    assert_eq!(
        ev.iter().filter(|e| e.0 == "suggested").count(),
        done.items.len()
    );

    // Typing through the suggestion is served from it, without a new record.
    let typed: String = first.text.chars().take(3).collect();
    let mut text = CALC.to_string();
    text.insert_str(CALC.len() - 1, &typed);
    ws.change_document(
        "calc.py",
        2,
        &[TextChange::Incremental {
            range: Range::new(Position::new(5, 4), Position::new(5, 4)),
            text: typed.clone(),
        }],
    )
    .unwrap();
    let cached = ws
        .complete(
            at(5, 4 + typed.chars().count() as u32, Trigger::Automatic),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(cached.from_cache, "{cached:?}");
    assert_eq!(cached.items[0].record_id, first.record_id);
    assert_eq!(format!("{typed}{}", cached.items[0].text), first.text);
    assert_eq!(events(&ws).len(), ev.len());

    // Accept: the editor inserts the rest, then reports it.
    let rest = cached.items[0].text.clone();
    ws.change_document(
        "calc.py",
        3,
        &[TextChange::Incremental {
            range: cached.items[0].range,
            text: rest.clone(),
        }],
    )
    .unwrap();
    ws.accept(&first.record_id, false, None).await.unwrap();
    let ev = events(&ws);
    let accepted = ev.iter().find(|e| e.0 == "accepted").unwrap();
    assert_eq!(accepted.2.as_deref(), Some(first.record_id.as_str()));
    // Accepting twice is an error, not a second record.
    let again = ws.accept(&first.record_id, false, None).await.unwrap_err();
    assert!(again.to_string().contains("no suggestion"), "{again}");

    // A person edits inside the accepted span: an `edited` record follows (written off the
    // request path, so give it a moment).
    ws.change_document(
        "calc.py",
        4,
        &[TextChange::Incremental {
            range: Range::new(Position::new(5, 5), Position::new(5, 6)),
            text: "Q".into(),
        }],
    )
    .unwrap();
    let mut edited = false;
    for _ in 0..50 {
        if events(&ws).iter().any(|e| e.0 == "edited") {
            edited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(edited, "{:?}", events(&ws));

    // Other items of the same request can still be rejected.
    if let Some(other) = done.items.get(1) {
        ws.reject(&other.record_id, "dismissed").await.unwrap();
        assert!(events(&ws).iter().any(|e| e.0 == "rejected"));
    }
}

/// The caller chooses the cross-file context: none, its own snippets (within the same
/// budget), or the index's. The model's usage comes back with the items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_context_can_be_given_or_left_out() {
    let f = fixture();
    let mut opts = f.opts.clone();
    opts.context_chars = 60;
    let ws = Workspace::open(&f.repo, Config::default(), opts).unwrap();
    ready(&ws).await;
    ws.open_document("calc.py", 1, CALC.to_string());
    let without = ws
        .complete_with(
            at(5, 4, Trigger::Invoked),
            CancellationToken::new(),
            ContextChoice::Without,
        )
        .await
        .unwrap();
    assert!(without.context.is_empty(), "{:?}", without.context);
    let usage = without.usage.expect("a model call reports its usage");
    assert!(
        usage.prompt_tokens > 10 && usage.generated_tokens > 0,
        "{usage:?}"
    );

    let snippet = |path: &str, text: &str| Snippet {
        path: path.into(),
        start_line: 1,
        end_line: 2,
        text: text.into(),
        score: 1.0,
        kind: SnippetKind::Similar,
        reason: "given".into(),
    };
    let given = ws
        .complete_with(
            at(5, 4, Trigger::Invoked),
            CancellationToken::new(),
            ContextChoice::Given(vec![
                snippet("lib/ops.py", "def mul(a, b):\n    return a * b\n"),
                // Past the 60-character budget: left out.
                snippet("lib/big.py", &"x = 1\n".repeat(20)),
            ]),
        )
        .await
        .unwrap();
    let paths: Vec<&str> = given.context.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["lib/ops.py"]);
    // The record of the suggestion names the context it was given.
    let path = ws.status().ledger.path.unwrap();
    let last = prov::read_entries(&path).unwrap().pop().unwrap();
    assert_eq!(last.event(), Some("suggested"));
    let context = &last.statement.predicate["input"]["context"];
    assert!(context.to_string().contains("lib/ops.py"), "{context}");
    assert!(!context.to_string().contains("lib/big.py"), "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_positions_and_changes_are_clear_errors_and_the_session_goes_on() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    ws.open_document("calc.py", 1, CALC.to_string());
    let e = ws
        .complete(at(99, 0, Trigger::Automatic), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::Input(m) if m.contains("past the end")),
        "{e}"
    );
    let e = ws
        .change_document(
            "calc.py",
            2,
            &[TextChange::Incremental {
                range: Range::new(Position::new(40, 0), Position::new(40, 1)),
                text: "x".into(),
            }],
        )
        .unwrap_err();
    assert!(e.to_string().contains("outside the document"), "{e}");
    let e = ws.accept("not-an-id", false, None).await.unwrap_err();
    assert!(e.to_string().contains("not a record id"), "{e}");
    let e = ws
        .complete(
            CompleteRequest {
                path: "missing.py".into(),
                ..at(0, 0, Trigger::Automatic)
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    // Still serving.
    let ok = ws
        .complete(at(1, 11, Trigger::Automatic), CancellationToken::new())
        .await
        .unwrap();
    assert!(ok.items.len() <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_request_cancels_the_older_one_for_the_same_document() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    ws.open_document("calc.py", 1, CALC.to_string());
    let ws2 = ws.clone();
    let older = tokio::spawn(async move {
        ws2.complete(at(5, 4, Trigger::Invoked), CancellationToken::new())
            .await
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let newer = ws
        .complete(at(1, 11, Trigger::Automatic), CancellationToken::new())
        .await;
    assert!(newer.is_ok(), "{newer:?}");
    let older = older.await.unwrap();
    assert!(
        matches!(older, Err(EngineError::Model(ModelError::Cancelled))),
        "{older:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_cites_numbered_sources_and_remembers_the_conversation() {
    let f = fixture();
    let ws = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    ready(&ws).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let answer = ws
        .chat(
            ChatTurn {
                question: "What does the add function return?".into(),
                max_tokens: Some(48),
                ..Default::default()
            },
            Some(tx),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let mut streamed = String::new();
    while let Ok(ev) = rx.try_recv() {
        if let StreamEvent::Text(t) = ev {
            streamed.push_str(&t);
        }
    }
    assert_eq!(streamed.trim(), answer.answer);
    assert!(
        answer.sources.iter().any(|s| s.path == "calc.py"),
        "{answer:?}"
    );
    for (i, s) in answer.sources.iter().enumerate() {
        assert_eq!(s.n, i + 1);
    }
    for c in &answer.citations {
        assert!(answer
            .sources
            .iter()
            .any(|s| s.n == c.n && s.path == c.path));
    }
    // A second turn in the same conversation works and keeps the id.
    let again = ws
        .chat(
            ChatTurn {
                question: "And which multiplies?".into(),
                conversation: Some(answer.conversation_id.clone()),
                max_tokens: Some(16),
                ..Default::default()
            },
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.conversation_id, answer.conversation_id);
    let empty = ws
        .chat(ChatTurn::default(), None, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(empty.to_string().contains("empty"));
}

#[test]
fn edits_never_target_paths_outside_the_repository() {
    let f = fixture();
    let mut opts = f.opts.clone();
    opts.no_index = true;
    let ws = Workspace::open(&f.repo, Config::default(), opts).unwrap();
    assert_eq!(ws.inside_repo("calc.py").as_deref(), Some("calc.py"));
    assert_eq!(ws.inside_repo("../outside.py"), None);
    assert_eq!(ws.inside_repo("/etc/passwd"), None);
    std::os::unix::fs::symlink("/etc", f.repo.join("etc-link")).unwrap();
    assert_eq!(ws.inside_repo("etc-link/passwd"), None);
    let abs = f.repo.join("util.py");
    assert_eq!(
        ws.inside_repo(abs.to_str().unwrap()).as_deref(),
        Some("util.py")
    );
}

/// A loopback OpenAI-style endpoint that answers every request with `reply` and
/// keeps the request bodies.
fn recording_endpoint(reply: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
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
            let chat = body.contains("\"messages\"");
            seen2.lock().unwrap().push(body);
            let chunk = if chat {
                serde_json::json!({"choices": [{"index": 0, "delta": {"content": reply}, "finish_reason": null}]})
            } else {
                serde_json::json!({"choices": [{"index": 0, "text": reply, "finish_reason": null}]})
            };
            let sse = format!("data: {chunk}\n\ndata: [DONE]\n\n");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}",
                sse.len()
            );
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted_before_a_prompt_goes_remote_and_counted_in_the_ledger() {
    let f = fixture();
    // A fake key, assembled at run time so the repository holds no secret-looking text.
    let key = format!("AKIA{}", "Z7QXRT4PLM2WVB9K");
    let text = format!("import boto3\nAWS_KEY = \"{key}\"\n\ndef connect():\n    \n");
    std::fs::write(f.repo.join("cloud.py"), &text).unwrap();
    let (url, seen) = recording_endpoint("return boto3.client('s3')");
    let config: Config = toml::from_str(&format!(
        "[models.remote]\nkind = \"remote\"\nbase_url = \"{url}\"\nmodel = \"m\"\nfim = true\nretries = 0\n[routing]\ncomplete = \"remote\"\nchat = \"remote\"\n"
    ))
    .unwrap();
    let mut opts = f.opts.clone();
    opts.no_index = true;
    let ws = Workspace::open(&f.repo, config, opts).unwrap();
    assert!(ws.status().model_error.is_none(), "{:?}", ws.status());
    ws.open_document("cloud.py", 1, text.clone());
    let done = ws
        .complete(
            CompleteRequest {
                path: "cloud.py".into(),
                ..at(4, 4, Trigger::Automatic)
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.items.len(), 1, "{done:?}");
    let bodies = seen.lock().unwrap().clone();
    assert!(!bodies.is_empty());
    for b in &bodies {
        assert!(!b.contains(&key), "the key left the machine: {b}");
        assert!(b.contains("redacted"), "{b}");
    }
    let path = ws.status().ledger.path.unwrap();
    let entries = prov::read_entries(&path).unwrap();
    let suggested = entries
        .iter()
        .find(|e| e.event() == Some("suggested"))
        .unwrap();
    let line = std::fs::read_to_string(&path).unwrap();
    assert!(!line.contains(&key));
    let redactions = &suggested.statement.predicate["input"]["redactions"];
    let total: u64 = redactions
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    assert!(total >= 1, "{redactions}");

    // Chat to the same remote: the selection carrying the key is redacted too.
    let answer = ws
        .chat(
            ChatTurn {
                question: "What does this do?".into(),
                path: Some("cloud.py".into()),
                range: Some(Range::new(Position::new(0, 0), Position::new(2, 0))),
                kind: ChatKind::Explain,
                ..Default::default()
            },
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(!answer.answer.is_empty());
    let bodies = seen.lock().unwrap().clone();
    assert!(bodies.iter().all(|b| !b.contains(&key)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_front_end_on_the_same_repository_reads_the_index_and_shares_the_ledger() {
    let f = fixture();
    let first = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    ready(&first).await;
    let second = Workspace::open(&f.repo, Config::default(), f.opts.clone()).unwrap();
    let mut rx = second.index_events();
    let state = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let s = rx.borrow_and_update().clone();
            if !matches!(s, IndexState::Opening | IndexState::Indexing { .. }) {
                return s;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(state, IndexState::ReadOnly { files, .. } if files >= 2),
        "{state:?}"
    );

    // Both complete, concurrently, and both write records to the one ledger.
    for ws in [&first, &second] {
        ws.open_document("calc.py", 1, CALC.to_string());
    }
    let (a, b) = tokio::join!(
        first.complete(at(5, 4, Trigger::Automatic), CancellationToken::new()),
        second.complete(at(1, 11, Trigger::Automatic), CancellationToken::new()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // The read-only side still retrieves context from the shared index.
    assert!(b.context.iter().any(|c| c.path == "util.py") || b.context.is_empty());
    for (ws, done) in [(&first, &a), (&second, &b)] {
        if let Some(item) = done.items.first() {
            ws.accept(&item.record_id, false, None).await.unwrap();
        }
    }
    let path = first.status().ledger.path.unwrap();
    assert_eq!(Some(&path), second.status().ledger.path.as_ref());
    let check = prov::verify_ledger_file(&path, None).unwrap();
    assert!(check.failures.is_empty(), "{:?}", check.failures);
    let n = a.items.len() + b.items.len();
    let ev = events(&first);
    assert_eq!(ev.iter().filter(|e| e.0 == "suggested").count(), n);
    assert_eq!(ev.iter().filter(|e| e.0 == "accepted").count(), n);
}
