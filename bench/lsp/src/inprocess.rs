//! The in-process peer: a `Workspace` on the same copy and environment as the server, to
//! build the same prompts and call the model layer directly.

use std::path::Path;

use cairn_engine::{Config, Engine, IndexState, ModelIdentity, Workspace, WorkspaceOptions};

use crate::fail;

pub(crate) struct InProcess {
    pub(crate) ws: std::sync::Arc<Workspace>,
    pub(crate) rt: tokio::runtime::Runtime,
    /// The completion model, down to the weights.
    pub(crate) identity: ModelIdentity,
}

impl InProcess {
    /// Opens the workspace (its models loaded) and waits for its index.
    pub(crate) fn open(repo: &Path) -> InProcess {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let ws = {
            let repo = repo.to_path_buf();
            let config = Config::load(Some(&repo)).unwrap_or_else(|e| fail(e));
            Workspace::open(&repo, config, WorkspaceOptions::default()).unwrap_or_else(|e| fail(e))
        };
        let identity = ws.models().unwrap_or_else(|e| fail(e)).completion_model();
        rt.block_on(async {
            let mut rx = ws.index_events();
            let _ = rx
                .wait_for(|s| !matches!(s, IndexState::Opening | IndexState::Indexing { .. }))
                .await;
        });
        InProcess { ws, rt, identity }
    }

    /// The model layer.
    pub(crate) fn engine(&self) -> &Engine {
        self.ws.models().unwrap_or_else(|e| fail(e))
    }
}

/// Whether the server's item and the direct generation say the same thing (the server
/// post-processes: first line or scope, indentation, brackets), compared without spaces.
pub(crate) fn agree(server: &str, direct: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let (s, d) = (norm(server), norm(direct));
    let head: String = s.chars().take(12).collect();
    d.starts_with(&head)
}
