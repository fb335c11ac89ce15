//! Between LSP and the engine: positions and ranges, paths and URIs, errors, command
//! arguments, and cancellation when a request's future is dropped.

use super::*;

pub(crate) fn invalid_params(msg: impl Into<String>) -> Error {
    Error::invalid_params(msg.into())
}

pub(crate) fn engine_error(e: EngineError) -> Error {
    match e {
        e if e.is_cancelled() => Error::request_cancelled(),
        EngineError::Input(msg) => invalid_params(msg),
        other => Error {
            code: ErrorCode::InternalError,
            message: other.to_string().into(),
            data: None,
        },
    }
}

pub(crate) fn pos(p: Position) -> cairn_text::Position {
    cairn_text::Position::new(p.line, p.character)
}

pub(crate) fn lsp_pos(p: cairn_text::Position) -> Position {
    Position::new(p.line, p.character)
}

pub(crate) fn lsp_range(r: cairn_text::Range) -> Range {
    Range::new(lsp_pos(r.start), lsp_pos(r.end))
}

pub(crate) fn text_range(r: Range) -> cairn_text::Range {
    cairn_text::Range::new(pos(r.start), pos(r.end))
}

/// The file path of a `file:` URI; other schemes keep the URI as their name.
pub(crate) fn path_of(uri: &Uri) -> String {
    match uri.to_file_path() {
        Some(p) => p.to_string_lossy().into_owned(),
        None => uri.as_str().to_string(),
    }
}

pub(crate) fn uri_of(ws: &Workspace, path: &str) -> Option<Uri> {
    let p = std::path::Path::new(path);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        ws.root().join(p)
    };
    Uri::from_file_path(abs)
}

/// Cancels the engine's work when the request's future is dropped (`$/cancelRequest`).
pub(crate) struct CancelOnDrop(pub(crate) CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub(crate) fn args<T: for<'de> Deserialize<'de>>(command: &str, arguments: &[Value]) -> Result<T> {
    let first = arguments
        .first()
        .ok_or_else(|| invalid_params(format!("{command} needs one argument object")))?;
    serde_json::from_value(first.clone())
        .map_err(|e| invalid_params(format!("{command}: bad argument: {e}")))
}
