//! `POST /v1/chunks/{handle}/replicate`: copy a chunk from another
//! chunkserver, on the master's order (re-replication).
//!
//! The copy is built beside any replica of the chunk here (the chunk store's
//! `copies/`, never reported or served): it is filled with pieces read from
//! the source, each checked against the checksums the source sent with it,
//! then synced and read back whole against its checksums, and only then
//! swapped in for the replica here, atomically. An unreachable, failing or
//! hostile source therefore never deletes or damages the replica here: a
//! copy that fails is dropped, one cut short by a crash is dropped at the
//! next start. One copy per chunk at a time, each paced to
//! `replication_mib_per_sec`, each holding at most one piece in memory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use dfs_proto::endpoint::chunkserver::ReadData;
use dfs_proto::endpoint::url;
use dfs_proto::wire::chunks::{parse_checksum_header, DataQuery, ReplicaReport, ReplicateChunk, HEADER_CHECKSUMS};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind};
use dfs_server_kit::http::call::{body_up_to, CallError};
use dfs_server_kit::http::{request_id, ApiError, ApiJson, ApiPath};

use super::error::chunk_error;
use crate::chunk_store::{check_chunk_size, ChunkError};
use crate::node::{blocking, CopyClaim, InFlight, Node};
use crate::pacing::Pacer;

/// Bytes read from the source per request (and so held in memory per copy).
const PIECE_BYTES: u64 = 8 << 20;
/// A version the master never hands out (chunks start at 1).
const NEVER_ISSUED: ChunkVersion = ChunkVersion(0);

/// `POST /v1/chunks/{handle}/replicate` with a [`ReplicateChunk`]; answers
/// the new replica once it is durable at the requested version.
pub async fn replicate(State(n): State<Arc<Node>>, ApiPath(h): ApiPath<u64>, ApiJson(r): ApiJson<ReplicateChunk>) -> Result<Json<ReplicaReport>, ApiError> {
    n.serving()?;
    let handle = ChunkHandle(h);
    check_request(&n, &r)?;
    // Only from a chunkserver of this cluster: an order naming any other URL
    // must not make this node send requests there (nor take its bytes).
    n.peers.require(std::slice::from_ref(&r.source), crate::peers::REFRESH_WAIT).await?;
    let Some(claim) = CopyClaim::take(&n, handle) else {
        return Err(ApiError::new(ErrorKind::EAGAIN, format!("chunk {handle} is already being copied here")));
    };
    // A task of its own: the copy runs on if the master stops waiting, so it
    // always ends durable or removed, never half-written and still claimed.
    // It reads the source under the master's request id (`request_id::spawn`).
    let copied = request_id::spawn(copy(n, claim, r)).await;
    copied.unwrap_or_else(|e| Err(ApiError::new(ErrorKind::EIO, format!("copy of chunk {handle}: {e}")))).map(Json)
}

fn check_request(n: &Node, r: &ReplicateChunk) -> Result<(), ApiError> {
    let invalid = |m: String| Err(ApiError::new(ErrorKind::EINVAL, m));
    if !dfs_server_kit::tls::fits(&r.source) {
        return invalid(format!("source must be an {}:// URL, not {:?}", dfs_server_kit::tls::scheme(), r.source));
    }
    if r.source.trim_end_matches('/') == n.address {
        return invalid("a chunkserver cannot copy a chunk from itself".into());
    }
    if r.version == NEVER_ISSUED {
        return invalid("version 0 is never current; a copy needs a real version".into());
    }
    super::replicas::issuable(r.version)?;
    // Before anything is deleted: a request that cannot succeed changes nothing.
    check_chunk_size(r.chunk_size_bytes).or_else(invalid)
}

/// The whole copy; the claim is released when it returns.
async fn copy(n: Arc<Node>, claim: CopyClaim, r: ReplicateChunk) -> Result<ReplicaReport, ApiError> {
    let handle = claim.handle;
    let _load = InFlight::new(&n.in_flight);
    let started = Instant::now();
    tracing::info!(chunk = %handle, version = %r.version, source = %r.source, "copying a replica");
    refuse_if_newer_here(&n, handle, r.version)?;
    let (store, version, size) = (n.store.clone(), r.version, r.chunk_size_bytes);
    blocking(move || store.begin_copy(handle, version, size)).await.map_err(chunk_error)?;
    let done = match fill(&n, handle, &r).await {
        Ok(()) => commit(&n, handle, r.version, &r.source).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(report) => {
            n.replicas_copied.fetch_add(1, Ordering::Relaxed);
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(chunk = %handle, version = %r.version, bytes = report.length, ms, "copied a replica");
            Ok(report)
        }
        Err(e) => {
            discard(&n, handle).await;
            Err(e)
        }
    }
}

