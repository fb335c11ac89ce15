//! The desktop's commands, called as the window calls them, over a real git repository,
//! a real ledger and index, and a scripted OpenAI-compatible server on loopback (so the
//! answers, citations and edits are fixed and the assertions exact).
//!
//! Over 600 lines as one room: one scenario per test over the one fixture (repository,
//! ledger, index, scripted server) they share.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use base64::Engine as _;
use cairn_desktop::desktop::{ChatRequest, Desktop, DesktopOptions, EventSink};
use cairn_desktop::settings::{RemoteForm, SettingsForm};
use cairn_desktop::ErrorKind;
use cairn_engine::{FileKeyStore, LedgerOptions, WorkspaceOptions};
use cairn_lsp_client::{file_uri, read_framed, LspClient};
use serde_json::Value;

const CALC_PY: &str = r#""""Small arithmetic helpers."""


def add(a, b):
    """Return the sum of a and b."""
    return


def mean(values):
    """Return the arithmetic mean of a non-empty list of numbers."""
    return sum(values) / len(values)
"#;

const FIXED_ADD: &str =
    "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n";

/// A vendored package's function (`third_party/trimlines`, MIT) …
const TRIM_LINES_JS: &str = "function rightTrimLines(text, keepEmpty) {
  var lines = text.split('\\n');
  var out = [];
  for (var j = 0; j < lines.length; j++) {
    var line = lines[j].replace(/\\s+$/, '');
    if (line.length > 0 || keepEmpty) {
      out.push(line);
    }
  }
  return out.join('\\n');
}
";

/// … and the project's own stub of it, which the scripted model "fixes" by copying it.
const TEXT_JS: &str =
    "// Text helpers.\nfunction rightTrimLines(text, keepEmpty) {\n  return text;\n}\n";

/// Records the events the window would get.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Value)>>);

impl EventSink for Recorder {
    fn emit(&self, event: &str, payload: Value) {
        self.0.lock().unwrap().push((event.to_string(), payload));
    }
}

impl Recorder {
    fn named(&self, name: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Every prompt the scripted server was sent, in order (all tests of this binary).
static PROMPTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// An OpenAI-compatible server with scripted answers: a fix (one code block) when the
/// prompt asks for one, else an answer citing source [1]. A model id `refuse` gets 401.
fn scripted_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    format!("http://{addr}/v1")
}

fn serve(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Some(body) = read_framed(&mut reader) else {
        return;
    };
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    PROMPTS.lock().unwrap().push(req["messages"].to_string());
    if req["model"] == "refuse" {
        let msg = r#"{"error":{"message":"invalid api key"}}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        );
        return;
    }
    let prompt = req["messages"].to_string();
    let answer = if prompt.contains("Find the bug") && prompt.contains("rightTrimLines") {
        format!("It trims nothing [1]. Fixed:\n\n```javascript\n{TRIM_LINES_JS}```\n")
    } else if prompt.contains("Find the bug") {
        format!("`add` returns nothing [1]. Fixed:\n\n```python\n{FIXED_ADD}```\n")
    } else {
        "`add` is defined in calc.py [1]; it should return `a + b`.".to_string()
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    );
    let chars: Vec<char> = answer.chars().collect();
    for piece in chars.chunks(7) {
        let text: String = piece.iter().collect();
        let ev = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]});
        let _ = write!(stream, "data: {ev}\n\n");
        let _ = stream.flush();
        std::thread::sleep(Duration::from_millis(2));
    }
    let end = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let _ = write!(stream, "data: {end}\n\ndata: [DONE]\n\n");
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    data: PathBuf,
    config: PathBuf,
    desktop: Desktop,
    events: Arc<Recorder>,
}

fn keyring_for_tests() {
    static ONCE: Once = Once::new();
    // The kernel keyring works without a desktop session (no key is stored here anyway).
    ONCE.call_once(|| std::env::set_var("CAIRN_KEYRING", "keyutils"));
}

fn git(repo: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "git {args:?}");
}

fn fixture(chat_model: &str) -> Fixture {
    fixture_with(chat_model, false)
}

