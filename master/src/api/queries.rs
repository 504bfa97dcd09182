//! Read-only namespace queries, run on the blocking pool.

use axum::extract::State;
use axum::{Extension, Json};
use dfs_proto::wire::namespace::*;
use dfs_proto::wire::xattrs::{XattrBytes, XattrNames, XattrQuery, XattrValue};
use dfs_proto::InodeId;

use super::store_call::blocking;
use crate::state::Master;
use crate::store::{perms, Mutation};
use crate::users::Caller;
use dfs_server_kit::http::ApiError;
use dfs_server_kit::http::{ApiJson, ApiPath, ApiQuery};

/// `GET /v1/stat?path=/a/b` or `?inode=N` → [`Attr`]
pub async fn stat(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<StatQuery>) -> Result<Json<Attr>, ApiError> {
    blocking(move || s.store.resolve_node(&q, &c.who).map(|r| Json(r.attr))).await
}

/// `GET /v1/inodes/{id}` → [`Attr`]
pub async fn stat_inode(State(s): State<Master>, ApiPath(id): ApiPath<u64>) -> Result<Json<Attr>, ApiError> {
    blocking(move || s.store.inode(InodeId(id)).map(|r| Json(r.attr))).await
}

/// `GET /v1/lookup?parent=N&name=x` → [`Attr`]
pub async fn lookup(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<LookupQuery>) -> Result<Json<Attr>, ApiError> {
    blocking(move || s.store.lookup(q.parent, &q.name, &c.who).map(Json)).await
}

/// `GET /v1/list?path=/a&start_after=x&limit=N` → one [`ListResponse`] page
pub async fn list(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<ListQuery>) -> Result<Json<ListResponse>, ApiError> {
    blocking(move || s.store.list(&q.dir(), q.start_after.as_deref(), q.limit, &c.who).map(Json)).await
}

/// `GET /v1/readlink?path=/a/link` → [`ReadlinkResponse`]
pub async fn readlink(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<StatQuery>) -> Result<Json<ReadlinkResponse>, ApiError> {
    blocking(move || s.store.readlink(&q, &c.who).map(|target| Json(ReadlinkResponse { target }))).await
}

/// `POST /v1/open` → the file's [`Attr`]; the caller's session holds it.
/// The hold is taken before the inode is read: an unlink or the orphan
/// sweeper that comes after the read sees it held.
pub async fn open(State(s): State<Master>, Extension(c): Extension<Caller>, ApiJson(r): ApiJson<OpenRequest>) -> Result<Json<Attr>, ApiError> {
    let key = session_key(&c, &r.session)?;
    let held = s.writer.held();
    blocking(move || {
        let first = s.store.inode(r.inode)?;
        perms::check_io(&c.who, &first.attr, if r.write { perms::WRITE } else { perms::READ }, &format!("inode {}", r.inode))?;
        if first.attr.kind != FileKind::File {
            return Ok(Json(first.attr));
        }
        held.open(&key, r.inode, r.seq, std::time::Instant::now())?;
        note_sessions(&s);
        match s.store.inode(r.inode) {
            Ok(record) => Ok(Json(record.attr)),
            Err(e) => {
                held.undo_open(&key, r.inode, r.seq);
                Err(e)
            }
        }
    })
    .await
}

/// `POST /v1/open_files`: the caller's session holds these files now.
pub async fn open_files(State(s): State<Master>, Extension(c): Extension<Caller>, ApiJson(r): ApiJson<OpenFilesRequest>) -> Result<Json<Done>, ApiError> {
    let key = session_key(&c, &r.session)?;
    s.writer.held().renew(&key, &r.inodes, r.upto, std::time::Instant::now())?;
    Ok(Json(Done {}))
}

/// The first hold of this master's life marks the store (in the
/// background: the mark only tells a later start to wait for mounts).
pub fn note_sessions(s: &Master) {
    if s.writer.held().needs_note() {
        let writer = s.writer.clone();
        tokio::runtime::Handle::current().spawn(async move {
            if let Err(e) = writer.submit(Mutation::NoteOpenSessions).await {
                tracing::warn!(error = %e, "could not record that mounts hold files open");
            }
        });
    }
}

/// A session is its principal's: one user cannot speak for another's.
pub fn session_key(c: &Caller, session: &str) -> Result<(String, String), ApiError> {
    check_session(session).map_err(|e| ApiError::new(dfs_proto::ErrorKind::EINVAL, e))?;
    Ok((c.user.clone(), session.to_string()))
}

/// `GET /v1/xattr?path=/a&name=user.x` (or `inode=N`) → [`XattrValue`]
pub async fn get_xattr(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<XattrQuery>) -> Result<Json<XattrValue>, ApiError> {
    let Some(name) = q.name.clone() else { return Err(ApiError::new(dfs_proto::ErrorKind::EINVAL, "give the attribute's \"name\"")) };
    blocking(move || s.store.get_xattr(&q.node(), &name, &c.who).map(|v| Json(XattrValue { value: XattrBytes(v) }))).await
}

/// `GET /v1/xattrs?path=/a` (or `inode=N`) → [`XattrNames`]
pub async fn list_xattrs(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<XattrQuery>) -> Result<Json<XattrNames>, ApiError> {
    blocking(move || s.store.list_xattrs(&q.node(), &c.who).map(|names| Json(XattrNames { names }))).await
}

/// `GET /v1/fs` → [`FsStats`]
pub async fn fs_stats(State(s): State<Master>) -> Result<Json<FsStats>, ApiError> {
    blocking(move || s.store.counters().map(|c| Json(c.stats()))).await
}
