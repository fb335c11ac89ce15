//! The reference tracker on real directories: a repository with node_modules,
//! a virtual environment, vendored code and a Cargo.lock, including bad input; and a
//! few real crates from this machine's cargo registry.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use cairn_references::{
    DiscoverOptions, Ecosystem, LicenceDetector, LicenceSource, ReferenceConfig, ReferenceIndex,
    Syntax, WarningKind,
};

const MIT_TEXT: &str = "MIT License

Copyright (c) 2019 Example Person

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the \"Software\"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
";

const LEFTPAD_JS: &str = r#"'use strict';
// Pads a string on the left to a given length.
module.exports = function leftPad(str, len, ch) {
  str = String(str);
  var i = -1;
  if (!ch && ch !== 0) ch = ' ';
  len = len - str.length;
  while (++i < len) {
    str = ch + str;
  }
  return str;
};

function rightTrimLines(text, keepEmpty) {
  var lines = text.split('\n');
  var out = [];
  for (var j = 0; j < lines.length; j++) {
    var line = lines[j].replace(/\s+$/, '');
    if (line.length > 0 || keepEmpty) {
      out.push(line);
    }
  }
  return out.join('\n');
}
"#;

const PY_MOD: &str = r#"import math


def haversine_distance(lat1, lon1, lat2, lon2, radius=6371.0):
    """Great-circle distance between two points on a sphere."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = math.radians(lat2 - lat1)
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A repository with every kind of dependency and some bad input.
fn fixture(root: &Path) {
    // npm: a normal package, a scoped one whose licence is only in its LICENSE file, a
    // nested one, a package.json that does not parse, a symlink loop and a 100 MB
    // generated file.
    let nm = root.join("node_modules");
    write(
        &nm.join("left-pad/package.json"),
        r#"{"name": "left-pad", "version": "1.3.0", "license": "WTFPL"}"#,
    );
    write(&nm.join("left-pad/index.js"), LEFTPAD_JS);
    write(
        &nm.join("@scope/tool/package.json"),
        r#"{"name": "@scope/tool", "version": "2.0.0", "license": "SEE LICENSE IN LICENSE"}"#,
    );
    write(&nm.join("@scope/tool/LICENSE"), MIT_TEXT);
    write(&nm.join("@scope/tool/lib/a.js"), "export const a = 1;\n");
    write(
        &nm.join("@scope/tool/node_modules/inner/package.json"),
        r#"{"name": "inner", "version": "0.1.0", "licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}"#,
    );
    write(
        &nm.join("@scope/tool/node_modules/inner/i.js"),
        "var x = 2;\n",
    );
    write(&nm.join("broken/package.json"), "{ this is not json");
    write(
        &nm.join("odd-licence/package.json"),
        r#"{"name": "odd-licence", "version": "1.0.0"}"#,
    );
    write(
        &nm.join("odd-licence/LICENSE"),
        "You may do what you like with this, except on Tuesdays.\n",
    );
    std::os::unix::fs::symlink(&nm, nm.join("left-pad/loop")).unwrap();
    let big = std::fs::File::create(nm.join("left-pad/generated.js")).unwrap();
    big.set_len(100 * 1024 * 1024).unwrap();

    // Python: a venv with one dist-info package (files from RECORD).
    let sp = root.join(".venv/lib/python3.11/site-packages");
    write(&root.join(".venv/pyvenv.cfg"), "home = /usr/bin\n");
    write(
        &sp.join("geodist-0.4.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: geodist\nVersion: 0.4\nLicense: BSD\nClassifier: License :: OSI Approved :: MIT License\n\nLong description.\n",
    );
    write(
        &sp.join("geodist-0.4.dist-info/RECORD"),
        "geodist/__init__.py,sha256=x,10\ngeodist-0.4.dist-info/METADATA,,\n../../../bin/geodist,,\n",
    );
    write(&sp.join("geodist/__init__.py"), PY_MOD);
    write(
        &sp.join("nolicence-1.0.dist-info/METADATA"),
        "Name: nolicence\nVersion: 1.0\nLicense: Copyright ACME, all rights reserved\n",
    );

    // Vendored: a directory with no manifest.
    write(
        &root.join("third_party/minilib/m.c"),
        "int m(void) { return 1; }\n",
    );

    // Cargo.lock naming a crate of a fake cargo home, one that is missing, and the
    // workspace's own crate (no source).
    write(
        &root.join("Cargo.lock"),
        r#"version = 4

[[package]]
name = "app"
version = "0.1.0"

[[package]]
name = "tinycrate"
version = "0.2.1"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "gone"
version = "9.9.9"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#,
    );
}

fn cargo_home(root: &Path) -> PathBuf {
    let home = root.join("cargo-home");
    let c = home.join("registry/src/index.example-0000/tinycrate-0.2.1");
    write(
        &c.join("Cargo.toml"),
        "[package]\nname = \"tinycrate\"\nversion = \"0.2.1\"\nlicense = \"MIT/Apache-2.0\"\n",
    );
    write(&c.join("src/lib.rs"), "pub fn tiny() -> u8 { 7 }\n");
    home
}

fn config(home: PathBuf) -> ReferenceConfig {
    ReferenceConfig {
        threads: 2,
        discover: DiscoverOptions {
            cargo_homes: Some(vec![home]),
            ..DiscoverOptions::default()
        },
        ..ReferenceConfig::default()
    }
}

fn no_progress(_: cairn_references::Progress) {}

#[test]
fn discovers_every_kind_of_dependency_and_counts_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    fixture(&root);
    let home = cargo_home(tmp.path());
    let data = tmp.path().join("data");
    let cfg = config(home);
    let cancel = AtomicBool::new(false);
    let (idx, report) =
        ReferenceIndex::open_or_build(&root, &data, &cfg, &no_progress, &cancel).unwrap();
    let detector = LicenceDetector::default();
    let with_store = detector.available();

    let find = |name: &str| {
        idx.packages()
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} not found in {:#?}", idx.packages()))
    };
    let lp = find("left-pad");
    assert_eq!(
        (lp.ecosystem, lp.version.as_str()),
        (Ecosystem::Npm, "1.3.0")
    );
    assert_eq!(
        (lp.licence.as_str(), lp.licence_source),
        ("WTFPL", LicenceSource::Manifest)
    );
    let inner = find("inner");
    assert_eq!(inner.licence, "(MIT OR Apache-2.0)");
    let tool = find("@scope/tool");
    if with_store {
        assert_eq!(
            (tool.licence.as_str(), tool.licence_source),
            ("MIT", LicenceSource::LicenceFile)
        );
    } else {
        assert_eq!(tool.licence, "unknown");
    }
    // An unknown licence text is "unknown", never a guess.
    assert_eq!(find("odd-licence").licence, "unknown");
    let geo = find("geodist");
    assert_eq!(
        (geo.ecosystem, geo.licence.as_str()),
        (Ecosystem::Python, "MIT")
    );
    assert_eq!(find("nolicence").licence, "unknown");
    let tiny = find("tinycrate");
    assert_eq!(
        (tiny.ecosystem, tiny.licence.as_str()),
        (Ecosystem::Cargo, "MIT OR Apache-2.0")
    );
    assert_eq!(find("minilib").ecosystem, Ecosystem::Vendored);
    assert!(idx
        .packages()
        .iter()
        .all(|p| p.name != "app" && p.name != "broken"));

    let w = &report.warnings;
    assert_eq!(w.count(WarningKind::BadManifest), 2, "{w:#?}"); // broken/package.json, no RECORD
    assert!(w.count(WarningKind::MissingDir) >= 1, "gone-9.9.9: {w:#?}");
    assert_eq!(w.count(WarningKind::TooLarge), 1, "{w:#?}");
    assert!(w.count(WarningKind::SymlinkLoop) >= 1, "{w:#?}");
    if with_store {
        assert_eq!(w.count(WarningKind::UnidentifiedLicence), 1, "{w:#?}");
    }

    // The indexed code is found again: verbatim, and reformatted with renamed names.
    let copy = &LEFTPAD_JS[LEFTPAD_JS.find("function rightTrimLines").unwrap()..];
    let c = idx.check(copy, Some(Syntax::Slash));
    let r = &c.references[0];
    assert_eq!(
        (r.package.as_str(), r.version.as_str(), r.licence.as_str()),
        ("left-pad", "1.3.0", "WTFPL")
    );
    assert!(r.verbatim);
    assert!(r.matched_chars >= 150);
    assert_eq!(r.lines, [14, 24]);
    let renamed = "function trimAll(src, keep) { var rows = src.split('\\n'); var acc = [];\n\
        for (var n = 0; n < rows.length; n++) { var row = rows[n].replace(/\\s+$/, '');\n\
        if (row.length > 0 || keep) { acc.push(row); } } return acc.join('\\n'); }";
    let c = idx.check(renamed, Some(Syntax::Slash));
    assert_eq!(c.references.len(), 1, "{c:#?}");
    assert!(!c.references[0].verbatim);
    let py = &PY_MOD[PY_MOD.find("def ").unwrap()..];
    let c = idx.check(py, Some(Syntax::Hash));
    assert_eq!(c.references[0].package, "geodist");
    // Short or unrelated text is not reported.
    assert!(idx
        .check("function f(a) { return a + 1; }", None)
        .references
        .is_empty());
    assert!(idx
        .check(
            &"let q = compute(alpha, beta) + other(gamma);\n".repeat(20),
            None
        )
        .references
        .is_empty());
}

#[test]
fn reopening_reuses_segments_and_a_lockfile_change_rebuilds_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    fixture(&root);
    let home = cargo_home(tmp.path());
    let data = tmp.path().join("data");
    let cfg = config(home);
    let cancel = AtomicBool::new(false);
    let (a, r1) = ReferenceIndex::open_or_build(&root, &data, &cfg, &no_progress, &cancel).unwrap();
    assert!(r1.discovered && r1.built == a.packages().len() && r1.built > 0);
    let (b, r2) = ReferenceIndex::open_or_build(&root, &data, &cfg, &no_progress, &cancel).unwrap();
    assert!(
        !r2.discovered,
        "lockfiles unchanged: the saved package list is used"
    );
    assert_eq!((r2.built, r2.reused), (0, a.packages().len()));
    assert_eq!(a.fingerprint_count(), b.fingerprint_count());

    // A new npm package and a touched Cargo.lock: one segment built, the rest reused.
    write(
        &root.join("node_modules/newdep/package.json"),
        r#"{"name": "newdep", "version": "1.0.0", "license": "ISC"}"#,
    );
    write(&root.join("node_modules/newdep/n.js"), LEFTPAD_JS);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let lock = root.join("Cargo.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(&lock, text + "\n").unwrap();
    let (c, r3) = ReferenceIndex::open_or_build(&root, &data, &cfg, &no_progress, &cancel).unwrap();
    assert!(r3.discovered);
    assert_eq!(r3.built, 1, "{r3:#?}");
    assert_eq!(c.packages().len(), a.packages().len() + 1);

    // A corrupt segment is rebuilt with a counted warning.
    let segs = data.join("segments");
    let one = std::fs::read_dir(&segs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&one, b"garbage").unwrap();
    std::fs::write(&lock, std::fs::read_to_string(&lock).unwrap() + "\n").unwrap();
    let (_, r4) = ReferenceIndex::open_or_build(&root, &data, &cfg, &no_progress, &cancel).unwrap();
    assert_eq!(r4.warnings.count(WarningKind::CorruptSegment), 1);
    assert_eq!(r4.built, 1);

    // A source that changed since indexing is not used to confirm a match.
    let copy = &LEFTPAD_JS[LEFTPAD_JS.find("function rightTrimLines").unwrap()..];
    std::fs::write(root.join("node_modules/newdep/n.js"), "changed\n").unwrap();
    std::fs::remove_dir_all(root.join("node_modules/left-pad")).unwrap();
    let (d, _) = ReferenceIndex::open_or_build(&root, &data, &cfg, &no_progress, &cancel).unwrap();
    let check = d.check(copy, None);
    assert!(check.references.is_empty(), "{check:#?}");
    assert!(check.stale >= 1);
}

#[test]
fn vanished_directories_and_cancellation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    write(&root.join("vendor/a/x.rs"), "fn x() {}\n");
    let cfg = ReferenceConfig {
        discover: DiscoverOptions {
            extra_roots: vec![tmp.path().join("no-such-corpus")],
            ..DiscoverOptions::default()
        },
        ..ReferenceConfig::default()
    };
    let cancel = AtomicBool::new(false);
    let mut warnings = cairn_references::Warnings::default();
    let pkgs = cairn_references::discover(
        &root,
        &cfg.discover,
        &LicenceDetector::default(),
        &mut warnings,
    );
    assert_eq!(warnings.count(WarningKind::MissingDir), 1);
    std::fs::remove_dir_all(root.join("vendor/a")).unwrap();
    let (idx, report, _) = ReferenceIndex::from_packages(
        pkgs,
        &tmp.path().join("data"),
        &cfg,
        &no_progress,
        &cancel,
        warnings,
    )
    .unwrap();
    assert_eq!(idx.file_count(), 0);
    assert!(
        report.warnings.count(WarningKind::MissingDir) >= 2,
        "{report:#?}"
    );

    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    let r =
        ReferenceIndex::open_or_build(&root, &tmp.path().join("d2"), &cfg, &no_progress, &cancel);
    assert!(matches!(r, Err(cairn_references::Error::Cancelled)));
}

/// A few real crates from this machine's cargo registry: indexed, and a function copied
/// out of one is found with that crate's name, version and manifest licence.
#[test]
fn real_crates_from_the_cargo_registry() {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for home in [
        std::env::var_os("CARGO_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(rd) = std::fs::read_dir(home.join("registry/src")) {
            for reg in rd.flatten() {
                for e in std::fs::read_dir(reg.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if ["hex-0.4", "itoa-1.", "base64-0.22", "fnv-1."]
                        .iter()
                        .any(|p| n.starts_with(p))
                    {
                        dirs.push(e.path());
                    }
                }
            }
        }
    }
    if dirs.is_empty() {
        eprintln!("no registry crates here; skipped");
        return;
    }
    dirs.sort();
    dirs.dedup_by(|a, b| a.file_name() == b.file_name());
    dirs.truncate(4);
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for d in &dirs {
        std::os::unix::fs::symlink(d, corpus.join(d.file_name().unwrap())).unwrap();
    }
    let cfg = ReferenceConfig {
        discover: DiscoverOptions {
            extra_roots: vec![corpus],
            ..DiscoverOptions::default()
        },
        ..ReferenceConfig::default()
    };
    let cancel = AtomicBool::new(false);
    let (idx, report) = ReferenceIndex::open_or_build(
        &tmp.path().join("empty-repo"),
        &tmp.path().join("data"),
        &cfg,
        &no_progress,
        &cancel,
    )
    .unwrap();
    assert_eq!(report.packages, dirs.len());
    assert!(idx.fingerprint_count() > 100, "{report:#?}");
    // The longest `fn` of the first package's biggest file, copied.
    let pkg = &idx.packages()[0];
    let files = cairn_references::package_files(pkg, &mut Default::default());
    let biggest = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    let text = std::fs::read_to_string(biggest).unwrap();
    let start = text.find("fn ").unwrap();
    // Whole lines from the first `fn`, at least 300 characters.
    let mut snippet = String::new();
    for line in text[start..].lines() {
        snippet.push_str(line);
        snippet.push('\n');
        if snippet.len() >= 300 {
            break;
        }
    }
    let c = idx.check(&snippet, Some(Syntax::Rust));
    assert!(
        c.references
            .iter()
            .any(|r| r.package == pkg.name && r.licence == pkg.licence && r.verbatim),
        "{} in {}: {c:#?}",
        pkg.name,
        biggest.display()
    );
}
