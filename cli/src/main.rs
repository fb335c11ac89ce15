//! `cairn`: the command line. A thin front end: it parses arguments, calls the engine
//! and prints. Logs go to stderr; stdout carries answers (and, in `cairn lsp`, the protocol).

mod index_cmds;
mod models_cmds;
mod provenance_cmds;
mod references_cmds;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use std::sync::Arc;

use cairn_engine::{
    CachedAnswer, CancellationToken, ChatAnswer, ChatTurn, CompleteRequest, CompletionOptions,
    Config, Fallback, IndexState, ModelIdentity, Position, StreamEvent, Trigger, Usage, Workspace,
    WorkspaceOptions,
};
use clap::{Parser, Subcommand};
use tokio::sync::mpsc;

/// mimalloc instead of glibc's malloc: indexing a large repository on two parse threads
/// and tantivy's indexing thread kept ~100 MB more in glibc's per-thread arenas, and
/// ran 16 % slower (bench/README.md, Index).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Ask the model even when the response cache holds an answer to the same
        /// question over the same sources (`[chat] cache = false` turns the cache off).
        #[arg(long)]
        no_cache: bool,
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
        /// `auto`: share one engine per user between editors, through a daemon on a
        /// Unix socket (started on first use), as `gopls -remote=auto` does.
        #[arg(long, value_name = "auto")]
        remote: Option<String>,
        /// Run the shared daemon (what `--remote auto` starts).
        #[arg(long, hide = true)]
        daemon: bool,
        /// The daemon's socket (default: $XDG_RUNTIME_DIR/cairn/lsp.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Serve the Model Context Protocol on stdin/stdout, so a coding agent (Claude Code,
    /// Copilot, Cursor, Zed, Continue …) searches this repository through Cairn and records
    /// the edits it makes. Shares the engine of `cairn lsp --remote auto` when its daemon has
    /// the repository open.
    Mcp {
        /// Let agents register their edits (`record_edit` writes signed ledger records, never
        /// files); without it every tool is read-only.
        #[arg(
            long,
            env = "CAIRN_MCP_RECORD_EDITS",
            action = clap::ArgAction::SetTrue,
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        record_edits: bool,
        /// Serve streamable HTTP on this loopback address (e.g. 127.0.0.1:8765) instead of stdio.
        #[arg(long, value_name = "127.0.0.1:PORT")]
        http: Option<std::net::SocketAddr>,
        /// Never share a running daemon's engine; open this repository in this process.
        #[arg(long)]
        no_share: bool,
        /// The `cairn lsp --remote auto` daemon's socket (default: $XDG_RUNTIME_DIR/cairn/lsp.sock);
        /// its MCP socket is `mcp.sock` beside it.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// The reference tracker: third-party code on disk that suggestions may reproduce.
    References {
        #[command(subcommand)]
        command: references_cmds::ReferencesCommand,
    },
    #[command(flatten)]
    Index(index_cmds::IndexCommands),
    #[command(flatten)]
    Provenance(provenance_cmds::ProvenanceCommands),
}

fn main() -> ExitCode {
    cairn_engine::init_logging();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::FAILURE
        }
    };
    // The model threads end before llama.cpp's globals are torn down at exit: one still
    // decoding (or freeing its model) then crashed the process after its work was done.
    if !cairn_engine::shutdown_model_threads(std::time::Duration::from_secs(10)) {
        tracing::warn!("a model thread did not stop within 10 s of exit");
    }
    code
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The repository's workspace; a model that cannot load is an error here (the CLI has
/// nothing to do without it), where the editor front ends keep serving.
fn open_workspace(repo: Option<PathBuf>) -> Result<Arc<Workspace>> {
    let root = index_cmds::repo_root(repo.as_deref())?;
    let config = Config::load(Some(&root))?;
    let options = WorkspaceOptions {
        watch: false,
        ..Default::default()
    };
    let ws = Workspace::open(&root, config, options)?;
    ws.models()?;
    Ok(ws)
}

