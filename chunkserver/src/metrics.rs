//! The chunkserver's point-in-time figures for `/metrics` (request counts
//! and latencies come from the shared middleware): bytes read, written and
//! copied, replicas held, replica syncs, checksum failures, the scrubber's
//! progress, the background workers' passes.

use std::sync::atomic::{AtomicU64, Ordering};

use dfs_server_kit::http::metrics::Snapshot;

use crate::node::{available_bytes, Node};

/// Gathers the figures (blocking: lists the store and asks the file system).
pub fn snapshot(n: &Node) -> Snapshot {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut s = Snapshot::default();
    let used = n.store.used_bytes();
    s.counter("dfs_chunkserver_read_bytes", "Bytes served to readers", get(&n.bytes_read));
    s.counter("dfs_chunkserver_written_bytes", "Bytes of client writes taken", get(&n.bytes_written));
    s.counter("dfs_chunkserver_replicated_bytes", "Bytes written by copies from peers", get(&n.bytes_replicated));
    s.gauge("dfs_chunkserver_replicas", "Replicas held", n.store.list().len() as f64);
    s.gauge("dfs_chunkserver_used_bytes", "Bytes used by replicas", used as f64);
    s.gauge("dfs_chunkserver_capacity_bytes", "Used plus available bytes", (used + available_bytes(&n.data_dir)) as f64);
    s.gauge("dfs_chunkserver_requests_in_flight", "Data requests in progress", n.in_flight.load(Ordering::Relaxed) as f64);
    s.counter("dfs_chunkserver_checksum_failures", "Replicas that failed checksum verification", get(&n.checksum_failures));
    s.counter("dfs_chunkserver_replicas_copied", "Copies made from peers", get(&n.replicas_copied));
    s.counter("dfs_chunkserver_replicas_deleted", "Replicas deleted on the master's order", get(&n.replicas_deleted));
    s.counter("dfs_chunkserver_replica_fsyncs", "Replicas synced to disk on a writer's request", get(&n.syncs.replica_fsyncs));
    s.counter("dfs_chunkserver_synced_bytes", "Bytes held by the replicas synced on writers' requests", get(&n.syncs.synced_bytes));
    let scrub = n.scrub.progress();
    s.counter("dfs_chunkserver_scrub_passes", "Scrub passes completed", scrub.passes_completed);
    s.counter("dfs_chunkserver_scrub_verified_replicas", "Replicas verified by the scrubber", get(&n.scrub.replicas_verified));
    s.counter("dfs_chunkserver_scrub_corrupt_replicas", "Corrupt replicas found by the scrubber", scrub.corrupt_found);
    s.gauge("dfs_chunkserver_scrub_pass_done", "Replicas done in the current scrub pass", scrub.pass_done as f64);
    s.gauge("dfs_chunkserver_scrub_pass_total", "Replicas in the current scrub pass", scrub.pass_total as f64);
    n.workers.add_to(&mut s, "dfs_chunkserver");
    s.gauge("dfs_chunkserver_uptime_seconds", "Seconds since the start", n.started.elapsed().as_secs_f64());
    s
}
