//! What Cairn's own records say about its prompts: every `suggested` record in the
//! copy's ledger carries the latency budget's decision (`input.budget`: tokens kept of
//! prefix, suffix and context, tokens generated at most). The bench reads them back by
//! record id; `cairn lsp` itself is not asked for anything beyond the protocol.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use cairn_engine::{LedgerOptions, Provenance};
use serde_json::Value;

/// One suggestion's prompt, as its record says.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFacts {
    pub(crate) prompt_tokens: Option<u32>,
    pub(crate) cached_tokens: Option<u32>,
    pub(crate) prefix_tokens: Option<u32>,
    pub(crate) suffix_tokens: Option<u32>,
    pub(crate) context_tokens: Option<u32>,
    pub(crate) max_tokens: Option<u32>,
}

/// The budget facts of every `suggested` record in the repository's ledger, by record id.
/// Empty (with a warning) when the ledger cannot be read.
pub(crate) fn prompt_facts(repo: &Path) -> HashMap<String, PromptFacts> {
    let file = match Provenance::discover(repo, LedgerOptions::default())
        .and_then(|p| p.ledger_file())
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bench_lsp: Cairn's ledger not found ({e}); its prompt sizes are unknown");
            return HashMap::new();
        }
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "bench_lsp: {}: {e}; Cairn's prompt sizes are unknown",
                file.display()
            );
            return HashMap::new();
        }
    };
    text.lines().filter_map(facts_of_line).collect()
}

fn facts_of_line(line: &str) -> Option<(String, PromptFacts)> {
    let envelope: Value = serde_json::from_str(line).ok()?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str()?)
        .ok()?;
    let statement: Value = serde_json::from_slice(&payload).ok()?;
    let p = &statement["predicate"];
    if p["event"] != "suggested" {
        return None;
    }
    let b = &p["input"]["budget"];
    let n = |v: &Value| v.as_u64().map(|v| v as u32);
    let pb = &b["prompt"];
    let facts = PromptFacts {
        prompt_tokens: match (n(&pb["cachedTokens"]), n(&pb["newTokens"])) {
            (Some(c), Some(new)) => Some(c + new),
            _ => None,
        },
        cached_tokens: n(&pb["cachedTokens"]),
        prefix_tokens: n(&pb["prefixTokensKept"]),
        suffix_tokens: n(&pb["suffixTokensKept"]),
        context_tokens: n(&pb["contextTokensKept"]),
        max_tokens: n(&b["maxTokens"]),
    };
    Some((p["recordId"].as_str()?.to_string(), facts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_suggested_record_gives_its_budget() {
        let statement = json!({"predicate": {"event": "suggested", "recordId": "r1",
            "input": {"budget": {"maxTokens": 16, "prompt": {"cachedTokens": 300, "newTokens": 5,
                "prefixTokensKept": 200, "suffixTokensKept": 60, "contextTokensKept": 45}}}}});
        let line = json!({"payload": base64::engine::general_purpose::STANDARD
            .encode(statement.to_string())})
        .to_string();
        let (id, f) = facts_of_line(&line).unwrap();
        assert_eq!(id, "r1");
        assert_eq!(
            (
                f.prompt_tokens,
                f.prefix_tokens,
                f.suffix_tokens,
                f.context_tokens,
                f.max_tokens
            ),
            (Some(305), Some(200), Some(60), Some(45), Some(16))
        );
        let accepted = json!({"predicate": {"event": "accepted", "recordId": "r2"}});
        let line = json!({"payload": base64::engine::general_purpose::STANDARD
            .encode(accepted.to_string())})
        .to_string();
        assert!(facts_of_line(&line).is_none());
        assert!(facts_of_line("not json").is_none());
    }
}
