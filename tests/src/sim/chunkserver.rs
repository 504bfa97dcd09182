//! A simulated chunkserver: its disk, whether it runs, and how it answers
//! the master's calls, clients' writes and heartbeat answers. It follows the
//! real one where the master relies on it: nothing is served before the
//! master took the process's first full report (`registered`); creates,
//! version changes and copies are durable before they answer; versions
//! never go down; a copy reads the source at exactly the asked version and
//! replaces an older replica only once whole; a delete keeps a replica
//! newer than its order, and one being copied here.

use std::collections::BTreeSet;

use dfs_proto::wire::chunks::{Heartbeat, ReplicaReport};
use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};
use rand::rngs::StdRng;

use super::disk::{Disk, Replica, WriteId, CHUNK_BYTES};

/// Why a chunkserver refused a call (for the trace).
pub type Refused = &'static str;

/// Room on each disk: a few hundred chunks.
pub const CAPACITY_BYTES: u64 = 512 * CHUNK_BYTES;

pub struct Chunkserver {
    pub id: NodeId,
    pub address: String,
    pub disk: Disk,
    pub up: bool,
    /// Bumped at every crash: work of an earlier process is dropped.
    pub incarnation: u64,
    /// The master took this process's first full report.
    pub registered: bool,
    /// The next heartbeat carries a full report.
    pub report_due: bool,
    /// Beats since the last full report.
    pub beats_since_report: u32,
    /// Chunks being copied here (one copy per chunk at a time).
    pub copying: BTreeSet<ChunkHandle>,
}

impl Chunkserver {
    pub fn new(id: NodeId, address: String) -> Chunkserver {
        Chunkserver {
            id,
            address,
            disk: Disk::default(),
            up: true,
            incarnation: 0,
            registered: false,
            report_due: true,
            beats_since_report: 0,
            copying: BTreeSet::new(),
        }
    }

    fn serving(&self) -> Result<(), Refused> {
        match (self.up, self.registered) {
            (false, _) => Err("down"),
            (true, false) => Err("not registered yet"),
            (true, true) => Ok(()),
        }
    }

    /// The heartbeat it sends now.
    pub fn heartbeat(&mut self, every_nth_reports: u32) -> Heartbeat {
        let with_report = self.report_due || self.beats_since_report + 1 >= every_nth_reports;
        let used = if self.disk.full { CAPACITY_BYTES } else { self.disk.used_bytes().min(CAPACITY_BYTES) };
        let report = with_report.then(|| {
            self.disk.replicas.iter().map(|(h, r)| ReplicaReport { handle: *h, version: r.version, length: r.length_bytes(), dirty: r.dirty }).collect()
        });
        if with_report {
            self.beats_since_report = 0;
            self.report_due = false;
        } else {
            self.beats_since_report += 1;
        }
        Heartbeat {
            node_id: self.id,
            address: self.address.clone(),
            capacity_bytes: CAPACITY_BYTES,
            used_bytes: used,
            chunk_count: self.disk.replicas.len() as u64,
            load: self.copying.len() as u32,
            report,
            bytes_read: 0,
            bytes_written: 0,
            scrub: None,
            registering: !self.registered,
            cluster_id: None,
            peers_epoch: 0,
        }
    }

    /// The master answered a heartbeat: a full report registers the process.
    pub fn answered(&mut self, had_report: bool, send_report: bool) {
        if had_report {
            self.registered = true;
        }
        if send_report {
            self.report_due = true;
        }
    }

    /// A heartbeat got no answer: the next one carries a full report (the
    /// master may have restarted).
    pub fn unanswered(&mut self) {
        self.report_due = true;
    }

    /// Refused before registration, as every other call (else a process
    /// with a new id, at the address of one the master still counts live,
    /// makes replicas the master records on the old id: seeds 308, 322).
    pub fn create(&mut self, handle: ChunkHandle, version: ChunkVersion) -> Result<(), Refused> {
        self.serving()?;
        if let Some(r) = self.disk.replicas.get(&handle) {
            return if r.version == version { Ok(()) } else { Err("exists at another version") };
        }
        if self.disk.full {
            return Err("disk full");
        }
        self.disk.replicas.insert(handle, Replica::new(version));
        Ok(())
    }

