//! GETDELEGATIONTOKEN, RENEWDELEGATIONTOKEN and CANCELDELEGATIONTOKEN
//! (see `crate::delegation`).

use axum::response::Response;
use dfs_proto::webhdfs::{LongBody, Op, RemoteError};

use super::{empty, json, Params};
use crate::state::Master;
use crate::users::Caller;

pub async fn answer(s: &Master, c: &Caller, op: Op, p: &Params) -> Result<Response, RemoteError> {
    let failed = |e: crate::store::NsError| RemoteError::from_kind(e.kind, &e.message, "");
    match op {
        Op::GetDelegationToken => {
            // As HDFS: a token is not had with a token, nor without a
            // real login (HDFS issues none under simple authentication).
            if p.get("delegation").is_some_and(|d| !d.is_empty()) {
                return Err(RemoteError::illegal_argument("delegation parameter is not null: a delegation token is not had with a token"));
            }
            if !c.may_hold_tokens() {
                return Err(RemoteError::io(
                    "Delegation Token can be issued only to a signed-in user (dfs fetchdt), not under simple authentication or with a grant",
                ));
            }
            let renewer = p.get("renewer").filter(|r| !r.is_empty()).unwrap_or(&c.user);
            let issued = s.delegation.issue(&c.user, renewer).await.map_err(failed)?;
            Ok(json(&serde_json::json!({"Token": {"urlString": issued.token}})))
        }
        Op::RenewDelegationToken => {
            if !c.may_hold_tokens() {
                return Err(RemoteError::io("Delegation Token can be renewed only by its signed-in renewer, not with a token or under simple authentication"));
            }
            let expires = s.delegation.renew(token(p)?, &c.user).await.map_err(failed)?;
            Ok(json(&LongBody { long: expires.min(i64::MAX as u64) as i64 }))
        }
        Op::CancelDelegationToken => {
            s.delegation.cancel(token(p)?, &c.user).await.map_err(failed)?;
            Ok(empty())
        }
        _ => Err(RemoteError::illegal_argument(format!("{} is not a token operation", op.name()))),
    }
}

fn token(p: &Params) -> Result<&str, RemoteError> {
    p.get("token").filter(|t| !t.is_empty()).ok_or_else(|| RemoteError::illegal_argument("Required param token is null or empty"))
}
