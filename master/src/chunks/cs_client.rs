//! Calls from the master to chunkservers: create a replica, move a replica
//! to a new lease's version, copy a replica from another chunkserver,
//! verify a replica. All are internal requests, signed with the cluster key
//! (a chunkserver refuses them otherwise; its 401 is a failure like any).

use std::sync::Arc;
use std::time::Duration;

use dfs_common::http::internal::ClusterAuth;
use dfs_common::wire::chunks::{CreateReplica, ReplicaReport, ReplicateChunk, SetReplicaVersion, VerifyAnswer, VerifyReplica};
use dfs_common::{ChunkHandle, ChunkVersion, ErrorBody, ErrorKind};

/// How long the master waits on a chunkserver before counting it as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call to a chunkserver failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsError {
    /// No answer: refused connection, reset, or the call's timeout.
    #[error("{url}: no answer: {reason}")]
    Unreachable { url: String, reason: String },
    /// The chunkserver answered with an error (its JSON error's kind, when
    /// it sent one).
    #[error("{url}: {status} {kind:?}: {message}")]
    Refused { url: String, status: u16, kind: Option<ErrorKind>, message: String },
    /// A success whose body is not the expected answer.
    #[error("{url}: bad answer: {reason}")]
    BadAnswer { url: String, reason: String },
}

impl CsError {
    /// A call whose answer was lost on the master's side.
    pub fn lost(reason: &str) -> CsError {
        CsError::Unreachable { url: String::new(), reason: reason.to_string() }
    }

    fn unreachable(url: &str, e: reqwest::Error) -> CsError {
        CsError::Unreachable { url: url.to_string(), reason: e.to_string() }
    }

    async fn refused(url: &str, r: reqwest::Response) -> CsError {
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let (kind, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (Some(body.error), body.message),
            Err(_) => (None, text),
        };
        CsError::Refused { url: url.to_string(), status, kind, message }
    }
}

#[derive(Clone)]
pub struct CsClient {
    http: reqwest::Client,
    auth: Arc<ClusterAuth>,
}

impl CsClient {
    pub fn new(auth: Arc<ClusterAuth>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            // Below the chunkservers' keep-alive limit (10 s by default).
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        CsClient { http, auth }
    }

    /// Sends a signed call; the answer if it is a success.
    async fn call<T: serde::Serialize>(&self, url: &str, body: &T, timeout: Option<Duration>) -> Result<reqwest::Response, CsError> {
        let mut builder = self.http.post(url).json(body);
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        match self.auth.send(&self.http, builder).await {
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) => Err(CsError::refused(url, r).await),
            Err(e) => Err(CsError::unreachable(url, e)),
        }
    }

    async fn answer<A: serde::de::DeserializeOwned>(url: &str, r: reqwest::Response) -> Result<A, CsError> {
        r.json().await.map_err(|e| CsError::BadAnswer { url: url.to_string(), reason: e.to_string() })
    }

    pub async fn create(&self, address: &str, handle: ChunkHandle, version: ChunkVersion, chunk_size_bytes: u64) -> Result<(), CsError> {
        let url = format!("{address}/v1/chunks/{handle}/create");
        self.call(&url, &CreateReplica { version, chunk_size_bytes }, None).await.map(drop)
    }

    pub async fn set_version(&self, address: &str, handle: ChunkHandle, version: ChunkVersion) -> Result<(), CsError> {
        let url = format!("{address}/v1/chunks/{handle}/version");
        self.call(&url, &SetReplicaVersion { version }, None).await.map(drop)
    }

    /// Has `target` copy the chunk from `source`; answers once it is durable.
    pub async fn replicate(
        &self,
        target: &str,
        handle: ChunkHandle,
        source: &str,
        version: ChunkVersion,
        chunk_size_bytes: u64,
    ) -> Result<ReplicaReport, CsError> {
        let url = format!("{target}/v1/chunks/{handle}/replicate");
        let body = ReplicateChunk { source: source.to_string(), version, chunk_size_bytes };
        let r = self.call(&url, &body, Some(super::monitor::copy_timeout(chunk_size_bytes))).await?;
        Self::answer(&url, r).await
    }

    /// Has `target` read its whole replica at `version` against its
    /// checksums; whether it is corrupt (it then quarantines and reports
    /// the replica itself).
    pub async fn verify(&self, target: &str, handle: ChunkHandle, version: ChunkVersion, chunk_size_bytes: u64) -> Result<bool, CsError> {
        let url = format!("{target}/v1/chunks/{handle}/verify");
        let r = self.call(&url, &VerifyReplica { version }, Some(super::monitor::copy_timeout(chunk_size_bytes))).await?;
        Self::answer::<VerifyAnswer>(&url, r).await.map(|v| v.corrupt)
    }
}
