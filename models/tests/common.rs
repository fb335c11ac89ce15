//! Shared helpers: where the default model and the vocabulary-only GGUFs are.
#![allow(dead_code)]

use std::path::PathBuf;

use cairn_models::registry::{self, Registry};

/// The default model, installed by `make setup` (`cairn models setup`).
pub fn default_model() -> (PathBuf, String) {
    let mut reg = Registry::open_default().expect("model registry opens");
    let e = reg
        .verified(registry::DEFAULT_MODEL_NAME)
        .unwrap_or_else(|e| {
            panic!("the default model is needed for this test ({e}); run `make setup` first")
        });
    (e.path, e.sha256)
}

/// Vocabulary-only GGUFs extracted from the llama-cpp-python sdist by `make setup`.
pub fn vocab_file(name: &str) -> PathBuf {
    let dir = std::env::var_os("CAIRN_TEST_VOCAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| registry::cache_dir().join("test-vocab"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `make setup` (it extracts the vocabulary GGUFs)",
        p.display()
    );
    p
}
