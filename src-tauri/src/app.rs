//! The Tauri side: commands that hand the window's requests to [`Desktop`] and
//! events that go back to the window. Nothing here decides anything.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use crate::desktop::{
    AppliedView, ChatRequest, ChatView, Desktop, DesktopOptions, EditorSetup, EventSink,
    ExportView, ProvenanceView, StatusView,
};
use crate::editor::OpenedView;
use crate::error::{DesktopError, ErrorKind};
use crate::files::Lines;
use crate::settings::{SettingsForm, SettingsView};
use crate::sharing::EditorsView;

type Cmd<T> = Result<T, DesktopError>;

/// When the process started, for "interactive after N ms".
static STARTED: OnceLock<Instant> = OnceLock::new();

struct WindowEvents(AppHandle);

impl EventSink for WindowEvents {
    fn emit(&self, event: &str, payload: serde_json::Value) {
        if let Err(e) = self.0.emit(event, payload) {
            tracing::debug!("event {event} not delivered: {e}");
        }
    }
}

fn sink(app: AppHandle) -> Arc<dyn EventSink> {
    Arc::new(WindowEvents(app))
}

/// What the window learns when it starts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    /// The repository named on the command line (`cairn-desktop PATH`).
    pub path: Option<String>,
    pub recent: Vec<String>,
    pub version: String,
}

