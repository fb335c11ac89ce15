//! Winnowing (Schleimer, Wilkerson, Aiken 2003, as MOSS uses it): hashes of every k-gram
//! of normalised tokens; per window of `w` consecutive k-gram hashes the minimum is kept
//! (the rightmost on ties). Any shared run of at least `w + k - 1` tokens then shares
//! at least one kept fingerprint.
//!
//! Beside the minima, the k-gram that ends at each long string literal is kept too (an
//! anchor): near-duplicate files (a package's generated shims, locale tables) often differ
//! only in a literal, and winnowing alone may keep no fingerprint that tells them apart.

use crate::tokens::{Kind, Token};

/// Fingerprinting parameters; an index built with other parameters is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FingerprintParams {
    /// Tokens per k-gram.
    pub k: usize,
    /// Window of k-grams per kept fingerprint.
    pub w: usize,
    /// Identifiers (not keywords) hashed as one placeholder, so renamed copies match.
    pub normalise_identifiers: bool,
    /// String literals of at least this many bytes anchor a fingerprint (0: none).
    pub literal_anchor_bytes: usize,
}

impl Default for FingerprintParams {
    fn default() -> Self {
        // Guarantee threshold w + k - 1 = 19 tokens (roughly 60–90 characters of code),
        // well under the 150-character report threshold.
        FingerprintParams {
            k: 8,
            w: 12,
            normalise_identifiers: true,
            literal_anchor_bytes: 32,
        }
    }
}

/// One kept fingerprint: the k-gram's hash and the index of its first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: u64,
    pub pos: u32,
}

/// The hash of every k-gram of `tokens` (by their normalised hashes), in order.
pub fn kgram_hashes(tokens: &[Token], k: usize) -> Vec<u64> {
    kgrams(tokens, k, |t| t.norm)
}

/// The same over the verbatim token hashes: equal only where the text is identical
/// (ranks verbatim candidates above renamed look-alikes).
pub fn kgram_hashes_raw(tokens: &[Token], k: usize) -> Vec<u64> {
    kgrams(tokens, k, |t| t.raw)
}

fn kgrams(tokens: &[Token], k: usize, h_of: impl Fn(&Token) -> u64) -> Vec<u64> {
    if k == 0 || tokens.len() < k {
        return Vec::new();
    }
    (0..=tokens.len() - k)
        .map(|i| {
            let mut h: u64 = 0x243f_6a88_85a3_08d3;
            for t in &tokens[i..i + k] {
                h = (h ^ h_of(t))
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .rotate_left(23);
            }
            h
        })
        .collect()
}

/// Winnowing over k-gram hashes: the rightmost minimum of each window of `w`, each
/// position recorded once. Texts shorter than one window keep their single minimum.
pub fn winnow(hashes: &[u64], w: usize) -> Vec<Fingerprint> {
    let mut out: Vec<Fingerprint> = Vec::new();
    if hashes.is_empty() {
        return out;
    }
    let w = w.max(1).min(hashes.len());
    // Monotonic deque of indices whose hashes increase strictly from front to back; the
    // front is the window's rightmost minimum.
    let mut deque: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut last: Option<usize> = None;
    for (i, &h) in hashes.iter().enumerate() {
        while let Some(&j) = deque.back() {
            if hashes[j] >= h {
                deque.pop_back();
            } else {
                break;
            }
        }
        deque.push_back(i);
        if i + 1 >= w {
            let start = i + 1 - w;
            while let Some(&j) = deque.front() {
                if j < start {
                    deque.pop_front();
                } else {
                    break;
                }
            }
            let m = deque[0];
            if last != Some(m) {
                out.push(Fingerprint {
                    hash: hashes[m],
                    pos: m as u32,
                });
                last = Some(m);
            }
        }
    }
    out
}

