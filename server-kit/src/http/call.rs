//! Calls from one daemon to another (master → chunkserver, chunkserver →
//! master or peer): the typed error every such call fails with, and a
//! signed JSON call built from an endpoint declaration.

use std::time::Duration;

use dfs_proto::endpoint::{self, Endpoint, Method};
use dfs_proto::{ErrorBody, ErrorKind};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::internal::ClusterAuth;

/// Why a call to another daemon failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Never sent: the request could not be built.
    #[error("{url}: not sent: {reason}")]
    Unsent { url: String, reason: String },
    /// No answer: refused connection, reset, or the call's timeout.
    #[error("{url}: no answer: {reason}")]
    Unreachable { url: String, reason: String },
    /// The peer answered with an error (its JSON error's kind, when it
    /// sent one).
    #[error("{url}: {status} {kind:?}: {message}")]
    Refused { url: String, status: u16, kind: Option<ErrorKind>, message: String },
    /// A success whose body is not the expected answer.
    #[error("{url}: bad answer: {reason}")]
    BadAnswer { url: String, reason: String },
    /// An answer longer than the caller takes (memory stays bounded
    /// whatever the peer sends).
    #[error("{url}: answer over {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

impl CallError {
    /// A call whose answer was lost on the caller's side (its task ended).
    pub fn lost(reason: &str) -> CallError {
        CallError::Unreachable { url: String::new(), reason: reason.to_string() }
    }

    pub fn unreachable(url: &str, e: reqwest::Error) -> CallError {
        match e.is_builder() {
            true => CallError::Unsent { url: url.to_string(), reason: e.to_string() },
            false => CallError::Unreachable { url: url.to_string(), reason: e.to_string() },
        }
    }

    /// The refusal in a non-success answer, its JSON error decoded if any.
    pub async fn refused(url: &str, r: reqwest::Response) -> CallError {
        let status = r.status().as_u16();
        let (kind, message) = refusal(&r.bytes().await.unwrap_or_default());
        CallError::Refused { url: url.to_string(), status, kind, message }
    }
}

/// What a refusing answer's body says: the kind and message of its JSON
/// error, or its text as the message.
pub fn refusal(body: &[u8]) -> (Option<ErrorKind>, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (Some(b.error), b.message),
        Err(_) => (None, String::from_utf8_lossy(body).into_owned()),
    }
}

/// Most bytes reserved up front for an answer: its length header comes
/// before anything is verified, so it may not size a large allocation.
const RESERVE_MAX_BYTES: u64 = 8 << 20;

/// The body of `resp`, refused past `limit` bytes.
pub async fn body_up_to(url: &str, mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(limit).min(RESERVE_MAX_BYTES) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(frame)) if body.len() as u64 + frame.len() as u64 > limit => return Err(CallError::TooLarge { url: url.to_string(), limit }),
            Ok(Some(frame)) => body.extend_from_slice(&frame),
            Ok(None) => return Ok(body),
            Err(e) => return Err(CallError::unreachable(url, e)),
        }
    }
}

/// A signed call of endpoint `E` at `base` with a JSON body (none for a
/// GET); its JSON answer. `timeout` overrides the client's.
pub async fn signed_json<E>(
    auth: &ClusterAuth,
    http: &reqwest::Client,
    base: &str,
    param: &E::Path,
    body: &E::Request,
    timeout: Option<Duration>,
) -> Result<E::Response, CallError>
where
    E: Endpoint<Query = ()>,
    E::Request: Serialize,
    E::Response: DeserializeOwned,
{
    let url = endpoint::url_no_query::<E>(base, param);
    let mut builder = match E::METHOD {
        Method::Get => http.get(&url),
        Method::Post => http.post(&url).json(body),
        Method::Put => http.put(&url).json(body),
    };
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    let r = match auth.send(http, builder).await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return Err(CallError::refused(&url, r).await),
        Err(e) => return Err(CallError::unreachable(&url, e)),
    };
    r.json().await.map_err(|e| CallError::BadAnswer { url, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Json;
    use dfs_proto::auth::{ClusterKey, KeyRing};
    use dfs_proto::endpoint::chunkserver::{CreateReplica, Verify};
    use dfs_proto::wire::chunks;
    use dfs_proto::wire::namespace::Done;
    use dfs_proto::{ChunkHandle, ChunkVersion};

    use super::super::route::Routes;
    use super::*;

    async fn serve(auth: Arc<ClusterAuth>) -> String {
        let app = Routes::new(auth)
            .serve::<CreateReplica, _, _>(|Json(r): Json<chunks::CreateReplica>| async move {
                match r.version.0 {
                    0 => Err(super::super::ApiError::new(ErrorKind::EINVAL, "version 0")),
                    _ => Ok(Json(Done {})),
                }
            })
            .serve::<Verify, _, _>(|| async { "not json" })
            .into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    }

    #[tokio::test]
    async fn calls_answer_typed_errors() {
        let ring = KeyRing::single(ClusterKey::generate());
        let (auth, http) = (ClusterAuth::fixed(ring), reqwest::Client::new());
        let base = serve(auth.clone()).await;
        let create = |v| chunks::CreateReplica { version: ChunkVersion(v), chunk_size_bytes: 1 << 20 };
        let ok = signed_json::<CreateReplica>(&auth, &http, &base, &ChunkHandle(1), &create(1), None).await;
        assert_eq!(ok, Ok(Done {}));
        let refused = signed_json::<CreateReplica>(&auth, &http, &base, &ChunkHandle(1), &create(0), None).await.unwrap_err();
        assert!(matches!(&refused, CallError::Refused { status: 400, kind: Some(ErrorKind::EINVAL), .. }), "{refused:?}");
        let stranger = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
        let unsigned = signed_json::<CreateReplica>(&stranger, &http, &base, &ChunkHandle(1), &create(1), None).await.unwrap_err();
        assert!(matches!(unsigned, CallError::Refused { status: 401, kind: Some(ErrorKind::EKEYREJECTED), .. }), "{unsigned:?}");
        let bad = signed_json::<Verify>(&auth, &http, &base, &ChunkHandle(1), &chunks::VerifyReplica { version: ChunkVersion(1) }, None).await;
        assert!(matches!(bad, Err(CallError::BadAnswer { .. })), "{bad:?}");
        let gone = signed_json::<CreateReplica>(&auth, &http, "http://127.0.0.1:9", &ChunkHandle(1), &create(1), None).await.unwrap_err();
        assert!(matches!(gone, CallError::Unreachable { .. }), "{gone:?}");
    }
}
