//! Test nodes of one cluster: a cluster key shared by every node made
//! here, a token key installed in each (as a heartbeat answer would), and
//! helpers to grant tokens and sign requests as the master or a peer does.

use std::sync::{Arc, OnceLock};

use dfs_proto::auth::{ChunkToken, ClusterKey, KeyRing, Ops, TokenKey};
use dfs_proto::wire::chunks::Peers;
use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};
use dfs_server_kit::http::internal::ClusterAuth;

use crate::chunk_store::ChunkStore;
use crate::config::ChunkserverConfig;
use crate::node::{new_node, Node, Trust};

/// The token key's id in every test node.
const KEY_ID: u32 = 41;

struct Cluster {
    ring: KeyRing,
    token_key: TokenKey,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let ring = KeyRing::single(ClusterKey::generate());
        let token_key = TokenKey::generate(&ring, KEY_ID, u64::MAX);
        Cluster { ring, token_key }
    })
}

/// A node of the test cluster, registered (no master here), holding the
/// cluster's token key; its peer list is empty until [`introduce`].
pub(crate) fn node(config: &ChunkserverConfig, store: ChunkStore, address: String) -> Arc<Node> {
    let trust = Trust { auth: ClusterAuth::fixed(cluster().ring.clone()), cluster_id: None };
    let node = Arc::new(new_node(config, NodeId(uuid::Uuid::new_v4()), store, address, trust).expect("node"));
    node.tokens.install(&cluster().ring, std::slice::from_ref(&cluster().token_key.info));
    node.registered.store(true, std::sync::atomic::Ordering::Release);
    node
}

/// Makes every one of `nodes` a peer of every other (a heartbeat's list).
pub(crate) fn introduce(nodes: &[&Node]) {
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    for n in nodes {
        n.peers.set(Peers { epoch: 1, addresses: addresses.clone() });
    }
}

/// A token for `handle` at `version` allowing `ops`, expiring at `expires_unix_ms`.
pub(crate) fn grant_until(handle: ChunkHandle, version: ChunkVersion, ops: Ops, expires_unix_ms: u64) -> String {
    let token = ChunkToken { key_id: KEY_ID, expires_unix_ms, handle, version, ops, identity: "test".into() };
    cluster().token_key.sign(&token)
}

/// A token valid for an hour.
pub(crate) fn grant(handle: ChunkHandle, version: ChunkVersion, ops: Ops) -> String {
    grant_until(handle, version, ops, dfs_proto::auth::unix_ms() + 3_600_000)
}

/// Signs as a node of the cluster (the master or a peer) does.
pub(crate) fn insider() -> Arc<ClusterAuth> {
    ClusterAuth::fixed(cluster().ring.clone())
}

/// The `x-dfs-auth` value for a request sent by hand (raw sockets):
/// `headers` are those it will carry (covered ones count), `body` its body.
pub(crate) fn sign_by_hand(method: &str, url: &str, headers: &[(&str, String)], body: &[u8]) -> String {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut builder = reqwest::Client::new().request(method, url).body(body.to_vec());
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let mut request = builder.build().expect("request");
    insider().sign(&mut request);
    let value = request.headers().get(dfs_proto::auth::signature::HEADER_AUTH).expect("signed");
    value.to_str().expect("ascii").to_string()
}
