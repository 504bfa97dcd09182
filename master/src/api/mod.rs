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
//! - [`users`]: logging in, whoami, user management; [`caller`]: the
//!   session and signature check before every endpoint for users.
//! - [`store_call`]: store calls on the blocking pool, store errors as answers.
//!
//! The handlers read the master's shared state (`crate::state::Master`).
//! Errors and extractors come from `dfs_server_kit::http`: every failure is
//! `{"error": KIND, "message": ...}`.

pub mod admin;
pub mod backup;
pub mod caller;
pub mod chunks;
pub mod dashboard;
pub mod mutations;
pub mod queries;
pub mod store_call;
#[cfg(test)]
mod trust_tests;
pub mod users;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use dfs_proto::auth::signature::HEADER_AUTH;
use dfs_proto::endpoint::master as ep;
use dfs_proto::error::HEADER_LEADER;
use dfs_proto::ErrorKind;
use dfs_server_kit::http::internal::{require_signed, ClusterAuth};
use dfs_server_kit::http::route::Routes;
use dfs_server_kit::http::ApiError;

use crate::raft::role::Role;
use crate::state::Master;

/// Largest heartbeat body: a full report of about four million replicas.
pub const HEARTBEAT_MAX_BYTES: usize = 256 << 20;

pub fn router(state: Master, max_body_bytes: usize) -> Router {
    let http_metrics = state.http_metrics.clone();
    let role = state.role.clone();
    let auth = state.auth.clone();
    let routes = Routes::new(auth.clone())
        .with_users(caller::guard(state.users.clone(), max_body_bytes))
        .serve::<ep::Login, _, _>(users::login)
        .serve::<ep::WhoAmI, _, _>(users::whoami)
        .serve::<ep::IssueToken, _, _>(users::issue_token)
        .serve::<ep::RenewToken, _, _>(users::renew_token)
        .serve::<ep::CancelToken, _, _>(users::cancel_token)
        .serve::<ep::Users, _, _>(users::list)
        .serve::<ep::AddUser, _, _>(users::add)
        .serve::<ep::RemoveUser, _, _>(users::remove)
        .serve::<ep::RotateUser, _, _>(users::rotate)
        // Full chunk reports outgrow the API's body limit: ~64 bytes a replica.
        .serve_with::<ep::Heartbeat, _, _>(chunks::heartbeat, |m| m.layer(DefaultBodyLimit::max(HEARTBEAT_MAX_BYTES)))
        .serve::<ep::Mkdir, _, _>(mutations::mkdir)
        .serve::<ep::Create, _, _>(mutations::create)
        .serve::<ep::Symlink, _, _>(mutations::symlink)
        .serve::<ep::Link, _, _>(mutations::link)
        .serve::<ep::Mknod, _, _>(mutations::mknod)
        .serve::<ep::SetXattr, _, _>(mutations::set_xattr)
        .serve::<ep::RemoveXattr, _, _>(mutations::remove_xattr)
        .serve::<ep::Open, _, _>(queries::open)
        .serve::<ep::OpenFiles, _, _>(queries::open_files)
        .serve::<ep::DropPrivileges, _, _>(chunks::drop_privileges)
        .serve::<ep::GetXattr, _, _>(queries::get_xattr)
        .serve::<ep::ListXattrs, _, _>(queries::list_xattrs)
        .serve::<ep::Rename, _, _>(mutations::rename)
        .serve::<ep::Unlink, _, _>(mutations::unlink)
        .serve::<ep::Rmdir, _, _>(mutations::rmdir)
        .serve::<ep::Delete, _, _>(mutations::delete)
        .serve::<ep::Setattr, _, _>(mutations::setattr)
        .serve::<ep::Stat, _, _>(queries::stat)
        .serve::<ep::StatInode, _, _>(queries::stat_inode)
        .serve::<ep::Lookup, _, _>(queries::lookup)
        .serve::<ep::List, _, _>(queries::list)
        .serve::<ep::Readlink, _, _>(queries::readlink)
        .serve::<ep::Fs, _, _>(queries::fs_stats)
        .serve::<ep::Locate, _, _>(chunks::locate)
        .serve::<ep::Lease, _, _>(chunks::lease)
        // Chunkservers sign their reports; clients send theirs with a token.
        .serve_with::<ep::ReportBad, _, _>(chunks::bad_replica, |m| m.layer(from_fn_with_state(auth, signed_if_present)))
        .serve::<ep::CommitLength, _, _>(chunks::commit_length)
        .serve::<ep::Append, _, _>(chunks::append)
        .serve::<ep::Chunkservers, _, _>(chunks::chunkservers)
        .serve::<ep::Cluster, _, _>(admin::cluster)
        .serve::<ep::Check, _, _>(admin::check)
        .serve::<ep::Backup, _, _>(backup::backup)
        .serve::<ep::Fsck, _, _>(admin::fsck)
        .serve::<ep::Replication, _, _>(admin::replication)
        .serve::<ep::SafeMode, _, _>(admin::safe_mode)
        .serve::<ep::Decommission, _, _>(admin::decommission)
        .serve::<ep::Recommission, _, _>(admin::recommission);
    let gate = dashboard::viewer::ViewerGate { users: state.users.clone(), access: state.dashboard.clone() };
    dashboard::routes(routes, gate)
        .into_router()
        .merge(crate::webhdfs::routes())
        .fallback(dashboard::fallback)
        .method_not_allowed_fallback(dfs_server_kit::http::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(from_fn_with_state(role, leader_only))
        .layer(axum::middleware::from_fn_with_state(http_metrics, dfs_server_kit::http::metrics::track))
        .with_state(state)
}

/// With several masters: while another master leads (or none yet),
/// requests go there: the API answers 503 `EAGAIN` naming the leader in
/// [`HEADER_LEADER`] (empty when none is known yet), WebHDFS 403
/// `StandbyException` (on which its clients try their next master), and
/// the dashboard's pages redirect. Only `/metrics` is this master's own.
/// On the leader, reads wait for [`Role::linearizable`].
async fn leader_only(State(role): State<Arc<Role>>, req: Request, next: Next) -> Response {
    if role.raft().is_none() {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    if path == "/metrics" {
        return next.run(req).await;
    }
    if role.serves() {
        // A read answers from this master's store: first make sure it still
        // leads and has applied all that was acknowledged (several masters).
        if req.method() == axum::http::Method::GET {
            if let Err(e) = role.linearizable().await {
                return refuse(&role, &path, format!("this master could not confirm that it leads: {e}"));
            }
        }
        let mut answer = next.run(req).await;
        // Deposed while the request ran: its refusal (the writer's EAGAIN,
        // nothing of it decided) names the leader too, as one before would.
        if answer.status() == StatusCode::SERVICE_UNAVAILABLE && !role.serves() {
            answer.headers_mut().insert(HEADER_LEADER, leader_value(&role));
        }
        return answer;
    }
    let leader = role.leader();
    if let Some(url) = leader.as_deref().filter(|_| is_page(&path) && req.method() == axum::http::Method::GET) {
        let target = req.uri().path_and_query().map_or(path.as_str(), |p| p.as_str());
        return axum::response::Redirect::temporary(&format!("{url}{target}")).into_response();
    }
    refuse(&role, &path, role.refusal())
}

/// A dashboard page (not the API, not WebHDFS).
fn is_page(path: &str) -> bool {
    !path.starts_with("/v1/") && !path.starts_with("/webhdfs/")
}

/// 503 `EAGAIN` with the leader, if known, in [`HEADER_LEADER`]: nothing
/// was done, and the client tries there (or the next master). WebHDFS:
/// 403 `StandbyException`, on which its clients try their next master.
fn refuse(role: &Role, path: &str, message: String) -> Response {
    if path.starts_with("/webhdfs/") {
        return dfs_server_kit::http::webhdfs::error(dfs_proto::webhdfs::RemoteError::standby(message));
    }
    let mut answer = ApiError::new(ErrorKind::EAGAIN, message).into_response();
    answer.headers_mut().insert(HEADER_LEADER, leader_value(role));
    answer
}

/// The leader's URL as a header value; empty while no leader is known
/// (the client then tries the next master).
fn leader_value(role: &Role) -> HeaderValue {
    role.leader().and_then(|l| HeaderValue::from_str(&l).ok()).unwrap_or(HeaderValue::from_static(""))
}

/// A signed request is checked as [`require_signed`] does (and refused if
/// the signature fails); an unsigned one passes on without [`Verified`]
/// (`dfs_proto::auth::Verified`) in its extensions, for the handler to
/// hold to a lower standard.
async fn signed_if_present(state: State<Arc<ClusterAuth>>, req: Request, next: Next) -> Response {
    match req.headers().contains_key(HEADER_AUTH) {
        true => require_signed(state, req, next).await,
        false => next.run(req).await,
    }
}