/// With `serve_editors`, the app serves the editors' daemon socket at
/// `<tmp>/run/cairn/lsp.sock` (see [`Fixture::socket`]).
fn fixture_with(chat_model: &str, serve_editors: bool) -> Fixture {
    keyring_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("calc.py"), CALC_PY).unwrap();
    std::fs::write(repo.join("README.md"), "# numbers\n\nArithmetic helpers.\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Test Developer"]);
    git(&repo, &["config", "user.email", "dev@example.com"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "numbers"]);
    let base_url = scripted_server();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[models.remote]\nkind = \"remote\"\nbase_url = \"{base_url}\"\nmodel = \"{chat_model}\"\nretries = 0\n\n[routing]\nchat = \"remote\"\ncomplete = \"remote\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    let mut ws = WorkspaceOptions {
        watch: false,
        ..Default::default()
    };
    ws.index.index_dir = Some(data.join("index"));
    ws.references.dir = Some(data.join("references"));
    ws.index.parse_threads = 1;
    ws.ledger = LedgerOptions::default()
        .with_dir(data.join("ledger"))
        .with_key_store(Arc::new(FileKeyStore::new(data.join("keys"))));
    let desktop = Desktop::new(DesktopOptions {
        user_config: config.clone(),
        state_file: Some(data.join("desktop.json")),
        workspace: ws,
        editor_socket: serve_editors.then(|| dir.path().join("run").join("cairn").join("lsp.sock")),
        launcher: Default::default(),
    });
    Fixture {
        _dir: dir,
        repo,
        data,
        config,
        desktop,
        events: Arc::new(Recorder::default()),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Fixture {
    async fn open(&self) {
        let status = self
            .desktop
            .open_repository(&self.repo.display().to_string(), self.events.clone())
            .await
            .unwrap();
        assert_eq!(status.backend, "remote");
        assert!(status.model_error.is_none(), "{:?}", status.model_error);
        // Wait for the index so retrieval finds calc.py.
        for _ in 0..300 {
            if matches!(
                self.desktop.status().unwrap().index,
                cairn_engine::IndexState::Ready { .. }
            ) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the index never got ready: {:?}",
            self.desktop.status().unwrap().index
        );
    }

    fn ledger_events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.data.join("ledger").join("ledger.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let env: Value = serde_json::from_str(l).unwrap();
                let payload = env["payload"].as_str().unwrap();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .unwrap();
                serde_json::from_slice::<Value>(&bytes).unwrap()["predicate"].clone()
            })
            .filter(|p| p.get("event").is_some())
            .collect()
    }
}

#[test]
fn opening_reports_missing_and_non_folder_paths_clearly() {
    let f = fixture("scripted");
    rt().block_on(async {
        let e = f
            .desktop
            .open_repository("/nonexistent/cairn-repo", f.events.clone())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("/nonexistent/cairn-repo"), "{e}");
        assert!(!e.action.is_empty());
        let e = f
            .desktop
            .open_repository(
                &f.repo.join("calc.py").display().to_string(),
                f.events.clone(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotADirectory);
        // Nothing is open, and the commands that need a repository say so.
        assert_eq!(
            f.desktop.status().unwrap_err().kind,
            ErrorKind::NoRepository
        );
    });
}

