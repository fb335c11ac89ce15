//! The reference tracker in the session: a repository whose `node_modules` holds a
//! package; a scripted model that answers with that package's code. The item carries
//! the match and so does its record; under `block` the item is withheld and the record
//! says so; text of the repository's own is not flagged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::{
    CancellationToken, CompleteRequest, Engine, FileKeyStore, LedgerOptions, ReferenceOptions,
    ReferencePolicy, Trigger, Workspace, WorkspaceOptions,
};
use cairn_models::ScriptedModel;
use cairn_provenance as prov;

const COPIED: &str = "function rightTrimLines(text, keepEmpty) {
  var lines = text.split('\\n');
  var out = [];
  for (var j = 0; j < lines.length; j++) {
    var line = lines[j].replace(/\\s+$/, '');
    if (line.length > 0 || keepEmpty) {
      out.push(line);
    }
  }
  return out.join('\\n');
}
";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn session(dir: &Path, policy: ReferencePolicy, reply: &str) -> Arc<Workspace> {
    let repo = dir.join("repo");
    let pkg = repo.join("node_modules/trimmer");
    write(
        &pkg.join("package.json"),
        r#"{"name": "trimmer", "version": "2.1.0", "license": "BSD-3-Clause"}"#,
    );
    write(
        &pkg.join("index.js"),
        &format!("'use strict';\n\n{COPIED}\nmodule.exports = rightTrimLines;\n"),
    );
    write(&repo.join("app.js"), "\n");
    let model = ScriptedModel::new("scripted-fim");
    model.reply(reply);
    let options = WorkspaceOptions {
        no_index: true,
        watch: false,
        ledger: LedgerOptions::default()
            .with_dir(dir.join("ledger"))
            .with_key_store(Arc::new(FileKeyStore::new(dir.join("keys")))),
        references: ReferenceOptions {
            policy,
            dir: Some(dir.join("references")),
            ..Default::default()
        },
        ..Default::default()
    };
    let backend = Arc::new(model);
    let engine = Engine::with_backends(backend.clone(), backend);
    let ws = Workspace::open_with(&repo, Ok(engine), options).unwrap();
    assert!(
        ws.wait_for_references(Duration::from_secs(60)),
        "{:?}",
        ws.status().references
    );
    ws.open_document("app.js", 1, "\n".into());
    ws
}

fn complete(ws: &Workspace) -> cairn_engine::Completion {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(ws.complete(
            CompleteRequest {
                path: "app.js".into(),
                position: cairn_engine::Position::new(0, 0),
                trigger: Trigger::Invoked,
                max_items: 1,
            },
            CancellationToken::new(),
        ))
        .unwrap()
}

fn suggested_outputs(ws: &Workspace) -> Vec<serde_json::Value> {
    let path = ws.status().ledger.path.unwrap();
    prov::read_entries(&path)
        .unwrap()
        .iter()
        .filter(|e| e.event() == Some("suggested"))
        .map(|e| e.statement.predicate["output"].clone())
        .collect()
}

#[test]
fn a_suggestion_that_reproduces_a_dependency_carries_package_and_licence() {
    let dir = tempfile::tempdir().unwrap();
    let ws = session(dir.path(), ReferencePolicy::Show, COPIED);
    let done = complete(&ws);
    let item = &done.items[0];
    assert_eq!(item.references.len(), 1, "{done:#?}");
    let r = &item.references[0];
    assert_eq!(
        (r.package.as_str(), r.version.as_str(), r.licence.as_str()),
        ("trimmer", "2.1.0", "BSD-3-Clause")
    );
    assert!(r.matched_chars >= 150 && r.path.ends_with("index.js"));
    // The source lines the item's text came from (the clean-up may cut the item short).
    assert!(COPIED.starts_with(item.text.trim_end()), "{:?}", item.text);
    assert_eq!(r.lines[0], 3);
    assert_eq!(
        r.lines[1] - r.lines[0] + 1,
        item.text.trim_end().lines().count() as u32
    );
    let out = suggested_outputs(&ws);
    assert_eq!(out.len(), 1);
    let rec = &out[0]["references"][0];
    assert_eq!(rec["package"], "trimmer");
    assert_eq!(rec["licence"], "BSD-3-Clause");
    assert_eq!(rec["lines"], serde_json::json!(r.lines));
    assert_eq!(rec["matchedChars"], r.matched_chars);
    assert!(out[0].get("withheld").is_none());
    let st = ws.status().references;
    assert_eq!(
        (st.state.as_str(), st.matched, st.withheld),
        ("ready", 1, 0)
    );
    assert_eq!(st.packages, 1);
}

