//! Chunk management on the master: chunkserver registry and failure
//! detection, placement, leases and versions, re-replication, garbage
//! collection, safe mode and decommissioning. Decisions are pure functions
//! ([`liveness`], [`placement`], [`lease`], [`replication`], [`safe_mode`],
//! [`gc`]); the [`engine`] sequences them as a state machine without I/O;
//! [`ChunkManager`] drives it: it feeds it events and executes its commands.
//!
//! - [`chunk_map`]: the soft state (nodes, replicas, leases, copies).
//! - [`engine`]: events in, commands out; per-chunk operations.
//! - [`monitor`]: the timer that ticks the engine.
//! - [`cs_client`]: master → chunkserver calls.
//! - [`trust`]: cluster ids, heartbeat answers' keys and peers, chunk
//!   tokens, clients' bad-replica reports.
//! - [`views`]: read-only snapshots for the dashboard and `/metrics`.

pub mod chunk_map;
pub mod cs_client;
pub mod engine;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gc;
pub mod lease;
pub mod liveness;
pub mod monitor;
pub mod placement;
pub mod replication;
pub mod safe_mode;
pub mod trust;
pub mod views;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use dfs_proto::auth::Ops;
// Tasks started for a request keep its span and id (chunkservers log the same id).
use dfs_proto::wire::chunks::*;
use dfs_proto::wire::namespace::{ChunkHealth, FileHealth};
use dfs_proto::{ChunkHandle, ErrorKind, InodeId, NodeId};
use dfs_server_kit::http::request_id;
use tokio::sync::oneshot;

use crate::store::db::now_ns;
use crate::store::{Mutation, NsError, Outcome, Store, Writer};
use chunk_map::{ChunkMap, ChunkMeta, FileMeta};
use cs_client::CsClient;
use engine::{Answer, Command, Engine, Event, Granted, LeaseAsk, ReqId};

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

/// Drives the [`engine`]: feeds it requests, call answers, store results
/// and ticks, and executes its commands (chunkserver calls and store writes
/// on their own tasks, answers to the requests waiting). The engine's lock
/// is held only while it takes one event, never across I/O.
pub struct ChunkManager {
    engine: Mutex<Engine>,
    /// Requests waiting for the engine's answer.
    waiting: Mutex<HashMap<ReqId, oneshot::Sender<Answer>>>,
    next_req: AtomicU64,
    store: Store,
    writer: Writer,
    cs: CsClient,
    config: ChunkConfig,
    /// This master manages chunks (it leads the masters, or is the only
    /// one); else heartbeats go elsewhere and it sends no command.
    active: AtomicBool,
    /// Recent events (nodes lost and back, corruption, repairs) for the dashboard.
    pub events: crate::events::Events,
    /// The cluster key, id and token keys.
    trust: trust::Trust,
    /// This manager, for the tasks it starts: they must not keep it (and
    /// its Writer handle) alive past shutdown.
    me: Weak<ChunkManager>,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> NsError {
    NsError::new(kind, message)
}

/// The chunk map under the engine's lock, for reading.
pub struct MapRef<'a>(MutexGuard<'a, Engine>);

impl std::ops::Deref for MapRef<'_> {
    type Target = ChunkMap;
    fn deref(&self) -> &ChunkMap {
        self.0.map()
    }
}

/// An answer owed to the engine (see `ChunkManager::pending`).
struct Pending {
    me: Weak<ChunkManager>,
    failed: Option<Event>,
}

impl Pending {
    fn answer(mut self, event: Event) {
        self.failed = None;
        if let Some(m) = self.me.upgrade() {
            m.run(event);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let (Some(event), Some(m)) = (self.failed.take(), self.me.upgrade()) {
            m.run(event);
        }
    }
}

fn stopped() -> NsError {
    err(ErrorKind::EIO, "chunk management stopped")
}

impl ChunkManager {
    /// Builds the chunk map from the namespace, with the garbage it holds
    /// (blocking: call at start-up); later garbage comes from the writer as
    /// it commits.
    pub fn load(store: Store, writer: Writer, config: ChunkConfig, trust: trust::Trust) -> Result<Arc<Self>, NsError> {
        let engine = Self::engine_from(&store, config)?;
        let manager = Arc::new_cyclic(|me| ChunkManager {
            engine: Mutex::new(engine),
            waiting: Mutex::default(),
            next_req: AtomicU64::new(1),
            store,
            writer: writer.clone(),
            cs: CsClient::new(trust.auth.clone()),
            config,
            active: AtomicBool::new(true),
            events: crate::events::Events::default(),
            trust,
            me: me.clone(),
        });
        let me = Arc::downgrade(&manager);
        writer.on_chunks_dropped(Box::new(move |handles| {
            if let Some(m) = me.upgrade() {
                m.run(Event::ChunksRemoved { chunks: handles.into_iter().map(|h| (h, Duration::ZERO)).collect() });
            }
        }));
        Ok(manager)
    }

