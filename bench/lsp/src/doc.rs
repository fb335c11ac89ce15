//! The document being typed into, as both the server and the in-process workspace name
//! it, and the notifications that keep the server's copy in step.

use std::path::Path;

use cairn_engine::Position;
use cairn_indexer::language_label;
use cairn_lsp_client::file_uri;
use serde_json::{json, Value};

use crate::client::{lsp_pos, Client};

pub(crate) struct Doc {
    pub(crate) uri: String,
    /// The workspace's name for it: the file's path in the copy.
    pub(crate) path: String,
    pub(crate) language_id: String,
    /// The last version sent; every pass goes on from the one before.
    pub(crate) version: i32,
}

impl Doc {
    /// `file` in the copy; `rel` is its path in the repository.
    pub(crate) fn new(file: &Path, rel: &str) -> Doc {
        Doc {
            uri: file_uri(file),
            path: file.to_string_lossy().into_owned(),
            language_id: language_label(Path::new(rel)).to_ascii_lowercase(),
            version: 1,
        }
    }

    pub(crate) fn did_open(&self, client: &Client, text: &str) {
        client.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": self.uri, "languageId": self.language_id,
                                     "version": self.version, "text": text}}),
        );
    }

    pub(crate) fn did_change(&self, client: &Client, change: Value) {
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": self.uri, "version": self.version},
                   "contentChanges": [change]}),
        );
    }

    pub(crate) fn did_close(&self, client: &Client) {
        client.notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": self.uri}}),
        );
    }

    /// Sends an automatically triggered `textDocument/inlineCompletion` at `at`.
    pub(crate) fn inline_completion(
        &self,
        client: &mut Client,
        at: Position,
    ) -> (i64, std::time::Instant) {
        client.request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": self.uri}, "position": lsp_pos(at),
                   "context": {"triggerKind": 2}}),
        )
    }

    /// Sends a `textDocument/completion` at `at`, triggered by typing (kind 1).
    pub(crate) fn completion(
        &self,
        client: &mut Client,
        at: Position,
    ) -> (i64, std::time::Instant) {
        client.request(
            "textDocument/completion",
            json!({"textDocument": {"uri": self.uri}, "position": lsp_pos(at),
                   "context": {"triggerKind": 1}}),
        )
    }
}
