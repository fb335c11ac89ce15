//! bench/references: the reference tracker measured on the code on this machine.
//!
//! Builds a reference index of a corpus (default: the cargo registry's sources), then
//! reopens it unchanged and after a lockfile change; samples functions from the indexed
//! sources (by a hash of the file path, blind to content) and checks them verbatim,
//! reformatted with identifiers renamed, and cut to 60 %; samples functions of code that
//! is not indexed (the project's own sources, a second corpus) for false positives; times
//! every lookup; and runs a plain exact-substring search over the same corpus as the
//! baseline in the same run.
//!
//! ```text
//! bench_references [--corpus DIR]... [--project DIR] [--own DIR]... [--second DIR]...
//!                  [--samples N] [--threads N] [--max-postings N] [--no-baseline]
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use cairn_references::{lex, DiscoverOptions, Kind, ReferenceConfig, ReferenceIndex, Syntax};

struct Args {
    corpus: Vec<PathBuf>,
    own: Vec<PathBuf>,
    second: Vec<PathBuf>,
    samples: usize,
    threads: usize,
    max_postings: Option<usize>,
    /// Index a project's own dependencies (its lockfiles, node_modules …) instead.
    project: Option<PathBuf>,
    /// Leave out the exact-substring baseline (quick comparisons of two builds).
    no_baseline: bool,
}

fn args() -> Args {
    let mut a = Args {
        corpus: Vec::new(),
        own: Vec::new(),
        second: Vec::new(),
        samples: 200,
        threads: 1,
        max_postings: None,
        project: None,
        no_baseline: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--corpus" => a.corpus.push(PathBuf::from(v())),
            "--own" => a.own.push(PathBuf::from(v())),
            "--second" => a.second.push(PathBuf::from(v())),
            "--samples" => a.samples = v().parse().expect("--samples N"),
            "--threads" => a.threads = v().parse().expect("--threads N"),
            "--project" => a.project = Some(PathBuf::from(v())),
            "--no-baseline" => a.no_baseline = true,
            "--max-postings" => a.max_postings = Some(v().parse().expect("--max-postings N")),
            other => panic!("unknown argument {other}"),
        }
    }
    if a.corpus.is_empty() && a.project.is_none() {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
        for e in std::fs::read_dir(home.join("registry/src"))
            .into_iter()
            .flatten()
            .flatten()
        {
            a.corpus.push(e.path());
        }
    }
    a
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn digest(s: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// Functions of a source text: from a line holding `fn `/`function ` to the brace
/// that closes the first `{` after it (strings and comments are not parsed: good enough
/// to cut samples), 150 to 3,000 characters.
fn functions(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut line_start = 0;
    let bytes = text.as_bytes();
    while line_start < text.len() {
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |p| line_start + p + 1);
        let line = &text[line_start..line_end];
        let t = line.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "async fn ",
            "pub async fn ",
            "function ",
        ]
        .iter()
        .any(|p| t.starts_with(p));
        if is_fn {
            if let Some(open) = text[line_start..].find('{').map(|p| line_start + p) {
                let mut depth = 0i32;
                let mut end = None;
                for (i, &b) in bytes.iter().enumerate().skip(open) {
                    match b {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(i + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(end) = end {
                    let f = &text[line_start..end];
                    if (150..=3000).contains(&f.len()) {
                        out.push(f);
                        line_start = end;
                        continue;
                    }
                }
            }
        }
        line_start = line_end;
    }
    out
}

/// Reformatted (comments dropped, one space between tokens, a line break after `;`,
/// `{` and `}`) with every local-looking identifier renamed consistently: lower-case
/// names not after `.` and not macro names.
fn renamed(text: &str, syntax: Syntax) -> String {
    let toks = lex(text, syntax, false);
    let mut names: std::collections::HashMap<&str, String> = Default::default();
    let mut out = String::new();
    for (i, t) in toks.iter().enumerate() {
        let s = &text[t.start as usize..t.end as usize];
        let prev = i
            .checked_sub(1)
            .map(|p| &text[toks[p].start as usize..toks[p].end as usize]);
        let next = toks
            .get(i + 1)
            .map(|n| &text[n.start as usize..n.end as usize]);
        let rename = t.kind == Kind::Ident
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && prev != Some(".")
            && next != Some("!");
        if rename {
            let n = names.len();
            let new = names
                .entry(s)
                .or_insert_with(|| format!("q{n}_{}", s.len()));
            out.push_str(new);
        } else {
            out.push_str(s);
        }
        out.push(if matches!(s, ";" | "{" | "}") {
            '\n'
        } else {
            ' '
        });
    }
    out
}

/// The first 60 % of a function's lines.
fn partial(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let n = (lines.len() * 6).div_ceil(10);
    lines[..n].join("\n")
}

/// The first lines of a text, up to about 250 characters (a multi-line completion).
fn completion_sized(text: &str) -> String {
    let mut s = String::new();
    for l in text.lines() {
        s.push_str(l);
        s.push('\n');
        if s.len() >= 250 {
            break;
        }
    }
    s
}

struct Sample {
    package: String,
    syntax: Syntax,
    text: String,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let n = e.file_name();
            if !matches!(n.to_str(), Some("target" | ".git" | "dist" | "out")) {
                walk(&p, out);
            }
        } else if ft.is_file() && Syntax::for_path(&p).is_some() {
            out.push(p);
        }
    }
}

