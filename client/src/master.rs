//! Calls to the master's API, one method per endpoint.
//!
//! A request that could not reach the master at all (connection refused:
//! it is restarting) is sent again until `master_wait` has passed; that is
//! safe for mutations too, since nothing was sent. Other transport errors
//! are retried only for reads, which are idempotent.

use std::time::{Duration, Instant};

use dfs_common::wire::chunks::{
    BadReplica, ChunkLocations, ChunkserverInfo, CommitLength, LeaseRequest, LocateQuery, NodeRequest, ReplicationStatus, SafeModeRequest,
    WriteLease, WrittenChunk,
};
use dfs_common::wire::namespace::*;
use dfs_common::InodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{from_response, ClientError};

#[derive(Clone)]
pub struct MasterClient {
    base: String,
    http: reqwest::Client,
    wait: Duration,
}

impl MasterClient {
    pub fn new(base: &str, http: reqwest::Client, wait: Duration) -> Self {
        MasterClient { base: base.trim_end_matches('/').to_string(), http, wait }
    }

    /// The master's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(&self, idempotent: bool, build: impl Fn() -> reqwest::RequestBuilder) -> Result<T, ClientError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let err = match build().send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp.json().await?),
                // The master's messages name what they are about.
                Ok(resp) => return Err(from_response("", resp).await),
                Err(e) => e,
            };
            let retry = err.is_connect() || (idempotent && (err.is_timeout() || err.is_request()));
            if !retry || start.elapsed() + pause > self.wait {
                return Err(ClientError::unreachable(&self.base, &err));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.send(false, || self.http.post(&url).json(body)).await
    }

    async fn get<Q: Serialize, T: DeserializeOwned>(&self, path: &str, query: &Q) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.send(true, || self.http.get(&url).query(query)).await
    }

    pub async fn create(&self, req: &CreateRequest) -> Result<Made, ClientError> {
        self.post("/v1/create", req).await
    }

    pub async fn mkdir(&self, req: &MkdirRequest) -> Result<Made, ClientError> {
        self.post("/v1/mkdir", req).await
    }

    pub async fn symlink(&self, req: &SymlinkRequest) -> Result<Made, ClientError> {
        self.post("/v1/symlink", req).await
    }

    pub async fn rename(&self, req: &RenameRequest) -> Result<Changed, ClientError> {
        self.post("/v1/rename", req).await
    }

    pub async fn unlink(&self, at: EntryRef) -> Result<Changed, ClientError> {
        self.post("/v1/unlink", &RemoveRequest { at }).await
    }

    pub async fn rmdir(&self, at: EntryRef) -> Result<Changed, ClientError> {
        self.post("/v1/rmdir", &RemoveRequest { at }).await
    }

    pub async fn delete(&self, at: EntryRef, recursive: bool) -> Result<Changed, ClientError> {
        self.post("/v1/delete", &DeleteRequest { at, recursive }).await
    }

    pub async fn setattr(&self, req: &SetattrRequest) -> Result<Attr, ClientError> {
        self.post("/v1/setattr", req).await
    }

    pub async fn stat(&self, path: &str) -> Result<Attr, ClientError> {
        self.get("/v1/stat", &NodeRef { path: Some(path.into()), inode: None }).await
    }

    pub async fn stat_inode(&self, inode: InodeId) -> Result<Attr, ClientError> {
        self.get("/v1/stat", &NodeRef { path: None, inode: Some(inode) }).await
    }

    pub async fn lookup(&self, parent: InodeId, name: &str) -> Result<Attr, ClientError> {
        self.get("/v1/lookup", &LookupQuery { parent, name: name.into() }).await
    }

    pub async fn list(&self, query: &ListQuery) -> Result<ListResponse, ClientError> {
        self.get("/v1/list", query).await
    }

    pub async fn readlink(&self, node: &NodeRef) -> Result<String, ClientError> {
        self.get::<_, ReadlinkResponse>("/v1/readlink", node).await.map(|r| r.target)
    }

    pub async fn fs_stats(&self) -> Result<FsStats, ClientError> {
        self.get("/v1/fs", &()).await
    }

    pub async fn cluster(&self) -> Result<ClusterInfo, ClientError> {
        self.get("/v1/cluster", &()).await
    }

    pub async fn chunkservers(&self) -> Result<Vec<ChunkserverInfo>, ClientError> {
        self.get("/v1/chunkservers", &()).await
    }

    pub async fn fsck(&self, query: &FsckQuery) -> Result<FsckPage, ClientError> {
        self.get("/v1/admin/fsck", query).await
    }

    pub async fn append(&self, inode: InodeId, length: u64) -> Result<AppendReservation, ClientError> {
        self.post("/v1/append", &AppendRequest { inode, length }).await
    }

    pub async fn lease(&self, inode: InodeId, index: u64) -> Result<WriteLease, ClientError> {
        self.post("/v1/chunks/lease", &LeaseRequest { inode, index }).await
    }

    pub async fn locate(&self, inode: InodeId, first: u64, count: u64) -> Result<ChunkLocations, ClientError> {
        self.get("/v1/chunks", &LocateQuery { inode, first, count: Some(count) }).await
    }

    pub async fn commit_length(&self, inode: InodeId, length: u64, chunks: Vec<WrittenChunk>) -> Result<Attr, ClientError> {
        self.post("/v1/commit_length", &CommitLength { inode, length, chunks }).await
    }

    pub async fn report_bad(&self, bad: &BadReplica) -> Result<Done, ClientError> {
        self.post("/v1/chunks/bad", bad).await
    }

    pub async fn replication(&self) -> Result<ReplicationStatus, ClientError> {
        self.get("/v1/admin/replication", &()).await
    }

    pub async fn leave_safe_mode(&self) -> Result<ReplicationStatus, ClientError> {
        self.post("/v1/admin/safemode", &SafeModeRequest { leave: true }).await
    }

    /// Starts (`on`) or ends draining the chunkserver named by id or address.
    pub async fn decommission(&self, node: &str, on: bool) -> Result<Done, ClientError> {
        let path = if on { "/v1/admin/decommission" } else { "/v1/admin/recommission" };
        self.post(path, &NodeRequest { node: node.to_string() }).await
    }
}
