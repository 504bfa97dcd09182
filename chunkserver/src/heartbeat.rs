//! The heartbeat loop: capacity, use and load every interval, with a full
//! chunk report at registration, periodically, and whenever the master asks.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_common::wire::chunks::{Heartbeat, HeartbeatResponse, ReplicaReport};

use crate::api::Node;

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
        replicas.into_iter().map(|c| ReplicaReport { handle: c.handle, version: c.version, length: c.length }).collect()
    });
    Heartbeat {
        node_id: node.id,
        address: node.address.clone(),
        capacity_bytes: used + available_bytes(&node.data_dir),
        used_bytes: used,
        chunk_count,
        load: node.in_flight.load(Ordering::Relaxed),
        report,
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
                }
                if r.json::<HeartbeatResponse>().await.is_ok_and(|a| a.send_report) {
                    last_report = None;
                    ticker.reset_immediately();
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
