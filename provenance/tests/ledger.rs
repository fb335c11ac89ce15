//! The ledger on disk: append, chain, signatures, and every kind of damage `verify` must catch.

mod common;
use cairn_provenance::*;
use common::*;

fn messages(check: &LedgerCheck) -> String {
    check
        .failures
        .iter()
        .map(|f| format!("{}: {}\n", f.place, f.message))
        .collect()
}

fn fill(fx: &Fixture, n: usize) -> Ledger {
    let l = fx.ledger();
    for i in 0..n {
        suggest_accept(&l, "m", "src/a.rs", i as u32, &format!("let x{i} = {i};\n"));
    }
    l
}

fn lines(fx: &Fixture) -> Vec<String> {
    std::fs::read_to_string(fx.ledger_file())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(fx: &Fixture, lines: &[String]) {
    std::fs::write(fx.ledger_file(), lines.join("\n") + "\n").unwrap();
}

#[test]
fn appends_chain_and_verify_clean() {
    let fx = Fixture::new();
    let l = fill(&fx, 3);
    let entries = l.entries().unwrap();
    assert_eq!(entries.len(), 7);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
        if i > 0 {
            assert_eq!(
                e.record.prev.as_deref().unwrap(),
                entries[i - 1].digest(),
                "line {i}"
            );
        }
    }
    let check = verify_ledger_file(&fx.ledger_file(), Some(&l.public_key())).unwrap();
    assert_eq!(messages(&check), "");
    assert_eq!(check.records, 7);
    assert_eq!(check.signatures_checked, 7);
    // Reopen continues the chain.
    drop(l);
    let l = fx.ledger();
    suggest_accept(&l, "m", "src/a.rs", 9, "x\n");
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    assert_eq!(messages(&check), "");
    assert_eq!(check.records, 9);
}