#[test]
fn block_withholds_the_suggestion_and_the_record_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let ws = session(dir.path(), ReferencePolicy::Block, COPIED);
    let done = complete(&ws);
    assert!(done.items.is_empty(), "{done:#?}");
    let out = suggested_outputs(&ws);
    assert_eq!(out.len(), 1, "the withheld output still has its record");
    assert_eq!(out[0]["withheld"], true);
    assert_eq!(out[0]["references"][0]["package"], "trimmer");
    assert_eq!(ws.status().references.withheld, 1);
}

#[test]
fn own_code_is_not_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let own = "function totalOfPrices(items, taxRate) {\n  let sum = 0;\n  for (const item of items) {\n    sum += item.price * (1 + taxRate);\n  }\n  return Math.round(sum * 100) / 100;\n}\n";
    let ws = session(dir.path(), ReferencePolicy::Block, own);
    let done = complete(&ws);
    assert_eq!(done.items.len(), 1, "{done:#?}");
    assert!(done.items[0].references.is_empty());
    let out = suggested_outputs(&ws);
    assert!(out[0].get("references").is_none() && out[0].get("withheld").is_none());
    // The same check, asked directly.
    let m = ws.check_references("x.js", COPIED).unwrap();
    assert_eq!(m[0].label(), "trimmer 2.1.0 (BSD-3-Clause)");
}

/// Once accepted, the copied lines carry their references where they stand: moved by
/// edits above them, narrowed when some of them are rewritten, gone with the lines.
#[test]
fn accepted_copied_lines_keep_their_references_through_edits() {
    use cairn_engine::{Position, Range, TextChange};
    let dir = tempfile::tempdir().unwrap();
    let ws = session(dir.path(), ReferencePolicy::Show, COPIED);
    let done = complete(&ws);
    let item = done.items[0].clone();
    assert!(!item.references.is_empty());
    assert!(
        ws.accepted_references("app.js").is_empty(),
        "nothing accepted yet"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The editor inserts the item, then reports the acceptance.
    let inserted = item.text.clone();
    let n = inserted.trim_end().lines().count() as u32;
    ws.change_document(
        "app.js",
        2,
        &[TextChange::Incremental {
            range: item.range,
            text: inserted.clone(),
        }],
    )
    .unwrap();
    rt.block_on(ws.accept(&item.record_id, false, None))
        .unwrap();
    let marks = ws.accepted_references("app.js");
    assert_eq!(marks.len(), 1, "{marks:#?}");
    assert_eq!(marks[0].record_id, item.record_id);
    assert_eq!(marks[0].references, item.references);
    assert_eq!(marks[0].range.start, Position::new(0, 0));
    assert_eq!(
        marks[0].range.end.line,
        n - 1 + u32::from(inserted.ends_with('\n'))
    );

    // Two lines typed above: the mark moves down with the code.
    ws.change_document(
        "app.js",
        3,
        &[TextChange::Incremental {
            range: Range::at(Position::new(0, 0)),
            text: "// helpers\n\n".into(),
        }],
    )
    .unwrap();
    let marks = ws.accepted_references("app.js");
    assert_eq!(marks[0].range.start, Position::new(2, 0), "{marks:#?}");

    // The first copied line rewritten: the mark starts at the next line still as accepted.
    let first = inserted.lines().next().unwrap();
    ws.change_document(
        "app.js",
        4,
        &[TextChange::Incremental {
            range: Range::new(
                Position::new(2, 0),
                Position::new(2, first.encode_utf16().count() as u32),
            ),
            text: "function trimLinesMine(text, keepEmpty) {".into(),
        }],
    )
    .unwrap();
    let marks = ws.accepted_references("app.js");
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].range.start, Position::new(3, 0), "{marks:#?}");

    // The lines deleted: no mark.
    let doc_lines = 2 + n;
    ws.change_document(
        "app.js",
        5,
        &[TextChange::Incremental {
            range: Range::new(Position::new(2, 0), Position::new(doc_lines, 0)),
            text: String::new(),
        }],
    )
    .unwrap();
    assert!(ws.accepted_references("app.js").is_empty());
    // A rejected suggestion never marks anything.
    let other = complete(&ws).items[0].clone();
    rt.block_on(ws.reject(&other.record_id, "dismissed"))
        .unwrap();
    assert!(ws.accepted_references("app.js").is_empty());
}
