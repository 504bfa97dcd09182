//! Logging in, the caller's identity, and user management.

use axum::extract::State;
use axum::{Extension, Json};
use dfs_proto::auth::user::{LoginAnswer, LoginRequest};
use dfs_proto::wire::namespace::Done;
use dfs_proto::wire::users::{AddUserRequest, CallerInfo, RotateRequest, TokenAnswer, TokenRef, TokenRequest, UserInfo, UserName};
use dfs_proto::ErrorKind;
use dfs_server_kit::http::{ApiError, ApiJson};

use crate::state::Master;
use crate::store::{Mutation, Outcome};
use crate::users::Caller;

/// `POST /v1/auth/login` → a session.
pub async fn login(State(s): State<Master>, ApiJson(r): ApiJson<LoginRequest>) -> Result<Json<LoginAnswer>, ApiError> {
    match s.users.login(&r) {
        Ok(answer) => Ok(Json(answer)),
        Err(e) => {
            tracing::warn!(user = %r.user.chars().take(64).collect::<String>(), error = %e, "login refused");
            Err(e.into())
        }
    }
}

/// `POST /v1/auth/delegation_token` → [`TokenAnswer`]. Not with a grant:
/// a token is had by a user who signed in (as HDFS: not with a token).
pub async fn issue_token(State(s): State<Master>, Extension(c): Extension<Caller>, ApiJson(r): ApiJson<TokenRequest>) -> Result<Json<TokenAnswer>, ApiError> {
    if !c.may_hold_tokens() {
        return Err(ApiError::new(ErrorKind::EACCES, "a delegation token is had by a signed-in user, not with a grant or another token"));
    }
    let renewer = r.renewer.filter(|n| !n.is_empty()).unwrap_or_else(|| c.user.clone());
    let issued = s.delegation.issue(&c.user, &renewer).await?;
    Ok(Json(TokenAnswer { token: issued.token, expires_ms: issued.expires_ms }))
}

/// `POST /v1/auth/delegation_token/renew` → the new expiry.
pub async fn renew_token(State(s): State<Master>, Extension(c): Extension<Caller>, ApiJson(r): ApiJson<TokenRef>) -> Result<Json<TokenAnswer>, ApiError> {
    // As HDFS: renewed by a signed-in renewer, not by a bearer (a token
    // renewing itself would live its whole week).
    if !c.may_hold_tokens() {
        return Err(ApiError::new(ErrorKind::EACCES, "a delegation token is renewed by its signed-in renewer, not with a grant or a token"));
    }
    let expires_ms = s.delegation.renew(&r.token, &c.user).await?;
    Ok(Json(TokenAnswer { token: String::new(), expires_ms }))
}

/// `POST /v1/auth/delegation_token/cancel`
pub async fn cancel_token(State(s): State<Master>, Extension(c): Extension<Caller>, ApiJson(r): ApiJson<TokenRef>) -> Result<Json<Done>, ApiError> {
    s.delegation.cancel(&r.token, &c.user).await?;
    Ok(Json(Done {}))
}

/// `GET /v1/auth/whoami`
pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<CallerInfo> {
    Json(caller.info())
}

/// `GET /v1/admin/users`
pub async fn list(State(s): State<Master>) -> Json<Vec<UserInfo>> {
    Json(s.users.list())
}

async fn change(s: &Master, m: Mutation) -> Result<Outcome, ApiError> {
    let outcome = s.writer.submit(m).await?;
    let store = s.store.clone();
    let users = s.users.clone();
    tokio::task::spawn_blocking(move || users.reload(&store))
        .await
        .map_err(|e| ApiError::new(ErrorKind::EIO, e.to_string()))?
        .map_err(|e| ApiError::new(ErrorKind::EIO, format!("reloading users: {e}")))?;
    Ok(outcome)
}

fn user_of(s: &Master, outcome: Outcome) -> Result<Json<UserInfo>, ApiError> {
    match outcome {
        Outcome::User(u) => Ok(Json(s.users.info(&u))),
        other => Err(ApiError::new(ErrorKind::EIO, format!("a user change answered {other:?}"))),
    }
}

/// `POST /v1/admin/users/add`
pub async fn add(State(s): State<Master>, Extension(caller): Extension<Caller>, ApiJson(r): ApiJson<AddUserRequest>) -> Result<Json<UserInfo>, ApiError> {
    let outcome = change(&s, Mutation::AddUser(r)).await?;
    let user = user_of(&s, outcome)?;
    tracing::info!(by = %caller.user, user = %user.name, uid = user.uid, admin = user.admin, proxy = user.proxy, "user added");
    Ok(user)
}

/// `POST /v1/admin/users/remove`
pub async fn remove(State(s): State<Master>, Extension(caller): Extension<Caller>, ApiJson(r): ApiJson<UserName>) -> Result<Json<Done>, ApiError> {
    change(&s, Mutation::RemoveUser(r.name.clone())).await?;
    tracing::info!(by = %caller.user, user = %r.name, "user removed");
    Ok(Json(Done {}))
}

/// `POST /v1/admin/users/rotate`: an admin for anyone, a user for themselves.
pub async fn rotate(State(s): State<Master>, Extension(caller): Extension<Caller>, ApiJson(r): ApiJson<RotateRequest>) -> Result<Json<UserInfo>, ApiError> {
    if !caller.admin && caller.user != r.name {
        return Err(ApiError::new(ErrorKind::EACCES, format!("only an admin may rotate another user's credential ({} is not one)", caller.user)));
    }
    let outcome = change(&s, Mutation::RotateUser { name: r.name.clone(), stored_key: r.stored_key }).await?;
    tracing::info!(by = %caller.user, user = %r.name, "credential rotated");
    user_of(&s, outcome)
}
