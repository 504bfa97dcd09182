//! The HTTP/JSON API under `/v1/`. Handlers validate at the edge, run reads
//! on the blocking pool and send mutations to the writer.
//!
//! - [`mutations`]: mkdir, create, symlink, rename, unlink, rmdir, delete, setattr.
//! - [`queries`]: stat (by path or inode), lookup, list, readlink, fs counters.
//! - [`chunks`]: heartbeats, chunk locations, write leases, bad replicas,
//!   committed lengths and record-append reservations.
//! - [`admin`]: cluster identity, the consistency check, fsck, safe mode,
//!   replication status and decommissioning.
//! - [`dashboard`]: the HTML dashboard (`/`, `/chunkservers`, `/browse`,
//!   `/file`, `/work`, `/events`, `/download`), its JSON under
//!   `/v1/dashboard/`, `/metrics`, and HTML 404s outside `/v1/`.
//!
//! - [`store_call`]: store calls on the blocking pool, store errors as answers.
//!
//! The handlers read the master's shared state (`crate::state::Master`).
//! Errors and extractors come from `dfs_common::http`: every failure is
//! `{"error": KIND, "message": ...}`.

pub mod admin;
pub mod chunks;
pub mod dashboard;
pub mod mutations;
pub mod queries;
pub mod store_call;
#[cfg(test)]
mod trust_tests;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use dfs_common::auth::signature::HEADER_AUTH;
use dfs_common::http::internal::{require_signed, ClusterAuth};

use crate::state::Master;

/// Largest heartbeat body: a full report of about four million replicas.
pub const HEARTBEAT_MAX_BYTES: usize = 256 << 20;

pub fn router(state: Master, max_body_bytes: usize) -> Router {
    let http_metrics = state.http_metrics.clone();
    // Only the cluster's chunkservers may call these (signed requests).
    let internal = Router::new()
        // Full chunk reports outgrow the API's body limit: ~64 bytes a replica.
        .route("/v1/heartbeat", post(chunks::heartbeat).layer(DefaultBodyLimit::max(HEARTBEAT_MAX_BYTES)))
        .route_layer(from_fn_with_state(state.auth.clone(), require_signed));
    // Chunkservers sign their reports; clients send theirs with a token.
    let bad = post(chunks::bad_replica).layer(from_fn_with_state(state.auth.clone(), signed_if_present));
    Router::new()
        .merge(dashboard::routes())
        .merge(internal)
        .route("/v1/mkdir", post(mutations::mkdir))
        .route("/v1/create", post(mutations::create))
        .route("/v1/symlink", post(mutations::symlink))
        .route("/v1/rename", post(mutations::rename))
        .route("/v1/unlink", post(mutations::unlink))
        .route("/v1/rmdir", post(mutations::rmdir))
        .route("/v1/delete", post(mutations::delete))
        .route("/v1/setattr", post(mutations::setattr))
        .route("/v1/stat", get(queries::stat))
        .route("/v1/inodes/{id}", get(queries::stat_inode))
        .route("/v1/lookup", get(queries::lookup))
        .route("/v1/list", get(queries::list))
        .route("/v1/readlink", get(queries::readlink))
        .route("/v1/fs", get(queries::fs_stats))
        .route("/v1/chunks", get(chunks::locate))
        .route("/v1/chunks/lease", post(chunks::lease))
        .route("/v1/chunks/bad", bad)
        .route("/v1/commit_length", post(chunks::commit_length))
        .route("/v1/append", post(chunks::append))
        .route("/v1/chunkservers", get(chunks::chunkservers))
        .route("/v1/cluster", get(admin::cluster))
        .route("/v1/admin/check", get(admin::check))
        .route("/v1/admin/fsck", get(admin::fsck))
        .route("/v1/admin/replication", get(admin::replication))
        .route("/v1/admin/safemode", post(admin::safe_mode))
        .route("/v1/admin/decommission", post(admin::decommission))
        .route("/v1/admin/recommission", post(admin::recommission))
        .fallback(dashboard::fallback)
        .method_not_allowed_fallback(dfs_common::http::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(http_metrics, dfs_common::http::metrics::track))
        .with_state(state)
}

/// A signed request is checked as [`require_signed`] does (and refused if
/// the signature fails); an unsigned one passes on without [`Verified`]
/// (`dfs_common::auth::Verified`) in its extensions, for the handler to
/// hold to a lower standard.
async fn signed_if_present(state: State<Arc<ClusterAuth>>, req: Request, next: Next) -> Response {
    match req.headers().contains_key(HEADER_AUTH) {
        true => require_signed(state, req, next).await,
        false => next.run(req).await,
    }
}