    /// A new engine over the chunk map the namespace in `store` makes,
    /// with the garbage it holds, in safe mode (blocking).
    fn engine_from(store: &Store, config: ChunkConfig) -> Result<Engine, NsError> {
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
        map.set_restored(store.restored()?);
        let now = Instant::now();
        let mut engine = Engine::new(map, config, now);
        let now_ns = now_ns();
        let age = |at: i64| Duration::from_nanos(now_ns.saturating_sub(at).max(0) as u64);
        let garbage = store.deleted_chunks(usize::MAX)?.into_iter().map(|(h, at)| (h, age(at))).collect();
        engine.step(now, Event::ChunksRemoved { chunks: garbage });
        Ok(engine)
    }

    /// Starts managing chunks anew from the namespace as this master's store
    /// has it (blocking): a master that has just become the masters' leader.
    /// Replicas are learnt again from the chunkservers' reports, in safe
    /// mode, as at a start; the requests of the engine before are failed.
    pub fn take_over(&self) -> Result<(), NsError> {
        let engine = Self::engine_from(&self.store, self.config)?;
        *self.engine() = engine;
        self.fail_waiting();
        self.active.store(true, Ordering::Release);
        tracing::info!("chunk management taken over from the namespace");
        Ok(())
    }

    /// Stops sending commands and taking ticks: another master leads.
    pub fn stand_by(&self) {
        self.active.store(false, Ordering::Release);
        self.fail_waiting();
    }

    /// Fails the requests waiting for an engine that is gone or stands by
    /// (dropping their senders: "chunk management stopped"); the client
    /// asks again, at the leader.
    fn fail_waiting(&self) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Whether this master manages chunks now.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn map(&self) -> MapRef<'_> {
        MapRef(self.engine())
    }

    /// Has the engine take `event` now, and executes its commands.
    fn run(&self, event: Event) {
        let commands = self.engine().step(Instant::now(), event);
        commands.into_iter().for_each(|c| self.execute(c));
    }

    /// Asks the engine and waits for its answer.
    async fn ask(&self, event: impl FnOnce(ReqId) -> Event) -> Answer {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(req, tx);
        self.run(event(req));
        rx.await.unwrap_or(Answer::Done(Err(stopped())))
    }

