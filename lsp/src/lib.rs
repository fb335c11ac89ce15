//! cairn-lsp: the LSP server behind `cairn lsp` (stdio), on tower-lsp-server.
//! Protocol in, engine calls, protocol out. It must never hold logic of its own: no
//! retrieval, no prompting, no ledger writes that do not go through the engine.
//!
//! The server itself arrives with the engine and LSP issue; until then this crate only
//! fixes its place in the layering (it depends on the engine and nothing below it).
