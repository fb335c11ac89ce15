//! Definitions by name and the context for a cursor: the identifiers around it resolved to
//! their definitions first, then BM25 chunks, fitted to a character budget.

use super::*;

impl Index {
    /// Definitions named `name` (case-insensitive; exact case first). A
    /// qualified name (`Parser::parse`, `Parser.parse`) also filters by scope.
    pub fn symbols(&self, name: &str) -> Result<Vec<Symbol>> {
        let f = self.inner.fields;
        let searcher = self.inner.reader.searcher();
        let (scope, base) = match name.rsplit_once("::").or_else(|| name.rsplit_once('.')) {
            Some((s, b)) if !b.is_empty() => (Some(s), b),
            _ => (None, name),
        };
        let base_lc = base.to_lowercase();
        let q = TermQuery::new(
            Term::from_field_text(f.name_lc, &base_lc),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&q, &TopDocs::with_limit(1000).order_by_score())
            .map_err(self.te())?;
        let mut out = Vec::new();
        for (_, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            let info = chunk_info(&f, &d);
            for s in chunk_symbols(&f, &d, &info) {
                if s.name.to_lowercase() != base_lc {
                    continue;
                }
                if let Some(scope) = scope {
                    let ok = s.scope.as_deref().is_some_and(|sc| {
                        let norm = sc.replace("::", ".");
                        norm.ends_with(&scope.replace("::", "."))
                    });
                    if !ok {
                        continue;
                    }
                }
                out.push(s);
            }
        }
        out.sort_by(|a, b| {
            (a.name != base)
                .cmp(&(b.name != base))
                .then_with(|| a.path.cmp(&b.path))
                .then_with(|| a.start_line.cmp(&b.start_line))
        });
        Ok(out)
    }

