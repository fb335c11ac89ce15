//! `cairn references index|check`: the reference tracker from the command line. Thin:
//! argument parsing and printing around the engine's [`References`].

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use cairn_engine::{Config, ReferenceOptions, References};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Subcommand)]
pub enum ReferencesCommand {
    /// Find the repository's dependencies on disk (cargo registry, node_modules,
    /// site-packages, Go module cache, vendored directories), fingerprint those not yet
    /// indexed, and report packages, licences and warnings.
    Index {
        /// Extra corpus roots (each subdirectory a package), beside the config's.
        #[arg(long = "root")]
        roots: Vec<PathBuf>,
        /// List every package found.
        #[arg(long)]
        packages: bool,
        #[arg(long)]
        json: bool,
    },
    /// Check a text (a file, or `-` for stdin) against the reference index; exits 1 when
    /// it reproduces third-party code.
    Check {
        /// The file to check, or `-` for standard input.
        file: String,
        /// The language, by a path or extension (`x.rs`), when reading stdin.
        #[arg(long)]
        lang: Option<String>,
        /// Report matches of at least this many characters (default: config, else 150).
        #[arg(long)]
        min_chars: Option<usize>,
        #[arg(long = "root")]
        roots: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn options(root: &Path, roots: &[PathBuf], min_chars: Option<usize>) -> Result<ReferenceOptions> {
    let config = Config::load(Some(root))?;
    let mut o = ReferenceOptions::from_config(&config);
    for r in roots {
        let r =
            std::fs::canonicalize(r).with_context(|| format!("no corpus at {}", r.display()))?;
        o.extra_roots.push(r);
    }
    if let Some(n) = min_chars {
        o.min_chars = n.max(1);
    }
    Ok(o)
}

fn open(root: &Path, o: &ReferenceOptions) -> Result<References> {
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} packages {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let cancel = AtomicBool::new(false);
    let refs = References::open(
        root,
        o,
        &|done, total, pkg| {
            if let Some(b) = &bar {
                b.set_length(total as u64);
                b.set_position(done as u64);
                b.set_message(pkg.to_string());
            }
        },
        &cancel,
    )
    .with_context(|| format!("the reference index of {}", root.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(refs)
}

impl ReferencesCommand {
    pub fn run(self, root: &Path) -> Result<ExitCode> {
        match self {
            ReferencesCommand::Index {
                roots,
                packages,
                json,
            } => {
                let o = options(root, &roots, None)?;
                let refs = open(root, &o)?;
                let r = refs.report();
                if json {
                    let mut v = serde_json::to_value(r)?;
                    if packages {
                        v["packageList"] = serde_json::json!(refs
                            .packages()
                            .iter()
                            .map(|(eco, name, version, licence, path)| serde_json::json!({
                                "ecosystem": eco, "name": name, "version": version,
                                "licence": licence, "path": path,
                            }))
                            .collect::<Vec<_>>());
                    }
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(ExitCode::SUCCESS);
                }
                let eco: Vec<String> = r
                    .by_ecosystem
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{} {v}",
                            serde_json::to_value(k)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                println!(
                    "{} packages ({}), {} files, {:.1} MB of source, {} fingerprints, {:.1} MB on disk",
                    r.packages,
                    if eco.is_empty() { "none".to_string() } else { eco.join(", ") },
                    r.files,
                    r.bytes as f64 / 1e6,
                    r.fingerprints,
                    r.disk_bytes as f64 / 1e6,
                );
                println!(
                    "{} fingerprinted, {} reused, in {:.2} s{}",
                    r.built,
                    r.reused,
                    r.seconds,
                    if r.discovered {
                        ""
                    } else {
                        " (lockfiles unchanged)"
                    }
                );
                if !r.licences.is_empty() {
                    let mut l: Vec<_> = r.licences.iter().collect();
                    l.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                    let l: Vec<String> = l.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    println!("licences: {}", l.join(", "));
                }
                if r.warnings.total() > 0 {
                    let w: Vec<String> = r
                        .warnings
                        .counts
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{} {v}",
                                serde_json::to_value(k)
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_string))
                                    .unwrap_or_default()
                            )
                        })
                        .collect();
                    println!("skipped, with warnings: {}", w.join(", "));
                    for e in r.warnings.examples.iter().take(5) {
                        println!("  {e}");
                    }
                }
                if packages {
                    for (eco, name, version, licence, path) in refs.packages() {
                        println!("{eco}\t{name}\t{version}\t{licence}\t{path}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ReferencesCommand::Check {
                file,
                lang,
                min_chars,
                roots,
                json,
            } => {
                let (text, path) = if file == "-" {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("standard input is not UTF-8 text")?;
                    (s, lang.clone().unwrap_or_default())
                } else {
                    let s = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {file} as UTF-8 text"))?;
                    (s, lang.clone().unwrap_or_else(|| file.clone()))
                };
                let path = if path.starts_with('.') || !path.contains('.') && !path.is_empty() {
                    format!("x.{}", path.trim_start_matches('.'))
                } else {
                    path
                };
                let o = options(root, &roots, min_chars)?;
                let refs = open(root, &o)?;
                let matches = refs.check(Some(&path), &text);
                if json {
                    println!("{}", serde_json::to_string_pretty(&matches)?);
                } else if matches.is_empty() {
                    println!(
                        "no third-party code found (at {} characters or more)",
                        o.min_chars
                    );
                } else {
                    for m in &matches {
                        println!(
                            "lines {}-{}: {} characters from {} {} ({}) {}:{}-{}{}",
                            m.text_lines[0],
                            m.text_lines[1],
                            m.matched_chars,
                            m.package,
                            m.version,
                            m.licence,
                            m.path,
                            m.lines[0],
                            m.lines[1],
                            if m.verbatim { "" } else { " (renamed)" }
                        );
                    }
                }
                Ok(if matches.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        }
    }
}
