//! Chunk management calls: chunkserver heartbeats, and the client's view of
//! chunks (locations for reads, leases for writes, committing lengths).

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dfs_proto::auth::Verified;
use dfs_proto::wire::chunks::*;
use dfs_proto::wire::namespace::{AppendRequest, AppendReservation, Attr, Done, DropPrivilegesRequest};
use dfs_proto::ErrorKind;

use super::store_call::blocking;
use crate::state::Master;
use crate::store::mutations::{furthest_per_chunk, write_drops_privileges, WrittenRange};
use crate::store::perms::{self, READ, WRITE};
use crate::store::{Mutation, NsError, Outcome};
use crate::users::Caller;
use dfs_proto::InodeId;
use dfs_server_kit::http::ApiError;
use dfs_server_kit::http::{ApiJson, ApiQuery};

/// Most chunk locations one call returns.
const LOCATE_MAX: u64 = 1024;

/// `POST /v1/heartbeat` (from chunkservers, signed): the answer is signed
/// too, bound to the request, so the chunkserver knows its orders and
/// token keys come from this cluster's master.
pub async fn heartbeat(State(s): State<Master>, Extension(signed): Extension<Verified>, ApiJson(hb): ApiJson<Heartbeat>) -> Result<Response, ApiError> {
    // With TLS on, a node that would serve data in plaintext is refused.
    if !dfs_server_kit::tls::fits(&hb.address) {
        return Err(ApiError::new(ErrorKind::EINVAL, format!("address must be an {}:// URL", dfs_server_kit::tls::scheme())));
    }
    s.chunks.check_cluster(&hb)?;
    let mut answer = s.chunks.heartbeat(&hb).await?;
    // Only a heartbeat taken in counts toward the node's traffic history.
    s.history.note_heartbeat(&hb);
    s.chunks.complete_answer(&hb, &mut answer);
    Ok(signed_json(&s, &signed, &answer))
}

/// `value` as a JSON answer signed for the request `signed`.
fn signed_json<T: serde::Serialize>(s: &Master, signed: &Verified, value: &T) -> Response {
    let body = match serde_json::to_vec(value) {
        Ok(b) => b,
        Err(e) => return ApiError::new(ErrorKind::EIO, format!("encoding the answer: {e}")).into_response(),
    };
    let (name, auth) = s.auth.reply_header(signed, StatusCode::OK.as_u16(), &body);
    let json = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, json), (HeaderName::from_static(name), auth)], body).into_response()
}

/// `GET /v1/chunks?inode=N&first=I&count=K` → [`ChunkLocations`]
/// Read tokens only to whoever may read the file.
pub async fn locate(
    State(s): State<Master>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<LocateQuery>,
) -> Result<Json<ChunkLocations>, ApiError> {
    let count = q.count.unwrap_or(LOCATE_MAX).clamp(1, LOCATE_MAX) as usize;
    blocking(move || {
        may_io(&s, &caller, q.inode, READ)?;
        s.chunks.locate(q.inode, q.first, count).map(Json)
    })
    .await
}

/// `POST /v1/chunks/lease` → [`WriteLease`]: only to whoever may write the file.
pub async fn lease(State(s): State<Master>, Extension(caller): Extension<Caller>, ApiJson(r): ApiJson<LeaseRequest>) -> Result<Json<WriteLease>, ApiError> {
    let (s2, inode, who) = (s.clone(), r.inode, caller.who.clone());
    let file = blocking(move || may_io(&s2, &caller, inode, WRITE)).await?;
    // Before the data changes, as Linux: a capability or setuid bit must
    // not survive a writer that never commits.
    if write_drops_privileges(&who, &file) {
        s.writer.submit_as(who, Mutation::DropPrivileges(inode)).await?;
    }
    Ok(Json(s.chunks.lease_for_write(r).await?))
}

/// `POST /v1/drop_privileges` → the file's [`Attr`]: a mount's write
/// clears setuid/setgid (and capabilities) at `write(2)`, as Linux does,
/// not only when its lease or commit reaches the master.
pub async fn drop_privileges(
    State(s): State<Master>,
    Extension(caller): Extension<Caller>,
    ApiJson(r): ApiJson<DropPrivilegesRequest>,
) -> Result<Json<Attr>, ApiError> {
    let (s2, inode, who) = (s.clone(), r.inode, caller.who.clone());
    let file = blocking(move || may_io(&s2, &caller, inode, WRITE)).await?;
    if !write_drops_privileges(&who, &file) {
        return Ok(Json(file));
    }
    match s.writer.submit_as(who, Mutation::DropPrivileges(inode)).await?.0 {
        Outcome::Attr(a) => Ok(Json(a)),
        _ => Err(ApiError::new(ErrorKind::EIO, "dropping privileges returned no attributes")),
    }
}

/// The caller may read or write the data of file `inode` ([`perms::check_io`]);
/// its attributes.
fn may_io(s: &Master, caller: &Caller, inode: InodeId, want: u32) -> Result<Attr, NsError> {
    let file = s.store.inode(inode)?; // ENOENT for none (ids are never reused)
    perms::check_io(&caller.who, &file.attr, want, &format!("inode {inode}"))?;
    Ok(file.attr)
}

/// `POST /v1/chunks/bad`: from a chunkserver (signed), acted on; from a
/// client (unsigned, with its read token), only a reason to have the
/// replica verified by its chunkserver.
pub async fn bad_replica(State(s): State<Master>, signed: Option<Extension<Verified>>, ApiJson(r): ApiJson<BadReplica>) -> Result<Json<Done>, ApiError> {
    match signed {
        Some(_) => s.chunks.report_bad(r).await?,
        None => s.chunks.suspect(&r)?,
    }
    Ok(Json(Done {}))
}

/// `POST /v1/commit_length` → the file's [`Attr`]. A retry under the same call id (`x-dfs-call`: the answer was lost, or
/// the master that took it died) gets the first answer.
pub async fn commit_length(
    State(s): State<Master>,
    Extension(caller): Extension<Caller>,
    Extension(call): Extension<super::caller::CallId>,
    ApiJson(r): ApiJson<CommitLength>,
) -> Result<Json<Attr>, ApiError> {
    let ranges = r.chunks.iter().map(|c| WrittenRange { index: c.index, handle: c.handle, end: c.end }).collect();
    let chunks = furthest_per_chunk(ranges);
    let m = Mutation::CommitLength { inode: r.inode, length: r.length, chunks: chunks.clone() };
    match s.writer.submit_call(caller.who.clone(), m, call.key(&caller)).await?.0 {
        Outcome::Attr(a) => {
            s.chunks.lengths_committed(&chunks);
            Ok(Json(a))
        }
        _ => Err(ApiError::new(ErrorKind::EIO, "commit returned no attributes")),
    }
}

/// `POST /v1/append` → where to write one record ([`AppendReservation`]).
pub async fn append(
    State(s): State<Master>,
    Extension(caller): Extension<Caller>,
    ApiJson(r): ApiJson<AppendRequest>,
) -> Result<Json<AppendReservation>, ApiError> {
    match s.writer.submit_as(caller.who, Mutation::ReserveAppend(r)).await?.0 {
        Outcome::Reserved(r) => Ok(Json(r)),
        _ => Err(ApiError::new(ErrorKind::EIO, "append returned no reservation")),
    }
}

/// `GET /v1/chunkservers` → every known chunkserver with its state.
pub async fn chunkservers(State(s): State<Master>) -> Json<Vec<ChunkserverInfo>> {
    Json(s.chunks.chunkservers())
}
