//! How what the engine did becomes the facts of a provenance record: the generator (the
//! model down to its weights' digest, and its sampling) and the context sources.

use std::collections::BTreeMap;

use cairn_models::Generation;
use cairn_provenance::digest::sha256_hex;
use cairn_provenance::{ContextSource, Generator, Origin};

use crate::ModelOrigin;

pub(crate) fn generator_of(g: &Generation) -> Generator {
    let id = &g.model;
    let mut sampling = BTreeMap::new();
    sampling.insert(
        "temperature".into(),
        serde_json::json!(g.sampling.temperature),
    );
    sampling.insert("topK".into(), serde_json::json!(g.sampling.top_k));
    sampling.insert("topP".into(), serde_json::json!(g.sampling.top_p));
    sampling.insert("seed".into(), serde_json::json!(g.sampling.seed));
    if let Some(q) = &id.quantization {
        sampling.insert("quantization".into(), serde_json::json!(q));
    }
    if let Some(f) = &g.fallback {
        sampling.insert("fallbackFrom".into(), serde_json::json!(f.from));
    }
    let remote = id.origin == ModelOrigin::Remote;
    Generator {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        model_id: id.name.clone(),
        origin: if remote {
            Origin::Remote
        } else {
            Origin::Local
        },
        gguf_sha256: id.gguf_sha256.clone(),
        endpoint: id.endpoint.clone(),
        remote_model: remote.then(|| id.model_id.clone()),
        runtime: Some(id.runtime.clone()),
        sampling,
    }
}

/// A retrieved snippet as the record names it (the text only as its digest).
pub(crate) fn context_source(
    path: &str,
    start_line: usize,
    end_line: usize,
    text: &str,
    retriever: String,
    score: f32,
) -> ContextSource {
    ContextSource {
        path: path.to_string(),
        start_line: start_line as u32,
        end_line: end_line as u32,
        content_digest: sha256_hex(text.as_bytes()),
        retriever,
        score: f64::from(score),
    }
}
