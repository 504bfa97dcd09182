//! The master's background chunk work: a tick of the engine per interval
//! (safe mode, garbage collection, the replication plan, drained nodes;
//! see `engine::tick`).

use std::sync::Weak;
use std::time::Duration;

use dfs_server_kit::worker::{Next, Worker};

use super::chunk_map::Census;
use super::ChunkManager;

/// The worker that ticks the engine. It holds the manager weakly: the
/// manager (and its Writer handle) must not outlive the server for it.
pub struct Monitor {
    manager: Weak<ChunkManager>,
    interval: Duration,
}

impl Monitor {
    pub fn new(manager: Weak<ChunkManager>, interval: Duration) -> Self {
        Monitor { manager, interval }
    }
}

impl Worker for Monitor {
    fn name(&self) -> &'static str {
        "chunk_monitor"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn pass(&mut self) -> Next {
        match self.manager.upgrade() {
            Some(m) => {
                m.tick();
                Next::Tick
            }
            None => Next::Stop,
        }
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
