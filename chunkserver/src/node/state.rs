//! [`Node`]: the state shared by a chunkserver's handlers, background
//! workers and figures, and how it is built from the configuration.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dfs_proto::auth::TokenVerifier;
use dfs_proto::local_reads::LocalEndpoint;
use dfs_proto::{ChunkHandle, NodeId};
use dfs_server_kit::http::internal::ClusterAuth;
use dfs_server_kit::worker::Workers;

use super::counters::{ScrubStats, SyncCounters};
use crate::chunk_store::ChunkStore;
use crate::config::ChunkserverConfig;
use crate::local_reads;
use crate::pacing::mib_per_sec;
use crate::peers::PeerList;

/// Everything the handlers and the heartbeat loop share.
pub struct Node {
    pub id: NodeId,
    /// This node's base URL as clients and peers reach it.
    pub address: String,
    /// The masters as configured (one, or a Raft group's, comma-separated).
    pub master: String,
    /// Which of them leads, as last heard: heartbeats and reports go there.
    pub masters: Arc<dfs_client::masters::Masters>,
    pub data_dir: PathBuf,
    pub store: Arc<ChunkStore>,
    /// Data requests in progress (reported as load).
    pub in_flight: AtomicU32,
    pub bytes_written: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Replicas removed on the master's order (heartbeat answers).
    pub replicas_deleted: AtomicU64,
    /// Copies made from other chunkservers and made current.
    pub replicas_copied: AtomicU64,
    /// Bytes written by copies, counted per piece (failed copies included).
    pub bytes_replicated: AtomicU64,
    /// Chunks being copied here now: one copy of a chunk at a time.
    pub copying: Mutex<HashSet<ChunkHandle>>,
    /// Bandwidth limit of each copy, in bytes/s.
    pub replication_bytes_per_sec: u64,
    pub scrub: ScrubStats,
    /// The background workers' figures (heartbeat, scrubber), by name.
    pub workers: Workers,
    /// Replicas that failed checksum verification (reads and scrubs).
    pub checksum_failures: AtomicU64,
    /// Replica syncs asked for by writers (`POST .../fsync`).
    pub syncs: SyncCounters,
    pub max_write_bytes: u64,
    /// Bytes of write bodies held in memory at once, in MiB permits: writes
    /// past it wait instead of growing memory without bound.
    pub write_budget: tokio::sync::Semaphore,
    /// Bytes of read answers held in memory at once, in MiB permits, each
    /// held until its answer is sent (or dropped): reads past it wait.
    pub read_budget: Arc<tokio::sync::Semaphore>,
    pub http: reqwest::Client,
    pub started: Instant,
    /// Where clients on this host get short-circuit reads, if served.
    pub local: Option<LocalEndpoint>,
    /// Signs this node's internal requests (heartbeats, reports, forwarded
    /// writes, copies) and checks those it receives.
    pub auth: Arc<ClusterAuth>,
    /// The chunk-token keys of the master's last verified announcement.
    pub tokens: Arc<TokenVerifier>,
    /// The registered chunkservers: the only forward targets and copy sources.
    pub peers: PeerList,
    /// The cluster this node belongs to, recorded at its first registration.
    pub cluster_id: OnceLock<String>,
    /// The master has taken this process's first full chunk report. Until
    /// then data is neither read, written nor versioned here: the master
    /// may still list replicas as the previous process left them, and the
    /// disk may have lost writes since (a power cut); the report is what
    /// lets the master judge them.
    pub registered: AtomicBool,
    /// WebHDFS's client (`api::webhdfs`), made at its first use: each
    /// request acts through it with the caller's grant, over its connections.
    pub webhdfs: OnceLock<dfs_client::Client>,
}

impl Node {
    /// Refuses data work (temporarily) until the master has our report.
    /// Refuses data work (temporarily) until the master has our report.
    pub fn serving(&self) -> Result<(), NotServing> {
        match self.registered.load(Ordering::Acquire) {
            true => Ok(()),
            false => Err(NotServing),
        }
    }
}

/// Data work refused because the master has not taken this process's
/// first chunk report yet (see [`Node::registered`]); temporary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this chunkserver has not reported its replicas to the master yet")]
pub struct NotServing;

/// Counts a data request as load while it lives.
pub struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    pub fn new(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a node trusts: the cluster key, and the cluster it belongs to
/// (`None` until its first registration).
pub struct Trust {
    pub auth: Arc<ClusterAuth>,
    pub cluster_id: Option<String>,
}

/// The state shared by the handlers and background loops of a node serving
/// `store` at `address`.
pub fn new_node(config: &ChunkserverConfig, id: NodeId, store: ChunkStore, address: String, trust: Trust) -> anyhow::Result<Node> {
    let store = Arc::new(store);
    let tokens = Arc::new(TokenVerifier::default());
    let local = if config.local_reads { local_reads::start(&config.data_dir, Arc::clone(&store), Arc::clone(&tokens)) } else { None };
    let cluster_id = trust.cluster_id.map(std::sync::OnceLock::from).unwrap_or_default();
    Ok(Node {
        id,
        address,
        master: config.master.trim_end_matches('/').to_string(),
        masters: dfs_client::masters::Masters::parse(&config.master),
        data_dir: config.data_dir.clone(),
        store,
        in_flight: AtomicU32::new(0),
        bytes_written: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
        replicas_deleted: AtomicU64::new(0),
        replicas_copied: AtomicU64::new(0),
        bytes_replicated: AtomicU64::new(0),
        copying: Mutex::new(Default::default()),
        replication_bytes_per_sec: mib_per_sec(config.replication_mib_per_sec),
        scrub: ScrubStats::default(),
        workers: Workers::default(),
        checksum_failures: AtomicU64::new(0),
        syncs: Default::default(),
        max_write_bytes: config.max_write_bytes,
        // Room for four of the largest writes at once.
        write_budget: tokio::sync::Semaphore::new((4 * config.max_write_bytes).div_ceil(1 << 20) as usize),
        // The same for reads: four of the largest answers, or many small ones.
        read_budget: Arc::new(tokio::sync::Semaphore::new((4 * config.max_write_bytes).div_ceil(1 << 20) as usize)),
        // Bounded waits on peers: a hung downstream must not pin buffers forever.
        http: dfs_server_kit::tls::peer_client()
            .pool_max_idle_per_host(32)
            // Below the peers' keep-alive limit (10 s by default).
            .pool_idle_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build()?,
        started: Instant::now(),
        local,
        registered: Default::default(),
        webhdfs: OnceLock::new(),
        auth: trust.auth,
        tokens,
        peers: Default::default(),
        cluster_id,
    })
}
