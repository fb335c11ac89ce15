//! bench/models/speed: the local backend's prompt-evaluation and decode speed for one GGUF
//! at the given thread counts, measured by the same probe the latency budget uses (the
//! cached value is ignored), repeated and reported as the median.
//!
//! With `--fim FILE`, it then times real FIM completions cut from FILE (cold: a fresh
//! prompt each, 16 tokens) and prints their prompt and decode rates beside the probe's.
//!
//! cargo run --release -p cairn-models --example speed -- GGUF [--threads N] [--threads-batch N] [--runs N] [--fim FILE]

use std::path::PathBuf;

use cairn_models::{Backend, LocalModel, LocalOptions};
use cairn_text::floor_char_boundary;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .expect("usage: speed GGUF [--threads N] [--threads-batch N] [--runs N]"),
    );
    let mut options = LocalOptions::default();
    let mut runs = 3usize;
    let mut fim: Option<PathBuf> = None;
    while let Some(k) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--threads" => options.n_threads = Some(v.parse().expect("--threads N")),
            "--threads-batch" => {
                options.n_threads_batch = Some(v.parse().expect("--threads-batch N"))
            }
            "--runs" => runs = v.parse().expect("--runs N"),
            "--fim" => fim = Some(PathBuf::from(v)),
            other => panic!("unknown argument {other}"),
        }
    }
    // The probe runs at every load, not only the first on this machine.
    std::env::set_var("CAIRN_SPEED_PROBE", "again");
    let (mut prompt, mut decode, mut wide) = (Vec::new(), Vec::new(), Vec::new());
    let mut model = None;
    for _ in 0..runs {
        let m = LocalModel::load("speed", &path, None, options.clone()).expect("load");
        let s = m.speed().expect("the probe measured nothing");
        prompt.push(s.prompt_tokens_per_s);
        decode.push(s.decode_tokens_per_s);
        wide.extend(s.wide_decode_tokens_per_s);
        eprintln!("probe: {s:?}");
        model = Some(m);
    }
    if let (Some(file), Some(model)) = (fim, model) {
        real_completions(
            &model,
            &std::fs::read_to_string(file).expect("--fim FILE"),
            runs,
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2)
            .map_or("null".to_string(), |m| format!("{m:.1}"))
    };
    println!(
        "{{\"threads\":{},\"wide_threads\":{},\"threads_batch\":{},\"runs\":{runs},\"prompt_tokens_per_s\":{},\"decode_tokens_per_s\":{},\"wide_decode_tokens_per_s\":{}}}",
        options.threads(),
        options.wide_threads(),
        options.threads_batch(),
        median(&mut prompt),
        median(&mut decode),
        median(&mut wide)
    );
}

/// Cold FIM completions at `n` places of `text` (400, 1,200 or 6,000 bytes before, 400 after): what
/// a request really costs, against the probe's estimate. Each follows a second's pause, as
/// an editor's first completion somewhere does (the decode threads follow the load then).
fn real_completions(model: &LocalModel, text: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for i in 0..n {
        let at = floor_char_boundary(text, text.len() * (i + 1) / (n + 1));
        // Short, medium and chat-sized prompts (~100, ~300, ~1,500 tokens).
        let before = [400, 1_200, 6_000][i % 3];
        let from = floor_char_boundary(text, at.saturating_sub(before));
        let to = floor_char_boundary(text, at + 400);
        let mut req = cairn_models::CompletionRequest::new(
            text[from..at].to_string(),
            text[at..to].to_string(),
        );
        req.max_tokens = 16;
        req.stop = Vec::new();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let g = rt
            .block_on(model.complete(req, None, cairn_models::CancellationToken::new()))
            .expect("completion");
        let u = &g.usage;
        let new = u.prompt_tokens - u.reused_prompt_tokens;
        let decode_s = (u.total_time - u.prompt_time).as_secs_f64();
        println!(
            "{{\"fim\":{i},\"prompt_tokens\":{new},\"prompt_ms\":{:.0},\"prompt_tokens_per_s\":{:.1},\"generated\":{},\"decode_tokens_per_s\":{:.1},\"decode_threads\":{},\"total_ms\":{:.0}}}",
            u.prompt_time.as_secs_f64() * 1e3,
            new as f64 / u.prompt_time.as_secs_f64().max(1e-6),
            u.generated_tokens,
            u.generated_tokens as f64 / decode_s.max(1e-6),
            u.decode_threads,
            u.total_time.as_secs_f64() * 1e3,
        );
    }
}
