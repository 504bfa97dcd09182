//! Cluster trust on the master's chunk side: which cluster a heartbeat
//! belongs to, what its answer tells the chunkserver (the cluster id, the
//! token keys, the registered peers), the tokens handed to clients, and
//! what a client's report of a bad replica may do: only ask the replica's
//! chunkserver to verify it, never drop the replica on the client's word.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dfs_proto::auth::{Ops, TokenError};
use dfs_proto::wire::chunks::{BadReplica, Heartbeat, HeartbeatResponse, Peers};
use dfs_proto::{ChunkHandle, ErrorKind, NodeId};
use dfs_server_kit::http::internal::ClusterAuth;

use super::{err, ChunkManager};
use crate::store::NsError;
use crate::tokens::{Signer, Tokens};

/// Verifications of client reports running at once, over all replicas:
/// each reads a whole replica on its chunkserver.
pub const CHECKS_MAX: usize = 4;

/// What the chunk manager needs to trust and be trusted.
pub struct Trust {
    pub auth: Arc<ClusterAuth>,
    pub tokens: Tokens,
    /// This master's cluster (from the namespace store).
    pub cluster_id: String,
    /// Replicas being verified on a client's report.
    checks: Mutex<HashSet<(ChunkHandle, NodeId)>>,
}

impl Trust {
    pub fn new(auth: Arc<ClusterAuth>, tokens: Tokens, cluster_id: String) -> Self {
        Trust { auth, tokens, cluster_id, checks: Mutex::new(HashSet::new()) }
    }
}

/// A heartbeat's cluster against this master's: one that names another
/// cluster is refused (a chunkserver that never registered names none).
pub fn check_cluster_id(ours: &str, theirs: Option<&str>) -> Result<(), String> {
    match theirs {
        Some(theirs) if theirs != ours => Err(format!("this chunkserver belongs to cluster {theirs}; this master is of cluster {ours}")),
        _ => Ok(()),
    }
}

/// The epoch of a peer list: the same for the same set of addresses (in
/// any order), different (but for a 2^-64 chance) for another, never 0
/// (a chunkserver holding no list says 0). FNV-1a, stable across builds.
pub fn peers_epoch(addresses: &[String]) -> u64 {
    let mut sorted: Vec<&str> = addresses.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for a in sorted {
        for b in a.bytes().chain(std::iter::once(b'\n')) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h.max(1)
}

/// Whether one more verification may start (pure): not a second one of
/// the same replica, and not past the cap.
pub fn may_check(running: &HashSet<(ChunkHandle, NodeId)>, replica: (ChunkHandle, NodeId), cap: usize) -> bool {
    !running.contains(&replica) && running.len() < cap
}

/// A refused token, as an error for the client.
pub fn token_refusal(e: TokenError) -> NsError {
    let kind = match e {
        TokenError::Missing | TokenError::Malformed | TokenError::BadSignature => ErrorKind::EKEYREJECTED,
        TokenError::UnknownKey(_) | TokenError::Expired => ErrorKind::EKEYEXPIRED,
        TokenError::WrongChunk { .. } | TokenError::WrongOp => ErrorKind::EACCES,
    };
    err(kind, e.to_string())
}

/// Ends a verification's slot however its task ends.
struct CheckSlot {
    manager: Arc<ChunkManager>,
    replica: (ChunkHandle, NodeId),
}

impl Drop for CheckSlot {
    fn drop(&mut self) {
        self.manager.trust.checks.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.replica);
    }
}

impl ChunkManager {
    pub fn cluster_id(&self) -> &str {
        &self.trust.cluster_id
    }

    /// Refuses (EACCES, nothing changed) a heartbeat of another cluster.
    pub fn check_cluster(&self, hb: &Heartbeat) -> Result<(), NsError> {
        check_cluster_id(&self.trust.cluster_id, hb.cluster_id.as_deref()).map_err(|m| {
            tracing::warn!(node = %hb.node_id, address = %hb.address, "heartbeat refused: {m}");
            err(ErrorKind::EACCES, m)
        })
    }

    /// Adds what every heartbeat answer carries: the cluster id, the token
    /// keys to accept, and the peers when the node's list is not current.
    pub fn complete_answer(&self, hb: &Heartbeat, answer: &mut HeartbeatResponse) {
        answer.cluster_id = self.trust.cluster_id.clone();
        answer.token_keys = self.trust.tokens.announced();
        let peers = self.peers();
        answer.peers = (peers.epoch != hb.peers_epoch).then_some(peers);
    }

    /// The registered chunkservers that are not dead.
    pub fn peers(&self) -> Peers {
        let now = Instant::now();
        let mut addresses: Vec<String> = {
            let map = self.map();
            let all = map.chunkservers(now, self.config.dead_after);
            all.into_iter().filter(|c| c.state != "dead").map(|c| c.address).collect()
        };
        addresses.sort_unstable();
        addresses.dedup();
        Peers { epoch: peers_epoch(&addresses), addresses }
    }

    /// Signs the tokens of locations and leases handed out now.
    pub(super) fn token_signer(&self) -> Signer {
        self.trust.tokens.signer()
    }

