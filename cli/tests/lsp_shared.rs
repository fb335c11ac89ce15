//! `cairn lsp --remote auto`: editors share one engine through a per-user daemon.
//! Real processes, real socket, the default model.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Client {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    next: u64,
}

impl Client {
    fn start(socket: &Path, env: &[(&str, String)], cwd: &Path) -> Client {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(["lsp", "--remote", "auto", "--socket"])
            .arg(socket)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Client {
            child,
            stdin,
            out,
            next: 1,
        }
    }

    fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn read(&mut self) -> Value {
        let mut len = 0;
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "server closed");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.out.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self.read();
            if m.get("method").is_some() {
                if let Some(rid) = m.get("id") {
                    // A request from the server (progress tokens): accept it.
                    self.send(&json!({"jsonrpc": "2.0", "id": rid, "result": null}));
                }
                continue;
            }
            if m["id"] == json!(id) {
                return m;
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn status_until_settled(&mut self) -> Value {
        let t = Instant::now();
        loop {
            let s = self.request("cairn/status", Value::Null);
            let state = s["result"]["index"]["state"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !matches!(state.as_str(), "opening" | "indexing")
                || t.elapsed() > Duration::from_secs(60)
            {
                return s["result"].clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        let _ = self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        drop(self.stdin);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the forwarder did not exit after shutdown/exit");
    }
}

#[test]
fn two_editors_share_one_engine_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a + b\n").unwrap();
    let socket = dir.path().join("run/lsp.sock");
    let env = vec![
        (
            "CAIRN_CONFIG",
            dir.path().join("config.toml").display().to_string(),
        ),
        (
            "CAIRN_KEY_STORE",
            format!("file:{}", dir.path().join("keys").display()),
        ),
        (
            "XDG_DATA_HOME",
            dir.path().join("data").display().to_string(),
        ),
        ("CAIRN_DAEMON_IDLE_SECS", "2".to_string()),
    ];
    let root_uri = format!("file://{}", repo.display());
    let init = json!({"processId": null, "rootUri": root_uri, "capabilities": {}});

    // The first editor starts the daemon; the second reaches the same one.
    let mut a = Client::start(&socket, &env, dir.path());
    assert!(a.request("initialize", init.clone())["result"]["capabilities"].is_object());
    a.notify("initialized", json!({}));
    assert!(socket.exists());
    let mut b = Client::start(&socket, &env, dir.path());
    assert!(b.request("initialize", init)["result"]["capabilities"].is_object());
    b.notify("initialized", json!({}));

    let sa = a.status_until_settled();
    let sb = b.status_until_settled();
    // One workspace: neither session is the read-only second opener of the index.
    assert_eq!(sa["index"]["state"], "ready", "{sa}");
    assert_eq!(sb["index"]["state"], "ready", "{sb}");
    assert_eq!(sa["ledger"]["path"], sb["ledger"]["path"]);

    // Both complete through the one model.
    let uri = format!("{root_uri}/calc.py");
    for c in [&mut a, &mut b] {
        c.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                   "text": "def add(a, b):\n    return a + b\n"}}),
        );
        let r = c.request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 11},
                   "context": {"triggerKind": 2}}),
        );
        assert!(r["result"]["items"].is_array(), "{r}");
    }
    a.stop();
    b.stop();

    // With no editor left the daemon goes away and removes its socket.
    let t = Instant::now();
    while socket.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!socket.exists(), "the idle daemon should exit");
}
