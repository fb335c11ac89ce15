//! SHA-256 helpers, line hashes and the RFC 6962 Merkle tree hash used for checkpoints.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Hash of one source line for matching: SHA-256 of the line with surrounding
/// whitespace removed (so re-indentation and CRLF do not break attribution),
/// truncated to 16 hex digits (64 bits). Documented in SCHEMA.md.
pub fn line_hash(line: &str) -> String {
    let d = Sha256::digest(line.trim().as_bytes());
    hex::encode(&d[..8])
}

/// Line hashes of a text, one per line (`\n` separated; a final newline does not
/// start another line).
pub fn line_hashes(text: &str) -> Vec<String> {
    split_lines(text).map(line_hash).collect()
}

/// Lines of a text; a trailing newline does not produce an empty last line.
pub fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    t.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(move |_| !empty)
}

/// Whether a line carries too little to be matched on its own (`}`, `)`, blank).
pub fn is_trivial_line(line: &str) -> bool {
    line.chars().filter(|c| !c.is_whitespace()).count() <= 2
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub fn merkle_leaf(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 Merkle tree hash over leaf hashes.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let l = merkle_root(&leaves[..k]);
            let r = merkle_root(&leaves[k..]);
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(l);
            h.update(r);
            h.finalize().into()
        }
    }
}

fn merkle_node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// An RFC 6962 tree kept as the roots of its perfect subtrees, largest first (a compact
/// range): a leaf is added in O(log n) and the root costs O(log n), so a ledger's
/// checkpoint follows its appends without hashing the whole ledger again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MerkleFrontier {
    /// Leaves so far.
    pub size: u64,
    /// (leaves under it, hex root) of each perfect subtree, left to right.
    subtrees: Vec<(u64, String)>,
}

impl MerkleFrontier {
    pub fn push(&mut self, leaf: [u8; 32]) {
        let mut node = (1u64, leaf);
        while let Some((size, left)) = self.subtrees.last() {
            if *size != node.0 {
                break;
            }
            let left = unhex(left);
            self.subtrees.pop();
            node = (node.0 * 2, merkle_node(&left, &node.1));
        }
        self.subtrees.push((node.0, hex::encode(node.1)));
        self.size += 1;
    }

    /// The tree's root (the empty tree's is SHA-256 of nothing).
    pub fn root(&self) -> [u8; 32] {
        let mut it = self.subtrees.iter().rev();
        let Some((_, last)) = it.next() else {
            return sha256(b"");
        };
        it.fold(unhex(last), |acc, (_, left)| {
            merkle_node(&unhex(left), &acc)
        })
    }

    /// Whether the subtrees add up to `size` as a compact range must (a frontier read
    /// back from disk is checked before it is trusted).
    pub fn is_consistent(&self) -> bool {
        let mut rest = self.size;
        for (n, h) in &self.subtrees {
            if !n.is_power_of_two() || *n > rest || h.len() != 64 || hex::decode(h).is_err() {
                return false;
            }
            rest -= n;
        }
        rest == 0 && self.subtrees.windows(2).all(|w| w[0].0 > w[1].0)
    }
}

fn unhex(h: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(b) = hex::decode(h) {
        if b.len() == 32 {
            out.copy_from_slice(&b);
        }
    }
    out
}

/// RFC 6962 roots of the prefixes of `leaves` of each size in `sizes` (sizes past the
/// end are left out), in one pass over a [`MerkleFrontier`].
pub fn merkle_roots_at(
    leaves: &[[u8; 32]],
    sizes: &std::collections::BTreeSet<u64>,
) -> std::collections::HashMap<u64, [u8; 32]> {
    let mut out = std::collections::HashMap::new();
    if sizes.contains(&0) {
        out.insert(0, sha256(b""));
    }
    let Some(&last) = sizes.iter().next_back() else {
        return out;
    };
    let mut frontier = MerkleFrontier::default();
    for leaf in leaves.iter().take(last as usize) {
        frontier.push(*leaf);
        if sizes.contains(&frontier.size) {
            out.insert(frontier.size, frontier.root());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_roots_match_the_recursive_definition() {
        let leaves: Vec<_> = (0..40u8).map(|i| merkle_leaf(&[i])).collect();
        let sizes: std::collections::BTreeSet<u64> = (0..=45).collect();
        let roots = merkle_roots_at(&leaves, &sizes);
        for n in 0..=40u64 {
            assert_eq!(roots[&n], merkle_root(&leaves[..n as usize]), "size {n}");
        }
        assert!(!roots.contains_key(&41));
    }

    #[test]
    fn the_frontier_follows_appends_and_survives_a_round_trip() {
        let leaves: Vec<_> = (0..70u8).map(|i| merkle_leaf(&[i])).collect();
        let mut f = MerkleFrontier::default();
        assert_eq!(f.root(), merkle_root(&[]));
        for (i, l) in leaves.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.root(), merkle_root(&leaves[..=i]), "size {}", i + 1);
            assert!(f.is_consistent());
            let back: MerkleFrontier =
                serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
            assert_eq!(back, f);
        }
        let mut bad = f.clone();
        bad.size += 1;
        assert!(!bad.is_consistent(), "a size the subtrees do not add up to");
    }

    #[test]
    fn merkle_matches_rfc6962_shape() {
        assert_eq!(
            hex::encode(merkle_root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let leaves: Vec<_> = (0..3u8).map(|i| merkle_leaf(&[i])).collect();
        let mut h = Sha256::new();
        h.update([1u8]);
        let mut ab = Sha256::new();
        ab.update([1u8]);
        ab.update(leaves[0]);
        ab.update(leaves[1]);
        h.update(ab.finalize());
        h.update(leaves[2]);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(merkle_root(&leaves), want);
    }

    #[test]
    fn lines_and_hashes() {
        assert_eq!(split_lines("a\nb\n").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(split_lines("a\r\nb").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(split_lines("").count(), 0);
        assert_eq!(line_hash("  x = 1;\t"), line_hash("x = 1;"));
        assert!(is_trivial_line("  });"[..4].trim_end()));
        assert!(!is_trivial_line("let x"));
    }
}
