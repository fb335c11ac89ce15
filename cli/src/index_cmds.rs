//! `cairn index`, `cairn search`, `cairn symbols`: the repository index from the
//! command line. Thin: argument parsing and printing around [`RepoIndex`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_engine::{
    IndexOptions, IndexProgress, IndexProgressPhase, IndexStats, RepoIndex, SearchQuery, WatchEvent,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Subcommand)]
pub enum IndexCommands {
    /// Index a repository (incrementally: unchanged files are skipped).
    Index {
        /// Repository root (default: the enclosing git repository, else the current directory).
        path: Option<PathBuf>,
        /// Keep running and apply file changes as they happen.
        #[arg(long)]
        watch: bool,
        /// Where the index lives (default: the user's data directory, per repository).
        #[arg(long, env = "CAIRN_INDEX_DIR")]
        index_dir: Option<PathBuf>,
        /// Skip files larger than this many bytes.
        #[arg(long, default_value_t = 1024 * 1024)]
        max_file_bytes: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Search the index: BM25 over chunks, symbol names and paths, fused by rank.
    Search {
        query: String,
        #[arg(long)]
        json: bool,
        /// Show why each hit matched and every retriever's own ranking.
        #[arg(long)]
        explain: bool,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// At most this many hits from one file.
        #[arg(long, default_value_t = 2)]
        per_file: usize,
        #[arg(long, env = "CAIRN_INDEX_DIR")]
        index_dir: Option<PathBuf>,
    },
    /// Find definitions by name (case-insensitive; `Type::method` or `Type.method` narrows).
    Symbols {
        name: String,
        #[arg(long)]
        json: bool,
        #[arg(long, env = "CAIRN_INDEX_DIR")]
        index_dir: Option<PathBuf>,
    },
}

impl IndexCommands {
    /// Runs the command in `repo` (the global `--repo`), else the enclosing repository.
    pub fn run_in(self, repo: Option<&Path>) -> Result<ExitCode> {
        match self {
            IndexCommands::Index {
                path,
                watch,
                index_dir,
                max_file_bytes,
                json,
            } => {
                let root = repo_root(path.as_deref().or(repo))?;
                let options = IndexOptions {
                    index_dir,
                    max_file_bytes,
                    ..Default::default()
                };
                index(&root, options, watch, json)
            }
            IndexCommands::Search {
                query,
                json,
                explain,
                limit,
                per_file,
                index_dir,
            } => {
                let index = open_for_reading(repo, index_dir)?;
                let mut q = SearchQuery::new(query);
                q.limit = limit;
                q.max_per_file = per_file;
                search(&index, &q, json, explain)
            }
            IndexCommands::Symbols {
                name,
                json,
                index_dir,
            } => {
                let index = open_for_reading(repo, index_dir)?;
                let symbols = index
                    .symbols(&name)
                    .with_context(|| format!("looking up symbol `{name}`"))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&symbols)?);
                } else {
                    for s in &symbols {
                        let scope = s
                            .scope
                            .as_deref()
                            .map(|sc| format!(" in {sc}"))
                            .unwrap_or_default();
                        println!(
                            "{}:{}-{}\t{} {}{}\t{}",
                            s.path, s.start_line, s.end_line, s.kind, s.name, scope, s.signature
                        );
                    }
                }
                Ok(if symbols.is_empty() {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    }
}

/// The given path, else `CAIRN_REPO`, else the enclosing git repository, else the current directory.
pub(crate) fn repo_root(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return p
            .canonicalize()
            .with_context(|| format!("repository path {} does not exist", p.display()));
    }
    if let Some(p) = std::env::var_os("CAIRN_REPO") {
        return repo_root(Some(Path::new(&p)));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut dir = cwd.as_path();
    loop {
        if dir.join(".git").exists() {
            return Ok(dir.to_path_buf());
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => return Ok(cwd),
        }
    }
}

/// Opens read-only, so a running `cairn index --watch` (the writer) is never disturbed.
fn open_for_reading(repo: Option<&Path>, index_dir: Option<PathBuf>) -> Result<RepoIndex> {
    let root = repo_root(repo)?;
    let index = RepoIndex::open_read_only(&root, index_dir)
        .with_context(|| format!("opening the index of {}", root.display()))?;
    if let Some(n) = index.notice() {
        eprintln!("cairn: {n}");
    }
    if index.stats()?.files == 0 {
        eprintln!(
            "cairn: the index of {} is empty; run `cairn index` first",
            root.display()
        );
    }
    Ok(index)
}

fn index(root: &Path, options: IndexOptions, watch: bool, json: bool) -> Result<ExitCode> {
    let index = RepoIndex::open(root, options)
        .with_context(|| format!("opening the index of {}", root.display()))?;
    if let Some(n) = index.notice() {
        eprintln!("cairn: {n}");
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:>14} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let never = AtomicBool::new(false);
    let progress = |p: IndexProgress| {
        match p.phase {
            IndexProgressPhase::Walking => bar.set_message("walking"),
            IndexProgressPhase::Committing => bar.set_message("committing"),
            IndexProgressPhase::Indexing | IndexProgressPhase::Done => {
                bar.set_message(format!("{}/{} files", p.files_done, p.files_total))
            }
        }
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
    };
    let stats = index
        .update(&progress, &never)
        .with_context(|| format!("indexing {}", root.display()))?;
    bar.finish_and_clear();
    print_summary(&stats, started.elapsed(), json)?;
    if watch {
        eprintln!("watching {} for changes (Ctrl-C to stop)", root.display());
        let _watcher = index.watch(|e| match e {
            WatchEvent::Applied {
                paths,
                changed,
                elapsed,
            } => eprintln!(
                "updated {changed} of {} changed path(s) in {} ms",
                paths.len(),
                elapsed.as_millis()
            ),
            WatchEvent::Rescanned { files, elapsed } => {
                eprintln!("rescanned: {files} files in {} ms", elapsed.as_millis())
            }
            WatchEvent::Error(msg) => eprintln!("cairn: watcher: {msg}"),
        })?;
        loop {
            std::thread::park();
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

fn print_summary(stats: &IndexStats, elapsed: Duration, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(stats)?);
        return Ok(());
    }
    let langs: Vec<String> = {
        let mut v: Vec<(&String, &u64)> = stats.languages.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(l, n)| format!("{l} {n}")).collect()
    };
    println!(
        "{} files, {} symbols, {} chunks, {} of source",
        stats.files,
        stats.symbols,
        stats.chunks,
        human_bytes(stats.source_bytes)
    );
    println!("languages: {}", langs.join(", "));
    if let Some(run) = &stats.run {
        let secs = elapsed.as_secs_f64().max(1e-3);
        println!(
            "this run: {} indexed, {} unchanged, {} removed; skipped {} binary, {} too large, {} symlinks; {} errors",
            run.indexed,
            run.unchanged,
            run.removed,
            run.skipped_binary,
            run.skipped_large,
            run.skipped_symlinks,
            run.errors
        );
        println!(
            "time {:.2} s ({}/s)",
            secs,
            human_bytes((run.bytes_indexed as f64 / secs) as u64)
        );
    }
    println!(
        "index {} at {}",
        human_bytes(stats.index_bytes),
        stats.index_dir.display()
    );
    Ok(())
}

fn search(index: &RepoIndex, q: &SearchQuery, json: bool, explain: bool) -> Result<ExitCode> {
    let e = index
        .search(q)
        .with_context(|| format!("searching for {:?}", q.text))?;
    let found = !e.hits.is_empty();
    if json {
        if explain {
            println!("{}", serde_json::to_string_pretty(&e)?);
        } else {
            println!("{}", serde_json::to_string_pretty(&e.hits)?);
        }
    } else {
        if explain {
            let terms: Vec<String> = e.terms.iter().map(|(t, n)| format!("{t}×{n}")).collect();
            println!("query terms: {}", terms.join(" "));
            for run in &e.retrievers {
                println!(
                    "retriever {} ({} hits):",
                    run.retriever.as_str(),
                    run.hits.len()
                );
                for (i, h) in run.hits.iter().take(10).enumerate() {
                    let lines = if h.start_line > 0 {
                        format!(":{}-{}", h.start_line, h.end_line)
                    } else {
                        String::new()
                    };
                    let detail = h
                        .detail
                        .as_deref()
                        .map(|d| format!("  {d}"))
                        .unwrap_or_default();
                    println!(
                        "  {:>2}. {}{}  {:.3}{}",
                        i + 1,
                        h.path,
                        lines,
                        h.score,
                        detail
                    );
                }
            }
            println!("fused (reciprocal rank, k=60) in {} µs:", e.elapsed_us);
        }
        for (i, h) in e.hits.iter().enumerate() {
            println!(
                "{:>2}. {}:{}-{}  [{}]  score {:.4}",
                i + 1,
                h.path,
                h.start_line,
                h.end_line,
                h.lang,
                h.score
            );
            if explain {
                for w in &h.why {
                    let detail = w
                        .detail
                        .as_deref()
                        .map(|d| format!(" {d}"))
                        .unwrap_or_default();
                    println!(
                        "      {} #{} (score {:.3}, +{:.4}){} terms: {}",
                        w.retriever.as_str(),
                        w.rank,
                        w.score,
                        w.contribution,
                        detail,
                        w.terms.join(", ")
                    );
                }
            }
            for line in h.text.lines().take(if explain { 4 } else { 6 }) {
                println!("      | {line}");
            }
        }
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