    pub fn set_version(&mut self, handle: ChunkHandle, version: ChunkVersion) -> Result<(), Refused> {
        self.serving()?;
        let r = self.disk.replicas.get_mut(&handle).ok_or("no such replica")?;
        if version < r.version {
            return Err("versions never go down");
        }
        if version > r.version {
            r.sync();
            r.version = version;
            r.lost_writes = false;
        }
        Ok(())
    }

    /// The start of a copy to this node.
    pub fn begin_copy(&mut self, handle: ChunkHandle, version: ChunkVersion) -> Result<(), Refused> {
        self.serving()?;
        if self.disk.replicas.get(&handle).is_some_and(|r| r.version > version) {
            return Err("a newer replica is here");
        }
        if !self.copying.insert(handle) {
            return Err("already copying it");
        }
        Ok(())
    }

    /// A copy source's read, at exactly `version`, verified.
    pub fn read_for_copy(&self, handle: ChunkHandle, version: ChunkVersion) -> Result<Vec<WriteId>, Refused> {
        self.serving()?;
        let r = self.disk.replicas.get(&handle).ok_or("no such replica")?;
        if r.version != version {
            return Err("not at that version");
        }
        if r.corrupt {
            return Err("checksum mismatch");
        }
        Ok(r.data.clone())
    }

    /// The copy is whole (or failed: `data` None): swapped in, durable.
    pub fn finish_copy(&mut self, handle: ChunkHandle, version: ChunkVersion, data: Option<Vec<WriteId>>) -> Result<ReplicaReport, Refused> {
        self.copying.remove(&handle);
        self.serving()?;
        let data = data.ok_or("the source failed")?;
        if self.disk.full {
            return Err("disk full");
        }
        if self.disk.replicas.get(&handle).is_some_and(|r| r.version > version) {
            return Err("a newer replica is here");
        }
        let r = Replica::copied(version, data);
        let report = ReplicaReport { handle, version, length: r.length_bytes(), dirty: false };
        self.disk.replicas.insert(handle, r);
        Ok(report)
    }

    /// A client's write of unit `offset` at `version` (then a sync of the
    /// whole replica when `sync`).
    pub fn write(&mut self, handle: ChunkHandle, version: ChunkVersion, offset: u32, id: WriteId, sync: bool) -> Result<(), Refused> {
        self.serving()?;
        let full = self.disk.full;
        let r = self.disk.replicas.get_mut(&handle).ok_or("no such replica")?;
        if r.version != version {
            return Err("another version");
        }
        if r.lost_writes {
            return Err("came back dirty: no write at this version");
        }
        if full && offset as usize >= r.data.len() {
            return Err("disk full");
        }
        r.write(offset, id);
        if sync {
            r.sync();
        }
        Ok(())
    }

    /// The master's delete order; the replica removed, if it was.
    pub fn delete(&mut self, handle: ChunkHandle, max_version: ChunkVersion) -> Option<Replica> {
        if self.copying.contains(&handle) {
            return None;
        }
        match self.disk.replicas.get(&handle) {
            Some(r) if r.version <= max_version => self.disk.replicas.remove(&handle),
            _ => None,
        }
    }

    /// The scrubber found a flipped bit: the replica is set aside.
    pub fn quarantine(&mut self, handle: ChunkHandle) -> bool {
        let corrupt = self.up && self.disk.replicas.get(&handle).is_some_and(|r| r.corrupt);
        if corrupt {
            self.disk.replicas.remove(&handle);
        }
        corrupt
    }

    /// Power lost: unsynced writes go (see `Replica::crash`), copies under
    /// way are dropped, the next process must register again.
    pub fn crash(&mut self, rng: &mut StdRng) {
        self.up = false;
        self.incarnation += 1;
        self.registered = false;
        self.report_due = true;
        self.copying.clear();
        self.disk.replicas.values_mut().for_each(|r| r.crash(rng));
    }

    pub fn restart(&mut self) {
        self.up = true;
    }
}