#[test]
fn an_unreadable_folder_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture("scripted");
    let locked = f.repo.parent().unwrap().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let result = Desktop::check_folder(&locked.display().to_string());
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    if std::fs::read_dir("/root").is_ok() && is_root() {
        // root reads every folder: the end-to-end test checks this as an unprivileged user.
        eprintln!("running as root: permission checks cannot fail here");
        return;
    }
    let e = result.unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(e.action.contains("chmod"), "{e}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn chat_streams_cites_and_reads_the_cited_lines() {
    let f = fixture("scripted");
    rt().block_on(async {
        f.open().await;
        let status = f.desktop.status().unwrap();
        assert_eq!(status.files, Some(2));
        assert!(
            status.languages.contains_key("python"),
            "{:?}",
            status.languages
        );
        // The events are numbered; a status read after the last one says so, with its state
        // (a status may also be newer than the last event: the events are throttled).
        let mut progress = f.events.named("index-progress");
        for _ in 0..100 {
            if progress
                .last()
                .is_some_and(|e| e["index"]["state"] == "ready")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            progress = f.events.named("index-progress");
        }
        let status = f.desktop.status().unwrap();
        let last = progress.last().expect("index events");
        let seqs: Vec<u64> = progress
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(last["generation"].as_u64(), Some(status.generation));
        assert_eq!(last["seq"].as_u64(), Some(status.index_seq));
        assert_eq!(last["index"], serde_json::to_value(&status.index).unwrap());

        let answer = f
            .desktop
            .chat(
                ChatRequest {
                    request_id: "q1".into(),
                    question: "What does add do?".into(),
                    ..Default::default()
                },
                f.events.clone(),
            )
            .await
            .unwrap();
        let deltas: String = f
            .events
            .named("chat-delta")
            .iter()
            .filter(|d| d["requestId"] == "q1")
            .map(|d| d["text"].as_str().unwrap().to_string())
            .collect();
        // The first piece goes out alone, at once; the rest follow in batches.
        let pieces = f.events.named("chat-delta");
        assert!(pieces.len() >= 2, "the answer came in pieces: {pieces:?}");
        assert_eq!(pieces[0]["text"].as_str().unwrap().chars().count(), 7);
        assert_eq!(deltas.trim(), answer.answer);
        assert!(answer.first_token_ms.is_some());
        assert_eq!(answer.model.name, "remote");
        let c = &answer.citations[0];
        assert_eq!((c.n, c.path.as_str()), (1, answer.sources[0].path.as_str()));
        assert!(answer.edits.is_empty());

        // The citation panel reads the cited lines, and nothing outside the repository.
        let lines = f
            .desktop
            .read_lines(&c.path, c.start_line, c.end_line)
            .unwrap();
        assert_eq!(lines.start_line, c.start_line);
        assert!(!lines.lines.is_empty());
        for outside in ["../config.toml", "/etc/passwd", f.config.to_str().unwrap()] {
            let e = f.desktop.read_lines(outside, 1, 3).unwrap_err();
            assert_eq!(e.kind, ErrorKind::OutsideRepository, "{outside}: {e}");
        }
        std::os::unix::fs::symlink("/etc", f.repo.join("etc-link")).unwrap();
        let e = f.desktop.read_lines("etc-link/passwd", 1, 3).unwrap_err();
        assert_eq!(e.kind, ErrorKind::OutsideRepository);
    });
}

#[test]
fn a_fix_is_applied_inside_the_repository_and_recorded_as_accepted() {
    let f = fixture("scripted");
    rt().block_on(async {
        f.open().await;
        let fix = f
            .desktop
            .chat(
                ChatRequest {
                    request_id: "fix1".into(),
                    kind: Some("fix".into()),
                    path: Some("calc.py".into()),
                    start_line: Some(4),
                    end_line: Some(6),
                    ..Default::default()
                },
                f.events.clone(),
            )
            .await
            .unwrap();
        assert_eq!(fix.edits.len(), 1, "{}", fix.answer);
        let edit = &fix.edits[0];
        assert_eq!(
            (edit.path.as_str(), edit.start_line, edit.end_line),
            ("calc.py", 4, 6)
        );
        assert_eq!(edit.old_file.as_deref(), Some(CALC_PY));
        let expected = CALC_PY.replace(
            "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return\n",
            FIXED_ADD,
        );
        assert_eq!(edit.new_file.as_deref(), Some(expected.as_str()));
        assert_eq!(edit.model.origin, cairn_engine::ModelOrigin::Remote);
        assert!(!edit.context_files.is_empty());

        let applied = f.desktop.apply_edit(&edit.record_id).await.unwrap();
        assert_eq!(applied.path, "calc.py");
        assert_eq!(
            std::fs::read_to_string(f.repo.join("calc.py")).unwrap(),
            expected
        );
        let events = f.ledger_events();
        let suggested = events
            .iter()
            .find(|e| e["event"] == "suggested" && e["recordId"] == edit.record_id.as_str())
            .expect("a suggested record");
        assert_eq!(suggested["generator"]["origin"], "remote");
        let accepted = events
            .iter()
            .find(|e| e["event"] == "accepted" && e["refersTo"] == edit.record_id.as_str())
            .expect("an accepted record");
        assert_eq!(accepted["location"]["path"], "calc.py");
        assert!(accepted["seq"].as_u64() > suggested["seq"].as_u64());

        // Applied once: a second Apply is refused and the file stays.
        let e = f.desktop.apply_edit(&edit.record_id).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Input);
    });
}

