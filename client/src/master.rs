//! Calls to the master's API.

use dfs_common::wire::chunks::{ChunkLocations, CommitLength, LeaseRequest, LocateQuery, WriteLease, WrittenChunk};
use dfs_common::wire::namespace::*;
use dfs_common::InodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{from_response, ClientError};

#[derive(Clone)]
pub struct MasterClient {
    base: String,
    http: reqwest::Client,
}

impl MasterClient {
    pub fn new(base: &str, http: reqwest::Client) -> Self {
        MasterClient { base: base.trim_end_matches('/').to_string(), http }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let resp = self.http.post(format!("{}{path}", self.base)).json(body).send().await?;
        if !resp.status().is_success() {
            return Err(from_response(path, resp).await);
        }
        Ok(resp.json().await?)
    }

    async fn get<Q: Serialize, T: DeserializeOwned>(&self, path: &str, query: &Q) -> Result<T, ClientError> {
        let resp = self.http.get(format!("{}{path}", self.base)).query(query).send().await?;
        if !resp.status().is_success() {
            return Err(from_response(path, resp).await);
        }
        Ok(resp.json().await?)
    }

    pub async fn create(&self, req: &CreateRequest) -> Result<Attr, ClientError> {
        self.post("/v1/create", req).await
    }

    pub async fn mkdir(&self, req: &MkdirRequest) -> Result<Attr, ClientError> {
        self.post("/v1/mkdir", req).await
    }

    pub async fn stat(&self, path: &str) -> Result<Attr, ClientError> {
        self.get("/v1/stat", &NodeRef { path: Some(path.into()), inode: None }).await
    }

    pub async fn stat_inode(&self, inode: InodeId) -> Result<Attr, ClientError> {
        self.get("/v1/stat", &NodeRef { path: None, inode: Some(inode) }).await
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
}
