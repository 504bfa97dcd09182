//! What must hold after every step of a run, and the record of truth it is
//! checked against: which writes were acknowledged (durable on every
//! replica of their lease), and which leases the master granted.
//!
//! - At most one primary per chunk per lease: two unexpired grants of one
//!   chunk at the same version name the same primary, and no grant is at a
//!   lower version than an unexpired earlier one. (A grant at a higher
//!   version may name another primary while an older lease has not run out:
//!   its version bump fenced the old one, whose writes every current replica
//!   now refuses.)
//! - Versions never go down: the engine's recorded version of a chunk, the
//!   store's, and each replica's on disk (the chunkserver model refuses a
//!   lower one; the store refuses to record one).
//! - No acknowledged write is lost: a replica the engine serves as current
//!   holds every acknowledged write of its chunk (a replica with a flipped
//!   bit excepted: readers' checksums catch it), and at the end every live
//!   chunk has as many of those as it wants.
//! - The last readable copy of a live chunk with acknowledged data is never
//!   deleted.
//! - Once faults stop, every live chunk is back to its goal within a bound
//!   (unless faults destroyed every copy at its recorded version).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dfs_master::chunks::engine::{Engine, Granted};
use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};

use super::chunkserver::Chunkserver;
use super::disk::{Replica, WriteId};
use super::namespace::Namespace;

/// The writes of one chunk: every id issued at each unit (in order), and
/// which of them was acknowledged last.
#[derive(Default)]
struct Written {
    issued: Vec<Vec<WriteId>>,
    /// Per unit: the index in `issued` of the last acknowledged write.
    acked: Vec<Option<usize>>,
}

/// What clients were told.
#[derive(Default)]
pub struct Truth {
    chunks: BTreeMap<ChunkHandle, Written>,
}

impl Truth {
    /// A write of `id` at `unit` was sent (again).
    pub fn issue(&mut self, handle: ChunkHandle, unit: u32, id: WriteId) {
        let w = self.chunks.entry(handle).or_default();
        let u = unit as usize;
        if w.issued.len() <= u {
            w.issued.resize(u + 1, Vec::new());
            w.acked.resize(u + 1, None);
        }
        if !w.issued[u].contains(&id) {
            w.issued[u].push(id);
        }
    }

    /// The write of `id` at `unit` is acknowledged.
    pub fn ack(&mut self, handle: ChunkHandle, unit: u32, id: WriteId) {
        self.issue(handle, unit, id);
        let w = self.chunks.entry(handle).or_default();
        let u = unit as usize;
        let pos = w.issued[u].iter().position(|i| *i == id);
        w.acked[u] = w.acked[u].max(pos);
    }

    /// Units acknowledged (the highest acknowledged unit + 1).
    pub fn acked_units(&self, handle: ChunkHandle) -> u32 {
        self.chunks.get(&handle).and_then(|w| w.acked.iter().rposition(|a| a.is_some())).map_or(0, |u| u as u32 + 1)
    }

    /// Whether `data` holds every acknowledged write of the chunk (or one
    /// issued after it at the same unit).
    pub fn holds(&self, handle: ChunkHandle, data: &[WriteId]) -> bool {
        let Some(w) = self.chunks.get(&handle) else { return true };
        w.acked.iter().enumerate().all(|(u, a)| match a {
            None => true,
            Some(i) => data.get(u).is_some_and(|id| w.issued[u][*i..].contains(id)),
        })
    }

    /// The first unit where `data` lacks an acknowledged write, for messages.
    pub fn first_missing(&self, handle: ChunkHandle, data: &[WriteId]) -> Option<(u32, WriteId, Option<WriteId>)> {
        let w = self.chunks.get(&handle)?;
        w.acked.iter().enumerate().find_map(|(u, a)| {
            let i = (*a)?;
            let ok = data.get(u).is_some_and(|id| w.issued[u][i..].contains(id));
            (!ok).then(|| (u as u32, w.issued[u][i], data.get(u).copied()))
        })
    }

    /// Whether a replica is readable and holds every acknowledged write.
    pub fn good(&self, handle: ChunkHandle, r: &Replica) -> bool {
        !r.corrupt && self.holds(handle, &r.data)
    }

    /// Chunks with acknowledged writes.
    pub fn handles(&self) -> impl Iterator<Item = ChunkHandle> + '_ {
        self.chunks.iter().filter(|(_, w)| w.acked.iter().any(|a| a.is_some())).map(|(h, _)| *h)
    }
}

