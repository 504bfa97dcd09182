//! The node's reports of damage to the master: a replica here that failed
//! verification (moved aside first, never served again), or the next
//! replica of a write that failed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dfs_proto::endpoint::master::ReportBad;
use dfs_proto::wire::chunks::BadReplica;
use dfs_proto::ChunkHandle;
use dfs_server_kit::http::call::{signed_json, CallError};

use super::disk::blocking;
use super::state::Node;

/// Moves a corrupt replica aside (never served again) and tells the master.
pub async fn quarantine_and_report(n: &Arc<Node>, handle: ChunkHandle) {
    tracing::error!(chunk = %handle, "replica failed verification; quarantined");
    n.checksum_failures.fetch_add(1, Ordering::Relaxed);
    let store = n.store.clone();
    if let Err(e) = blocking(move || store.quarantine(handle)).await {
        tracing::error!(chunk = %handle, error = %e, "quarantine failed");
    }
    let bad = BadReplica { handle, node_id: Some(n.id), address: None, corrupt: true, reporter_version: None, token: None };
    if let Err(e) = report_bad(n, &bad).await {
        tracing::warn!(chunk = %handle, error = %e, "could not report a bad replica");
    }
}

/// `POST /v1/chunks/bad` to the master, signed: a chunkserver's report is
/// acted on (a client's only has the replica verified).
pub async fn report_bad(n: &Node, bad: &BadReplica) -> Result<(), CallError> {
    signed_json::<ReportBad>(&n.auth, &n.http, &n.masters.current(), &(), bad, None).await.map(drop)
}
