//! Logs for every Cairn process: `tracing` to stderr (stdout belongs to answers and, in
//! `cairn lsp`, to the protocol), filtered by `CAIRN_LOG` (`warn` by default; llama.cpp's own
//! load-time notes about model files only from `error`).

/// Installs the subscriber once; later calls are no-ops.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| "warn,llama_cpp_2=error,llama-cpp-2=error".into());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}
