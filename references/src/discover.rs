//! Finding a repository's dependencies on disk: Cargo.lock packages in the cargo
//! registry's sources, `node_modules`, a virtual environment's `site-packages`, the Go
//! module cache, vendored directories, and extra corpus roots from config.
//!
//! Over 600 lines as one room: one short walker per ecosystem (Cargo, npm, Python, Go,
//! vendored), sharing the counted warnings and the symlink-loop guard.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::licence::{self, LicenceDetector, LicenceSource, UNKNOWN};
use crate::warnings::{WarningKind, Warnings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ecosystem {
    Cargo,
    Npm,
    Python,
    Go,
    Vendored,
    /// A package under an extra root named in config.
    Corpus,
}

/// One dependency as found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// The directory its files live under.
    pub root: PathBuf,
    /// Its files, when a record lists them (Python's RECORD); otherwise the walk of
    /// `root` decides.
    pub files: Option<Vec<PathBuf>>,
    /// An SPDX expression, or "unknown".
    pub licence: String,
    pub licence_source: LicenceSource,
    /// Files whose change means the package changed (its manifest), for incremental
    /// updates of packages that can change in place.
    pub manifest: Option<PathBuf>,
}

/// What to look for and where.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Extra corpus roots: each subdirectory is a package (or the root itself when it
    /// has a manifest).
    pub extra_roots: Vec<PathBuf>,
    /// Cargo homes to search (default: `$CARGO_HOME`, `~/.cargo`).
    pub cargo_homes: Option<Vec<PathBuf>>,
    /// The Go module cache (default: `$GOMODCACHE`, `$GOPATH/pkg/mod`, `~/go/pkg/mod`).
    pub go_mod_cache: Option<PathBuf>,
}

/// Lockfiles and manifests whose change means the dependency set changed.
pub fn lockfiles(root: &Path) -> Vec<PathBuf> {
    [
        "Cargo.lock",
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "go.mod",
        "go.sum",
        "poetry.lock",
        "uv.lock",
        "requirements.txt",
        "vendor/modules.txt",
    ]
    .iter()
    .map(|n| root.join(n))
    .filter(|p| p.is_file())
    .collect()
}

/// Every dependency found for the repository at `root`.
pub fn discover(
    root: &Path,
    opts: &DiscoverOptions,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
) -> Vec<Package> {
    let mut out = Vec::new();
    cargo_packages(root, opts, detector, warnings, &mut out);
    npm_packages(&root.join("node_modules"), detector, warnings, &mut out);
    for sp in site_packages_dirs(root) {
        python_packages(&sp, detector, warnings, &mut out);
    }
    go_packages(root, opts, detector, warnings, &mut out);
    for dir in [
        "vendor",
        "third_party",
        "third-party",
        "3rdparty",
        "external",
    ] {
        let d = root.join(dir);
        if d.is_dir() {
            corpus_packages(&d, Ecosystem::Vendored, detector, warnings, &mut out);
        }
    }
    for r in &opts.extra_roots {
        if !r.is_dir() {
            warnings.add(WarningKind::MissingDir, r, "extra reference root not found");
            continue;
        }
        corpus_packages(r, Ecosystem::Corpus, detector, warnings, &mut out);
    }
    // One entry per package directory (a crate can be both in Cargo.lock and a corpus root;
    // Python packages share their site-packages root).
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert((p.root.clone(), p.name.clone(), p.version.clone())));
    out
}

