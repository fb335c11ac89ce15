//! Index benchmarks on a real corpus, with a plain read of the same files as
//! the floor, in one run: cold index throughput, write-to-searchable latency
//! through the watcher, `context_for` and `search` latency, index size, peak RSS.
//!
//! cargo run --release -p cairn-indexer --example index_bench -- --corpus ~/.cargo/registry/src

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_indexer::{Index, IndexOptions, SearchQuery};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Directory to index.
    #[arg(long)]
    corpus: PathBuf,
    /// Index directory (default: a fresh temp dir, removed afterwards).
    #[arg(long)]
    index_dir: Option<PathBuf>,
    /// Edits for the write-to-searchable measurement.
    #[arg(long, default_value_t = 100)]
    edits: usize,
    /// Queries for each latency measurement.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Skip the edit measurement (it writes to corpus files and restores them).
    #[arg(long)]
    no_edits: bool,
}

/// Deterministic xorshift, so runs pick the same files and queries.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let corpus = args.corpus.canonicalize().context("corpus directory")?;
    let tmp = tempfile::tempdir()?;
    let index_dir = args
        .index_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("index"));
    let options = IndexOptions {
        index_dir: Some(index_dir.clone()),
        watch_debounce: Duration::from_millis(50),
        ..Default::default()
    };

    // Cold index.
    let never = AtomicBool::new(false);
    let index = Index::open(&corpus, options.clone())?;
    let t = Instant::now();
    let stats = index.update_all(&|_| {}, &never)?;
    let cold = t.elapsed().as_secs_f64();
    let rss_index = peak_rss_mb();
    let run = stats.run.clone().unwrap_or_default();
    let mb = run.bytes_indexed as f64 / 1e6;
    let files = index.indexed_files()?;

    // Floor: read exactly the indexed files, in this process, after the index
    // pass (so both see a warm page cache).
    let t = Instant::now();
    let mut floor_bytes = 0u64;
    for f in &files {
        floor_bytes += std::fs::read(corpus.join(f)).map_or(0, |b| b.len() as u64);
    }
    let floor = t.elapsed().as_secs_f64();

    println!("corpus: {}", corpus.display());
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| files indexed | {} ({} skipped: {} too large, {} binary) |",
        run.indexed,
        run.skipped_large + run.skipped_binary,
        run.skipped_large,
        run.skipped_binary
    );
    println!("| source indexed | {:.1} MB |", mb);
    println!(
        "| symbols / chunks | {} / {} |",
        stats.symbols, stats.chunks
    );
    println!(
        "| cold index | {:.1} s: {:.1} MB/s, {:.0} files/s ({} commits) |",
        cold,
        mb / cold,
        run.indexed as f64 / cold,
        run.commits
    );
    println!(
        "| floor: read the same files | {:.2} s: {:.0} MB/s |",
        floor,
        floor_bytes as f64 / 1e6 / floor
    );
    println!(
        "| index size | {:.1} MB = {:.2} × source |",
        stats.index_bytes as f64 / 1e6,
        stats.index_bytes as f64 / run.bytes_indexed.max(1) as f64
    );
    println!("| peak RSS after cold index | {:.0} MB |", rss_index);

    // Incremental: unchanged pass.
    let t = Instant::now();
    let again = index.update_all(&|_| {}, &never)?;
    println!(
        "| no-change update_all | {:.2} s ({} unchanged) |",
        t.elapsed().as_secs_f64(),
        again.run.map_or(0, |r| r.unchanged)
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let code: Vec<&String> = files
        .iter()
        .filter(|f| {
            [".rs", ".py", ".c", ".cpp", ".h", ".go", ".ts", ".js"]
                .iter()
                .any(|e| f.ends_with(e))
        })
        .collect();

    // context_for: cursors at line starts of random code files.
    let mut ctx_ms = Vec::new();
    let mut ctx_snips = 0usize;
    for _ in 0..args.queries {
        let f = code[rng.below(code.len())];
        let Ok(text) = std::fs::read_to_string(corpus.join(f)) else {
            continue;
        };
        let lines: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let cursor = lines[rng.below(lines.len())];
        let t = Instant::now();
        let snippets = index.context_for(&corpus.join(f), &text, cursor, 4000)?;
        ctx_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ctx_snips += snippets.len();
    }
    println!(
        "| context_for (budget 4000 chars) | p50 {:.2} ms, p99 {:.2} ms, {:.1} snippets avg |",
        pct(&mut ctx_ms, 0.5),
        pct(&mut ctx_ms, 0.99),
        ctx_snips as f64 / args.queries.max(1) as f64
    );

    // search: half identifier queries (symbol names), half word queries.
    let mut ident_ms = Vec::new();
    let mut nl_ms = Vec::new();
    for i in 0..args.queries {
        let f = code[rng.below(code.len())];
        let Ok(text) = std::fs::read_to_string(corpus.join(f)) else {
            continue;
        };
        let words: Vec<&str> = text
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|w| w.len() > 3)
            .collect();
        if words.is_empty() {
            continue;
        }
        let query = if i % 2 == 0 {
            words[rng.below(words.len())].to_string()
        } else {
            (0..6)
                .map(|_| words[rng.below(words.len())])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let t = Instant::now();
        let hits = index.search(&SearchQuery::new(query))?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if i % 2 == 0 {
            ident_ms.push(ms)
        } else {
            nl_ms.push(ms)
        }
        std::hint::black_box(hits);
    }
    let mut all: Vec<f64> = ident_ms.iter().chain(nl_ms.iter()).copied().collect();
    println!(
        "| search, identifier queries | p50 {:.2} ms, p99 {:.2} ms |",
        pct(&mut ident_ms, 0.5),
        pct(&mut ident_ms, 0.99)
    );
    println!(
        "| search, 6-word queries | p50 {:.2} ms, p99 {:.2} ms |",
        pct(&mut nl_ms, 0.5),
        pct(&mut nl_ms, 0.99)
    );
    println!(
        "| search, all | p50 {:.2} ms, p99 {:.2} ms |",
        pct(&mut all, 0.5),
        pct(&mut all, 0.99)
    );

    if !args.no_edits {
        edits(&index, &corpus, &code, args.edits, &mut rng)?;
    }
    println!("| peak RSS overall | {:.0} MB |", peak_rss_mb());
    Ok(())
}

