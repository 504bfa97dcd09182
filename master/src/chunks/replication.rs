//! Replication decisions, as a pure function of what the master knows: which
//! chunks to copy (fewest counted replicas first), from which replica to
//! which chunkserver, and which replicas to delete (stale ones, surplus
//! ones). The monitor in `ChunkManager` performs the plan.
//!
//! A replica *counts* toward a chunk's replication when its node is live,
//! not being decommissioned, and holds the chunk's current version.
//!
//! **Invariant:** the last copies are never deleted. A stale or damaged
//! replica is deleted only once the chunk has at least its wanted number of
//! counted replicas (as HDFS never invalidates the last replica, and removes
//! corrupt ones only once replication is restored): until then it stays on
//! its disk, never served, in case the counted ones are lost too. A copy
//! may be made onto a node holding such a replica: the chunkserver replaces
//! it only once the copy is complete, verified and durable. Replicas
//! on decommissioning nodes still serve reads and copies but do not count,
//! so their chunks are copied elsewhere. Replicas on dead nodes are left
//! alone: the node may come back, and then they count (or are stale) again.
//! Deletions (of stale, damaged or surplus replicas) rely only on replicas
//! of nodes heard from lately: a node silent for a while may have lost its
//! disk, and a deletion made for its replica could remove the last copy.

use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};

/// A chunkserver as the plan sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub node: NodeId,
    pub live: bool,
    pub draining: bool,
    pub free_bytes: u64,
    /// Copies in flight through this node, as source or target.
    pub copies: usize,
    /// Live, but not heard from lately (a third of the dead interval): it
    /// may be gone already. Its replicas still count (no copy is made for
    /// them yet), but no deletion relies on them.
    pub silent: bool,
}

/// One chunk as the plan sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkView {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub want: usize,
    pub chunk_size: u64,
    /// Every node reported holding it, with the version it holds.
    pub replicas: Vec<(NodeId, ChunkVersion)>,
    /// A lease runs: nothing is trimmed until it ends. A copy still goes
    /// ahead (a writer may keep a chunk leased for hours): it revokes the
    /// lease by fencing the version first, and the writer's next lease
    /// waits for the copy.
    pub leased: bool,
    /// Nodes a copy of this chunk is being made to right now.
    pub copying_to: Vec<NodeId>,
    /// Replicas that must not be served (at the current version but short,
    /// dirty after a crash or not members of it; or at a version never
    /// issued, above the current one): deleted once the chunk has enough
    /// counted replicas. A node holding one at the current version may
    /// receive a copy (it replaces the replica once durable); one above the
    /// current version would refuse a copy, so it is never a target.
    pub damaged: Vec<(NodeId, ChunkVersion)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Copy {
        handle: ChunkHandle,
        version: ChunkVersion,
        chunk_size: u64,
        source: NodeId,
        target: NodeId,
    },
    /// Delete `node`'s replica if its version is at most `max_version`.
    Delete {
        node: NodeId,
        handle: ChunkHandle,
        max_version: ChunkVersion,
    },
}

/// Bounds on the work one plan starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Copies in flight through one node (as source or target) at once.
    pub copies_per_node: usize,
}

/// How a chunk's replicas stand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// Replicas that count (live, not draining, current version).
    pub counted: Vec<NodeId>,
    /// Counted replicas on nodes heard from lately: what a deletion may
    /// rely on.
    pub confirmed: Vec<NodeId>,
    /// Replicas a copy may be read from (live, current version; draining ok).
    pub sources: Vec<NodeId>,
    /// Replicas on live nodes below the current version.
    pub stale: Vec<(NodeId, ChunkVersion)>,
}

pub fn standing(chunk: &ChunkView, node: impl Fn(NodeId) -> Option<NodeView>) -> Standing {
    let mut s = Standing::default();
    for (id, version) in &chunk.replicas {
        let Some(n) = node(*id).filter(|n| n.live) else { continue };
        if *version == chunk.version {
            s.sources.push(*id);
            if !n.draining {
                s.counted.push(*id);
                if !n.silent {
                    s.confirmed.push(*id);
                }
            }
        } else if *version < chunk.version && !chunk.copying_to.contains(id) {
            s.stale.push((*id, *version));
        }
    }
    s
}

/// True when every chunk `node` holds a current replica of is fully
/// replicated without it: a decommissioning node that may now be removed.
pub fn is_drained<'a>(node: NodeId, chunks: impl IntoIterator<Item = &'a ChunkView>, view: impl Fn(NodeId) -> Option<NodeView>) -> bool {
    chunks.into_iter().filter(|c| c.replicas.iter().any(|(n, v)| *n == node && *v == c.version)).all(|c| {
        let s = standing(c, &view);
        s.counted.iter().filter(|n| **n != node).count() >= c.want
    })
}

