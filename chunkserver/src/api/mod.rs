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
//! - [`webhdfs`]: WebHDFS's data step (CREATE, APPEND, OPEN,
//!   GETFILECHECKSUM), through the client library as the master's grant says.

pub mod caller;
pub mod data;
pub mod download;
pub mod error;
pub mod read_budget;
pub mod replicas;
pub mod replicate;
pub mod status_page;
pub mod verify;
pub mod webhdfs;

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
use axum::Extension;
use axum::Router;
use dfs_proto::endpoint::chunkserver as ep;
use dfs_server_kit::http::route::Routes;

use crate::node::Node;

/// Largest JSON body of a control request (create, version, replicate):
/// a few hundred bytes in practice. The data PUT streams its body, which
/// this limit does not touch; it is bounded by `max_write_bytes` instead.
pub const CONTROL_BODY_MAX_BYTES: usize = 64 * 1024;

/// The routes, from the endpoint declarations (`dfs_proto::endpoint::
/// chunkserver`). Public: the status page, metrics, downloads, status, the
/// short-circuit socket's path, and the data routes (each checks a chunk
/// token or a peer's signature itself, see `caller`). Internal (the master
/// and peers only): replica commands and info, whose signatures the router
/// checks before the handler runs.
pub fn router(node: Arc<Node>) -> Router {
    let metrics = dfs_server_kit::http::metrics::HttpMetrics::new("dfs_chunkserver");
    Routes::new(node.auth.clone())
        .serve::<ep::StatusPage, _, _>(status_page::page)
        .serve::<ep::Metrics, _, _>(status_page::metrics)
        .serve::<ep::Files, _, _>(download::file)
        .serve::<ep::ReadData, _, _>(data::read)
        .serve::<ep::WriteData, _, _>(data::write)
        .serve::<ep::Fsync, _, _>(replicas::fsync)
        .serve::<ep::Status, _, _>(replicas::status)
        .serve::<ep::Local, _, _>(replicas::local)
        .serve::<ep::CreateReplica, _, _>(replicas::create)
        .serve::<ep::SetVersion, _, _>(replicas::set_version)
        .serve::<ep::Replicate, _, _>(replicate::replicate)
        .serve::<ep::Verify, _, _>(verify::verify)
        .serve::<ep::ReplicaInfo, _, _>(replicas::info)
        .into_router()
        .route(dfs_proto::webhdfs::PREFIX, axum::routing::any(webhdfs::serve))
        .route(&format!("{}/{{*path}}", dfs_proto::webhdfs::PREFIX), axum::routing::any(webhdfs::serve))
        .fallback(status_page::fallback)
        .method_not_allowed_fallback(dfs_server_kit::http::error::method_not_allowed)
        // Every body read whole (JSON) on any route; the streamed data PUT is not affected.
        .layer(DefaultBodyLimit::max(CONTROL_BODY_MAX_BYTES))
        .layer(Extension(metrics.clone()))
        .layer(axum::middleware::from_fn_with_state(metrics, dfs_server_kit::http::metrics::track))
        .with_state(node)
}
