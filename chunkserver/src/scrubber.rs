//! The background scrubber: re-reads every replica and checks each 64 KiB
//! block against its CRC32, so damage to data nobody reads is found (and the
//! chunk re-replicated by the master) while other copies are still sound.
//!
//! A pass lists the replicas and verifies them one at a time on the blocking
//! pool, paced to `scrub_mib_per_sec`. Passes start at most once per
//! `scrub_period_ms` (one that overruns is followed at once by the next).
//! The first starts min(period, 10 s) after start-up: a node that restarted,
//! perhaps after a crash, is checked soon rather than a whole period later.
//! The tick, the stop signal and the figures are `dfs_server_kit::worker`'s.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dfs_proto::ChunkHandle;
use dfs_server_kit::worker::{Next, Worker};
use tokio::time::Instant;

use crate::chunk_store::{ChunkError, ChunkStore};
use crate::node::{blocking, quarantine_and_report, Node, ScrubStats};
use crate::pacing::Pacer;

/// Longest wait before the first pass.
const FIRST_PASS_DELAY: Duration = Duration::from_secs(10);

/// What one pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PassOutcome {
    pub verified: u64,
    pub corrupt: u64,
    pub bytes: u64,
}

/// The scrubber worker: a pass over every replica each period.
pub struct Scrubber {
    node: Arc<Node>,
    period: Duration,
    bytes_per_sec: u64,
}

impl Scrubber {
    pub fn new(node: Arc<Node>, period: Duration, bytes_per_sec: u64) -> Self {
        Scrubber { node, period, bytes_per_sec }
    }
}

impl Worker for Scrubber {
    fn name(&self) -> &'static str {
        "scrubber"
    }

    fn interval(&self) -> Duration {
        self.period
    }

    fn first_pass_after(&self) -> Duration {
        self.period.min(FIRST_PASS_DELAY)
    }

    async fn pass(&mut self) -> Next {
        let started = Instant::now();
        let node = &self.node;
        let on_corrupt = |handle| {
            let n = node.clone();
            async move { quarantine_and_report(&n, handle).await }
        };
        let found = scrub_pass(&node.store, &node.scrub, self.bytes_per_sec, on_corrupt).await;
        let secs = started.elapsed().as_secs();
        tracing::info!(replicas = found.verified, bytes = found.bytes, corrupt = found.corrupt, secs, "scrub pass done");
        Next::Tick
    }
}

