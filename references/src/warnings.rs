//! Counted warnings: bad input is skipped, counted by kind, and a few examples kept.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// A dependency directory named by a lockfile (or seen a moment ago) is not there.
    MissingDir,
    /// A manifest or lockfile that does not parse.
    BadManifest,
    /// A licence file askalono could not identify with confidence.
    UnidentifiedLicence,
    /// No licence store was found, so licence files could not be read.
    NoLicenceStore,
    /// A file over the size limit.
    TooLarge,
    /// Minified or generated-looking text (very long lines).
    Generated,
    /// Not UTF-8.
    NotUtf8,
    /// A symlink that leads back into a directory already being walked.
    SymlinkLoop,
    /// A file or directory that could not be read.
    Unreadable,
    /// A segment of the persisted index that could not be read (rebuilt).
    CorruptSegment,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warnings {
    pub counts: BTreeMap<WarningKind, usize>,
    /// The first few warnings, for a person to act on.
    pub examples: Vec<String>,
}

const EXAMPLES: usize = 20;

impl Warnings {
    pub fn add(&mut self, kind: WarningKind, path: &Path, detail: impl std::fmt::Display) {
        *self.counts.entry(kind).or_default() += 1;
        tracing::debug!(?kind, path = %path.display(), "{detail}");
        if self.examples.len() < EXAMPLES {
            self.examples
                .push(format!("{kind:?}: {}: {detail}", path.display()));
        }
    }

    pub fn count(&self, kind: WarningKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    pub fn merge(&mut self, other: Warnings) {
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for e in other.examples {
            if self.examples.len() < EXAMPLES {
                self.examples.push(e);
            }
        }
    }
}
