//! The remote backend against a real OpenAI-compatible server nobody here wrote:
//! llama-cpp-python's server (installed by `make setup-test`) serving the default model.
//! Protocol failures a real server will not produce on demand (HTML, a truncated
//! stream, 503 then success) come from tiny socket fixtures.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_models::router::Route;
use cairn_models::*;
use tokio::sync::mpsc;

struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts llama-cpp-python's server on loopback and waits until it answers.
fn llama_cpp_python(api_key: Option<&str>) -> Server {
    let python = std::env::var("CAIRN_TEST_PYTHON").unwrap_or_else(|_| {
        cairn_models::registry::cache_dir()
            .join("py/bin/python")
            .to_string_lossy()
            .into_owned()
    });
    let (model, _) = common::default_model();
    let port = free_port();
    let mut cmd = Command::new(&python);
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/peers/llama_cpp_server.py"
    ))
    .arg("--model")
    .arg(&model)
    .args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--n_ctx",
        "2048",
        "--model_alias",
        "smollm2",
    ])
    .args(["--n_threads", "1", "--verbose", "false"])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(k) = api_key {
        cmd.args(["--api_key", k]);
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start {python} -m llama_cpp.server ({e}); run `make setup-test`")
    });
    let server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}/v1"),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut first = String::new();
            if BufReader::new(s).read_line(&mut first).is_ok() && first.starts_with("HTTP/1.1") {
                return server;
            }
        }
        assert!(
            Instant::now() < deadline,
            "llama-cpp-python server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn opts(base_url: &str, fim: bool) -> RemoteOptions {
    RemoteOptions {
        base_url: base_url.to_string(),
        model: "smollm2".into(),
        fim,
        first_token_timeout_ms: 20_000,
        total_timeout_ms: 60_000,
        ..Default::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn collect(rx: &mut mpsc::UnboundedReceiver<StreamEvent>) -> Vec<StreamEvent> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn streams_chat_and_completions_from_a_real_server_and_rejects_a_wrong_key() {
    let server = llama_cpp_python(Some("right-key"));
    let rt = rt();
    let remote = RemoteModel::new(
        "peer",
        opts(&server.base_url, true),
        Some("right-key".into()),
    )
    .unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut req = ChatRequest::new(vec![ChatMessage::new(
        Role::User,
        "Name a sorting algorithm.",
    )]);
    req.max_tokens = 20;
    let g = rt
        .block_on(remote.chat(req, Some(tx), CancellationToken::new()))
        .unwrap();
    let events = collect(&mut rx);
    assert!(events.len() > 1, "streamed in pieces: {events:?}");
    assert_eq!(text_of(&events), g.text);
    assert!(!g.text.trim().is_empty());
    assert_eq!(g.model.origin, Origin::Remote);
    assert_eq!(g.model.endpoint.as_deref(), Some(server.base_url.as_str()));
    assert!(g.usage.time_to_first_token.is_some());

    // Completion with a suffix goes to /completions with `suffix`.
    let mut c = CompletionRequest::new("def square(x):\n    return ", "\n\nprint(square(3))\n");
    c.max_tokens = 8;
    let g = rt
        .block_on(remote.complete(c, None, CancellationToken::new()))
        .unwrap();
    assert_eq!(g.prompt.mode, "fim");
    assert!(g.usage.generated_tokens >= 1, "{g:?}");

    // A wrong key is refused with an error that says what to do and never shows the key.
    let wrong = RemoteModel::new(
        "peer",
        opts(&server.base_url, false),
        Some("wrong-key".into()),
    )
    .unwrap();
    let err = rt
        .block_on(wrong.chat(
            ChatRequest::new(vec![ChatMessage::new(Role::User, "hi")]),
            None,
            CancellationToken::new(),
        ))
        .unwrap_err();
    assert!(
        matches!(err, ModelError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("cairn models login peer"), "{msg}");
    assert!(
        !msg.contains("wrong-key"),
        "the key never appears in errors: {msg}"
    );
}

#[test]
fn a_server_killed_mid_stream_is_an_error_and_the_router_falls_back_to_local() {
    let mut server = llama_cpp_python(None);
    let rt = rt();
    let remote: Arc<dyn Backend> =
        Arc::new(RemoteModel::new("peer", opts(&server.base_url, false), None).unwrap());
    let (path, sha) = common::default_model();
    let local: Arc<dyn Backend> =
        Arc::new(LocalModel::load("default", &path, Some(sha), LocalOptions::default()).unwrap());

    let mut req = ChatRequest::new(vec![ChatMessage::new(
        Role::User,
        "Write a long story about a dragon.",
    )]);
    req.max_tokens = 400;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let err = rt.block_on(async {
        let fut = remote.chat(req.clone(), Some(tx), CancellationToken::new());
        let h = tokio::spawn(fut);
        rx.recv().await.expect("first token");
        server.child.kill().unwrap();
        h.await.unwrap().unwrap_err()
    });
    assert!(
        matches!(
            err,
            ModelError::Remote {
                transient: true,
                ..
            }
        ),
        "{err}"
    );

    // The server is gone now: the route answers from the local model and says so.
    let route = Route::new(remote.clone(), Some(local));
    let (tx, mut rx) = mpsc::unbounded_channel();
    req.max_tokens = 12;
    let g = rt
        .block_on(route.chat(req, Some(tx), CancellationToken::new()))
        .unwrap();
    let fb = g.fallback.clone().expect("fallback noted");
    assert_eq!(fb.from, "peer");
    assert!(fb.reason.contains("connect"), "{}", fb.reason);
    assert_eq!(g.model.origin, Origin::Local);
    let events = collect(&mut rx);
    assert!(
        matches!(events.first(), Some(StreamEvent::Reset { .. })),
        "{events:?}"
    );
    assert_eq!(text_of(&events), g.text);
}

/// Serves fixed HTTP answers, one per connection, and counts requests.
fn fixture(responses: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { break };
            c.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 65536];
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = s.read(&mut buf);
            let resp = responses[i.min(responses.len() - 1)];
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), count)
}