fn read_text(path: &Path, warnings: &mut Warnings) -> Option<String> {
    match std::fs::read(path) {
        Ok(b) if b.len() > 8 * 1024 * 1024 => {
            warnings.add(WarningKind::TooLarge, path, "manifest over 8 MiB");
            None
        }
        Ok(b) => match String::from_utf8(b) {
            Ok(s) => Some(s),
            Err(_) => {
                warnings.add(WarningKind::NotUtf8, path, "manifest is not UTF-8");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            warnings.add(WarningKind::MissingDir, path, "vanished");
            None
        }
        Err(e) => {
            warnings.add(WarningKind::Unreadable, path, e);
            None
        }
    }
}

/// The licence of a package from its declared field, else its licence files.
fn resolve_licence(
    declared: Option<&str>,
    licence_files: &[PathBuf],
    detector: &LicenceDetector,
    warnings: &mut Warnings,
) -> (String, LicenceSource) {
    if let Some(spdx) = declared.and_then(licence::spdx_expression) {
        return (spdx, LicenceSource::Manifest);
    }
    if licence_files.is_empty() {
        return (UNKNOWN.into(), LicenceSource::Unknown);
    }
    if !detector.available() {
        warnings.add(
            WarningKind::NoLicenceStore,
            &licence_files[0],
            "no askalono licence store found (run scripts/setup.sh or set CAIRN_LICENCE_STORE)",
        );
        return (UNKNOWN.into(), LicenceSource::Unknown);
    }
    match detector.identify_files(licence_files) {
        Some(id) => (id, LicenceSource::LicenceFile),
        None => {
            warnings.add(
                WarningKind::UnidentifiedLicence,
                &licence_files[0],
                "licence file not identified with confidence; licence is unknown",
            );
            (UNKNOWN.into(), LicenceSource::Unknown)
        }
    }
}

// ---------------------------------------------------------------- Cargo

fn cargo_packages(
    root: &Path,
    opts: &DiscoverOptions,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
    out: &mut Vec<Package>,
) {
    let lock = root.join("Cargo.lock");
    if !lock.is_file() {
        return;
    }
    let Some(text) = read_text(&lock, warnings) else {
        return;
    };
    let parsed: toml::Value = match toml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            warnings.add(WarningKind::BadManifest, &lock, e.message().to_string());
            return;
        }
    };
    let homes = opts
        .cargo_homes
        .clone()
        .unwrap_or_else(licence::cargo_homes);
    let registries: Vec<PathBuf> = homes
        .iter()
        .filter_map(|h| std::fs::read_dir(h.join("registry").join("src")).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()))
        .collect();
    let Some(pkgs) = parsed.get("package").and_then(|p| p.as_array()) else {
        return;
    };
    for p in pkgs {
        let (Some(name), Some(version)) = (
            p.get("name").and_then(|v| v.as_str()),
            p.get("version").and_then(|v| v.as_str()),
        ) else {
            warnings.add(
                WarningKind::BadManifest,
                &lock,
                "package without name/version",
            );
            continue;
        };
        let source = p.get("source").and_then(|v| v.as_str()).unwrap_or("");
        if !(source.starts_with("registry+") || source.starts_with("sparse+")) {
            continue; // the workspace's own crates, git checkouts
        }
        let dir_name = format!("{name}-{version}");
        let Some(dir) = registries
            .iter()
            .map(|r| r.join(&dir_name))
            .find(|d| d.is_dir())
        else {
            warnings.add(
                WarningKind::MissingDir,
                &lock,
                format!("{dir_name} not in the cargo registry sources (cargo fetch brings it)"),
            );
            continue;
        };
        if let Some(pkg) = cargo_package(&dir, Ecosystem::Cargo, detector, warnings) {
            out.push(pkg);
        }
    }
}

/// A directory with a Cargo.toml, as a package.
fn cargo_package(
    dir: &Path,
    ecosystem: Ecosystem,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
) -> Option<Package> {
    let manifest = dir.join("Cargo.toml");
    let text = read_text(&manifest, warnings)?;
    let v: toml::Value = match toml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            warnings.add(WarningKind::BadManifest, &manifest, e.message().to_string());
            return None;
        }
    };
    let pkg = v.get("package");
    let get = |k: &str| pkg.and_then(|p| p.get(k)).and_then(|x| x.as_str());
    let name = get("name")
        .map(str::to_string)
        .unwrap_or_else(|| dir_name(dir));
    let version = get("version").unwrap_or(UNKNOWN).to_string();
    let mut files = licence::licence_files(dir);
    if let Some(lf) = get("license-file") {
        let p = dir.join(lf);
        if p.is_file() && !files.contains(&p) {
            files = vec![p];
        }
    }
    let (licence, licence_source) = resolve_licence(get("license"), &files, detector, warnings);
    Some(Package {
        ecosystem,
        name,
        version,
        root: dir.to_path_buf(),
        files: None,
        licence,
        licence_source,
        manifest: Some(manifest),
    })
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- npm

