//! What agents reach through the engine (the MCP server's operations) on real parts: a git
//! repository, the real index and ledger (file key store), no model. An agent's recorded
//! edit is attributed at commit time like Cairn's own suggestions.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{git, init_and_commit, options_in};

use cairn_engine::{AgentChange, AgentEdit, IndexState, ModelOrigin, Workspace};

struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    ws: Arc<Workspace>,
}

const LIB: &str = "def parse_config(text):\n    \"\"\"Read key = value lines.\"\"\"\n    out = {}\n    for line in text.splitlines():\n        k, v = line.split(\"=\", 1)\n        out[k.strip()] = v.strip()\n    return out\n";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(repo.join("src/config.py"), LIB).unwrap();
    std::fs::write(
        repo.join("src/app.py"),
        "from config import parse_config\n\n\ndef main(path):\n    cfg = parse_config(open(path).read())\n    return cfg\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside\n").unwrap();
    init_and_commit(&repo);
    let opts = options_in(dir.path());
    let ws = Workspace::open_with(&repo, Err("no model in this test".into()), opts).unwrap();
    let repo = ws.root().to_path_buf();
    Fixture { dir, repo, ws }
}

async fn ready(ws: &Workspace) {
    let state = tokio::time::timeout(Duration::from_secs(60), ws.index_settled())
        .await
        .unwrap();
    assert!(matches!(state, IndexState::Ready { .. }), "{state:?}");
}

#[test]
fn paths_stay_inside_the_repository() {
    let f = fixture();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(f.dir.path().join("secret.txt"), f.repo.join("out")).unwrap();
        std::os::unix::fs::symlink(f.repo.join(".git/config"), f.repo.join("gitcfg")).unwrap();
    }
    for bad in [
        "../secret.txt",
        "src/../../secret.txt",
        f.dir.path().join("secret.txt").to_str().unwrap(),
        "/etc/passwd",
        "out",
        ".git/config",
        "gitcfg",
        "",
        ".",
    ] {
        let err = f.ws.read_lines(bad, 1, None, 10_000);
        assert!(err.is_err(), "{bad:?} was served: {err:?}");
    }
    let ok =
        f.ws.read_lines("src/config.py", 2, Some(3), 10_000)
            .unwrap();
    assert_eq!(ok.path, "src/config.py");
    assert_eq!((ok.start_line, ok.end_line, ok.total_lines), (2, 3, 7));
    assert_eq!(ok.lines[1], "    out = {}");
    let abs = f.repo.join("src/config.py");
    let same = f.ws.read_lines(abs.to_str().unwrap(), 1, Some(1), 10_000);
    assert_eq!(same.unwrap().lines, ["def parse_config(text):"]);
    let cut = f.ws.read_lines("src/config.py", 1, None, 40).unwrap();
    assert!(cut.truncated && cut.lines.len() < 7, "{cut:?}");
    let past =
        f.ws.read_lines("src/config.py", 99, None, 10_000)
            .unwrap_err();
    assert!(past.to_string().contains("7 lines"), "{past}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_context_names_the_definitions_a_completion_would_see() {
    let f = fixture();
    ready(&f.ws).await;
    let (path, snippets) = f.ws.completion_context("src/app.py", 5, 11).await.unwrap();
    assert_eq!(path, "src/app.py");
    assert!(
        snippets
            .iter()
            .any(|s| s.path == "src/config.py" && s.text.contains("def parse_config")),
        "{snippets:?}"
    );
    assert!(f.ws.completion_context("src/app.py", 99, 1).await.is_err());
    assert!(f
        .ws
        .completion_context("../secret.txt", 1, 1)
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_edit_is_recorded_and_attributed_at_commit() {
    let f = fixture();
    let added = "\n\ndef dump_config(cfg):\n    \"\"\"Write key = value lines, sorted.\"\"\"\n    return \"\\n\".join(f\"{k} = {v}\" for k, v in sorted(cfg.items()))\n";
    std::fs::write(f.repo.join("src/config.py"), format!("{LIB}{added}")).unwrap();
    let edit = AgentEdit {
        tool: "claude-code".into(),
        tool_version: Some("2.0.14".into()),
        model: "claude-sonnet-4-5".into(),
        origin: None,
        changes: vec![AgentChange::Lines {
            path: "src/config.py".into(),
            start_line: 10,
            end_line: 12,
        }],
        prompt_digest: Some(format!("sha256:{}", "0f".repeat(32))),
        trace: None,
    };
    let rec = f.ws.record_agent_edit(edit).await.unwrap();
    assert_eq!(rec.origin, "remote");
    assert_eq!(rec.changes.len(), 1);
    let c = &rec.changes[0];
    assert_eq!((c.start_line, c.end_line), (10, 12));

    // Nothing to attribute, a file the agent has not written, lines not there: refused,
    // and nothing is written for them.
    let before = std::fs::read_to_string(rec.ledger.as_ref().unwrap()).unwrap();
    for bad in [
        AgentChange::Lines {
            path: "src/config.py".into(),
            start_line: 8,
            end_line: 9,
        },
        AgentChange::Text {
            path: "src/new.py".into(),
            text: "x = 1\n".into(),
            start_line: None,
        },
        AgentChange::Text {
            path: "src/config.py".into(),
            text: "def not_there():\n".into(),
            start_line: None,
        },
        AgentChange::Lines {
            path: "../secret.txt".into(),
            start_line: 1,
            end_line: 1,
        },
    ] {
        let e =
            f.ws.record_agent_edit(AgentEdit {
                tool: "t".into(),
                model: "m".into(),
                origin: Some(ModelOrigin::Local),
                changes: vec![bad.clone()],
                ..Default::default()
            })
            .await;
        assert!(e.is_err(), "{bad:?} was recorded");
    }
    let after = std::fs::read_to_string(rec.ledger.as_ref().unwrap()).unwrap();
    assert_eq!(before, after, "a refused edit wrote records");

    git(&f.repo, &["add", "."]);
    git(&f.repo, &["commit", "-qm", "dump_config"]);
    let prov = f.ws.provenance();
    let out = prov.attest("HEAD").unwrap();
    assert_eq!(out.ai_lines, 3, "{out:?}");
    assert_eq!(out.models, ["claude-sonnet-4-5"]);
    let blame = prov.blame_lines(Path::new("src/config.py"), None).unwrap();
    let ai: Vec<_> = blame.iter().filter(|b| b.class == "ai").collect();
    assert_eq!(ai.iter().map(|b| b.line).collect::<Vec<_>>(), [10, 11, 12]);
    assert!(ai
        .iter()
        .all(|b| b.tool.as_deref() == Some("claude-code 2.0.14")
            && b.origin.as_deref() == Some("remote")
            && b.mode.as_deref() == Some("agent")
            && b.record_id.as_deref() == Some(c.record_id.as_str())));
    assert!(blame
        .iter()
        .filter(|b| b.line < 8)
        .all(|b| b.class == "unattested"));
    let check = prov
        .check(Some("HEAD~1..HEAD"), true, &Default::default())
        .unwrap();
    assert!(!check.passed && check.unreviewed.len() == 1, "{check:?}");
}
