//! Chunk management: chunkserver ↔ master (heartbeats, reports, commands),
//! client ↔ master (locations, leases) and client ↔ chunkserver (data).

use serde::{Deserialize, Serialize};

use crate::auth::TokenKeyInfo;
use crate::ids::{ChunkHandle, ChunkVersion, InodeId, NodeId};

/// Size of a checksum block: every replica keeps a CRC32 per 64 KiB.
pub const BLOCK_BYTES: u64 = 64 * 1024;

/// Header carrying the CRC32 of each consecutive 64 KiB piece of a data
/// body, as comma-separated lowercase hex, so each replica can verify what
/// it received before writing it.
pub const HEADER_CHECKSUMS: &str = "x-dfs-checksums";
/// The [`HEADER_CHECKSUMS`] value for `data`: CRC32 of each consecutive
/// 64 KiB piece, lowercase hex, comma-separated (empty for no data).
pub fn checksum_header(data: &[u8]) -> String {
    let crcs: Vec<String> = data.chunks(BLOCK_BYTES as usize).map(|p| format!("{:08x}", crc32fast::hash(p))).collect();
    crcs.join(",")
}

/// Parses a [`HEADER_CHECKSUMS`] value for a body of `len` bytes; the
/// error says what is wrong with it.
pub fn parse_checksum_header(text: &str, len: u64) -> Result<Vec<u32>, String> {
    let crcs: Vec<u32> = if text.is_empty() {
        Vec::new()
    } else {
        let parsed = text.split(',').map(|c| u32::from_str_radix(c.trim(), 16)).collect::<Result<_, _>>();
        parsed.map_err(|_| format!("{HEADER_CHECKSUMS} is not a list of hex CRC32s"))?
    };
    let expected = len.div_ceil(BLOCK_BYTES) as usize;
    if crcs.len() != expected {
        return Err(format!("{HEADER_CHECKSUMS} has {} checksums; a body of {len} bytes needs {expected}", crcs.len()));
    }
    Ok(crcs)
}

/// Header listing the chunkservers (base URLs, comma-separated) a write must
/// be forwarded to, in chain order.
pub const HEADER_FORWARD: &str = "x-dfs-forward";

/// One replica a chunkserver holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub length: u64,
    /// Written since its last sync. In a process's first report: it
    /// crashed with writes not yet on disk, which a power cut may have
    /// dropped even where the length did not change.
    #[serde(default)]
    pub dirty: bool,
}

/// `POST /v1/heartbeat` (chunkserver → master), every few seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node_id: NodeId,
    /// Base URL clients and peers reach this chunkserver at.
    pub address: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub chunk_count: u64,
    /// Requests in progress: a measure of load for placement.
    pub load: u32,
    /// Every replica held: present at registration and periodically.
    #[serde(default)]
    pub report: Option<Vec<ReplicaReport>>,
    /// Bytes served to readers since the chunkserver started (for the
    /// dashboard's throughput; rates are computed by the master).
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes of client writes taken since the chunkserver started.
    #[serde(default)]
    pub bytes_written: u64,
    /// The scrubber's progress, for the dashboard.
    #[serde(default)]
    pub scrub: Option<ScrubProgress>,
    /// Sent until the master has taken a full report from this process:
    /// its replicas' lengths are then what its disk kept (it served no
    /// write before), so one shorter than committed has lost writes. Later
    /// reports may lag a write that landed as they were built.
    #[serde(default)]
    pub registering: bool,
    /// The cluster this chunkserver belongs to, recorded at its first
    /// registration (`None`: never registered). A master of another
    /// cluster refuses it.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The [`Peers::epoch`] of the peer list this node holds (0: none).
    #[serde(default)]
    pub peers_epoch: u64,
}

/// The chunkservers registered with the master: the only nodes a
/// chunkserver forwards writes to or copies replicas from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {
    /// Changes whenever the list does.
    pub epoch: u64,
    /// Base URLs.
    pub addresses: Vec<String>,
}

/// A chunkserver's background verification, as its heartbeat carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubProgress {
    pub passes_completed: u64,
    /// Replicas done in the current (or last) pass, of `pass_total`.
    pub pass_done: u64,
    pub pass_total: u64,
    pub corrupt_found: u64,
    /// When the last pass ended, ms since the Unix epoch; 0: none yet.
    pub last_pass_completed_unix_ms: u64,
}

