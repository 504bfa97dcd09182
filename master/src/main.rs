//! `dfs-master --listen HOST:PORT --data-dir DIR [--config FILE]`

use std::process::ExitCode;

use dfs_common::config::{load, ConfigError};
use dfs_master::config::MasterConfig;

#[tokio::main]
async fn main() -> ExitCode {
    let config: MasterConfig = match load(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("dfs-master: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("dfs-master: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match dfs_master::server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-master: {e:#}");
            ExitCode::FAILURE
        }
    }
}
