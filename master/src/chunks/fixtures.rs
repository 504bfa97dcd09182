//! What the chunk-management tests build over and over: node ids from small
//! numbers, a heartbeat with nothing in it, a replica report.

use dfs_proto::wire::chunks::{Heartbeat, ReplicaReport};
use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};

/// Node `i` (a UUID from the number).
pub fn node(i: u128) -> NodeId {
    NodeId(uuid::Uuid::from_u128(i))
}

/// A first heartbeat of node `i` (registering) at `http://127.0.0.1:i`,
/// with a 1 TiB empty disk, no load and no report; tests set what they
/// need with `..heartbeat(i)`.
pub fn heartbeat(i: u128) -> Heartbeat {
    Heartbeat {
        node_id: node(i),
        address: format!("http://127.0.0.1:{i}"),
        capacity_bytes: 1 << 40,
        used_bytes: 0,
        chunk_count: 0,
        load: 0,
        report: None,
        bytes_read: 0,
        bytes_written: 0,
        scrub: None,
        registering: true,
        cluster_id: None,
        peers_epoch: 0,
    }
}

/// A clean, empty replica of chunk `h` at version `v`.
pub fn replica(h: u64, v: u64) -> ReplicaReport {
    ReplicaReport { handle: ChunkHandle(h), version: ChunkVersion(v), length: 0, dirty: false }
}