#[test]
fn a_stale_edit_is_not_applied_and_dismiss_records_rejected() {
    let f = fixture("scripted");
    rt().block_on(async {
        f.open().await;
        let ask = |id: &str| ChatRequest {
            request_id: id.into(),
            kind: Some("fix".into()),
            path: Some("calc.py".into()),
            start_line: Some(4),
            end_line: Some(6),
            ..Default::default()
        };
        let a = f.desktop.chat(ask("a"), f.events.clone()).await.unwrap();
        let b = f.desktop.chat(ask("b"), f.events.clone()).await.unwrap();
        // Someone edits the file after the proposal.
        std::fs::write(f.repo.join("calc.py"), format!("{CALC_PY}# edited\n")).unwrap();
        let e = f
            .desktop
            .apply_edit(&a.edits[0].record_id)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Stale);
        assert!(std::fs::read_to_string(f.repo.join("calc.py"))
            .unwrap()
            .ends_with("# edited\n"));

        f.desktop.dismiss_edit(&b.edits[0].record_id).await.unwrap();
        let events = f.ledger_events();
        assert!(events
            .iter()
            .any(|e| e["event"] == "rejected" && e["refersTo"] == b.edits[0].record_id.as_str()));
        assert!(!events.iter().any(|e| e["event"] == "accepted"));

        let prov = f.desktop.provenance(None).await.unwrap();
        // Records name the model by its config name.
        let remote = &prov.ledger.by_model["remote"];
        assert_eq!(
            (remote.suggested, remote.accepted, remote.rejected),
            (2, 0, 1)
        );
        assert_eq!(prov.report.unwrap().commits, 1);
    });
}

