//! bench/models: completion latency on the default model, cold and after typing one more
//! character (prefix reuse), against llama-cpp-python's OpenAI-compatible server with its
//! prompt cache on, serving the same GGUF with the same thread count, in one run.
//!
//! cargo run --release -p cairn-models --example bench_models -- [--python PATH] [--runs N] [--file F] [--threads N] [--json OUT]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_models::registry::{Registry, DEFAULT_MODEL_NAME};
use cairn_models::*;

struct Args {
    python: String,
    runs: usize,
    file: String,
    threads: i32,
    json: Option<String>,
    max_tokens: u32,
    /// Local backend only (the openmp comparison runs it twice under load).
    no_server: bool,
}

fn args() -> Args {
    let mut a = Args {
        python: registry::cache_dir()
            .join("py/bin/python")
            .to_string_lossy()
            .into_owned(),
        runs: 5,
        file: "models/src/remote.rs".into(),
        threads: LocalOptions::default().threads(),
        json: None,
        max_tokens: 16,
        no_server: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--no-server" {
            a.no_server = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--python" => a.python = v,
            "--runs" => a.runs = v.parse().expect("--runs N"),
            "--file" => a.file = v,
            "--threads" => a.threads = v.parse().expect("--threads N"),
            "--json" => a.json = Some(v),
            "--max-tokens" => a.max_tokens = v.parse().expect("--max-tokens N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

#[derive(Default, Clone, serde::Serialize)]
struct Sample {
    latency_ms: f64,
    ttft_ms: f64,
    prompt_tokens: u32,
    reused: u32,
    generated: u32,
    pp_tok_s: f64,
    gen_tok_s: f64,
    drafted: u32,
    accepted: u32,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn summarize(s: &[Sample]) -> Sample {
    Sample {
        latency_ms: median(s.iter().map(|x| x.latency_ms).collect()),
        ttft_ms: median(s.iter().map(|x| x.ttft_ms).collect()),
        prompt_tokens: s.first().map_or(0, |x| x.prompt_tokens),
        reused: s.first().map_or(0, |x| x.reused),
        generated: s.first().map_or(0, |x| x.generated),
        pp_tok_s: median(s.iter().map(|x| x.pp_tok_s).collect()),
        gen_tok_s: median(s.iter().map(|x| x.gen_tok_s).collect()),
        drafted: s.iter().map(|x| x.drafted).sum::<u32>() / s.len().max(1) as u32,
        accepted: s.iter().map(|x| x.accepted).sum::<u32>() / s.len().max(1) as u32,
    }
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(python: &str, model: &std::path::Path, threads: i32) -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/peers/llama_cpp_server.py"
        ))
        .arg("--model")
        .arg(model)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--n_ctx",
            "4096",
            "--model_alias",
            "m",
        ])
        .args([
            "--n_threads",
            &threads.to_string(),
            "--n_threads_batch",
            &threads.to_string(),
        ])
        .args(["--cache", "true", "--verbose", "false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {python} -m llama_cpp.server: {e} (run `make setup-test`)")
        });
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut l = String::new();
            if BufReader::new(s).read_line(&mut l).is_ok() && l.starts_with("HTTP/1.1") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, format!("http://127.0.0.1:{port}/v1"))
}

fn sample(g: &Generation, wall: Duration) -> Sample {
    let u = &g.usage;
    let ttft = u.time_to_first_token.unwrap_or(wall);
    let evaluated = u.prompt_tokens.saturating_sub(u.reused_prompt_tokens) as f64;
    let gen_time = wall.saturating_sub(ttft).as_secs_f64();
    Sample {
        latency_ms: wall.as_secs_f64() * 1e3,
        ttft_ms: ttft.as_secs_f64() * 1e3,
        prompt_tokens: u.prompt_tokens,
        reused: u.reused_prompt_tokens,
        generated: u.generated_tokens,
        pp_tok_s: if ttft.is_zero() {
            0.0
        } else {
            evaluated / ttft.as_secs_f64()
        },
        gen_tok_s: if gen_time > 0.0 {
            u.generated_tokens.saturating_sub(1) as f64 / gen_time
        } else {
            0.0
        },
        drafted: u.drafted_tokens,
        accepted: u.accepted_draft_tokens,
    }
}

