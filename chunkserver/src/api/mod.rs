//! The chunkserver's HTTP API.
//!
//! - [`data`]: `PUT`/`GET /v1/chunks/{handle}/data`: pipelined writes and
//!   verified reads.
//! - [`replicas`]: replica commands from the master (create, new version),
//!   fsync, replica info, the node's status and its short-circuit socket.
//! - [`replicate`]: copying a chunk from another chunkserver
//!   (re-replication, on the master's order).
//! - [`status_page`]: the HTML status page at `/`, `/metrics`, HTML 404s.
//! - [`read_budget`]: the memory budget of read answers.
//! - [`download`]: `GET /files?path=`: a whole file, read through the client
//!   library (the dashboard's download links land here).

pub mod caller;
pub mod data;
pub mod download;
pub mod read_budget;
pub mod replicas;
pub mod replicate;
pub mod status_page;
pub mod verify;

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod edge_tests;
#[cfg(test)]
mod test_cluster;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use dfs_common::auth::TokenVerifier;
use dfs_common::http::internal::{require_signed, ClusterAuth};
use dfs_common::http::ApiError;
use dfs_common::local_reads::LocalEndpoint;
use dfs_common::{ChunkHandle, ErrorKind, NodeId};

use crate::chunk_store::{ChunkError, ChunkStore};
use crate::peers::PeerList;
use crate::scrubber::ScrubStats;

/// Everything the handlers and the heartbeat loop share.
pub struct Node {
    pub id: NodeId,
    /// This node's base URL as clients and peers reach it.
    pub address: String,
    pub master: String,
    pub data_dir: PathBuf,
    pub store: Arc<ChunkStore>,
    /// Data requests in progress (reported as load).
    pub in_flight: AtomicU32,
    pub bytes_written: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Replicas removed on the master's order (heartbeat answers).
    pub replicas_deleted: AtomicU64,
    /// Copies made from other chunkservers and made current.
    pub replicas_copied: AtomicU64,
    /// Bytes written by copies, counted per piece (failed copies included).
    pub bytes_replicated: AtomicU64,
    /// Chunks being copied here now: one copy of a chunk at a time.
    pub copying: Mutex<HashSet<ChunkHandle>>,
    /// Bandwidth limit of each copy, in bytes/s.
    pub replication_bytes_per_sec: u64,
    pub scrub: ScrubStats,
    /// Replicas that failed checksum verification (reads and scrubs).
    pub checksum_failures: AtomicU64,
    /// Replica syncs asked for by writers (`POST .../fsync`).
    pub syncs: crate::metrics::SyncCounters,
    pub max_write_bytes: u64,
    /// Bytes of write bodies held in memory at once, in MiB permits: writes
    /// past it wait instead of growing memory without bound.
    pub write_budget: tokio::sync::Semaphore,
    /// Bytes of read answers held in memory at once, in MiB permits, each
    /// held until its answer is sent (or dropped): reads past it wait.
    pub read_budget: Arc<tokio::sync::Semaphore>,
    pub http: reqwest::Client,
    pub started: Instant,
    /// Where clients on this host get short-circuit reads, if served.
    pub local: Option<LocalEndpoint>,
    /// Signs this node's internal requests (heartbeats, reports, forwarded
    /// writes, copies) and checks those it receives.
    pub auth: Arc<ClusterAuth>,
    /// The chunk-token keys of the master's last verified announcement.
    pub tokens: Arc<TokenVerifier>,
    /// The registered chunkservers: the only forward targets and copy sources.
    pub peers: PeerList,
    /// The cluster this node belongs to, recorded at its first registration.
    pub cluster_id: OnceLock<String>,
    /// The master has taken this process's first full chunk report. Until
    /// then data is neither read, written nor versioned here: the master
    /// may still list replicas as the previous process left them, and the
    /// disk may have lost writes since (a power cut); the report is what
    /// lets the master judge them.
    pub registered: AtomicBool,
}

impl Node {
    /// Refuses data work (temporarily) until the master has our report.
    pub fn serving(&self) -> Result<(), ApiError> {
        match self.registered.load(Ordering::Acquire) {
            true => Ok(()),
            false => Err(ApiError::new(ErrorKind::EAGAIN, "this chunkserver has not reported its replicas to the master yet")),
        }
    }
}

/// Counts a data request as load while it lives.
pub struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    pub fn new(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Largest JSON body of a control request (create, version, replicate):
/// a few hundred bytes in practice. The data PUT streams its body, which
/// this limit does not touch; it is bounded by `max_write_bytes` instead.
pub const CONTROL_BODY_MAX_BYTES: usize = 64 * 1024;

/// The routes. Public: the status page, metrics, downloads, status, the
/// short-circuit socket's path, and the data routes (each checks a chunk
/// token or a peer's signature itself, see `caller`). Internal (the master
/// and peers only): replica commands and info, behind `require_signed`.
pub fn router(node: Arc<Node>) -> Router {
    let metrics = dfs_common::http::metrics::HttpMetrics::new("dfs_chunkserver");
    let internal = Router::new()
        .route("/v1/chunks/{handle}/create", post(replicas::create))
        .route("/v1/chunks/{handle}/version", post(replicas::set_version))
        .route("/v1/chunks/{handle}/replicate", post(replicate::replicate))
        .route("/v1/chunks/{handle}/verify", post(verify::verify))
        .route("/v1/chunks/{handle}", get(replicas::info))
        .route_layer(axum::middleware::from_fn_with_state(node.auth.clone(), require_signed));
    Router::new()
        .route("/", get(status_page::page))
        .route("/metrics", status_page::metrics_route(metrics.clone()))
        .route("/files", get(download::file))
        .route("/v1/chunks/{handle}/data", get(data::read).put(data::write))
        .route("/v1/chunks/{handle}/fsync", post(replicas::fsync))
        .route("/v1/status", get(replicas::status))
        .route("/v1/local", get(replicas::local))
        .merge(internal)
        .fallback(status_page::fallback)
        .method_not_allowed_fallback(dfs_common::http::error::method_not_allowed)
        // Every body read whole (JSON) on any route; the streamed data PUT is not affected.
        .layer(DefaultBodyLimit::max(CONTROL_BODY_MAX_BYTES))
        .layer(axum::middleware::from_fn_with_state(metrics, dfs_common::http::metrics::track))
        .with_state(node)
}

/// Maps a chunk-store error to its API answer.
pub fn chunk_error(e: ChunkError) -> ApiError {
    let kind = match &e {
        ChunkError::UnknownChunk(_) => ErrorKind::ENOENT,
        ChunkError::Exists => ErrorKind::EEXIST,
        ChunkError::VersionConflict { .. } => ErrorKind::ESTALE,
        ChunkError::OutOfRange { .. } | ChunkError::BodyChecksum { .. } | ChunkError::BadArgument(_) => ErrorKind::EINVAL,
        ChunkError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => ErrorKind::ENOSPC,
        ChunkError::Corrupt { .. } | ChunkError::SyncFailed { .. } | ChunkError::Io(..) => ErrorKind::EIO,
    };
    ApiError::new(kind, e.to_string())
}

/// Runs a blocking chunk-store call on the blocking pool.
pub async fn blocking<T, F>(f: F) -> Result<T, ChunkError>
where
    F: FnOnce() -> Result<T, ChunkError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ChunkError::Io(std::io::Error::other(e.to_string()))),
    }
}
