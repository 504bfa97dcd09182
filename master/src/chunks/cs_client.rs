//! Calls from the master to chunkservers: create a replica, move a replica
//! to a new lease's version, copy a replica from another chunkserver,
//! verify a replica. All are internal requests, signed with the cluster key
//! (a chunkserver refuses them otherwise; its 401 is a failure like any),
//! and fail with a typed [`CallError`].

use std::sync::Arc;
use std::time::Duration;

use dfs_proto::endpoint::chunkserver as ep;
use dfs_proto::wire::chunks::{CreateReplica, ReplicaReport, ReplicateChunk, SetReplicaVersion, VerifyReplica};
use dfs_proto::{ChunkHandle, ChunkVersion};
use dfs_server_kit::http::call::signed_json;
pub use dfs_server_kit::http::call::CallError;
use dfs_server_kit::http::internal::ClusterAuth;

/// How long the master waits on a chunkserver before counting it as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct CsClient {
    http: reqwest::Client,
    auth: Arc<ClusterAuth>,
}

impl CsClient {
    pub fn new(auth: Arc<ClusterAuth>) -> Self {
        let http = dfs_server_kit::tls::peer_client()
            .timeout(CALL_TIMEOUT)
            // Below the chunkservers' keep-alive limit (10 s by default).
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        CsClient { http, auth }
    }

    pub async fn create(&self, address: &str, handle: ChunkHandle, version: ChunkVersion, chunk_size_bytes: u64) -> Result<(), CallError> {
        let body = CreateReplica { version, chunk_size_bytes };
        signed_json::<ep::CreateReplica>(&self.auth, &self.http, address, &handle, &body, None).await.map(drop)
    }

    pub async fn set_version(&self, address: &str, handle: ChunkHandle, version: ChunkVersion) -> Result<(), CallError> {
        signed_json::<ep::SetVersion>(&self.auth, &self.http, address, &handle, &SetReplicaVersion { version }, None).await.map(drop)
    }

    /// Has `target` copy the chunk from `source`; answers once it is durable.
    pub async fn replicate(
        &self,
        target: &str,
        handle: ChunkHandle,
        source: &str,
        version: ChunkVersion,
        chunk_size_bytes: u64,
    ) -> Result<ReplicaReport, CallError> {
        let body = ReplicateChunk { source: source.to_string(), version, chunk_size_bytes };
        let timeout = super::monitor::copy_timeout(chunk_size_bytes);
        signed_json::<ep::Replicate>(&self.auth, &self.http, target, &handle, &body, Some(timeout)).await
    }

    /// Has `target` read its whole replica at `version` against its
    /// checksums; whether it is corrupt (it then quarantines and reports
    /// the replica itself).
    pub async fn verify(&self, target: &str, handle: ChunkHandle, version: ChunkVersion, chunk_size_bytes: u64) -> Result<bool, CallError> {
        let timeout = super::monitor::copy_timeout(chunk_size_bytes);
        let answer = signed_json::<ep::Verify>(&self.auth, &self.http, target, &handle, &VerifyReplica { version }, Some(timeout)).await?;
        Ok(answer.corrupt)
    }
}
