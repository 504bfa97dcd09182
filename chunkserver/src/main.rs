//! `dfs-chunkserver --listen HOST:PORT --master URL --data-dir DIR [--config FILE]`

use std::process::ExitCode;

use dfs_chunkserver::config::ChunkserverConfig;
use dfs_common::config::{load, ConfigError};

#[tokio::main]
async fn main() -> ExitCode {
    let config: ChunkserverConfig = match load(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("dfs-chunkserver: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("dfs-chunkserver: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match dfs_chunkserver::server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-chunkserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}