    fn execute(&self, command: Command) {
        let cs = self.cs.clone();
        let ours = matches!(command, Command::Reply { .. } | Command::Note { .. });
        if !ours && !self.is_active() {
            // Standing by: the leader commands the chunkservers.
            return;
        }
        match command {
            Command::Reply { req, answer } => {
                if let Some(tx) = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&req) {
                    let _ = tx.send(answer); // the caller may have gone
                }
            }
            Command::Note { kind, message } => self.events.push(kind, message),
            Command::Create { op, node, address, handle, version, chunk_size } => {
                let pending = self.pending(Event::Created { op, node, ok: false });
                request_id::spawn(async move {
                    let result = cs.create(&address, handle, version, chunk_size).await;
                    if let Err(e) = &result {
                        tracing::warn!(chunk = %handle, error = %e, "creating a replica failed");
                    }
                    pending.answer(Event::Created { op, node, ok: result.is_ok() });
                });
            }
            Command::SetVersion { op, node, address, handle, version } => {
                let pending = self.pending(Event::VersionSet { op, node, ok: false });
                request_id::spawn(async move {
                    let result = cs.set_version(&address, handle, version).await;
                    if let Err(e) = &result {
                        tracing::warn!(chunk = %handle, error = %e, "replica missed a version bump");
                    }
                    pending.answer(Event::VersionSet { op, node, ok: result.is_ok() });
                });
            }
            Command::Replicate { op, target, source, handle, version, chunk_size } => {
                let pending = self.pending(Event::Copied { op, result: Err(cs_client::CallError::lost("the copy's task ended without an answer")) });
                request_id::spawn(async move {
                    let result = cs.replicate(&target, handle, &source, version, chunk_size).await;
                    pending.answer(Event::Copied { op, result });
                });
            }
            Command::Store { op, mutation } => {
                let pending = self.pending(Event::Stored { op, result: Err(stopped()) });
                let writer = self.writer.clone();
                request_id::spawn(async move {
                    let result = writer.submit(mutation).await.map(|_| ());
                    pending.answer(Event::Stored { op, result });
                });
            }
        }
    }

    /// The answer owed to the engine by a task about to start: `failed`
    /// unless the task answers (a task that panics or is dropped must not
    /// leave its chunk busy for ever).
    fn pending(&self, failed: Event) -> Pending {
        Pending { me: self.me.clone(), failed: Some(failed) }
    }

    /// A concat moved chunks to `attr`'s file, at these indexes.
    pub fn chunks_moved(&self, attr: &dfs_proto::wire::namespace::Attr, moves: Vec<(ChunkHandle, u64)>) {
        let file = FileMeta { replication: attr.replication, chunk_size: attr.chunk_size_bytes };
        self.run(Event::ChunksMoved { inode: attr.inode, file, moves });
    }

    /// A file's replication changed (setattr): its chunks follow.
    pub fn file_changed(&self, attr: &dfs_proto::wire::namespace::Attr) {
        let file = FileMeta { replication: attr.replication, chunk_size: attr.chunk_size_bytes };
        self.run(Event::FileChanged { inode: attr.inode, file });
    }

    pub fn safe_mode_on(&self) -> bool {
        self.engine().safe_mode_on()
    }

    /// Ends safe mode now (an operator's call).
    pub fn leave_safe_mode(&self) {
        self.run(Event::LeaveSafeMode);
    }

    pub fn replication_status(&self) -> ReplicationStatus {
        let engine = self.engine();
        let (summary, map, stats) = (engine.summary(), engine.map(), engine.stats_handle());
        let (reported, total) = map.reported();
        ReplicationStatus {
            safe_mode: SafeModeStatus { on: engine.safe_mode_on(), reported_chunks: reported, total_chunks: total, threshold: self.config.safe_mode.threshold },
            under_replicated: summary.census.under_replicated,
            missing: summary.census.missing,
            over_replicated: summary.census.over_replicated,
            copies_running: map.copies_running() as u64,
            copies_done: stats.copies_done.load(Ordering::Relaxed),
            copies_failed: stats.copies_failed.load(Ordering::Relaxed),
            deletes_waiting: map.deletes_waiting() as u64,
            deletes_sent: stats.deletes_sent.load(Ordering::Relaxed),
            garbage_chunks: engine.garbage_waiting() as u64,
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
        self.run(Event::Decommission { node: id, on });
        tracing::info!(node = %id, on, "decommission changed");
        let what = if on { "decommission started" } else { "recommissioned" };
        self.events.push(if on { "decommission" } else { "recommission" }, format!("{what}: {node}"));
        Ok(id)
    }

    /// Takes in a heartbeat, unless its numbers are out of range (EINVAL),
    /// or it would move a live node's id to another address or take a live
    /// node's address (EEXIST); refused, it changes nothing (see
    /// `chunk_map::admission`).
    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatResponse, NsError> {
        match self.ask(|req| Event::Heartbeat { req, hb: Box::new(hb.clone()) }).await {
            Answer::Heartbeat(r) => r,
            Answer::Done(Err(e)) => Err(e),
            _ => Err(err(ErrorKind::EIO, "a heartbeat got another answer")),
        }
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
    pub fn file_health(&self, path: String, attr: &dfs_proto::wire::namespace::Attr) -> Result<FileHealth, NsError> {
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

    /// A chunkserver reports a replica bad (see `engine::requests`).
    pub async fn report_bad(&self, bad: BadReplica) -> Result<(), NsError> {
        match self.ask(|req| Event::BadReplica { req, bad }).await {
            Answer::Done(r) => r,
            _ => Err(err(ErrorKind::EIO, "a bad-replica report got another answer")),
        }
    }

    /// The chunk at (inode, index) for writing, allocated if missing, with a
    /// running lease.
    pub async fn lease_for_write(&self, req: LeaseRequest) -> Result<WriteLease, NsError> {
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
        let file = FileMeta { replication: file.attr.replication, chunk_size: file.attr.chunk_size_bytes };
        let ask = LeaseAsk { inode: req.inode, index: req.index, handle: record.handle, version: record.version, length: record.length, file };
        match self.ask(|req| Event::Lease { req, ask }).await {
            Answer::Lease(r) => r.map(|g| self.write_lease(g)),
            Answer::Done(Err(e)) => Err(e),
            _ => Err(err(ErrorKind::EIO, "a lease request got another answer")),
        }
    }

    fn write_lease(&self, g: Granted) -> WriteLease {
        WriteLease {
            handle: g.handle,
            version: g.version,
            chunk_size_bytes: g.chunk_size,
            primary: g.primary,
            secondaries: g.secondaries,
            lease_remaining_ms: g.remaining.as_millis() as u64,
            token: self.token_signer().sign(g.handle, g.version, Ops::READ_WRITE),
        }
    }

    /// A commit raised chunks' committed lengths.
    pub fn lengths_committed(&self, ranges: &[crate::store::mutations::WrittenRange]) {
        self.run(Event::LengthsCommitted { ends: ranges.iter().map(|r| (r.handle, r.end)).collect() });
    }

    /// One pass of the background work (see `engine::tick`).
    pub fn tick(&self) {
        if self.is_active() {
            self.run(Event::Tick);
        }
    }
}
