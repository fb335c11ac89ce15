use std::path::PathBuf;

/// Everything that can go wrong in the provenance crate. Messages name the file or
/// record involved and, where there is one, the action that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot canonicalise JSON (RFC 8785): {0}")]
    Canonical(String),
    #[error("key store {store}: {message}")]
    KeyStore { store: String, message: String },
    #[error("CAIRN_KEY_STORE={0:?} is not understood; use `keyring`, `keyutils` or `file:/absolute/dir`")]
    KeyStoreSpec(String),
    #[error(
        "ledger {path} was started with key {ledger_key} but this device's key is {device_key}; \
         restore the original key into the key store or use a different ledger directory"
    )]
    KeyMismatch {
        path: PathBuf,
        ledger_key: String,
        device_key: String,
    },
    #[error(
        "ledger {path} ends in a torn (incomplete) line at byte {offset}; it was never acknowledged. \
         Run `cairn verify` to see it, then `cairn verify --quarantine-torn-tail` to move it aside"
    )]
    TornTail { path: PathBuf, offset: u64 },
    #[error("ledger {path} is corrupt at line {line}: {message}; run `cairn verify` for details")]
    Corrupt {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("append to ledger failed: {0}")]
    Append(String),
    #[error("bad signature envelope: {0}")]
    Envelope(String),
    #[error("`git {args}` failed in {repo}: {stderr}")]
    Git {
        repo: PathBuf,
        args: String,
        stderr: String,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