/// A replica here newer than the order means the order is out of date:
/// ESTALE, since versions never go down (checked again at the swap, under
/// the replica's lock). One at `version` or older is replaced by the copy
/// once the copy is durable.
fn refuse_if_newer_here(n: &Node, handle: ChunkHandle, version: ChunkVersion) -> Result<(), ApiError> {
    match n.store.info(handle) {
        Some(i) if i.version > version => Err(chunk_error(ChunkError::VersionConflict { handle, have: i.version, want: version })),
        _ => Ok(()),
    }
}

/// Fills the copy from the source, piece by piece, until the chunk size or
/// a short piece (the end of the source's replica).
async fn fill(n: &Node, handle: ChunkHandle, r: &ReplicateChunk) -> Result<(), ApiError> {
    let mut pacer = Pacer::new(n.replication_bytes_per_sec);
    let mut offset = 0;
    while offset < r.chunk_size_bytes {
        let want = PIECE_BYTES.min(r.chunk_size_bytes - offset);
        let (data, crcs) = fetch(n, handle, r, offset, want).await?;
        let got = data.len() as u64;
        let store = n.store.clone();
        let version = r.version;
        let written = blocking(move || store.write_copy(handle, version, offset, &data, &crcs)).await;
        written.map_err(|e| write_error(e, &r.source))?;
        n.bytes_replicated.fetch_add(got, Ordering::Relaxed);
        offset += got;
        if got < want {
            break;
        }
        pacer.add(got).await;
    }
    Ok(())
}

/// One piece of the source's replica, with the CRC32s it was sent with.
async fn fetch(n: &Node, handle: ChunkHandle, r: &ReplicateChunk, offset: u64, want: u64) -> Result<(Vec<u8>, Vec<u32>), ApiError> {
    let source = r.source.trim_end_matches('/');
    let failed = |m: String| ApiError::new(ErrorKind::EIO, format!("copying chunk {handle} from {source}: {m}"));
    let query = DataQuery { version: r.version, offset, length: Some(want) };
    let url = url::<ReadData>(source, &handle, &query).map_err(|e| failed(e.to_string()))?;
    // Signed: the source serves a peer's copy without a chunk token.
    let resp = n.auth.send(&n.http, n.http.get(&url)).await.map_err(|e| failed(CallError::unreachable(&url, e).to_string()))?;
    if !resp.status().is_success() {
        return Err(match CallError::refused(&url, resp).await {
            CallError::Refused { status: 409, message, .. } => {
                ApiError::new(ErrorKind::ESTALE, format!("{source} no longer holds chunk {handle} at version {}: {message}", r.version))
            }
            e => failed(e.to_string()),
        });
    }
    let crc_text = resp.headers().get(HEADER_CHECKSUMS).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // Memory stays bounded whatever the source sends.
    let data = body_up_to(&url, resp, want).await.map_err(|e| failed(e.to_string()))?;
    let crcs = parse_checksum_header(&crc_text, data.len() as u64).map_err(failed)?;
    Ok((data, crcs))
}

fn write_error(e: ChunkError, source: &str) -> ApiError {
    match e {
        // The source verified what it read: a mismatch is damage on the way.
        ChunkError::BodyChecksum { .. } => ApiError::new(ErrorKind::EIO, format!("data from {source}: {e}")),
        // Deleted under us (a delete order raced the copy); the master may retry.
        ChunkError::UnknownChunk(h) => ApiError::new(ErrorKind::EAGAIN, format!("the copy of chunk {h} was removed meanwhile")),
        e => chunk_error(e),
    }
}

/// Makes the copy durable, checks it whole, and swaps it in for the
/// replica here; answers what is now stored.
async fn commit(n: &Node, handle: ChunkHandle, version: ChunkVersion, source: &str) -> Result<ReplicaReport, ApiError> {
    let store = n.store.clone();
    let info = blocking(move || store.finish_copy(handle, version)).await.map_err(|e| write_error(e, source))?;
    Ok(ReplicaReport { handle, version: info.version, length: info.length, dirty: info.dirty })
}

/// Drops a failed copy (best effort: one left behind is dropped at the
/// next start). The replica here, if any, is never touched.
async fn discard(n: &Node, handle: ChunkHandle) {
    let store = n.store.clone();
    match blocking(move || store.abort_copy(handle)).await {
        Ok(()) => tracing::info!(chunk = %handle, "dropped a failed copy"),
        Err(e) => tracing::warn!(chunk = %handle, error = %e, "could not drop a failed copy"),
    }
}
