//! Licences as SPDX expressions: from a package's manifest when it declares one, else from
//! its licence files through askalono's SPDX store, else "unknown" — never a guess.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The answer when nothing determines a licence.
pub const UNKNOWN: &str = "unknown";

/// Where a package's licence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LicenceSource {
    /// The manifest's own field (Cargo.toml `license`, package.json `license`, METADATA
    /// `License-Expression`, an unambiguous trove classifier).
    Manifest,
    /// Every licence file of the package identified by askalono with high confidence.
    LicenceFile,
    /// Not determined.
    Unknown,
}

/// Askalono's score at or above which a licence file is taken as identified (askalono's
/// own default confidence threshold).
pub const CONFIDENCE: f32 = 0.9;

/// Normalises a declared licence to an SPDX expression, or `None` when it is not one.
/// Cargo's legacy `MIT/Apache-2.0` becomes `MIT OR Apache-2.0`.
pub fn spdx_expression(declared: &str) -> Option<String> {
    let s = declared.trim();
    if s.is_empty() || s.len() > 200 {
        return None;
    }
    let s = if s.contains('/') && !s.contains(' ') {
        s.split('/').collect::<Vec<_>>().join(" OR ")
    } else {
        s.to_string()
    };
    let spaced = s.replace('(', " ( ").replace(')', " ) ");
    let mut expect_id = true;
    let mut depth = 0i32;
    let mut ids = 0;
    for tok in spaced.split_whitespace() {
        match tok {
            "(" if expect_id => depth += 1,
            ")" if !expect_id => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            "AND" | "OR" | "WITH" | "and" | "or" if !expect_id => expect_id = true,
            _ if expect_id && is_spdx_id(tok) => {
                expect_id = false;
                ids += 1;
            }
            _ => return None,
        }
    }
    if expect_id || depth != 0 || ids == 0 {
        return None;
    }
    // npm's `UNLICENSED` (proprietary, no permission) and words like "none" are not
    // SPDX identifiers.
    let upper = s.to_ascii_uppercase();
    if [
        "UNLICENSED",
        "NONE",
        "PROPRIETARY",
        "SEE LICENSE",
        "CUSTOM",
        "OTHER",
        "UNKNOWN",
    ]
    .iter()
    .any(|w| upper == *w)
    {
        return None;
    }
    Some(
        spaced
            .split_whitespace()
            .map(|t| match t {
                "and" => "AND",
                "or" => "OR",
                t => t,
            })
            .collect::<Vec<_>>()
            .join(" ")
            .replace("( ", "(")
            .replace(" )", ")"),
    )
}

/// An SPDX short identifier (or `LicenseRef-…`): letters, digits, `.`, `-`, `+`, and at
/// least one letter; a word like "BSD" alone is ambiguous and refused.
fn is_spdx_id(tok: &str) -> bool {
    const AMBIGUOUS: &[&str] = &[
        "BSD", "GPL", "LGPL", "AGPL", "Apache", "MPL", "Public", "Dual",
    ];
    !tok.is_empty()
        && tok
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
        && tok.chars().any(|c| c.is_ascii_alphabetic())
        && !AMBIGUOUS.contains(&tok)
}

/// Trove classifiers that name exactly one SPDX licence. "BSD License" and "Apache
/// Software License" name no version and are left to the licence files.
pub fn classifier_licence(classifier: &str) -> Option<&'static str> {
    let c = classifier.trim();
    let tail = c.strip_prefix("License :: ")?;
    Some(match tail {
        "OSI Approved :: MIT License" => "MIT",
        "OSI Approved :: MIT No Attribution License (MIT-0)" => "MIT-0",
        "OSI Approved :: ISC License (ISCL)" => "ISC",
        "OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)" => "MPL-2.0",
        "OSI Approved :: The Unlicense (Unlicense)" => "Unlicense",
        "OSI Approved :: zlib/libpng License" => "Zlib",
        "OSI Approved :: Python Software Foundation License" => "PSF-2.0",
        "OSI Approved :: GNU General Public License v2 (GPLv2)" => "GPL-2.0-only",
        "OSI Approved :: GNU General Public License v2 or later (GPLv2+)" => "GPL-2.0-or-later",
        "OSI Approved :: GNU General Public License v3 (GPLv3)" => "GPL-3.0-only",
        "OSI Approved :: GNU General Public License v3 or later (GPLv3+)" => "GPL-3.0-or-later",
        "OSI Approved :: GNU Affero General Public License v3" => "AGPL-3.0-only",
        "OSI Approved :: Boost Software License 1.0 (BSL-1.0)" => "BSL-1.0",
        "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication" => "CC0-1.0",
        _ => return None,
    })
}

/// Whether a file name looks like a licence file.
pub fn is_licence_file_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["LICENSE", "LICENCE", "COPYING", "UNLICENSE", "COPYRIGHT"]
        .iter()
        .any(|p| n.starts_with(p))
        && !n.ends_with(".RS")
        && !n.ends_with(".PY")
        && !n.ends_with(".JS")
        && !n.ends_with(".GO")
}

