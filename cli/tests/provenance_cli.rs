//! `cairn init`, the hooks and `cairn verify` on a real repository: the hooks keep the
//! ledger's checkpoint in git and in the local witness, and a cut-off tail fails verify.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().to_path_buf();
        let repo = home.join("repo");
        std::fs::create_dir(&repo).unwrap();
        let e = Env {
            _tmp: tmp,
            home,
            repo,
        };
        e.git(&["init", "-q", "-b", "main"]);
        e.git(&["config", "user.name", "Dev One"]);
        e.git(&["config", "user.email", "dev@example.com"]);
        e.git(&["config", "commit.gpgsign", "false"]);
        e
    }

    fn env(&self, c: &mut Command) {
        c.env(
            "CAIRN_KEY_STORE",
            format!("file:{}", self.home.join("keys").display()),
        )
        .env("XDG_DATA_HOME", self.home.join("data"))
        .env("XDG_STATE_HOME", self.home.join("state"))
        .env("CAIRN_CONFIG", self.home.join("no-config.toml"))
        .env_remove("CAIRN_DATA_DIR")
        .env_remove("CAIRN_LEDGER_DIR")
        .env_remove("CAIRN_WITNESS_DIR")
        .env_remove("CAIRN_REPO");
    }

    fn git(&self, args: &[&str]) -> String {
        let mut c = Command::new("git");
        c.arg("-C").arg(&self.repo).args(args);
        self.env(&mut c);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn cairn(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.arg("--repo")
            .arg(&self.repo)
            .args(args)
            .current_dir(&self.repo);
        self.env(&mut c);
        c.output().unwrap()
    }

    fn commit(&self, file: &str, text: &str) {
        std::fs::write(self.repo.join(file), text).unwrap();
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", file]);
    }

    fn ledger_file(&self) -> PathBuf {
        find(&self.home.join("data"), "ledger.jsonl").expect("the hook wrote a ledger")
    }
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn hooks_witness_the_ledger_and_verify_catches_a_cut_tail() {
    let e = Env::new();
    let init = e.cairn(&["init"]);
    assert!(init.status.success(), "{}", text(&init));
    e.commit("a.txt", "one\n");
    e.commit("b.txt", "two\n");

    let ok = e.cairn(&["verify"]);
    let out = text(&ok);
    assert!(ok.status.success(), "{out}");
    assert!(
        out.contains("checked witnesses: 3 checkpoints of this ledger"),
        "{out}"
    );
    assert!(out.contains("0 after it are unwitnessed"), "{out}");
    assert!(out.contains(", this device)"), "{out}");
    assert!(out.contains("ssh-ed25519 AAAA"), "{out}");
    // The git witness is a notes ref beside the attribution notes.
    assert!(e
        .git(&["for-each-ref", "--format=%(refname)"])
        .contains("refs/notes/cairn-checkpoints"));
    // Two versions in the git witness's history, one file in the local witness, which
    // is in the state directory, not beside the ledger.
    assert_eq!(
        e.git(&["rev-list", "--count", "refs/notes/cairn-checkpoints"])
            .trim(),
        "2"
    );
    assert!(e.home.join("state/cairn/witness").is_dir());

    let ledger = e.ledger_file();
    let body = std::fs::read_to_string(&ledger).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    std::fs::write(&ledger, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let bad = e.cairn(&["verify"]);
    let out = text(&bad);
    assert!(!bad.status.success(), "{out}");
    assert!(
        out.contains("FAIL checkpoint cairn.dev/ledger/")
            && out.contains("records were removed from its end"),
        "{out}"
    );
    assert!(out.contains("(refs/notes/cairn-checkpoints@"), "{out}");
    assert!(out.contains("(local witness "), "{out}");
}
