//! Chunk management on the master: chunkserver registry and failure
//! detection, placement, leases and versions, re-replication, garbage
//! collection, safe mode and decommissioning. Decisions are pure functions
//! ([`liveness`], [`placement`], [`lease`], [`replication`], [`safe_mode`],
//! [`gc`]); [`ChunkManager`] performs them.
//!
//! - [`chunk_map`]: the soft state (nodes, replicas, leases, copies).
//! - [`monitor`]: the background pass (copies, deletions, garbage).
//! - [`cs_client`]: master → chunkserver calls.
//! - [`trust`]: cluster ids, heartbeat answers' keys and peers, chunk
//!   tokens, clients' bad-replica reports.
//! - [`views`]: read-only snapshots for the dashboard and `/metrics`.

pub mod chunk_map;
pub mod cs_client;
pub mod gc;
pub mod lease;
pub mod liveness;
pub mod monitor;
pub mod placement;
pub mod replication;
pub mod safe_mode;
pub mod trust;
pub mod views;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_common::auth::Ops;
use dfs_common::wire::chunks::*;
use dfs_common::wire::namespace::{ChunkHealth, FileHealth};
use dfs_common::{ChunkHandle, ChunkVersion, ErrorKind, InodeId, NodeId};
use futures::future::join_all;

use crate::store::records::ChunkRecord;
use crate::store::{Mutation, NsError, Outcome, Store, Writer};
use chunk_map::{ChunkMap, ChunkMeta, FileMeta};
use cs_client::CsClient;
use lease::{decide, Lease, LeaseDecision};
use safe_mode::SafeMode;

/// Timing and bounds of chunk management.
#[derive(Clone, Copy, Debug)]
pub struct ChunkConfig {
    pub lease: Duration,
    pub dead_after: Duration,
    /// Interval between background passes (replication, garbage).
    pub monitor_interval: Duration,
    /// Copies in flight through one chunkserver at once.
    pub copies_per_node: usize,
    /// How long removed chunks and unknown replicas wait before deletion.
    pub gc_grace: Duration,
    /// How long after the start replicas of unknown chunks are kept at
    /// least (on top of `gc_grace`): see `gc`.
    pub startup_delete_delay: Duration,
    pub safe_mode: safe_mode::Rule,
}

/// Counters of background work since the start.
#[derive(Default)]
pub struct Stats {
    pub copies_done: AtomicU64,
    pub copies_failed: AtomicU64,
    pub deletes_sent: AtomicU64,
    /// New leases granted (each a version bump, or a first placement).
    pub leases_granted: AtomicU64,
    /// Replicas reported corrupt (failed checksum verification).
    pub corrupt_reports: AtomicU64,
}

pub struct ChunkManager {
    map: Mutex<ChunkMap>,
    /// Serialises allocation and lease grants (rare: once per lease period
    /// per chunk), so two writers never both bump a version.
    grant: tokio::sync::Mutex<()>,
    store: Store,
    writer: Writer,
    cs: CsClient,
    config: ChunkConfig,
    safe_mode: Mutex<SafeMode>,
    /// When this master started (the start-up deletion delay runs from it).
    started: Instant,
    summary: Mutex<monitor::PassSummary>,
    stats: Stats,
    /// Recent events (nodes lost and back, corruption, repairs) for the dashboard.
    pub events: crate::events::Events,
    /// The cluster key, id and token keys.
    trust: trust::Trust,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> NsError {
    NsError::new(kind, message)
}

/// Ends a bump in the chunk map when dropped: recorded, or failed, also
/// when the future running it is dropped half way (a client that hangs up
/// during a lease grant cancels it): then the targets that took the version
/// are believed when they report it, and it is adopted from them.
struct BumpOver<'a> {
    manager: &'a ChunkManager,
    handle: ChunkHandle,
    recorded: bool,
}

