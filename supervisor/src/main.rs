//! `fazt`: the one binary. Parses arguments, sets up logging, runs the chosen
//! role or command, and maps the outcome to an exit code (0 ok, 1 runtime
//! error, 2 usage error).

use std::process::ExitCode;

use clap::Parser;
use fazt_supervisor::{cli, commands, usage};

fn main() -> ExitCode {
    // clap exits by itself: 0 for --help/--version, 2 for usage errors.
    let cli = cli::Cli::parse();
    init_tracing();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(usage) = err.downcast_ref::<usage::UsageError>() {
                eprintln!("error: {usage}");
                return ExitCode::from(2);
            }
            eprintln!("error: {}", report(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each said once: a cause whose
/// text its parent already quotes (an OS error inside an I/O error's
/// message) is not repeated.
fn report(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Logs go to stderr, one line per event; the filter comes from `FAZT_LOG`,
/// else `RUST_LOG`, else `info`.
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("FAZT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_os_error_is_reported_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let err = anyhow::Error::new(fazt_ipc::IpcError::from(io)).context("asking the supervisor");
        let shown = super::report(&err);
        assert_eq!(shown.matches("os error 2").count(), 1, "{shown}");
        assert!(shown.starts_with("asking the supervisor: "), "{shown}");
    }
}