    /// Symbols defined in one file, in order.
    pub fn file_symbols(&self, path: &std::path::Path) -> Result<Vec<Symbol>> {
        let rel = self.rel(path)?;
        let f = self.inner.fields;
        let searcher = self.inner.reader.searcher();
        let q = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.path, &rel),
                    IndexRecordOption::Basic,
                )) as Box<dyn Query>,
            ),
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.doc_type, DOC_CHUNK),
                    IndexRecordOption::Basic,
                )),
            ),
        ]);
        let addrs = searcher
            .search(&q, &tantivy::collector::DocSetCollector)
            .map_err(self.te())?;
        let mut out = Vec::new();
        for addr in addrs {
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            let info = chunk_info(&f, &d);
            out.extend(chunk_symbols(&f, &d, &info));
        }
        out.sort_by_key(|s| (s.start_line, s.start_byte));
        Ok(out)
    }

    /// Context for a completion at `cursor` (a byte offset into `text`, the
    /// editor's current content of `path`): definitions of identifiers used
    /// near the cursor, then chunks elsewhere sharing those identifiers. The
    /// window around the cursor (which the prompt already holds) is excluded.
    /// Snippets are deduplicated and fit in `budget_chars` together.
    pub fn context_for(
        &self,
        path: &std::path::Path,
        text: &str,
        cursor: usize,
        budget_chars: usize,
    ) -> Result<Vec<Snippet>> {
        let rel = self.rel(path).unwrap_or_default();
        let f = self.inner.fields;
        let mut cursor = cursor.min(text.len());
        while !text.is_char_boundary(cursor) {
            cursor -= 1;
        }
        let mut lo = cursor.saturating_sub(CONTEXT_BEFORE);
        while !text.is_char_boundary(lo) {
            lo -= 1;
        }
        let mut hi = (cursor + CONTEXT_AFTER).min(text.len());
        while !text.is_char_boundary(hi) {
            hi += 1;
        }
        let line_of = |b: usize| text[..b].bytes().filter(|&c| c == b'\n').count() + 1;
        let cursor_line = line_of(cursor);
        let excl_first = line_of(lo);
        let excl_last = cursor_line + text[cursor..hi].bytes().filter(|&c| c == b'\n').count();

        // Identifiers near the cursor, weighted by closeness.
        let window = &text[lo..hi];
        let mut weights: HashMap<String, (f32, String)> = HashMap::new();
        let mut line = excl_first;
        let mut last = 0usize;
        for_each_word(window, |w, off| {
            line += window[last..off].bytes().filter(|&c| c == b'\n').count();
            last = off;
            let abs = lo + off;
            // The word being typed is unfinished.
            if abs <= cursor && cursor <= abs + w.len() {
                return;
            }
            if w.len() < 3 || w.as_bytes()[0].is_ascii_digit() {
                return;
            }
            let lc = w.to_lowercase();
            if is_keyword(&lc) {
                return;
            }
            let dist = line.abs_diff(cursor_line) as f32;
            let weight = 1.0 / (1.0 + dist / 8.0);
            let e = weights.entry(lc).or_insert((0.0, w.to_string()));
            e.0 += weight;
        });
        let mut idents: Vec<(String, f32, String)> = weights
            .into_iter()
            .map(|(lc, (w, orig))| (lc, w, orig))
            .collect();
        idents.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        idents.truncate(CONTEXT_IDENTS);
        if idents.is_empty() || budget_chars == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.inner.reader.searcher();
        let excluded = |p: &str, s: usize, e: usize| p == rel && s <= excl_last && e >= excl_first;

        // Definitions.
        let name_terms: Vec<(String, f32)> =
            idents.iter().map(|(lc, w, _)| (lc.clone(), *w)).collect();
        let top = searcher
            .search(
                &terms_query(f.name_lc, &name_terms),
                &TopDocs::with_limit(CONTEXT_DEF_CHUNKS).order_by_score(),
            )
            .map_err(self.te())?;
        let ident_weight: HashMap<&str, f32> =
            idents.iter().map(|(lc, w, _)| (lc.as_str(), *w)).collect();
        let mut defs: Vec<(f32, Symbol, usize)> = Vec::new();
        let mut chunks: Vec<ChunkInfo> = Vec::new();
        let mut per_name: HashMap<String, usize> = HashMap::new();
        for (_, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            let info = chunk_info(&f, &d);
            for s in chunk_symbols(&f, &d, &info) {
                let name_lc = s.name.to_lowercase();
                let Some(&w) = ident_weight.get(name_lc.as_str()) else {
                    continue;
                };
                if excluded(&s.path, s.start_line, s.end_line) {
                    continue;
                }
                let n = per_name.entry(name_lc).or_insert(0);
                if *n >= 2 {
                    continue;
                }
                *n += 1;
                // Types and functions say more about a call site than constants do.
                let prior = match s.kind {
                    SymbolKind::Const | SymbolKind::Module => 0.7,
                    _ => 1.0,
                };
                // Same-file and same-directory definitions are likelier the right one.
                let near = if s.path == rel {
                    1.3
                } else if parent(&s.path) == parent(&rel) {
                    1.15
                } else {
                    1.0
                };
                defs.push((w * prior * near, s, chunks.len()));
            }
            chunks.push(info);
        }
        defs.sort_by(|a, b| b.0.total_cmp(&a.0));

        let mut out: Vec<Snippet> = Vec::new();
        let mut used = 0usize;
        let mut taken: Vec<(String, usize, usize)> = Vec::new();
        let overlaps = |taken: &[(String, usize, usize)], p: &str, s: usize, e: usize| {
            taken
                .iter()
                .any(|(tp, ts, te)| tp == p && s <= *te && e >= *ts)
        };
        // At a member access, what the receiver is comes first: the model has to name one
        // of its members.
        let outline_room = (budget_chars as f64 * CONTEXT_OUTLINE_SHARE) as usize;
        for sn in self.receiver_outlines(&rel, text, cursor, outline_room, &excluded) {
            used += sn.text.len() + sn.path.len() + SNIPPET_OVERHEAD;
            taken.push((sn.path.clone(), sn.start_line, sn.end_line));
            out.push(sn);
        }
        // Definitions take at most a share of the rest; the rest goes to similar code,
        // which the model copies from more often than it calls what it was shown.
        let def_budget =
            used + (budget_chars.saturating_sub(used) as f64 * CONTEXT_DEF_SHARE) as usize;
        for (score, s, ci) in defs.into_iter().take(CONTEXT_MAX_DEFS) {
            if overlaps(&taken, &s.path, s.start_line, s.end_line) {
                continue;
            }
            let chunk = &chunks[ci];
            // The symbol's own lines within its chunk.
            let from = s.start_line.max(chunk.start_line);
            let to = s.end_line.min(chunk.end_line).min(from + DEF_MAX_LINES - 1);
            if from > to {
                continue;
            }
            let body: String = chunk
                .text
                .split('\n')
                .skip(from - chunk.start_line)
                .take(to + 1 - from)
                .collect::<Vec<_>>()
                .join("\n");
            let reason = format!("definition of `{}` ({})", s.name, s.kind);
            if let Some(sn) = fit(
                &s.path,
                from,
                body,
                def_budget.saturating_sub(used),
                score,
                SnippetKind::Definition,
                reason,
            ) {
                used += sn.text.len() + sn.path.len() + SNIPPET_OVERHEAD;
                taken.push((sn.path.clone(), sn.start_line, sn.end_line));
                out.push(sn);
            }
            if def_budget.saturating_sub(used) < MIN_SNIPPET {
                break;
            }
        }

        // Similar chunks: BM25 over identifier parts.
        let mut part_terms: HashMap<String, f32> = HashMap::new();
        for (lc, w, orig) in &idents {
            *part_terms.entry(lc.clone()).or_insert(0.0) += *w;
            split_identifier(orig, |p| {
                if p.len() >= 3 {
                    let p = p.to_lowercase();
                    if !is_keyword(&p) {
                        *part_terms.entry(p).or_insert(0.0) += *w * 0.5;
                    }
                }
            });
        }
        // Terms in more than one document in twenty say little about which chunk is
        // similar and cost the most (their postings are the longest, and they keep
        // block-max pruning from skipping): they decided the slow tail of this query.
        // Short posting lists are cheap, so a small repository keeps every term.
        let max_df = (CONTEXT_MAX_DF * searcher.num_docs() as f64).max(CONTEXT_MAX_DF_FLOOR);
        let part_terms: Vec<(String, f32)> = part_terms
            .into_iter()
            .filter(|(t, _)| {
                let df = searcher
                    .doc_freq(&Term::from_field_text(f.text, t))
                    .unwrap_or(0);
                df as f64 <= max_df
            })
            .collect();
        if part_terms.is_empty() {
            return Ok(out);
        }
        let top = searcher
            .search(
                &terms_query(f.text, &part_terms),
                &TopDocs::with_limit(24).order_by_score(),
            )
            .map_err(self.te())?;
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(self.te())?;
            let c = chunk_info(&f, &d);
            if excluded(&c.path, c.start_line, c.end_line)
                || overlaps(&taken, &c.path, c.start_line, c.end_line)
            {
                continue;
            }
            let reason = "shares identifiers with the code near the cursor".to_string();
            if let Some(sn) = fit(
                &c.path,
                c.start_line,
                c.text,
                budget_chars.saturating_sub(used),
                score,
                SnippetKind::Similar,
                reason,
            ) {
                used += sn.text.len() + sn.path.len() + SNIPPET_OVERHEAD;
                taken.push((sn.path.clone(), sn.start_line, sn.end_line));
                out.push(sn);
            }
            if budget_chars.saturating_sub(used) < MIN_SNIPPET {
                break;
            }
        }
        Ok(out)
    }
}

