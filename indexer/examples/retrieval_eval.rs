//! File-level retrieval quality on SWE-bench-style issues: for each instance,
//! index its checkout, search the issue text, and score the files the fix
//! touched. A plain BM25-over-whole-files baseline runs on the same files in
//! the same run.
//!
//! cargo run --release -p cairn-indexer --example retrieval_eval -- \
//!     --data ../shared/eval/retrieval/swebench_dev.jsonl --checkouts /tmp/swe-checkouts

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use cairn_indexer::{Index, IndexOptions, SearchQuery};
use clap::Parser;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, TantivyDocument, Term};

#[derive(Parser)]
struct Args {
    /// JSON Lines: instance_id, repo, base_commit, query, relevant_files.
    #[arg(long)]
    data: PathBuf,
    /// Directory with one checkout per instance: CHECKOUTS/<instance_id>/.
    #[arg(long)]
    checkouts: PathBuf,
    /// Only the first N instances.
    #[arg(long)]
    limit: Option<usize>,
    /// Print per-instance ranks.
    #[arg(long)]
    verbose: bool,
}

#[derive(serde::Deserialize)]
struct Instance {
    instance_id: String,
    repo: String,
    query: String,
    relevant_files: Vec<String>,
}

#[derive(Default, Clone)]
struct Score {
    n: usize,
    r5: f64,
    r10: f64,
    mrr: f64,
}

impl Score {
    fn add(&mut self, ranked: &[String], relevant: &[String]) {
        let rel = |k: usize| {
            relevant
                .iter()
                .filter(|r| ranked.iter().take(k).any(|p| p == *r))
                .count() as f64
                / relevant.len().max(1) as f64
        };
        self.n += 1;
        self.r5 += rel(5);
        self.r10 += rel(10);
        if let Some(pos) = ranked.iter().position(|p| relevant.contains(p)) {
            self.mrr += 1.0 / (pos + 1) as f64;
        }
    }

    fn row(&self, name: &str) -> String {
        let n = self.n.max(1) as f64;
        format!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} |",
            self.n,
            self.r5 / n,
            self.r10 / n,
            self.mrr / n
        )
    }
}

fn first_rank(ranked: &[String], relevant: &[String]) -> String {
    ranked
        .iter()
        .position(|p| relevant.contains(p))
        .map_or("-".into(), |p| (p + 1).to_string())
}

/// BM25 over whole files with tantivy's default tokenizer: no symbols, no
/// chunks, no identifier splitting.
fn baseline(root: &Path, files: &[String], query: &str) -> Result<Vec<String>> {
    let mut b = Schema::builder();
    let path_f = b.add_text_field("path", STRING | STORED);
    let body_f = b.add_text_field("body", TEXT);
    let index = tantivy::Index::create_in_ram(b.build());
    let mut w = index.writer_with_num_threads::<TantivyDocument>(1, 50_000_000)?;
    for f in files {
        let Ok(bytes) = std::fs::read(root.join(f)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        w.add_document(doc!(path_f => f.as_str(), body_f => text.as_ref()))?;
    }
    w.commit()?;
    let mut analyzer = index.tokenizer_for_field(body_f)?;
    let mut terms = Vec::new();
    let mut stream = analyzer.token_stream(query);
    while let Some(t) = stream.next() {
        if !terms.contains(&t.text) {
            terms.push(t.text.clone());
        }
    }
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .iter()
        .map(|t| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(body_f, t),
                IndexRecordOption::WithFreqs,
            ));
            (Occur::Should, q)
        })
        .collect();
    let reader = index.reader()?;
    let searcher = reader.searcher();
    let top = searcher.search(
        &BooleanQuery::new(clauses),
        &TopDocs::with_limit(20).order_by_score(),
    )?;
    let mut out = Vec::new();
    for (_, addr) in top {
        let d: TantivyDocument = searcher.doc(addr)?;
        if let Some(p) = d.get_first(path_f).and_then(|v| v.as_str()) {
            out.push(p.to_string());
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let mut instances: Vec<Instance> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    if let Some(n) = args.limit {
        instances.truncate(n);
    }
    let mut cairn = Score::default();
    let mut base = Score::default();
    let mut per_repo: BTreeMap<String, (Score, Score)> = BTreeMap::new();
    let started = Instant::now();
    let mut search_ms = Vec::new();
    let mut skipped = 0;
    for inst in &instances {
        let root = args.checkouts.join(&inst.instance_id);
        if !root.is_dir() {
            eprintln!("no checkout for {}; skipped", inst.instance_id);
            skipped += 1;
            continue;
        }
        let idx = tempfile::tempdir()?;
        let index = Index::open(
            &root,
            IndexOptions {
                index_dir: Some(idx.path().to_path_buf()),
                ..Default::default()
            },
        )?;
        index.update_all(&|_| {}, &AtomicBool::new(false))?;
        let mut q = SearchQuery::new(&inst.query);
        q.limit = 20;
        q.max_per_file = 1;
        let t = Instant::now();
        let hits = index.search(&q)?;
        search_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let ranked: Vec<String> = hits.into_iter().map(|h| h.path).collect();
        let files = index.indexed_files()?;
        let base_ranked = baseline(&root, &files, &inst.query)?;
        cairn.add(&ranked, &inst.relevant_files);
        base.add(&base_ranked, &inst.relevant_files);
        let e = per_repo.entry(inst.repo.clone()).or_default();
        e.0.add(&ranked, &inst.relevant_files);
        e.1.add(&base_ranked, &inst.relevant_files);
        if args.verbose {
            eprintln!(
                "{:<28} cairn rank {:>2}  bm25-files rank {:>2}  ({} files)",
                inst.instance_id,
                first_rank(&ranked, &inst.relevant_files),
                first_rank(&base_ranked, &inst.relevant_files),
                files.len()
            );
        }
    }
    search_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        search_ms
            .get(((search_ms.len() as f64 * p) as usize).min(search_ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!("| retriever | instances | Recall@5 | Recall@10 | MRR |");
    println!("|---|---|---|---|---|");
    println!(
        "{}",
        cairn.row("cairn search (RRF: chunks + symbols + paths)")
    );
    println!("{}", base.row("baseline: BM25 over whole files"));
    for (repo, (c, b)) in &per_repo {
        println!("{}", c.row(&format!("{repo}: cairn")));
        println!("{}", b.row(&format!("{repo}: baseline")));
    }
    println!(
        "\n{} instances ({} skipped) in {:.1} s; cairn search latency p50 {:.1} ms, max {:.1} ms",
        cairn.n,
        skipped,
        started.elapsed().as_secs_f64(),
        pct(0.5),
        search_ms.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