fn main() {
    let a = args();
    let mut reg = Registry::open_default().unwrap();
    let entry = reg
        .verified(DEFAULT_MODEL_NAME)
        .expect("default model installed (make setup)");
    let source = std::fs::read_to_string(&a.file).expect("prompt source file");
    // ~1,500 tokens of real code (≈4 characters a token for this tokenizer on Rust).
    let base: String = source.chars().take(6_000).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let opts = LocalOptions {
        n_threads: Some(a.threads),
        n_threads_batch: Some(a.threads),
        ..Default::default()
    };
    let local = LocalModel::load(
        "default",
        &entry.path,
        Some(entry.sha256.clone()),
        opts.clone(),
    )
    .unwrap();
    // The same backend with prompt-lookup decoding (off by default), to show what it does.
    let lookup = LocalModel::load(
        "default",
        &entry.path,
        Some(entry.sha256.clone()),
        LocalOptions {
            lookup_draft: 8,
            ..opts
        },
    )
    .unwrap();
    let rt2 = &rt;
    let run = |m: &dyn Backend, prompt: &str| -> Sample {
        let mut req = CompletionRequest::new(prompt, "");
        req.max_tokens = a.max_tokens;
        let t = Instant::now();
        let g = rt2
            .block_on(m.complete(req, None, CancellationToken::new()))
            .unwrap();
        sample(&g, t.elapsed())
    };
    if a.no_server {
        local_only(&a, &entry.name, &base, &local, &run);
        return;
    }
    let (_server, url) = start_server(&a.python, &entry.path, a.threads);
    let remote = RemoteModel::new(
        "llama-cpp-python",
        RemoteOptions {
            base_url: url,
            model: "m".into(),
            total_timeout_ms: 600_000,
            first_token_timeout_ms: 600_000,
            ..Default::default()
        },
        None,
    )
    .unwrap();

    // Warm both up once (page cache, thread pools), outside the measurements.
    run(&local, "fn main() {");
    run(&lookup, "fn main() {");
    run(&remote, "fn main() {");

    let (mut lc, mut lw, mut rc, mut rw) = (vec![], vec![], vec![], vec![]);
    let (mut pc, mut pw) = (vec![], vec![]);
    for i in 0..a.runs {
        // A different first line each run, so "cold" shares no prefix with earlier runs.
        let cold = format!("// bench run {i} {}\n{base}", i * 7919);
        let typed = format!("{cold}x");
        let l_cold = run(&local, &cold);
        let l_typed = run(&local, &typed);
        pc.push(run(&lookup, &cold));
        pw.push(run(&lookup, &typed));
        // The server's stream carries no usage: the prompt is the same tokens as Cairn's
        // (same GGUF tokenizer), and its prompt cache holds all but the tail when typing.
        let mut r_cold = run(&remote, &cold);
        r_cold.prompt_tokens = l_cold.prompt_tokens;
        r_cold.pp_tok_s = l_cold.prompt_tokens as f64 / (r_cold.ttft_ms / 1e3);
        let mut r_typed = run(&remote, &typed);
        r_typed.prompt_tokens = l_typed.prompt_tokens;
        lc.push(l_cold);
        lw.push(l_typed);
        rc.push(r_cold);
        rw.push(r_typed);
    }
    let (lc, lw, rc, rw) = (
        summarize(&lc),
        summarize(&lw),
        summarize(&rc),
        summarize(&rw),
    );
    let (pc, pw) = (summarize(&pc), summarize(&pw));
    println!(
        "bench/models: {} ({} threads, {} runs, median, max_tokens {})",
        entry.name, a.threads, a.runs, a.max_tokens
    );
    println!("| request | Cairn latency ms | server latency ms | Cairn / server | Cairn prompt tok/s | server prompt tok/s | Cairn gen tok/s | server gen tok/s | prompt tokens (Cairn reused) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, l, r) in [("(a) cold", &lc, &rc), ("(b) +1 char", &lw, &rw)] {
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {} ({}) |",
            l.latency_ms,
            r.latency_ms,
            l.latency_ms / r.latency_ms,
            l.pp_tok_s,
            r.pp_tok_s,
            l.gen_tok_s,
            r.gen_tok_s,
            l.prompt_tokens,
            l.reused
        );
    }
    println!();
    println!("Cairn without (default) and with prompt-lookup decoding, 8 tokens (drafted / accepted per request, mean):");
    println!("| request | without ms | with lookup ms | with / without | drafted | accepted |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, l, p) in [("(a) cold", &lc, &pc), ("(b) +1 char", &lw, &pw)] {
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {} | {} |",
            l.latency_ms,
            p.latency_ms,
            p.latency_ms / l.latency_ms,
            p.drafted,
            p.accepted
        );
    }
    let ratio_b_a = lw.latency_ms / lc.latency_ms;
    let a_vs = lc.latency_ms / rc.latency_ms;
    let b_vs = lw.latency_ms / rw.latency_ms;
    println!();
    println!(
        "(b)/(a) = {ratio_b_a:.3} (target ≤ 0.25): {}",
        if ratio_b_a <= 0.25 { "met" } else { "NOT met" }
    );
    println!(
        "Cairn (a) / server (a) = {a_vs:.2} (target ≤ 1.0): {}",
        if a_vs <= 1.0 { "met" } else { "NOT met" }
    );
    println!(
        "Cairn (b) / server (b) = {b_vs:.2} (target ≤ 0.8): {}",
        if b_vs <= 0.8 { "met" } else { "NOT met" }
    );
    if let Some(out) = a.json {
        let v = serde_json::json!({"model": entry.name, "threads": a.threads, "runs": a.runs,
            "cairn_cold": lc, "cairn_typed": lw, "server_cold": rc, "server_typed": rw,
            "cairn_lookup_cold": pc, "cairn_lookup_typed": pw,
            "b_over_a": ratio_b_a, "cold_vs_server": a_vs, "typed_vs_server": b_vs});
        std::fs::write(out, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
}

/// The local backend alone: cold and +1 char, for comparing builds (openmp on/off)
/// and machine load.
fn local_only(
    a: &Args,
    name: &str,
    base: &str,
    local: &LocalModel,
    run: &dyn Fn(&dyn Backend, &str) -> Sample,
) {
    run(local, "fn main() {");
    let (mut cold, mut typed) = (vec![], vec![]);
    for i in 0..a.runs {
        let c = format!("// bench run {i} {}\n{base}", i * 7919);
        cold.push(run(local, &c));
        typed.push(run(local, &format!("{c}x")));
    }
    let (c, t) = (summarize(&cold), summarize(&typed));
    println!(
        "bench/models (local only): {name} ({} threads, {} runs, median, openmp {})",
        a.threads,
        a.runs,
        if cfg!(feature = "openmp") {
            "on"
        } else {
            "off"
        }
    );
    println!("| request | latency ms | prompt tok/s | gen tok/s | prompt tokens (reused) |");
    println!("|---|---:|---:|---:|---:|");
    for (n, s) in [("(a) cold", &c), ("(b) +1 char", &t)] {
        println!(
            "| {n} | {:.0} | {:.0} | {:.0} | {} ({}) |",
            s.latency_ms, s.pp_tok_s, s.gen_tok_s, s.prompt_tokens, s.reused
        );
    }
    if let Some(out) = &a.json {
        let v = serde_json::json!({"model": name, "threads": a.threads, "runs": a.runs,
            "openmp": cfg!(feature = "openmp"), "cold": c, "typed": t});
        std::fs::write(out, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
}
