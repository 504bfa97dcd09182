//! Replica commands (from the master), fsync (from writers), and status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use dfs_proto::auth::Ops;
use dfs_proto::local_reads::LocalEndpoint;
use dfs_proto::wire::chunks::{BadReplica, ChunkserverStatus, CreateReplica, DataQuery, ReplicaInfo, SetReplicaVersion};
use dfs_proto::wire::namespace::Done;
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind};
use dfs_server_kit::http::{ApiError, ApiJson, ApiPath, ApiQuery};

use super::caller::Caller;
use super::error::chunk_error;
use crate::chunk_store::ChunkError;
use crate::node::{available_bytes, blocking, report_bad, Node};

/// `POST /v1/chunks/{handle}/create`: a new empty replica. Refused before
/// the master took this process's first report, like every order: a new
/// process at the address of one the master still counts live would
/// otherwise make replicas recorded under the old node's id (simulator
/// seeds 308 and 322).
pub async fn create(State(n): State<Arc<Node>>, ApiPath(h): ApiPath<u64>, ApiJson(r): ApiJson<CreateReplica>) -> Result<Json<Done>, ApiError> {
    n.serving()?;
    issuable(r.version)?;
    let store = n.store.clone();
    blocking(move || store.create(ChunkHandle(h), r.version, r.chunk_size_bytes)).await.map_err(chunk_error)?;
    Ok(Json(Done {}))
}

/// `POST /v1/chunks/{handle}/version`: the replica joins a new lease's version.
pub async fn set_version(State(n): State<Arc<Node>>, ApiPath(h): ApiPath<u64>, ApiJson(r): ApiJson<SetReplicaVersion>) -> Result<Json<Done>, ApiError> {
    n.serving()?;
    issuable(r.version)?;
    let store = n.store.clone();
    blocking(move || store.set_version(ChunkHandle(h), r.version)).await.map_err(chunk_error)?;
    Ok(Json(Done {}))
}

/// Refuses a version the master never hands out (EINVAL): a replica at it
/// could never be moved on, nor reported.
pub(super) fn issuable(version: ChunkVersion) -> Result<(), ApiError> {
    match version.in_range() {
        true => Ok(()),
        false => Err(ApiError::new(ErrorKind::EINVAL, format!("version {version} is above the highest version ever issued ({})", ChunkVersion::MAX_ISSUED))),
    }
}

/// `POST /v1/chunks/{handle}/fsync?version=V`: makes the replica durable.
/// Any token for the chunk at `V` will do: a sync changes no byte, and a
/// writer closing (or fsyncing) long after its lease ended holds only the
/// read token of a location; asking for a write token would move the
/// chunk to a new version for nothing.
pub async fn fsync(State(n): State<Arc<Node>>, ApiPath(h): ApiPath<u64>, ApiQuery(q): ApiQuery<DataQuery>, caller: Caller) -> Result<Json<Done>, ApiError> {
    n.serving()?;
    let store = n.store.clone();
    let handle = ChunkHandle(h);
    caller.token_for(&n, handle, q.version, Ops::READ).or_else(|_| caller.token_for(&n, handle, q.version, Ops::WRITE))?;
    let length = match store.info(handle) {
        None => return Err(ApiError::new(ErrorKind::ENOENT, format!("no replica of chunk {handle}"))),
        Some(i) if i.version != q.version => return Err(ApiError::new(ErrorKind::ESTALE, format!("replica is at version {}, not {}", i.version, q.version))),
        Some(i) => i.length,
    };
    if let Err(e) = blocking(move || store.sync(handle)).await {
        if matches!(e, ChunkError::SyncFailed { .. }) {
            report_damaged(&n, handle).await;
        }
        return Err(chunk_error(e));
    }
    n.syncs.replica_fsyncs.fetch_add(1, Ordering::Relaxed);
    n.syncs.synced_bytes.fetch_add(length, Ordering::Relaxed);
    Ok(Json(Done {}))
}

/// Tells the master that a replica could not be made durable (the store
/// has set it aside), so it stops counting it and re-replicates the chunk.
async fn report_damaged(n: &Arc<Node>, handle: ChunkHandle) {
    let bad = BadReplica { handle, node_id: Some(n.id), address: None, corrupt: false, reporter_version: None, token: None };
    if let Err(e) = report_bad(n, &bad).await {
        tracing::warn!(chunk = %handle, error = %e, "could not report a damaged replica");
    }
}

/// `GET /v1/chunks/{handle}`: the replica's version and length.
pub async fn info(State(n): State<Arc<Node>>, ApiPath(h): ApiPath<u64>) -> Result<Json<ReplicaInfo>, ApiError> {
    match n.store.info(ChunkHandle(h)) {
        Some(i) => Ok(Json(ReplicaInfo { handle: i.handle, version: i.version, length: i.length, chunk_size_bytes: i.chunk_size })),
        None => Err(ApiError::new(ErrorKind::ENOENT, format!("no replica of chunk {h}"))),
    }
}

/// `GET /v1/local`: the socket and process token of short-circuit reads,
/// for a client on this host; 404 where they are not served. Neither is a
/// secret: each read on the socket needs its chunk's token.
pub async fn local(State(n): State<Arc<Node>>) -> Result<Json<LocalEndpoint>, ApiError> {
    n.serving()?;
    let endpoint = n.local.clone().ok_or_else(|| ApiError::new(ErrorKind::ENOENT, "short-circuit reads are off on this chunkserver"))?;
    Ok(Json(endpoint))
}

/// `GET /v1/status`: this node at a glance.
pub async fn status(State(n): State<Arc<Node>>) -> Json<ChunkserverStatus> {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Json(ChunkserverStatus {
        node_id: n.id,
        address: n.address.clone(),
        master: n.master.clone(),
        // Trust, without secrets: the cluster, the peers, how many token keys.
        cluster_id: n.cluster_id.get().cloned(),
        peers: n.peers.addresses(),
        token_keys: n.tokens.key_count(),
        chunks: n.store.list().len(),
        used_bytes: n.store.used_bytes(),
        in_flight: u64::from(n.in_flight.load(Ordering::Relaxed)),
        bytes_written: get(&n.bytes_written),
        bytes_read: get(&n.bytes_read),
        replicas_deleted: get(&n.replicas_deleted),
        replicas_copied: get(&n.replicas_copied),
        bytes_replicated: get(&n.bytes_replicated),
        scrub: n.scrub.counters(),
        checksum_failures: get(&n.checksum_failures),
        capacity_bytes: n.store.used_bytes() + available_bytes(&n.data_dir),
        uptime_s: n.started.elapsed().as_secs(),
    })
}