    /// A client's report of a bad replica (unsigned): it must hold a read
    /// token for the chunk, and then it only makes the replica's
    /// chunkserver verify the replica (which quarantines and reports it,
    /// signed, if it is corrupt). A report of an older version, of a
    /// replica not held at the current version, or beyond the limits of
    /// verifications at once is dropped: outsiders can never bring a
    /// chunk's copies down, nor keep chunkservers busy reading.
    pub fn suspect(self: &Arc<Self>, bad: &BadReplica) -> Result<(), NsError> {
        let token = match self.trust.tokens.verify(bad.token.as_deref(), bad.handle, Ops::READ) {
            Ok(t) => t,
            Err(TokenError::Missing) => {
                let m = "an unsigned report of a bad replica must carry the reporter's read token for the chunk (\"token\")";
                return Err(err(ErrorKind::EKEYREJECTED, m));
            }
            Err(e) => return Err(token_refusal(e)),
        };
        let (node, address, version, chunk_size) = {
            let map = self.map();
            let node = match (bad.node_id, &bad.address) {
                (Some(n), None) => n,
                (None, Some(a)) => map.node_at(a).ok_or_else(|| err(ErrorKind::ENOENT, format!("no chunkserver at {a}")))?,
                _ => return Err(err(ErrorKind::EINVAL, "name the replica by \"node_id\" or by \"address\"")),
            };
            let meta = map.chunk(bad.handle);
            let chunk_size = meta.and_then(|m| map.file(m.inode)).map_or(64 << 20, |f| f.chunk_size);
            let held = map.replica_version(bad.handle, node);
            match (meta.map(|m| m.version), map.address(node)) {
                (Some(v), Some(a)) if v == token.version && held == Some(v) => (node, a.address, v, chunk_size),
                _ => {
                    tracing::debug!(chunk = %bad.handle, %node, version = %token.version, "client report of a replica not current: dropped");
                    return Ok(());
                }
            }
        };
        let replica = (bad.handle, node);
        {
            let mut running = self.trust.checks.lock().unwrap_or_else(|p| p.into_inner());
            if !may_check(&running, replica, CHECKS_MAX) {
                tracing::debug!(chunk = %bad.handle, %node, running = running.len(), "client report dropped: a verification is under way");
                return Ok(());
            }
            running.insert(replica);
        }
        tracing::info!(chunk = %bad.handle, %node, "a client reports a bad replica: asking its chunkserver to verify it");
        let slot = CheckSlot { manager: self.clone(), replica };
        tokio::spawn(async move {
            let manager = slot.manager.clone();
            match manager.cs.verify(&address, slot.replica.0, version, chunk_size).await {
                Ok(true) => tracing::warn!(chunk = %slot.replica.0, %address, "verification on a client's report: corrupt (the chunkserver reports it)"),
                Ok(false) => tracing::info!(chunk = %slot.replica.0, %address, "verification on a client's report: the replica is sound"),
                Err(e) => tracing::warn!(chunk = %slot.replica.0, error = %e, "verifying a replica a client reported failed"),
            }
            drop(slot);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_cluster_is_refused_and_a_new_node_is_not() {
        assert!(check_cluster_id("a", None).is_ok());
        assert!(check_cluster_id("a", Some("a")).is_ok());
        let e = check_cluster_id("a", Some("b")).unwrap_err();
        assert!(e.contains("cluster b") && e.contains("cluster a"), "{e}");
    }

    #[test]
    fn the_peers_epoch_changes_only_when_the_set_does() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let abc = peers_epoch(&s(&["http://a", "http://b", "http://c"]));
        assert_eq!(abc, peers_epoch(&s(&["http://c", "http://a", "http://b"])), "order does not matter");
        assert_eq!(abc, peers_epoch(&s(&["http://c", "http://a", "http://b", "http://a"])));
        assert_ne!(abc, peers_epoch(&s(&["http://a", "http://b"])));
        assert_ne!(abc, peers_epoch(&s(&["http://a", "http://b", "http://d"])));
        // Boundaries between addresses count: "ab"+"c" is not "a"+"bc".
        assert_ne!(peers_epoch(&s(&["ab", "c"])), peers_epoch(&s(&["a", "bc"])));
        assert_ne!(peers_epoch(&[]), 0);
    }

    #[test]
    fn one_check_per_replica_and_a_few_at_once() {
        let mut running = HashSet::new();
        let r = |h: u64, n: u128| (ChunkHandle(h), NodeId(uuid::Uuid::from_u128(n)));
        assert!(may_check(&running, r(1, 1), 2));
        running.insert(r(1, 1));
        assert!(!may_check(&running, r(1, 1), 2), "the same replica twice");
        assert!(may_check(&running, r(1, 2), 2));
        running.insert(r(1, 2));
        assert!(!may_check(&running, r(2, 3), 2), "over the cap");
    }

    #[test]
    fn token_refusals_map_to_the_documented_kinds() {
        assert_eq!(token_refusal(TokenError::Missing).kind, ErrorKind::EKEYREJECTED);
        assert_eq!(token_refusal(TokenError::BadSignature).kind, ErrorKind::EKEYREJECTED);
        assert_eq!(token_refusal(TokenError::Expired).kind, ErrorKind::EKEYEXPIRED);
        assert_eq!(token_refusal(TokenError::UnknownKey(3)).kind, ErrorKind::EKEYEXPIRED);
        assert_eq!(token_refusal(TokenError::WrongOp).kind, ErrorKind::EACCES);
    }
}