/// Appends a unique token to a file and times until `search` returns it,
/// through the watcher (notify, debounce, commit, reload). Restores the file.
fn edits(index: &Index, corpus: &Path, code: &[&String], n: usize, rng: &mut Rng) -> Result<()> {
    let _w = index.watch()?;
    std::thread::sleep(Duration::from_millis(300));
    let mut lat = Vec::new();
    let mut timeouts = 0;
    for i in 0..n {
        let rel = code[rng.below(code.len())];
        let path = corpus.join(rel);
        let Ok(orig) = std::fs::read(&path) else {
            continue;
        };
        let token = format!("cairnbenchedit{i}x{}", rng.next() % 100_000);
        let mut edited = orig.clone();
        edited.extend_from_slice(format!("\n// {token}\n").as_bytes());
        let t = Instant::now();
        std::fs::write(&path, &edited)?;
        let found = loop {
            let hits = index.search(&SearchQuery::new(&token))?;
            if hits.first().is_some_and(|h| &h.path == rel) {
                break true;
            }
            if t.elapsed() > Duration::from_secs(5) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if found {
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        } else {
            timeouts += 1;
        }
        std::fs::write(&path, &orig)?;
        // Let the restore settle so edits do not share a batch.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5)
            && !index.search(&SearchQuery::new(&token))?.is_empty()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    println!("| write → searchable ({} edits, watcher debounce 50 ms) | p50 {:.0} ms, p95 {:.0} ms, {} timeouts |", lat.len(), pct(&mut lat, 0.5), pct(&mut lat, 0.95), timeouts);
    Ok(())
}
