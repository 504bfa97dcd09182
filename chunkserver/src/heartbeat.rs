//! The heartbeat loop: capacity, use and load every interval, with a full
//! chunk report at registration, periodically, and whenever the master asks;
//! and the replica deletes the master answers with.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_common::wire::chunks::{DeleteReplica, Heartbeat, HeartbeatResponse, ReplicaReport};

use crate::api::replicate::copy_in_progress;
use crate::api::Node;
use crate::chunk_store::ChunkError;

/// Bytes available to unprivileged writers on the file system holding `dir`.
pub fn available_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return 0 };
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and s a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    s.f_bavail as u64 * s.f_frsize as u64
}

fn build(node: &Node, with_report: bool) -> Heartbeat {
    let used = node.store.used_bytes();
    let replicas = node.store.list();
    let chunk_count = replicas.len() as u64;
    let report = with_report.then(|| {
        replicas.into_iter().map(|c| ReplicaReport { handle: c.handle, version: c.version, length: c.length, dirty: c.dirty }).collect()
    });
    Heartbeat {
        node_id: node.id,
        address: node.address.clone(),
        capacity_bytes: used + available_bytes(&node.data_dir),
        used_bytes: used,
        chunk_count,
        load: node.in_flight.load(Ordering::Relaxed),
        report,
        bytes_read: node.bytes_read.load(Ordering::Relaxed),
        bytes_written: node.bytes_written.load(Ordering::Relaxed),
        scrub: Some(node.scrub.progress()),
        registering: !node.registered.load(Ordering::Acquire),
        cluster_id: None,
        peers_epoch: 0,
    }
}

/// Runs until the process ends. Failures are logged and retried next tick.
pub async fn run(node: Arc<Node>, interval: Duration, report_interval: Duration) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    let url = format!("{}/v1/heartbeat", node.master);
    let mut last_report: Option<Instant> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let with_report = last_report.is_none_or(|t| t.elapsed() >= report_interval);
        let n = node.clone();
        let Ok(hb) = tokio::task::spawn_blocking(move || build(&n, with_report)).await else { continue };
        match http.post(&url).json(&hb).send().await {
            Ok(r) if r.status().is_success() => {
                if with_report {
                    last_report = Some(Instant::now());
                    node.registered.store(true, std::sync::atomic::Ordering::Release);
                }
                match r.json::<HeartbeatResponse>().await {
                    Ok(answer) => {
                        if answer.send_report {
                            last_report = None;
                            ticker.reset_immediately();
                        }
                        apply_deletes(&node, answer.delete).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable heartbeat answer"),
                }
            }
            Ok(r) => tracing::warn!(status = %r.status(), "master refused a heartbeat"),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                // The master may have restarted: report everything once it is back.
                last_report = None;
            }
        }
    }
}

/// Carries out the master's deletes, in one trip to the blocking pool.
async fn apply_deletes(node: &Arc<Node>, deletes: Vec<DeleteReplica>) {
    if deletes.is_empty() {
        return;
    }
    let n = node.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || deletes.into_iter().for_each(|d| delete_one(&n, d))).await {
        tracing::error!(error = %e, "deleting replicas failed");
    }
}

/// Removes a replica at a version at most the one named (checked under its
/// lock: one moved on meanwhile is kept), unless a copy of it is being made
/// here: that copy is the master's own later order, and ends durable or removed.
pub(crate) fn delete_one(node: &Node, d: DeleteReplica) {
    if copy_in_progress(node, d.handle) {
        tracing::info!(chunk = %d.handle, "not deleting a replica while copying it");
        return;
    }
    match node.store.delete_up_to(d.handle, d.max_version) {
        Ok(version) => {
            node.replicas_deleted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(chunk = %d.handle, %version, "deleted a replica on the master's order");
        }
        Err(ChunkError::UnknownChunk(_)) => {}
        Err(ChunkError::VersionConflict { have, .. }) => {
            tracing::info!(chunk = %d.handle, version = %have, max_version = %d.max_version, "kept a replica newer than the delete order");
        }
        Err(e) => tracing::warn!(chunk = %d.handle, error = %e, "deleting a replica failed"),
    }
}
