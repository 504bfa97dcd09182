//! The chunkserver's HTTP API: thin handlers over the node (`crate::node`),
//! which never calls back into them.
//!
//! - [`data`]: `PUT`/`GET /v1/chunks/{handle}/data`: pipelined writes and
//!   verified reads.
//! - [`replicas`]: replica commands from the master (create, new version),
//!   fsync, replica info, the node's status and its short-circuit socket.
//! - [`replicate`]: copying a chunk from another chunkserver
//!   (re-replication, on the master's order).
//! - [`status_page`]: the HTML status page at `/`, `/metrics`, HTML 404s.
//! - [`read_budget`]: the memory budget of read answers.
//! - [`error`]: the node's and the chunk store's errors as API answers.
//! - [`download`]: `GET /files?path=`: a whole file, read through the client
//!   library (the dashboard's download links land here).

pub mod caller;
pub mod data;
pub mod download;
pub mod error;
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

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use dfs_common::http::internal::require_signed;

use crate::node::Node;

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
