//! `POST /v1/chunks/{handle}/verify` (the master, signed): checks every
//! block of the replica against its CRCs. The master asks when a client
//! reported the replica bad: a client's word alone never takes a copy out
//! of service, this node's own check does. A corrupt replica is
//! quarantined and reported (signed) here, as a scrub would.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use dfs_proto::wire::chunks::{VerifyAnswer, VerifyReplica};
use dfs_proto::{ChunkHandle, ErrorKind};
use dfs_server_kit::http::{ApiError, ApiJson, ApiPath};

use super::error::chunk_error;
use crate::chunk_store::ChunkError;
use crate::node::{blocking, quarantine_and_report, Node};

/// `POST /v1/chunks/{handle}/verify` with a [`VerifyReplica`].
pub async fn verify(State(n): State<Arc<Node>>, ApiPath(h): ApiPath<u64>, ApiJson(r): ApiJson<VerifyReplica>) -> Result<Json<VerifyAnswer>, ApiError> {
    let handle = ChunkHandle(h);
    match n.store.info(handle) {
        None => return Err(ApiError::new(ErrorKind::ENOENT, format!("no replica of chunk {handle}"))),
        Some(i) if i.version != r.version => {
            return Err(ApiError::new(ErrorKind::ESTALE, format!("replica is at version {}, not {}", i.version, r.version)));
        }
        Some(_) => {}
    }
    let store = n.store.clone();
    match blocking(move || store.verify(handle)).await {
        Ok(()) => Ok(Json(VerifyAnswer { corrupt: false })),
        Err(ChunkError::Corrupt { .. }) => {
            quarantine_and_report(&n, handle).await;
            Ok(Json(VerifyAnswer { corrupt: true }))
        }
        Err(e) => Err(chunk_error(e)),
    }
}
