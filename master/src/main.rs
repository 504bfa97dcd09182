//! `dfs-master --listen HOST:PORT --data-dir DIR [--config FILE]`

use std::process::ExitCode;

use dfs_common::http::daemon::daemon_main;
use dfs_master::config::MasterConfig;

#[tokio::main]
async fn main() -> ExitCode {
    daemon_main::<MasterConfig, _, _>("dfs-master", dfs_master::server::run).await
}