#[test]
fn a_remote_that_refuses_the_key_is_a_clear_error_and_the_app_goes_on() {
    let f = fixture("refuse");
    rt().block_on(async {
        f.open().await;
        let e = f
            .desktop
            .chat(
                ChatRequest {
                    request_id: "q".into(),
                    question: "hello?".into(),
                    ..Default::default()
                },
                f.events.clone(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unauthorized, "{e}");
        assert!(
            e.message.contains("401") && e.action.contains("Settings"),
            "{e}"
        );
        // Still serving.
        assert!(f.desktop.read_lines("calc.py", 1, 2).is_ok());
        assert!(f.desktop.status().is_ok());
    });
}

#[test]
fn settings_are_written_to_the_user_config_and_reopen_the_models() {
    let f = fixture("scripted");
    rt().block_on(async {
        f.open().await;
        let view = f.desktop.settings();
        assert_eq!(view.chat, "remote");
        let url = view.remote.as_ref().unwrap().base_url.clone();
        // Non-GGUF file: refused, file untouched.
        let bad = f.repo.parent().unwrap().join("model.gguf");
        std::fs::write(&bad, "<html>404</html>").unwrap();
        let before = std::fs::read_to_string(&f.config).unwrap();
        let e = f
            .desktop
            .save_settings(
                SettingsForm {
                    local: Some(cairn_desktop::settings::LocalForm {
                        path: Some(bad.display().to_string()),
                        ..Default::default()
                    }),
                    remote: view.remote.clone(),
                    chat: "local".into(),
                    complete: "remote".into(),
                    ..Default::default()
                },
                f.events.clone(),
            )
            .await
            .unwrap_err();
        assert!(e.message.contains("not a GGUF model file"), "{e}");
        assert_eq!(std::fs::read_to_string(&f.config).unwrap(), before);

        let (saved, status) = f
            .desktop
            .save_settings(
                SettingsForm {
                    remote: Some(RemoteForm {
                        base_url: url,
                        model: "refuse".into(),
                    }),
                    chat: "remote".into(),
                    complete: "remote".into(),
                    ..Default::default()
                },
                f.events.clone(),
            )
            .await
            .unwrap();
        assert_eq!(saved.remote.unwrap().model, "refuse");
        assert_eq!(status.unwrap().chat_model.unwrap().model_id, "refuse");
        let text = std::fs::read_to_string(&f.config).unwrap();
        assert!(text.contains("retries = 0"), "other keys kept: {text}");
        // The reopened session owns the index again (the old one let go of the writer).
        let state = loop {
            match f.desktop.status().unwrap().index {
                cairn_engine::IndexState::Opening | cairn_engine::IndexState::Indexing { .. } => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => break other,
            }
        };
        assert!(
            matches!(state, cairn_engine::IndexState::Ready { .. }),
            "{state:?}"
        );
    });
}

#[test]
fn reports_export_in_every_format() {
    let f = fixture("scripted");
    rt().block_on(async {
        f.open().await;
        for format in ["json", "csv", "html", "sarif"] {
            let dest = f.data.join(format!("report.{format}"));
            let out = f
                .desktop
                .export_report(format, None, Some(dest.display().to_string()))
                .await
                .unwrap();
            assert_eq!(out.path, dest.display().to_string());
            let text = std::fs::read_to_string(&dest).unwrap();
            assert_eq!(text.len(), out.bytes);
            match format {
                "csv" => assert!(text.starts_with("commit,author")),
                "sarif" => assert!(text.contains("\"version\": \"2.1.0\"")),
                "html" => assert!(text.contains("<html")),
                _ => assert!(text.contains("\"type\":\"summary\"")),
            }
        }
        let e = f
            .desktop
            .export_report("pdf", None, None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Input);
    });
}

#[test]
fn recent_repositories_are_remembered() {
    let f = fixture("scripted");
    rt().block_on(async {
        f.open().await;
        let recent = f.desktop.recent();
        assert_eq!(
            recent,
            vec![std::fs::canonicalize(&f.repo)
                .unwrap()
                .display()
                .to_string()]
        );
    });
}

// ---- editors share the window's engine -------------------------------------------------

impl Fixture {
    fn socket(&self) -> PathBuf {
        self._dir.path().join("run").join("cairn").join("lsp.sock")
    }

    async fn wait_editors(&self, state: &str) -> cairn_desktop::sharing::EditorsView {
        for _ in 0..200 {
            let v = self.desktop.editors();
            if v.state == state {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "editors never reached `{state}`: {:?}",
            self.desktop.editors()
        );
    }
}

/// The `cairn` binary cargo built next to this test (target/<profile>/cairn).
fn cairn_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("cairn");
    assert!(
        p.is_file(),
        "{} is missing: build it first (`cargo build -p cairn`; `cargo test --workspace` and `make test-desktop` do)",
        p.display()
    );
    p
}

/// A real `cairn lsp --remote auto` process, spoken to as an editor would.
struct EditorClient(LspClient);

impl EditorClient {
    /// `home` gets the client's own config, data and state dirs: a daemon it started
    /// itself (instead of reaching the app) would write its ledger there, not the app's.
    fn start(socket: &Path, home: &Path) -> EditorClient {
        std::fs::create_dir_all(home).unwrap();
        let mut cmd = std::process::Command::new(cairn_binary());
        cmd.args(["lsp", "--remote", "auto", "--socket"])
            .arg(socket)
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("CAIRN_CONFIG", home.join("no-config.toml"))
            .env("CAIRN_DAEMON_IDLE_SECS", "5")
            .env("CAIRN_LOG", "warn")
            .stderr(std::process::Stdio::inherit());
        EditorClient(LspClient::spawn(cmd).unwrap())
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.0.notify(method, params);
    }

    /// A request's result (an error fails the test).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.0
            .call(method, params, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("cairn lsp --remote auto: {e}"))
    }

    fn exit(self) {
        self.0.shutdown(Duration::from_secs(10));
    }
}

