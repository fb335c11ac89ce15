//! The ledger's tail is witnessed: signed checkpoints in `refs/notes/cairn-checkpoints`
//! and in a local witness catch a truncated, replaced or rewritten ledger, naming the
//! checkpoint; forged or unreadable checkpoints are failures too.

mod common;
use cairn_provenance::witness::{self, CHECKPOINTS_REF};
use cairn_provenance::*;
use common::*;

fn failures(fx: &Fixture, witness: Option<&std::path::Path>) -> Vec<String> {
    verify_witnessed(&fx.repo, None, Some(&fx.ledger_file()), witness)
        .unwrap()
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect()
}

fn ledger_lines(fx: &Fixture) -> Vec<String> {
    std::fs::read_to_string(fx.ledger_file())
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write_lines(fx: &Fixture, lines: &[String]) {
    std::fs::write(fx.ledger_file(), lines.join("\n") + "\n").unwrap();
}

#[test]
fn truncating_the_last_record_is_detected_by_each_witness() {
    let (fx, _l, _) = scenario();
    let wd = fx.witness_dir();
    assert!(failures(&fx, Some(&wd)).is_empty());
    let rep = verify_witnessed(&fx.repo, None, Some(&fx.ledger_file()), Some(&wd)).unwrap();
    let line = rep
        .checked
        .iter()
        .find(|c| c.starts_with("witnesses"))
        .unwrap();
    assert!(line.contains("0 after it are unwitnessed"), "{line}");

    // The last record is the `committed` record appended after the note was written:
    // the note's own checkpoint does not cover it, so only the witnesses can see it go.
    let mut lines = ledger_lines(&fx);
    let n = lines.len();
    lines.pop();
    write_lines(&fx, &lines);

    let both = failures(&fx, Some(&wd));
    assert_eq!(both.len(), 2, "{both:#?}");
    for f in &both {
        assert!(
            f.contains(&format!("size {n}"))
                && f.contains(&format!(
                    "the ledger holds {} records but this checkpoint covers {n}",
                    n - 1
                )),
            "{f}"
        );
    }
    assert!(both
        .iter()
        .any(|f| f.contains(&format!("({CHECKPOINTS_REF}@"))));
    assert!(both.iter().any(|f| f.contains("(local witness ")));

    // Either witness alone is enough.
    assert_eq!(failures(&fx, None).len(), 1);
    git(&fx.repo, &["update-ref", "-d", CHECKPOINTS_REF]);
    let local_only = failures(&fx, Some(&wd));
    assert_eq!(local_only.len(), 1, "{local_only:#?}");
    assert!(local_only[0].contains("local witness"));
}

#[test]
fn a_ledger_rewritten_and_checkpointed_again_disagrees_with_history() {
    let (fx, _l, _) = scenario();
    let wd = fx.witness_dir();
    // Cut the last record and append another, validly signed with the device key:
    // the chain is intact and as long as before, but it is not the ledger witnessed.
    let mut lines = ledger_lines(&fx);
    lines.pop();
    write_lines(&fx, &lines);
    let l = fx.ledger();
    suggest_accept(&l, "other-model", "src/x.rs", 0, "let x = 1;\n");
    let after = ledger_lines(&fx).len();
    let fs = failures(&fx, Some(&wd));
    assert!(
        fs.iter()
            .any(|f| f.contains("do not hash to this checkpoint's root")),
        "{fs:#?}"
    );
    // A fresh refresh moves both witnesses on, but the ref's history still holds the
    // checkpoint the rewrite contradicts.
    let r = witness::refresh(&l).unwrap();
    assert!(r.git_written && r.local_written.is_some(), "{r:?}");
    let fs = failures(&fx, None);
    assert_eq!(fs.len(), 1, "{fs:#?}");
    assert!(fs[0].contains("the ledger was rewritten"), "{}", fs[0]);
    assert!(after > 0);
}

#[test]
fn a_deleted_ledger_and_a_forged_checkpoint_are_failures() {
    let (fx, l, _) = scenario();
    let wd = fx.witness_dir();
    // A checkpoint with a larger size, signed by another key, planted in the git witness.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let (size, root) = l.checkpoint().unwrap();
    let forged = witness::TreeHead {
        ledger_id: l.ledger_id().into(),
        size: size + 5,
        root,
        time: "2026-01-01T00:00:00Z".into(),
    };
    let obj = git(&fx.repo, &["notes", "--ref", CHECKPOINTS_REF, "list"]);
    let obj = obj.split_whitespace().nth(1).unwrap().to_string();
    std::fs::write(fx.tmp.path().join("forged"), forged.sign(&other)).unwrap();
    git(
        &fx.repo,
        &[
            "notes",
            "--ref",
            CHECKPOINTS_REF,
            "add",
            "-f",
            "-F",
            fx.tmp.path().join("forged").to_str().unwrap(),
            &obj,
        ],
    );
    let fs = failures(&fx, Some(&wd));
    assert_eq!(fs.len(), 1, "{fs:#?}");
    assert!(
        fs[0].contains(&format!("size {}", size + 5))
            && fs[0].contains("not signed by this ledger's key"),
        "{}",
        fs[0]
    );

    // Garbage in the ref names where it is.
    std::fs::write(fx.tmp.path().join("junk"), "not a checkpoint\n\nat all\n").unwrap();
    git(
        &fx.repo,
        &[
            "notes",
            "--ref",
            CHECKPOINTS_REF,
            "add",
            "-f",
            "-F",
            fx.tmp.path().join("junk").to_str().unwrap(),
            &obj,
        ],
    );
    let fs = failures(&fx, Some(&wd));
    assert!(
        fs.iter()
            .any(|f| f.starts_with(CHECKPOINTS_REF) && f.contains("not a Cairn checkpoint")),
        "{fs:#?}"
    );

    // The whole ledger removed: the local witness still says it existed.
    std::fs::remove_file(fx.ledger_file()).unwrap();
    let rep = verify_witnessed(&fx.repo, None, None, Some(&wd)).unwrap();
    assert!(
        rep.failures.iter().any(|f| f
            .message
            .contains("the ledger is missing but this checkpoint says it held")),
        "{:#?}",
        rep.failures
    );
}

#[test]
fn checkpoints_travel_through_a_bare_remote() {
    let (fx, l, _) = scenario();
    let clone = clone_through_bare_remote(&fx, "clone");
    let (found, bad) = witness::collect(&clone, None).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(
        found
            .iter()
            .any(|f| f.head.ledger_id == l.ledger_id() && f.signed_by(&l.public_key())),
        "{found:?}"
    );
    // On the author's machine a ledger cut short is caught by the checkpoint fetched back.
    git(&fx.repo, &["update-ref", "-d", CHECKPOINTS_REF]);
    git(
        &fx.repo,
        &["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"],
    );
    let mut lines = ledger_lines(&fx);
    lines.pop();
    write_lines(&fx, &lines);
    assert_eq!(failures(&fx, None).len(), 1);
}
