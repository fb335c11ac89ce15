//! bench/lsp: inline-completion latency of `cairn lsp` during a replayed typing session,
//! against the model layer called directly with the same prompt, in one run.
//!
//! The body of a real function (in a copy of a real repository) is deleted and typed back
//! one character at a time: per keystroke a `textDocument/didChange` (incremental, the one
//! character) and a `textDocument/inlineCompletion` (automatic trigger), waiting for the
//! answer. When the server called the model (not a typing-through hit), the same prompt
//! (`Workspace::completion_request` on an in-process workspace with the same text) goes to
//! `Router::complete` directly; overhead = server latency − direct latency. The server and
//! the direct call alternate, never overlap: on a small machine they would share cores.
//! A burst variant sends every keystroke's request without waiting (a fast typist's
//! editor); `--breakdown` replays the session on the in-process `Workspace::complete` to
//! split the engine's time (context, ledger, the rest) from the LSP layer.
//!
//! bench/lsp/run [--repo DIR] [--file PATH] [--function NAME] [--keystrokes N] [--json OUT]
//!               [--no-burst] [--burst-interval-ms MS] [--breakdown] [--log FILTER] [--keep]
//!
//! `--peers` runs the same session against `cairn lsp` and two peer servers instead (see
//! [`peers`]): [--only cairn,llama-cpp-python,lsp-ai] [--lsp-ai PATH] [--python PATH]
//! [--gguf PATH] [--threads N] [--threads-batch N] [--peer-prefix-tokens N]
//! [--peer-suffix-tokens N] [--peer-max-tokens N].
//!
//! The phases, one module each: [`session`] (the function and what is typed),
//! [`sandbox`] (the isolated copy and its environment), [`server`] (`cairn lsp` up and
//! indexed, over [`client`]), [`inprocess`] (the peer workspace), [`sequential`],
//! [`burst`], [`breakdown`], [`probes`], then [`summary`], [`report`] (the tables) and
//! [`json`] (the file).

use std::path::{Path, PathBuf};
use std::process::Command;

mod breakdown;
mod burst;
mod client;
mod doc;
mod inprocess;
mod json;
mod peers;
mod probes;
mod report;
mod sandbox;
mod sequential;
mod server;
mod session;
mod stats;
mod summary;

use doc::Doc;
use inprocess::InProcess;
use sandbox::Sandbox;
use server::Server;
use summary::Summary;

pub(crate) struct Args {
    pub(crate) repo: PathBuf,
    pub(crate) file: String,
    pub(crate) function: Option<String>,
    pub(crate) keystrokes: usize,
    pub(crate) cairn: PathBuf,
    pub(crate) json: Option<PathBuf>,
    pub(crate) burst: bool,
    pub(crate) burst_interval_ms: u64,
    pub(crate) breakdown: bool,
    pub(crate) log: Option<String>,
    pub(crate) keep: bool,
    /// `--peers`: the comparison with the peer servers instead of the other modes.
    pub(crate) peers: Option<peers::Options>,
}

