//! A repository's provenance as the front ends use it: setting a repository up, attesting
//! commits, blame, review, the CI gate, reports, verification and a summary of the
//! ledger. Each operation works from git notes and the ledger, so it needs no session.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_provenance::{self as prov, keys, EventKind};
use serde::Serialize;

use crate::{
    AiRegion, AttestOutcome, BlameEntry, CheckOptions, CheckOutcome, EngineError, InitOutcome,
    LedgerOptions, ReportData, ReportFormat, ReviewOutcome, ReviewerIdentity, VerifyReport,
};

/// The ref Cairn's attribution lives in (pushed and fetched like any ref).
pub const NOTES_REF: &str = prov::git::NOTES_REF;

/// One repository's provenance: its git root and where its ledger is.
#[derive(Clone)]
pub struct Provenance {
    root: PathBuf,
    ledger: LedgerOptions,
}

impl Provenance {
    /// The repository around `start` (its git root). The ledger is found with `ledger`
    /// (its directory; the user's data dir by default); the device key comes from the
    /// store `CAIRN_KEY_STORE` names, read only when an operation signs.
    pub fn discover(start: &Path, ledger: LedgerOptions) -> Result<Provenance, EngineError> {
        let root = prov::git::repo_root(start).map_err(|e| {
            EngineError::Input(format!(
                "{} is not inside a git repository: {e}",
                start.display()
            ))
        })?;
        Ok(Provenance { root, ledger })
    }

    /// With the ledger directory only (the key store from the environment when needed).
    pub fn discover_with_ledger_dir(
        start: &Path,
        ledger_dir: Option<PathBuf>,
    ) -> Result<Provenance, EngineError> {
        Self::discover(
            start,
            LedgerOptions {
                dir: ledger_dir,
                ..Default::default()
            },
        )
    }

