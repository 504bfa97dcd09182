//! The master dashboard's JSON (`/v1/dashboard/...`) and the queries of its
//! pages: what the pages are drawn from, for scripts too.

use serde::{Deserialize, Serialize};

use crate::ids::{ChunkHandle, ChunkVersion, NodeId};
use crate::wire::chunks::{ChunkserverInfo, ReplicationStatus, ScrubProgress};
use crate::wire::namespace::Attr;

/// `GET /v1/dashboard/overview`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub cluster_id: String,
    pub version: String,
    pub uptime_s: u64,
    pub safe_mode: bool,
    /// Of chunkservers that are not dead.
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Bytes of all files (before replication).
    pub bytes: u64,
    /// Chunks by health at the last sample (every few seconds).
    pub chunks: Census,
    pub chunkservers: NodeCounts,
}

/// Chunks of known files by health. A chunk may count in several classes
/// (under-replicated and stale); `healthy` ones are in none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    pub total: u64,
    pub healthy: u64,
    pub under_replicated: u64,
    pub over_replicated: u64,
    /// No live current replica.
    pub missing: u64,
    /// A live node holds an old version.
    pub stale: u64,
    /// A replica failed verification (until the chunk is whole again).
    pub corrupt: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    pub live: usize,
    pub dead: usize,
    pub decommissioning: usize,
    pub decommissioned: usize,
    pub total: usize,
}

/// `GET /v1/dashboard/chunkservers`: one row per known chunkserver: the
/// master's view (`/v1/chunkservers`) with its traffic and scrub progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    #[serde(flatten)]
    pub info: ChunkserverInfo,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub scrub: Option<ScrubProgress>,
}

/// `GET /v1/dashboard/work`: background work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Work {
    pub replication: ReplicationStatus,
    /// Chunks waiting for copies (under-replicated at the last pass).
    pub replication_queue: u64,
    /// Garbage-collection backlog: removed chunks in their grace period
    /// plus replica deletions waiting for a heartbeat.
    pub gc_backlog: u64,
    pub scrub: Vec<ScrubRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubRow {
    pub address: String,
    #[serde(flatten)]
    pub progress: ScrubProgress,
}

/// `GET /v1/dashboard/events?after=ID&limit=N`: newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsPage {
    pub events: Vec<Event>,
}

/// Something that happened to the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing from 1: clients ask for events after the last id they saw.
    pub id: u64,
    pub unix_ms: u64,
    /// "node_joined", "node_lost", "node_back", "decommission",
    /// "decommissioned", "recommission", "corrupt", "repaired", "safe_mode_left".
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    pub after: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /v1/dashboard/history`: an hour of samples, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub interval_s: u64,
    pub samples: Vec<Sample>,
}

/// Cluster throughput and capacity at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub unix_ms: u64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub used_bytes: u64,
    pub capacity_bytes: u64,
}

/// `/browse` and `/v1/dashboard/browse`: one page of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseQuery {
    #[serde(default = "root")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
}

fn root() -> String {
    "/".into()
}

/// `/file`, `/v1/dashboard/file` and `/download`: a file (and where its
/// page of chunks starts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileQuery {
    pub path: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `GET /v1/dashboard/browse?path=&start_after=`: one page of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub path: String,
    pub entries: Vec<ListingEntry>,
    pub next_start_after: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingEntry {
    pub name: String,
    pub path: String,
    pub attr: Attr,
}

/// `GET /v1/dashboard/file?path=&first=`: a file and one page of its chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileView {
    pub path: String,
    pub attr: Attr,
    pub chunks: Vec<ChunkReplicas>,
    /// Where the next page of chunks starts, if there is one.
    pub next_first: Option<u64>,
}

/// One chunk of a file with every replica's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkReplicas {
    pub index: u64,
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub length: u64,
    /// "healthy", "missing", "under-replicated", "over-replicated", "stale" or "corrupt".
    pub health: String,
    pub replicas: Vec<ReplicaState>,
}

/// One replica of a chunk as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub node_id: NodeId,
    pub address: String,
    /// None for a corrupt replica, which is no longer held.
    pub version: Option<ChunkVersion>,
    /// "current", "stale", "dead" (its node), "draining", "copying" or "corrupt".
    pub state: String,
}

/// Query of `GET /login`: where to go once logged in (a path of this site).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The form of `POST /login`: a user and their credential's secret (the
/// `secret` line of their credentials file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginForm {
    pub user: String,
    pub secret: String,
    #[serde(default)]
    pub next: Option<String>,
}
