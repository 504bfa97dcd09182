//! `dfs-chunkserver --listen HOST:PORT --master URL --data-dir DIR [--config FILE]`

use std::process::ExitCode;

use dfs_common::http::daemon::daemon_main;
use dfs_chunkserver::config::ChunkserverConfig;

#[tokio::main]
async fn main() -> ExitCode {
    dfs_common::memory::keep_freed_memory();
    daemon_main::<ChunkserverConfig, _, _>("dfs-chunkserver", dfs_chunkserver::server::run).await
}
