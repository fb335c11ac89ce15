//! cairn-desktop: the desktop app, a Tauri window over one repository that hosts the
//! engine in-process (chat with citations, proposed edits as diffs, provenance, settings).
//! It must never do the engine's work: it translates between the window and
//! `cairn_engine::Workspace`, and it writes files only inside the open repository.

mod app;
pub mod desktop;
pub mod editor;
pub mod error;
pub mod files;
pub mod settings;
pub mod sharing;

pub use app::run;
pub use desktop::{Desktop, DesktopOptions, EventSink};
pub use error::{DesktopError, ErrorKind};
