//! Syncs: at a durable close, the chunks a writer wrote since its last sync
//! are synced on every replica, before the writer commits the file's new
//! length (NFS's COMMIT at close, HDFS's hsync); an fsync syncs every chunk
//! of the file. The replicas are first those of the lease each chunk was
//! last written under (the chain that took the bytes: no master call);
//! after any failure, those the master lists now.
//!
//! A sync takes any token for the chunk at its version: the one of the
//! lease this client holds at the version the master lists, else the read
//! token of the master's location (never a new lease: that would move the
//! chunk to a new version for nothing). A refused token drops the lease,
//! and the next round asks the master anew.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::{ChunkLocation, ReplicaAddr, WriteLease};
use dfs_proto::wire::namespace::Attr;
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, InodeId};
use futures::{stream, StreamExt};

use crate::client::Client;
use crate::error::ClientError;
use crate::retry::{combine, Retry};

/// Replica syncs in flight at once.
const SYNCS_IN_FLIGHT: usize = 8;

/// What a sync does after a replica failed it (other than refusing the
/// token, which is always renewed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Ask the master again while that may help (a durable close: the
    /// replicas it lists then are those that count).
    Retry,
    /// Fail with it (`fsync`: the bytes are not durable everywhere asked).
    Fail,
}

/// A chunk's replicas at a version, from a lease or from the master, with
/// the write token to sync them with.
#[derive(Clone, Debug)]
struct Chain {
    index: u64,
    handle: ChunkHandle,
    version: ChunkVersion,
    replicas: Vec<ReplicaAddr>,
    token: String,
}

impl Chain {
    /// The replicas the master lists, with the token of a lease of the
    /// same chunk at the same version.
    fn located(c: ChunkLocation, lease_token: String) -> Chain {
        Chain { index: c.index, handle: c.handle, version: c.version, replicas: c.replicas, token: lease_token }
    }

    fn leased(index: u64, l: WriteLease) -> Chain {
        let replicas = std::iter::once(l.primary).chain(l.secondaries).collect();
        Chain { index, handle: l.handle, version: l.version, replicas, token: l.token }
    }
}

/// One replica to sync: where, which chunk (and its index in the file), at
/// which version, with which token.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    replica: ReplicaAddr,
    index: u64,
    handle: ChunkHandle,
    version: ChunkVersion,
    token: String,
}

