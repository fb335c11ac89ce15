//! `cairn`: the command line. A thin front end: it parses arguments, calls the engine
//! and prints. Logs go to stderr; stdout carries answers (and, in `cairn lsp`, the protocol).

mod index_cmds;
mod models_cmds;
mod provenance_cmds;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_engine::models::{CancellationToken, ChatMessage, Generation, StreamEvent};
use cairn_engine::{CompletionOptions, Config, Engine, Position};
use clap::{Parser, Subcommand};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A local-first coding assistant with a memory for where code came from"
)]
struct Cli {
    /// Repository root (default: the enclosing git repository, else the current directory).
    #[arg(long, global = true, env = "CAIRN_REPO")]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat about code: with a question, answer it; without, an interactive session.
    Chat {
        /// The question (omit for an interactive session).
        question: Vec<String>,
        #[arg(long, default_value_t = 512)]
        max_tokens: u32,
        /// Print the answer and its metadata (model, usage) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Complete the code at a position of a file, as an editor would ask.
    Complete {
        #[arg(long)]
        file: PathBuf,
        /// Line, 1-based.
        #[arg(long)]
        line: usize,
        /// Column, 1-based, in characters.
        #[arg(long)]
        col: usize,
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        #[arg(long)]
        json: bool,
    },
    /// Manage models: the cache, the default model, API keys.
    Models {
        #[command(subcommand)]
        command: models_cmds::ModelsCommand,
    },
    /// Serve the Language Server Protocol on stdin/stdout (editors start this).
    Lsp {
        /// Accepted for clients that pass it; stdio is the transport.
        #[arg(long)]
        stdio: bool,
    },
    #[command(flatten)]
    Index(index_cmds::IndexCommands),
    #[command(flatten)]
    Provenance(provenance_cmds::ProvenanceCommands),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| "warn,llama_cpp_2=error".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn open_engine(repo: Option<PathBuf>) -> Result<Engine> {
    let root = index_cmds::repo_root(repo.as_deref())?;
    let config = Config::load(Some(&root))?;
    Ok(Engine::open(Some(&root), config)?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models { command } => command.run(),
        Command::Lsp { stdio: _ } => {
            let options = cairn_lsp::ServerOptions {
                repo: cli.repo.clone(),
                ..Default::default()
            };
            runtime()?.block_on(cairn_lsp::serve_stdio(options));
            Ok(ExitCode::SUCCESS)
        }
        Command::Index(c) => c.run_in(cli.repo.as_deref()),
        Command::Provenance(c) => {
            // The provenance commands find the repository through CAIRN_REPO (the hooks
            // set it too); a --repo flag means the same. Still single-threaded here.
            if let Some(r) = &cli.repo {
                std::env::set_var("CAIRN_REPO", r);
            }
            c.run()
        }
        Command::Chat {
            question,
            max_tokens,
            json,
        } => {
            let engine = open_engine(cli.repo)?;
            let rt = runtime()?;
            rt.block_on(chat(engine, question.join(" "), max_tokens, json))
        }
        Command::Complete {
            file,
            line,
            col,
            max_tokens,
            json,
        } => {
            if line == 0 || col == 0 {
                anyhow::bail!("--line and --col are 1-based");
            }
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let text = String::from_utf8(text).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not UTF-8 text; Cairn completes text files only",
                    file.display()
                )
            })?;
            let engine = open_engine(cli.repo)?;
            let rel = engine
                .root()
                .and_then(|r| {
                    std::fs::canonicalize(&file)
                        .ok()?
                        .strip_prefix(r)
                        .ok()
                        .map(|p| p.to_path_buf())
                })
                .unwrap_or_else(|| file.clone());
            let opts = CompletionOptions {
                max_tokens,
                ..Default::default()
            };
            let rt = runtime()?;
            rt.block_on(async {
                // The cleaned-up completion is printed, not the raw stream.
                let (window, g) = engine
                    .complete_at(
                        &rel.to_string_lossy(),
                        &text,
                        Position {
                            line: line - 1,
                            character: col - 1,
                        },
                        &opts,
                        None,
                        CancellationToken::new(),
                    )
                    .await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "completion": g.text,
                            "multiline": window.multiline,
                            "generation": g,
                        }))?
                    );
                } else {
                    println!("{}", g.text);
                    report(&g);
                }
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// Streams text to stdout as it arrives; returns the sender and the printing task.
fn printer(
    enabled: bool,
) -> (
    mpsc::UnboundedSender<StreamEvent>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<StreamEvent>();
    let task = tokio::spawn(async move {
        let mut out = std::io::stdout();
        while let Some(ev) = rx.recv().await {
            if !enabled {
                continue;
            }
            match ev {
                StreamEvent::Text(t) => {
                    let _ = out.write_all(t.as_bytes());
                    let _ = out.flush();
                }
                StreamEvent::Reset { reason } => {
                    eprintln!("\n[cairn: {reason}; answering with the fallback model]");
                }
            }
        }
    });
    (tx, task)
}

fn report(g: &Generation) {
    let u = &g.usage;
    let fallback = g
        .fallback
        .as_ref()
        .map(|f| format!(", fallback from {} ({})", f.from, f.reason))
        .unwrap_or_default();
    eprintln!(
        "[{} ({:?}) · {} prompt tokens ({} reused) · {} generated · {:.0} ms · {:.0} tok/s{}]",
        g.model.name,
        g.model.origin,
        u.prompt_tokens,
        u.reused_prompt_tokens,
        u.generated_tokens,
        u.total_time.as_secs_f64() * 1000.0,
        u.generation_tokens_per_s(),
        fallback
    );
}

async fn chat(engine: Engine, question: String, max_tokens: u32, json: bool) -> Result<ExitCode> {
    let mut history: Vec<ChatMessage> = Vec::new();
    if !question.trim().is_empty() {
        let g = ask(&engine, &mut history, &question, max_tokens, !json).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&g)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "Cairn chat on {} (Ctrl-C stops an answer, Ctrl-D or /exit quits)",
            engine.router().chat.primary.identity().name
        );
    }
    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if line_tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    loop {
        if interactive {
            eprint!("› ");
        }
        let Some(line) = line_rx.recv().await else {
            break;
        };
        let q = line.trim();
        if q.is_empty() {
            continue;
        }
        if q == "/exit" || q == "/quit" {
            break;
        }
        match ask(&engine, &mut history, q, max_tokens, true).await {
            Ok(_) => {}
            // A failed turn is reported and the session goes on.
            Err(e) => eprintln!("cairn: {e:#}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn ask(
    engine: &Engine,
    history: &mut Vec<ChatMessage>,
    q: &str,
    max_tokens: u32,
    stream: bool,
) -> Result<Generation> {
    let cancel = CancellationToken::new();
    let (tx, printer) = printer(stream);
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let result = engine.chat(history, q, max_tokens, Some(tx), cancel).await;
    ctrl_c.abort();
    printer.await.ok();
    let g = result?;
    if stream {
        println!();
        report(&g);
    }
    Ok(g)
}
