//! Cluster identity and operator checks.

use axum::extract::State;
use axum::Json;
use dfs_common::wire::namespace::{CheckReport, ClusterInfo};

use dfs_common::http::ApiError;
use super::{blocking, AppState};
use crate::store::records::FORMAT_VERSION;

/// `GET /v1/cluster` → [`ClusterInfo`]
pub async fn cluster(State(s): State<AppState>) -> Result<Json<ClusterInfo>, ApiError> {
    let cluster_id = blocking(move || s.store.cluster_id()).await?;
    Ok(Json(ClusterInfo { cluster_id, format_version: FORMAT_VERSION, version: env!("CARGO_PKG_VERSION").into() }))
}

/// `GET /v1/admin/check` → [`CheckReport`] of a full namespace scan.
pub async fn check(State(s): State<AppState>) -> Result<Json<CheckReport>, ApiError> {
    blocking(move || s.store.check().map(Json)).await
}