/// A lease the master granted (from its reply).
#[derive(Clone, Debug)]
struct Grant {
    version: ChunkVersion,
    primary: NodeId,
    expires: Duration,
}

/// Every lease granted and not run out, by chunk.
#[derive(Default)]
pub struct Grants {
    by_chunk: BTreeMap<ChunkHandle, Vec<Grant>>,
}

impl Grants {
    /// A lease granted at `now`: checked against the unexpired ones.
    pub fn granted(&mut self, g: &Granted, now: Duration) -> Result<(), String> {
        let list = self.by_chunk.entry(g.handle).or_default();
        list.retain(|x| x.expires > now);
        let new = Grant { version: g.version, primary: g.primary.node_id, expires: now + g.remaining };
        for old in list.iter() {
            if old.version == new.version && old.primary != new.primary {
                return Err(format!(
                    "two primaries of chunk {} at version {}: {} (until {:?}) and {}",
                    g.handle, g.version, old.primary, old.expires, new.primary
                ));
            }
            if new.version < old.version {
                return Err(format!(
                    "chunk {} leased at version {} while a lease at version {} runs (until {:?})",
                    g.handle, new.version, old.version, old.expires
                ));
            }
        }
        list.push(new);
        Ok(())
    }
}

/// The engine's recorded versions as last seen, to check they never go down.
#[derive(Default)]
pub struct Versions {
    seen: BTreeMap<ChunkHandle, ChunkVersion>,
}

impl Versions {
    pub fn check(&mut self, handle: ChunkHandle, engine: &Engine, ns: &Namespace) -> Result<(), String> {
        let Some(meta) = engine.map().chunk(handle) else { return Ok(()) };
        let last = self.seen.entry(handle).or_insert(meta.version);
        if meta.version < *last {
            return Err(format!("chunk {handle}'s recorded version went down from {last} to {}", meta.version));
        }
        *last = meta.version;
        match ns.record(handle) {
            Some(r) if r.version < meta.version => Err(format!("the engine holds chunk {handle} at version {}, the store only at {}", meta.version, r.version)),
            _ => Ok(()),
        }
    }
}

/// The engine serves only replicas that hold every acknowledged write.
pub fn served(handle: ChunkHandle, engine: &Engine, nodes: &[Chunkserver], ns: &Namespace, truth: &Truth, now: Instant) -> Result<(), String> {
    if !ns.is_live(handle) {
        return Ok(());
    }
    let Some(meta) = engine.map().chunk(handle) else { return Ok(()) };
    let dead_after = engine.config().dead_after;
    for n in nodes {
        if engine.map().replica_version(handle, n.id) != Some(meta.version) || !engine.map().is_live(n.id, now, dead_after) {
            continue;
        }
        let Some(r) = n.disk.replicas.get(&handle) else { continue }; // reads fail: not served data
        if r.corrupt || r.version != meta.version {
            continue; // caught by checksums, or refused by version
        }
        if let Some((unit, want, have)) = truth.first_missing(handle, &r.data) {
            return Err(format!(
                "chunk {handle} v{} is served from {} ({}) without acknowledged write {want} at unit {unit} (it has {have:?}; its data {:?})",
                meta.version, n.address, n.id, r.data
            ));
        }
    }
    Ok(())
}

/// `node` deleted `removed`: some other copy of a live chunk with
/// acknowledged writes must hold them. A copy with a flipped bit its
/// scrubber has not found yet counts: the master cannot know better (the
/// chunk is then lost to the fault, see `converged`).
pub fn deleted(handle: ChunkHandle, removed: &Replica, node: usize, nodes: &[Chunkserver], ns: &Namespace, truth: &Truth) -> Result<(), String> {
    if !ns.is_live(handle) || truth.acked_units(handle) == 0 || !truth.good(handle, removed) {
        return Ok(());
    }
    let others = nodes.iter().enumerate().filter(|(i, _)| *i != node).filter_map(|(_, n)| n.disk.replicas.get(&handle));
    if others.clone().any(|r| truth.holds(handle, &r.data)) {
        return Ok(());
    }
    let left: Vec<(ChunkVersion, usize, bool)> = others.map(|r| (r.version, r.data.len(), r.corrupt)).collect();
    Err(format!("{} deleted the last good copy of chunk {handle} (v{}, {} units; left: {left:?})", nodes[node].address, removed.version, removed.data.len()))
}