#[tauri::command]
fn startup(startup: State<'_, StartupArgs>, desktop: State<'_, Arc<Desktop>>) -> Startup {
    Startup {
        path: startup.path.clone(),
        recent: desktop.recent(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The window calls this once it can take input: the start-up time is logged (and
/// read by the benchmark).
#[tauri::command]
fn ui_ready() -> f64 {
    let ms = STARTED
        .get()
        .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
    eprintln!("cairn-desktop: interactive after {ms:.0} ms");
    ms
}

#[tauri::command]
async fn open_repository(
    app: AppHandle,
    desktop: State<'_, Arc<Desktop>>,
    path: String,
) -> Cmd<StatusView> {
    desktop.open_repository(&path, sink(app)).await
}

#[tauri::command]
fn status(desktop: State<'_, Arc<Desktop>>) -> Cmd<StatusView> {
    desktop.status()
}

#[tauri::command]
async fn chat(
    app: AppHandle,
    desktop: State<'_, Arc<Desktop>>,
    request: ChatRequest,
) -> Cmd<ChatView> {
    desktop.chat(request, sink(app)).await
}

#[tauri::command]
fn cancel_chat(desktop: State<'_, Arc<Desktop>>, request_id: String) -> bool {
    desktop.cancel_chat(&request_id)
}

#[tauri::command]
fn read_lines(
    desktop: State<'_, Arc<Desktop>>,
    path: String,
    start: usize,
    end: usize,
) -> Cmd<Lines> {
    desktop.read_lines(&path, start, end)
}

#[tauri::command]
async fn apply_edit(desktop: State<'_, Arc<Desktop>>, record_id: String) -> Cmd<AppliedView> {
    desktop.apply_edit(&record_id).await
}

#[tauri::command]
async fn dismiss_edit(desktop: State<'_, Arc<Desktop>>, record_id: String) -> Cmd<()> {
    desktop.dismiss_edit(&record_id).await
}

#[tauri::command]
async fn provenance(
    desktop: State<'_, Arc<Desktop>>,
    range: Option<String>,
) -> Cmd<ProvenanceView> {
    desktop.provenance(range).await
}

#[tauri::command]
async fn export_report(
    desktop: State<'_, Arc<Desktop>>,
    format: String,
    range: Option<String>,
    dest: Option<String>,
) -> Cmd<ExportView> {
    desktop.export_report(&format, range, dest).await
}

#[tauri::command]
async fn settings(desktop: State<'_, Arc<Desktop>>) -> Cmd<SettingsView> {
    let d = desktop.inner().clone();
    tokio::task::spawn_blocking(move || d.settings())
        .await
        .map_err(|e| DesktopError::new(ErrorKind::Config, e.to_string(), "Try again"))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    settings: SettingsView,
    status: Option<StatusView>,
}

#[tauri::command]
async fn save_settings(
    app: AppHandle,
    desktop: State<'_, Arc<Desktop>>,
    form: SettingsForm,
) -> Cmd<Saved> {
    let (settings, status) = desktop.save_settings(form, sink(app)).await?;
    Ok(Saved { settings, status })
}

#[tauri::command]
fn editor_setup(desktop: State<'_, Arc<Desktop>>) -> EditorSetup {
    desktop.editor_setup()
}

/// Opens a repository file at a line in the person's editor (`$VISUAL`, `$EDITOR`),
/// else with the desktop's default application.
#[tauri::command]
async fn open_in_editor(
    desktop: State<'_, Arc<Desktop>>,
    path: String,
    line: Option<u32>,
) -> Cmd<OpenedView> {
    desktop.open_in_editor(&path, line).await
}

/// Whether editors reach this window's engine (the window polls it).
#[tauri::command]
fn editors(desktop: State<'_, Arc<Desktop>>) -> EditorsView {
    desktop.editors()
}

struct StartupArgs {
    path: Option<String>,
}

const USAGE: &str = "cairn-desktop: Cairn's chat window over a repository

usage: cairn-desktop [PATH]

PATH   the repository to open (default: the recent list, or a folder you choose)

Configuration and models are shared with the `cairn` command line
(~/.config/cairn/config.toml, or $CAIRN_CONFIG).";

/// Starts the window. `args` are the command-line arguments without the program name.
pub fn run(args: Vec<String>) -> std::process::ExitCode {
    STARTED.get_or_init(Instant::now);
    cairn_engine::init_logging();
    let mut path = None;
    for a in args {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return std::process::ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("cairn-desktop {}", env!("CARGO_PKG_VERSION"));
                return std::process::ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => {
                eprintln!("cairn-desktop: unknown option {s}\n\n{USAGE}");
                return std::process::ExitCode::from(2);
            }
            s if path.is_none() => path = Some(s.to_string()),
            s => {
                eprintln!("cairn-desktop: one repository at a time (got {s} too)\n\n{USAGE}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    // A relative PATH means relative to where the command ran.
    let path = path.map(|p| {
        let pb = std::path::PathBuf::from(&p);
        if pb.is_relative() && !p.starts_with('~') {
            std::env::current_dir()
                .map(|d| d.join(&pb).display().to_string())
                .unwrap_or(p)
        } else {
            p
        }
    });
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        eprintln!(
            "cairn-desktop: no display (neither DISPLAY nor WAYLAND_DISPLAY is set): run it in a desktop session, or use `cairn chat` in a terminal"
        );
        return std::process::ExitCode::FAILURE;
    }
    let desktop = Arc::new(Desktop::new(DesktopOptions::for_user()));
    // GTK that cannot reach the display panics inside the window library; say it plainly.
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        run_window(desktop, path)
    }));
    match started {
        Ok(code) => code,
        Err(_) => {
            eprintln!(
                "cairn-desktop: the window could not start (see the message above): check that the display is reachable (DISPLAY, XAUTHORITY) and WebKitGTK 4.1 is installed"
            );
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_window(desktop: Arc<Desktop>, path: Option<String>) -> std::process::ExitCode {
    let on_exit = desktop.clone();
    let built = tauri::Builder::default()
        // The native folder picker behind "Choose…" (the window calls `dialog.open`).
        .plugin(tauri_plugin_dialog::init())
        .manage(desktop)
        .manage(StartupArgs { path })
        .invoke_handler(tauri::generate_handler![
            startup,
            ui_ready,
            open_repository,
            status,
            chat,
            cancel_chat,
            read_lines,
            apply_edit,
            dismiss_edit,
            provenance,
            export_report,
            settings,
            save_settings,
            editor_setup,
            open_in_editor,
            editors,
        ])
        .build(tauri::generate_context!());
    match built {
        Ok(app) => {
            app.run(move |_, event| {
                if let tauri::RunEvent::Exit = event {
                    on_exit.shutdown();
                }
            });
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn-desktop: the window could not start: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