fn npm_packages(
    node_modules: &Path,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
    out: &mut Vec<Package>,
) {
    if !node_modules.is_dir() {
        return;
    }
    let mut visited = HashSet::new();
    let mut stack = vec![node_modules.to_path_buf()];
    while let Some(nm) = stack.pop() {
        let Ok(canon) = nm.canonicalize() else {
            warnings.add(WarningKind::MissingDir, &nm, "vanished");
            continue;
        };
        if !visited.insert(canon) {
            warnings.add(WarningKind::SymlinkLoop, &nm, "node_modules seen already");
            continue;
        }
        let entries = match std::fs::read_dir(&nm) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .collect::<Vec<_>>(),
            Err(e) => {
                warnings.add(WarningKind::Unreadable, &nm, e);
                continue;
            }
        };
        let mut dirs = Vec::new();
        for e in entries {
            let name = dir_name(&e);
            if name == ".bin" || name == ".cache" {
                continue;
            }
            if name == ".pnpm" {
                // pnpm's store: .pnpm/<name>@<version>/node_modules/<name>
                if let Ok(rd) = std::fs::read_dir(&e) {
                    for s in rd.filter_map(|e| e.ok()) {
                        let inner = s.path().join("node_modules");
                        if inner.is_dir() {
                            stack.push(inner);
                        }
                    }
                }
                continue;
            }
            if name.starts_with('@') {
                if let Ok(rd) = std::fs::read_dir(&e) {
                    dirs.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
                }
            } else {
                dirs.push(e);
            }
        }
        dirs.sort();
        for d in dirs {
            if !d.is_dir() {
                continue; // broken symlinks and files; is_dir follows links
            }
            let pj = d.join("package.json");
            if pj.is_file() {
                if let Some(p) = npm_package(&d, detector, warnings) {
                    out.push(p);
                }
            }
            let inner = d.join("node_modules");
            if inner.is_dir() {
                stack.push(inner);
            }
        }
    }
}

fn npm_package(dir: &Path, detector: &LicenceDetector, warnings: &mut Warnings) -> Option<Package> {
    let manifest = dir.join("package.json");
    let text = read_text(&manifest, warnings)?;
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            warnings.add(WarningKind::BadManifest, &manifest, e);
            return None;
        }
    };
    let name = v
        .get("name")
        .and_then(|x| x.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| dir_name(dir));
    let version = v
        .get("version")
        .and_then(|x| x.as_str())
        .unwrap_or(UNKNOWN)
        .to_string();
    // `license`: a string, or the old `{type}` object; `licenses`: an old array of those.
    let declared: Option<String> = match v.get("license") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Object(o)) => {
            o.get("type").and_then(|t| t.as_str()).map(str::to_string)
        }
        _ => match v.get("licenses").and_then(|l| l.as_array()) {
            Some(arr) => {
                let ids: Option<Vec<String>> = arr
                    .iter()
                    .map(|x| {
                        x.get("type")
                            .and_then(|t| t.as_str())
                            .or(x.as_str())
                            .map(str::to_string)
                    })
                    .collect();
                // Several entries in the old array mean a choice between them.
                ids.filter(|v| !v.is_empty()).map(|v| {
                    if v.len() == 1 {
                        v[0].clone()
                    } else {
                        format!("({})", v.join(" OR "))
                    }
                })
            }
            None => None,
        },
    };
    let files = licence::licence_files(dir);
    let (licence, licence_source) =
        resolve_licence(declared.as_deref(), &files, detector, warnings);
    Some(Package {
        ecosystem: Ecosystem::Npm,
        name,
        version,
        root: dir.to_path_buf(),
        files: None,
        licence,
        licence_source,
        manifest: Some(manifest),
    })
}

// ---------------------------------------------------------------- Python

/// The project's virtual environments' site-packages: `$VIRTUAL_ENV` when it lies in the
/// repository, `.venv`, `venv`, `env`, `.env` (when they hold `pyvenv.cfg`).
pub fn site_packages_dirs(root: &Path) -> Vec<PathBuf> {
    let mut envs: Vec<PathBuf> = [".venv", "venv", "env", ".env"]
        .iter()
        .map(|n| root.join(n))
        .filter(|p| p.join("pyvenv.cfg").is_file())
        .collect();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from) {
        if v.starts_with(root) && !envs.contains(&v) {
            envs.push(v);
        }
    }
    let mut out = Vec::new();
    for env in envs {
        for lib in ["lib", "lib64", "Lib"] {
            let Ok(rd) = std::fs::read_dir(env.join(lib)) else {
                continue;
            };
            for e in rd.filter_map(|e| e.ok()) {
                let sp = e.path().join("site-packages");
                if sp.is_dir() && !out.contains(&sp) {
                    out.push(sp);
                }
            }
            let sp = env.join(lib).join("site-packages"); // Windows layout
            if sp.is_dir() && !out.contains(&sp) {
                out.push(sp);
            }
        }
    }
    out
}