/// Once faults are over: every live chunk is healthy (its wanted number of
/// current replicas, nothing stale or corrupt left), each current replica
/// holds every acknowledged write, and no operation is under way. A chunk
/// whose every servable copy a fault destroyed (`destroyed`: bit flips,
/// replaced disks) cannot come back: it is counted, not failed (stale copies
/// may hold its data, but a stale replica is never served).
/// Returns how many chunks were lost so.
pub fn converged(
    engine: &Engine,
    nodes: &[Chunkserver],
    ns: &Namespace,
    truth: &Truth,
    destroyed: &BTreeSet<ChunkHandle>,
    now: Instant,
) -> Result<usize, String> {
    let ops = engine.ops().count();
    if ops > 0 {
        return Err(format!("{ops} operations under way: {:?}", engine.ops().take(3).collect::<Vec<_>>()));
    }
    let dead_after = engine.config().dead_after;
    let mut lost = 0;
    for (handle, file) in ns.by_handle.keys().filter_map(|h| Some((*h, ns.file_of(*h)?))) {
        let Some(meta) = engine.map().chunk(handle) else {
            if truth.acked_units(handle) > 0 {
                return Err(format!("chunk {handle} holds acknowledged writes but the engine lost it"));
            }
            continue; // never placed: the next writer places it
        };
        if destroyed.contains(&handle) && !servable_on_disk(handle, meta.version, engine, nodes, ns) {
            lost += 1;
            continue;
        }
        let counts = engine.map().health(handle, now, dead_after);
        let current = engine.map().current_replicas(handle, now, dead_after);
        let good = current
            .iter()
            .filter(|a| {
                nodes.iter().any(|n| n.id == a.node_id && n.disk.replicas.get(&handle).is_some_and(|r| r.version == meta.version && truth.good(handle, r)))
            })
            .count();
        if !counts.healthy(file.replication) || good != file.replication as usize {
            return Err(format!("{good} good current replicas; {}", describe(engine, nodes, ns, handle, now)));
        }
    }
    Ok(lost)
}

/// Whether some disk holds a copy of `handle` the master may serve: at
/// `version`, not corrupt, and on a member of that version (when the store
/// knows its members; and not held back by the engine as taking the version
/// without being among them: such a copy may have missed writes made under
/// it, and is rightly never served).
fn servable_on_disk(handle: ChunkHandle, version: ChunkVersion, engine: &Engine, nodes: &[Chunkserver], ns: &Namespace) -> bool {
    let members = ns.record(handle).map(|r| r.members.clone()).unwrap_or_default();
    // The members of a placement's version are known to the engine only.
    let held = engine.map().damaged_nodes(handle);
    nodes.iter().any(|n| {
        let member = (members.is_empty() || members.contains(&n.id)) && !held.contains(&(n.id, version));
        member && n.disk.replicas.get(&handle).is_some_and(|r| r.version == version && !r.corrupt)
    })
}

/// A chunk as the engine and the disks see it, for messages.
pub fn describe(engine: &Engine, nodes: &[Chunkserver], ns: &Namespace, handle: ChunkHandle, now: Instant) -> String {
    let dead_after = engine.config().dead_after;
    let Some(meta) = engine.map().chunk(handle) else { return format!("chunk {handle} (not in the engine's map)") };
    let want = ns.file_of(handle).map(|f| f.replication);
    let engine_want = engine.map().file(meta.inode).map(|f| f.replication);
    let counts = engine.map().health(handle, now, dead_after);
    let states: Vec<String> =
        engine.map().replica_states(handle, now, dead_after).iter().map(|r| format!("{}:{:?}:{}", r.address, r.version.map(|v| v.0), r.state)).collect();
    let disks: Vec<String> = nodes
        .iter()
        .filter_map(|n| {
            n.disk.replicas.get(&handle).map(|r| format!("{}:v{}:{}u{}", n.address, r.version, r.data.len(), if r.corrupt { ":corrupt" } else { "" }))
        })
        .collect();
    let damaged = engine.map().damaged_nodes(handle);
    format!("chunk {handle} v{} want {want:?} (engine: {engine_want:?}) {counts:?} engine {states:?} damaged {damaged:?} disks {disks:?}", meta.version)
}