#[test]
fn editors_through_cairn_lsp_remote_auto_share_the_windows_engine() {
    let f = fixture_with("scripted", true);
    let rt = rt();
    let _guard = rt.enter();
    rt.block_on(f.open());
    let serving = rt.block_on(f.wait_editors("serving"));
    assert_eq!(serving.pid, Some(std::process::id()));
    assert_eq!(serving.sessions, 0);
    assert_eq!(serving.socket, f.socket().display().to_string());
    assert_eq!(f.desktop.status().unwrap().editors.state, "serving");
    let ws = f.desktop.workspace().unwrap();
    let holders = Arc::strong_count(&ws);

    let client_home = f._dir.path().join("editor-home");
    let mut ed = EditorClient::start(&f.socket(), &client_home);
    let init = ed.request(
        "initialize",
        serde_json::json!({"processId": null, "rootUri": file_uri(&f.repo), "capabilities": {}}),
    );
    assert_eq!(init["serverInfo"]["name"], "cairn");
    ed.notify("initialized", serde_json::json!({}));
    // The editor's session holds the window's own workspace object.
    assert_eq!(f.desktop.editors().sessions, 1);
    assert_eq!(Arc::strong_count(&ws), holders + 1);
    let status = ed.request("cairn/status", Value::Null);
    assert_eq!(
        status["repo"].as_str().unwrap(),
        ws.root().display().to_string()
    );
    assert_eq!(status["chatModel"]["modelId"], "scripted");

    // A fix asked from the editor: its record lands in the window's ledger (a ledger
    // directory only the window's workspace knows), and nothing in the editor's own.
    let calc = f.repo.join("calc.py");
    ed.notify(
        "textDocument/didOpen",
        serde_json::json!({"textDocument": {"uri": file_uri(&calc), "languageId": "python", "version": 1, "text": CALC_PY}}),
    );
    let fix = ed.request(
        "cairn/chat",
        serde_json::json!({"kind": "fix", "uri": file_uri(&calc),
            "range": {"start": {"line": 3, "character": 0}, "end": {"line": 6, "character": 0}}}),
    );
    let record = fix["edits"][0]["recordId"].as_str().unwrap().to_string();
    let events = f.ledger_events();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "suggested" && e["recordId"] == record.as_str()),
        "the editor's suggestion {record} is not in the window's ledger"
    );
    assert!(
        !client_home.join("data").join("cairn").exists(),
        "the editor wrote state of its own: it did not use the window's engine"
    );

    // The conversation the editor started lives in the window's memory: the window's
    // next turn in it sends the editor's question along as history.
    let marker = "Which helper did the editor ask about, zebra-7?";
    let asked = ed.request(
        "cairn/chat",
        serde_json::json!({"question": marker, "conversationId": "shared-1"}),
    );
    assert_eq!(asked["conversationId"], "shared-1");
    let from_window = rt
        .block_on(f.desktop.chat(
            ChatRequest {
                request_id: "w1".into(),
                question: "And where is it defined?".into(),
                conversation: Some("shared-1".into()),
                ..Default::default()
            },
            f.events.clone(),
        ))
        .unwrap();
    assert_eq!(from_window.conversation_id, "shared-1");
    let prompts = PROMPTS.lock().unwrap().clone();
    let window_prompt = prompts
        .iter()
        .rev()
        .find(|p| p.contains("And where is it defined?"))
        .expect("the window's turn reached the model");
    assert!(
        window_prompt.contains("zebra-7"),
        "the window's turn lacks the editor's question: {window_prompt}"
    );

    ed.exit();
    for _ in 0..100 {
        if f.desktop.editors().sessions == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(f.desktop.editors().sessions, 0);
    assert!(f.socket().exists(), "the app still serves the next editor");
    f.desktop.shutdown();
    assert!(!f.socket().exists(), "the socket is given back on exit");
}

