//! The completion pipeline's clean-up, as data: each file in `fixtures/completion/` is a
//! document with a `|` cursor, what the model returns there, and the item the editor
//! must get. A scripted backend stands in for the model, so these run without one and
//! pin exactly what Cairn does with a model's output. `UPDATE_FIXTURES=1` rewrites the
//! `expected` blocks from what the engine does now (review the diff before committing).

use std::path::Path;
use std::sync::Arc;

use cairn_engine::{
    CancellationToken, CompleteRequest, Engine, FileKeyStore, LedgerOptions, Trigger, Workspace,
    WorkspaceOptions,
};
use cairn_models::ScriptedModel;

/// A fixture's named blocks, in order.
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("--- ") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
        }
    }
    // A block's text ends before the line break that precedes the next marker.
    for (_, body) in &mut out {
        if body.ends_with('\n') {
            body.pop();
        }
    }
    out
}

fn block<'a>(b: &'a [(String, String)], name: &str, file: &Path) -> &'a str {
    b.iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.as_str())
        .unwrap_or_else(|| panic!("{}: no `--- {name}` block", file.display()))
}

fn run(file: &Path, rt: &tokio::runtime::Runtime) -> Option<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let b = blocks(&text);
    let path = block(&b, "path", file).trim().to_string();
    let doc = block(&b, "document", file);
    let cursor = doc
        .find('|')
        .unwrap_or_else(|| panic!("{}: no | cursor in the document", file.display()));
    let doc = doc.replacen('|', "", 1);
    let model = ScriptedModel::new("scripted-fim");
    model.reply(block(&b, "model", file));
    let dir = tempfile::tempdir().unwrap();
    let options = WorkspaceOptions {
        no_index: true,
        watch: false,
        ledger: LedgerOptions::default()
            .with_dir(dir.path().join("ledger"))
            .with_key_store(Arc::new(FileKeyStore::new(dir.path().join("keys")))),
        ..Default::default()
    };
    let backend = Arc::new(model.clone());
    let engine = Engine::with_backends(backend.clone(), backend);
    let ws = Workspace::open_with(dir.path(), Ok(engine), options).unwrap();
    ws.open_document(&path, 1, doc.clone());
    let position = cairn_text::position_at(&doc, cursor);
    let done = rt
        .block_on(ws.complete(
            CompleteRequest {
                path,
                position,
                trigger: Trigger::Automatic,
                max_items: 1,
            },
            CancellationToken::new(),
        ))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let shape = if done.multiline { "block" } else { "line" };
    let item = done.items.first().map_or("(nothing)", |i| i.text.as_str());
    let got = format!("{shape}\n{item}");
    let want = block(&b, "expected", file);
    if got == want {
        return None;
    }
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let at = text.find("--- expected").unwrap();
        std::fs::write(file, format!("{}--- expected\n{got}\n", &text[..at])).unwrap();
        return None;
    }
    Some(format!(
        "{}:\n  want {want:?}\n  got  {got:?}",
        file.display()
    ))
}

#[test]
fn completion_cleanup_fixtures() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/completion");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing in {}", dir.display());
    let failures: Vec<String> = files.iter().filter_map(|f| run(f, &rt)).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
