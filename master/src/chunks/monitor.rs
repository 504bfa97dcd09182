//! The master's background chunk work: a tick of the engine per interval
//! (safe mode, garbage collection, the replication plan, drained nodes;
//! see `engine::tick`).

use std::sync::Arc;
use std::time::Duration;

use super::chunk_map::Census;
use super::ChunkManager;

/// Runs the passes until the process ends.
pub async fn run(manager: Arc<ChunkManager>) {
    let mut ticker = tokio::time::interval(manager.config.monitor_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        manager.tick();
    }
}

/// What the last pass found, for the status endpoint, the dashboard and
/// `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassSummary {
    pub census: Census,
    pub garbage_chunks: u64,
}

/// How long the master waits for one copy: a chunk at a slow 4 MiB/s, plus
/// a margin.
pub fn copy_timeout(chunk_size: u64) -> Duration {
    Duration::from_secs(30u64.saturating_add(chunk_size / (4 << 20)))
}
