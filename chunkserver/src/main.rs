//! `dfs-chunkserver --listen HOST:PORT --master URL --data-dir DIR [--config FILE]`

use std::process::ExitCode;

use dfs_common::http::daemon::daemon_main;
use dfs_chunkserver::config::ChunkserverConfig;

#[tokio::main]
async fn main() -> ExitCode {
    daemon_main::<ChunkserverConfig, _, _>("dfs-chunkserver", dfs_chunkserver::server::run).await
}
