//! Who a WebHDFS request comes from, in this order: a delegation token
//! (`delegation=`, see `crate::delegation`), a dfs-signed request (the
//! headers every dfs client sends), or `user.name=` when the cluster
//! believes names (HDFS's simple authentication,
//! `--webhdfs-simple-auth`). Then `doas=`: a proxy user may act as another
//! user (HDFS's proxy users; in dfs, users made with `--proxy`).

use axum::http::request::Parts;
use dfs_proto::auth::BodyDigest;
use dfs_proto::webhdfs::RemoteError;

use super::Params;
use crate::state::Master;
use crate::users::{AuthMode, Caller};

/// The caller of a WebHDFS request, or the `RemoteException` that refuses it.
pub async fn caller(s: &Master, parts: &Parts, params: &Params) -> Result<Caller, RemoteError> {
    let caller = authenticated(s, parts, params).await?;
    match params.get("doas").filter(|d| !d.is_empty()) {
        Some(other) if other != caller.user => act_as(s, &caller, other),
        _ => Ok(caller),
    }
}

async fn authenticated(s: &Master, parts: &Parts, params: &Params) -> Result<Caller, RemoteError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    if s.users.mode() == AuthMode::None {
        return Ok(s.users.authenticate("GET", "/", &header).map_err(|e| RemoteError::security(e.to_string()))?.0);
    }
    // A grant is the master's to its chunkservers' calls; here it would
    // buy a fresh grant with every redirect, and so never expire.
    if header(dfs_proto::auth::user::HEADER_GRANT).is_some() {
        return Err(RemoteError::security("a grant is not taken by WebHDFS: pass delegation=TOKEN or sign the request"));
    }
    if let Some(token) = params.get("delegation").filter(|t| !t.is_empty()) {
        return s.delegation.caller(&s.users, token).await.map_err(|e| {
            tracing::debug!("delegation token refused: {e}");
            RemoteError::invalid_token("the delegation token is unknown, cancelled or expired (dfs fetchdt gets a new one)")
        });
    }
    if header(dfs_proto::auth::user::HEADER_SESSION).is_some() {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let (caller, verified) = s.users.authenticate(parts.method.as_str(), pq, &header).map_err(|e| RemoteError::security(e.to_string()))?;
        // The master never reads a WebHDFS body: a signed one must be empty.
        if verified.is_some_and(|v| v.body != BodyDigest::of(b"")) {
            return Err(RemoteError::security("a signed WebHDFS request to the master has no body (data goes to the chunkserver it redirects to)"));
        }
        return Ok(caller);
    }
    match params.get("user.name").filter(|n| !n.is_empty()) {
        Some(name) if s.users.simple_names() => {
            s.users.trusted_name(name).ok_or_else(|| RemoteError::security(format!("no user {name:?} in this cluster (dfs admin user add)")))
        }
        Some(_) => Err(RemoteError::security(
            "this cluster does not take user.name= (simple authentication is off): pass delegation=TOKEN (dfs fetchdt prints one) or sign the request",
        )),
        None => Err(RemoteError::security("authentication required: delegation=TOKEN (dfs fetchdt prints one), or user.name= where the cluster allows it")),
    }
}

/// `doas=other`: only a proxy user may act as someone else, and then as a
/// mount's principal acts for a uid (see `Users::doas`).
fn act_as(s: &Master, caller: &Caller, other: &str) -> Result<Caller, RemoteError> {
    if !s.users.is_proxy(&caller.user) {
        return Err(RemoteError::from_kind(dfs_proto::ErrorKind::EACCES, &format!("User: {} is not allowed to impersonate {other}", caller.user), ""));
    }
    s.users.doas(caller, other).ok_or_else(|| RemoteError::security(format!("no user {other:?} in this cluster")))
}
