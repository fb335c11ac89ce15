//! Errors the window shows: what failed (naming the path or input) and what to do
//! about it, as two sentences the banner prints. The kind lets the UI pick the
//! button that goes with the action (open Settings, pick another folder, …).

use cairn_engine::{EngineError, ModelError};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The path does not exist.
    NotFound,
    /// The path exists but this user may not read it.
    PermissionDenied,
    NotADirectory,
    /// A command that needs a repository came before one was opened.
    NoRepository,
    /// A path outside the open repository was asked for.
    OutsideRepository,
    /// The configuration (user file, repository file or the settings form) is wrong.
    Config,
    /// The model could not be loaded or answered with an error.
    Model,
    /// The remote server refused the API key.
    Unauthorized,
    /// The remote server could not be reached, timed out or answered garbage.
    Remote,
    Keyring,
    Ledger,
    /// The file changed on disk after the edit was proposed.
    Stale,
    /// A request the engine refused (empty question, unknown record, …).
    Input,
    Cancelled,
    Io,
    Report,
    /// Neither the person's editor nor the desktop's opener could open a file.
    Editor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message} {action}")]
pub struct DesktopError {
    pub kind: ErrorKind,
    /// What failed, on which path or input.
    pub message: String,
    /// What the person can do about it.
    pub action: String,
}

pub type Result<T, E = DesktopError> = std::result::Result<T, E>;

impl DesktopError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, action: impl Into<String>) -> Self {
        DesktopError {
            kind,
            message: sentence(message.into()),
            action: sentence(action.into()),
        }
    }

    pub fn no_repository() -> Self {
        DesktopError::new(
            ErrorKind::NoRepository,
            "No repository is open",
            "Open a repository folder first",
        )
    }

    pub fn io(what: &str, path: &std::path::Path, e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => DesktopError::new(
                ErrorKind::NotFound,
                format!("Cannot {what} {}: it does not exist", path.display()),
                "Check the path",
            ),
            std::io::ErrorKind::PermissionDenied => DesktopError::new(
                ErrorKind::PermissionDenied,
                format!("Cannot {what} {}: permission denied", path.display()),
                "Give your user access to it (chmod), or choose another path",
            ),
            _ => DesktopError::new(
                ErrorKind::Io,
                format!("Cannot {what} {}: {e}", path.display()),
                "Check the disk and the path, then try again",
            ),
        }
    }

    pub fn model(e: &ModelError) -> Self {
        let message = e.to_string();
        match e {
            ModelError::Unauthorized { model, .. } => DesktopError::new(
                ErrorKind::Unauthorized,
                message,
                format!("Open Settings and enter the API key this server accepts for `{model}`"),
            ),
            ModelError::Remote { .. } => DesktopError::new(
                ErrorKind::Remote,
                message,
                "Check that the server is running and reachable, or choose a local model in Settings",
            ),
            ModelError::MissingFile { .. }
            | ModelError::NotGguf { .. }
            | ModelError::LoadFailed { .. }
            | ModelError::DigestMismatch { .. } => DesktopError::new(
                ErrorKind::Model,
                message,
                "Open Settings and choose a GGUF model file, or the default model",
            ),
            ModelError::UnknownModel(_) | ModelError::Config(_) => DesktopError::new(
                ErrorKind::Config,
                message,
                "Open Settings and choose the models again",
            ),
            ModelError::Keyring(_) => DesktopError::new(
                ErrorKind::Keyring,
                message,
                "Start your desktop's keyring (Secret Service), or set CAIRN_KEYRING=keyutils on headless Linux",
            ),
            ModelError::Cancelled => {
                DesktopError::new(ErrorKind::Cancelled, "The answer was stopped", "Ask again")
            }
            ModelError::PromptTooLong { .. } => DesktopError::new(
                ErrorKind::Input,
                message,
                "Ask about a smaller selection, or raise the model's context size",
            ),
            _ => DesktopError::new(
                ErrorKind::Model,
                message,
                "Try again; if it persists, choose another model in Settings",
            ),
        }
    }

    /// A model that could not be loaded when the repository was opened (the engine keeps
    /// only its message).
    pub fn model_unavailable(message: &str) -> Self {
        let action = if message.contains("API key") || message.contains("keyring") {
            "Open Settings and check the remote model and its API key"
        } else if message.contains("not installed") {
            "Run `cairn models setup` (or `make setup`), or choose another model in Settings"
        } else {
            "Open Settings and choose a GGUF model file, or the default model"
        };
        DesktopError::new(
            ErrorKind::Model,
            format!("The model could not be loaded: {message}"),
            action,
        )
    }
}

impl From<EngineError> for DesktopError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Model(m) => DesktopError::model(&m),
            EngineError::Config(c) => DesktopError::new(
                ErrorKind::Config,
                c.to_string(),
                "Fix the file named above, or change the models in Settings",
            ),
            EngineError::Input(m) => {
                DesktopError::new(ErrorKind::Input, m, "Change the request and try again")
            }
            EngineError::Unavailable(m) if m.starts_with("the provenance ledger") => {
                DesktopError::new(
                    ErrorKind::Ledger,
                    m,
                    "Nothing is shown or applied without a ledger record: check CAIRN_KEY_STORE and the data directory, then reopen the repository",
                )
            }
            EngineError::Unavailable(m) => DesktopError::model_unavailable(&m),
            EngineError::Index(e) => DesktopError::new(
                ErrorKind::Io,
                e.to_string(),
                "Check the index folder's permissions and free space, then reopen the repository",
            ),
            EngineError::Provenance(e) => DesktopError::new(
                ErrorKind::Report,
                e.to_string(),
                "Check the repository's git notes and the ledger with `cairn verify`",
            ),
        }
    }
}

/// Starts with a capital and ends with a full stop, so two parts read as a sentence each.
fn sentence(s: String) -> String {
    let t = s.trim();
    let mut out = String::with_capacity(t.len() + 1);
    let first_word = t.split_whitespace().next().unwrap_or("");
    let mut chars = t.chars();
    // A URL or a path at the start stays as written.
    let keep = first_word.contains("://") || first_word.starts_with(['/', '.', '`', '~']);
    if let (Some(c), false) = (chars.next(), keep) {
        out.extend(c.to_uppercase());
        out.push_str(chars.as_str());
    } else {
        out.push_str(t);
    }
    if !out.is_empty() && !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_points_at_settings_and_keeps_the_engine_message() {
        let e = DesktopError::model(&ModelError::Unauthorized {
            url: "http://127.0.0.1:9/v1/chat/completions".into(),
            status: 401,
            model: "remote".into(),
        });
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.message.contains("HTTP 401"), "{}", e.message);
        assert!(e.action.contains("Settings") && e.action.ends_with('.'));
    }

    #[test]
    fn ledger_errors_are_told_apart_from_model_errors() {
        let e: DesktopError =
            EngineError::Unavailable("the provenance ledger: disk full".into()).into();
        assert_eq!(e.kind, ErrorKind::Ledger);
        let e: DesktopError = EngineError::Unavailable("model file x does not exist".into()).into();
        assert_eq!(e.kind, ErrorKind::Model);
        assert!(e.message.starts_with("The model could not be loaded"));
    }

    #[test]
    fn sentences() {
        assert_eq!(sentence("cannot read x".into()), "Cannot read x.");
        assert_eq!(sentence("Done!".into()), "Done!");
        assert_eq!(sentence(String::new()), "");
        assert_eq!(
            sentence("http://h/v1: refused".into()),
            "http://h/v1: refused."
        );
    }
}