/// Every `*.dist-info` of a site-packages directory, as a package.
pub fn python_packages(
    site_packages: &Path,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
    out: &mut Vec<Package>,
) {
    let mut infos: Vec<PathBuf> = match std::fs::read_dir(site_packages) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "dist-info"))
            .collect(),
        Err(e) => {
            warnings.add(WarningKind::Unreadable, site_packages, e);
            return;
        }
    };
    infos.sort();
    for info in infos {
        if let Some(p) = python_package(site_packages, &info, detector, warnings) {
            out.push(p);
        }
    }
}

fn python_package(
    site_packages: &Path,
    info: &Path,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
) -> Option<Package> {
    let meta_path = info.join("METADATA");
    let text = read_text(&meta_path, warnings)?;
    // RFC 822-style headers up to the first blank line; continuation lines start with
    // whitespace.
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push('\n');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| {
        headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
    };
    let (Some(name), Some(version)) = (get("name"), get("version")) else {
        warnings.add(
            WarningKind::BadManifest,
            &meta_path,
            "METADATA without Name/Version",
        );
        return None;
    };
    // License-Expression (PEP 639) is SPDX by definition; `License` is free text and
    // counts only when it is a valid expression; then one unambiguous classifier.
    let classifiers: Vec<&'static str> = headers
        .iter()
        .filter(|(h, _)| h == "classifier")
        .filter_map(|(_, v)| licence::classifier_licence(v))
        .collect();
    let declared: Option<String> = get("license-expression")
        .and_then(licence::spdx_expression)
        .or_else(|| get("license").and_then(licence::spdx_expression))
        .or_else(|| (classifiers.len() == 1).then(|| classifiers[0].to_string()));
    let mut lfiles = licence::licence_files(info);
    lfiles.extend(licence::licence_files(&info.join("licenses")));
    let (licence, licence_source) =
        resolve_licence(declared.as_deref(), &lfiles, detector, warnings);

    // The package's files, from RECORD (paths relative to site-packages).
    let record = info.join("RECORD");
    let files: Vec<PathBuf> = match std::fs::read_to_string(&record) {
        Ok(r) => r
            .lines()
            .filter_map(|l| l.split(',').next())
            .filter(|p| !p.is_empty() && !p.starts_with("..") && !p.starts_with('/'))
            .map(|p| site_packages.join(p))
            .collect(),
        Err(_) => {
            warnings.add(
                WarningKind::BadManifest,
                &record,
                "no RECORD; files unknown",
            );
            Vec::new()
        }
    };
    Some(Package {
        ecosystem: Ecosystem::Python,
        name: name.to_string(),
        version: version.to_string(),
        root: site_packages.to_path_buf(),
        files: Some(files),
        licence,
        licence_source,
        manifest: Some(record),
    })
}

// ---------------------------------------------------------------- Go

fn go_packages(
    root: &Path,
    opts: &DiscoverOptions,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
    out: &mut Vec<Package>,
) {
    let gomod = root.join("go.mod");
    if !gomod.is_file() {
        return;
    }
    let Some(text) = read_text(&gomod, warnings) else {
        return;
    };
    let cache = opts.go_mod_cache.clone().or_else(go_mod_cache);
    let Some(cache) = cache else {
        return;
    };
    for (path, version) in go_requires(&text) {
        let dir = cache.join(format!("{}@{}", go_escape(&path), version));
        if !dir.is_dir() {
            warnings.add(
                WarningKind::MissingDir,
                &dir,
                format!("{path}@{version} not in the module cache (go mod download brings it)"),
            );
            continue;
        }
        let files = licence::licence_files(&dir);
        let (licence, licence_source) = resolve_licence(None, &files, detector, warnings);
        out.push(Package {
            ecosystem: Ecosystem::Go,
            name: path,
            version,
            root: dir,
            files: None,
            licence,
            licence_source,
            manifest: None,
        });
    }
}

