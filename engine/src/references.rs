//! The reference tracker in a session: the repository's dependencies fingerprinted in the
//! background (`cairn-references`), every completion item and chat edit checked before it
//! is returned, matches carried into the suggestion's record, and the `block` policy
//! withholding a suggestion that reproduces third-party code. [`References`] is the same
//! for one command (`cairn references index|check`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_references::{ReferenceConfig, ReferenceIndex, Syntax};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{Config, EngineError};

pub use cairn_references::{BuildReport as ReferenceIndexReport, WarningKind as ReferenceWarning};

/// What a match does: `show` it with the suggestion (the default), `block` the
/// suggestion (withheld, and its record says so), or `off` (no index, no check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferencePolicy {
    Off,
    #[default]
    Show,
    Block,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceOptions {
    pub policy: ReferencePolicy,
    /// A match is reported at this many characters of the suggestion (default 150).
    pub min_chars: usize,
    /// Extra corpus roots to index beside the dependencies (each subdirectory a package).
    pub extra_roots: Vec<PathBuf>,
    /// Where segments are kept (default `<data dir>/cairn/references`).
    pub dir: Option<PathBuf>,
}

impl Default for ReferenceOptions {
    fn default() -> Self {
        ReferenceOptions {
            policy: ReferencePolicy::Show,
            min_chars: 150,
            extra_roots: Vec::new(),
            dir: std::env::var_os("CAIRN_REFERENCES_DIR").map(PathBuf::from),
        }
    }
}

impl ReferenceOptions {
    /// The configured options: `references`, `reference_min_chars`, `reference_roots`.
    pub fn from_config(config: &Config) -> ReferenceOptions {
        let mut o = ReferenceOptions::default();
        o.apply_config(config);
        o
    }

    /// What the config sets overrides these options; what it leaves out stays.
    pub fn apply_config(&mut self, config: &Config) {
        if let Some(p) = config.references {
            self.policy = p;
        }
        if let Some(n) = config.reference_min_chars {
            self.min_chars = n.max(1);
        }
        for r in &config.reference_roots {
            if !self.extra_roots.contains(r) {
                self.extra_roots.push(r.clone());
            }
        }
    }

    fn dir(&self) -> Result<PathBuf, EngineError> {
        match &self.dir {
            Some(d) => Ok(d.clone()),
            None => {
                cairn_references::default_dir().map_err(|e| EngineError::Unavailable(e.to_string()))
            }
        }
    }

    fn config(&self) -> ReferenceConfig {
        let mut c = ReferenceConfig {
            min_chars: self.min_chars,
            ..ReferenceConfig::default()
        };
        c.discover.extra_roots = self.extra_roots.clone();
        c
    }
}

/// Third-party code a suggestion reproduces, as front ends show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceMatch {
    pub package: String,
    pub version: String,
    /// SPDX expression, or "unknown".
    pub licence: String,
    /// The source file on this machine.
    pub path: String,
    /// Lines of the source file, 1-based, inclusive.
    pub lines: [u32; 2],
    pub matched_chars: usize,
    /// Lines of the checked text, 1-based, inclusive.
    pub text_lines: [u32; 2],
    /// No identifier renamed.
    pub verbatim: bool,
}

impl ReferenceMatch {
    fn from_reference(r: cairn_references::Reference) -> Self {
        ReferenceMatch {
            package: r.package,
            version: r.version,
            licence: r.licence,
            path: r.path.to_string_lossy().into_owned(),
            lines: r.lines,
            matched_chars: r.matched_chars,
            text_lines: r.text_lines,
            verbatim: r.verbatim,
        }
    }

    pub(crate) fn fact(&self) -> cairn_provenance::ReferenceFact {
        cairn_provenance::ReferenceFact {
            package: self.package.clone(),
            version: self.version.clone(),
            licence: self.licence.clone(),
            path: self.path.clone(),
            lines: self.lines,
            matched_chars: self.matched_chars,
        }
    }

    /// `serde 1.0.219 (MIT OR Apache-2.0)`.
    pub fn label(&self) -> String {
        format!("{} {} ({})", self.package, self.version, self.licence)
    }
}

/// The session's reference index, as `status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceStatus {
    pub policy: ReferencePolicy,
    /// `off`, `building`, `ready` or `failed`.
    pub state: String,
    pub packages: usize,
    pub fingerprints: usize,
    pub warnings: usize,
    pub error: Option<String>,
    /// Suggestions of this session that matched third-party code.
    pub matched: usize,
    /// Of those, withheld by the `block` policy.
    pub withheld: usize,
}

enum State {
    Off,
    Building,
    Ready(Arc<ReferenceIndex>, usize),
    Failed(String),
}

/// The background-built index of a session.
pub(crate) struct ReferenceHandle {
    options: ReferenceOptions,
    state: Arc<Mutex<State>>,
    cancel: Arc<AtomicBool>,
    matched: AtomicUsize,
    withheld: AtomicUsize,
}

impl Drop for ReferenceHandle {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl ReferenceHandle {
    pub(crate) fn new(options: ReferenceOptions) -> Self {
        ReferenceHandle {
            options,
            state: Arc::new(Mutex::new(State::Off)),
            cancel: Arc::new(AtomicBool::new(false)),
            matched: AtomicUsize::new(0),
            withheld: AtomicUsize::new(0),
        }
    }

    pub(crate) fn policy(&self) -> ReferencePolicy {
        self.options.policy
    }

