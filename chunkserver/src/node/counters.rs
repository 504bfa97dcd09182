//! The node's running totals that more than one part updates or shows:
//! the scrubber's progress (heartbeats, status, `/metrics`) and the syncs
//! done for writers.

use std::sync::atomic::{AtomicU64, Ordering};

use dfs_proto::wire::chunks::ScrubCounters;

/// The scrubber's progress since start-up, shown by `GET /v1/status`.
#[derive(Debug, Default)]
pub struct ScrubStats {
    pub passes_completed: AtomicU64,
    /// Replicas checked to a verdict, sound or corrupt.
    pub replicas_verified: AtomicU64,
    /// The bytes of those replicas.
    pub bytes_verified: AtomicU64,
    /// Replicas that failed their check (each quarantined and reported).
    pub corrupt_found: AtomicU64,
    /// Replicas done in the current pass (or the last one, when idle).
    pub pass_done: AtomicU64,
    /// Replicas listed at the start of the current (or last) pass.
    pub pass_total: AtomicU64,
    /// When the last pass ended, in ms since the Unix epoch; 0: none yet.
    pub last_pass_completed_unix_ms: AtomicU64,
}

impl ScrubStats {
    /// The progress as heartbeats carry it.
    pub fn progress(&self) -> dfs_proto::wire::chunks::ScrubProgress {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        dfs_proto::wire::chunks::ScrubProgress {
            passes_completed: get(&self.passes_completed),
            pass_done: get(&self.pass_done),
            pass_total: get(&self.pass_total),
            corrupt_found: get(&self.corrupt_found),
            last_pass_completed_unix_ms: get(&self.last_pass_completed_unix_ms),
        }
    }

    /// Since the process started, as `/v1/status` shows them.
    pub fn counters(&self) -> ScrubCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = get(&self.last_pass_completed_unix_ms);
        ScrubCounters {
            passes_completed: get(&self.passes_completed),
            replicas_verified: get(&self.replicas_verified),
            bytes_verified: get(&self.bytes_verified),
            corrupt_found: get(&self.corrupt_found),
            pass_replicas_done: get(&self.pass_done),
            pass_replicas_total: get(&self.pass_total),
            last_pass_completed_unix_ms: (last > 0).then_some(last),
        }
    }
}

/// Replica syncs done for writers (`fsync`, a durable close): the proof
/// that a close asked this node to put a file's bytes on disk.
#[derive(Default)]
pub struct SyncCounters {
    pub replica_fsyncs: AtomicU64,
    /// The replicas' lengths when synced (what each sync covered).
    pub synced_bytes: AtomicU64,
}
