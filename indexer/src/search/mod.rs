//! Retrieval: `search` for chat (BM25 over chunks, symbol names and paths,
//! fused by reciprocal rank), `context_for` for completions, `symbols` lookup.

use std::collections::{HashMap, HashSet};

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, TantivyDocument, Term};

use crate::analyze::Symbol;
use crate::index::Index;
use crate::lang::SymbolKind;
use crate::schema::{chunk_key, decode_symbols, DocExt, Fields, DOC_CHUNK};
use crate::tokenize::{for_each_word, is_keyword, query_terms, split_identifier, token_set};
use crate::{Error, Result};

mod context;
mod outline;

/// Reciprocal rank fusion constant (Cormack et al. use 60).
const RRF_K: f32 = 60.0;
/// At most this many distinct query terms are used.
const MAX_QUERY_TERMS: usize = 64;

/// A chat-style search.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SearchQuery {
    pub text: String,
    /// Hits returned. Default 10.
    pub limit: usize,
    /// At most this many hits from one file. Default 2.
    pub max_per_file: usize,
    /// Only paths starting with this prefix.
    pub path_prefix: Option<String>,
}

impl SearchQuery {
    pub fn new(text: impl Into<String>) -> Self {
        SearchQuery {
            text: text.into(),
            limit: 10,
            max_per_file: 2,
            path_prefix: None,
        }
    }
}

/// Which retriever contributed to a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retriever {
    /// BM25 over chunk text (and the names defined in the chunk).
    Chunks,
    /// Symbol names matching query terms.
    Symbols,
    /// File paths matching query terms.
    Paths,
}

impl Retriever {
    pub fn as_str(self) -> &'static str {
        match self {
            Retriever::Chunks => "chunks",
            Retriever::Symbols => "symbols",
            Retriever::Paths => "paths",
        }
    }
}

/// Why a hit was returned: one entry per retriever that ranked it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MatchReason {
    pub retriever: Retriever,
    /// 1-based rank in that retriever's list.
    pub rank: usize,
    /// The retriever's own score (BM25).
    pub score: f32,
    /// This retriever's share of the fused score.
    pub contribution: f32,
    /// Query terms found in the chunk, symbol name or path.
    pub terms: Vec<String>,
    /// e.g. the matched symbol, `fn parse_config (function)`.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchHit {
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    /// 1-based, inclusive.
    pub end_line: usize,
    /// Fused (RRF) score.
    pub score: f32,
    pub lang: String,
    pub text: String,
    pub why: Vec<MatchReason>,
}

/// One entry of one retriever's ranked list, for `--explain`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetrieverHit {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    pub score: f32,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RetrieverRun {
    pub retriever: Retriever,
    pub hits: Vec<RetrieverHit>,
}

/// The whole of a search: terms used, each retriever's list, the fused hits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchExplanation {
    /// Query terms after tokenization and stopword removal, with their counts.
    pub terms: Vec<(String, u32)>,
    pub retrievers: Vec<RetrieverRun>,
    pub hits: Vec<SearchHit>,
    pub elapsed_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnippetKind {
    /// The definition of an identifier used near the cursor.
    Definition,
    /// A chunk elsewhere that shares identifiers with the cursor's surroundings.
    Similar,
}

/// Context for a completion prompt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snippet {
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    pub text: String,
    pub score: f32,
    pub kind: SnippetKind,
    /// Human-readable reason, e.g. "definition of `parse_config` (function)".
    pub reason: String,
}

struct ChunkInfo {
    path: String,
    lang: String,
    start_line: usize,
    end_line: usize,
    text: String,
}

impl ChunkInfo {
    fn key(&self) -> String {
        chunk_key(&self.path, self.start_line)
    }
}

fn terms_query(field: Field, terms: &[(String, f32)]) -> BooleanQuery {
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .iter()
        .map(|(t, boost)| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(field, t),
                IndexRecordOption::WithFreqs,
            ));
            let q: Box<dyn Query> = if (*boost - 1.0).abs() > f32::EPSILON {
                Box::new(BoostQuery::new(q, *boost))
            } else {
                q
            };
            (Occur::Should, q)
        })
        .collect();
    BooleanQuery::new(clauses)
}

