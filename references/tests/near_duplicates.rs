//! Near-duplicate files (a package's generated shims, one per language, differing only
//! in a message) and common code that only looks like a dependency's: the copied file is
//! the one named, a renamed copy that kept the message is found, and a common iterator
//! chain with a token changed is not a copy.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use cairn_references::{DiscoverOptions, ReferenceConfig, ReferenceIndex, Syntax};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// As highlight.js ships `lib/languages/<name>.js.js`: the same function in every file,
/// only the language's name in its message differs.
fn shim(name: &str) -> String {
    format!(
        "function emitWarning() {{
    if (!emitWarning.warned) {{
      emitWarning.warned = true;
      console.log(
        'Deprecation (warning): Using file extension in specifier is deprecated, use \"highlight/lib/languages/{name}\" instead of \"highlight/lib/languages/{name}.js\"'
      );
    }}
  }}
  emitWarning();
    module.exports = require('./{name}.js');"
    )
}

const LANGUAGES: usize = 300;

fn name(i: usize) -> String {
    format!("lang{i:03}")
}

const RUST_DEP: &str = r#"
pub fn infer_values(flags: &mut [Flag], type_name: &Ident, repr: &Ident) {
    let mut previous_variants: Vec<Ident> = flags
        .iter()
        .filter(|flag| !flag.value.is_inferred())
        .map(|flag| flag.name.clone())
        .collect();
    for flag in flags {
        emit(flag, type_name, repr);
    }
}
"#;

fn index(root: &Path) -> ReferenceIndex {
    let corpus = root.join("corpus");
    let pkg = corpus.join("highlight");
    write(
        &pkg.join("package.json"),
        r#"{"name": "highlight", "version": "11.0.0", "license": "BSD-3-Clause"}"#,
    );
    for i in 0..LANGUAGES {
        write(
            &pkg.join(format!("lib/languages/{}.js.js", name(i))),
            &shim(&name(i)),
        );
    }
    let dep = corpus.join("flags");
    write(
        &dep.join("Cargo.toml"),
        "[package]\nname = \"flags\"\nversion = \"0.7.0\"\nlicense = \"MIT\"\n",
    );
    write(&dep.join("src/lib.rs"), RUST_DEP);
    let cfg = ReferenceConfig {
        threads: 1,
        discover: DiscoverOptions {
            extra_roots: vec![corpus],
            cargo_homes: Some(Vec::new()),
            ..DiscoverOptions::default()
        },
        ..ReferenceConfig::default()
    };
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    ReferenceIndex::open_or_build(
        &repo,
        &root.join("data"),
        &cfg,
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap()
    .0
}

/// The function alone, as a copy would take it.
fn function_of(file: &str) -> &str {
    &file[..file.find("  emitWarning();").unwrap()]
}

#[test]
fn the_copied_one_of_many_near_duplicate_files_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = index(tmp.path());
    for i in [0, 7, 173, 299] {
        let file = shim(&name(i));
        let copy = function_of(&file);
        assert!(copy.chars().count() >= 150);
        let c = idx.check(copy, Some(Syntax::Slash));
        let r = c
            .references
            .first()
            .unwrap_or_else(|| panic!("{} not found: {c:#?}", name(i)));
        assert_eq!(r.package, "highlight");
        assert!(r.verbatim);
        assert!(
            r.path.ends_with(format!("{}.js.js", name(i))),
            "{} matched {}",
            name(i),
            r.path.display()
        );
        // Its first lines, through the message, are still a copy of that file.
        let partial = &copy[..copy.find("\n      );").unwrap()];
        let c = idx.check(partial, Some(Syntax::Slash));
        assert!(
            c.references
                .iter()
                .any(|r| r.path.ends_with(format!("{}.js.js", name(i)))),
            "partial {}: {c:#?}",
            name(i)
        );
    }
}

#[test]
fn a_renamed_copy_that_kept_a_long_message_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = index(tmp.path());
    let file = shim(&name(42));
    let renamed = function_of(&file)
        .replace("emitWarning", "warnOnce")
        .replace("console", "logger");
    let c = idx.check(&renamed, Some(Syntax::Slash));
    assert!(
        c.references
            .iter()
            .any(|r| r.package == "highlight" && !r.verbatim),
        "{c:#?}"
    );
    // The same structure with another message is not evidence enough (28 tokens).
    let other = renamed.replace("Deprecation (warning)", "Something else entirely here");
    let c = idx.check(&other, Some(Syntax::Slash));
    assert!(c.references.is_empty(), "{c:#?}");
}

#[test]
fn a_common_chain_with_a_token_changed_is_not_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = index(tmp.path());
    // Renamed, and `!` dropped: 52 tokens aligned, but as two consistent runs of 22 and
    // 29 tokens around the gap, no 40-token one.
    let own = r#"
pub fn recorded_commits(entries: &[Entry]) -> Vec<String> {
    let commits: Vec<String> = {
        let mut c: Vec<String> = entries
            .iter()
            .filter(|e| e.record_id.is_some())
            .map(|e| e.commit.clone())
            .collect();
        c.sort();
        c.dedup();
        c
    };
    commits
}
"#;
    let c = idx.check(own, Some(Syntax::Rust));
    assert!(c.references.is_empty(), "{c:#?}");
    // The same text renamed but otherwise intact is a copy.
    let renamed = RUST_DEP
        .replace("previous_variants", "seen")
        .replace("flags", "items")
        .replace("flag", "it");
    let c = idx.check(&renamed, Some(Syntax::Rust));
    assert!(c.references.iter().any(|r| r.package == "flags"), "{c:#?}");
}