#[test]
fn protocol_failures_are_clear_errors() {
    let rt = rt();
    let chat = || ChatRequest::new(vec![ChatMessage::new(Role::User, "hi")]);
    let run = |url: &str| {
        let m = RemoteModel::new("fx", opts(url, false), None).unwrap();
        rt.block_on(m.chat(chat(), None, CancellationToken::new()))
    };

    // Nothing listening.
    let port = free_port();
    let err = run(&format!("http://127.0.0.1:{port}/v1")).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Remote {
                transient: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cannot connect"), "{err}");

    // A web page instead of an API.
    let (url, _) = fixture(vec!["HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 26\r\nConnection: close\r\n\r\n<html><body>hi</body></html>"]);
    let err = run(&url).unwrap_err().to_string();
    assert!(err.contains("HTML") && err.contains("base_url"), "{err}");

    // A stream that stops before [DONE] or a finish_reason.
    let (url, _) = fixture(vec!["HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"]);
    let err = run(&url).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    // Garbage inside the stream.
    let (url, _) = fixture(vec!["HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {not json\n\n"]);
    let err = run(&url).unwrap_err().to_string();
    assert!(err.contains("invalid JSON"), "{err}");

    // 503 twice, then an answer: retried with backoff.
    let ok = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let busy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy";
    let (url, count) = fixture(vec![busy, busy, ok]);
    let g = run(&url).unwrap();
    assert_eq!(g.text, "Hello");
    assert_eq!(g.stop_reason, StopReason::EndOfGeneration);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // 404: wrong base URL, not retried.
    let (url, count) = fixture(vec![
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
    ]);
    let err = run(&url).unwrap_err().to_string();
    assert!(err.contains("404") && err.contains("/v1"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // A server that accepts and never answers: the first-token timeout fires.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/v1",
        listener.local_addr().unwrap().port()
    );
    // The connection stays open until the test is done, so only the timeout can end the
    // call (a closed connection would be a different error).
    let (done, held) = std::sync::mpsc::channel::<()>();
    let _hold = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(1).collect();
        let _ = held.recv_timeout(Duration::from_secs(120));
        drop(conns);
    });
    let m = RemoteModel::new(
        "fx",
        RemoteOptions {
            first_token_timeout_ms: 300,
            total_timeout_ms: 300,
            retries: 0,
            ..opts(&url, false)
        },
        None,
    )
    .unwrap();
    let err = rt
        .block_on(m.chat(chat(), None, CancellationToken::new()))
        .unwrap_err();
    let _ = done.send(());
    assert!(err.to_string().contains("timed out"), "{err}");
}