#[test]
fn a_daemon_already_serving_keeps_its_socket_and_the_app_takes_over_when_it_exits() {
    let f = fixture_with("scripted", true);
    let socket = f.socket();
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let home = f._dir.path().join("daemon-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut daemon = std::process::Command::new(cairn_binary())
        .args(["lsp", "--daemon", "--socket"])
        .arg(&socket)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("CAIRN_CONFIG", home.join("no-config.toml"))
        .env("CAIRN_DAEMON_IDLE_SECS", "3")
        .env("CAIRN_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(socket.exists(), "the standalone daemon did not start");
    let rt = rt();
    let _guard = rt.enter();
    rt.block_on(f.open());
    let other = rt.block_on(f.wait_editors("other-daemon"));
    assert_eq!(other.pid, Some(daemon.id()), "{other:?}");
    assert!(other.message.contains("Another Cairn engine"), "{other:?}");
    assert!(
        socket.exists(),
        "the app must not take a live daemon's socket"
    );
    // Idle, the daemon exits and removes its socket; the app then serves editors.
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
    let serving = rt.block_on(f.wait_editors("serving"));
    assert_eq!(serving.pid, Some(std::process::id()));
    assert!(socket.exists());
    f.desktop.shutdown();
}

#[test]
fn open_in_editor_runs_the_editor_at_the_line_and_refuses_paths_outside() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = fixture("scripted");
    let out = f._dir.path().join("editor-args.txt");
    let editor = f._dir.path().join("code");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > '{}'\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut opts = f.desktop.options().clone();
    opts.launcher = cairn_desktop::editor::Launcher {
        visual: None,
        editor: Some(editor.display().to_string()),
        terminal: None,
        opener: f._dir.path().join("no-opener").display().to_string(),
    };
    f.desktop = Desktop::new(opts);
    let rt = rt();
    rt.block_on(f.open());
    let opened = rt
        .block_on(f.desktop.open_in_editor("calc.py", Some(4)))
        .unwrap();
    assert_eq!(opened.via, "editor");
    let abs = std::fs::canonicalize(f.repo.join("calc.py")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("-g\n{}:4\n", abs.display())
    );
    let outside = rt
        .block_on(f.desktop.open_in_editor("../config.toml", Some(1)))
        .unwrap_err();
    assert_eq!(outside.kind, ErrorKind::OutsideRepository);
    let missing = rt
        .block_on(f.desktop.open_in_editor("gone.py", None))
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    assert!(missing.message.contains("gone.py"), "{}", missing.message);
}

/// A repository that vendors `third_party/trimlines` (MIT, 1.4.0) and has its own stub
/// of the package's function in `text.js`.
fn vendor_trimlines(f: &Fixture) {
    let pkg = f.repo.join("third_party").join("trimlines");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        pkg.join("package.json"),
        r#"{"name": "trimlines", "version": "1.4.0", "license": "MIT"}"#,
    )
    .unwrap();
    std::fs::write(
        pkg.join("index.js"),
        format!("'use strict';\n\n{TRIM_LINES_JS}\nmodule.exports = rightTrimLines;\n"),
    )
    .unwrap();
    std::fs::write(f.repo.join("text.js"), TEXT_JS).unwrap();
}

impl Fixture {
    async fn wait_for_references(&self) {
        for _ in 0..600 {
            let r = self.desktop.status().unwrap().references;
            assert_ne!(r.state, "failed", "{r:?}");
            if r.state == "ready" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the reference index never got ready: {:?}",
            self.desktop.status().unwrap().references
        );
    }

    async fn fix_text_js(&self, request_id: &str) -> cairn_desktop::desktop::ChatView {
        self.desktop
            .chat(
                ChatRequest {
                    request_id: request_id.into(),
                    kind: Some("fix".into()),
                    path: Some("text.js".into()),
                    start_line: Some(2),
                    end_line: Some(4),
                    ..Default::default()
                },
                self.events.clone(),
            )
            .await
            .unwrap()
    }
}