/// Licence files directly inside `dir` (sorted).
pub fn licence_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter(|e| is_licence_file_name(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Askalono's SPDX store, loaded once, from the first cache file found: an explicit path
/// (`CAIRN_LICENCE_STORE`), then askalono-cli's own embedded cache in the cargo registry
/// (`scripts/setup.sh` fetches that crate). Without one, licence files are "unknown".
pub struct LicenceDetector {
    explicit: Option<PathBuf>,
    store: OnceLock<Option<askalono::Store>>,
}

impl Default for LicenceDetector {
    fn default() -> Self {
        Self::new(std::env::var_os("CAIRN_LICENCE_STORE").map(PathBuf::from))
    }
}

impl LicenceDetector {
    pub fn new(explicit: Option<PathBuf>) -> Self {
        LicenceDetector {
            explicit,
            store: OnceLock::new(),
        }
    }

    /// Where the store is loaded from, if anywhere.
    pub fn store_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.explicit {
            return p.is_file().then(|| p.clone());
        }
        let mut found: Vec<PathBuf> = Vec::new();
        for home in cargo_homes() {
            let Ok(rd) = std::fs::read_dir(home.join("registry").join("src")) else {
                continue;
            };
            for reg in rd.filter_map(|e| e.ok()) {
                let Ok(pk) = std::fs::read_dir(reg.path()) else {
                    continue;
                };
                for p in pk.filter_map(|e| e.ok()) {
                    if p.file_name().to_string_lossy().starts_with("askalono-cli-") {
                        let f = p.path().join("embedded-cache.bin.zstd");
                        if f.is_file() {
                            found.push(f);
                        }
                    }
                }
            }
        }
        found.sort();
        found.pop()
    }

    fn store(&self) -> Option<&askalono::Store> {
        self.store
            .get_or_init(|| {
                let path = self.store_path()?;
                let file = std::fs::File::open(&path).ok()?;
                match askalono::Store::from_cache(std::io::BufReader::new(file)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "licence store unreadable: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Whether a store is available (loads it).
    pub fn available(&self) -> bool {
        self.store().is_some()
    }

    /// The SPDX id of one licence text, when askalono is confident.
    pub fn identify_text(&self, text: &str) -> Option<String> {
        let store = self.store()?;
        let m = store.analyze(&askalono::TextData::new(text));
        (m.score >= CONFIDENCE).then(|| m.name.to_string())
    }

    /// The licence of a set of licence files: every file identified, their distinct ids
    /// joined with AND (all of them apply as far as the files say); `None` when any file
    /// is unreadable, too large, or not identified.
    pub fn identify_files(&self, files: &[PathBuf]) -> Option<String> {
        if files.is_empty() {
            return None;
        }
        let mut ids: Vec<String> = Vec::new();
        for f in files {
            let meta = std::fs::metadata(f).ok()?;
            if meta.len() > 512 * 1024 {
                return None;
            }
            let bytes = std::fs::read(f).ok()?;
            let text = String::from_utf8_lossy(&bytes);
            let id = self.identify_text(&text)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.sort();
        Some(ids.join(" AND "))
    }
}

/// `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_homes() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        v.push(PathBuf::from(h));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cargo");
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_licences_become_spdx_or_nothing() {
        assert_eq!(spdx_expression("MIT").as_deref(), Some("MIT"));
        assert_eq!(
            spdx_expression("MIT/Apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            spdx_expression("(MIT or Apache-2.0) AND BSD-3-Clause").as_deref(),
            Some("(MIT OR Apache-2.0) AND BSD-3-Clause")
        );
        assert_eq!(
            spdx_expression("Apache-2.0 WITH LLVM-exception").as_deref(),
            Some("Apache-2.0 WITH LLVM-exception")
        );
        for bad in [
            "",
            "BSD",
            "SEE LICENSE IN LICENSE.md",
            "UNLICENSED",
            "MIT AND",
            "(MIT",
            "Apache 2.0",
            "Copyright (c) 2020 Someone. All rights reserved.",
        ] {
            assert_eq!(spdx_expression(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_unambiguous_classifiers_count() {
        assert_eq!(
            classifier_licence("License :: OSI Approved :: MIT License"),
            Some("MIT")
        );
        assert_eq!(
            classifier_licence("License :: OSI Approved :: BSD License"),
            None
        );
        assert_eq!(
            classifier_licence("License :: OSI Approved :: Apache Software License"),
            None
        );
    }

    #[test]
    fn licence_file_names() {
        for n in [
            "LICENSE",
            "LICENSE-MIT",
            "license.txt",
            "COPYING",
            "LICENCE.md",
        ] {
            assert!(is_licence_file_name(n), "{n}");
        }
        for n in ["license.rs", "README.md", "src"] {
            assert!(!is_licence_file_name(n), "{n}");
        }
    }
}