#[test]
fn record_shape_is_an_in_toto_statement() {
    let fx = Fixture::new();
    let l = fx.ledger();
    let id = suggest_accept(
        &l,
        "qwen2.5-coder",
        "src/a.rs",
        4,
        "let y = 2;\nlet z = 3;\n",
    );
    let e = &l.entries().unwrap()[1];
    let mut p = e.statement.predicate.clone();
    // Volatile fields replaced so the snapshot pins the shape.
    for k in ["recordId", "ledgerId", "prev", "time"] {
        p[k] = serde_json::json!(format!("<{k}>"));
    }
    p["actor"]["deviceKey"] = "<keyid>".into();
    p["input"]["promptCommitment"]["salt"] = "<salt>".into();
    p["input"]["promptCommitment"]["digest"] = "<digest>".into();
    p["location"]["repo"] = "<repo>".into();
    assert_eq!(e.record_id(), Some(id));
    assert_eq!(e.statement.type_, "https://in-toto.io/Statement/v1");
    assert_eq!(e.envelope.payload_type, "application/vnd.in-toto+json");
    expect_test::expect![[r#"
        {
          "actor": {
            "deviceKey": "<keyid>",
            "email": "dev@example.com",
            "name": "Dev One"
          },
          "event": "suggested",
          "generator": {
            "ggufSha256": "abababababababababababababababababababababababababababababababab",
            "modelId": "qwen2.5-coder",
            "origin": "local",
            "runtime": "llama.cpp cpu",
            "sampling": {
              "temperature": 0.2
            },
            "toolVersion": "0.1.0"
          },
          "input": {
            "context": [
              {
                "contentDigest": "efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef",
                "endLine": 9,
                "path": "src/util.rs",
                "retriever": "bm25",
                "score": 7.25,
                "startLine": 1
              }
            ],
            "mode": "fim",
            "promptCommitment": {
              "algorithm": "sha256(salt||prompt)",
              "digest": "<digest>",
              "salt": "<salt>"
            },
            "templateDigest": "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
          },
          "ledgerId": "<ledgerId>",
          "location": {
            "baseCommit": null,
            "path": "src/a.rs",
            "range": {
              "end": {
                "character": 0,
                "line": 4
              },
              "start": {
                "character": 0,
                "line": 4
              }
            },
            "ranges": [
              {
                "endLine": 6,
                "lineHashes": [
                  "f9fd03503698e33d",
                  "470fcce6a887e08e"
                ],
                "startLine": 5
              }
            ],
            "repo": "<repo>"
          },
          "output": {
            "digest": "5229adae715b4bcf02683244ea3c45b9163c8c143ed26982df4fa380ec787475",
            "lines": 2
          },
          "prev": "<prev>",
          "recordId": "<recordId>",
          "seq": 1,
          "time": "<time>"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&p).unwrap());
}

#[test]
fn tampered_line_is_caught() {
    let fx = Fixture::new();
    fill(&fx, 3);
    let mut ls = lines(&fx);
    // Re-encode line 3's payload with a changed statement, keeping the old signature.
    let mut env: serde_json::Value = serde_json::from_str(&ls[2]).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    let changed = payload.replace("\"accept\"", "\"reject\"");
    assert_ne!(payload, changed);
    env["payload"] = b64.encode(changed).into();
    ls[2] = String::from_utf8(cairn_provenance::jcs::value_to_vec(&env).unwrap()).unwrap();
    write_lines(&fx, &ls);
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    expect_test::expect![[r#"
        ledger line 3: signature does not verify with the ledger key (forged or altered record)
        ledger line 4: previous-record digest does not match line 3 (the chain is broken there)
    "#]]
    .assert_eq(&messages(&check));
}

#[test]
fn deleted_record_is_caught() {
    let fx = Fixture::new();
    fill(&fx, 3);
    let mut ls = lines(&fx);
    ls.remove(3);
    write_lines(&fx, &ls);
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    expect_test::expect![[r#"
        ledger line 4: seq is 4 where 3 was expected (a record was deleted, inserted or reordered)
        ledger line 4: previous-record digest does not match line 3 (the chain is broken there)
        ledger line 5: seq is 5 where 4 was expected (a record was deleted, inserted or reordered)
        ledger line 6: seq is 6 where 5 was expected (a record was deleted, inserted or reordered)
    "#]]
    .assert_eq(&messages(&check));
}

#[test]
fn swapped_pair_is_caught() {
    let fx = Fixture::new();
    fill(&fx, 3);
    let mut ls = lines(&fx);
    ls.swap(2, 3);
    write_lines(&fx, &ls);
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    expect_test::expect![[r#"
        ledger line 3: seq is 3 where 2 was expected (a record was deleted, inserted or reordered)
        ledger line 3: previous-record digest does not match line 2 (the chain is broken there)
        ledger line 4: seq is 2 where 3 was expected (a record was deleted, inserted or reordered)
        ledger line 4: previous-record digest does not match line 3 (the chain is broken there)
        ledger line 5: previous-record digest does not match line 4 (the chain is broken there)
    "#]]
    .assert_eq(&messages(&check));
}

#[test]
fn forged_signature_is_caught() {
    let fx = Fixture::new();
    fill(&fx, 2);
    let mut ls = lines(&fx);
    // An attacker with another key re-signs a modified last record and claims the ledger's keyid.
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let last = ls.len() - 1;
    let env: Envelope = serde_json::from_str(&ls[last]).unwrap();
    let payload = String::from_utf8(env.payload_bytes().unwrap())
        .unwrap()
        .replace("\"accept\"", "\"partial\"");
    let mut forged = Envelope::sign(payload.as_bytes(), &attacker);
    forged.signatures[0].keyid = env.signatures[0].keyid.clone();
    ls[last] = String::from_utf8(forged.to_line()).unwrap();
    write_lines(&fx, &ls);
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    expect_test::expect![[r#"
        ledger line 5: signature does not verify with the ledger key (forged or altered record)
    "#]]
    .assert_eq(&messages(&check));
}

#[test]
fn truncated_last_line_is_caught_and_never_silently_repaired() {
    let fx = Fixture::new();
    fill(&fx, 2);
    let bytes = std::fs::read(fx.ledger_file()).unwrap();
    std::fs::write(fx.ledger_file(), &bytes[..bytes.len() - 40]).unwrap();
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    assert_eq!(check.records, 4);
    let msg = messages(&check);
    assert!(msg.starts_with("ledger line 5: torn last line"), "{msg}");
    // Opening for append refuses rather than "repairing".
    match Ledger::open(&fx.repo, fx.opts.clone()) {
        Err(Error::TornTail { .. }) => {}
        other => panic!("expected TornTail, got {other:?}"),
    }
    // The explicit quarantine moves the bytes aside, and the ledger works again.
    let side = quarantine_torn_tail(&fx.ledger_file()).unwrap().unwrap();
    assert!(std::fs::metadata(&side).unwrap().len() > 0);
    let l = fx.ledger();
    suggest_accept(&l, "m", "b.rs", 0, "y\n");
    assert_eq!(
        messages(&verify_ledger_file(&fx.ledger_file(), None).unwrap()),
        ""
    );
}

#[test]
fn another_device_key_is_refused() {
    let fx = Fixture::new();
    fill(&fx, 1);
    let other = fx
        .opts
        .clone()
        .with_key_store(std::sync::Arc::new(FileKeyStore::new(
            fx.tmp.path().join("other-keys"),
        )));
    match Ledger::open(&fx.repo, other) {
        Err(Error::KeyMismatch { .. }) => {}
        other => panic!("expected KeyMismatch, got {other:?}"),
    }
}

#[test]
fn threads_share_fsyncs_without_forking() {
    let fx = Fixture::new();
    let l = fx.ledger();
    std::thread::scope(|s| {
        for t in 0..4 {
            let l = l.clone();
            s.spawn(move || {
                for i in 0..25 {
                    l.append(Event::Rejected {
                        record_id: uuid::Uuid::now_v7(),
                        reason: format!("t{t} i{i}"),
                    })
                    .unwrap();
                }
            });
        }
    });
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    assert_eq!(messages(&check), "");
    assert_eq!(check.records, 101);
}

/// Child half of `two_processes_never_fork_the_chain`: does nothing unless asked.
#[test]
fn child_writer() {
    let (Ok(repo), Ok(dir), Ok(keys)) = (
        std::env::var("CAIRN_TEST_CHILD_REPO"),
        std::env::var("CAIRN_TEST_CHILD_LEDGER"),
        std::env::var("CAIRN_TEST_CHILD_KEYS"),
    ) else {
        return;
    };
    let opts = LedgerOptions::default()
        .with_dir(dir)
        .with_key_store(std::sync::Arc::new(FileKeyStore::new(keys)));
    let l = Ledger::open(std::path::Path::new(&repo), opts).unwrap();
    for i in 0..100 {
        l.append(Event::Rejected {
            record_id: uuid::Uuid::now_v7(),
            reason: format!("pid {} #{i}", std::process::id()),
        })
        .unwrap();
    }
}

#[test]
fn two_processes_never_fork_the_chain() {
    let fx = Fixture::new();
    drop(fx.ledger()); // create the header and key first
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_writer", "--test-threads=1"])
                .env("CAIRN_TEST_CHILD_REPO", &fx.repo)
                .env("CAIRN_TEST_CHILD_LEDGER", fx.opts.dir.as_ref().unwrap())
                .env("CAIRN_TEST_CHILD_KEYS", fx.tmp.path().join("keys"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let check = verify_ledger_file(&fx.ledger_file(), None).unwrap();
    assert_eq!(messages(&check), "");
    assert_eq!(check.records, 201);
}