#[test]
fn a_proposed_edit_that_reproduces_a_dependency_names_it_beside_the_diff() {
    let f = fixture("scripted");
    vendor_trimlines(&f);
    rt().block_on(async {
        f.open().await;
        f.wait_for_references().await;
        let fix = f.fix_text_js("trim1").await;
        assert!(fix.withheld.is_empty());
        assert_eq!(fix.edits.len(), 1, "{}", fix.answer);
        let edit = &fix.edits[0];
        assert_eq!(
            (edit.path.as_str(), edit.start_line, edit.end_line),
            ("text.js", 2, 4)
        );
        assert!(edit.new_file.as_deref().unwrap().contains(TRIM_LINES_JS));
        assert_eq!(edit.references.len(), 1, "{:?}", edit.references);
        let r = &edit.references[0];
        assert_eq!(
            (r.package.as_str(), r.version.as_str(), r.licence.as_str()),
            ("trimlines", "1.4.0", "MIT")
        );
        assert!(
            r.path.ends_with("third_party/trimlines/index.js"),
            "{}",
            r.path
        );
        // The function stands at lines 3-13 of the package's file.
        assert_eq!(r.lines, [3, 13]);
        assert!(r.verbatim && r.matched_chars >= 150);
        // What the window gets, in its own names.
        let json = serde_json::to_value(&fix).unwrap();
        assert_eq!(json["edits"][0]["references"][0]["package"], "trimlines");
        assert_eq!(
            json["edits"][0]["references"][0]["matchedChars"],
            r.matched_chars
        );
        assert_eq!(json["withheld"], serde_json::json!([]));
        // The record says so too; the edit can still be applied.
        let events = f.ledger_events();
        let suggested = events
            .iter()
            .find(|e| e["event"] == "suggested" && e["recordId"] == edit.record_id.as_str())
            .unwrap();
        assert_eq!(suggested["output"]["references"][0]["package"], "trimlines");
        assert!(suggested["output"].get("withheld").is_none());
        f.desktop.apply_edit(&edit.record_id).await.unwrap();
        assert_eq!(f.desktop.status().unwrap().references.matched, 1);
    });
}

#[test]
fn a_blocked_edit_is_withheld_and_the_window_is_told_what_it_reproduces() {
    let f = fixture("scripted");
    vendor_trimlines(&f);
    let mut config = std::fs::read_to_string(&f.config).unwrap();
    config.insert_str(0, "references = \"block\"\n");
    std::fs::write(&f.config, config).unwrap();
    rt().block_on(async {
        f.open().await;
        f.wait_for_references().await;
        let fix = f.fix_text_js("trim2").await;
        assert!(fix.edits.is_empty(), "{:?}", fix.edits);
        assert_eq!(fix.withheld.len(), 1);
        let w = &fix.withheld[0];
        assert_eq!(
            (w.path.as_str(), w.start_line, w.end_line),
            ("text.js", 2, 4)
        );
        assert_eq!(w.references[0].label(), "trimlines 1.4.0 (MIT)");
        // No text of it reaches the window, and nothing can apply it.
        let json = serde_json::to_value(w).unwrap();
        assert!(json.get("newText").is_none() && json.get("newFile").is_none());
        assert_eq!(
            f.desktop.apply_edit(&w.record_id).await.unwrap_err().kind,
            ErrorKind::Input
        );
        assert_eq!(
            std::fs::read_to_string(f.repo.join("text.js")).unwrap(),
            TEXT_JS
        );
        let events = f.ledger_events();
        let suggested = events
            .iter()
            .find(|e| e["event"] == "suggested" && e["recordId"] == w.record_id.as_str())
            .unwrap();
        assert_eq!(suggested["output"]["withheld"], true);
        assert_eq!(suggested["output"]["references"][0]["licence"], "MIT");
        let st = f.desktop.status().unwrap().references;
        assert_eq!((st.matched, st.withheld), (1, 1));
    });
}