pub fn plan(chunks: &[ChunkView], nodes: &[NodeView], limits: Limits) -> Vec<Action> {
    let mut nodes: Vec<NodeView> = nodes.to_vec();
    // By id: a pass looks up every replica's node, over millions of chunks
    // and a thousand nodes (a scan each made a pass take half a minute).
    let index: std::collections::HashMap<NodeId, usize> = nodes.iter().enumerate().map(|(i, n)| (n.node, i)).collect();
    let view = |nodes: &[NodeView], id: NodeId| index.get(&id).map(|i| nodes[*i]);
    let mut actions = Vec::new();
    let mut needy: Vec<(usize, &ChunkView, Standing)> = Vec::new();
    for chunk in chunks {
        let s = standing(chunk, |id| view(&nodes, id));
        if may_delete_bad(chunk, &s) {
            // Not a copy's target: the copy replaces what it held (and a
            // target that reported the copy before its call answered holds
            // it as damaged: deleting it would delete the copy).
            let damaged = chunk.damaged.iter().filter(|(n, _)| !chunk.copying_to.contains(n));
            let bad = s.stale.iter().chain(damaged);
            actions.extend(bad.map(|(node, version)| Action::Delete { node: *node, handle: chunk.handle, max_version: *version }));
        }
        let have = s.counted.len() + chunk.copying_to.len();
        if have < chunk.want && !s.sources.is_empty() {
            needy.push((s.counted.len(), chunk, s));
        } else if !chunk.leased && chunk.copying_to.is_empty() && s.confirmed.len() > chunk.want {
            actions.extend(surplus(chunk, &s, &nodes));
        }
    }
    // Fewest counted replicas first: those are closest to being lost.
    needy.sort_by_key(|(counted, c, _)| (*counted, c.handle));
    for (_, chunk, s) in needy {
        let missing = chunk.want - s.counted.len() - chunk.copying_to.len();
        let mut taken: Vec<NodeId> = s.sources.clone();
        taken.extend(&chunk.copying_to);
        taken.extend(chunk.damaged.iter().filter(|(_, v)| *v > chunk.version).map(|(n, _)| *n));
        taken.extend(chunk.replicas.iter().filter(|(n, _)| view(&nodes, *n).is_some_and(|v| !v.live)).map(|(n, _)| *n));
        for _ in 0..missing {
            let Some(source) = pick_source(&s.sources, &nodes, limits) else { break };
            let Some(target) = pick_target(&taken, chunk.chunk_size, &nodes, limits) else { break };
            for n in nodes.iter_mut() {
                if n.node == source || n.node == target {
                    n.copies += 1;
                }
                if n.node == target {
                    n.free_bytes = n.free_bytes.saturating_sub(chunk.chunk_size);
                }
            }
            taken.push(target);
            let (handle, version, chunk_size) = (chunk.handle, chunk.version, chunk.chunk_size);
            actions.push(Action::Copy { handle, version, chunk_size, source, target });
        }
    }
    actions
}

/// Whether the chunk's stale and damaged replicas may be deleted: only once
/// it has its wanted number of counted replicas on nodes heard from lately
/// (never the last copies, even when a silent node's disk is gone).
pub fn may_delete_bad(chunk: &ChunkView, s: &Standing) -> bool {
    s.confirmed.len() >= chunk.want
}

/// Deletes replicas beyond the wanted number, from the fullest nodes among
/// those heard from lately: a silent node's replica may be gone, so it is
/// neither deleted for nor relied on.
fn surplus(chunk: &ChunkView, s: &Standing, nodes: &[NodeView]) -> Vec<Action> {
    let mut counted: Vec<NodeView> = s.confirmed.iter().filter_map(|id| nodes.iter().find(|n| n.node == *id).copied()).collect();
    counted.sort_by_key(|n| (n.free_bytes, n.node));
    let extra = s.confirmed.len() - chunk.want;
    counted.into_iter().take(extra).map(|n| Action::Delete { node: n.node, handle: chunk.handle, max_version: chunk.version }).collect()
}

/// The source with the fewest copies in flight, if any is under the limit;
/// on a tie a draining node, whose disk is otherwise idle (as HDFS does).
fn pick_source(sources: &[NodeId], nodes: &[NodeView], limits: Limits) -> Option<NodeId> {
    nodes.iter().filter(|n| sources.contains(&n.node) && n.copies < limits.copies_per_node).min_by_key(|n| (n.copies, !n.draining, n.node)).map(|n| n.node)
}

