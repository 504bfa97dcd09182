//! Calls from the master to chunkservers: create a replica, move a replica
//! to a new lease's version, copy a replica from another chunkserver,
//! verify a replica. All are internal requests, signed with the cluster key
//! (a chunkserver refuses them otherwise; its 401 is a failure like any).

use std::sync::Arc;
use std::time::Duration;

use dfs_common::http::internal::ClusterAuth;
use dfs_common::wire::chunks::{CreateReplica, ReplicaReport, ReplicateChunk, SetReplicaVersion, VerifyAnswer, VerifyReplica};
use dfs_common::{ChunkHandle, ChunkVersion};

/// How long the master waits on a chunkserver before counting it as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

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

    async fn post<T: serde::Serialize>(&self, url: String, body: &T) -> Result<(), String> {
        match self.auth.send(&self.http, self.http.post(&url).json(body)).await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default())),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    pub async fn create(&self, address: &str, handle: ChunkHandle, version: ChunkVersion, chunk_size_bytes: u64) -> Result<(), String> {
        let url = format!("{address}/v1/chunks/{handle}/create");
        self.post(url, &CreateReplica { version, chunk_size_bytes }).await
    }

    pub async fn set_version(&self, address: &str, handle: ChunkHandle, version: ChunkVersion) -> Result<(), String> {
        let url = format!("{address}/v1/chunks/{handle}/version");
        self.post(url, &SetReplicaVersion { version }).await
    }
}

impl CsClient {
    /// Has `target` copy the chunk from `source`; answers once it is durable.
    pub async fn replicate(
        &self,
        target: &str,
        handle: ChunkHandle,
        source: &str,
        version: ChunkVersion,
        chunk_size_bytes: u64,
    ) -> Result<ReplicaReport, String> {
        let url = format!("{target}/v1/chunks/{handle}/replicate");
        let body = ReplicateChunk { source: source.to_string(), version, chunk_size_bytes };
        let timeout = super::monitor::copy_timeout(chunk_size_bytes);
        match self.auth.send(&self.http, self.http.post(&url).json(&body).timeout(timeout)).await {
            Ok(r) if r.status().is_success() => r.json().await.map_err(|e| format!("{url}: {e}")),
            Ok(r) => Err(format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default())),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    /// Has `target` read its whole replica at `version` against its
    /// checksums; whether it is corrupt (it then quarantines and reports
    /// the replica itself).
    pub async fn verify(&self, target: &str, handle: ChunkHandle, version: ChunkVersion, chunk_size_bytes: u64) -> Result<bool, String> {
        let url = format!("{target}/v1/chunks/{handle}/verify");
        let timeout = super::monitor::copy_timeout(chunk_size_bytes);
        match self.auth.send(&self.http, self.http.post(&url).json(&VerifyReplica { version }).timeout(timeout)).await {
            Ok(r) if r.status().is_success() => r.json::<VerifyAnswer>().await.map(|v| v.corrupt).map_err(|e| format!("{url}: {e}")),
            Ok(r) => Err(format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default())),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }
}
