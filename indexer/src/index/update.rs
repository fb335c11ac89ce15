//! Writing the index: one file's text analysed and replaced, batches from the watcher,
//! and `update_all`, the parallel walk of the whole repository with progress and cancel.

use super::*;

impl Index {
    /// Every file's record, read from the file documents' columns.
    pub(super) fn load_file_states(&self) -> Result<HashMap<String, FileState>> {
        let f = self.inner.fields;
        let te = tantivy_err(&self.inner.dir);
        let searcher = self.inner.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(f.doc_type, DOC_FILE),
            IndexRecordOption::Basic,
        );
        let mut docs: Vec<_> = searcher
            .search(&q, &DocSetCollector)
            .map_err(&te)?
            .into_iter()
            .collect();
        docs.sort();
        let mut out = HashMap::with_capacity(docs.len());
        let missing = |name: &str| {
            tantivy::TantivyError::SchemaError(format!("the index has no `{name}` column"))
        };
        let mut seg = usize::MAX;
        let mut cols = None;
        let (mut path, mut hash, mut lang) = (String::new(), String::new(), String::new());
        for addr in docs {
            if addr.segment_ord as usize != seg {
                seg = addr.segment_ord as usize;
                let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
                let str_col = |name: &str| {
                    ff.str(name)
                        .and_then(|c| c.ok_or_else(|| missing(name)))
                        .map_err(&te)
                };
                cols = Some((
                    str_col("file_path")?,
                    str_col("file_hash")?,
                    str_col("file_lang")?,
                    ff.u64("size").map_err(&te)?,
                    ff.u64("mtime").map_err(&te)?,
                    ff.u64("n_chunks").map_err(&te)?,
                    ff.u64("n_symbols").map_err(&te)?,
                ));
            }
            let Some((c_path, c_hash, c_lang, c_size, c_mtime, c_chunks, c_symbols)) = &cols else {
                continue;
            };
            let d = addr.doc_id;
            let read = |c: &tantivy::columnar::StrColumn, out: &mut String| -> bool {
                out.clear();
                c.ords()
                    .first(d)
                    .is_some_and(|o| c.ord_to_str(o, out).unwrap_or(false))
            };
            if !read(c_path, &mut path) {
                continue;
            }
            read(c_hash, &mut hash);
            read(c_lang, &mut lang);
            out.insert(
                path.clone(),
                FileState {
                    hash: hash.clone(),
                    size: c_size.first(d).unwrap_or(0),
                    mtime: c_mtime.first(d).unwrap_or(0),
                    lang: lang.clone(),
                    n_chunks: c_chunks.first(d).unwrap_or(0),
                    n_symbols: c_symbols.first(d).unwrap_or(0),
                },
            );
        }
        Ok(out)
    }

    pub(super) fn writer(&self) -> Result<MutexGuard<'_, IndexWriter>> {
        match &self.inner.writer {
            Some(w) => Ok(lock(w)),
            None => Err(Error::ReadOnly(self.inner.dir.clone())),
        }
    }

    pub(crate) fn rel(&self, path: &Path) -> Result<String> {
        let p = if path.is_absolute() {
            // Accept paths through a symlinked root, e.g. /tmp vs /private/tmp.
            match path.strip_prefix(&self.inner.root) {
                Ok(_) => path.to_path_buf(),
                Err(_) => {
                    let parent = path.parent().and_then(|p| p.canonicalize().ok());
                    match (parent, path.file_name()) {
                        (Some(p), Some(n)) => p.join(n),
                        _ => path.to_path_buf(),
                    }
                }
            }
        } else {
            path.to_path_buf()
        };
        walk::rel_path(&self.inner.root, &p).ok_or_else(|| Error::OutsideRoot(path.to_path_buf()))
    }

    pub(super) fn add_analysis(
        &self,
        w: &IndexWriter,
        rel: &str,
        file: &FileMeta<'_>,
        a: &FileAnalysis,
    ) -> Result<()> {
        let f = &self.inner.fields;
        let te = tantivy_err(&self.inner.dir);
        let FileMeta {
            label: lang_label,
            hash,
            size,
            mtime,
        } = *file;
        w.delete_term(Term::from_field_text(f.path, rel));
        // Each symbol goes with the chunk holding its first line (chunks are
        // sorted by line); one outside every chunk goes with the next one, or
        // the last.
        let mut per_chunk: Vec<Vec<&crate::analyze::Symbol>> = vec![Vec::new(); a.chunks.len()];
        if !a.chunks.is_empty() {
            for s in &a.symbols {
                let i = a.chunks.partition_point(|c| c.end_line < s.start_line);
                per_chunk[i.min(a.chunks.len() - 1)].push(s);
            }
        }
        for (c, syms) in a.chunks.iter().zip(&per_chunk) {
            w.add_document(f.chunk_doc(rel, lang_label, c, syms))
                .map_err(&te)?;
        }
        let rec = FileRecord {
            path: rel,
            lang: lang_label,
            hash,
            size,
            mtime,
            n_chunks: a.chunks.len() as u64,
            n_symbols: a.symbols.len() as u64,
            first_line: a.chunks.first().map_or(0, |c| c.start_line as u64),
        };
        w.add_document(f.file_doc(&rec)).map_err(&te)?;
        lock(&self.inner.files).insert(
            rel.to_string(),
            FileState {
                hash: hash.to_string(),
                size,
                mtime,
                lang: lang_label.to_string(),
                n_chunks: rec.n_chunks,
                n_symbols: rec.n_symbols,
            },
        );
        Ok(())
    }

    pub(super) fn delete_path(&self, w: &IndexWriter, rel: &str) -> bool {
        let f = &self.inner.fields;
        let mut files = lock(&self.inner.files);
        // A directory removal takes every indexed file under it.
        let prefix = format!("{rel}/");
        let victims: Vec<String> = files
            .keys()
            .filter(|k| k.as_str() == rel || k.starts_with(&prefix))
            .cloned()
            .collect();
        for v in &victims {
            w.delete_term(Term::from_field_text(f.path, v));
            files.remove(v);
        }
        !victims.is_empty()
    }

    pub(super) fn commit(&self, w: &mut IndexWriter) -> Result<()> {
        w.commit().map_err(tantivy_err(&self.inner.dir))?;
        self.reload()
    }

    /// Indexes `text` as the current content of `path` (an editor's unsaved
    /// buffer) and commits, so searches see it at once.
    pub fn update_file_text(&self, path: &Path, text: &str) -> Result<FileOutcome> {
        let rel = self.rel(path)?;
        let mut w = self.writer()?;
        let outcome = self.index_text(&w, &rel, text, 0)?;
        self.commit(&mut w)?;
        Ok(outcome)
    }

    pub(super) fn index_text(
        &self,
        w: &IndexWriter,
        rel: &str,
        text: &str,
        mtime: u64,
    ) -> Result<FileOutcome> {
        if text.len() as u64 > self.inner.options.max_file_bytes {
            return Ok(FileOutcome::Skipped(SkipReason::TooLarge));
        }
        if text.as_bytes()[..text.len().min(8192)].contains(&0) {
            return Ok(FileOutcome::Skipped(SkipReason::Binary));
        }
        let hash = walk::git_blob_id(text.as_bytes());
        if lock(&self.inner.files)
            .get(rel)
            .is_some_and(|s| s.hash == hash)
        {
            return Ok(FileOutcome::Unchanged);
        }
        let path = Path::new(rel);
        let label = label_for(path);
        let mut parser = tree_sitter::Parser::new();
        let a = analyze_text(
            &mut parser,
            rel,
            Lang::from_path(path),
            &label,
            text,
            &|| false,
        );
        let meta = FileMeta {
            label: &label,
            hash: &hash,
            size: text.len() as u64,
            mtime,
        };
        self.add_analysis(w, rel, &meta, &a)?;
        Ok(FileOutcome::Indexed {
            symbols: a.symbols.len(),
            chunks: a.chunks.len(),
        })
    }

    /// Re-reads `path` from disk and updates the index (removing it if it is
    /// gone, binary, too large or ignored by name), then commits.
    pub fn update_file(&self, path: &Path) -> Result<FileOutcome> {
        let rel = self.rel(path)?;
        let mut w = self.writer()?;
        let outcome = self.update_rel(&w, &rel)?;
        self.commit(&mut w)?;
        Ok(outcome)
    }

    pub(crate) fn update_rel(&self, w: &IndexWriter, rel: &str) -> Result<FileOutcome> {
        let abs = self.inner.root.join(rel);
        if walk::skipped_by_name(rel, &self.inner.options) {
            self.delete_path(w, rel);
            return Ok(FileOutcome::Skipped(SkipReason::Ignored));
        }
        match walk::read_file(&abs, self.inner.options.max_file_bytes) {
            ReadOutcome::Text { text, mtime, .. } => self.index_text(w, rel, &text, mtime),
            ReadOutcome::Binary => {
                self.delete_path(w, rel);
                Ok(FileOutcome::Skipped(SkipReason::Binary))
            }
            ReadOutcome::TooLarge => {
                self.delete_path(w, rel);
                Ok(FileOutcome::Skipped(SkipReason::TooLarge))
            }
            ReadOutcome::Gone => {
                self.delete_path(w, rel);
                Ok(FileOutcome::Removed)
            }
            ReadOutcome::Error(e) => {
                tracing::warn!("cannot read {}: {e}", abs.display());
                Ok(FileOutcome::Skipped(SkipReason::Ignored))
            }
        }
    }

    /// Removes `path` (a file, or every indexed file under a directory) and commits.
    pub fn remove_file(&self, path: &Path) -> Result<bool> {
        let rel = self.rel(path)?;
        let mut w = self.writer()?;
        let removed = self.delete_path(&w, &rel);
        self.commit(&mut w)?;
        Ok(removed)
    }

    /// Applies a batch of changed paths (from the watcher) with one commit.
    pub(crate) fn apply_batch(&self, rels: &[String]) -> Result<usize> {
        let mut w = self.writer()?;
        let mut changed = 0;
        for rel in rels {
            let abs = self.inner.root.join(rel);
            let outcome = if abs.is_dir() {
                // A new or moved-in directory: index what it holds.
                let mut opts = self.inner.options.clone();
                opts.index_dir = None;
                let (entries, _) = walk::walk(&abs, &opts);
                for e in entries {
                    let sub = format!("{rel}/{}", e.rel);
                    if let FileOutcome::Indexed { .. } = self.update_rel(&w, &sub)? {
                        changed += 1;
                    }
                }
                continue;
            } else {
                self.update_rel(&w, rel)?
            };
            if outcome != FileOutcome::Unchanged {
                changed += 1;
            }
        }
        if changed > 0 {
            self.commit(&mut w)?;
        }
        Ok(changed)
    }

    /// Brings the index up to date with the working tree: new and changed files
    /// are (re)indexed, unchanged ones (same size and mtime, or same content
    /// hash) skipped, vanished ones removed. Commits every
    /// `commit_every_bytes`, so a killed run resumes where it stopped. Setting
    /// `cancel` commits what is done and returns [`Error::Cancelled`].
    pub fn update_all(
        &self,
        progress: &dyn Fn(Progress),
        cancel: &AtomicBool,
    ) -> Result<IndexStats> {
        let started = Instant::now();
        let mut w = self.writer()?;
        let mut run = RunStats::default();
        progress(Progress {
            phase: ProgressPhase::Walking,
            files_done: 0,
            files_total: 0,
            bytes_done: 0,
            bytes_total: 0,
        });
        let (entries, skips) = walk::walk(&self.inner.root, &self.inner.options);
        run.files_seen = entries.len() as u64;
        run.skipped_large = skips.large;
        run.skipped_symlinks = skips.symlinks;
        run.errors = skips.errors;

        // Vanished files.
        let seen: HashSet<&str> = entries.iter().map(|e| e.rel.as_str()).collect();
        let gone: Vec<String> = lock(&self.inner.files)
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for g in &gone {
            self.delete_path(&w, g);
        }
        run.removed = gone.len() as u64;

        // Fast path: same size and mtime as indexed means unchanged.
        let todo: Vec<WalkEntry> = {
            let files = lock(&self.inner.files);
            entries
                .into_iter()
                .filter(|e| {
                    !files
                        .get(&e.rel)
                        .is_some_and(|s| s.size == e.size && s.mtime == e.mtime && e.mtime != 0)
                })
                .collect()
        };
        run.unchanged = run.files_seen - todo.len() as u64;
        let bytes_total: u64 = todo.iter().map(|e| e.size).sum();
        let files_total = todo.len() as u64;
        let known: HashMap<String, String> = lock(&self.inner.files)
            .iter()
            .map(|(k, v)| (k.clone(), v.hash.clone()))
            .collect();

        enum Msg {
            Analyzed {
                idx: usize,
                label: String,
                hash: String,
                size: u64,
                mtime: u64,
                analysis: FileAnalysis,
            },
            SameHash {
                idx: usize,
                size: u64,
                mtime: u64,
            },
            Skip {
                idx: usize,
                reason: Option<SkipReason>,
            },
        }

        let next = AtomicUsize::new(0);
        let threads = self.inner.options.parse_threads.max(1);
        // A few files in flight: each holds its text, chunks and symbols.
        let (tx, rx) = mpsc::sync_channel::<Msg>(4);
        let mut result: Result<()> = Ok(());
        let mut bytes_done = 0u64;
        let mut files_done = 0u64;
        let mut since_commit = 0u64;
        let mut last_progress = Instant::now() - Duration::from_secs(1);
        let max_bytes = self.inner.options.max_file_bytes;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let tx = tx.clone();
                let todo = &todo;
                let next = &next;
                let known = &known;
                scope.spawn(move || {
                    let mut parser = tree_sitter::Parser::new();
                    loop {
                        if cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        let idx = next.fetch_add(1, Ordering::Relaxed);
                        let Some(e) = todo.get(idx) else { return };
                        let msg = match walk::read_file(&e.abs, max_bytes) {
                            ReadOutcome::Text {
                                text,
                                blob,
                                size,
                                mtime,
                            } => {
                                if known.get(&e.rel) == Some(&blob) {
                                    Msg::SameHash { idx, size, mtime }
                                } else {
                                    let path = Path::new(&e.rel);
                                    let label = label_for(path);
                                    let analysis = analyze_text(
                                        &mut parser,
                                        &e.rel,
                                        Lang::from_path(path),
                                        &label,
                                        &text,
                                        &|| cancel.load(Ordering::Relaxed),
                                    );
                                    Msg::Analyzed {
                                        idx,
                                        label,
                                        hash: blob,
                                        size,
                                        mtime,
                                        analysis,
                                    }
                                }
                            }
                            ReadOutcome::Binary => Msg::Skip {
                                idx,
                                reason: Some(SkipReason::Binary),
                            },
                            ReadOutcome::TooLarge => Msg::Skip {
                                idx,
                                reason: Some(SkipReason::TooLarge),
                            },
                            ReadOutcome::Gone => Msg::Skip { idx, reason: None },
                            ReadOutcome::Error(err) => {
                                tracing::warn!("cannot read {}: {err}", e.abs.display());
                                Msg::Skip {
                                    idx,
                                    reason: Some(SkipReason::Ignored),
                                }
                            }
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for msg in rx.iter() {
                if result.is_err() || cancel.load(Ordering::Relaxed) {
                    continue; // drain so workers finish
                }
                let step = (|| -> Result<()> {
                    match msg {
                        Msg::Analyzed {
                            idx,
                            label,
                            hash,
                            size,
                            mtime,
                            analysis,
                        } => {
                            let rel = &todo[idx].rel;
                            let meta = FileMeta {
                                label: &label,
                                hash: &hash,
                                size,
                                mtime,
                            };
                            self.add_analysis(&w, rel, &meta, &analysis)?;
                            run.indexed += 1;
                            run.bytes_indexed += size;
                            since_commit += size;
                            bytes_done += todo[idx].size;
                        }
                        Msg::SameHash { idx, size, mtime } => {
                            // Content unchanged, only the mtime moved: refresh the file record
                            // lazily on the next change; count it as unchanged.
                            let rel = &todo[idx].rel;
                            if let Some(s) = lock(&self.inner.files).get_mut(rel) {
                                s.size = size;
                                s.mtime = mtime;
                            }
                            run.unchanged += 1;
                            bytes_done += todo[idx].size;
                        }
                        Msg::Skip { idx, reason } => {
                            let rel = &todo[idx].rel;
                            if self.delete_path(&w, rel) {
                                run.removed += 1;
                            }
                            match reason {
                                Some(SkipReason::Binary) => run.skipped_binary += 1,
                                Some(SkipReason::TooLarge) => run.skipped_large += 1,
                                Some(SkipReason::Ignored) => run.errors += 1,
                                None => {}
                            }
                            bytes_done += todo[idx].size;
                        }
                    }
                    files_done += 1;
                    if since_commit >= self.inner.options.commit_every_bytes {
                        progress(Progress {
                            phase: ProgressPhase::Committing,
                            files_done,
                            files_total,
                            bytes_done,
                            bytes_total,
                        });
                        self.commit(&mut w)?;
                        run.commits += 1;
                        since_commit = 0;
                    }
                    if last_progress.elapsed() >= Duration::from_millis(50)
                        || files_done == files_total
                    {
                        last_progress = Instant::now();
                        progress(Progress {
                            phase: ProgressPhase::Indexing,
                            files_done,
                            files_total,
                            bytes_done,
                            bytes_total,
                        });
                    }
                    Ok(())
                })();
                if let Err(e) = step {
                    result = Err(e);
                    cancel_workers(&next, todo.len());
                }
            }
        });
        result?;
        progress(Progress {
            phase: ProgressPhase::Committing,
            files_done,
            files_total,
            bytes_done,
            bytes_total,
        });
        self.commit(&mut w)?;
        run.commits += 1;
        drop(w);
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        run.elapsed_ms = started.elapsed().as_millis() as u64;
        progress(Progress {
            phase: ProgressPhase::Done,
            files_done,
            files_total,
            bytes_done,
            bytes_total,
        });
        let mut stats = self.stats()?;
        stats.run = Some(run);
        Ok(stats)
    }
}