/// The master's answer to a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The master wants a full report with the next heartbeat (it restarted,
    /// or has not seen this node before).
    pub send_report: bool,
    /// Replicas to remove: garbage (chunks of deleted or truncated files,
    /// chunks the master does not know), stale replicas and surplus copies.
    #[serde(default)]
    pub delete: Vec<DeleteReplica>,
    /// The master's cluster: a chunkserver records it at its first
    /// registration and refuses masters of any other.
    #[serde(default)]
    pub cluster_id: String,
    /// The token keys chunk tokens may be signed with now: chunkservers
    /// accept exactly these (a key left out is retired).
    #[serde(default)]
    pub token_keys: Vec<TokenKeyInfo>,
    /// The registered chunkservers, when the list changed since the epoch
    /// the heartbeat named.
    #[serde(default)]
    pub peers: Option<Peers>,
}

/// Remove the replica of `handle` if its version is at most `max_version`:
/// a replica that moved on to a newer version meanwhile is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteReplica {
    pub handle: ChunkHandle,
    pub max_version: ChunkVersion,
}

/// `POST {target}/v1/chunks/{handle}/replicate` (master → chunkserver): copy
/// the chunk from `source` (a chunkserver's base URL) at `version`. The
/// target reads verified pieces from the source, checks each against the
/// checksums sent with it, writes them to a replica kept at version 0 (never
/// current, so a copy cut short is garbage), syncs, and only then moves it
/// to `version`. Any older replica of the chunk on the target is replaced.
/// Answers [`ReplicaReport`] once the copy is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicateChunk {
    pub source: String,
    pub version: ChunkVersion,
    pub chunk_size_bytes: u64,
}

/// `POST {chunkserver}/v1/chunks/{handle}/create` (master → chunkserver).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateReplica {
    pub version: ChunkVersion,
    pub chunk_size_bytes: u64,
}

/// `POST {chunkserver}/v1/chunks/{handle}/version` (master → chunkserver):
/// the replica takes part in a new lease at this version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetReplicaVersion {
    pub version: ChunkVersion,
}

/// `POST {chunkserver}/v1/chunks/{handle}/verify` (master → chunkserver,
/// signed): check every block of the replica at `version` against its
/// CRCs. A corrupt replica is quarantined and reported by the chunkserver
/// itself; the answer is a [`VerifyAnswer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReplica {
    pub version: ChunkVersion,
}

/// The answer to [`VerifyReplica`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyAnswer {
    /// The replica failed verification (it is quarantined and reported now).
    pub corrupt: bool,
}

/// Query of the chunkserver's data endpoints:
/// `PUT|GET {chunkserver}/v1/chunks/{handle}/data?version=V&offset=O[&length=L]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataQuery {
    pub version: ChunkVersion,
    #[serde(default)]
    pub offset: u64,
    /// For reads: bytes wanted (clipped at the replica's length).
    #[serde(default)]
    pub length: Option<u64>,
}

/// A chunkserver as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAddr {
    pub node_id: NodeId,
    pub address: String,
}

/// Where a chunk of a file lives, at its current version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLocation {
    pub index: u64,
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    /// Live replicas at the current version (stale ones are never listed).
    pub replicas: Vec<ReplicaAddr>,
    /// Bytes of the chunk committed as written (from its start): a replica
    /// that answers fewer of them is damaged, never read as zeros. Bytes
    /// past it, inside the file, are holes.
    #[serde(default)]
    pub length: u64,
    /// Lets the holder read this chunk at this version from its
    /// replicas (sent as `x-dfs-token`) until it expires.
    #[serde(default)]
    pub token: String,
}

/// `GET /v1/chunks?inode=N&first=I&count=K` → [`ChunkLocations`]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocateQuery {
    pub inode: InodeId,
    #[serde(default)]
    pub first: u64,
    #[serde(default)]
    pub count: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLocations {
    pub chunk_size_bytes: u64,
    pub chunks: Vec<ChunkLocation>,
}

/// `POST /v1/chunks/lease`: the chunk at (inode, index) for writing;
/// allocated if missing, with a lease granted (or extended) for its primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub inode: InodeId,
    pub index: u64,
}

/// The answer: write to `primary`, which forwards along `secondaries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteLease {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub chunk_size_bytes: u64,
    pub primary: ReplicaAddr,
    pub secondaries: Vec<ReplicaAddr>,
    /// How long the lease still runs, in ms.
    pub lease_remaining_ms: u64,
    /// Lets the holder write, sync and read this chunk at this version
    /// (sent as `x-dfs-token`) until it expires.
    #[serde(default)]
    pub token: String,
}

/// `POST /v1/chunks/bad`: a replica failed verification (reported by its
/// chunkserver or by a client); the master stops handing it out.
/// The replica is named by `node_id`, or by `address` when the reporter only
/// knows where it sent data (a primary whose downstream failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadReplica {
    pub handle: ChunkHandle,
    #[serde(default)]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub address: Option<String>,
    /// The replica failed checksum verification (rather than a write or a
    /// version change): fsck counts it as corrupt.
    #[serde(default)]
    pub corrupt: bool,
    /// The version the reporter wrote at (a primary reporting its
    /// downstream). A report made at an older version than the chunk's is
    /// a late write's, and is ignored: a stale node must not evict a
    /// current replica.
    #[serde(default)]
    pub reporter_version: Option<ChunkVersion>,
    /// A client's report (unsigned) carries its read token for the chunk:
    /// the master then only asks the replica's chunkserver to verify it. A
    /// chunkserver's report is signed instead and needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `POST /v1/commit_length`: after writing, the file is at least `length`