impl Drop for BumpOver<'_> {
    fn drop(&mut self) {
        self.manager.map().end_bump(self.handle, self.recorded);
    }
}

/// The version after `version`; none past `ChunkVersion::MAX_ISSUED` (a
/// version that high cannot have been reached one step at a time: refuse,
/// never wrap or panic).
fn next_version(handle: ChunkHandle, version: ChunkVersion) -> Result<ChunkVersion, NsError> {
    match version.0.checked_add(1).map(ChunkVersion).filter(|v| v.in_range()) {
        Some(v) => Ok(v),
        None => Err(err(ErrorKind::EIO, format!("chunk {handle} is at the last version ({version}); it cannot take another"))),
    }
}

impl ChunkManager {
    /// Builds the chunk map from the namespace (blocking: call at start-up).
    pub fn load(store: Store, writer: Writer, config: ChunkConfig, trust: trust::Trust) -> Result<Self, NsError> {
        let mut map = ChunkMap::default();
        for (inode, index, record) in store.all_chunks()? {
            if map.file(inode).is_none() {
                let attr = store.inode(inode)?.attr;
                map.set_file(inode, FileMeta { replication: attr.replication, chunk_size: attr.chunk_size_bytes });
            }
            map.record_chunk(record.handle, ChunkMeta { inode, index, version: record.version, length: record.length });
            if !record.members.is_empty() {
                map.set_members(record.handle, record.version, record.members);
            }
        }
        store.decommissioned()?.into_iter().for_each(|n| map.set_draining(n, true));
        Ok(ChunkManager {
            map: Mutex::new(map),
            grant: tokio::sync::Mutex::new(()),
            store,
            writer,
            cs: CsClient::new(trust.auth.clone()),
            config,
            safe_mode: Mutex::new(SafeMode::start(Instant::now())),
            started: Instant::now(),
            summary: Mutex::new(monitor::PassSummary::default()),
            stats: Stats::default(),
            events: crate::events::Events::default(),
            trust,
        })
    }

    /// A file's replication changed (setattr): its chunks follow.
    pub fn file_changed(&self, attr: &dfs_common::wire::namespace::Attr) {
        let mut map = self.map();
        if map.file(attr.inode).is_some() {
            map.set_file(attr.inode, FileMeta { replication: attr.replication, chunk_size: attr.chunk_size_bytes });
        }
    }

    pub fn safe_mode_on(&self) -> bool {
        self.safe_mode.lock().unwrap_or_else(|p| p.into_inner()).is_on()
    }

    /// Ends safe mode now (an operator's call).
    pub fn leave_safe_mode(&self) {
        *self.safe_mode.lock().unwrap_or_else(|p| p.into_inner()) = SafeMode::Off;
        tracing::info!("safe mode ended by request");
        self.events.push("safe_mode_left", "safe mode ended by an operator");
    }

    pub fn replication_status(&self) -> ReplicationStatus {
        let summary = *self.summary.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.map();
        let (reported, total) = map.reported();
        ReplicationStatus {
            safe_mode: SafeModeStatus { on: self.safe_mode_on(), reported_chunks: reported, total_chunks: total, threshold: self.config.safe_mode.threshold },
            under_replicated: summary.census.under_replicated,
            missing: summary.census.missing,
            over_replicated: summary.census.over_replicated,
            copies_running: map.copies_running() as u64,
            copies_done: self.stats.copies_done.load(Ordering::Relaxed),
            copies_failed: self.stats.copies_failed.load(Ordering::Relaxed),
            deletes_waiting: map.deletes_waiting() as u64,
            deletes_sent: self.stats.deletes_sent.load(Ordering::Relaxed),
            garbage_chunks: summary.garbage_chunks,
        }
    }