/// Runs of consecutive indices (first, count): one master call each.
fn runs(indices: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some((first, count)) if *first + *count == i => *count += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

/// What is left to sync of the chunks `indices`, given their locations and
/// the (chunk, replica address) pairs already synced. A chunk listed with
/// no replica is an error: its bytes are durable nowhere the master knows.
/// Chunks the master no longer has (truncated away) need nothing.
fn to_sync(indices: &BTreeSet<u64>, found: &[Chain], done: &HashSet<(ChunkHandle, String)>) -> Result<Vec<Target>, ClientError> {
    let mut out = Vec::new();
    for c in found.iter().filter(|c| indices.contains(&c.index)) {
        if c.replicas.is_empty() {
            return Err(ClientError::new(ErrorKind::EIO, format!("chunk {} has no live replica to sync", c.handle)));
        }
        let left = c.replicas.iter().filter(|r| !done.contains(&(c.handle, r.address.clone())));
        out.extend(left.map(|r| Target { replica: r.clone(), index: c.index, handle: c.handle, version: c.version, token: c.token.clone() }));
    }
    Ok(out)
}

/// Whether a failed sync may succeed after asking the master again: the
/// replica's node died (dropped once dead), the chunk moved to a new
/// version (a new lease), or the replica was moved away.
fn worth_retrying(e: &ClientError) -> bool {
    e.is_temporary() || matches!(e.kind, ErrorKind::ESTALE | ErrorKind::ENOENT)
}

impl Client {
    /// Makes chunks `indices` of the file durable on every replica: those
    /// of the lease each was last written under when this client still
    /// holds it, else those the master lists. Replicas that fail are asked
    /// again, with the master's current locations, for up to `retry_for`:
    /// a dead node is dropped from the list, and a replica synced once
    /// stays synced (a later version bump does not touch its bytes).
    pub async fn sync_chunks(&self, inode: InodeId, indices: &BTreeSet<u64>) -> Result<(), ClientError> {
        self.sync_chunks_then(inode, indices, OnFailure::Retry).await
    }

    /// `sync_chunks`, with what a replica's failure does chosen.
    pub(crate) async fn sync_chunks_then(&self, inode: InodeId, indices: &BTreeSet<u64>, on_failure: OnFailure) -> Result<(), ClientError> {
        let mut done: HashSet<(ChunkHandle, String)> = HashSet::new();
        let mut retry = Retry::new(Instant::now() + self.config().retry_for, Duration::from_millis(50), Duration::from_secs(1));
        // An fsync syncs the replicas the master lists now, as it always
        // did; a close first those that took the bytes.
        let mut leased = match on_failure {
            OnFailure::Retry => self.leased_chains(inode, indices),
            OnFailure::Fail => None,
        };
        loop {
            let found = match leased.take() {
                Some(chains) => Ok(chains),
                None => self.chains_from_master(inode, indices).await,
            };
            let failure = match found.and_then(|found| to_sync(indices, &found, &done)) {
                Ok(targets) => self.sync_targets(inode, targets, &mut done).await,
                Err(e) => Some(e),
            };
            let Some(e) = failure else { return Ok(()) };
            let retryable = on_failure == OnFailure::Retry && worth_retrying(&e);
            let Some(pause) = retry.after(&e, retryable, Instant::now()) else { return Err(e) };
            tracing::debug!(inode = %inode, error = %e, "a replica sync failed; asking the master again");
            tokio::time::sleep(pause).await;
        }
    }

    /// Makes every replica the master lists of every chunk of the file sync
    /// to disk. Fails with a replica's failure (only a refused token is
    /// renewed): the bytes are then not durable on every replica.
    pub async fn fsync(&self, attr: &Attr) -> Result<(), ClientError> {
        let chunks: BTreeSet<u64> = (0..attr.size.div_ceil(attr.chunk_size_bytes.max(1))).collect();
        self.sync_chunks_then(attr.inode, &chunks, OnFailure::Fail).await
    }

    /// The chains of the leases the chunks were last written under, when
    /// this client holds one for every chunk (else the master is asked).
    fn leased_chains(&self, inode: InodeId, indices: &BTreeSet<u64>) -> Option<Vec<Chain>> {
        indices.iter().map(|&i| self.last_lease(inode, i).map(|l| Chain::leased(i, l))).collect()
    }

    /// Syncs the targets, several at once; records those done and returns
    /// a failure, if any (a refused token only when nothing else failed).
    /// A chunk whose token was refused loses its cached lease.
    async fn sync_targets(&self, inode: InodeId, targets: Vec<Target>, done: &mut HashSet<(ChunkHandle, String)>) -> Option<ClientError> {
        let calls = targets.into_iter().map(|t| {
            let client = self.clone();
            async move {
                let r = client.sync_replica(&t.replica, t.handle, t.version, &t.token).await;
                (t, r)
            }
        });
        let results: Vec<(Target, Result<(), ClientError>)> = stream::iter(calls).buffer_unordered(SYNCS_IN_FLIGHT).collect().await;
        let mut failure = None;
        for (t, r) in results {
            match r {
                Ok(()) => {
                    done.insert((t.handle, t.replica.address));
                }
                Err(e) => {
                    if e.token_refused() {
                        self.forget_lease(inode, t.index);
                    }
                    failure = Some(combine(failure, e));
                }
            }
        }
        failure
    }

    /// The master's current replicas of chunks `indices` (not the cache:
    /// a sync must reach the replicas as they are now), each with a write
    /// token. Chunks the master no longer has are left out.
    async fn chains_from_master(&self, inode: InodeId, indices: &BTreeSet<u64>) -> Result<Vec<Chain>, ClientError> {
        let mut found = Vec::new();
        for (first, count) in runs(indices) {
            let mut next = first;
            while next < first + count {
                let page = self.master().locate(inode, next, first + count - next).await?;
                let Some(last) = page.chunks.iter().map(|c| c.index).max() else { break };
                next = last + 1;
                found.extend(page.chunks.into_iter().filter(|c| indices.contains(&c.index)));
            }
        }
        Ok(found.into_iter().map(|c| self.with_sync_token(inode, c)).collect())
    }

    /// The chunk at `c` with a token to sync it: that of the lease this
    /// client holds on it at the version listed, else the location's own.
    fn with_sync_token(&self, inode: InodeId, c: ChunkLocation) -> Chain {
        match self.last_lease(inode, c.index) {
            Some(l) if l.handle == c.handle && l.version == c.version => return Chain::located(c, l.token),
            Some(_) => self.forget_lease(inode, c.index),
            None => {}
        }
        let token = c.token.clone();
        Chain::located(c, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str) -> ReplicaAddr {
        ReplicaAddr { node_id: dfs_proto::NodeId(Default::default()), address: a.to_string() }
    }

    fn loc(index: u64, handle: u64, replicas: &[&str]) -> Chain {
        let replicas = replicas.iter().map(|a| addr(a)).collect();
        Chain { index, handle: ChunkHandle(handle), version: ChunkVersion(1), replicas, token: format!("t{handle}") }
    }

    #[test]
    fn a_lease_chain_is_its_primary_then_its_secondaries() {
        let lease = WriteLease {
            handle: ChunkHandle(9),
            version: ChunkVersion(4),
            chunk_size_bytes: 1 << 20,
            primary: addr("p"),
            secondaries: vec![addr("s1"), addr("s2")],
            lease_remaining_ms: 0,
            token: "write token".into(),
        };
        let chain = Chain::leased(3, lease);
        assert_eq!((chain.index, chain.handle, chain.version, chain.token.as_str()), (3, ChunkHandle(9), ChunkVersion(4), "write token"));
        assert_eq!(chain.replicas.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(), ["p", "s1", "s2"]);
    }

    #[test]
    fn consecutive_indices_are_one_run() {
        let set: BTreeSet<u64> = [0, 1, 2, 5, 7, 8].into_iter().collect();
        assert_eq!(runs(&set), [(0, 3), (5, 1), (7, 2)]);
        assert!(runs(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn only_dirty_chunks_and_replicas_not_yet_synced_are_synced() {
        let dirty: BTreeSet<u64> = [1, 2].into_iter().collect();
        let found = [loc(0, 10, &["a"]), loc(1, 11, &["a", "b"]), loc(2, 12, &["b", "c"])];
        let done: HashSet<(ChunkHandle, String)> = [(ChunkHandle(11), "a".to_string())].into_iter().collect();
        let left: Vec<(u64, String, String)> = to_sync(&dirty, &found, &done).unwrap().into_iter().map(|t| (t.handle.0, t.replica.address, t.token)).collect();
        let want = [(11, "b", "t11"), (12, "b", "t12"), (12, "c", "t12")].map(|(h, a, t)| (h, a.to_string(), t.to_string()));
        assert_eq!(left, want, "each replica with its chunk's write token");
    }

    #[test]
    fn a_dirty_chunk_without_replicas_is_an_error() {
        let dirty: BTreeSet<u64> = [0].into_iter().collect();
        let e = to_sync(&dirty, &[loc(0, 10, &[])], &HashSet::new()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::EIO);
        assert!(worth_retrying(&e), "the master may not have heard from the replicas yet");
        assert!(!worth_retrying(&ClientError::new(ErrorKind::EINVAL, "no")));
    }
}
