//! Cluster identity, operator checks, safe mode and decommissioning.

use axum::extract::State;
use axum::Json;
use dfs_proto::wire::namespace::{CheckReport, ClusterInfo, FileKind, FsckPage, FsckQuery, NodeRef};

use super::store_call::blocking;
use crate::state::Master;
use crate::store::perms::Who;
use crate::store::records::FORMAT_VERSION;
use dfs_proto::wire::chunks::{NodeRequest, ReplicationStatus, SafeModeRequest};
use dfs_proto::wire::namespace::Done;
use dfs_server_kit::http::{ApiError, ApiJson, ApiQuery};

/// `GET /v1/cluster` → [`ClusterInfo`]
pub async fn cluster(State(s): State<Master>) -> Result<Json<ClusterInfo>, ApiError> {
    let cluster_id = blocking(move || s.store.cluster_id()).await?;
    Ok(Json(ClusterInfo { cluster_id, format_version: FORMAT_VERSION, version: env!("CARGO_PKG_VERSION").into() }))
}

/// `GET /v1/admin/check` → [`CheckReport`] of a full namespace scan.
pub async fn check(State(s): State<Master>) -> Result<Json<CheckReport>, ApiError> {
    blocking(move || s.store.check().map(Json)).await
}

/// Files per fsck page: each costs a scan of its chunk records.
const FSCK_PAGE_DEFAULT: u32 = 256;

/// `GET /v1/admin/fsck?path=P[&start_after=NAME&limit=N]` → [`FsckPage`]:
/// the health of file P, or of the files on one page of directory P (with
/// its subdirectories, for the caller to walk into).
pub async fn fsck(State(s): State<Master>, ApiQuery(q): ApiQuery<FsckQuery>) -> Result<Json<FsckPage>, ApiError> {
    blocking(move || {
        let node = s.store.resolve_node(&NodeRef { path: Some(q.path.clone()), inode: None }, &Who::root())?;
        let mut page = FsckPage::default();
        match node.attr.kind {
            FileKind::File => page.files.push(s.chunks.file_health(q.path.clone(), &node.attr)?),
            FileKind::Dir => {
                let dir = NodeRef { path: None, inode: Some(node.attr.inode) };
                let list = s.store.list(&dir, q.start_after.as_deref(), Some(q.limit.unwrap_or(FSCK_PAGE_DEFAULT)), &Who::root())?;
                let base = q.path.trim_end_matches('/');
                for e in list.entries {
                    let path = format!("{base}/{}", e.name);
                    match e.attr.kind {
                        FileKind::File => page.files.push(s.chunks.file_health(path, &e.attr)?),
                        FileKind::Dir => page.dirs.push(path),
                        _ => {} // no data to be healthy
                    }
                }
                page.next_start_after = list.next_start_after;
            }
            _ => {} // symlinks, FIFOs, sockets and devices hold no data
        }
        Ok(Json(page))
    })
    .await
}

/// `GET /v1/admin/replication` → [`ReplicationStatus`]: safe mode and the
/// background work (copies, deletions, garbage).
pub async fn replication(State(s): State<Master>) -> Json<ReplicationStatus> {
    Json(s.chunks.replication_status())
}

/// `POST /v1/admin/safemode` `{"leave": true}`: ends safe mode now.
pub async fn safe_mode(State(s): State<Master>, ApiJson(r): ApiJson<SafeModeRequest>) -> Result<Json<ReplicationStatus>, ApiError> {
    if !r.leave {
        return Err(ApiError::new(dfs_proto::ErrorKind::EINVAL, "safe mode can only be left: send {\"leave\": true}"));
    }
    s.chunks.leave_safe_mode();
    Ok(Json(s.chunks.replication_status()))
}

/// `POST /v1/admin/decommission` `{"node": ID or address}`: drain a chunkserver.
pub async fn decommission(State(s): State<Master>, ApiJson(r): ApiJson<NodeRequest>) -> Result<Json<Done>, ApiError> {
    s.chunks.decommission(&r.node, true).await?;
    Ok(Json(Done {}))
}

/// `POST /v1/admin/recommission` `{"node": ID or address}`: undo a decommission.
pub async fn recommission(State(s): State<Master>, ApiJson(r): ApiJson<NodeRequest>) -> Result<Json<Done>, ApiError> {
    s.chunks.decommission(&r.node, false).await?;
    Ok(Json(Done {}))
}
