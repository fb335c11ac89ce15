//! The repository's trusted signers: `.cairn/allowed_signers`, in the format git uses
//! for SSH signing (`gpg.ssh.allowedSignersFile`, see ssh-keygen(1) "ALLOWED SIGNERS"):
//! one `principals [options] ssh-ed25519 <base64> [comment]` per line, `#` comments.
//! A device's key is listed with the line `cairn verify` prints for it.

use crate::keys::{key_id, parse_ssh_ed25519};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the allowed-signers file lives, relative to the repository root.
pub const ALLOWED_SIGNERS_FILE: &str = ".cairn/allowed_signers";

/// The parsed file: key id → principals, and a warning per line that did not read.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    pub path: PathBuf,
    by_keyid: HashMap<String, String>,
    /// `path:line: what is wrong` for each line ignored.
    pub warnings: Vec<String>,
}

impl AllowedSigners {
    /// The file of the repository at `repo`, if it has one.
    pub fn load(repo: &Path) -> Option<AllowedSigners> {
        let path = repo.join(ALLOWED_SIGNERS_FILE);
        let text = std::fs::read_to_string(&path).ok()?;
        Some(Self::parse(&text, &path))
    }

    pub fn parse(text: &str, path: &Path) -> AllowedSigners {
        let mut out = AllowedSigners {
            path: path.to_path_buf(),
            ..Default::default()
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let warn = |m: String| format!("{}:{}: {m}; line ignored", path.display(), i + 1);
            let tokens = tokenize(line);
            let Some(kt) = tokens
                .iter()
                .skip(1)
                .position(|t| is_key_type(t))
                .map(|p| p + 1)
            else {
                out.warnings.push(warn(
                    "no key type (expected `principals [options] ssh-ed25519 <base64 key>`)".into(),
                ));
                continue;
            };
            if tokens[kt] != "ssh-ed25519" {
                out.warnings.push(warn(format!(
                    "key type {} is not supported (Cairn's keys are ssh-ed25519)",
                    tokens[kt]
                )));
                continue;
            }
            let Some(blob) = tokens.get(kt + 1) else {
                out.warnings
                    .push(warn("the key is missing after ssh-ed25519".into()));
                continue;
            };
            match parse_ssh_ed25519(blob) {
                Ok(k) => {
                    out.by_keyid.insert(key_id(&k), tokens[0].clone());
                }
                Err(e) => out
                    .warnings
                    .push(warn(format!("malformed ssh-ed25519 key: {e}"))),
            }
        }
        out
    }

    /// The principals a key id is listed under, if it is.
    pub fn principal(&self, keyid: &str) -> Option<&str> {
        self.by_keyid.get(keyid).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_keyid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_keyid.is_empty()
    }
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-")
}

/// Whitespace-separated tokens, with double-quoted runs (`namespaces="a b"`) kept whole.
fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ssh_public_key;

    #[test]
    fn reads_git_style_lines_and_names_bad_ones() {
        let a = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let b = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
        let text = format!(
            "# team\n\
             dev@example.com {}\n\
             ci@example.com,bot@example.com namespaces=\"git,cairn\" {} laptop\n\
             bad@example.com ssh-ed25519 AAAAnotakey\n\
             rsa@example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB\n\
             nokey@example.com\n",
            ssh_public_key(&a),
            ssh_public_key(&b)
        );
        let s = AllowedSigners::parse(&text, Path::new("repo/.cairn/allowed_signers"));
        assert_eq!(s.principal(&key_id(&a)), Some("dev@example.com"));
        assert_eq!(
            s.principal(&key_id(&b)),
            Some("ci@example.com,bot@example.com")
        );
        assert_eq!(s.len(), 2);
        expect_test::expect![[r#"
            repo/.cairn/allowed_signers:4: malformed ssh-ed25519 key: the key is not base64: Invalid padding; line ignored
            repo/.cairn/allowed_signers:5: key type ssh-rsa is not supported (Cairn's keys are ssh-ed25519); line ignored
            repo/.cairn/allowed_signers:6: no key type (expected `principals [options] ssh-ed25519 <base64 key>`); line ignored
        "#]]
        .assert_eq(&(s.warnings.join("\n") + "\n"));
    }
}
