//! Each record verifies against the key of the ledger that signed it, also after a
//! teammate re-attests a rewritten commit; `.cairn/allowed_signers` says whom to trust.

mod common;
use cairn_provenance::keys::{key_id, ssh_public_key};
use cairn_provenance::*;
use common::*;

/// The scenario's commit, amended and re-attested by a teammate with another device key.
fn reattested_by_teammate() -> (Fixture, Ledger, Ledger) {
    let (fx, mine, c1) = scenario();
    git(
        &fx.repo,
        &["config", "notes.rewriteRef", "refs/notes/cairn"],
    );
    git(&fx.repo, &["commit", "-q", "--amend", "-m", "reworded"]);
    let new = git(&fx.repo, &["rev-parse", "HEAD"]);
    let theirs = LedgerOptions::default()
        .with_dir(fx.tmp.path().join("ledger2"))
        .with_key_store(std::sync::Arc::new(FileKeyStore::new(
            fx.tmp.path().join("keys2"),
        )))
        .with_witness_dir(fx.tmp.path().join("witness2"));
    let out = attest_rewritten(&fx.repo, &[(c1, new)], &theirs).unwrap();
    assert_eq!(out[0].ai_lines + out[0].ai_modified_lines, 2);
    let theirs = Ledger::open(&fx.repo, theirs).unwrap();
    (fx, mine, theirs)
}

fn verify_head(fx: &Fixture) -> VerifyReport {
    verify_witnessed(&fx.repo, Some("HEAD~1..HEAD"), None, None).unwrap()
}

#[test]
fn carried_records_verify_against_the_original_signer() {
    let (fx, mine, theirs) = reattested_by_teammate();
    let rep = verify_head(&fx);
    assert!(rep.ok(), "{:#?}", rep.failures);
    // The statement is the teammate's; the three records (suggested, accepted, edited)
    // are still the original author's.
    let me = key_id(&mine.public_key());
    let them = key_id(&theirs.public_key());
    assert_eq!(rep.records.len(), 3, "{:#?}", rep.records);
    assert!(rep
        .records
        .iter()
        .all(|r| r.keyid == me && r.trusted.is_none()));
    let by: Vec<(String, usize, usize)> = rep
        .signers
        .iter()
        .map(|s| (s.keyid.clone(), s.statements, s.records))
        .collect();
    let mut want = vec![(me, 0, 3), (them, 1, 0)];
    want.sort();
    assert_eq!(by, want);
    assert!(rep
        .warnings
        .iter()
        .any(|w| w.contains("no .cairn/allowed_signers")));
}

#[test]
fn allowed_signers_decide_trust() {
    let (fx, mine, theirs) = reattested_by_teammate();
    let me = ssh_public_key(&mine.public_key());
    let them = ssh_public_key(&theirs.public_key());
    let write = |text: &str| {
        std::fs::create_dir_all(fx.repo.join(".cairn")).unwrap();
        std::fs::write(fx.repo.join(".cairn/allowed_signers"), text).unwrap();
    };

    // Only the original author is listed: the teammate's attestation is not trusted.
    write(&format!("dev@example.com {me}\n"));
    let rep = verify_head(&fx);
    let fs: Vec<String> = rep.failures.iter().map(|f| f.to_string()).collect();
    assert_eq!(fs.len(), 1, "{fs:#?}");
    assert!(
        fs[0].contains("the ai-commit statement is signed by key")
            && fs[0].contains(&key_id(&theirs.public_key())[..16])
            && fs[0].contains("which .cairn/allowed_signers does not list"),
        "{}",
        fs[0]
    );
    assert!(rep
        .records
        .iter()
        .all(|r| r.trusted == Some(true) && r.principal.as_deref() == Some("dev@example.com")));

    // Both listed (git's format: principals, options, key, comment), plus a broken line.
    write(&format!(
        "# the team\ndev@example.com {me}\nmate@example.com namespaces=\"git\" {them} laptop\n\
         broken@example.com ssh-ed25519 AAAA\n"
    ));
    let rep = verify_head(&fx);
    assert!(rep.ok(), "{:#?}", rep.failures);
    assert!(rep.signers.iter().all(|s| s.trusted == Some(true)));
    assert_eq!(rep.warnings.len(), 1, "{:?}", rep.warnings);
    assert!(
        rep.warnings[0].contains(".cairn/allowed_signers:4: malformed ssh-ed25519 key"),
        "{}",
        rep.warnings[0]
    );

    // Only the teammate listed: each of the author's records is named as untrusted.
    write(&format!("mate@example.com {them}\n"));
    let rep = verify_head(&fx);
    assert_eq!(rep.failures.len(), 3, "{:#?}", rep.failures);
    assert!(rep
        .failures
        .iter()
        .all(|f| f.record.is_some() && f.message.starts_with("embedded record signed by key")));
}
