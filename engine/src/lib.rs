//! cairn-engine: one workspace session. It ties the repository index, the model
//! backends and the provenance ledger into `complete()` and `chat()`.
//! It must never speak a front end's protocol (LSP, Tauri, terminal): front ends translate.

pub use cairn_indexer as indexer;
pub use cairn_models as models;
pub use cairn_provenance as provenance;
