//! `--peers`: the typing session against `cairn lsp` and two peer servers on the same
//! GGUF and thread count, one server at a time, never two at once: lsp-ai 0.7.0 (its
//! llama.cpp backend, Qwen FIM) and llama-cpp-python's OpenAI-compatible server behind
//! a thin LSP adapter. Per server: the first completion in a cold file, the latency of
//! every keystroke's request (all, and those that ran the model), and how often the
//! suggestion shown matched what was typed next.
//!
//! Cairn goes first; its records say how large its prompts were, and the peers get
//! prompts of that size (its median prefix + retrieved context tokens before the cursor,
//! its median suffix tokens after it) and its median cap on generated tokens, unless
//! `--peer-prefix-tokens`, `--peer-suffix-tokens`, `--peer-max-tokens` say otherwise.
//! Modules: [`targets`] (starting each server), [`pass`] (the session and the answers),
//! [`records`] (Cairn's prompt sizes from its ledger), [`summary`] (table and file).

pub(crate) mod pass;
mod records;
mod summary;
mod targets;

use std::path::{Path, PathBuf};

use crate::doc::Doc;
use crate::sandbox::Sandbox;
use crate::session::Session;
use crate::stats::{loadavg, vm_kib};
use crate::{fail, Args};
use pass::Pass;
use targets::{Target, Window};

/// The servers a `--peers` run can measure, in the order they run.
pub(crate) const ALL: [&str; 3] = ["cairn", "llama-cpp-python", "lsp-ai"];

/// `--peers` options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Which of [`ALL`] run (`--only`).
    pub(crate) only: Vec<String>,
    /// The lsp-ai binary (`--lsp-ai`; default: installed into the cache by `bench/lsp/run`).
    pub(crate) lsp_ai: Option<PathBuf>,
    /// The Python with llama-cpp-python's server (`--python`).
    pub(crate) python: PathBuf,
    /// The GGUF the peers load (`--gguf`; default: the file of Cairn's completion model).
    pub(crate) gguf: Option<PathBuf>,
    /// Threads for the peers: decoding and prompt batches (`--threads`,
    /// `--threads-batch`; default: Cairn's defaults in this tree).
    pub(crate) threads: i32,
    pub(crate) threads_batch: i32,
    pub(crate) n_ctx: u32,
    pub(crate) prefix_tokens: Option<u32>,
    pub(crate) suffix_tokens: Option<u32>,
    pub(crate) max_tokens: Option<u32>,
}

impl Options {
    pub(crate) fn new() -> Options {
        let local = cairn_engine::LocalSpec::default().options();
        let cache = std::env::var_os("CAIRN_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn")))
            .unwrap_or_default();
        Options {
            only: ALL.iter().map(|s| s.to_string()).collect(),
            lsp_ai: None,
            python: std::env::var_os("CAIRN_TEST_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| cache.join("py/bin/python")),
            gguf: None,
            threads: local.threads(),
            threads_batch: local.threads_batch(),
            n_ctx: local.n_ctx,
            prefix_tokens: None,
            suffix_tokens: None,
            max_tokens: None,
        }
    }

    fn runs(&self, name: &str) -> bool {
        self.only.iter().any(|o| o == name)
    }
}

/// One server's results.
pub(crate) struct Measured {
    pub(crate) name: &'static str,
    pub(crate) pass: Pass,
    pub(crate) ready_s: f64,
    pub(crate) rss_kib: Option<u64>,
    pub(crate) hwm_kib: Option<u64>,
    pub(crate) settings: serde_json::Value,
    /// The server's stderr.
    pub(crate) log: PathBuf,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
}

