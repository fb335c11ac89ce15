//! cairn-provenance: signed, verifiable memory of where code came from.
//! It keeps facts handed to it (suggestions, decisions, edits, commits, reviews) as
//! in-toto statements in DSSE envelopes on a hash-chained ledger, and in git notes.
//! It must never know about LSP, models or the index: callers pass plain structs.

pub mod digest;
pub mod dsse;
pub mod error;
pub mod jcs;
pub mod keys;
pub mod ledger;
pub mod record;
pub mod spans;

pub use dsse::Envelope;
pub use error::{Error, Result};
pub use keys::{FileKeyStore, KeyStore, KeyringStore};
pub use ledger::{
    ledger_dir, ledger_path, quarantine_torn_tail, read_entries, verify_ledger_file, Failure,
    Ledger, LedgerCheck, LedgerEntry, LedgerOptions,
};
pub use record::*;
pub use spans::{SpanTracker, SurvivingSpan, TextChange};

pub mod attest;
pub mod git;
pub mod init;
pub mod interop;
pub mod notes;
pub mod report;
pub mod review;
pub mod signers;
mod span_index;
pub mod verify;
pub mod vsa;
pub mod witness;

pub use attest::{
    attest, attest_recovering, attest_rewritten, attest_with, blame, staged_ai_models,
    AttestOutcome, BlameEntry, Recovery,
};
pub use init::{add_assisted_by, init_repo, InitOutcome};
pub use notes::{AiCommit, Note, Region, Review};
pub use report::{report, report_data, ReferenceRow, ReportData, ReportFormat};
pub use review::{
    ai_regions, check, licence_denied, review, AiRegion, CheckOptions, CheckOutcome,
    DeniedReference, ReviewOutcome, ReviewerIdentity,
};
pub use verify::{verify, verify_witnessed, VerifyReport};
