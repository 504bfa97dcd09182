//! The check before every endpoint for users: the request's session and
//! signature (`crate::users`), its body against the signed digest, and the
//! admin role where the endpoint needs it. Handlers find the [`Caller`] in
//! the request's extensions (`crate::users::Caller`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use dfs_proto::auth::{AuthError, BodyDigest};
use dfs_proto::endpoint::Access;
use dfs_proto::ErrorKind;
use dfs_server_kit::http::route::UserGuard;
use dfs_server_kit::http::ApiError;

use crate::state::Master;
use crate::store::retries::CallKey;
use crate::users::{Caller, Users};
use dfs_proto::auth::user::{call_id_ok, CALL_ID_MAX_CHARS, HEADER_CALL};

/// The call id a request names (`x-dfs-call`, signed with it), for the
/// retry cache (`store::retries`).
#[derive(Clone, Debug, Default)]
pub struct CallId(pub Option<String>);

impl CallId {
    /// The retry cache's key of this call by `caller`.
    pub fn key(&self, caller: &Caller) -> Option<CallKey> {
        self.0.clone().map(|id| CallKey { user: caller.user.clone(), id })
    }
}

/// What the check needs.
#[derive(Clone)]
pub struct Gate {
    users: Arc<Users>,
    max_body_bytes: usize,
    admin: bool,
}

/// The guard `Routes` puts on every endpoint for users.
pub fn guard(users: Arc<Users>, max_body_bytes: usize) -> UserGuard<Master> {
    Arc::new(move |method: MethodRouter<Master>, access: Access| {
        let gate = Gate { users: users.clone(), max_body_bytes, admin: access == Access::Admin };
        method.route_layer(from_fn_with_state(gate, require_user))
    })
}

fn header_fn(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    move |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Refuses (401) before reading the body unless the session and signature
/// hold, then checks the body against its signed digest; 403 for a user
/// without the admin role on an admin endpoint.
pub async fn require_user(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let checked = gate.users.authenticate(parts.method.as_str(), &pq, &header_fn(&parts.headers));
    let (caller, verified) = match checked {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if gate.admin && !caller.admin {
        return ApiError::new(ErrorKind::EACCES, format!("{} needs the admin role, which {} lacks", parts.uri.path(), caller.user)).into_response();
    }
    let too_large = || ApiError::new(ErrorKind::EMSGSIZE, format!("the body is over the limit of {} bytes", gate.max_body_bytes)).into_response();
    let declared = parts.headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gate.max_body_bytes as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, gate.max_body_bytes).await {
        Ok(b) => b,
        Err(e) if e.to_string().contains("length limit") => return too_large(),
        Err(e) => return ApiError::new(ErrorKind::EINVAL, format!("reading the body: {e}")).into_response(),
    };
    if verified.is_some_and(|v| v.body != BodyDigest::of(&bytes)) {
        return ApiError::from(AuthError::BodyMismatch).into_response();
    }
    let call = match parts.headers.get(HEADER_CALL).map(|v| v.to_str().ok().filter(|id| call_id_ok(id))) {
        None => CallId(None),
        Some(Some(id)) => CallId(Some(id.to_string())),
        Some(None) => {
            return ApiError::new(ErrorKind::EINVAL, format!("{HEADER_CALL} must be 1 to {CALL_ID_MAX_CHARS} ASCII letters, digits or dashes")).into_response()
        }
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(call);
    next.run(req).await
}
