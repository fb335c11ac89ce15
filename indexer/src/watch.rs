//! Live updates: file events from `notify`, debounced and applied in batches.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::index::Index;
use crate::walk::{rel_path, CAIRN_IGNORE};
use crate::{Error, Result};

/// The longest a change waits for the event stream to go quiet.
const MAX_BATCH_DELAY: Duration = Duration::from_millis(1000);
const IGNORE_FILES: [&str; 3] = [".gitignore", ".ignore", CAIRN_IGNORE];

/// What the watcher did with one batch of changes.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// Per-file updates, one commit.
    Applied {
        paths: Vec<String>,
        changed: usize,
        elapsed: Duration,
    },
    /// Many changes (branch switch) or an ignore file changed: a full incremental pass.
    Rescanned {
        files: u64,
        elapsed: Duration,
    },
    Error(String),
}

/// Keeps the index live while it exists; dropping it stops watching.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _notify: notify::RecommendedWatcher,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Index {
    /// Watches the repository and applies changes as they settle.
    pub fn watch(&self) -> Result<Watcher> {
        self.watch_with(|e| match e {
            WatchEvent::Error(msg) => tracing::warn!("index watcher: {msg}"),
            other => tracing::debug!("index watcher: {other:?}"),
        })
    }

    /// [`Index::watch`], reporting each batch to `on_event`.
    pub fn watch_with(&self, on_event: impl Fn(WatchEvent) + Send + 'static) -> Result<Watcher> {
        if !self.is_writable() {
            return Err(Error::ReadOnly(self.index_dir().to_path_buf()));
        }
        let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut w = notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        })?;
        w.watch(self.root(), RecursiveMode::Recursive)?;
        let stop = Arc::new(AtomicBool::new(false));
        let index = self.clone();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-index-watch".into())
            .spawn(move || watch_loop(index, rx, stop2, on_event))
            .map_err(|e| Error::Watch(notify::Error::io(e)))?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
            _notify: w,
        })
    }
}

fn watch_loop(
    index: Index,
    rx: mpsc::Receiver<notify::Result<notify::Event>>,
    stop: Arc<AtomicBool>,
    on_event: impl Fn(WatchEvent),
) {
    let debounce = index.inner.options.watch_debounce;
    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    let mut first_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(debounce) {
            Ok(Ok(ev)) => {
                if matches!(ev.kind, EventKind::Access(_)) {
                    continue;
                }
                pending.extend(ev.paths);
                first_at.get_or_insert_with(Instant::now);
                let overdue = first_at.is_some_and(|t| t.elapsed() >= MAX_BATCH_DELAY);
                if !overdue {
                    continue;
                }
            }
            Ok(Err(e)) => {
                on_event(WatchEvent::Error(e.to_string()));
                // Events may have been lost (queue overflow): rescan.
                pending.insert(index.root().join(".gitignore"));
                first_at.get_or_insert_with(Instant::now);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if pending.is_empty() {
            continue;
        }
        let paths = std::mem::take(&mut pending);
        first_at = None;
        apply(&index, paths, &stop, &on_event);
    }
}

fn apply(
    index: &Index,
    paths: BTreeSet<PathBuf>,
    stop: &AtomicBool,
    on_event: &impl Fn(WatchEvent),
) {
    let started = Instant::now();
    let root = index.root().to_path_buf();
    let mut rels = Vec::new();
    let mut rescan = false;
    let mut matchers = IgnoreCache::default();
    for p in paths {
        let Some(rel) = rel_path(&root, &p) else {
            continue;
        };
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if IGNORE_FILES.contains(&name) {
            rescan = true;
            continue;
        }
        // Hidden paths (.git included) are never indexed.
        if rel.split('/').any(|c| c.starts_with('.')) {
            continue;
        }
        if rel
            .split('/')
            .any(|c| index.inner.options.skip_dirs.iter().any(|d| d == c))
        {
            continue;
        }
        let is_dir = p.is_dir();
        if matchers.ignored(&root, &rel, is_dir) {
            continue;
        }
        rels.push(rel);
    }
    if rescan || rels.len() > index.inner.options.watch_batch_rescan {
        match index.update_all(&|_| {}, stop) {
            Ok(stats) => on_event(WatchEvent::Rescanned {
                files: stats.files,
                elapsed: started.elapsed(),
            }),
            Err(Error::Cancelled) => {}
            Err(e) => on_event(WatchEvent::Error(e.to_string())),
        }
        return;
    }
    if rels.is_empty() {
        return;
    }
    match index.apply_batch(&rels) {
        Ok(changed) => on_event(WatchEvent::Applied {
            paths: rels,
            changed,
            elapsed: started.elapsed(),
        }),
        Err(e) => on_event(WatchEvent::Error(e.to_string())),
    }
}

/// `.gitignore`, `.ignore` and `.cairnignore` of each directory on the way
/// down to a path, built once per batch.
#[derive(Default)]
struct IgnoreCache {
    dirs: HashMap<PathBuf, Option<Gitignore>>,
}

impl IgnoreCache {
    fn ignored(&mut self, root: &Path, rel: &str, is_dir: bool) -> bool {
        let full = root.join(rel);
        let mut dir = root.to_path_buf();
        let comps: Vec<&str> = rel.split('/').collect();
        for i in 0..comps.len() {
            let m = self.dirs.entry(dir.clone()).or_insert_with(|| {
                let mut b = GitignoreBuilder::new(&dir);
                let mut any = false;
                for f in IGNORE_FILES {
                    let p = dir.join(f);
                    if p.is_file() {
                        any = true;
                        if let Some(e) = b.add(&p) {
                            tracing::debug!("ignore file {}: {e}", p.display());
                        }
                    }
                }
                if any {
                    b.build().ok()
                } else {
                    None
                }
            });
            if let Some(g) = m {
                if g.matched_path_or_any_parents(&full, is_dir).is_ignore() {
                    return true;
                }
            }
            if i + 1 < comps.len() {
                dir.push(comps[i]);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IndexOptions;
    use std::sync::Mutex;

    /// The batching decision itself, without the watcher's timing: a batch of more
    /// changed paths than `watch_batch_rescan` is one rescan, a small one is applied
    /// file by file.
    #[test]
    fn a_large_batch_is_one_rescan_and_a_small_one_is_applied() {
        let repo = tempfile::tempdir().unwrap();
        let idx = tempfile::tempdir().unwrap();
        let index = Index::open(
            repo.path(),
            IndexOptions {
                index_dir: Some(idx.path().to_path_buf()),
                watch_batch_rescan: 20,
                parse_threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let root = index.root().to_path_buf();
        let write = |n: usize| -> BTreeSet<PathBuf> {
            (0..n)
                .map(|i| {
                    let p = root.join(format!("m/f{i}.py"));
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, format!("def f{i}():\n    pass\n")).unwrap();
                    p
                })
                .collect()
        };
        let never = AtomicBool::new(false);
        let events = Mutex::new(Vec::new());
        let record = |e: WatchEvent| events.lock().unwrap().push(e);
        apply(&index, write(5), &never, &record);
        apply(&index, write(200), &never, &record);
        let ev = events.into_inner().unwrap();
        assert!(
            matches!(&ev[0], WatchEvent::Applied { paths, .. } if paths.len() == 5),
            "{ev:?}"
        );
        assert!(
            matches!(&ev[1], WatchEvent::Rescanned { files: 200, .. }),
            "{ev:?}"
        );
    }
}