/// Verifies every replica the store holds at the start, paced to
/// `bytes_per_sec` (0: unpaced), counting into `stats`. A corrupt replica is
/// handed to `on_corrupt`; one deleted meanwhile is skipped; other failures
/// are logged and the pass goes on.
pub async fn scrub_pass<F, Fut>(store: &Arc<ChunkStore>, stats: &ScrubStats, bytes_per_sec: u64, mut on_corrupt: F) -> PassOutcome
where
    F: FnMut(ChunkHandle) -> Fut,
    Fut: Future<Output = ()>,
{
    let replicas = store.list();
    stats.pass_done.store(0, Ordering::Relaxed);
    stats.pass_total.store(replicas.len() as u64, Ordering::Relaxed);
    let mut pacer = Pacer::new(bytes_per_sec);
    let mut found = PassOutcome::default();
    for info in replicas {
        let s = store.clone();
        let checked = blocking(move || s.verify(info.handle)).await;
        let sound = match checked {
            Ok(()) => true,
            Err(ChunkError::Corrupt { .. }) => false,
            Err(ChunkError::UnknownChunk(_)) => {
                stats.pass_done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                tracing::warn!(chunk = %info.handle, error = %e, "scrubbing a replica failed");
                stats.pass_done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        found.verified += 1;
        found.bytes += info.length;
        stats.replicas_verified.fetch_add(1, Ordering::Relaxed);
        stats.bytes_verified.fetch_add(info.length, Ordering::Relaxed);
        if !sound {
            found.corrupt += 1;
            stats.corrupt_found.fetch_add(1, Ordering::Relaxed);
            on_corrupt(info.handle).await;
        }
        stats.pass_done.fetch_add(1, Ordering::Relaxed);
        pacer.add(info.length).await;
    }
    stats.passes_completed.fetch_add(1, Ordering::Relaxed);
    stats.last_pass_completed_unix_ms.store(unix_ms(), Ordering::Relaxed);
    found
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use dfs_proto::ChunkVersion;

    use super::*;
    use crate::chunk_store::BLOCK_BYTES;

    const V1: ChunkVersion = ChunkVersion(1);

    /// A replica of three and a bit blocks of non-zero bytes.
    fn add_replica(store: &ChunkStore, handle: ChunkHandle) -> u64 {
        let data: Vec<u8> = (0..3 * BLOCK_BYTES + 100).map(|i| (i % 251) as u8 | 1).collect();
        store.create(handle, V1, 8 * BLOCK_BYTES).unwrap();
        store.write(handle, V1, 0, &data, None).unwrap();
        data.len() as u64
    }

    /// Flips one bit of a replica's data file, as bit rot would.
    fn flip_byte(dir: &std::path::Path, handle: ChunkHandle, pos: u64) {
        use std::os::unix::fs::FileExt;
        let path = dir.join("chunks").join(format!("{:016x}.data", handle.0));
        let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, pos).unwrap();
        b[0] ^= 0x10;
        f.write_all_at(&b, pos).unwrap();
    }

    #[tokio::test]
    async fn a_pass_finds_the_flipped_byte_and_passes_the_sound_replica() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ChunkStore::open(dir.path()).unwrap());
        let (sound, rotten) = (ChunkHandle(1), ChunkHandle(2));
        let len = add_replica(&store, sound);
        add_replica(&store, rotten);
        flip_byte(dir.path(), rotten, 2 * BLOCK_BYTES + 7);

        let stats = ScrubStats::default();
        let mut reported = Vec::new();
        let found = scrub_pass(&store, &stats, 0, |h| {
            reported.push(h);
            std::future::ready(())
        })
        .await;

        assert_eq!(reported, vec![rotten]);
        assert_eq!(found, PassOutcome { verified: 2, corrupt: 1, bytes: 2 * len });
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(get(&stats.corrupt_found), 1);
        assert_eq!(get(&stats.replicas_verified), 2);
        assert_eq!(get(&stats.bytes_verified), 2 * len);
        assert_eq!((get(&stats.pass_done), get(&stats.pass_total)), (2, 2));
        assert_eq!(get(&stats.passes_completed), 1);
        assert!(get(&stats.last_pass_completed_unix_ms) > 0);
        assert_eq!(stats.counters().corrupt_found, 1);
        // The sound replica is untouched and still served.
        assert_eq!(store.read(sound, V1, 0, 10).unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_replica_deleted_during_a_pass_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ChunkStore::open(dir.path()).unwrap());
        let (rotten, doomed) = (ChunkHandle(1), ChunkHandle(2));
        add_replica(&store, rotten);
        add_replica(&store, doomed);
        flip_byte(dir.path(), rotten, 5);
        let stats = ScrubStats::default();
        assert_eq!(stats.counters().last_pass_completed_unix_ms, None);
        // Replicas are scrubbed by handle: `doomed` goes while `rotten` is reported.
        let found = scrub_pass(&store, &stats, 0, |_| {
            store.delete(doomed).unwrap();
            std::future::ready(())
        })
        .await;
        assert_eq!(found, PassOutcome { verified: 1, corrupt: 1, bytes: found.bytes });
        assert_eq!(stats.pass_done.load(Ordering::Relaxed), 2);
        assert_eq!(stats.replicas_verified.load(Ordering::Relaxed), 1);
        assert!(stats.counters().last_pass_completed_unix_ms.is_some());
    }
}
