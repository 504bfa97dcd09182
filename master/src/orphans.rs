//! Frees orphans: files whose last name went while a client held them
//! open (`store::held`), once no client holds them. Also ends the sessions
//! of clients gone silent (crashed), which lets their orphans go.

use std::time::{Duration, Instant};

use dfs_server_kit::worker::{Next, Worker};

use dfs_proto::InodeId;

use crate::store::{Mutation, Store, Writer};

/// How often orphans are looked at: space comes back this long (at most,
/// plus a mount's 5 s keepalive) after a last close.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Most orphans looked at, and freed in one mutation, per pass.
const PER_PASS: usize = 1_000;

/// (After the start of a master that has had mounts holding files, the
/// registry counts every file as held for one session timeout while the
/// mounts restate what they hold: nothing is freed then.)
pub struct OrphanSweeper {
    store: Store,
    writer: Writer,
}

impl OrphanSweeper {
    pub fn new(store: Store, writer: Writer) -> Self {
        OrphanSweeper { store, writer }
    }
}

impl Worker for OrphanSweeper {
    fn name(&self) -> &'static str {
        "orphan_sweeper"
    }

    fn interval(&self) -> Duration {
        SWEEP_EVERY
    }

    async fn pass(&mut self) -> Next {
        let now = Instant::now();
        let held = self.writer.held();
        held.expire(now);
        let store = self.store.clone();
        let orphans = match tokio::task::spawn_blocking(move || store.orphans(PER_PASS)).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "listing orphans failed");
                return Next::Tick;
            }
            Err(_) => return Next::Tick,
        };
        let free: Vec<InodeId> = orphans.into_iter().filter(|i| !held.holds(*i)).collect();
        if free.is_empty() {
            return Next::Tick;
        }
        let count = free.len();
        // The writer checks again that no one holds them.
        match self.writer.submit(Mutation::FreeOrphans(free)).await {
            Ok(_) => tracing::debug!(count, "freed files unlinked while open, now closed"),
            Err(e) => tracing::warn!(error = %e, "freeing orphans failed"),
        }
        // A full page: more may be waiting.
        if count == PER_PASS {
            Next::Now
        } else {
            Next::Tick
        }
    }
}