/// Runs the comparison and prints and writes its results.
pub(crate) fn run(a: &Args, o: &Options, repo_src: &Path, session: &Session, sandbox: &Sandbox) {
    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let load_start = loadavg();
    let mut measured: Vec<Measured> = Vec::new();
    let mut model_name = String::from("?");
    let mut window = None;
    let mut cairn_gguf = None;
    if o.runs("cairn") {
        eprintln!("bench_lsp: cairn lsp");
        let load_before = loadavg();
        let (target, name) = targets::cairn(o, &a.cairn, sandbox);
        model_name = name;
        cairn_gguf = gguf_of(&target.settings["model"]);
        let mut m = measure(target, sandbox, &a.file, session, load_before);
        let facts = records::prompt_facts(&sandbox.repo);
        for ask in std::iter::once(&mut m.pass.cold).chain(m.pass.keys.iter_mut()) {
            if let Some(f) = ask.record_id.as_ref().and_then(|id| facts.get(id)) {
                ask.prompt_tokens = f.prompt_tokens;
                ask.data = serde_json::to_value(f).unwrap_or_default();
            }
        }
        window = summary::cairn_window(&m.pass);
        measured.push(m);
    }
    let w = peer_window(o, window);
    let gguf = o.gguf.clone().or(cairn_gguf).unwrap_or_else(|| {
        fail("which GGUF should the peers load? Give --gguf PATH (without the cairn pass, or when its model is not in the cache)")
    });
    let mut chars_per_token = None;
    if o.runs("llama-cpp-python") {
        eprintln!("bench_lsp: llama-cpp-python's server behind bench/lsp/peers/llama_cpp_lsp.py");
        let load_before = loadavg();
        let target = targets::llama_cpp_python(o, &gguf, sandbox, w, &bench_dir);
        let m = measure(target, sandbox, &a.file, session, load_before);
        chars_per_token = m.pass.cold.data["charsPerToken"].as_f64();
        measured.push(m);
    }
    if o.runs("lsp-ai") {
        let bin = o.lsp_ai.clone().unwrap_or_else(|| {
            fail("--lsp-ai PATH (bench/lsp/run --peers installs it into the cache)")
        });
        eprintln!("bench_lsp: lsp-ai");
        let load_before = loadavg();
        // lsp-ai's window is in characters; without the adapter's measure of this
        // file, its own assumption of 4 characters a token.
        let target = targets::lsp_ai(o, &bin, &gguf, sandbox, w, chars_per_token.unwrap_or(4.0));
        let mut m = measure(target, sandbox, &a.file, session, load_before);
        let log = m.log.clone();
        summary::attach_lsp_ai_timings(&mut m, &log);
        measured.push(m);
    }
    let load_end = loadavg();
    let run = summary::Run {
        repo_src,
        commit: sandbox.commit.as_deref(),
        file: &a.file,
        session,
        model_name: &model_name,
        gguf: &gguf,
        window: w,
        cairn_window: window,
        threads: (o.threads, o.threads_batch),
        load_start: &load_start,
        load_end: &load_end,
    };
    summary::print(&run, &measured);
    if let Some(out) = &a.json {
        summary::write_json(out, &run, &measured);
    }
}

/// The peers' prompt window: the flags, else Cairn's medians.
fn peer_window(o: &Options, cairn: Option<Window>) -> Window {
    let pick = |flag: Option<u32>, from: Option<u32>, what: &str| {
        flag.or(from).unwrap_or_else(|| {
            fail(format!(
                "no {what} for the peers: Cairn's records gave none (or the cairn pass did not run); give --peer-{what} N"
            ))
        })
    };
    Window {
        prefix_tokens: pick(
            o.prefix_tokens,
            cairn.map(|w| w.prefix_tokens),
            "prefix-tokens",
        ),
        suffix_tokens: pick(
            o.suffix_tokens,
            cairn.map(|w| w.suffix_tokens),
            "suffix-tokens",
        ),
        max_tokens: pick(o.max_tokens, cairn.map(|w| w.max_tokens), "max-tokens"),
    }
}

/// The GGUF of Cairn's completion model: the cache entry with the digest it reports.
fn gguf_of(model: &serde_json::Value) -> Option<PathBuf> {
    let sha = model["ggufSha256"]
        .as_str()
        .or_else(|| model["gguf_sha256"].as_str())?;
    let store = cairn_engine::ModelStore::open().ok()?;
    let entry = store.entries().into_iter().find(|e| e.sha256 == sha)?;
    Some(entry.path)
}

/// One pass on a started server, then its memory, then it is stopped.
fn measure(
    mut t: Target,
    sandbox: &Sandbox,
    rel: &str,
    session: &Session,
    load_before: String,
) -> Measured {
    eprintln!(
        "  up and idle after {:.1} s (log: {})",
        t.ready_s,
        t.log.display()
    );
    let mut doc = Doc::new(&sandbox.file, rel);
    let pass = pass::run(&mut t.client, t.method, &mut doc, session);
    let sum = |key: &str| -> Option<u64> {
        let v: Vec<u64> = t.pids.iter().filter_map(|&p| vm_kib(p, key)).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    };
    let (rss_kib, hwm_kib) = (sum("VmRSS:"), sum("VmHWM:"));
    let (name, ready_s, settings, log) = (t.name, t.ready_s, t.settings.clone(), t.log.clone());
    t.stop();
    Measured {
        name,
        log,
        pass,
        ready_s,
        rss_kib,
        hwm_kib,
        settings,
        load_before,
        load_after: loadavg(),
    }
}
