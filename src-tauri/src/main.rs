// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// The same allocator as the `cairn` command (see cli/src/main.rs): less memory held
/// while the repository is indexed, and faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cairn_desktop::run(std::env::args().skip(1).collect())
}
