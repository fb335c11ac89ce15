//! What the hooks read from git, checked against git itself: a commit's added lines,
//! blobs and patch id from `commit_diff` (awkward paths and contents included), and
//! notes found through a notes tree's fan-out directories.

mod common;
use cairn_provenance::git::{self, CatFile};
use common::*;
use expect_test::expect;
use std::io::Write;
use std::process::{Command, Stdio};

fn render(d: &git::CommitDiff) -> String {
    let mut out = String::new();
    for (path, lines) in &d.added {
        out.push_str(&format!("{path}\n"));
        for (n, text) in lines {
            out.push_str(&format!("  {n} {text}\n"));
        }
    }
    out
}

/// `git diff-tree -p --root <commit> | git patch-id --stable`, as patch ids were taken.
fn git_patch_id(repo: &std::path::Path, commit: &str) -> String {
    let diff = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["diff-tree", "-p", "--root", "--no-color", commit])
        .output()
        .unwrap();
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["patch-id", "--stable"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&diff.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

fn check_against_git(fx: &Fixture, commit: &str, parents: usize) -> git::CommitDiff {
    let mut cat = CatFile::open(&fx.repo).unwrap();
    let d = git::commit_diff(&fx.repo, commit, parents, &mut cat).unwrap();
    assert_eq!(
        d.patch_id,
        git_patch_id(&fx.repo, commit),
        "patch id of {commit}"
    );
    for (path, _) in &d.added {
        let blob = git(&fx.repo, &["rev-parse", &format!("{commit}:{path}")]);
        assert_eq!(d.blobs.get(path), Some(&blob), "blob of {path}");
    }
    d
}

#[test]
fn a_commit_diff_is_what_git_says() {
    let fx = Fixture::new();
    fx.write("src/a b.rs", "fn spaced() {}\n");
    fx.write("src/naïve.rs", "let café = 1;\n");
    fx.write("src/tab\tname.rs", "tabbed\n");
    fx.write("keep.txt", "one\ntwo\nthree\nfour\nfive\nsix\nseven\n");
    fx.write("gone.txt", "bye\n");
    std::fs::write(fx.repo.join("bin.dat"), [0u8, 1, 2, 0, 255]).unwrap();
    let root = fx.commit("root");
    let d = check_against_git(&fx, &root, 0);
    expect![[r#"
        gone.txt
          1 bye
        keep.txt
          1 one
          2 two
          3 three
          4 four
          5 five
          6 six
          7 seven
        src/a b.rs
          1 fn spaced() {}
        src/naïve.rs
          1 let café = 1;
        src/tab	name.rs
          1 tabbed
    "#]]
    .assert_eq(&render(&d));

    // Added lines that look like file headers, a removed one too, a last line without
    // a newline, a mode change, a deletion and a changed binary.
    fx.write(
        "keep.txt",
        "one\n++ b/not-a-file\ntwo\nthree\nfour\nfive\nsix\n--- seven\nlast",
    );
    fx.write("src/a b.rs", "fn spaced() {}\nfn more() {}\n");
    std::fs::remove_file(fx.repo.join("gone.txt")).unwrap();
    std::fs::write(fx.repo.join("bin.dat"), [0u8, 9, 9, 0]).unwrap();
    git(&fx.repo, &["update-index", "--chmod=+x", "src/naïve.rs"]);
    let second = fx.commit("second");
    let d = check_against_git(&fx, &second, 1);
    expect![[r#"
        keep.txt
          2 ++ b/not-a-file
          8 --- seven
          9 last
        src/a b.rs
          2 fn more() {}
    "#]]
    .assert_eq(&render(&d));
    assert!(!d.patch_id.is_empty());

    // An empty commit has no lines and, as git gives, no patch id.
    git(&fx.repo, &["commit", "-q", "--allow-empty", "-m", "empty"]);
    let empty = git(&fx.repo, &["rev-parse", "HEAD"]);
    let d = check_against_git(&fx, &empty, 1);
    assert!(d.added.is_empty() && d.patch_id.is_empty(), "{d:?}");
}

#[test]
fn a_merge_has_the_lines_no_parent_has_and_no_patch_id() {
    let fx = Fixture::new();
    fx.write("f.txt", "a\nb\nc\n");
    fx.commit("base");
    git(&fx.repo, &["checkout", "-q", "-b", "side"]);
    fx.write("f.txt", "a\nb side\nc\n");
    fx.commit("side");
    git(&fx.repo, &["checkout", "-q", "main"]);
    fx.write("f.txt", "a\nb main\nc\n");
    fx.commit("main");
    let failed = Command::new("git")
        .arg("-C")
        .arg(&fx.repo)
        .args(["merge", "-q", "side"])
        .output()
        .unwrap();
    assert!(!failed.status.success(), "a conflict");
    fx.write("f.txt", "a\nb resolved\nc\n");
    let merge = fx.commit("merge");
    let d = check_against_git(&fx, &merge, 2);
    expect![[r#"
        f.txt
          2 b resolved
    "#]]
    .assert_eq(&render(&d));
    assert_eq!(d.patch_id, "");
}

#[test]
fn bad_revisions_are_errors_and_the_session_keeps_serving() {
    let fx = Fixture::new();
    fx.write("f.txt", "a\n");
    let c = fx.commit("one");
    let mut cat = CatFile::open(&fx.repo).unwrap();
    assert!(cat.get("no-such-ref").unwrap().is_none());
    let err = cat.commit("no-such-ref").unwrap_err().to_string();
    assert!(err.contains("no-such-ref is not a commit"), "{err}");
    assert!(
        cat.get("HEAD\nHEAD").is_err(),
        "a name with a newline is refused"
    );
    let (id, parents, message) = cat.commit("HEAD").unwrap();
    assert_eq!(
        (id.as_str(), parents.len(), message.as_str()),
        (c.as_str(), 0, "one\n")
    );
    assert!(
        cat.note(git::NOTES_REF, &c).unwrap().is_none(),
        "no notes ref yet"
    );
    let bad = "0".repeat(40);
    let err = git::commit_diff(&fx.repo, &bad, 1, &mut cat)
        .unwrap_err()
        .to_string();
    assert!(err.contains("diff-tree"), "{err}");
}

/// The id of the i-th made-up annotated object.
fn object(i: usize) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(format!("object {i}").as_bytes())[..20])
}

#[test]
fn notes_are_found_through_any_fan_out() {
    // A notes tree as git leaves it once it has grown: notes under `ab/` directories,
    // one two levels down, one still at the top, and a file that is not a note.
    let fx = Fixture::new();
    let mut import =
        String::from("commit refs/notes/test\ncommitter T <t@example.com> 0 +0000\ndata 0\n");
    let path = |i: usize| {
        let o = object(i);
        match i {
            0 => o,
            1 => format!("{}/{}/{}", &o[..2], &o[2..4], &o[4..]),
            _ => format!("{}/{}", &o[..2], &o[2..]),
        }
    };
    for i in 0..300 {
        let text = format!("note {i}\n");
        import.push_str(&format!(
            "M 100644 inline {}\ndata {}\n{text}",
            path(i),
            text.len()
        ));
    }
    import.push_str("M 100644 inline README\ndata 4\nnot\n\n");
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&fx.repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(import.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());

    let mut cat = CatFile::open(&fx.repo).unwrap();
    for i in [0, 1, 2, 150, 299] {
        let o = object(i);
        let ours = cat.note_text("refs/notes/test", &o).unwrap();
        let gits = git(&fx.repo, &["notes", "--ref", "refs/notes/test", "show", &o]);
        assert_eq!(
            ours.as_deref().map(str::trim),
            Some(gits.as_str()),
            "note {i}"
        );
    }
    assert!(cat
        .note_text("refs/notes/test", &object(300))
        .unwrap()
        .is_none());
}

#[test]
fn staged_lines_do_not_depend_on_the_users_diff_settings() {
    let fx = Fixture::new();
    fx.write("src/a.rs", "fn a() {}\n");
    fx.commit("one");
    for (k, v) in [
        ("diff.mnemonicPrefix", "true"),
        ("diff.noprefix", "true"),
        ("diff.external", "false"),
        ("color.diff", "always"),
    ] {
        git(&fx.repo, &["config", k, v]);
    }
    fx.write("src/a.rs", "fn a() {}\n++ b/x\n");
    fx.write("src/new file.rs", "fn b() {}\n");
    git(&fx.repo, &["add", "-A"]);
    let staged = git::staged_added_lines(&fx.repo).unwrap();
    let d = git::CommitDiff {
        added: staged,
        ..Default::default()
    };
    expect![[r#"
        src/a.rs
          2 ++ b/x
        src/new file.rs
          1 fn b() {}
    "#]]
    .assert_eq(&render(&d));
}