/// bytes. `chunks` names the chunks written (index and handle); if one of
/// them is no longer the file's (a truncate dropped it meanwhile) the commit
/// is refused with ESTALE and the writer must write again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitLength {
    pub inode: InodeId,
    pub length: u64,
    #[serde(default)]
    pub chunks: Vec<WrittenChunk>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenChunk {
    pub index: u64,
    pub handle: ChunkHandle,
    /// Where the written bytes end inside the chunk (0: not said, as older
    /// clients): the master raises the chunk's committed length to it.
    #[serde(default)]
    pub end: u64,
}

/// `GET /v1/chunkservers` → one per known chunkserver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkserverInfo {
    pub node_id: NodeId,
    pub address: String,
    /// "live", "dead", "decommissioning" (live, being drained) or
    /// "decommissioned" (drained: every chunk it held has its full
    /// replication elsewhere; safe to remove).
    pub state: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub chunk_count: u64,
    pub load: u32,
    pub last_heartbeat_age_ms: u64,
}

/// `GET /v1/admin/replication`: safe mode and the master's background work.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    pub safe_mode: SafeModeStatus,
    /// Chunks with fewer counted replicas than wanted, at the last scan.
    pub under_replicated: u64,
    /// Chunks without any live current replica, at the last scan.
    pub missing: u64,
    /// Chunks with more counted replicas than wanted, at the last scan.
    pub over_replicated: u64,
    pub copies_running: u64,
    pub copies_done: u64,
    pub copies_failed: u64,
    /// Replica deletions waiting for their node's next heartbeat.
    pub deletes_waiting: u64,
    /// Replica deletions handed to chunkservers since the start.
    pub deletes_sent: u64,
    /// Chunks of removed data not yet collected (waiting out the grace period).
    pub garbage_chunks: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SafeModeStatus {
    pub on: bool,
    /// Chunks with a current replica reported, of all chunks.
    pub reported_chunks: u64,
    pub total_chunks: u64,
    /// Share of chunks that must be reported before safe mode ends.
    pub threshold: f64,
}

/// `POST /v1/admin/safemode`: `{"leave": true}` ends safe mode now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafeModeRequest {
    pub leave: bool,
}

/// `POST /v1/admin/decommission` and `/v1/admin/recommission`: a chunkserver
/// by node id or by address (base URL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRequest {
    pub node: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_headers_cover_each_64k_piece_and_round_trip() {
        let data = vec![9u8; 64 * 1024 + 1];
        let text = checksum_header(&data);
        assert_eq!(text.split(',').count(), 2);
        assert_eq!(parse_checksum_header(&text, data.len() as u64).unwrap().len(), 2);
        assert_eq!(checksum_header(&[]), "");
        assert_eq!(parse_checksum_header("", 0).unwrap(), Vec::<u32>::new());
        assert!(parse_checksum_header("", 1).is_err());
        assert!(parse_checksum_header("zz", 1).is_err());
        assert!(parse_checksum_header(&text, 1).is_err());
    }
}

/// `GET {chunkserver}/v1/chunks/{handle}` (internal): one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub length: u64,
    pub chunk_size_bytes: u64,
}

/// `GET {chunkserver}/files?path=/a/b`: a whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadQuery {
    pub path: String,
    /// The master's read grant for the downloading user (`auth::user::Grant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// A chunkserver's scrubber since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubCounters {
    pub passes_completed: u64,
    pub replicas_verified: u64,
    pub bytes_verified: u64,
    pub corrupt_found: u64,
    pub pass_replicas_done: u64,
    pub pass_replicas_total: u64,
    pub last_pass_completed_unix_ms: Option<u64>,
}

/// `GET {chunkserver}/v1/status`: the node at a glance (no secrets: the
/// number of token keys, not the keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkserverStatus {
    pub node_id: NodeId,
    pub address: String,
    pub master: String,
    pub cluster_id: Option<String>,
    pub peers: Vec<String>,
    pub token_keys: usize,
    pub chunks: usize,
    pub used_bytes: u64,
    pub in_flight: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub replicas_deleted: u64,
    pub replicas_copied: u64,
    pub bytes_replicated: u64,
    pub scrub: ScrubCounters,
    pub checksum_failures: u64,
    pub capacity_bytes: u64,
    pub uptime_s: u64,
}
