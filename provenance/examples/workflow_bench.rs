//! Workflow benchmark: `blame` and `check` on a history of N commits (default 1,000) made
//! with real git — AI-assisted commits attested as the hooks would, with squash-merges
//! and cherry-picks among them — and the time the git hooks add to a commit, measured
//! side by side with a plain commit (git-ai claims < 100 ms per git operation).
//!
//! Run: `cargo run --release -p cairn-provenance --example workflow_bench -- [--commits N]
//! [--samples N] [--keep | --reuse DIR] [--hook-bin PATH]` (bench/ledger/workflows.sh
//! wraps it). Prints a Markdown table. `--keep` leaves the repository, ledger and witness
//! on disk; `--reuse` measures such a directory again without building its history;
//! `--hook-bin` has the hooks run another build of this example.
//!
//! The hooked commits run real `post-commit` and `prepare-commit-msg` hooks; the hook
//! process is this example (`hook` mode), which does what `cairn attest HEAD` and
//! `cairn attest --trailer-for` do through the same library calls. The `cairn` binary's own
//! start-up is measured on its own row, since it is added on top.

use cairn_provenance::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn git(repo: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn opts(home: &Path) -> LedgerOptions {
    LedgerOptions::default()
        .with_dir(home.join("ledger"))
        .with_key_store(Arc::new(FileKeyStore::new(home.join("keys"))))
        .with_witness_dir(home.join("witness"))
}

fn generator(model: &str) -> Generator {
    Generator {
        tool_version: "0.1.0".into(),
        model_id: model.into(),
        origin: Origin::Local,
        gguf_sha256: Some("ab".repeat(32)),
        endpoint: None,
        remote_model: None,
        runtime: Some("llama.cpp".into()),
        sampling: Default::default(),
    }
}

/// Suggest and accept `text` at `path:line` (what an editor session records).
fn accept(l: &Ledger, path: &str, line: u32, text: &str, model: &str) {
    let loc = Location {
        base_commit: None,
        path: path.into(),
        range: Range::new(Position::new(line, 0), Position::new(line, 0)),
    };
    let id = l
        .append(Event::Suggested {
            generator: generator(model),
            input: InputFacts {
                mode: Mode::Fim,
                template_digest: "cd".repeat(32),
                prompt: format!("p{line}"),
                store_prompt: false,
                context: vec![],
                redactions: Default::default(),
                budget: None,
            },
            output: text.into(),
            location: loc.clone(),
            references: Vec::new(),
            withheld: false,
        })
        .unwrap();
    l.append(Event::Accepted {
        record_id: id,
        partial: false,
        final_text: text.into(),
        location: loc,
    })
    .unwrap();
}

struct Repo {
    root: PathBuf,
    lines: Vec<String>,
    n: usize,
}

impl Repo {
    /// Append one AI line (accepted in the ledger) and one human line to `src/app.rs`.
    fn edit(&mut self, l: &Ledger, tag: &str) {
        let ai = format!("    let ai_{tag}_{} = compute({});", self.n, self.n);
        accept(
            l,
            "src/app.rs",
            self.lines.len() as u32,
            &format!("{ai}\n"),
            "qwen2.5-coder",
        );
        self.lines.push(ai);
        self.lines
            .push(format!("    let human_{tag}_{} = {};", self.n, self.n));
        self.n += 1;
        std::fs::write(self.root.join("src/app.rs"), self.lines.join("\n") + "\n").unwrap();
    }
    fn commit(&self, msg: &str) -> String {
        git(&self.root, &["add", "-A"]);
        git(&self.root, &["commit", "-q", "-m", msg]);
        git(&self.root, &["rev-parse", "HEAD"])
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `hook <kind> <home> [msg file]`: what the installed hooks run.
fn hook(args: &[String]) {
    let home = PathBuf::from(&args[1]);
    let repo = git::repo_root(Path::new(".")).unwrap();
    match args[0].as_str() {
        "post-commit" => {
            attest(&repo, "HEAD", &opts(&home)).unwrap();
        }
        "prepare-commit-msg" => {
            let models = staged_ai_models(&repo, &opts(&home)).unwrap();
            add_assisted_by(Path::new(&args[2]), &models).unwrap();
        }
        other => panic!("unknown hook {other}"),
    }
}

/// The program the hooks run: this example, or `--hook-bin PATH` (another build of it,
/// for a before/after on one history).
fn hook_bin() -> PathBuf {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == "--hook-bin")
        .and_then(|i| a.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_exe().unwrap())
}

fn install_hooks(repo: &Path, home: &Path, which: &[&str]) {
    let me = hook_bin();
    let hooks = repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for name in ["post-commit", "prepare-commit-msg"] {
        let _ = std::fs::remove_file(hooks.join(name));
    }
    for (name, extra) in [("post-commit", ""), ("prepare-commit-msg", " \"$1\"")] {
        if !which.contains(&name) {
            continue;
        }
        let p = hooks.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nexec '{}' hook {name} '{}'{extra}\n",
                me.display(),
                home.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Median time of `k` commits that each add one AI and one human line, with or without hooks.
fn time_commits(r: &mut Repo, l: &Ledger, k: usize, tag: &str) -> Duration {
    let mut times = Vec::new();
    for i in 0..k {
        r.edit(l, &format!("{tag}{i}"));
        git(&r.root, &["add", "-A"]);
        let t = Instant::now();
        git(&r.root, &["commit", "-q", "-m", &format!("{tag} {i}")]);
        times.push(t.elapsed());
    }
    median(times)
}

/// Build the history: AI-assisted commits; every 25th a two-commit branch squash-merged
/// (its attribution recovered from the branch's notes), every 25th + 12 a
/// cherry-pick -x. Returns its row of the table.
fn build_history(l: &Ledger, r: &mut Repo, commits: usize) -> (String, String, String) {
    let root = r.root.clone();
    let t = Instant::now();
    let (mut squashes, mut picks) = (0, 0);
    std::fs::write(root.join("src/app.rs"), "fn app() {\n").unwrap();
    let c0 = r.commit("start");
    attest_with(l, &c0, None).unwrap();
    let mut made = 1;
    while made < commits {
        if made % 25 == 0 {
            git(&root, &["checkout", "-q", "-b", "side"]);
            let mut side = Vec::new();
            let saved = (r.lines.clone(), r.n);
            for _ in 0..2 {
                r.edit(l, "side");
                let c = r.commit("side");
                attest_with(l, &c, None).unwrap();
                side.push(c);
            }
            git(&root, &["checkout", "-q", "main"]);
            (r.lines, r.n) = (saved.0, saved.1 + 2);
            git(&root, &["merge", "-q", "--squash", "side"]);
            git(&root, &["commit", "-q", "-m", "squashed side (#PR)"]);
            git(&root, &["branch", "-q", "-D", "side"]);
            let sq = git(&root, &["rev-parse", "HEAD"]);
            attest_recovering(l, &sq, &Recovery::From(side)).unwrap();
            r.lines = std::fs::read_to_string(root.join("src/app.rs"))
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            squashes += 1;
            made += 1;
        } else if made % 25 == 12 {
            git(&root, &["checkout", "-q", "-b", "pick"]);
            std::fs::write(
                root.join(format!("src/pick{made}.rs")),
                format!("pub fn pick{made}() {{}}\n"),
            )
            .unwrap();
            accept(
                l,
                &format!("src/pick{made}.rs"),
                0,
                &format!("pub fn pick{made}() {{}}\n"),
                "qwen2.5-coder",
            );
            let p = r.commit("pick source");
            attest_with(l, &p, None).unwrap();
            git(&root, &["checkout", "-q", "main"]);
            git(&root, &["cherry-pick", "-x", &p]);
            git(&root, &["branch", "-q", "-D", "pick"]);
            attest_with(l, "HEAD", None).unwrap();
            picks += 1;
            made += 1;
        } else {
            r.edit(l, "main");
            let c = r.commit("work");
            attest_with(l, &c, None).unwrap();
            made += 1;
        }
    }
    let build = t.elapsed();
    let records = l.entries().unwrap().len();
    (
        format!("history: {commits} commits ({squashes} squash-merges, {picks} cherry-picks), each attested"),
        format!("{:.1} s", build.as_secs_f64()),
        format!("{records} ledger records; src/app.rs {} lines", r.lines.len()),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("hook") {
        return hook(&args[1..]);
    }
    let samples = arg("--samples", 21);
    // `--reuse DIR`: a directory `--keep` left; its history is measured again (blame,
    // check, the hooks) without building it.
    let reuse = args
        .iter()
        .position(|a| a == "--reuse")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let tmp = match &reuse {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("cairn-workflow-bench")
                .tempdir_in(
                    std::env::var("BENCH_DIR")
                        .unwrap_or_else(|_| std::env::temp_dir().to_string_lossy().into()),
                )
                .unwrap(),
        ),
    };
    let home = reuse.unwrap_or_else(|| tmp.as_ref().unwrap().path().to_path_buf());
    let root = home.join("repo");
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let (l, mut r) = if tmp.is_some() {
        std::fs::create_dir_all(root.join("src")).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        git(&root, &["config", "user.name", "Bench"]);
        git(&root, &["config", "user.email", "bench@example.com"]);
        git(&root, &["config", "commit.gpgsign", "false"]);
        git(&root, &["config", "notes.rewriteRef", "refs/notes/cairn"]);
        let l = Ledger::open(&root, opts(&home)).unwrap();
        let mut r = Repo {
            root: root.clone(),
            lines: vec!["fn app() {".into()],
            n: 0,
        };
        rows.push(build_history(&l, &mut r, arg("--commits", 1_000)));
        (l, r)
    } else {
        let l = Ledger::open(&root, opts(&home)).unwrap();
        let lines: Vec<String> = std::fs::read_to_string(root.join("src/app.rs"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        // Tags stay unique: the file only grows.
        let n = lines.len();
        let r = Repo {
            root: root.clone(),
            lines,
            n,
        };
        (l, r)
    };
    let commits: usize = git(&root, &["rev-list", "--count", "HEAD"])
        .parse()
        .unwrap();

    // blame and check over the whole history.
    let mut bt = Vec::new();
    let mut n_ai = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let b = blame(&root, "src/app.rs", None).unwrap();
        bt.push(t.elapsed());
        n_ai = b.iter().filter(|e| e.class == "ai").count();
    }
    rows.push((
        format!(
            "blame src/app.rs ({} lines, history of {commits} commits)",
            r.lines.len()
        ),
        ms(median(bt)),
        format!("{n_ai} ai lines; median of 5"),
    ));
    let mut ct = Vec::new();
    let mut regions = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let c = check(&root, None, true, &CheckOptions::default()).unwrap();
        ct.push(t.elapsed());
        regions = c.ai_regions;
    }
    rows.push((
        format!("check --require-review over all {commits} commits"),
        ms(median(ct)),
        format!("{regions} AI regions; median of 5"),
    ));

    // Hooks: plain commits and hooked commits in the same repository, interleaved in
    // blocks so both see the same disk and load.
    let mut plain = Vec::new();
    let mut post = Vec::new();
    let mut hooked = Vec::new();
    let k = samples / 3;
    for round in 0..3 {
        install_hooks(&root, &home, &[]);
        plain.push(time_commits(&mut r, &l, k, &format!("plain{round}")));
        install_hooks(&root, &home, &["post-commit"]);
        post.push(time_commits(&mut r, &l, k, &format!("post{round}")));
        install_hooks(&root, &home, &["post-commit", "prepare-commit-msg"]);
        hooked.push(time_commits(&mut r, &l, k, &format!("hooked{round}")));
    }
    let (p, pc, h) = (median(plain), median(post), median(hooked));
    let last = git(&root, &["rev-parse", "HEAD"]);
    let notes = git::read_notes(&root, std::slice::from_ref(&last)).unwrap();
    assert!(notes.contains_key(&last), "the hook attested the commit");
    let msg = git(&root, &["log", "-1", "--format=%B"]);
    assert!(msg.contains("Assisted-by: cairn:qwen2.5-coder"), "{msg}");
    rows.push((
        "git commit, no hooks".into(),
        ms(p),
        format!("median of {} (3 blocks)", 3 * (samples / 3)),
    ));
    rows.push((
        "git commit + post-commit hook (attest, note, witness refresh)".into(),
        ms(pc),
        format!("added {}", ms(pc.saturating_sub(p))),
    ));
    rows.push((
        "git commit + prepare-commit-msg (Assisted-by trailer) + post-commit hooks".into(),
        ms(h),
        format!(
            "added {}; ledger {} records",
            ms(h.saturating_sub(p)),
            l.entries().unwrap().len()
        ),
    ));
    if let Some(bin) = std::env::var_os("CAIRN_BIN")
        .map(PathBuf::from)
        .filter(|b| b.exists())
    {
        let mut st = Vec::new();
        for _ in 0..11 {
            let t = Instant::now();
            let o = Command::new(&bin).arg("--version").output().unwrap();
            assert!(o.status.success());
            st.push(t.elapsed());
        }
        rows.push((
            format!(
                "`{} --version` start-up (per hook call, on top)",
                bin.display()
            ),
            ms(median(st)),
            "median of 11".into(),
        ));
    }

    if let Some(tmp) = tmp.filter(|_| args.iter().any(|a| a == "--keep")) {
        eprintln!("kept {}", tmp.keep().display());
    }
    println!("| measurement | time | detail |\n|---|---|---|");
    for (a, b, c) in rows {
        println!("| {a} | {b} | {c} |");
    }
}
