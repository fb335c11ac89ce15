//! bench/models/speed: the local backend's prompt-evaluation and decode speed for one GGUF
//! at the given thread counts, measured by the same probe the latency budget uses (the
//! cached value is ignored), repeated and reported as the median.
//!
//! cargo run --release -p cairn-models --example speed -- GGUF [--threads N] [--threads-batch N] [--runs N]

use std::path::PathBuf;

use cairn_models::{Backend, LocalModel, LocalOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .expect("usage: speed GGUF [--threads N] [--threads-batch N] [--runs N]"),
    );
    let mut options = LocalOptions::default();
    let mut runs = 3usize;
    while let Some(k) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--threads" => options.n_threads = Some(v.parse().expect("--threads N")),
            "--threads-batch" => {
                options.n_threads_batch = Some(v.parse().expect("--threads-batch N"))
            }
            "--runs" => runs = v.parse().expect("--runs N"),
            other => panic!("unknown argument {other}"),
        }
    }
    // The probe runs at every load, not only the first on this machine.
    std::env::set_var("CAIRN_SPEED_PROBE", "again");
    let (mut prompt, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let model = LocalModel::load("speed", &path, None, options.clone()).expect("load");
        let s = model.speed().expect("the probe measured nothing");
        prompt.push(s.prompt_tokens_per_s);
        decode.push(s.decode_tokens_per_s);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{{\"threads\":{},\"threads_batch\":{},\"runs\":{runs},\"prompt_tokens_per_s\":{:.1},\"decode_tokens_per_s\":{:.1}}}",
        options.threads(),
        options.threads_batch(),
        median(&mut prompt),
        median(&mut decode)
    );
}
