//! Reading a ledger file back to check it: Merkle checkpoints over its lines, a torn tail
//! moved aside, and `verify_ledger_file` (header, chain, signatures, sequence).

use super::*;

/// Merkle checkpoint over the first `size` lines (all when `None`) of a ledger file.
pub fn checkpoint_of(path: &Path, size: Option<u64>) -> Result<(u64, String)> {
    let bytes = std::fs::read(path).at(path)?;
    let mut leaves: Vec<[u8; 32]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(merkle_leaf)
        .collect();
    if let Some(n) = size {
        if n as usize > leaves.len() {
            return Err(Error::Invalid(format!(
                "checkpoint covers {n} records but the ledger {} holds {}",
                path.display(),
                leaves.len()
            )));
        }
        leaves.truncate(n as usize);
    }
    Ok((leaves.len() as u64, hex::encode(merkle_root(&leaves))))
}

/// Move a torn (never acknowledged) last line aside into `ledger.jsonl.torn-<time>`,
/// so the ledger can be appended to again. Returns the file the bytes went to, if any.
/// This is an explicit user action (`cairn verify --quarantine-torn-tail`), never automatic.
pub fn quarantine_torn_tail(path: &Path) -> Result<Option<PathBuf>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)?;
    lock(&file, path)?;
    let res = (|| -> Result<Option<PathBuf>> {
        let bytes = std::fs::read(path).at(path)?;
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(None);
        }
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let side = path.with_extension(format!(
            "jsonl.torn-{}",
            time::OffsetDateTime::now_utc().unix_timestamp()
        ));
        let mut f = File::create(&side).at(&side)?;
        f.write_all(&bytes[keep..]).at(&side)?;
        f.sync_all().at(&side)?;
        file.set_len(keep as u64).at(path)?;
        file.sync_all().at(path)?;
        Ok(Some(side))
    })();
    unlock(&file, path)?;
    res
}