pub(crate) fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("bench_lsp: {msg}");
    std::process::exit(2)
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn args() -> Args {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        repo: git(manifest, &["rev-parse", "--show-toplevel"])
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("..")),
        file: "indexer/src/walk.rs".into(),
        function: None,
        keystrokes: 110,
        cairn: std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("../target"))
            .join("debug/cairn"),
        json: None,
        burst: true,
        burst_interval_ms: 0,
        breakdown: false,
        log: None,
        keep: false,
        peers: None,
    };
    let mut function_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| fail(format!("{k} needs a value")))
        };
        match k.as_str() {
            "--repo" => a.repo = PathBuf::from(value()),
            "--file" => a.file = value(),
            "--function" => {
                a.function = Some(value());
                function_given = true;
            }
            "--keystrokes" => {
                a.keystrokes = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--keystrokes N (0: the whole body)"))
            }
            "--cairn" => a.cairn = PathBuf::from(value()),
            "--json" => a.json = Some(PathBuf::from(value())),
            "--no-burst" => a.burst = false,
            "--burst-interval-ms" => {
                a.burst_interval_ms = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--burst-interval-ms MS"))
            }
            "--breakdown" => a.breakdown = true,
            "--log" => a.log = Some(value()),
            "--keep" => a.keep = true,
            "--peers" => {
                a.peers.get_or_insert_with(peers::Options::new);
            }
            "--only"
            | "--lsp-ai"
            | "--python"
            | "--gguf"
            | "--threads"
            | "--threads-batch"
            | "--peer-prefix-tokens"
            | "--peer-suffix-tokens"
            | "--peer-max-tokens" => {
                let v = value();
                let o = a.peers.get_or_insert_with(peers::Options::new);
                let num = |v: &str| -> u32 {
                    v.parse()
                        .unwrap_or_else(|_| fail(format!("{k} needs a number, got {v:?}")))
                };
                match k.as_str() {
                    "--only" => {
                        o.only = v.split(',').map(|s| s.trim().to_string()).collect();
                        if let Some(bad) = o.only.iter().find(|s| !peers::ALL.contains(&s.as_str()))
                        {
                            fail(format!(
                                "--only: unknown server {bad:?}; known: {}",
                                peers::ALL.join(",")
                            ));
                        }
                    }
                    "--lsp-ai" => o.lsp_ai = Some(PathBuf::from(v)),
                    "--python" => o.python = PathBuf::from(v),
                    "--gguf" => o.gguf = Some(PathBuf::from(v)),
                    "--threads" => o.threads = num(&v) as i32,
                    "--threads-batch" => o.threads_batch = num(&v) as i32,
                    "--peer-prefix-tokens" => o.prefix_tokens = Some(num(&v)),
                    "--peer-suffix-tokens" => o.suffix_tokens = Some(num(&v)),
                    _ => o.max_tokens = Some(num(&v)),
                }
            }
            other => fail(format!(
                "unknown argument {other}; see the top of bench/lsp/src/main.rs"
            )),
        }
    }
    if !function_given && a.file == "indexer/src/walk.rs" {
        a.function = Some("read_file".into());
    }
    a
}

fn main() {
    let a = args();
    let (repo_src, session) = session::load(&a);
    let sandbox = Sandbox::prepare(&a, &repo_src, &session);
    sandbox.announce(&a, &session);
    if let Some(o) = &a.peers {
        peers::run(&a, o, &repo_src, &session, &sandbox);
        if a.keep {
            sandbox.keep();
        }
        return;
    }
    let load_start = stats::loadavg();

    let Server {
        mut client,
        model_name,
    } = Server::start(&a.cairn, &sandbox);
    let local = InProcess::open(&sandbox.repo);
    let mut doc = Doc::new(&sandbox.file, &a.file);

    let seq = sequential::run(&mut client, &local, &mut doc, &session);
    let burst = if a.burst {
        burst::run(&mut client, &local, &mut doc, &session, &seq, &a)
    } else {
        burst::Burst::default()
    };
    let memory = server::stop(client);
    let timings = if a.breakdown {
        breakdown::run(&local, &mut doc, &session, seq.start_pos)
    } else {
        Vec::new()
    };
    let probes = probes::run(&sandbox);
    let load_end = stats::loadavg();

    let summary = Summary::of(&seq.keys);
    let split = a
        .breakdown
        .then(|| summary::Breakdown::of(&timings, &summary));
    let run = report::Run {
        args: &a,
        repo_src: &repo_src,
        commit: sandbox.commit.as_deref(),
        session: &session,
        model_name: &model_name,
        load_start: &load_start,
        load_end: &load_end,
    };
    report::print(&run, &summary, &seq, &burst, &memory);
    if let Some(b) = &split {
        report::print_breakdown(b, &probes);
    }
    if let Some(out) = &a.json {
        let parts = json::Parts {
            run: &run,
            identity: &local.identity,
            summary: &summary,
            seq: &seq,
            burst: &burst,
            breakdown: split.as_ref().map(|b| (b, timings.as_slice())),
            probes: &probes,
            memory: &memory,
        };
        json::write(out, &parts);
    }
    // The workspace goes first; the runtime, then the copy (unless kept), at the end.
    drop(local.ws);
    if a.keep {
        sandbox.keep();
    }
}
