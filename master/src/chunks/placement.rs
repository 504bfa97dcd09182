//! Choosing chunkservers for a new chunk's replicas: distinct live nodes,
//! most free space first, with load as a penalty. Space handed out since a
//! node's last heartbeat counts as used, so a burst of allocations spreads
//! instead of piling onto the emptiest node. A live node that has missed
//! heartbeats (*quiet*: hung, or cut off, but not yet dead) is chosen only
//! when too few others can take the chunk, as HDFS avoids stale datanodes
//! for writes: a create sent to a hung node holds the new chunk's lease for
//! the whole call timeout.

use dfs_proto::NodeId;

/// What placement knows of a live chunkserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub node: NodeId,
    pub capacity_bytes: u64,
    /// Used by replicas, plus space reserved for chunks placed since the
    /// last heartbeat.
    pub used_bytes: u64,
    /// Requests in progress.
    pub load: u32,
    /// Heard from less recently than [`quiet_after`] allows.
    pub quiet: bool,
}

/// How long a live node may be silent before placement avoids it: a third
/// of the dead interval (which covers at least three heartbeats), so at
/// least one heartbeat was missed.
pub fn quiet_after(dead_after: std::time::Duration) -> std::time::Duration {
    dead_after / 3
}

impl Candidate {
    fn free_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.used_bytes)
    }

    /// Free space discounted by load: each request in flight costs 1/8 of it.
    fn score(&self) -> u128 {
        self.free_bytes() as u128 * 8 / (8 + self.load as u128)
    }
}

/// Picks up to `count` distinct nodes able to take `chunk_bytes`, best first.
pub fn choose(candidates: &[Candidate], count: usize, chunk_bytes: u64) -> Vec<NodeId> {
    let mut able: Vec<&Candidate> = candidates.iter().filter(|c| c.free_bytes() >= chunk_bytes).collect();
    able.sort_by(|a, b| a.quiet.cmp(&b.quiet).then(b.score().cmp(&a.score())).then(a.node.cmp(&b.node)));
    able.dedup_by_key(|c| c.node);
    able.into_iter().take(count).map(|c| c.node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u128, free_gib: u64, load: u32) -> Candidate {
        Candidate { node: NodeId(uuid::Uuid::from_u128(n)), capacity_bytes: 100 << 30, used_bytes: (100 - free_gib) << 30, load, quiet: false }
    }

    #[test]
    fn a_quiet_node_is_chosen_only_when_too_few_others_can_take_the_chunk() {
        let quiet = Candidate { quiet: true, ..node(1, 90, 0) };
        let c = [quiet, node(2, 10, 0), node(3, 20, 0), node(4, 0, 0)];
        assert_eq!(choose(&c, 2, 64 << 20), vec![c[2].node, c[1].node], "the emptiest node is quiet: passed over");
        assert_eq!(choose(&c, 3, 64 << 20), vec![c[2].node, c[1].node, quiet.node], "too few others: it takes the third");
    }

    #[test]
    fn most_free_space_wins_and_nodes_are_distinct() {
        let c = [node(1, 10, 0), node(2, 50, 0), node(3, 30, 0), node(4, 40, 0)];
        assert_eq!(choose(&c, 3, 64 << 20), vec![c[1].node, c[3].node, c[2].node]);
        assert_eq!(choose(&c, 9, 64 << 20).len(), 4);
    }

    #[test]
    fn load_is_a_penalty_and_full_nodes_are_skipped() {
        let c = [node(1, 50, 24), node(2, 40, 0), node(3, 0, 0)];
        assert_eq!(choose(&c, 3, 64 << 20), vec![c[1].node, c[0].node]);
    }

    #[test]
    fn ties_break_by_id_for_determinism() {
        let c = [node(3, 10, 0), node(1, 10, 0), node(2, 10, 0)];
        assert_eq!(choose(&c, 2, 1), vec![c[1].node, c[2].node]);
    }
}