impl Index {
    fn te(&self) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
        move |source| Error::Tantivy {
            path: self.inner.dir.clone(),
            source,
        }
    }

    /// The chunk of `path` starting at `start_line`.
    fn chunk_at(
        &self,
        searcher: &Searcher,
        path: &str,
        start_line: usize,
    ) -> Result<Option<ChunkInfo>> {
        let f = self.inner.fields;
        let q = TermQuery::new(
            Term::from_field_text(f.path, path),
            IndexRecordOption::Basic,
        );
        let addrs = searcher.search(&q, &DocSetCollector).map_err(self.te())?;
        for addr in addrs {
            let lines = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("start_line")
                .map_err(self.te())?;
            if lines.first(addr.doc_id) != Some(start_line as u64) {
                continue;
            }
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            if d.str_of(f.doc_type) == DOC_CHUNK {
                return Ok(Some(chunk_info(&f, &d)));
            }
        }
        Ok(None)
    }

    /// The chunk named by a key from [`chunk_key`].
    fn chunk_of_key(&self, searcher: &Searcher, key: &str) -> Result<Option<ChunkInfo>> {
        let Some((path, line)) = key.rsplit_once('#') else {
            return Ok(None);
        };
        match line.parse() {
            Ok(line) => self.chunk_at(searcher, path, line),
            Err(_) => Ok(None),
        }
    }

    /// Chat retrieval: see [`SearchQuery`].
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        Ok(self.search_explain(query)?.hits)
    }

    /// [`Index::search`] with every retriever's ranked list, for debugging.
    pub fn search_explain(&self, query: &SearchQuery) -> Result<SearchExplanation> {
        let started = std::time::Instant::now();
        let f = self.inner.fields;
        let searcher = self.inner.reader.searcher();
        let terms = query_terms(&query.text, MAX_QUERY_TERMS);
        let mut explanation = SearchExplanation {
            terms: terms.clone(),
            retrievers: Vec::new(),
            hits: Vec::new(),
            elapsed_us: 0,
        };
        if terms.is_empty() || query.limit == 0 {
            return Ok(explanation);
        }
        // Repeated terms in a long question weigh more, sublinearly.
        let weighted: Vec<(String, f32)> = terms
            .iter()
            .map(|(t, c)| (t.clone(), 1.0 + (*c as f32).ln()))
            .collect();
        let depth = (query.limit * 10).clamp(50, 200);
        let prefix_ok = |p: &str| {
            query
                .path_prefix
                .as_deref()
                .is_none_or(|pre| p.starts_with(pre))
        };

        // 1. BM25 over chunks: text, plus names defined in the chunk.
        let mut chunk_q: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        chunk_q.push((Occur::Should, Box::new(terms_query(f.text, &weighted))));
        let sym_weighted: Vec<(String, f32)> =
            weighted.iter().map(|(t, w)| (t.clone(), w * 0.5)).collect();
        chunk_q.push((
            Occur::Should,
            Box::new(terms_query(f.sym_text, &sym_weighted)),
        ));
        let top = searcher
            .search(
                &BooleanQuery::new(chunk_q),
                &TopDocs::with_limit(depth).order_by_score(),
            )
            .map_err(self.te())?;
        let mut chunk_list: Vec<(String, f32, ChunkInfo)> = Vec::new();
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            let info = chunk_info(&f, &d);
            if prefix_ok(&info.path) {
                chunk_list.push((info.key(), score, info));
            }
        }
        let query_term_set: HashSet<&str> = terms.iter().map(|(t, _)| t.as_str()).collect();

        // 2. Symbol names: exact (case-insensitive) names weigh most, then name parts.
        let mut sym_clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let exact: Vec<(String, f32)> =
            weighted.iter().map(|(t, w)| (t.clone(), w * 3.0)).collect();
        sym_clauses.push((Occur::Should, Box::new(terms_query(f.name_lc, &exact))));
        sym_clauses.push((Occur::Should, Box::new(terms_query(f.name_text, &weighted))));
        let top = searcher
            .search(
                &BooleanQuery::new(sym_clauses),
                &TopDocs::with_limit(depth).order_by_score(),
            )
            .map_err(self.te())?;
        // Hits are chunks; the symbol shown is the one whose name the query names.
        let mut sym_list: Vec<(String, f32, Symbol)> = Vec::new();
        let mut sym_chunks: Vec<(String, ChunkInfo)> = Vec::new();
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            let info = chunk_info(&f, &d);
            if !prefix_ok(&info.path) {
                continue;
            }
            let Some(sym) = best_symbol(chunk_symbols(&f, &d, &info), &query_term_set) else {
                continue;
            };
            let key = info.key();
            sym_list.push((key.clone(), score, sym));
            sym_chunks.push((key, info));
        }

        // 3. Paths.
        let top = searcher
            .search(
                &terms_query(f.path_text, &weighted),
                &TopDocs::with_limit(depth.min(100)).order_by_score(),
            )
            .map_err(self.te())?;
        let mut path_list: Vec<(String, f32, String)> = Vec::new();
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            let path = d.str_of(f.path).to_string();
            if prefix_ok(&path) {
                let first = match d.u64_of(f.first_line) {
                    0 => String::new(),
                    line => chunk_key(&path, line as usize),
                };
                path_list.push((path, score, first));
            }
        }

        // Fusion at chunk level. A path hit lands on that file's best chunk from
        // the other lists, or its first chunk.
        let mut best_chunk_of_file: HashMap<String, String> = HashMap::new();
        for (key, _, info) in &chunk_list {
            best_chunk_of_file
                .entry(info.path.clone())
                .or_insert_with(|| key.clone());
        }
        for (key, _, s) in &sym_list {
            best_chunk_of_file
                .entry(s.path.clone())
                .or_insert_with(|| key.clone());
        }
        let mut fused: HashMap<String, (f32, Vec<MatchReason>)> = HashMap::new();
        let mut add = |key: &str, r: MatchReason| {
            let e = fused.entry(key.to_string()).or_insert((0.0, Vec::new()));
            e.0 += r.contribution;
            e.1.push(r);
        };
        let mut runs = Vec::new();
        let mut run = RetrieverRun {
            retriever: Retriever::Chunks,
            hits: Vec::new(),
        };
        for (rank, (key, score, info)) in chunk_list.iter().enumerate() {
            add(
                key,
                MatchReason {
                    retriever: Retriever::Chunks,
                    rank: rank + 1,
                    score: *score,
                    contribution: 1.0 / (RRF_K + rank as f32 + 1.0),
                    terms: Vec::new(),
                    detail: None,
                },
            );
            run.hits.push(RetrieverHit {
                path: info.path.clone(),
                start_line: info.start_line,
                end_line: info.end_line,
                score: *score,
                detail: None,
            });
        }
        runs.push(run);
        let mut run = RetrieverRun {
            retriever: Retriever::Symbols,
            hits: Vec::new(),
        };
        for (rank, (key, score, s)) in sym_list.iter().enumerate() {
            let detail = format!(
                "{} `{}`{}",
                s.kind,
                s.name,
                s.scope
                    .as_ref()
                    .map(|sc| format!(" in {sc}"))
                    .unwrap_or_default()
            );
            let name_terms: Vec<String> = token_set(&s.name)
                .into_iter()
                .filter(|t| query_term_set.contains(t.as_str()))
                .collect();
            add(
                key,
                MatchReason {
                    retriever: Retriever::Symbols,
                    rank: rank + 1,
                    score: *score,
                    contribution: 1.0 / (RRF_K + rank as f32 + 1.0),
                    terms: name_terms,
                    detail: Some(detail.clone()),
                },
            );
            run.hits.push(RetrieverHit {
                path: s.path.clone(),
                start_line: s.start_line,
                end_line: s.end_line,
                score: *score,
                detail: Some(detail),
            });
        }
        runs.push(run);
        let mut run = RetrieverRun {
            retriever: Retriever::Paths,
            hits: Vec::new(),
        };
        for (rank, (path, score, first)) in path_list.iter().enumerate() {
            let key = best_chunk_of_file
                .get(path)
                .cloned()
                .unwrap_or_else(|| first.clone());
            run.hits.push(RetrieverHit {
                path: path.clone(),
                start_line: 0,
                end_line: 0,
                score: *score,
                detail: None,
            });
            if key.is_empty() {
                continue;
            }
            let path_terms: Vec<String> = token_set(&path.replace(['/', '.', '-'], " "))
                .into_iter()
                .filter(|t| query_term_set.contains(t.as_str()))
                .collect();
            add(
                &key,
                MatchReason {
                    retriever: Retriever::Paths,
                    rank: rank + 1,
                    score: *score,
                    contribution: 1.0 / (RRF_K + rank as f32 + 1.0),
                    terms: path_terms,
                    detail: None,
                },
            );
        }
        runs.push(run);

        let mut ranked: Vec<(String, f32, Vec<MatchReason>)> =
            fused.into_iter().map(|(k, (s, r))| (k, s, r)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let chunk_texts: HashMap<&str, &ChunkInfo> = chunk_list
            .iter()
            .map(|(k, _, i)| (k.as_str(), i))
            .chain(sym_chunks.iter().map(|(k, i)| (k.as_str(), i)))
            .collect();
        let mut per_file: HashMap<String, usize> = HashMap::new();
        let mut hits = Vec::new();
        for (key, score, mut why) in ranked {
            if hits.len() >= query.limit {
                break;
            }
            let path = key.rsplit_once('#').map_or(key.as_str(), |(p, _)| p);
            let n = per_file.entry(path.to_string()).or_insert(0);
            if *n >= query.max_per_file.max(1) {
                continue;
            }
            let fetched;
            let info = match chunk_texts.get(key.as_str()) {
                Some(i) => *i,
                None => match self.chunk_of_key(&searcher, &key)? {
                    Some(i) => {
                        fetched = i;
                        &fetched
                    }
                    None => continue,
                },
            };
            *n += 1;
            let chunk_terms: HashSet<String> = token_set(&info.text).into_iter().collect();
            for r in why.iter_mut() {
                if r.retriever == Retriever::Chunks {
                    r.terms = terms
                        .iter()
                        .filter(|(t, _)| chunk_terms.contains(t))
                        .map(|(t, _)| t.clone())
                        .collect();
                }
            }
            why.sort_by_key(|r| r.rank);
            hits.push(SearchHit {
                path: info.path.clone(),
                start_line: info.start_line,
                end_line: info.end_line,
                score,
                lang: info.lang.clone(),
                text: info.text.clone(),
                why,
            });
        }
        explanation.retrievers = runs;
        explanation.hits = hits;
        explanation.elapsed_us = started.elapsed().as_micros() as u64;
        Ok(explanation)
    }
}

