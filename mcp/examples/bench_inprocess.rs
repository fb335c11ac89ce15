//! The in-process peer of bench/mcp: the engine calls behind the `search` and `context_for`
//! tools, made directly on a workspace opened as `cairn mcp` opens it, one at a time, timed
//! per call. Prints `{"search": [ms…], "context_for": [ms…], "search_hits": [n…],
//! "context_snippets": [n…]}` on stdout.
//!
//! bench_inprocess --repo DIR --queries FILE --positions FILE
//! (queries: a JSON array of strings; positions: a JSON array of {path, line, column})

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_engine::SearchQuery;

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| panic!("missing {name}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repo = PathBuf::from(arg(&args, "--repo"));
    let read = |name: &str| -> serde_json::Value {
        let p = arg(&args, name);
        serde_json::from_str(&std::fs::read_to_string(&p).expect(&p)).expect(&p)
    };
    let queries: Vec<String> = serde_json::from_value(read("--queries")).unwrap();
    let positions: Vec<serde_json::Value> = serde_json::from_value(read("--positions")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ws = cairn_mcp::open_workspace(&repo).unwrap();
        let state = tokio::time::timeout(Duration::from_secs(1800), ws.index_settled())
            .await
            .unwrap();
        eprintln!("index: {state:?}");
        let mut search = Vec::new();
        let mut search_hits = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let mut query = SearchQuery::new(q.clone());
            query.limit = 10;
            query.max_per_file = 2;
            let t = Instant::now();
            let index = ws.repo_index().expect("index open");
            // As the tool runs it: on the blocking pool.
            let hits =
                tokio::task::spawn_blocking(move || index.search(&query).map(|e| e.hits.len()))
                    .await
                    .unwrap()
                    .unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if i >= 5 {
                search.push(ms);
                search_hits.push(hits);
            }
        }
        let mut context = Vec::new();
        let mut context_snippets = Vec::new();
        for (i, p) in positions.iter().enumerate() {
            let path = p["path"].as_str().unwrap();
            let line = p["line"].as_u64().unwrap() as usize;
            let column = p["column"].as_u64().unwrap() as usize;
            let t = Instant::now();
            let (_, snippets) = ws.completion_context(path, line, column).await.unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if i >= 5 {
                context.push(ms);
                context_snippets.push(snippets.len());
            }
        }
        println!(
            "{}",
            serde_json::json!({
                "search": search,
                "context_for": context,
                "search_hits": search_hits,
                "context_snippets": context_snippets,
            })
        );
    });
}
