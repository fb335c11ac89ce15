//! Cairn's reference tracker: finds the third-party code a repository already has on
//! disk (cargo registry sources, `node_modules`, site-packages, the Go module cache,
//! vendored directories), fingerprints it by winnowing normalised token k-grams, and says
//! whether a text reproduces some of it — with package, version, SPDX licence and lines.
//!
//! Architecture invariant: knows nothing of the index, the models, the ledger or any
//! protocol; never sends anything anywhere; a licence is what a manifest or a confidently
//! identified licence file says, else "unknown" — never a guess. Bad input is skipped and
//! counted, never a panic.

mod discover;
mod fingerprint;
mod index;
mod licence;
mod segment;
mod tokens;
mod warnings;

pub use discover::{
    discover, go_escape, go_requires, lockfiles, python_packages, site_packages_dirs,
    DiscoverOptions, Ecosystem, Package,
};
pub use fingerprint::{fingerprints, kgram_hashes, winnow, Fingerprint, FingerprintParams};
pub use index::{
    default_dir, BuildReport, Check, Error, IndexedFile, Progress, Reference, ReferenceConfig,
    ReferenceIndex,
};
pub use licence::{
    classifier_licence, spdx_expression, LicenceDetector, LicenceSource, CONFIDENCE, UNKNOWN,
};
pub use segment::{package_files, FileLimits};
pub use tokens::{lex, Kind, Syntax, Token};
pub use warnings::{WarningKind, Warnings};