    /// Builds (or reopens) the index on a thread of its own.
    pub(crate) fn start(&self, root: &Path) {
        if self.options.policy == ReferencePolicy::Off {
            return;
        }
        *self.state.lock() = State::Building;
        let (state, cancel, options, root) = (
            self.state.clone(),
            self.cancel.clone(),
            self.options.clone(),
            root.to_path_buf(),
        );
        let spawned = std::thread::Builder::new()
            .name("cairn-references".into())
            .spawn(move || {
                let result = options.dir().and_then(|dir| {
                    ReferenceIndex::open_or_build(&root, &dir, &options.config(), &|_| {}, &cancel)
                        .map_err(|e| EngineError::Unavailable(e.to_string()))
                });
                *state.lock() = match result {
                    Ok((idx, report)) => {
                        tracing::info!(
                            packages = report.packages,
                            fingerprints = report.fingerprints,
                            built = report.built,
                            warnings = report.warnings.total(),
                            seconds = report.seconds,
                            "reference index ready"
                        );
                        State::Ready(Arc::new(idx), report.warnings.total())
                    }
                    Err(e) => {
                        tracing::warn!("reference index: {e}");
                        State::Failed(e.to_string())
                    }
                };
            });
        if let Err(e) = spawned {
            *self.state.lock() = State::Failed(format!("cannot start the reference indexer: {e}"));
        }
    }

    /// Waits (up to `timeout`) for the background build; tests and one-shot commands.
    pub(crate) fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        loop {
            if !matches!(*self.state.lock(), State::Building) {
                return matches!(*self.state.lock(), State::Ready(..));
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits (up to `timeout`, without blocking the runtime) for a build in progress;
    /// `checked` when the index is ready, else why checks find nothing: `off`,
    /// `building`, `failed: …`.
    pub(crate) async fn ready_within(&self, timeout: std::time::Duration) -> String {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            match &*self.state.lock() {
                State::Ready(..) => return "checked".into(),
                State::Off => return "off".into(),
                State::Failed(e) => return format!("failed: {e}"),
                State::Building if tokio::time::Instant::now() >= until => {
                    return "building".into()
                }
                State::Building => {}
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn index(&self) -> Option<Arc<ReferenceIndex>> {
        match &*self.state.lock() {
            State::Ready(idx, _) => Some(idx.clone()),
            _ => None,
        }
    }

    /// Checks texts (one per suggestion) in one blocking job. Unchecked (empty) while the
    /// index is still being built or is off.
    pub(crate) async fn check_all(&self, texts: Vec<(String, String)>) -> Vec<Vec<ReferenceMatch>> {
        let n = texts.len();
        let Some(idx) = self.index() else {
            return vec![Vec::new(); n];
        };
        let checked = tokio::task::spawn_blocking(move || {
            texts
                .iter()
                .map(|(path, text)| check_text(&idx, path, text))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|_| vec![Vec::new(); n]);
        let matched = checked.iter().filter(|m| !m.is_empty()).count();
        self.matched.fetch_add(matched, Ordering::Relaxed);
        if self.options.policy == ReferencePolicy::Block {
            self.withheld.fetch_add(matched, Ordering::Relaxed);
        }
        checked
    }

    pub(crate) fn check_now(&self, path: &str, text: &str) -> Option<Vec<ReferenceMatch>> {
        self.index().map(|idx| check_text(&idx, path, text))
    }

    pub(crate) fn status(&self) -> ReferenceStatus {
        let mut s = ReferenceStatus {
            policy: self.options.policy,
            matched: self.matched.load(Ordering::Relaxed),
            withheld: self.withheld.load(Ordering::Relaxed),
            ..ReferenceStatus::default()
        };
        match &*self.state.lock() {
            State::Off => s.state = "off".into(),
            State::Building => s.state = "building".into(),
            State::Ready(idx, warnings) => {
                s.state = "ready".into();
                s.packages = idx.packages().len();
                s.fingerprints = idx.fingerprint_count();
                s.warnings = *warnings;
            }
            State::Failed(e) => {
                s.state = "failed".into();
                s.error = Some(e.clone());
            }
        }
        s
    }
}

fn check_text(idx: &ReferenceIndex, path: &str, text: &str) -> Vec<ReferenceMatch> {
    idx.check(text, Syntax::for_path(Path::new(path)))
        .references
        .into_iter()
        .map(ReferenceMatch::from_reference)
        .collect()
}

/// The reference index of a repository, opened for one command.
pub struct References {
    index: ReferenceIndex,
    report: ReferenceIndexReport,
}

impl References {
    /// Discovers the repository's dependencies and fingerprints those not yet in the
    /// store; `progress` gets a line per package.
    pub fn open(
        root: &Path,
        options: &ReferenceOptions,
        progress: &(dyn Fn(usize, usize, &str) + Sync),
        cancel: &AtomicBool,
    ) -> Result<References, EngineError> {
        let dir = options.dir()?;
        let (index, report) = ReferenceIndex::open_or_build(
            root,
            &dir,
            &options.config(),
            &|p| {
                if let cairn_references::Progress::Indexing {
                    done,
                    total,
                    package,
                } = p
                {
                    progress(done, total, &package)
                }
            },
            cancel,
        )
        .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(References { index, report })
    }

    pub fn report(&self) -> &ReferenceIndexReport {
        &self.report
    }

    /// Packages found: (ecosystem, name, version, licence, root).
    pub fn packages(&self) -> Vec<(String, String, String, String, String)> {
        self.index
            .packages()
            .iter()
            .map(|p| {
                (
                    serde_json::to_value(p.ecosystem)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    p.name.clone(),
                    p.version.clone(),
                    p.licence.clone(),
                    p.root.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    /// Matches of `text` (its language from `path` when given).
    pub fn check(&self, path: Option<&str>, text: &str) -> Vec<ReferenceMatch> {
        check_text(&self.index, path.unwrap_or(""), text)
    }
}