/// One problem found by verification, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// Where: `ledger line N`, `note on <commit>` …
    pub place: String,
    pub record: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.place)?;
        if let Some(r) = &self.record {
            write!(f, " (record {r})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Result of checking a ledger file.
#[derive(Debug, Clone, Default)]
pub struct LedgerCheck {
    pub records: u64,
    pub ledger_id: Option<String>,
    pub public_key: Option<VerifyingKey>,
    pub signatures_checked: u64,
    /// SHA-256 of each good line, by line index (for cross-checking notes).
    pub digests: Vec<String>,
    pub failures: Vec<Failure>,
}

struct Parsed {
    seq: Option<u64>,
    prev: Option<String>,
    record: Option<String>,
    is_header: bool,
    header_key: Option<String>,
    ledger_id: Option<String>,
    signed: Option<crate::dsse::SignedParts>,
    /// SHA-256 of the line's bytes.
    digest: String,
    error: Option<String>,
}

fn parse_for_verify(line: &[u8]) -> Parsed {
    let mut p = Parsed {
        seq: None,
        prev: None,
        record: None,
        is_header: false,
        header_key: None,
        ledger_id: None,
        signed: None,
        digest: sha256_hex(line),
        error: None,
    };
    let env: Envelope = match serde_json::from_slice(line) {
        Ok(e) => e,
        Err(e) => {
            p.error = Some(format!("not a DSSE envelope: {e}"));
            return p;
        }
    };
    let signed = match env.signed_parts() {
        Ok(s) => s,
        Err(e) => {
            p.error = Some(e.to_string());
            return p;
        }
    };
    let (predicate_type, rec) = match record_of_payload(signed.payload()) {
        Ok(r) => r,
        Err(e) => {
            p.error = Some(format!("payload is not an in-toto statement: {e}"));
            return p;
        }
    };
    p.seq = rec.seq;
    p.prev = rec.prev;
    p.record = rec.record_id;
    p.ledger_id = rec.ledger_id;
    p.is_header = predicate_type == PREDICATE_LEDGER_HEADER;
    if p.is_header {
        p.header_key = rec.public_key;
    }
    if env.to_line() != line {
        p.error = Some("envelope is not in canonical form (the line was edited)".into());
        return p;
    }
    p.signed = Some(signed);
    p
}

/// Verify a ledger file: every signature (against the header's key, or `expected_key`),
/// the chain (`seq` without gaps, `prev` digests), canonical form, and the tail.
pub fn verify_ledger_file(path: &Path, expected_key: Option<&VerifyingKey>) -> Result<LedgerCheck> {
    let bytes = std::fs::read(path).at(path)?;
    let mut check = LedgerCheck::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
    if let Some(last) = lines.last() {
        if last.is_empty() {
            lines.pop();
        }
    }
    let torn_line = if torn { lines.pop() } else { None };

    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = lines.len().div_ceil(threads).max(1);
    let parsed: Vec<Parsed> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|l| parse_for_verify(l)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("verify worker panicked"))
            .collect()
    });

    // Trust anchor: the header's published key (or the one the caller expects).
    let header_key = parsed
        .first()
        .filter(|p| p.is_header)
        .and_then(|p| p.header_key.as_deref())
        .and_then(|k| keys::parse_public_key(k).ok());
    if parsed.first().is_some_and(|p| !p.is_header) || (header_key.is_none() && !parsed.is_empty())
    {
        check.failures.push(Failure {
            place: "ledger line 1".into(),
            record: None,
            message: "missing or unreadable ledger header".into(),
        });
    }
    let key = expected_key.copied().or(header_key);
    if let (Some(exp), Some(h)) = (expected_key, header_key) {
        if exp != &h {
            check.failures.push(Failure {
                place: "ledger line 1".into(),
                record: None,
                message: format!(
                    "ledger header key {} is not the expected key {}",
                    &key_id(&h)[..16],
                    &key_id(exp)[..16]
                ),
            });
        }
    }
    check.public_key = key;
    check.ledger_id = parsed.first().and_then(|p| p.ledger_id.clone());

    // Signatures: batch-verify per chunk, falling back to single checks to name culprits.
    let mut bad_sig = vec![false; parsed.len()];
    if let Some(key) = key {
        let kid = key_id(&key);
        let idx: Vec<usize> = (0..parsed.len())
            .filter(|&i| parsed[i].signed.is_some())
            .collect();
        let results: Vec<Vec<usize>> = std::thread::scope(|s| {
            idx.chunks(idx.len().div_ceil(threads).max(1))
                .map(|c| {
                    let parsed = &parsed;
                    let kid = &kid;
                    s.spawn(move || {
                        let mut bad = Vec::new();
                        for sub in c.chunks(256) {
                            let signed = |i: usize| parsed[i].signed.as_ref().expect("filtered");
                            let msgs: Vec<&[u8]> =
                                sub.iter().map(|&i| signed(i).message.as_slice()).collect();
                            let sigs: Vec<Signature> = sub.iter().map(|&i| signed(i).sig).collect();
                            let keys = vec![key; sub.len()];
                            let ids_ok = sub.iter().all(|&i| &signed(i).keyid == kid);
                            if ids_ok && ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
                                continue;
                            }
                            for &i in sub {
                                let s = signed(i);
                                if &s.keyid != kid || key.verify_strict(&s.message, &s.sig).is_err()
                                {
                                    bad.push(i);
                                }
                            }
                        }
                        bad
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().expect("verify worker panicked"))
                .collect()
        });
        for i in results.into_iter().flatten() {
            bad_sig[i] = true;
        }
        check.signatures_checked = idx.len() as u64;
    }

    let mut prev_digest: Option<String> = None;
    for (i, p) in parsed.iter().enumerate() {
        let place = format!("ledger line {}", i + 1);
        let digest = p.digest.clone();
        let fail = |check: &mut LedgerCheck, message: String| {
            check.failures.push(Failure {
                place: place.clone(),
                record: p.record.clone(),
                message,
            })
        };
        if let Some(e) = &p.error {
            fail(&mut check, e.clone());
        } else if bad_sig[i] {
            fail(
                &mut check,
                "signature does not verify with the ledger key (forged or altered record)".into(),
            );
        }
        if p.error.is_none() {
            if p.seq != Some(i as u64) {
                fail(
                    &mut check,
                    format!(
                        "seq is {} where {i} was expected (a record was deleted, inserted or reordered)",
                        p.seq.map_or("missing".into(), |s| s.to_string())
                    ),
                );
            }
            if i > 0 && p.prev.as_deref() != prev_digest.as_deref() {
                fail(
                    &mut check,
                    format!(
                        "previous-record digest does not match line {} (the chain is broken there)",
                        i
                    ),
                );
            }
            if i > 0 && p.is_header {
                fail(
                    &mut check,
                    "a second ledger header inside the ledger".into(),
                );
            }
            if i > 0 && p.ledger_id != check.ledger_id {
                fail(&mut check, "record belongs to another ledger".into());
            }
        }
        check.digests.push(digest.clone());
        prev_digest = Some(digest);
    }
    check.records = parsed.len() as u64;
    if let Some(t) = torn_line {
        check.failures.push(Failure {
            place: format!("ledger line {}", parsed.len() + 1),
            record: None,
            message: format!(
                "torn last line ({} bytes without a newline): an append that never completed; \
                 `cairn verify --quarantine-torn-tail` moves it aside",
                t.len()
            ),
        });
    }
    Ok(check)
}
