//! `cairn lsp --remote auto`: editors share one engine through a per-user daemon.
//! Real processes, real socket, the default model.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_lsp_client::LspClient;
use serde_json::{json, Value};

/// An editor's `cairn lsp --remote auto`, run in `cwd` with `env`.
fn editor(socket: &Path, env: &[(&str, String)], cwd: &Path) -> LspClient {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.args(["lsp", "--remote", "auto", "--socket"])
        .arg(socket)
        .current_dir(cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    LspClient::spawn(c).unwrap()
}

const WAIT: Duration = Duration::from_secs(120);

fn status_until_settled(c: &mut LspClient) -> Value {
    let t = Instant::now();
    loop {
        let s = c.call("cairn/status", Value::Null, WAIT).unwrap();
        let state = s["index"]["state"].as_str().unwrap_or("").to_string();
        if !matches!(state.as_str(), "opening" | "indexing") || t.elapsed() > WAIT {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(c: LspClient) {
    assert!(
        c.shutdown(Duration::from_secs(20)).is_some(),
        "the forwarder did not exit after shutdown/exit"
    );
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
    let mut a = editor(&socket, &env, dir.path());
    assert!(a.call("initialize", init.clone(), WAIT).unwrap()["capabilities"].is_object());
    a.notify("initialized", json!({}));
    assert!(socket.exists());
    let mut b = editor(&socket, &env, dir.path());
    assert!(b.call("initialize", init, WAIT).unwrap()["capabilities"].is_object());
    b.notify("initialized", json!({}));

    let sa = status_until_settled(&mut a);
    let sb = status_until_settled(&mut b);
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
        let r = c
            .call(
                "textDocument/inlineCompletion",
                json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 11},
                       "context": {"triggerKind": 2}}),
                WAIT,
            )
            .unwrap();
        assert!(r["items"].is_array(), "{r}");
    }
    stop(a);
    stop(b);

    // With no editor left the daemon goes away and removes its socket.
    let t = Instant::now();
    while socket.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!socket.exists(), "the idle daemon should exit");
}