    pub(crate) fn for_workspace(root: &Path, ledger: LedgerOptions) -> Provenance {
        Provenance {
            root: root.to_path_buf(),
            ledger,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The notes ref attribution is written to.
    pub fn notes_ref() -> &'static str {
        NOTES_REF
    }

    /// The ledger options with a key store: the configured one, else `CAIRN_KEY_STORE`'s.
    fn signing(&self) -> Result<LedgerOptions, EngineError> {
        let mut o = self.ledger.clone();
        if o.key_store.is_none() {
            o.key_store = Some(Arc::from(keys::key_store_from_env()?));
        }
        Ok(o)
    }

    /// The ledger file of this repository (it may not exist yet).
    pub fn ledger_file(&self) -> Result<PathBuf, EngineError> {
        Ok(prov::ledger_path(&self.root, &self.ledger)?)
    }

    fn existing_ledger(&self) -> Option<PathBuf> {
        self.ledger_file().ok().filter(|p| p.exists())
    }

    /// Installs the hooks (post-commit, post-rewrite, prepare-commit-msg) that call
    /// `cairn_bin`, and the notes rewrite settings.
    pub fn init(&self, cairn_bin: &str) -> Result<InitOutcome, EngineError> {
        Ok(prov::init_repo(&self.root, cairn_bin)?)
    }

    /// Adds `Assisted-by:` trailers to a commit message file when staged lines are
    /// AI-assisted; `true` when it changed the file. Never adds `Signed-off-by`.
    pub fn add_trailers(&self, msg_file: &Path) -> Result<bool, EngineError> {
        let models = prov::staged_ai_models(&self.root, &self.signing()?)?;
        Ok(prov::add_assisted_by(msg_file, &models)?)
    }

    /// Attributes a commit's AI-assisted lines into the notes.
    pub fn attest(&self, commit: &str) -> Result<AttestOutcome, EngineError> {
        Ok(prov::attest(&self.root, commit, &self.signing()?)?)
    }

    /// Attributes a commit recovering by line content from other commits' notes (a
    /// squash-merge made elsewhere, a cherry-pick): those of `from` (a range), else every
    /// attested commit that is not an ancestor. The statement names what it used.
    pub fn attest_recovering(
        &self,
        commit: &str,
        from: Option<&str>,
    ) -> Result<AttestOutcome, EngineError> {
        let recovery = match from {
            Some(range) => {
                prov::Recovery::From(prov::git::commits_in_range(&self.root, Some(range))?)
            }
            None => prov::Recovery::AllNotes,
        };
        let ledger = prov::Ledger::open(&self.root, self.signing()?)?;
        Ok(prov::attest_recovering(&ledger, commit, &recovery)?)
    }

    /// Re-attests rewritten commits (`old new` pairs, as the post-rewrite hook gets them).
    pub fn attest_rewritten(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Vec<AttestOutcome>, EngineError> {
        Ok(prov::attest_rewritten(&self.root, pairs, &self.signing()?)?)
    }

    /// Per line of `file` (repository-relative or absolute) at `rev`: human, ai or
    /// ai-modified, with the model and record.
    pub fn blame(&self, file: &Path, rev: Option<&str>) -> Result<Vec<BlameEntry>, EngineError> {
        let rel = file.strip_prefix(&self.root).unwrap_or(file);
        Ok(prov::blame(&self.root, &rel.to_string_lossy(), rev)?)
    }

    /// The AI-assisted regions of a commit range.
    pub fn ai_regions(&self, range: Option<&str>) -> Result<Vec<AiRegion>, EngineError> {
        Ok(prov::ai_regions(&self.root, range)?)
    }

    /// Records `who`'s approval of the AI-assisted lines of `range`, signed with the
    /// reviewer's own key (never the device key).
    pub fn review(
        &self,
        range: &str,
        who: &ReviewerIdentity,
    ) -> Result<ReviewOutcome, EngineError> {
        let store = match &self.ledger.key_store {
            Some(s) => s.clone(),
            None => Arc::from(keys::key_store_from_env()?),
        };
        let key = keys::load_or_create(store.as_ref(), keys::REVIEWER_KEY)?;
        Ok(prov::review(&self.root, range, &key, who)?)
    }

    /// The CI gate over `range`: which AI-assisted regions lack a review.
    pub fn check(
        &self,
        range: Option<&str>,
        require_review: bool,
        opts: &CheckOptions,
    ) -> Result<CheckOutcome, EngineError> {
        Ok(prov::check(&self.root, range, require_review, opts)?)
    }

    /// The gate, plus a SLSA verification summary of its verdict (an in-toto statement in
    /// a DSSE envelope, one JSON line) signed by this device's key.
    pub fn check_vsa(
        &self,
        range: Option<&str>,
        require_review: bool,
        opts: &CheckOptions,
    ) -> Result<(CheckOutcome, String), EngineError> {
        let out = prov::check(&self.root, range, require_review, opts)?;
        let store = self.signing()?.key_store()?;
        let key = keys::load_or_create(store.as_ref(), keys::DEVICE_KEY)?;
        let env = prov::vsa::vsa(&self.root, range, &out, opts, &key)?;
        Ok((out, String::from_utf8_lossy(&env.to_line()).into_owned()))
    }

    /// A report over `range` in `format`, with acceptance counts from the ledger.
    pub fn report(&self, range: Option<&str>, format: ReportFormat) -> Result<String, EngineError> {
        Ok(prov::report(
            &self.root,
            range,
            format,
            self.existing_ledger().as_deref(),
        )?)
    }

    /// The report's data, for a front end to show.
    pub fn report_data(&self, range: Option<&str>) -> Result<ReportData, EngineError> {
        Ok(prov::report_data(
            &self.root,
            range,
            self.existing_ledger().as_deref(),
        )?)
    }

    /// Checks signatures, the ledger's chain, note checkpoints and subjects, and the
    /// ledger against the checkpoints its witnesses hold (git ref and local witness).
    pub fn verify(&self, range: Option<&str>) -> Result<VerifyReport, EngineError> {
        Ok(prov::verify_witnessed(
            &self.root,
            range,
            self.existing_ledger().as_deref(),
            self.witness_dir().as_deref(),
        )?)
    }

    /// Where this repository's local witness keeps its checkpoints.
    pub fn witness_dir(&self) -> Option<PathBuf> {
        self.ledger
            .witness_dir
            .clone()
            .or_else(|| prov::witness::local_witness_dir(&self.root))
    }

    /// Moves a torn (never acknowledged) last ledger line aside; where it went.
    pub fn quarantine_torn_tail(&self) -> Result<Option<PathBuf>, EngineError> {
        let f = self.ledger_file()?;
        if !f.exists() {
            return Ok(None);
        }
        Ok(prov::quarantine_torn_tail(&f)?)
    }

    /// Suggestions and decisions in the ledger, committed or not: counts per model and
    /// the latest `recent` events, newest first.
    pub fn ledger_summary(&self, recent: usize) -> LedgerSummary {
        let path = self.ledger_file().ok();
        summarise(path.as_deref(), recent)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEvent {
    pub seq: u64,
    pub event: String,
    pub record_id: Option<String>,
    pub refers_to: Option<String>,
    pub model: Option<String>,
    pub origin: Option<String>,
    pub path: Option<String>,
    pub start_line: Option<u64>,
    pub end_line: Option<u64>,
    pub time: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDecisions {
    pub suggested: u64,
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSummary {
    pub path: Option<String>,
    pub error: Option<String>,
    pub by_model: BTreeMap<String, ModelDecisions>,
    /// The latest events, newest first.
    pub recent: Vec<LedgerEvent>,
}

fn summarise(path: Option<&Path>, recent: usize) -> LedgerSummary {
    let mut out = LedgerSummary {
        path: path.map(|p| p.display().to_string()),
        ..Default::default()
    };
    let Some(path) = path.filter(|p| p.exists()) else {
        return out;
    };
    let entries = match prov::read_entries(path) {
        Ok(e) => e,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    // A decision names its suggestion; the model is the suggestion's.
    let mut model_of: HashMap<String, (String, String)> = HashMap::new();
    let mut all = Vec::new();
    for entry in &entries {
        let r = &entry.record;
        let Some(kind) = r.event else { continue };
        let mut model = r
            .generator
            .as_ref()
            .map(|g| (g.model_id.clone(), origin_name(g.origin).to_string()));
        if let (Some(id), Some(m)) = (&r.record_id, &model) {
            model_of.insert(id.clone(), m.clone());
        }
        if model.is_none() {
            model = r
                .refers_to
                .as_ref()
                .and_then(|id| model_of.get(id))
                .cloned();
        }
        if let Some((m, _)) = &model {
            // Chat answers (`answered`) are not suggestions: they are never decided on.
            let counted = matches!(
                kind,
                EventKind::Suggested | EventKind::Accepted | EventKind::Rejected
            );
            if counted {
                let d = out.by_model.entry(m.clone()).or_default();
                match kind {
                    EventKind::Suggested => d.suggested += 1,
                    EventKind::Accepted => d.accepted += 1,
                    _ => d.rejected += 1,
                }
            }
        }
        let lines = r.location.as_ref().and_then(|l| l.ranges.first());
        all.push(LedgerEvent {
            seq: r.seq.unwrap_or(entry.seq),
            event: kind.as_str().to_string(),
            record_id: r.record_id.clone(),
            refers_to: r.refers_to.clone(),
            origin: model.as_ref().map(|(_, o)| o.clone()),
            model: model.map(|(m, _)| m),
            path: r
                .location
                .as_ref()
                .map(|l| l.path.clone())
                .or_else(|| r.span.as_ref().map(|s| s.path.clone())),
            start_line: lines.map(|l| l.start_line),
            end_line: lines.map(|l| l.end_line),
            time: r.time.clone(),
        });
    }
    all.reverse();
    all.truncate(recent);
    out.recent = all;
    out
}

fn origin_name(o: prov::Origin) -> &'static str {
    match o {
        prov::Origin::Local => "local",
        prov::Origin::Remote => "remote",
    }
}
