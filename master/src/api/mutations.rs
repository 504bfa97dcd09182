//! Namespace mutations: each goes to the writer (`store::Writer`) and is
//! answered once it is durable.

use axum::extract::State;
use axum::{Extension, Json};
use dfs_proto::wire::namespace::*;
use dfs_proto::wire::xattrs::{RemoveXattrRequest, SetXattrRequest};
use dfs_proto::ErrorKind;

use super::caller::CallId;
use crate::state::Master;
use crate::store::{Mutation, Outcome};
use crate::users::Caller;
use dfs_server_kit::http::ApiError;
use dfs_server_kit::http::ApiJson;

async fn submit_for_attr(s: &Master, c: Caller, call: CallId, m: Mutation) -> Result<Json<Attr>, ApiError> {
    let key = call.key(&c);
    match s.writer.submit_call(c.who, m, key).await?.0 {
        Outcome::Attr(a) => Ok(Json(a)),
        _ => Err(ApiError::new(ErrorKind::EIO, "mutation returned no attributes")),
    }
}

/// A new entry, with the directories its making changed.
async fn submit_for_made(s: &Master, c: Caller, call: CallId, m: Mutation) -> Result<Json<Made>, ApiError> {
    let key = call.key(&c);
    match s.writer.submit_call(c.who, m, key).await? {
        (Outcome::Attr(attr), dirs) => Ok(Json(Made { attr, dirs })),
        _ => Err(ApiError::new(ErrorKind::EIO, "mutation returned no attributes")),
    }
}

async fn submit_for_changed(s: &Master, c: Caller, call: CallId, m: Mutation) -> Result<Json<Changed>, ApiError> {
    let key = call.key(&c);
    let (_, dirs) = s.writer.submit_call(c.who, m, key).await?;
    Ok(Json(Changed { dirs }))
}

/// `POST /v1/mkdir` → [`Made`]: the directory.
pub async fn mkdir(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<MkdirRequest>,
) -> Result<Json<Made>, ApiError> {
    submit_for_made(&s, c, call, Mutation::Mkdir(r)).await
}

/// `POST /v1/create` → [`Made`]: the new (or, non-exclusive, existing)
/// file; held open by `open_session` if named.
pub async fn create(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<CreateRequest>,
) -> Result<Json<Made>, ApiError> {
    match r.open_session.as_deref().map(|id| super::queries::session_key(&c, id)).transpose()? {
        Some(key) => {
            super::queries::note_sessions(&s);
            submit_for_made(&s, c, call, Mutation::CreateHeld(r, key)).await
        }
        None => submit_for_made(&s, c, call, Mutation::Create(r)).await,
    }
}

/// `POST /v1/symlink` → [`Made`]: the link.
pub async fn symlink(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<SymlinkRequest>,
) -> Result<Json<Made>, ApiError> {
    submit_for_made(&s, c, call, Mutation::Symlink(r)).await
}

/// `POST /v1/link` → [`Made`]: the file, with its new link count.
pub async fn link(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<LinkRequest>,
) -> Result<Json<Made>, ApiError> {
    submit_for_made(&s, c, call, Mutation::Link(r)).await
}

/// `POST /v1/mknod` → [`Made`]: the FIFO, socket or device node.
pub async fn mknod(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<MknodRequest>,
) -> Result<Json<Made>, ApiError> {
    submit_for_made(&s, c, call, Mutation::Mknod(r)).await
}

/// `POST /v1/setattr` → the new [`Attr`].
pub async fn setattr(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<SetattrRequest>,
) -> Result<Json<Attr>, ApiError> {
    let replication_changed = r.replication.is_some();
    let attr = submit_for_attr(&s, c, call, Mutation::Setattr(r)).await?;
    if replication_changed {
        // As the file is now: a retried call's answer is its first one,
        // which a later change may have overtaken.
        let (store, inode) = (s.store.clone(), attr.inode);
        let now = super::store_call::blocking(move || store.inode(inode).map(|r| r.attr)).await?;
        s.chunks.file_changed(&now);
    }
    Ok(attr)
}

/// `POST /v1/xattr` → the inode's [`Attr`] (its ctime changed).
pub async fn set_xattr(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<SetXattrRequest>,
) -> Result<Json<Attr>, ApiError> {
    submit_for_attr(&s, c, call, Mutation::SetXattr(r)).await
}

/// `POST /v1/xattr/remove` → the inode's [`Attr`].
pub async fn remove_xattr(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<RemoveXattrRequest>,
) -> Result<Json<Attr>, ApiError> {
    submit_for_attr(&s, c, call, Mutation::RemoveXattr(r)).await
}

/// `POST /v1/rename` → [`Changed`]
pub async fn rename(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<RenameRequest>,
) -> Result<Json<Changed>, ApiError> {
    submit_for_changed(&s, c, call, Mutation::Rename(r)).await
}

/// `POST /v1/unlink`: a file or symlink.
pub async fn unlink(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<RemoveRequest>,
) -> Result<Json<Changed>, ApiError> {
    submit_for_changed(&s, c, call, Mutation::Unlink(r)).await
}

/// `POST /v1/rmdir`: an empty directory.
pub async fn rmdir(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<RemoveRequest>,
) -> Result<Json<Changed>, ApiError> {
    submit_for_changed(&s, c, call, Mutation::Rmdir(r)).await
}

/// `POST /v1/delete`: anything; a non-empty directory with `recursive`.
pub async fn delete(
    State(s): State<Master>,
    Extension(c): Extension<Caller>,
    Extension(call): Extension<CallId>,
    ApiJson(r): ApiJson<DeleteRequest>,
) -> Result<Json<Changed>, ApiError> {
    submit_for_changed(&s, c, call, Mutation::Delete(r)).await
}