/// A live, not draining node without the chunk, with room and under the
/// copy limit: the most free space wins (spreads data as placement does).
fn pick_target(taken: &[NodeId], chunk_size: u64, nodes: &[NodeView], limits: Limits) -> Option<NodeId> {
    nodes
        .iter()
        .filter(|n| n.live && !n.draining && !taken.contains(&n.node))
        .filter(|n| n.free_bytes >= chunk_size && n.copies < limits.copies_per_node)
        .max_by(|a, b| a.free_bytes.cmp(&b.free_bytes).then(b.node.cmp(&a.node)))
        .map(|n| n.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const LIMITS: Limits = Limits { copies_per_node: 2 };

    fn n(i: u128) -> NodeId {
        NodeId(uuid::Uuid::from_u128(i))
    }

    fn node(i: u128, free_gib: u64) -> NodeView {
        NodeView { node: n(i), live: true, draining: false, free_bytes: free_gib * GIB, copies: 0, silent: false }
    }

    fn chunk(h: u64, want: usize, replicas: &[(u128, u64)]) -> ChunkView {
        ChunkView {
            handle: ChunkHandle(h),
            version: ChunkVersion(5),
            want,
            chunk_size: 64 << 20,
            replicas: replicas.iter().map(|(i, v)| (n(*i), ChunkVersion(*v))).collect(),
            leased: false,
            copying_to: Vec::new(),
            damaged: Vec::new(),
        }
    }

    fn copies(actions: &[Action]) -> Vec<(u64, NodeId, NodeId)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Copy { handle, source, target, .. } => Some((handle.0, *source, *target)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_under_replicated_chunk_is_copied_to_the_emptiest_node_without_it() {
        let nodes = [node(1, 10), node(2, 10), node(3, 50), node(4, 40)];
        let actions = plan(&[chunk(7, 3, &[(1, 5), (2, 5)])], &nodes, LIMITS);
        assert_eq!(copies(&actions), vec![(7, n(1), n(3))]);
    }

    #[test]
    fn fewest_counted_replicas_go_first_and_per_node_limits_hold() {
        let nodes = [node(1, 10), node(2, 10), node(3, 50)];
        let two_left = chunk(1, 3, &[(1, 5), (2, 5)]);
        let one_left = chunk(2, 3, &[(1, 5)]);
        let limits = Limits { copies_per_node: 1 };
        let actions = plan(&[two_left, one_left], &nodes, limits);
        // Node 1 is the only source of chunk 2 and may serve one copy.
        assert_eq!(copies(&actions), vec![(2, n(1), n(3))]);
        let actions = plan(&[chunk(1, 3, &[(1, 5), (2, 5)]), chunk(2, 3, &[(1, 5)])], &nodes, LIMITS);
        let c = copies(&actions);
        assert_eq!(c[0], (2, n(1), n(3)), "the chunk with one replica first: {c:?}");
        assert_eq!(c.len(), 3, "{c:?}");
    }

    #[test]
    fn dead_nodes_neither_count_nor_receive_and_stale_replicas_are_kept_until_enough_are_current() {
        let mut nodes = [node(1, 10), node(2, 10), node(3, 50), node(4, 60)];
        nodes[3].live = false;
        let actions = plan(&[chunk(7, 3, &[(1, 5), (2, 4), (4, 5)])], &nodes, LIMITS);
        assert!(!actions.iter().any(|a| matches!(a, Action::Delete { .. })), "one counted replica of three: nothing goes: {actions:?}");
        // Node 2 holds only a stale copy: it may receive a fresh one.
        let c = copies(&actions);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|(_, _, t)| *t == n(2) || *t == n(3)), "{c:?}");
        assert!(!actions.iter().any(|a| matches!(a, Action::Delete { node, .. } if *node == n(4))), "dead nodes are left alone");
        // Once three are current, the stale one goes.
        let actions = plan(&[chunk(7, 3, &[(1, 5), (2, 4), (3, 5), (5, 5)])], &[nodes[0], nodes[1], nodes[2], node(5, 10)], LIMITS);
        assert_eq!(actions, vec![Action::Delete { node: n(2), handle: ChunkHandle(7), max_version: ChunkVersion(4) }]);
    }

    #[test]
    fn leased_chunks_are_copied_not_trimmed_copying_ones_wait_and_surplus_goes_from_the_fullest() {
        let nodes = [node(1, 10), node(2, 5), node(3, 50), node(4, 40)];
        let mut leased = chunk(7, 3, &[(1, 5)]);
        leased.leased = true;
        assert_eq!(copies(&plan(&[leased], &nodes, LIMITS)).len(), 2, "a chunk written for hours is repaired too");
        let mut leased_four = chunk(6, 3, &[(1, 5), (2, 5), (3, 5), (4, 5)]);
        leased_four.leased = true;
        assert!(plan(&[leased_four], &nodes, LIMITS).is_empty(), "no trimming under a lease");
        let mut copying = chunk(8, 3, &[(1, 5), (2, 5)]);
        copying.copying_to = vec![n(3)];
        assert!(plan(&[copying], &nodes, LIMITS).is_empty(), "the copy in flight covers the missing replica");
        let four = chunk(9, 3, &[(1, 5), (2, 5), (3, 5), (4, 5)]);
        assert_eq!(plan(&[four], &nodes, LIMITS), vec![Action::Delete { node: n(2), handle: ChunkHandle(9), max_version: ChunkVersion(5) }]);
    }

    #[test]
    fn draining_nodes_serve_copies_but_do_not_count_and_drain_completes() {
        let mut nodes = [node(1, 10), node(2, 10), node(3, 50), node(4, 40)];
        nodes[0].draining = true;
        let c = chunk(7, 2, &[(1, 5), (2, 5)]);
        assert!(!is_drained(n(1), [&c], |id| nodes.iter().find(|x| x.node == id).copied()));
        let actions = plan(std::slice::from_ref(&c), &nodes, LIMITS);
        assert_eq!(copies(&actions), vec![(7, n(1), n(3))], "the draining node is the source");
        let done = chunk(7, 2, &[(1, 5), (2, 5), (3, 5)]);
        assert!(is_drained(n(1), [&done], |id| nodes.iter().find(|x| x.node == id).copied()));
        assert!(plan(&[done], &nodes, LIMITS).is_empty(), "the draining replica is kept, not trimmed");
    }

    #[test]
    fn a_chunk_without_any_current_replica_is_not_copied() {
        let nodes = [node(1, 10), node(2, 10), node(3, 10)];
        let actions = plan(&[chunk(7, 3, &[(1, 4)])], &nodes, LIMITS);
        assert!(copies(&actions).is_empty());
    }

    #[test]
    fn damaged_replicas_go_only_once_enough_good_copies_exist() {
        let nodes = [node(1, 10), node(2, 50), node(3, 10)];
        let mut c = chunk(7, 2, &[(1, 5)]);
        c.damaged = vec![(n(2), ChunkVersion(5))];
        let actions = plan(std::slice::from_ref(&c), &nodes, LIMITS);
        assert!(!actions.iter().any(|a| matches!(a, Action::Delete { .. })), "one good copy of two: the damaged one stays: {actions:?}");
        // The copy may replace it in place (the chunkserver swaps it in once durable).
        assert_eq!(copies(&actions), vec![(7, n(1), n(2))]);
        let mut enough = chunk(7, 2, &[(1, 5), (3, 5)]);
        enough.damaged = vec![(n(2), ChunkVersion(5))];
        let actions = plan(&[enough], &nodes, LIMITS);
        assert_eq!(actions, vec![Action::Delete { node: n(2), handle: ChunkHandle(7), max_version: ChunkVersion(5) }]);
        let mut only = chunk(8, 2, &[]);
        only.damaged = vec![(n(2), ChunkVersion(5))];
        assert!(plan(&[only], &nodes, LIMITS).is_empty(), "the last copy, damaged or not, is kept");
    }

    #[test]
    fn a_replica_at_a_version_never_issued_is_kept_until_enough_and_never_a_target() {
        let nodes = [node(1, 10), node(2, 50), node(3, 10)];
        let forged = ChunkVersion(u64::MAX);
        let mut c = chunk(7, 2, &[(1, 5)]);
        c.damaged = vec![(n(2), forged)];
        let actions = plan(std::slice::from_ref(&c), &nodes, LIMITS);
        assert_eq!(actions, vec![Action::Copy { handle: ChunkHandle(7), version: ChunkVersion(5), chunk_size: 64 << 20, source: n(1), target: n(3) }]);
        c.replicas.push((n(3), ChunkVersion(5)));
        assert_eq!(plan(&[c], &nodes, LIMITS), vec![Action::Delete { node: n(2), handle: ChunkHandle(7), max_version: forged }]);
    }

    #[test]
    fn bad_reports_twice_leave_the_stale_copies_on_disk_until_replication_is_restored() {
        // Two replicas made stale one after the other (a bump each): one current left.
        let nodes = [node(1, 10), node(2, 10), node(3, 10)];
        let c = chunk(7, 3, &[(1, 3), (2, 4), (3, 5)]);
        let actions = plan(std::slice::from_ref(&c), &nodes, LIMITS);
        assert!(!actions.iter().any(|a| matches!(a, Action::Delete { .. })), "{actions:?}");
        assert_eq!(copies(&actions).len(), 2, "copies replace the stale ones in place: {actions:?}");
    }

    #[test]
    fn nodes_without_room_get_no_copies() {
        let nodes = [node(1, 10), node(2, 0), node(3, 0)];
        assert!(copies(&plan(&[chunk(7, 3, &[(1, 5)])], &nodes, LIMITS)).is_empty());
    }
}