fn chunk_info(f: &Fields, d: &TantivyDocument) -> ChunkInfo {
    ChunkInfo {
        path: d.str_of(f.path).to_string(),
        lang: d.str_of(f.lang).to_string(),
        start_line: d.u64_of(f.start_line) as usize,
        end_line: d.u64_of(f.end_line) as usize,
        text: d.str_of(f.text).to_string(),
    }
}

fn chunk_symbols(f: &Fields, d: &TantivyDocument, c: &ChunkInfo) -> Vec<Symbol> {
    decode_symbols(
        d.bytes_of(f.symbols),
        &c.path,
        &c.lang,
        &c.text,
        c.start_line,
    )
}

/// The symbol of a chunk hit that a query names: its whole name is a query
/// term, else most of its name's words are; ties go to the first defined.
fn best_symbol(symbols: Vec<Symbol>, query_terms: &HashSet<&str>) -> Option<Symbol> {
    if let Some(i) = symbols
        .iter()
        .position(|s| query_terms.contains(s.name.to_lowercase().as_str()))
    {
        return symbols.into_iter().nth(i);
    }
    let mut best: Option<(usize, Symbol)> = None;
    for s in symbols {
        let n = token_set(&s.name)
            .iter()
            .filter(|t| query_terms.contains(t.as_str()))
            .count();
        if best.as_ref().is_none_or(|(bn, _)| n > *bn) {
            best = Some((n, s));
        }
    }
    best.map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::context::{fit, SNIPPET_OVERHEAD};
    use super::*;

    #[test]
    fn fit_cuts_whole_lines_even_when_the_room_ends_inside_a_character() {
        // Each line is 3 bytes of "é" pairs plus a newline; pick a room that
        // lands inside a two-byte character.
        let text = "ééééééééééééééééééééééééééééééééééééééééé\n".repeat(10);
        for room in 150..260 {
            let Some(sn) = fit(
                "p.rs",
                1,
                text.clone(),
                room,
                1.0,
                SnippetKind::Similar,
                String::new(),
            ) else {
                continue;
            };
            assert!(sn.text.len() + 4 + SNIPPET_OVERHEAD <= room, "{room}");
            assert!(sn.text.split('\n').all(|l| l.chars().count() == 41));
        }
    }
}
