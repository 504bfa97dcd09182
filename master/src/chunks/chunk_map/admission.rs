//! Which heartbeat may speak for which node. A heartbeat names a node id
//! and the address it serves at; the master sends clients, copies and
//! version bumps to that address. So a heartbeat must not move a live
//! node's id to another address (it would take the node's replicas over),
//! nor claim the address of another live node under a new id (it would
//! shadow it). A node silent past `dead_after` is gone: its id may come
//! back at a new address (a renumbered machine, a restart on another port),
//! and its address may be taken by another node.
//!
//! This is not authentication (a forger can still name a dead node's id):
//! it stops one heartbeat from displacing a node that is alive.

use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::Heartbeat;
use dfs_proto::NodeId;

use super::super::liveness::{liveness, Liveness};
use super::ChunkMap;

/// Why a heartbeat is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The node id is live at another address.
    IdLiveElsewhere { node: NodeId, address: String },
    /// The address belongs to another live node.
    AddressTaken { address: String, holder: NodeId },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::IdLiveElsewhere { node, address } => {
                write!(f, "chunkserver {node} is live at {address}; it may move only after it has been silent past the dead interval")
            }
            Refusal::AddressTaken { address, holder } => write!(f, "{address} is the address of live chunkserver {holder}"),
        }
    }
}

/// Most capacity one heartbeat may claim (64 PiB, far past any one data
/// directory): capacities are summed over nodes for placement and the
/// dashboard, and a claim of u64::MAX would attract every new chunk.
pub const MAX_CAPACITY_BYTES: u64 = 1 << 56;

/// Range checks of a heartbeat's numbers, before anything is taken in
/// (pure): the capacity is at most `MAX_CAPACITY_BYTES`, the space used at
/// most the capacity (a chunkserver counts its capacity as used plus free),
/// and every reported version at most `ChunkVersion::MAX_ISSUED` (a
/// chunkserver refuses to take one above it). A version in range but never
/// issued is judged replica by replica (`versions`).
pub fn check_ranges(hb: &Heartbeat) -> Result<(), String> {
    if hb.capacity_bytes > MAX_CAPACITY_BYTES {
        return Err(format!("capacity_bytes {} is over the limit of {MAX_CAPACITY_BYTES}", hb.capacity_bytes));
    }
    if hb.used_bytes > hb.capacity_bytes {
        return Err(format!("used_bytes {} is over capacity_bytes {}", hb.used_bytes, hb.capacity_bytes));
    }
    if let Some(r) = hb.report.iter().flatten().find(|r| !r.version.in_range()) {
        return Err(format!("chunk {} reported at version {}, above the highest version ever issued", r.handle, r.version));
    }
    Ok(())
}

