//! Frees orphans: files whose last name went while a client held them
//! open (`store::held`), once no client holds them. Also ends the sessions
//! of clients gone silent (crashed), which lets their orphans go.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dfs_server_kit::worker::{Next, Worker};

use dfs_proto::InodeId;

use crate::store::{Mutation, Store, Writer};

/// How often orphans are looked at: space comes back this long (at most,
/// plus a mount's 5 s keepalive) after a last close.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

pub struct OrphanSweeper {
    store: Store,
    writer: Writer,
    /// Orphans made before this master started (read at the first pass):
    /// their holders may not have restated what they hold yet, so they
    /// wait one session timeout. Orphans made since were held by
    /// sessions this master knows.
    inherited: Option<HashSet<InodeId>>,
    frees_inherited_from: Instant,
}

impl OrphanSweeper {
    pub fn new(store: Store, writer: Writer, started: Instant) -> Self {
        let frees_inherited_from = started + writer.held().timeout();
        OrphanSweeper { store, writer, inherited: None, frees_inherited_from }
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
        let orphans = match tokio::task::spawn_blocking(move || store.orphans()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "listing orphans failed");
                return Next::Tick;
            }
            Err(_) => return Next::Tick,
        };
        let inherited = self.inherited.get_or_insert_with(|| orphans.iter().copied().collect());
        let waiting = now < self.frees_inherited_from;
        if !waiting {
            inherited.clear();
        }
        let may_wait = |i: &InodeId| waiting && inherited.contains(i);
        let free: Vec<InodeId> = orphans.into_iter().filter(|i| !(held.holds(*i) || may_wait(i))).collect();
        for inode in free {
            // The writer checks again that no one holds it.
            match self.writer.submit(Mutation::FreeOrphan(inode)).await {
                Ok(_) => tracing::debug!(%inode, "freed a file unlinked while open, now closed"),
                Err(e) => tracing::warn!(%inode, error = %e, "freeing an orphan failed"),
            }
        }
        Next::Tick
    }
}
