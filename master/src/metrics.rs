//! The master's figures for `/metrics` (the API adds the request counts and
//! latencies of the shared middleware): at scrape time chunks by state, chunkservers by
//! state and their heartbeat ages and traffic, the replication queue and
//! background work, lease grants, checksum failures, namespace counts.
//! Everything is read from counters, the monitor's census and short
//! snapshots: a scrape never scans the chunk map.

use std::sync::atomic::Ordering;

use dfs_server_kit::http::metrics::{label, Labels, Snapshot};

use crate::raft::role::Role;
use crate::state::Master;

/// The Raft group as this master sees it (several masters only): whether
/// it serves as the leader, its term, log and applied index, and on the
/// leader each member's lag (entries it has yet to take).
fn raft_figures(role: &Role, m: &mut Snapshot) {
    let Some(raft) = role.raft() else { return };
    let r = raft.metrics().borrow().clone();
    m.gauge("dfs_master_raft_leader", "1 while this master leads the masters and serves", role.serves() as u8 as f64);
    m.gauge("dfs_master_raft_term", "The Raft term this master is in", r.current_term as f64);
    let last = r.last_log_index.unwrap_or(0);
    m.gauge("dfs_master_raft_last_log_index", "The last entry in this master's Raft log", last as f64);
    m.gauge("dfs_master_raft_applied_index", "The last entry this master applied", r.last_applied.map_or(0, |l| l.index) as f64);
    let lag = r.replication.iter().flatten().map(|(id, matched)| (label("member", id.to_string()), last.saturating_sub(matched.map_or(0, |l| l.index)) as f64));
    m.gauges("dfs_master_raft_member_lag", "Entries each member has yet to take (on the leader)", lag.collect());
}

fn node_labels(address: &str) -> Labels {
    label("address", address)
}

/// The figures at this moment (the namespace counts read on the blocking
/// pool); `GET /metrics` answers them with the request counts.
pub async fn snapshot(s: &Master) -> Snapshot {
    let store = s.store.clone();
    let fs = tokio::task::spawn_blocking(move || store.counters().map(|c| c.stats())).await.ok().and_then(Result::ok);
    let mut m = Snapshot::default();
    let census = s.chunks.census();
    let chunk_states = [
        ("total", census.total),
        ("healthy", census.healthy),
        ("under_replicated", census.under_replicated),
        ("over_replicated", census.over_replicated),
        ("missing", census.missing),
        ("stale", census.stale),
        ("corrupt", census.corrupt),
    ];
    let chunk_series = chunk_states.iter().map(|(k, v)| (label("state", *k), *v as f64)).collect();
    m.gauges("dfs_master_chunks", "Chunks by state (at the last sample)", chunk_series);
    let nodes = s.chunks.chunkservers();
    let states = ["live", "dead", "decommissioning", "decommissioned"];
    let by_state = states.iter().map(|st| (label("state", *st), nodes.iter().filter(|n| n.state == *st).count() as f64)).collect();
    m.gauges("dfs_master_chunkservers", "Chunkservers by state", by_state);
    let ages = nodes.iter().map(|n| (node_labels(&n.address), n.last_heartbeat_age_ms as f64 / 1000.0)).collect();
    m.gauges("dfs_master_chunkserver_heartbeat_age_seconds", "Time since each chunkserver's last heartbeat", ages);
    let used = nodes.iter().map(|n| (node_labels(&n.address), n.used_bytes as f64)).collect();
    m.gauges("dfs_master_chunkserver_used_bytes", "Bytes used on each chunkserver", used);
    let capacity = nodes.iter().map(|n| (node_labels(&n.address), n.capacity_bytes as f64)).collect();
    m.gauges("dfs_master_chunkserver_capacity_bytes", "Capacity of each chunkserver", capacity);
    let traffic = s.history.traffic();
    let (mut read, mut written) = (Vec::new(), Vec::new());
    for n in &nodes {
        if let Some(t) = traffic.get(&n.node_id) {
            read.push((node_labels(&n.address), t.bytes_read));
            written.push((node_labels(&n.address), t.bytes_written));
        }
    }
    m.counters("dfs_master_chunkserver_read_bytes", "Bytes read from each chunkserver since its start (heartbeats)", read);
    m.counters("dfs_master_chunkserver_written_bytes", "Bytes written to each chunkserver since its start (heartbeats)", written);
    let r = s.chunks.replication_status();
    m.gauge("dfs_master_replication_queue", "Chunks waiting for copies (under-replicated, at the last pass)", r.under_replicated as f64);
    m.gauge("dfs_master_copies_running", "Replica copies in flight", r.copies_running as f64);
    let copies = vec![(label("result", "done"), r.copies_done), (label("result", "failed"), r.copies_failed)];
    m.counters("dfs_master_copies", "Replica copies finished", copies);
    m.gauge("dfs_master_deletes_waiting", "Replica deletions waiting for a heartbeat", r.deletes_waiting as f64);
    m.counter("dfs_master_deletes_sent", "Replica deletions handed to chunkservers", r.deletes_sent);
    m.gauge("dfs_master_garbage_chunks", "Chunks of removed data waiting out the grace period", r.garbage_chunks as f64);
    m.gauge("dfs_master_safe_mode", "1 while in safe mode", r.safe_mode.on as u8 as f64);
    let stats = s.chunks.stats();
    m.counter("dfs_master_lease_grants", "Chunk leases granted", stats.leases_granted.load(Ordering::Relaxed));
    let corrupt = stats.corrupt_reports.load(Ordering::Relaxed);
    m.counter("dfs_master_checksum_failures", "Replicas reported corrupt (failed checksum verification)", corrupt);
    if let Some(fs) = fs {
        m.gauge("dfs_master_files", "Files in the namespace", fs.files as f64);
        m.gauge("dfs_master_directories", "Directories in the namespace", fs.directories as f64);
        m.gauge("dfs_master_file_bytes", "Bytes of all files (before replication)", fs.bytes as f64);
    }
    raft_figures(&s.role, &mut m);
    s.workers.add_to(&mut m, "dfs_master");
    m.gauge("dfs_master_uptime_seconds", "Seconds since the start", s.started.elapsed().as_secs_f64());
    m
}