/// Addresses compare without a trailing slash.
fn same_address(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Decides a heartbeat from `node` at `address` (pure). `known` is the
/// node's last address and heartbeat, if the master knows it; `others` are
/// the other nodes at `address` with their last heartbeat.
pub fn admit(
    node: NodeId,
    address: &str,
    known: Option<(&str, Instant)>,
    others: impl IntoIterator<Item = (NodeId, Instant)>,
    now: Instant,
    dead_after: Duration,
) -> Result<(), Refusal> {
    let live = |last: Instant| liveness(last, now, dead_after) == Liveness::Live;
    if let Some((was, last)) = known {
        if !same_address(was, address) && live(last) {
            return Err(Refusal::IdLiveElsewhere { node, address: was.to_string() });
        }
    }
    match others.into_iter().find(|(other, last)| *other != node && live(*last)) {
        Some((holder, _)) => Err(Refusal::AddressTaken { address: address.to_string(), holder }),
        None => Ok(()),
    }
}

impl ChunkMap {
    /// Whether `hb` may be taken in (see the module doc); nothing changes.
    pub fn admit(&self, hb: &Heartbeat, now: Instant, dead_after: Duration) -> Result<(), Refusal> {
        let known = self.nodes.get(&hb.node_id).map(|n| (n.address.as_str(), n.last_heartbeat));
        let others = self.nodes.iter().filter(|(_, n)| same_address(&n.address, &hb.address)).map(|(id, n)| (*id, n.last_heartbeat));
        admit(hb.node_id, &hb.address, known, others, now, dead_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::wire::chunks::ReplicaReport;
    use dfs_proto::{ChunkHandle, ChunkVersion};

    const DEAD_AFTER: Duration = Duration::from_secs(30);

    use crate::chunks::fixtures::node as n;

    #[test]
    fn a_new_node_at_a_free_address_and_a_known_one_at_its_own_are_admitted() {
        let t0 = Instant::now();
        assert_eq!(admit(n(1), "http://a:1", None, [], t0, DEAD_AFTER), Ok(()));
        let known = Some(("http://a:1/", t0));
        assert_eq!(admit(n(1), "http://a:1", known, [(n(1), t0)], t0, DEAD_AFTER), Ok(()));
    }

    #[test]
    fn a_live_nodes_id_cannot_move_to_another_address() {
        let t0 = Instant::now();
        let known = Some(("http://a:1", t0));
        let just_before_dead = t0 + DEAD_AFTER - Duration::from_millis(1);
        let refused = admit(n(1), "http://evil:6", known, [], just_before_dead, DEAD_AFTER);
        assert_eq!(refused, Err(Refusal::IdLiveElsewhere { node: n(1), address: "http://a:1".into() }));
        // Silent past the dead interval: it may come back renumbered.
        assert_eq!(admit(n(1), "http://b:2", known, [], t0 + DEAD_AFTER, DEAD_AFTER), Ok(()));
    }

    #[test]
    fn a_new_id_cannot_take_the_address_of_a_live_node() {
        let t0 = Instant::now();
        let refused = admit(n(9), "http://a:1", None, [(n(1), t0)], t0 + Duration::from_secs(1), DEAD_AFTER);
        assert_eq!(refused, Err(Refusal::AddressTaken { address: "http://a:1".into(), holder: n(1) }));
        // Once that node is dead, the address is free (a wiped disk, a new id).
        assert_eq!(admit(n(9), "http://a:1", None, [(n(1), t0)], t0 + DEAD_AFTER, DEAD_AFTER), Ok(()));
    }

    #[test]
    fn capacities_past_the_limit_or_below_the_use_are_refused() {
        let hb = |capacity_bytes: u64, used_bytes: u64| Heartbeat {
            node_id: n(1),
            address: "http://a:1".into(),
            capacity_bytes,
            used_bytes,
            chunk_count: u64::MAX,
            load: u32::MAX,
            report: None,
            bytes_read: u64::MAX,
            bytes_written: u64::MAX,
            scrub: None,
            registering: false,
            cluster_id: None,
            peers_epoch: 0,
        };
        assert_eq!(check_ranges(&hb(1 << 40, 1 << 30)), Ok(()));
        assert_eq!(check_ranges(&hb(MAX_CAPACITY_BYTES, MAX_CAPACITY_BYTES)), Ok(()));
        assert!(check_ranges(&hb(u64::MAX, 0)).is_err());
        assert!(check_ranges(&hb(MAX_CAPACITY_BYTES + 1, 0)).is_err());
        assert!(check_ranges(&hb(1 << 40, u64::MAX)).is_err());
        let reporting =
            |v: ChunkVersion| Heartbeat { report: Some(vec![ReplicaReport { handle: ChunkHandle(1), version: v, length: 0, dirty: false }]), ..hb(1 << 40, 0) };
        assert_eq!(check_ranges(&reporting(ChunkVersion::MAX_ISSUED)), Ok(()), "judged replica by replica");
        assert_eq!(check_ranges(&reporting(ChunkVersion(0))), Ok(()), "a left-over copy of an old build");
        assert!(check_ranges(&reporting(ChunkVersion(u64::MAX))).is_err());
    }

    #[test]
    fn the_map_refuses_a_hijack_and_keeps_the_node_as_it_was() {
        let t0 = Instant::now();
        let mut m = ChunkMap::default();
        let hb = |id: u128, address: &str| Heartbeat { address: address.into(), registering: false, ..crate::chunks::fixtures::heartbeat(id) };
        m.heartbeat(&hb(1, "http://a:1"), t0);
        assert!(m.admit(&hb(1, "http://evil:6"), t0, DEAD_AFTER).is_err());
        assert!(m.admit(&hb(2, "http://a:1"), t0, DEAD_AFTER).is_err());
        assert!(m.admit(&hb(1, "http://a:1"), t0, DEAD_AFTER).is_ok());
        assert_eq!(m.address(n(1)).map(|a| a.address), Some("http://a:1".to_string()));
    }
}