/// The fingerprints a file keeps: the winnowed minima of its k-gram hashes plus one
/// anchor per long string literal (the k-gram ending at it, or the first k-gram when it
/// stands in the first `k - 1` tokens), in position order, each position once.
pub fn fingerprints(tokens: &[Token], params: &FingerprintParams) -> Vec<Fingerprint> {
    let hashes = kgram_hashes(tokens, params.k);
    let mut out = winnow(&hashes, params.w);
    if params.literal_anchor_bytes == 0 || hashes.is_empty() {
        return out;
    }
    let before = out.len();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind == Kind::Str && (t.end - t.start) as usize >= params.literal_anchor_bytes {
            let pos = (i + 1).saturating_sub(params.k).min(hashes.len() - 1);
            out.push(Fingerprint {
                hash: hashes[pos],
                pos: pos as u32,
            });
        }
    }
    if out.len() > before {
        out.sort_unstable_by_key(|f| f.pos);
        out.dedup_by_key(|f| f.pos);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(hashes: &[u64], w: usize) -> Vec<Fingerprint> {
        let w = w.min(hashes.len());
        let mut out: Vec<Fingerprint> = Vec::new();
        for s in 0..=hashes.len() - w {
            let win = &hashes[s..s + w];
            let min = *win.iter().min().unwrap();
            let m = s + win.iter().rposition(|&h| h == min).unwrap();
            if out.last().map(|f| f.pos as usize) != Some(m) {
                out.push(Fingerprint {
                    hash: min,
                    pos: m as u32,
                });
            }
        }
        out
    }

    #[test]
    fn winnow_matches_the_definition() {
        let mut x: u64 = 7;
        let hashes: Vec<u64> = (0..500)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 58) % 7 // many ties
            })
            .collect();
        for w in [1, 2, 4, 12, 40] {
            assert_eq!(winnow(&hashes, w), naive(&hashes, w), "w={w}");
        }
        assert_eq!(winnow(&hashes[..3], 12), naive(&hashes[..3], 12));
        assert!(winnow(&[], 4).is_empty());
    }

    #[test]
    fn shared_runs_of_the_guarantee_length_share_a_fingerprint() {
        use crate::tokens::{lex, Syntax};
        let p = FingerprintParams::default();
        let a = "fn one(a: u32) -> u32 { let b = a * 2; if b > 10 { return b - 3; } b + 7 }";
        let b = format!("struct X; impl X {{ {a} }} fn tail() {{}}");
        let fa = winnow(&kgram_hashes(&lex(a, Syntax::Rust, true), p.k), p.w);
        let fb = winnow(&kgram_hashes(&lex(&b, Syntax::Rust, true), p.k), p.w);
        assert!(fa.iter().any(|x| fb.iter().any(|y| x.hash == y.hash)));
    }

    #[test]
    fn a_long_literal_anchors_the_kgram_that_ends_at_it() {
        use crate::tokens::{lex, Syntax};
        let p = FingerprintParams::default();
        // Two files that differ only in one literal: the anchored k-gram tells them apart
        // whatever the minima are.
        let file = |name: &str| {
            format!(
                "function warn() {{ if (!warn.done) {{ warn.done = true; console.log('use \"lib/{name}\" instead of \"lib/{name}.js\"'); }} }} warn(); module.exports = require('./{name}.js');"
            )
        };
        for (a, b) in [("rsl", "abnf"), ("x", "y"), ("lisp", "less")] {
            let ta = lex(&file(a), Syntax::Slash, true);
            let tb = lex(&file(b), Syntax::Slash, true);
            let fa = fingerprints(&ta, &p);
            let fb = fingerprints(&tb, &p);
            let lit = ta.iter().position(|t| t.kind == Kind::Str).unwrap();
            let anchor = fa.iter().find(|f| f.pos as usize == lit + 1 - p.k).unwrap();
            assert!(!fb.iter().any(|f| f.hash == anchor.hash), "{a} vs {b}");
            // Still the minima, each position once, in order.
            let h = kgram_hashes(&ta, p.k);
            for m in winnow(&h, p.w) {
                assert!(fa.contains(&m));
            }
            assert!(fa.windows(2).all(|w| w[0].pos < w[1].pos));
        }
        let off = FingerprintParams {
            literal_anchor_bytes: 0,
            ..p
        };
        let t = lex(&file("rsl"), Syntax::Slash, true);
        assert_eq!(fingerprints(&t, &off), winnow(&kgram_hashes(&t, p.k), p.w));
    }
}