/// Bytes of the document before / after the cursor whose identifiers are used
/// (and whose lines are excluded from the context).
pub(super) const CONTEXT_BEFORE: usize = 2000;
pub(super) const CONTEXT_AFTER: usize = 600;
pub(super) const CONTEXT_IDENTS: usize = 16;
pub(super) const CONTEXT_MAX_DEFS: usize = 12;
/// Share of `context_for`'s budget definitions may use. All of it (the old behaviour)
/// left no room for similar code: CrossCodeEval edit similarity 0.339 against 0.421 at
/// one half (0.412 at a quarter, 0.414 at none; bench/README.md, Evaluations).
pub(super) const CONTEXT_DEF_SHARE: f64 = 0.5;
/// Share of `context_for`'s budget the outlines of a member access's receiver may use.
pub(super) const CONTEXT_OUTLINE_SHARE: f64 = 0.6;
/// Chunks defining identifiers near the cursor that are looked at.
pub(super) const CONTEXT_DEF_CHUNKS: usize = 64;
/// Largest share of the index's documents a term may occur in and still be used to find
/// similar chunks.
pub(super) const CONTEXT_MAX_DF: f64 = 0.05;
/// Terms in at most this many documents are always used.
pub(super) const CONTEXT_MAX_DF_FLOOR: f64 = 2000.0;
pub(super) const DEF_MAX_LINES: usize = 40;
/// Characters a caller's prompt spends on a snippet header (path, lines, fence).
pub(super) const SNIPPET_OVERHEAD: usize = 16;
pub(super) const MIN_SNIPPET: usize = 80;

pub(super) fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(d, _)| d)
}

/// The snippet, cut to whole lines that fit in `room`.
pub(super) fn fit(
    path: &str,
    start_line: usize,
    text: String,
    room: usize,
    score: f32,
    kind: SnippetKind,
    reason: String,
) -> Option<Snippet> {
    let room = room.checked_sub(path.len() + SNIPPET_OVERHEAD)?;
    let mut body = text;
    if body.len() > room {
        if room < MIN_SNIPPET {
            return None;
        }
        // `room` may fall inside a multi-byte character; a newline never does.
        let mut end = room;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        let cut = body[..end].rfind('\n').unwrap_or(0);
        if cut == 0 {
            return None;
        }
        body.truncate(cut);
    }
    let body = body.trim_end().to_string();
    if body.trim().is_empty() {
        return None;
    }
    let lines = body.split('\n').count();
    Some(Snippet {
        path: path.to_string(),
        start_line,
        end_line: start_line + lines - 1,
        text: body,
        score,
        kind,
        reason,
    })
}
