//! Shared helpers: where the installed models and the vocabulary-only GGUFs are.
#![allow(dead_code)]

use std::path::PathBuf;

use cairn_models::registry::{self, Registry};

fn installed(name: &str) -> (PathBuf, String) {
    let mut reg = Registry::open_default().expect("model registry opens");
    let e = reg.verified(name).unwrap_or_else(|e| {
        panic!("model `{name}` is needed for this test ({e}); run `make setup` first")
    });
    (e.path, e.sha256)
}

/// `tiny` (SmolLM2-135M-Instruct): for tests about plumbing, where the model's quality
/// does not matter. Installed by `make setup` (`cairn models setup`).
pub fn tiny_model() -> (PathBuf, String) {
    installed(registry::TINY_MODEL_NAME)
}

/// The default code model, `coder-0.5b` (Qwen2.5-Coder-0.5B-Instruct Q4_K_M).
pub fn coder_model() -> (PathBuf, String) {
    installed(registry::DEFAULT_MODEL_NAME)
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
