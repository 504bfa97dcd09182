//! Starting this master's Raft node in a running daemon: its log beside
//! the store, the store as its state machine, openraft's timing, and the
//! group's first membership.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use dfs_server_kit::http::internal::ClusterAuth;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Raft, SnapshotPolicy};

use super::log_store::{LogStore, NodeId};
use super::machine::{Group, StoreMachine};
use super::network::Peers;
use crate::store::Store;

/// The Raft log's directory, in the data directory.
pub const LOG_DIR: &str = "raft-log";

/// openraft's settings for an election timeout of `election_ms` (the
/// shortest; each election waits a random time up to 1.5 times it, which
/// is also how long a follower refuses votes after the leader's last word:
/// openraft's leader lease).
pub fn settings(election_ms: u64) -> anyhow::Result<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "dfs-masters".into(),
        // Five heartbeats per election timeout: one lost or late is no election.
        heartbeat_interval: (election_ms / 5).max(20),
        election_timeout_min: election_ms,
        election_timeout_max: election_ms * 3 / 2,
        // No snapshots yet: installing one replaces the store's files, which
        // a serving master holds open everywhere (see ARCHITECTURE, "Master
        // HA on Raft"). The log is kept whole instead, so that every member
        // catches up from it.
        snapshot_policy: SnapshotPolicy::Never,
        // A leader's group of writes is one entry; a member catching up
        // gets them in messages of at most this many.
        max_payload_entries: 64,
        ..Default::default()
    };
    Ok(config.validate()?)
}

/// Starts the node `id` of the group `members` (id → API base URL) over
/// `store`, which lives in `data_dir`. The member with the lowest id forms
/// a new group: on a new log it proposes `members` as the first membership
/// (and stands for election at once); the others wait to hear from it.
/// Only one does, because a member that forms the group also calls an
/// election, which would depose a leader elected meanwhile.
pub async fn start(
    id: NodeId,
    members: &BTreeMap<NodeId, String>,
    store: Store,
    data_dir: &Path,
    auth: Arc<ClusterAuth>,
    election_ms: u64,
) -> anyhow::Result<Raft<Group>> {
    let dir = data_dir.to_path_buf();
    let (log, machine) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let log = LogStore::<Group>::open(&dir.join(LOG_DIR)).context("opening the Raft log")?;
        let machine = StoreMachine::new(store, &dir).context("reading the applied Raft state")?;
        Ok((log, machine))
    })
    .await??;
    let raft = Raft::new(id, Arc::new(settings(election_ms)?), Peers::new(auth), log, machine).await.context("starting Raft")?;
    let first = members.keys().next() == Some(&id);
    if first && !raft.is_initialized().await.context("reading the Raft state")? {
        let nodes: BTreeMap<NodeId, BasicNode> = members.iter().map(|(n, url)| (*n, BasicNode::new(url))).collect();
        match raft.initialize(nodes).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(e).context("proposing the first membership"),
        }
    }
    tracing::info!(id, members = ?members, "Raft member started");
    Ok(raft)
}
