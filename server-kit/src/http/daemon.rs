//! What every daemon's `main` does: load and check its configuration, set up
//! logging, run until SIGINT or SIGTERM, and turn the outcome into an exit code.

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{load, ConfigError};

/// A daemon's configuration struct.
pub trait DaemonConfig: Parser + Serialize + DeserializeOwned {
    /// Names the first broken relation between settings.
    fn validate(&self) -> Result<(), ConfigError>;
    /// The log filter (tracing's env-filter syntax).
    fn log_filter(&self) -> &str;
}

/// Runs a daemon: exit 2 for bad configuration, 1 when `run` fails.
pub async fn daemon_main<C, F, Fut>(name: &str, run: F) -> ExitCode
where
    C: DaemonConfig,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config: C = match load(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    // Colours only on a terminal: a log file or journald gets plain lines,
    // which `grep request_id=ID` finds (escapes would split the fields).
    // Each line shows the spans it was logged in, with their fields.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(config.log_filter()).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM: the signal for a graceful shutdown.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