    /// Starts (`on`) or ends draining the chunkserver named by id or address.
    pub async fn decommission(&self, node: &str, on: bool) -> Result<NodeId, NsError> {
        let id = {
            let map = self.map();
            let by_id = uuid::Uuid::parse_str(node).ok().map(NodeId).filter(|n| map.is_known(*n));
            by_id.or_else(|| map.node_at(node)).ok_or_else(|| err(ErrorKind::ENOENT, format!("no chunkserver {node:?}")))?
        };
        self.writer.submit(Mutation::SetDecommissioned { node: id, on }).await?;
        self.map().set_draining(id, on);
        tracing::info!(node = %id, on, "decommission changed");
        let what = if on { "decommission started" } else { "recommissioned" };
        self.events.push(if on { "decommission" } else { "recommission" }, format!("{what}: {node}"));
        Ok(id)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, ChunkMap> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in a heartbeat, unless its numbers are out of range (EINVAL),
    /// or it would move a live node's id to another address or take a live
    /// node's address (EEXIST); refused, it changes nothing (see
    /// `chunk_map::admission`).
    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatResponse, NsError> {
        let (response, newer) = {
            chunk_map::check_ranges(hb).map_err(|m| err(ErrorKind::EINVAL, m))?;
            let (now, mut map) = (Instant::now(), self.map());
            if let Err(refusal) = map.admit(hb, now, self.config.dead_after) {
                tracing::warn!(node = %hb.node_id, address = %hb.address, %refusal, "heartbeat refused");
                return Err(err(ErrorKind::EEXIST, refusal.to_string()));
            }
            map.heartbeat(hb, now)
        };
        self.stats.deletes_sent.fetch_add(response.delete.len() as u64, Ordering::Relaxed);
        for n in newer {
            // The version was handed out but not recorded before a crash: record it.
            // Who took it is not known: members stay unknown for this version.
            let m = Mutation::SetChunkVersion { inode: n.meta.inode, index: n.meta.index, version: n.reported, members: Vec::new() };
            match self.writer.submit(m).await {
                Ok(_) => self.map().adopt_version(n.handle, n.reported),
                Err(e) => tracing::warn!(chunk = %n.handle, error = %e, "recording a reported newer version failed"),
            }
        }
        Ok(response)
    }

    pub fn chunkservers(&self) -> Vec<ChunkserverInfo> {
        self.map().chunkservers(Instant::now(), self.config.dead_after)
    }

    /// Where chunks `first..first+count` of a file live.
    pub fn locate(&self, inode: InodeId, first: u64, count: usize) -> Result<ChunkLocations, NsError> {
        let file = self.store.inode(inode)?;
        if file.is_dir() {
            return Err(err(ErrorKind::EISDIR, format!("inode {inode} is a directory")));
        }
        let records = self.store.chunks_of(inode, first, count)?;
        let signer = self.token_signer();
        let (now, map) = (Instant::now(), self.map());
        let chunks = records
            .into_iter()
            .map(|(index, r)| ChunkLocation {
                index,
                handle: r.handle,
                version: r.version,
                replicas: map.current_replicas(r.handle, now, self.config.dead_after),
                length: r.length,
                token: signer.sign(r.handle, r.version, Ops::READ),
            })
            .collect();
        Ok(ChunkLocations { chunk_size_bytes: file.attr.chunk_size_bytes, chunks })
    }

    /// The health of every chunk of a file (blocking: reads the store).
    pub fn file_health(&self, path: String, attr: &dfs_common::wire::namespace::Attr) -> Result<FileHealth, NsError> {
        let mut h = FileHealth { path, inode: attr.inode, size: attr.size, replication: attr.replication, ..Default::default() };
        let mut next = Some(0);
        while let Some(first) = next {
            let records = self.store.chunks_of(attr.inode, first, 1024)?;
            let Some((last, _)) = records.last() else { break };
            next = last.checked_add(1);
            let (now, map) = (Instant::now(), self.map());
            for (index, r) in records {
                let (c, want) = (map.health(r.handle, now, self.config.dead_after), attr.replication);
                h.chunks += 1;
                h.missing += c.missing() as u64;
                h.under_replicated += c.under(want) as u64;
                h.over_replicated += c.over(want) as u64;
                h.stale += (c.stale > 0) as u64;
                h.corrupt += (c.corrupt > 0) as u64;
                if !c.healthy(want) {
                    let (live, stale, corrupt) = (c.live, c.stale, c.corrupt);
                    h.problems.push(ChunkHealth { index, handle: r.handle, version: r.version, live, stale, corrupt });
                }
            }
        }
        Ok(h)
    }

    /// A replica failed (verification, or a write forwarded to it): it is
    /// no longer handed out. A replica that failed a write keeps its version
    /// but missed bytes, so the others move to the next version at once:
    /// it is stale from then on, even when its node reports it again.
    pub async fn report_bad(&self, bad: BadReplica) -> Result<(), NsError> {
        let _one_at_a_time = self.grant.lock().await;
        let survivors = {
            let mut map = self.map();
            let node = match (bad.node_id, &bad.address) {
                (Some(n), None) => n,
                (None, Some(a)) => map.node_at(a).ok_or_else(|| err(ErrorKind::ENOENT, format!("no chunkserver at {a}")))?,
                _ => return Err(err(ErrorKind::EINVAL, "name the replica by \"node_id\" or by \"address\"")),
            };
            let current = map.chunk(bad.handle).map(|m| m.version);
            if let (Some(reporter), Some(current)) = (bad.reporter_version, current) {
                if reporter < current {
                    tracing::info!(chunk = %bad.handle, %node, %reporter, %current, "ignoring a failed-replica report from a late write");
                    return Ok(());
                }
            }
            tracing::warn!(chunk = %bad.handle, %node, corrupt = bad.corrupt, "replica reported bad");
            let held_current = current.is_some_and(|v| map.replica_version(bad.handle, node) == Some(v));
            map.drop_replica(bad.handle, node);
            if bad.corrupt {
                map.mark_corrupt(bad.handle, node);
                self.stats.corrupt_reports.fetch_add(1, Ordering::Relaxed);
                let address = map.address(node).map_or_else(|| node.to_string(), |a| a.address);
                self.events.push("corrupt", format!("chunk {} on {address} failed verification", bad.handle));
            }
            // A corrupt replica is already moved aside by its node. The
            // others are taken under the same lock as the drop: a report
            // from `node` after it must not put it back among those bumped.
            match held_current && !bad.corrupt {
                true => map.current_replicas(bad.handle, Instant::now(), self.config.dead_after),
                false => Vec::new(),
            }
        };
        match survivors.is_empty() {
            true => Ok(()),
            false => self.leave_behind(bad.handle, survivors).await,
        }
    }

    /// Moves the other current replicas of a chunk to the next version, so
    /// that the one left behind (it missed a write) is stale; the running
    /// lease, if its primary is among them, goes on at the new version.
    async fn leave_behind(&self, handle: ChunkHandle, survivors: Vec<ReplicaAddr>) -> Result<(), NsError> {
        let Some(meta) = self.map().chunk(handle) else { return Ok(()) };
        let version = next_version(handle, meta.version)?;
        let holders = self.bump(handle, meta, survivors).await?;
        let mut map = self.map();
        let Some(mut lease) = map.lease(handle) else { return Ok(()) };
        let members: Vec<NodeId> = holders.iter().map(|h| h.node_id).collect();
        match members.contains(&lease.primary) {
            true => {
                lease.version = version;
                lease.members = members;
                map.set_lease(handle, lease);
            }
            false => map.end_lease(handle),
        }
        Ok(())
    }

    /// The chunk at (inode, index) for writing, allocated if missing, with a
    /// running lease.
    pub async fn lease_for_write(&self, req: LeaseRequest) -> Result<WriteLease, NsError> {
        let _one_at_a_time = self.grant.lock().await;
        let store = self.store.clone();
        let (file, existing) = tokio::task::spawn_blocking(move || Ok::<_, NsError>((store.inode(req.inode)?, store.chunk(req.inode, req.index)?)))
            .await
            .map_err(|e| err(ErrorKind::EIO, e.to_string()))??;
        let record = match existing {
            Some(r) => r,
            None => match self.writer.submit(Mutation::AddChunk { inode: req.inode, index: req.index }).await? {
                Outcome::Chunk(r) => r,
                _ => return Err(err(ErrorKind::EIO, "allocation returned no chunk")),
            },
        };
        let chunk_size = file.attr.chunk_size_bytes;
        self.map().set_file(req.inode, FileMeta { replication: file.attr.replication, chunk_size });
        // A chunk enters the map once placed: a failed placement is retried
        // by the next lease request instead of leaving it without replicas.
        let known = self.map().chunk(record.handle).is_some();
        let mut complete = true;
        if !known {
            // Recorded first, so that its new replicas, reported before the
            // last create call returns, are never taken for garbage; taken
            // back if no replica could be made, for the next request to retry.
            self.map().record_chunk(record.handle, ChunkMeta { inode: req.inode, index: req.index, version: record.version, length: record.length });
            match self.place_new(record.clone(), file.attr.replication as usize, chunk_size).await {
                Ok(all) => complete = all,
                Err(e) => {
                    self.map().unrecord_unplaced(record.handle);
                    return Err(e);
                }
            }
        }
        let now = Instant::now();
        let current = self.map().lease(record.handle);
        if known && current.as_ref().is_none_or(|l| l.expires <= now) {
            self.may_grant(record.handle, file.attr.replication, now)?;
        }
        let decision = {
            let map = self.map();
            let version = current.as_ref().map(|l| l.version).unwrap_or(record.version);
            let usable = |n| map.holds(record.handle, n, version, now, self.config.dead_after);
            decide(current.as_ref(), usable, |n| map.is_live(n, now, self.config.dead_after), now)
        };
        let lease = match decision {
            LeaseDecision::Keep(l) => Lease { expires: now + self.config.lease, ..l },
            LeaseDecision::WaitUntil(t) => {
                let ms = t.saturating_duration_since(now).as_millis();
                return Err(err(ErrorKind::EAGAIN, format!("the chunk's primary is unreachable; its lease ends in {ms} ms")));
            }
            LeaseDecision::Grant { primary } => self.grant(record.clone(), primary, known || !complete).await?,
        };
        self.map().set_lease(record.handle, lease.clone());
        self.lease_answer(record.handle, lease, chunk_size, now)
    }

    /// Whether a new lease may be granted on a chunk that has history: not
    /// while a copy of it is being made (the lease would bump the version
    /// under the copy, as a writer that keeps a chunk leased would forever),
    /// nor in safe mode before all its replicas have reported (the first to
    /// report may be one that lost its last writes, and a lease would make
    /// the others stale). Both are temporary: the client retries.
    fn may_grant(&self, handle: ChunkHandle, replication: u16, now: Instant) -> Result<(), NsError> {
        let map = self.map();
        if map.is_copying(handle) {
            return Err(err(ErrorKind::EAGAIN, format!("chunk {handle} is being re-replicated")));
        }
        let reported = map.current_replicas(handle, now, self.config.dead_after).len();
        if self.safe_mode_on() && reported < replication as usize {
            return Err(err(ErrorKind::EAGAIN, format!("safe mode: {reported} of {replication} replicas of chunk {handle} reported")));
        }
        Ok(())
    }

    /// A commit raised chunks' committed lengths.
    pub fn lengths_committed(&self, ranges: &[crate::store::mutations::WrittenRange]) {
        let mut map = self.map();
        ranges.iter().for_each(|r| map.raise_length(r.handle, r.end));
    }

    /// Creates the replicas of a newly allocated chunk; whether every
    /// target created its replica.
    async fn place_new(&self, record: ChunkRecord, replication: usize, chunk_size: u64) -> Result<bool, NsError> {
        let now = Instant::now();
        let (live, targets): (usize, Vec<ReplicaAddr>) = {
            let mut map = self.map();
            let candidates = map.candidates(now, self.config.dead_after);
            let chosen = placement::choose(&candidates, replication, chunk_size);
            chosen.iter().for_each(|n| map.reserve(*n, chunk_size));
            (candidates.len(), chosen.into_iter().filter_map(|n| map.address(n)).collect())
        };
        if live == 0 {
            // Temporary: chunkservers may be restarting; clients retry.
            return Err(err(ErrorKind::EAGAIN, "no chunkserver is live"));
        }
        if targets.is_empty() {
            return Err(err(ErrorKind::ENOSPC, "no live chunkserver has room for a new chunk"));
        }
        let calls = targets.iter().map(|t| self.cs.create(&t.address, record.handle, record.version, chunk_size));
        let results = join_all(calls).await;
        let mut map = self.map();
        let mut placed = Vec::new();
        for (t, result) in targets.iter().zip(results) {
            match result {
                Ok(()) => {
                    map.add_replica(record.handle, t.node_id, record.version);
                    placed.push(t.node_id);
                }
                Err(e) => tracing::warn!(chunk = %record.handle, error = %e, "creating a replica failed"),
            }
        }
        let placed_all = placed.len() == targets.len();
        map.set_members(record.handle, record.version, placed.iter().copied());
        if placed.is_empty() {
            return Err(err(ErrorKind::EIO, format!("no chunkserver could create chunk {}", record.handle)));
        }
        Ok(placed_all)
    }

    /// A new lease. The current replicas move to the next version (those
    /// that fail to are stale from then on), then the version is recorded.
    /// A chunk just placed on every target keeps its first version, as it
    /// has no history; one whose placement missed a target is bumped too,
    /// since that target may still create its replica late, empty.
    async fn grant(&self, record: ChunkRecord, primary: Option<NodeId>, bump: bool) -> Result<Lease, NsError> {
        let now = Instant::now();
        let meta = self.map().chunk(record.handle).ok_or_else(|| err(ErrorKind::EIO, format!("chunk {} is not in the map", record.handle)))?;
        let (version, holders) = match bump {
            true => {
                let replicas = self.map().current_replicas(record.handle, now, self.config.dead_after);
                (next_version(record.handle, meta.version)?, self.bump(record.handle, meta, replicas).await?)
            }
            false => (meta.version, self.map().current_replicas(record.handle, now, self.config.dead_after)),
        };
        if holders.is_empty() {
            return Err(err(ErrorKind::EIO, format!("chunk {} has no live current replica", record.handle)));
        }
        let primary = primary.filter(|p| holders.iter().any(|h| h.node_id == *p)).unwrap_or(holders[0].node_id);
        let members = holders.iter().map(|h| h.node_id).collect();
        self.stats.leases_granted.fetch_add(1, Ordering::Relaxed);
        Ok(Lease { primary, version, expires: now + self.config.lease, members })
    }

    /// Fences a chunk before a copy: its current replicas move to the next
    /// version, so that a write still in flight under a lease that has run
    /// out (a slow client, a frozen primary, a lease granted before this
    /// master started) is refused by every replica, instead of landing on
    /// the source after the copy has read past it and leaving the copy
    /// different at the same version. Refused once the version has moved
    /// past `planned`; the new version otherwise.
    ///
    /// A running lease is revoked by the same fence (a writer may keep a
    /// chunk leased for hours; its chunk must not stay under-replicated
    /// meanwhile): its next write names the old version, is refused, and its
    /// next lease waits for the copy (`may_grant`), then includes the copy.
    pub(super) async fn fence_for_copy(&self, handle: ChunkHandle, planned: ChunkVersion) -> Result<ChunkVersion, NsError> {
        let _one_at_a_time = self.grant.lock().await;
        let now = Instant::now();
        if self.map().lease(handle).is_some_and(|l| l.expires > now) {
            tracing::info!(chunk = %handle, "revoking a lease to re-replicate the chunk");
            self.map().end_lease(handle);
        }
        let meta = self.map().chunk(handle).ok_or_else(|| err(ErrorKind::ENOENT, format!("chunk {handle} is gone")))?;
        if meta.version != planned {
            return Err(err(ErrorKind::EAGAIN, format!("chunk {handle} moved past version {planned}")));
        }
        let replicas = self.map().current_replicas(handle, now, self.config.dead_after);
        self.bump(handle, meta, replicas).await?;
        next_version(handle, meta.version)
    }

    /// Moves these replicas of a chunk to the next version and records it
    /// (durably); the replicas that took it. Those that fail are stale.
    async fn bump(&self, handle: ChunkHandle, meta: ChunkMeta, replicas: Vec<ReplicaAddr>) -> Result<Vec<ReplicaAddr>, NsError> {
        if replicas.is_empty() {
            return Err(err(ErrorKind::EIO, format!("chunk {handle} has no live current replica")));
        }
        let version = next_version(handle, meta.version)?;
        // Reports of the new version from these nodes are expected until it
        // is recorded; from any other node it was never issued.
        self.map().start_bump(handle, version, replicas.iter().map(|r| r.node_id).collect());
        let mut over = BumpOver { manager: self, handle, recorded: false };
        let bumped = self.hand_out(handle, meta, version, replicas).await;
        over.recorded = bumped.is_ok();
        bumped
    }

    /// The body of `bump`: the calls, then the record.
    async fn hand_out(&self, handle: ChunkHandle, meta: ChunkMeta, version: ChunkVersion, replicas: Vec<ReplicaAddr>) -> Result<Vec<ReplicaAddr>, NsError> {
        let results = join_all(replicas.iter().map(|r| self.cs.set_version(&r.address, handle, version))).await;
        let mut holders = Vec::new();
        for (r, result) in replicas.into_iter().zip(results) {
            match result {
                Ok(()) => holders.push(r),
                Err(e) => tracing::warn!(chunk = %handle, error = %e, "replica missed a version bump"),
            }
        }
        if holders.is_empty() {
            return Err(err(ErrorKind::EIO, format!("no replica of chunk {handle} took version {version}")));
        }
        let members = holders.iter().map(|h| h.node_id).collect();
        self.writer.submit(Mutation::SetChunkVersion { inode: meta.inode, index: meta.index, version, members }).await?;
        let mut map = self.map();
        map.set_version(handle, version);
        holders.iter().for_each(|h| map.add_replica(handle, h.node_id, version));
        map.set_members(handle, version, holders.iter().map(|h| h.node_id));
        map.drop_non_members(handle, version);
        Ok(holders)
    }

    fn lease_answer(&self, handle: ChunkHandle, lease: Lease, chunk_size: u64, now: Instant) -> Result<WriteLease, NsError> {
        let map = self.map();
        let replicas = map.current_replicas(handle, now, self.config.dead_after);
        let primary = replicas.iter().find(|r| r.node_id == lease.primary).cloned().ok_or_else(|| err(ErrorKind::EIO, "the lease's primary is gone"))?;
        let secondaries = replicas.into_iter().filter(|r| r.node_id != lease.primary).collect();
        Ok(WriteLease {
            handle,
            version: lease.version,
            chunk_size_bytes: chunk_size,
            primary,
            secondaries,
            lease_remaining_ms: lease.expires.saturating_duration_since(now).as_millis() as u64,
            token: self.token_signer().sign(handle, lease.version, Ops::READ_WRITE),
        })
    }
}