fn go_mod_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GOMODCACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("GOPATH") {
        let first = std::env::split_paths(&p).next()?;
        return Some(first.join("pkg").join("mod"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join("go").join("pkg").join("mod"))
}

/// `require` lines of a go.mod, single or in a block.
pub fn go_requires(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            let mut it = line.split_whitespace();
            if let (Some(p), Some(v)) = (it.next(), it.next()) {
                out.push((p.to_string(), v.to_string()));
            }
        } else if let Some(rest) = line.strip_prefix("require") {
            let rest = rest.trim();
            if rest == "(" {
                in_block = true;
            } else {
                let mut it = rest.split_whitespace();
                if let (Some(p), Some(v)) = (it.next(), it.next()) {
                    out.push((p.to_string(), v.to_string()));
                }
            }
        }
    }
    out
}

/// The module cache's case encoding: an upper-case letter becomes `!` + lower case.
pub fn go_escape(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            s.push('!');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

// ---------------------------------------------------------------- vendored and corpora

/// Each subdirectory of `dir` as a package (the directory itself when it has a
/// manifest); Go's `vendor/modules.txt` names modules and versions.
fn corpus_packages(
    dir: &Path,
    ecosystem: Ecosystem,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
    out: &mut Vec<Package>,
) {
    if dir.join("Cargo.toml").is_file() || dir.join("package.json").is_file() {
        if let Some(p) = dir_package(dir, ecosystem, None, detector, warnings) {
            out.push(p);
        }
        return;
    }
    let modules = dir.join("modules.txt");
    if modules.is_file() {
        let mut versions = BTreeMap::new();
        if let Some(text) = read_text(&modules, warnings) {
            for line in text.lines() {
                let mut it = line.split_whitespace();
                if let (Some("#"), Some(p), Some(v)) = (it.next(), it.next(), it.next()) {
                    versions.insert(p.to_string(), v.to_string());
                }
            }
        }
        for (path, version) in versions {
            let d = dir.join(&path);
            if d.is_dir() {
                let files = licence::licence_files(&d);
                let (licence, licence_source) = resolve_licence(None, &files, detector, warnings);
                out.push(Package {
                    ecosystem,
                    name: path,
                    version,
                    root: d,
                    files: None,
                    licence,
                    licence_source,
                    manifest: Some(modules.clone()),
                });
            }
        }
        return;
    }
    let mut subdirs: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => {
            warnings.add(WarningKind::Unreadable, dir, e);
            return;
        }
    };
    subdirs.sort();
    for d in subdirs {
        if dir_name(&d).starts_with('.') {
            continue;
        }
        if let Some(p) = dir_package(&d, ecosystem, None, detector, warnings) {
            out.push(p);
        }
    }
}

fn dir_package(
    d: &Path,
    ecosystem: Ecosystem,
    version: Option<String>,
    detector: &LicenceDetector,
    warnings: &mut Warnings,
) -> Option<Package> {
    if d.join("Cargo.toml").is_file() {
        return cargo_package(d, ecosystem, detector, warnings);
    }
    if d.join("package.json").is_file() {
        return npm_package(d, detector, warnings).map(|p| Package { ecosystem, ..p });
    }
    let files = licence::licence_files(d);
    let (licence, licence_source) = resolve_licence(None, &files, detector, warnings);
    Some(Package {
        ecosystem,
        name: dir_name(d),
        version: version.unwrap_or_else(|| UNKNOWN.into()),
        root: d.to_path_buf(),
        files: None,
        licence,
        licence_source,
        manifest: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mod_requires() {
        let r = go_requires(
            "module x\n\nrequire github.com/A/b v1.2.3\nrequire (\n\tgolang.org/x/text v0.3.0 // indirect\n)\n",
        );
        assert_eq!(
            r,
            [
                ("github.com/A/b".to_string(), "v1.2.3".to_string()),
                ("golang.org/x/text".to_string(), "v0.3.0".to_string())
            ]
        );
        assert_eq!(
            go_escape("github.com/BurntSushi/toml"),
            "github.com/!burnt!sushi/toml"
        );
    }
}
