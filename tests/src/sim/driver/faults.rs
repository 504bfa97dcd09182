//! Faults, drawn from the seed while `faults_on`: crashes and correlated
//! power losses (unsynced writes lost, the last block torn), partitions,
//! bursts of dropped messages and failing store writes, bit flips (the
//! scrubber finds them later), full disks, replication changes, and
//! replaced disks (a new node id at the old address). A fault that would
//! destroy every good copy of acknowledged data is not injected: the
//! engine cannot be blamed for data no disk holds.

use std::time::Duration;

use dfs_master::chunks::engine::Event;
use dfs_proto::ChunkHandle;
use rand::Rng;

use super::{node_id, Ev, World, DEAD_AFTER};
use crate::sim::chunkserver::Chunkserver;

impl World {
    pub(super) fn fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let next = self.now + self.rng.random_range(Duration::from_millis(300)..Duration::from_millis(2500));
        self.push(next, Ev::Fault);
        self.faults += 1;
        let n = self.rng.random_range(0..self.nodes.len());
        match self.rng.random_range(0..100) {
            0..20 => self.crash(n, Duration::from_secs(8)),
            20..28 => self.power_loss(),
            28..48 => {
                let until = self.now + self.rng.random_range(Duration::from_secs(1)..Duration::from_secs(10));
                self.note(|| format!("fault: partition node {n} until {until:?}"));
                self.net.partition(n, until);
            }
            48..60 => self.flip_a_bit(n),
            60..68 => {
                self.nodes[n].disk.full = true;
                let until = self.now + self.rng.random_range(Duration::from_secs(2)..Duration::from_secs(12));
                self.push(until, Ev::Unfill(n));
            }
            68..76 => self.change_replication(),
            76..80 => self.replace_disk(n),
            80..90 => {
                self.net.drop_ppm = 50_000;
                self.store_fail_ppm = 100_000;
                let until = self.now + self.rng.random_range(Duration::from_secs(1)..Duration::from_secs(4));
                self.push(until, Ev::Calm);
            }
            _ => {} // a quiet moment
        }
    }

    /// Power lost at node `n`; it comes back within `down_at_most`.
    fn crash(&mut self, n: usize, down_at_most: Duration) {
        if !self.nodes[n].up {
            return;
        }
        self.note(|| format!("fault: crash node {n}"));
        self.nodes[n].crash(&mut self.rng);
        self.beating[n] = false;
        let held: Vec<ChunkHandle> = self.nodes[n].disk.replicas.keys().copied().collect();
        self.touched.extend(held);
        let back = self.now + self.rng.random_range(Duration::from_millis(200)..down_at_most);
        self.push(back, Ev::Restart(n));
    }

    /// Several nodes lose power at once.
    fn power_loss(&mut self) {
        let count = self.rng.random_range(2..=3.min(self.nodes.len()));
        for _ in 0..count {
            let n = self.rng.random_range(0..self.nodes.len());
            self.crash(n, Duration::from_secs(6));
        }
    }

    /// Flips a bit in a replica of node `n`, if another good copy is left.
    fn flip_a_bit(&mut self, n: usize) {
        let handles: Vec<ChunkHandle> = self.nodes[n].disk.replicas.keys().copied().collect();
        if handles.is_empty() {
            return;
        }
        let h = handles[self.rng.random_range(0..handles.len())];
        if !self.another_good_copy(n, h) {
            return;
        }
        self.note(|| format!("fault: flip a bit of chunk {h} on node {n}"));
        if let Some(r) = self.nodes[n].disk.replicas.get_mut(&h) {
            r.corrupt = true;
        }
        self.destroyed.insert(h);
        self.unseen.insert((h, self.nodes[n].id));
        let found = self.now + self.rng.random_range(Duration::from_millis(500)..Duration::from_secs(5));
        self.push(found, Ev::Scrub { node: n, handle: h });
    }

    /// Whether a node other than `n` holds a good copy of `h` at its
    /// recorded version, a member of it (or `h` is garbage). A stale copy
    /// (or a late taker of the version) does not do: it
    /// may hold every acknowledged write (a fence moved the others on
    /// without new data), but the master rightly never serves it again.
    fn another_good_copy(&self, n: usize, h: ChunkHandle) -> bool {
        let Some(record) = self.ns.record(h) else { return true };
        let good = |r: &crate::sim::disk::Replica| r.version == record.version && self.truth.good(h, r);
        let member = |id| record.members.is_empty() || record.members.contains(id);
        self.nodes.iter().enumerate().any(|(i, node)| i != n && member(&node.id) && node.disk.replicas.get(&h).is_some_and(good))
    }

    fn change_replication(&mut self) {
        let inodes: Vec<_> = self.ns.files.keys().copied().collect();
        if inodes.is_empty() {
            return;
        }
        let inode = inodes[self.rng.random_range(0..inodes.len())];
        let replication = self.rng.random_range(1..=3);
        if let Some(file) = self.ns.set_replication(inode, replication) {
            self.note(|| format!("fault: file {inode} wants {replication} replicas"));
            self.step_engine(Event::FileChanged { inode, file });
        }
    }

    /// The disk of node `n` is replaced: empty, with a new node id, back at
    /// the same address once the old id is dead to the master.
    fn replace_disk(&mut self, n: usize) {
        let handles: Vec<ChunkHandle> = self.nodes[n].disk.replicas.keys().copied().collect();
        if !handles.iter().all(|h| self.another_good_copy(n, *h)) {
            return;
        }
        self.note(|| format!("fault: replace the disk of node {n}"));
        self.destroyed.extend(handles.iter().copied());
        let old = self.nodes[n].id;
        self.unseen.extend(handles.iter().map(|h| (*h, old)));
        self.crash(n, Duration::from_millis(300));
        self.next_node += 1;
        let fresh = Chunkserver::new(node_id(self.next_node), self.nodes[n].address.clone());
        let old = std::mem::replace(&mut self.nodes[n], fresh);
        self.nodes[n].incarnation = old.incarnation + 1;
        self.nodes[n].up = false;
        let back = self.now + DEAD_AFTER + self.rng.random_range(Duration::ZERO..Duration::from_secs(4));
        self.push(back, Ev::Restart(n));
    }
}