/// Up to `n` functions, at most one per file, files in the order of a hash of their path.
fn sample(files: Vec<(PathBuf, String)>, n: usize) -> Vec<Sample> {
    let mut files = files;
    files.sort_by_key(|(p, _)| digest(&p.to_string_lossy()));
    let mut out = Vec::new();
    for (p, package) in files {
        if out.len() >= n {
            break;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Some(syntax) = Syntax::for_path(&p) else {
            continue;
        };
        let fs = functions(&text);
        if fs.is_empty() {
            continue;
        }
        let pick = digest(&p.to_string_lossy())[0] as usize % fs.len();
        out.push(Sample {
            package,
            syntax,
            text: fs[pick].to_string(),
        });
    }
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let a = args();
    let load_start = load();
    let data = tempfile::tempdir().unwrap();
    let project = match &a.project {
        Some(p) => p.clone(),
        None => {
            let p = data.path().join("project");
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("Cargo.lock"), "version = 4\n").unwrap();
            p
        }
    };
    let cfg = ReferenceConfig {
        threads: a.threads,
        discover: DiscoverOptions {
            extra_roots: a.corpus.clone(),
            cargo_homes: Some(Vec::new()),
            ..DiscoverOptions::default()
        },
        ..ReferenceConfig::default()
    };
    let cfg = ReferenceConfig {
        max_postings: a.max_postings.unwrap_or(cfg.max_postings),
        ..cfg
    };
    let cancel = AtomicBool::new(false);
    let store = data.path().join("store");
    let t = Instant::now();
    let (idx, report) =
        ReferenceIndex::open_or_build(&project, &store, &cfg, &|_| {}, &cancel).unwrap();
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (_, reopen) =
        ReferenceIndex::open_or_build(&project, &store, &cfg, &|_| {}, &cancel).unwrap();
    let reopen_s = t.elapsed().as_secs_f64();
    assert!(!reopen.discovered);
    // A lockfile change: the fixture's Cargo.lock, or a touched lockfile of the project.
    let lock = cairn_references::lockfiles(&project).into_iter().next();
    match (&a.project, &lock) {
        (None, _) => std::fs::write(project.join("Cargo.lock"), "version = 4\n\n").unwrap(),
        (Some(_), Some(l)) => {
            let f = std::fs::File::options().append(true).open(l).unwrap();
            f.set_modified(std::time::SystemTime::now()).unwrap();
        }
        (Some(_), None) => {}
    }
    let t = Instant::now();
    let (idx2, changed) =
        ReferenceIndex::open_or_build(&project, &store, &cfg, &|_| {}, &cancel).unwrap();
    let changed_s = t.elapsed().as_secs_f64();
    drop(idx2);
    assert!(changed.built == 0);

    println!("## Reference tracker (bench/references)\n");
    println!(
        "load average at start: {load_start}; worker threads: {}; k = {}, w = {}, max postings per fingerprint {}\n",
        a.threads, cfg.params.k, cfg.params.w, cfg.max_postings
    );
    println!("| index | value |\n|---|---|");
    println!("| packages | {} |", report.packages);
    println!("| files | {} |", report.files);
    println!("| source indexed | {:.1} MB |", report.bytes as f64 / 1e6);
    println!("| fingerprints | {} |", report.fingerprints);
    println!(
        "| on disk | {:.1} MB ({:.2} bytes per source byte) |",
        report.disk_bytes as f64 / 1e6,
        report.disk_bytes as f64 / report.bytes.max(1) as f64
    );
    println!("| in memory | {:.1} MB |", idx.memory_bytes() as f64 / 1e6);
    println!(
        "| cold build | {:.1} s ({:.1} MB/s) |",
        build_s,
        report.bytes as f64 / 1e6 / build_s
    );
    println!("| reopen, lockfiles unchanged | {:.2} s |", reopen_s);
    println!(
        "| update after a lockfile change (rediscover, all segments reused) | {:.2} s |",
        changed_s
    );
    println!("| warnings (skipped) | {:?} |", report.warnings.counts);

    // Samples from the indexed sources.
    // Only files the index holds (not those it skipped as too large or generated).
    let indexed: Vec<(PathBuf, String)> = idx
        .indexed_files()
        .map(|(p, n)| (p.to_path_buf(), n.to_string()))
        .collect();
    let samples = sample(indexed, a.samples);
    let mut own_files = Vec::new();
    for d in &a.own {
        walk(d, &mut own_files);
    }
    let own = sample(
        own_files.into_iter().map(|p| (p, String::new())).collect(),
        a.samples,
    );
    let mut second_files = Vec::new();
    for d in &a.second {
        walk(d, &mut second_files);
    }
    let second = sample(
        second_files
            .into_iter()
            .map(|p| (p, String::new()))
            .collect(),
        a.samples,
    );

    // The baseline's corpus: every indexed file's text, one string.
    let mut corpus = Vec::with_capacity(report.bytes as usize + 1024);
    for (f, _) in idx.indexed_files().filter(|_| !a.no_baseline) {
        if let Ok(b) = std::fs::read(f) {
            corpus.extend_from_slice(&b);
            corpus.push(0);
        }
    }
    let baseline =
        |q: &str| !a.no_baseline && memchr::memmem::find(&corpus, q.trim().as_bytes()).is_some();

    let mut lat_completion = Vec::new();
    let mut lat_chat = Vec::new();
    let mut timed = |q: &str, syntax: Syntax, into_chat: bool| {
        let t = Instant::now();
        let c = idx.check(q, Some(syntax));
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if into_chat {
            lat_chat.push(ms);
        } else {
            lat_completion.push(ms);
        }
        c
    };
    let mut rows: Vec<(String, usize, usize, usize)> = Vec::new(); // name, n, cairn, baseline
    let mut count =
        |name: &str,
         queries: Vec<(String, String, Syntax)>,
         expect_package: bool,
         timed: &mut dyn FnMut(&str, Syntax, bool) -> cairn_references::Check| {
            let mut hit = 0;
            let mut base = 0;
            for (q, pkg, syntax) in &queries {
                let c = timed(q, *syntax, true);
                let found = if expect_package {
                    c.references.iter().any(|r| &r.package == pkg)
                } else {
                    !c.references.is_empty()
                };
                if found {
                    hit += 1;
                }
                if std::env::var_os("BENCH_SHOW_MISSES").is_some() && found != expect_package {
                    eprintln!("--- missed ({name}) in {pkg}: {:?}\n{q}", c);
                }
                if baseline(q) {
                    base += 1;
                }
            }
            rows.push((name.to_string(), queries.len(), hit, base));
        };
    let verbatim: Vec<_> = samples
        .iter()
        .map(|s| (s.text.clone(), s.package.clone(), s.syntax))
        .collect();
    let ren: Vec<_> = samples
        .iter()
        .map(|s| (renamed(&s.text, s.syntax), s.package.clone(), s.syntax))
        .collect();
    let part: Vec<_> = samples
        .iter()
        .map(|s| (partial(&s.text), s.package.clone(), s.syntax))
        .filter(|(t, _, _)| t.trim().chars().count() >= 150)
        .collect();
    count("verbatim copy (right package)", verbatim, true, &mut timed);
    count(
        "reformatted + identifiers renamed (right package)",
        ren,
        true,
        &mut timed,
    );
    count(
        "partial: first 60 % of the lines, >= 150 chars (right package)",
        part,
        true,
        &mut timed,
    );
    let own_q: Vec<_> = own
        .iter()
        .map(|s| (s.text.clone(), String::new(), s.syntax))
        .collect();
    let second_q: Vec<_> = second
        .iter()
        .map(|s| (s.text.clone(), String::new(), s.syntax))
        .collect();
    count(
        "false positives: the project's own functions",
        own_q,
        false,
        &mut timed,
    );
    count(
        "false positives: second corpus (not indexed)",
        second_q,
        false,
        &mut timed,
    );
    for s in &samples {
        timed(&completion_sized(&s.text), s.syntax, false);
    }

    println!("\n| detection | samples | Cairn | exact substring |\n|---|---|---|---|");
    for (name, n, hit, base) in &rows {
        let p = |x: usize| {
            if *n == 0 {
                f64::NAN
            } else {
                100.0 * x as f64 / *n as f64
            }
        };
        println!(
            "| {name} | {n} | {hit} ({:.1} %) | {base} ({:.1} %) |",
            p(*hit),
            p(*base)
        );
    }
    lat_completion.sort_by(f64::total_cmp);
    lat_chat.sort_by(f64::total_cmp);
    let mean_chat: f64 =
        samples.iter().map(|s| s.text.len()).sum::<usize>() as f64 / samples.len().max(1) as f64;
    println!("\n| lookup | n | p50 | p99 | max |\n|---|---|---|---|---|");
    println!(
        "| completion-sized (first lines, ~250 chars) | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
        lat_completion.len(),
        pct(&lat_completion, 0.5),
        pct(&lat_completion, 0.99),
        lat_completion.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "| chat-edit-sized (whole functions, mean {:.0} chars) | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
        mean_chat,
        lat_chat.len(),
        pct(&lat_chat, 0.5),
        pct(&lat_chat, 0.99),
        lat_chat.last().copied().unwrap_or(f64::NAN)
    );
    println!("\nload average at end: {}", load());
}