/// Waits (showing progress on a terminal) until the index is usable or has failed.
async fn wait_for_index(ws: &Workspace) {
    let mut rx = ws.index_events();
    loop {
        let state = rx.borrow_and_update().clone();
        match state {
            IndexState::Opening | IndexState::Indexing { .. } => {
                if let IndexState::Indexing {
                    files_done,
                    files_total,
                } = state
                {
                    if std::io::stderr().is_terminal() {
                        eprint!("\rindexing {files_done}/{files_total} files");
                    }
                }
            }
            IndexState::Error { message } => {
                eprintln!("cairn: completing without repository context: {message}");
                return;
            }
            _ => return,
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models { command } => command.run(),
        Command::Lsp {
            stdio: _,
            remote,
            daemon,
            socket,
        } => {
            let options = cairn_lsp::ServerOptions {
                repo: cli.repo.clone(),
                ..Default::default()
            };
            let socket = socket.unwrap_or_else(cairn_lsp::shared::default_socket_path);
            let rt = runtime()?;
            match (remote.as_deref(), daemon) {
                (_, true) => {
                    let shared: Arc<cairn_lsp::shared::Workspaces> = Default::default();
                    // MCP clients (`cairn mcp`) reach the same engine on `mcp.sock`, for the
                    // repositories an editor has open here.
                    let mcp_socket = cairn_mcp::shared::socket_beside(&socket);
                    let lookup = {
                        let shared = shared.clone();
                        move |root: &std::path::Path| shared.get(root).map(|ws| (ws, shared.hold()))
                    };
                    let mcp = rt.spawn({
                        let mcp_socket = mcp_socket.clone();
                        async move {
                            if let Err(e) =
                                cairn_mcp::shared::serve(mcp_socket.clone(), lookup).await
                            {
                                tracing::warn!("no MCP socket at {}: {e}", mcp_socket.display());
                            }
                        }
                    });
                    // Exits after ten idle minutes (CAIRN_DAEMON_IDLE_SECS for tests).
                    let idle = std::env::var("CAIRN_DAEMON_IDLE_SECS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .map_or(std::time::Duration::from_secs(600), |s| {
                            std::time::Duration::from_secs(s)
                        });
                    let served = rt.block_on(cairn_lsp::shared::serve_daemon(
                        &socket, options, shared, idle,
                    ));
                    mcp.abort();
                    let _ = std::fs::remove_file(&mcp_socket);
                    served.with_context(|| format!("the daemon on {}", socket.display()))?;
                }
                (Some("auto"), false) => {
                    let mut daemon = std::process::Command::new(std::env::current_exe()?);
                    daemon.args(["lsp", "--daemon", "--socket"]).arg(&socket);
                    rt.block_on(cairn_lsp::shared::forward_stdio(&socket, daemon))
                        .with_context(|| format!("the shared engine at {}", socket.display()))?;
                }
                (Some(other), false) => {
                    anyhow::bail!("--remote takes `auto`, not {other:?}")
                }
                (None, false) => rt.block_on(cairn_lsp::serve_stdio(options)),
            }
            // Reading stdin parks a blocking thread that only returns with the next
            // byte; after `exit` nothing else is coming, so do not wait for it.
            rt.shutdown_background();
            Ok(ExitCode::SUCCESS)
        }
        Command::Mcp {
            record_edits,
            http,
            no_share,
            socket,
        } => {
            let root = index_cmds::repo_root(cli.repo.as_deref())?;
            let socket = socket.unwrap_or_else(cairn_lsp::shared::default_socket_path);
            let options = cairn_mcp::McpOptions {
                root,
                record_edits,
                http,
                daemon_socket: (!no_share).then(|| cairn_mcp::shared::socket_beside(&socket)),
            };
            let rt = runtime()?;
            let served = rt.block_on(cairn_mcp::run(options));
            // As for `cairn lsp`: a blocking stdin read may still be parked; nothing more comes.
            rt.shutdown_background();
            served.map_err(|e| anyhow::anyhow!(e))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Index(c) => c.run_in(cli.repo.as_deref()),
        Command::References { command } => {
            let root = index_cmds::repo_root(cli.repo.as_deref())?;
            command.run(&root)
        }
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
            no_cache,
        } => {
            let ws = open_workspace(cli.repo)?;
            let rt = runtime()?;
            let opts = AskOptions {
                max_tokens,
                no_cache,
            };
            rt.block_on(chat(ws, question.join(" "), opts, json))
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
            let root = index_cmds::repo_root(cli.repo.as_deref())?;
            let config = Config::load(Some(&root))?;
            let options = WorkspaceOptions {
                completion: CompletionOptions {
                    max_tokens,
                    ..Default::default()
                },
                watch: false,
                ..Default::default()
            };
            let ws = Workspace::open(&root, config, options)?;
            let path = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            let path = path.to_string_lossy().into_owned();
            // Character columns → the UTF-16 positions the workspace speaks.
            let line_text = text.split('\n').nth(line - 1).unwrap_or("");
            let character: usize = line_text.chars().take(col - 1).map(char::len_utf16).sum();
            ws.open_document(&path, 0, text);
            let rt = runtime()?;
            rt.block_on(async {
                wait_for_index(&ws).await;
                let done = ws
                    .complete(
                        CompleteRequest {
                            path,
                            position: Position::new((line - 1) as u32, character as u32),
                            trigger: Trigger::Automatic,
                            max_items: 1,
                        },
                        CancellationToken::new(),
                    )
                    .await?;
                let text = done
                    .items
                    .first()
                    .map(|i| i.text.clone())
                    .unwrap_or_default();
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "completion": text,
                            "recordId": done.items.first().map(|i| i.record_id.clone()),
                            "multiline": done.multiline,
                            "context": done.context,
                            "timings": done.timings,
                            "usage": done.usage,
                            "mode": done.mode,
                            "budget": done.budget,
                            "model": ws.status().model,
                        }))?
                    );
                } else {
                    println!("{text}");
                    eprintln!(
                        "[{} ms, {} context snippets]",
                        done.timings.total_ms.round(),
                        done.context.len()
                    );
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

/// How each question of a `cairn chat` session is asked.
#[derive(Clone, Copy)]
struct AskOptions {
    max_tokens: u32,
    no_cache: bool,
}

/// The one-line note of an answer from the response cache.
fn cached_note(model: &ModelIdentity, c: &CachedAnswer) -> String {
    format!(
        "[{} ({:?}) · from the cache: the same question over the same sources was answered at {} (record {}); --no-cache asks the model again]",
        model.name, model.origin, c.at, c.from_record
    )
}

fn report(model: &ModelIdentity, u: &Usage, fallback: Option<&Fallback>) {
    let fallback = fallback
        .map(|f| format!(", fallback from {} ({})", f.from, f.reason))
        .unwrap_or_default();
    eprintln!(
        "[{} ({:?}) · {} prompt tokens ({} reused) · {} generated · {:.0} ms · {:.0} tok/s{}]",
        model.name,
        model.origin,
        u.prompt_tokens,
        u.reused_prompt_tokens,
        u.generated_tokens,
        u.total_time.as_secs_f64() * 1000.0,
        u.generation_tokens_per_s(),
        fallback
    );
}

async fn chat(
    ws: Arc<Workspace>,
    question: String,
    opts: AskOptions,
    json: bool,
) -> Result<ExitCode> {
    let mut conversation: Option<String> = None;
    if !question.trim().is_empty() {
        // One question: answer it over the whole index.
        wait_for_index(&ws).await;
        let a = ask(&ws, &mut conversation, &question, opts, !json).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&a)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "Cairn chat over {} on {} (Ctrl-C stops an answer, Ctrl-D or /exit quits)",
            ws.root().display(),
            ws.status().chat_model.map(|m| m.name).unwrap_or_default()
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
        match ask(&ws, &mut conversation, q, opts, true).await {
            Ok(_) => {}
            // A failed turn is reported and the session goes on.
            Err(e) => eprintln!("cairn: {e:#}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn ask(
    ws: &Workspace,
    conversation: &mut Option<String>,
    q: &str,
    opts: AskOptions,
    stream: bool,
) -> Result<ChatAnswer> {
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
    let turn = ChatTurn {
        question: q.to_string(),
        conversation: conversation.clone(),
        max_tokens: Some(opts.max_tokens),
        no_cache: opts.no_cache,
        ..Default::default()
    };
    let result = ws.chat(turn, Some(tx), cancel).await;
    ctrl_c.abort();
    printer.await.ok();
    let a = result?;
    *conversation = Some(a.conversation_id.clone());
    if stream {
        println!();
        for c in &a.citations {
            println!("  [{}] {}:{}-{}", c.n, c.path, c.start_line, c.end_line);
        }
        for e in &a.edits {
            println!(
                "  proposed edit {} lines {}-{} (record {})",
                e.path,
                e.range.start.line + 1,
                e.range.end.line + 1,
                e.record_id
            );
        }
        match &a.cached {
            Some(c) => eprintln!("{}", cached_note(&a.model, c)),
            None => report(&a.model, &a.usage, a.fallback.as_ref()),
        }
    }
    Ok(a)
}
