//! Calls between the masters of a Raft group: openraft's messages as
//! signed JSON calls (`endpoint::raft`), the client side and the server's
//! handlers.
//!
//! A node's address is its API's base URL (`BasicNode::addr`). Each
//! message is openraft's own serde form; an answer is a `Result` of
//! openraft's response or its `RaftError`, so a refusal by the peer (a
//! higher vote, a conflict) reaches openraft as the peer's error, and a
//! transport failure as unreachable (openraft backs off) or as a network
//! error (it retries).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use dfs_proto::endpoint::raft as ep;
use dfs_proto::endpoint::Endpoint;
use dfs_proto::ErrorKind;
use dfs_server_kit::http::call::{signed_json, CallError};
use dfs_server_kit::http::internal::ClusterAuth;
use dfs_server_kit::http::route::Routes;
use dfs_server_kit::http::ApiError;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, Raft};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::log_store::NodeId;
use super::machine::Group;

type Failure<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

/// Makes a [`Peer`] for each member openraft talks to.
#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
    auth: Arc<ClusterAuth>,
    /// Tests' network partitions: this node's id, and the pairs of nodes
    /// that cannot reach each other.
    #[cfg(test)]
    cut: Option<(NodeId, Cut)>,
}

/// Pairs (from, to) of nodes whose calls fail as unreachable (tests).
#[cfg(test)]
pub(crate) type Cut = Arc<std::sync::Mutex<std::collections::HashSet<(NodeId, NodeId)>>>;

impl Peers {
    /// Calls signed with `auth`'s cluster key.
    pub fn new(auth: Arc<ClusterAuth>) -> Peers {
        // Each call has openraft's own deadline (RPCOption's hard TTL).
        let http = dfs_server_kit::tls::peer_client().pool_idle_timeout(std::time::Duration::from_secs(5)).build().unwrap_or_default();
        Peers {
            http,
            auth,
            #[cfg(test)]
            cut: None,
        }
    }

    /// As node `me`, whose calls to the pairs in `cut` fail (tests).
    #[cfg(test)]
    pub(crate) fn partitioned(mut self, me: NodeId, cut: Cut) -> Peers {
        self.cut = Some((me, cut));
        self
    }
}

impl RaftNetworkFactory<Group> for Peers {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer { target, address: node.addr.clone(), peers: self.clone() }
    }
}

/// One other master, as openraft calls it.
pub struct Peer {
    target: NodeId,
    address: String,
    peers: Peers,
}

impl Peer {
    async fn call<E, Req, Resp, Err>(&self, message: &Req, option: &RPCOption) -> Result<Resp, Failure<Err>>
    where
        E: Endpoint<Path = (), Query = (), Request = serde_json::Value, Response = serde_json::Value>,
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        #[cfg(test)]
        if let Some((me, cut)) = &self.peers.cut {
            if cut.lock().unwrap().contains(&(*me, self.target)) {
                return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other("partitioned by the test"))));
            }
        }
        let body = serde_json::to_value(message).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = signed_json::<E>(&self.peers.auth, &self.peers.http, &self.address, &(), &body, Some(option.hard_ttl())).await.map_err(|e| match e {
            CallError::Unsent { .. } | CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            _ => RPCError::Network(NetworkError::new(&e)),
        })?;
        let answer: Result<Resp, RaftError<NodeId, Err>> = serde_json::from_value(answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<Group> for Peer {
    async fn append_entries(&mut self, rpc: AppendEntriesRequest<Group>, option: RPCOption) -> Result<AppendEntriesResponse<NodeId>, Failure> {
        self.call::<ep::RaftAppend, _, _, _>(&rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Group>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Failure<InstallSnapshotError>> {
        self.call::<ep::RaftSnapshot, _, _, _>(&rpc, &option).await
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> Result<VoteResponse<NodeId>, Failure> {
        self.call::<ep::RaftVote, _, _, _>(&rpc, &option).await
    }
}

/// The three endpoints, served to masters holding the cluster key.
pub fn routes(raft: Raft<Group>, auth: Arc<ClusterAuth>) -> axum::Router {
    Routes::new(auth)
        .serve::<ep::RaftAppend, _, _>(append)
        .serve::<ep::RaftVote, _, _>(vote)
        .serve::<ep::RaftSnapshot, _, _>(snapshot)
        .into_router()
        .with_state(raft)
}

fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(ErrorKind::EINVAL, format!("not a Raft message: {e}")))
}

fn encode<T: Serialize>(answer: &T) -> Result<Json<serde_json::Value>, ApiError> {
    serde_json::to_value(answer).map(Json).map_err(|e| ApiError::new(ErrorKind::EIO, format!("encoding a Raft answer: {e}")))
}

async fn append(State(raft): State<Raft<Group>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let message: AppendEntriesRequest<Group> = decode(&body)?;
    encode(&raft.append_entries(message).await)
}

async fn vote(State(raft): State<Raft<Group>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let message: VoteRequest<NodeId> = decode(&body)?;
    encode(&raft.vote(message).await)
}

async fn snapshot(State(raft): State<Raft<Group>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let message: InstallSnapshotRequest<Group> = decode(&body)?;
    encode(&raft.install_snapshot(message).await)
}
