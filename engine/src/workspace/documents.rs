//! Open documents as the editor sees them (LSP positions over their text), kept by
//! repository-relative path. A request reads a snapshot while later edits copy on write.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Workspace;
use crate::{EngineError, TextChange};

/// One open document.
#[derive(Debug, Clone)]
struct Document {
    text: Arc<String>,
    version: i32,
}

#[derive(Default)]
pub(super) struct Documents {
    open: Mutex<HashMap<String, Document>>,
}

impl Documents {
    fn text(&self, key: &str) -> Option<Arc<String>> {
        self.open.lock().get(key).map(|d| d.text.clone())
    }
}

impl Workspace {
    pub fn open_document(&self, path: &str, version: i32, text: String) {
        let key = self.rel_path(path);
        self.docs.open.lock().insert(
            key,
            Document {
                text: Arc::new(text),
                version,
            },
        );
    }

    /// Applies the editor's changes in order. Accepted spans follow the edits and
    /// their changes are written to the ledger. A change outside the document is an
    /// error and the document stays as it was before that change.
    pub fn change_document(
        &self,
        path: &str,
        version: i32,
        changes: &[TextChange],
    ) -> Result<(), EngineError> {
        let key = self.rel_path(path);
        let text = {
            let mut docs = self.docs.open.lock();
            let doc = docs.get_mut(&key).ok_or_else(|| {
                EngineError::Input(format!("{path} was changed but never opened"))
            })?;
            for c in changes {
                cairn_text::apply_change(Arc::make_mut(&mut doc.text), &key, c)
                    .map_err(|e| EngineError::Input(e.to_string()))?;
                self.suggestions.follow_change(&key, c);
            }
            doc.version = version;
            doc.text.clone()
        };
        self.suggestions_changed(&key, &text);
        Ok(())
    }

    pub fn close_document(&self, path: &str) {
        let key = self.rel_path(path);
        self.docs.open.lock().remove(&key);
        self.suggestions.forget_document(&key);
        self.completions.forget_document(&key);
    }

    /// The saved file goes into the index now rather than when the watcher sees it.
    pub async fn save_document(&self, path: &str) {
        let key = self.rel_path(path);
        let (Some(index), Some(text)) = (self.index(), self.docs.text(&key)) else {
            return;
        };
        let abs = self.abs_path(&key);
        let _ = tokio::task::spawn_blocking(move || {
            if index.is_writable() {
                if let Err(e) = index.update_file_text(&abs, &text) {
                    tracing::debug!("index update of {} failed: {e}", abs.display());
                }
            }
        })
        .await;
    }

    /// The open document's text.
    pub(crate) fn doc_text(&self, key: &str) -> Option<Arc<String>> {
        self.docs.text(key)
    }

    /// The open document's text, else the file's.
    pub(crate) fn text_for(&self, key: &str) -> Result<Arc<String>, EngineError> {
        if let Some(t) = self.docs.text(key) {
            return Ok(t);
        }
        let abs = self.abs_path(key);
        std::fs::read_to_string(&abs)
            .map(Arc::new)
            .map_err(|e| EngineError::Input(format!("cannot read {}: {e}", abs.display())))
    }
}
