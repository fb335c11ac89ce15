//! Attribution through the git workflows teams use, on real repositories: interactive
//! rebase with squash and fixup, cherry-pick, revert, a squash-merge made elsewhere,
//! a merge with conflicts resolved by hand, amend after the notes were pushed, and the
//! notes' round trip through a bare remote.

mod common;
use cairn_provenance::*;
use common::*;
use std::path::Path;
use std::process::Command;

fn git_env(repo: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn classes(repo: &Path, file: &str) -> String {
    blame(repo, file, None)
        .unwrap()
        .iter()
        .map(|b| format!("{} {}\n", b.class, b.text))
        .collect()
}

/// A teammate's ledger (another device key) on the same repository.
fn teammate(fx: &Fixture) -> Ledger {
    let o = LedgerOptions::default()
        .with_dir(fx.tmp.path().join("mate-ledger"))
        .with_key_store(std::sync::Arc::new(FileKeyStore::new(
            fx.tmp.path().join("mate-keys"),
        )))
        .with_witness_dir(fx.tmp.path().join("mate-witness"));
    Ledger::open(&fx.repo, o).unwrap()
}

/// c0 human; c1 adds an AI line to a.rs; c2 adds an AI line to b.rs. All attested.
fn two_ai_commits() -> (Fixture, Ledger, [String; 3]) {
    let fx = Fixture::new();
    let l = fx.ledger();
    fx.write("a.rs", "fn a() {}\n");
    fx.write("b.rs", "fn b() {}\n");
    let c0 = fx.commit("initial");
    attest_with(&l, &c0, None).unwrap();
    suggest_accept(&l, "model-a", "a.rs", 1, "let from_a = compute_a();\n");
    fx.write("a.rs", "fn a() {}\nlet from_a = compute_a();\n");
    let c1 = fx.commit("a");
    attest_with(&l, &c1, None).unwrap();
    suggest_accept(&l, "model-b", "b.rs", 1, "let from_b = compute_b();\n");
    fx.write(
        "b.rs",
        "fn b() {}\nlet from_b = compute_b();\nlet human_b = 2;\n",
    );
    let c2 = fx.commit("b");
    attest_with(&l, &c2, None).unwrap();
    (fx, l, [c0, c1, c2])
}

fn note_of(fx: &Fixture, commit: &str) -> Note {
    let notes = git::read_notes(&fx.repo, &[commit.to_string()]).unwrap();
    Note::parse(notes.get(commit).expect("a note"))
}

#[test]
fn rebase_squash_and_fixup_leave_one_valid_note() {
    // git's default notes.rewriteMode (concatenate) and the one `cairn init` sets.
    for (verb, mode) in [("squash", "concatenate"), ("fixup", "overwrite")] {
        let (fx, l, [c0, c1, c2]) = two_ai_commits();
        git(
            &fx.repo,
            &["config", "notes.rewriteRef", "refs/notes/cairn"],
        );
        git(&fx.repo, &["config", "notes.rewriteMode", mode]);
        let script = format!("sed -i '2s/^pick/{verb}/'");
        git_env(
            &fx.repo,
            &[("GIT_SEQUENCE_EDITOR", &script), ("GIT_EDITOR", "true")],
            &["rebase", "-q", "-i", &c0],
        );
        let new = git(&fx.repo, &["rev-parse", "HEAD"]);
        assert_eq!(git(&fx.repo, &["rev-list", "--count", "HEAD"]), "2");
        if mode == "concatenate" {
            // What git leaves: both notes in one, which verify names until re-attested.
            let n = note_of(&fx, &new);
            assert_eq!(n.concatenated.len(), 1, "{verb}");
            let v = verify(&fx.repo, None, Some(l.path())).unwrap();
            assert!(
                v.failures
                    .iter()
                    .any(|f| f.message.contains("holds 2 ai-commit statements")),
                "{:#?}",
                v.failures
            );
        }
        // The post-rewrite hook's input: both old commits map to the new one.
        let out = attest_rewritten(
            &fx.repo,
            &[(c1.clone(), new.clone()), (c2.clone(), new.clone())],
            &fx.opts,
        )
        .unwrap();
        assert_eq!(
            out.len(),
            1,
            "{verb}: one attestation for the squashed commit"
        );
        assert_eq!(out[0].ai_lines, 2, "{verb}");
        let n = note_of(&fx, &new);
        assert!(
            n.errors.is_empty() && n.concatenated.is_empty(),
            "{verb}: {:?}",
            n.errors
        );
        assert_eq!(
            classes(&fx.repo, "a.rs"),
            "human fn a() {}\nai let from_a = compute_a();\n"
        );
        assert_eq!(
            classes(&fx.repo, "b.rs"),
            "human fn b() {}\nai let from_b = compute_b();\nhuman let human_b = 2;\n"
        );
        let v = verify(&fx.repo, None, Some(l.path())).unwrap();
        assert!(v.ok(), "{verb}: {:#?}", v.failures);
        let c = check(&fx.repo, None, true, &CheckOptions::default()).unwrap();
        assert_eq!(c.unreviewed.len(), 2, "{verb}");
    }
}

#[test]
fn cherry_pick_recovers_from_the_source_note() {
    let (fx, _l, [c0, c1, _]) = two_ai_commits();
    git(&fx.repo, &["checkout", "-q", "-b", "other", &c0]);
    // With -x the trailer names the source: the teammate's attestation (their ledger
    // knows nothing of these lines) recovers it on its own.
    git(&fx.repo, &["cherry-pick", "-x", &c1]);
    let mate = teammate(&fx);
    let out = attest_with(&mate, "HEAD", None).unwrap();
    assert_eq!(out.ai_lines, 1);
    assert_eq!(out.statement.recovered_from, vec![c1.clone()]);
    assert_eq!(
        classes(&fx.repo, "a.rs"),
        "human fn a() {}\nai let from_a = compute_a();\n"
    );
    // Without -x: nothing to go on until asked to recover from the notes.
    git(&fx.repo, &["reset", "-q", "--hard", &c0]);
    git_env(
        &fx.repo,
        &[("GIT_COMMITTER_DATE", "2026-03-04T05:06:07Z")],
        &["cherry-pick", &c1],
    );
    assert_ne!(git(&fx.repo, &["rev-parse", "HEAD"]), c1);
    assert_eq!(attest_with(&mate, "HEAD", None).unwrap().ai_lines, 0);
    let out = attest_recovering(&mate, "HEAD", &Recovery::AllNotes).unwrap();
    assert_eq!(out.ai_lines, 1);
    assert_eq!(out.statement.recovered_from, vec![c1]);
    let v = verify(&fx.repo, Some(&format!("{c0}..HEAD")), None).unwrap();
    assert!(v.ok(), "{:#?}", v.failures);
}

#[test]
fn revert_of_an_ai_commit_needs_no_review() {
    let (fx, l, [_, c1, c2]) = two_ai_commits();
    git(&fx.repo, &["revert", "--no-edit", &c2]);
    let r = git(&fx.repo, &["rev-parse", "HEAD"]);
    let out = attest_with(&l, &r, None).unwrap();
    assert_eq!((out.ai_lines, out.ai_modified_lines), (0, 0));
    assert_eq!(classes(&fx.repo, "b.rs"), "human fn b() {}\n");
    let c = check(&fx.repo, None, true, &CheckOptions::default()).unwrap();
    assert_eq!(c.reverted, vec![(c2, r)]);
    let left: Vec<&str> = c.unreviewed.iter().map(|u| u.commit.as_str()).collect();
    assert_eq!(left, [c1.as_str()], "only the AI line still in the tree");
}

#[test]
fn squash_merge_made_elsewhere_is_recovered_by_line_content() {
    let (fx, l, [c0, c1, c2]) = two_ai_commits();
    // The branch and its notes go to the remote.
    let bare = fx.tmp.path().join("remote.git");
    git(
        fx.tmp.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(&fx.repo, &["branch", "-q", "feature"]);
    git(&fx.repo, &["reset", "-q", "--hard", &c0]);
    git(
        &fx.repo,
        &["remote", "add", "origin", bare.to_str().unwrap()],
    );
    git(
        &fx.repo,
        &[
            "push",
            "-q",
            "origin",
            "main",
            "feature",
            "refs/notes/*:refs/notes/*",
        ],
    );
    // The hosting service squashes the branch into one new commit on main, with no note.
    let host = fx.tmp.path().join("host");
    git(
        fx.tmp.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            host.to_str().unwrap(),
        ],
    );
    git(&host, &["config", "user.email", "host@example.com"]);
    git(&host, &["config", "user.name", "Host"]);
    git(&host, &["merge", "-q", "--squash", "origin/feature"]);
    git(&host, &["commit", "-q", "-m", "Feature (#1)"]);
    git(&host, &["push", "-q", "origin", "main"]);
    // Back home: fetch, and one command recovers the attribution.
    git(&fx.repo, &["pull", "-q", "--ff-only", "origin", "main"]);
    let sq = git(&fx.repo, &["rev-parse", "HEAD"]);
    assert!(git::read_notes(&fx.repo, std::slice::from_ref(&sq))
        .unwrap()
        .is_empty());
    // Attested by someone whose ledger never saw these suggestions (a teammate, CI):
    // plainly it is all human; recovering finds the branch commits' notes.
    let mate = teammate(&fx);
    assert_eq!(attest_with(&mate, &sq, None).unwrap().ai_lines, 0);
    let out = attest_recovering(&mate, &sq, &Recovery::AllNotes).unwrap();
    assert_eq!(out.ai_lines, 2);
    let mut from = out.statement.recovered_from.clone();
    from.sort();
    let mut want = vec![c1, c2];
    want.sort();
    assert_eq!(from, want);
    assert_eq!(
        classes(&fx.repo, "b.rs"),
        "human fn b() {}\nai let from_b = compute_b();\nhuman let human_b = 2;\n"
    );
    let v = verify(&fx.repo, Some(&format!("{c0}..HEAD")), Some(l.path())).unwrap();
    assert!(v.ok(), "{:#?}", v.failures);
    // The author's own ledger still knows the lines: attesting there needs no recovery.
    assert_eq!(attest_with(&l, &sq, None).unwrap().ai_lines, 2);
}

#[test]
fn conflict_merge_resolved_by_hand() {
    let fx = Fixture::new();
    let l = fx.ledger();
    fx.write("m.rs", "fn m() {\n    let v = 0;\n}\n");
    let c0 = fx.commit("initial");
    attest_with(&l, &c0, None).unwrap();
    git(&fx.repo, &["checkout", "-q", "-b", "feature"]);
    suggest_accept(
        &l,
        "model-f",
        "m.rs",
        1,
        "    let v = ai_value();\n    log(v);\n",
    );
    fx.write(
        "m.rs",
        "fn m() {\n    let v = ai_value();\n    log(v);\n}\n",
    );
    let f1 = fx.commit("ai value");
    attest_with(&l, &f1, None).unwrap();
    git(&fx.repo, &["checkout", "-q", "main"]);
    fx.write("m.rs", "fn m() {\n    let v = 1;\n}\n");
    let m1 = fx.commit("human value");
    attest_with(&l, &m1, None).unwrap();
    let merge = Command::new("git")
        .arg("-C")
        .arg(&fx.repo)
        .args(["merge", "-q", "feature"])
        .output()
        .unwrap();
    assert!(!merge.status.success(), "expected a conflict");
    // Resolved by hand: the AI line kept as it was, one new human line, the other AI
    // line rewritten.
    fx.write(
        "m.rs",
        "fn m() {\n    let v = ai_value();\n    let w = v + 1;\n    log(w);\n}\n",
    );
    git(&fx.repo, &["add", "m.rs"]);
    git(&fx.repo, &["commit", "-q", "--no-edit"]);
    let mc = git(&fx.repo, &["rev-parse", "HEAD"]);
    let out = attest_with(&l, &mc, None).unwrap();
    assert_eq!(
        (out.ai_lines, out.human_lines),
        (0, 2),
        "the merge claims only the lines no parent has"
    );
    assert_eq!(
        classes(&fx.repo, "m.rs"),
        "human fn m() {\nai     let v = ai_value();\nhuman     let w = v + 1;\nhuman     log(w);\nhuman }\n"
    );
    let v = verify(&fx.repo, None, Some(l.path())).unwrap();
    assert!(v.ok(), "{:#?}", v.failures);
}

#[test]
fn amend_after_push_and_notes_round_trip_through_a_bare_remote() {
    let (fx, l, c1) = scenario();
    git(
        &fx.repo,
        &["config", "notes.rewriteRef", "refs/notes/cairn"],
    );
    // A teammate clones and sees the attribution.
    let mate = clone_through_bare_remote(&fx, "mate");
    let before = classes(&mate, "src/main.rs");
    assert!(
        before.contains("ai-modified     let total") && before.contains("ai     println"),
        "{before}"
    );

    // The author amends the pushed commit and pushes again (notes fast-forward).
    fx.write(
        "src/main.rs",
        "fn main() {\n    let total = compute(1, 3);\n    println!(\"{total}\");\n    let human = 5;\n    let late = 7;\n}\n",
    );
    git(&fx.repo, &["commit", "-q", "-a", "--amend", "--no-edit"]);
    let c1b = git(&fx.repo, &["rev-parse", "HEAD"]);
    attest_rewritten(&fx.repo, &[(c1, c1b.clone())], &fx.opts).unwrap();
    git(&fx.repo, &["push", "-q", "-f", "origin", "main"]);
    git(
        &fx.repo,
        &["push", "-q", "origin", "refs/notes/*:refs/notes/*"],
    );

    git(&mate, &["fetch", "-q", "origin"]);
    git(&mate, &["reset", "-q", "--hard", "origin/main"]);
    git(
        &mate,
        &["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"],
    );
    assert_eq!(git(&mate, &["rev-parse", "HEAD"]), c1b);
    assert_eq!(
        classes(&mate, "src/main.rs"),
        "human fn main() {\nai-modified     let total = compute(1, 3);\nai     println!(\"{total}\");\nhuman     let human = 5;\nhuman     let late = 7;\nhuman }\n"
    );
    // The clone verifies without the author's ledger, and sees the author's checkpoint.
    let v = verify_witnessed(&mate, None, None, None).unwrap();
    assert!(v.ok(), "{:#?}", v.failures);
    assert!(
        v.checked.iter().any(|c| c.starts_with("witnesses:")),
        "{:?}",
        v.checked
    );
    let (found, _) = witness::collect(&mate, None).unwrap();
    assert!(found.iter().any(|f| f.head.ledger_id == l.ledger_id()));
}

/// The checkpoints the last attestation signed, from the tree the span index keeps,
/// are the ledger's as a full read of it gives them: the note's before its `committed`
/// record, the witnesses' after it.
fn assert_checkpoints_match_the_ledger(fx: &Fixture, l: &Ledger, commit: &str) {
    let (size, root) = l.checkpoint().unwrap();
    let (found, failures) = witness::collect(&fx.repo, Some(&fx.witness_dir())).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    for source in [witness::CHECKPOINTS_REF, "local witness"] {
        let newest = found
            .iter()
            .filter(|f| f.source.starts_with(source) && f.head.ledger_id == l.ledger_id())
            .max_by_key(|f| f.head.size)
            .unwrap();
        assert_eq!(
            (newest.head.size, newest.head.root.as_str()),
            (size, root.as_str())
        );
    }
    let cp = note_of(fx, commit).ai_commit.unwrap().2.checkpoint.unwrap();
    let before = ledger::checkpoint_of(&fx.ledger_file(), Some(size - 1)).unwrap();
    assert_eq!((cp.tree_size, cp.root_hash), before);
}

#[test]
fn the_span_index_follows_the_ledger() {
    let (fx, l, c1) = scenario();
    let index = fx.ledger_file().with_file_name("spans-index.json");
    assert!(index.exists(), "attest keeps an index beside the ledger");
    assert_checkpoints_match_the_ledger(&fx, &l, &c1);
    // Appends after the index was written are picked up.
    suggest_accept(&l, "model-z", "src/z.rs", 0, "let zed = 26;\n");
    fx.write("src/z.rs", "let zed = 26;\n");
    let c2 = fx.commit("z");
    assert_eq!(attest_with(&l, &c2, None).unwrap().ai_lines, 1);
    assert_checkpoints_match_the_ledger(&fx, &l, &c2);
    // A tree in the index that does not add up is not trusted: rebuilt from the ledger.
    let text = std::fs::read_to_string(&index).unwrap();
    let size = l.checkpoint().unwrap().0;
    let broken = text.replace(
        &format!("\"size\":{size}"),
        &format!("\"size\":{}", size + 5),
    );
    assert_ne!(broken, text);
    std::fs::write(&index, broken).unwrap();
    attest_with(&l, &c2, None).unwrap();
    assert_checkpoints_match_the_ledger(&fx, &l, &c2);
    // A ledger shortened under it: rebuilt, nothing stale used.
    let body = std::fs::read_to_string(fx.ledger_file()).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    std::fs::write(fx.ledger_file(), lines[..lines.len() - 3].join("\n") + "\n").unwrap();
    let l2 = fx.ledger();
    assert_eq!(
        attest_with(&l2, &c2, None).unwrap().ai_lines,
        1,
        "the note still carries it"
    );
    // A record edited in place (same length, the tail unchanged): refused by its digest
    // once, then rebuilt from the ledger as it is.
    let body = std::fs::read_to_string(fx.ledger_file()).unwrap();
    let target = body.lines().nth(2).unwrap().to_string();
    let mut edited = target.clone().into_bytes();
    let i = edited.len() / 2;
    edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    std::fs::write(fx.ledger_file(), body.replacen(&target, &edited, 1)).unwrap();
    git(
        &fx.repo,
        &["notes", "--ref", "refs/notes/cairn", "remove", &c1],
    );
    let err = attest_with(&l2, &c1, None).unwrap_err().to_string();
    assert!(err.contains("changed under its span index"), "{err}");
    attest_with(&l2, &c1, None).unwrap();
}
