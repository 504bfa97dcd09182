//! Applying mutations, one at a time, with group commit. A request queues
//! its mutation; if nobody is applying, the request leads: on its own
//! thread it applies every queued mutation, each as its own atomic batch,
//! syncs the metadata log once for the whole group and only then answers
//! them. Requests that arrive meanwhile wait for the next group. (On a
//! Raft leader the sync is a proposal instead: see [`Commit`]; its groups
//! are led on blocking threads, since they wait for the network.)
//!
//! Why the request's own thread: handing each mutation to a writer thread
//! and the answer back cost two thread wake-ups (~50 µs on a 2-core VM, a
//! third of a lone create). The leader blocks its runtime worker for that
//! one group (a log sync, ~100 µs): `block_in_place`, which hands the
//! worker's queue to another thread first, cost ~25 µs more per lone create
//! than the sync it guards (A/B, 3 rounds). Meanwhile the other workers
//! steal the blocked worker's queued tasks, and at most one worker blocks:
//! there is one leader at a time. When more work is queued behind a group,
//! or removed subtrees are waiting to be freed, a background thread takes
//! the lead instead, so no request's answer waits for others' groups and
//! no worker stays blocked for more than one group.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use dfs_proto::wire::namespace::Attr;
use dfs_proto::{ChunkHandle, ErrorKind};
use tokio::sync::oneshot;

use super::db::{now_ns, Store};
use super::error::NsError;
use super::held::Held;
use super::mutations::{apply, reap_step, Defaults, Mutation, Outcome};
use super::perms::Who;
use super::records::Counters;
use super::retries::{remember, CallKey};
use super::txn::Txn;

/// Tuning of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    pub defaults: Defaults,
    /// Most mutations that share one log sync.
    pub group_max: usize,
    /// Most entries the reaper frees in one step.
    pub reap_batch: usize,
    /// How long a silent client session holds its open files (`held.rs`).
    pub open_files_timeout: std::time::Duration,
}

#[cfg(test)]
impl WriterConfig {
    /// 3 replicas, 64 MiB chunks, groups of 64, reaper steps of 7.
    pub(crate) fn for_tests() -> WriterConfig {
        WriterConfig {
            defaults: Defaults { replication: 3, chunk_size_bytes: 64 << 20 },
            group_max: 64,
            reap_batch: 7,
            open_files_timeout: super::held::SESSION_TIMEOUT,
        }
    }
}

/// How a group of mutations (or a reaper step) is made durable before it
/// is answered.
pub trait Commit: Send + Sync {
    /// Makes what the writer wrote since the last call durable; an error
    /// fails the group, and nothing of it may be durable but through a
    /// retry cache's eyes (the caller's retry gets the first answer).
    fn commit(&self, store: &Store) -> Result<(), NsError>;
    /// Whether `commit` blocks for long (a network round): the group is
    /// then never led on a runtime worker.
    fn blocks(&self) -> bool;
    /// The era in which this master may decide groups now (a single
    /// master: always 0; a Raft leader: its term, and entries resolved
    /// late in it). At each new era the writer reads its counters again:
    /// others' groups moved them. An error (another master leads, this one
    /// has not applied all before its term yet, or an entry of its own is
    /// unresolved) fails the group before anything of it is decided.
    fn lead(&self) -> Result<u64, NsError> {
        Ok(0)
    }
}

/// A single master: one sync of the metadata log.
struct LogSync;

impl Commit for LogSync {
    fn commit(&self, store: &Store) -> Result<(), NsError> {
        store.sync()
    }

    fn blocks(&self) -> bool {
        false
    }
}

/// A mutation's outcome and the directories it changed (as they are after it).
pub type Applied = (Outcome, Vec<Attr>);

type Reply = oneshot::Sender<Result<Applied, NsError>>;

/// A queued mutation: what, as whom, under which call id (retries).
type Queued = (Mutation, Who, Option<CallKey>, Reply);

/// Handle for submitting mutations; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    config: WriterConfig,
    state: Mutex<State>,
    /// Signalled when the lead is given up (for `close`).
    idle: Condvar,
    /// Touched by the leader only.
    counters: Mutex<Counters>,
    /// Told of the chunks each group made garbage, once it is durable.
    on_dropped: Mutex<Option<DroppedHook>>,
    /// The files clients hold open.
    held: Arc<Held>,
    commit: Arc<dyn Commit>,
    /// The era the counters were read in (`Commit::lead`).
    counted_term: Mutex<Option<u64>>,
}

/// Receives the chunks a durable group of mutations made garbage.
pub type DroppedHook = Box<dyn Fn(Vec<ChunkHandle>) + Send + Sync>;

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Someone is applying mutations (or freeing a removed subtree).
    leading: bool,
    /// No more mutations are taken.
    closed: bool,
    /// Freeing removed subtrees failed, or found none although counted:
    /// not tried again before the next group.
    reaper_halted: bool,
}

fn gone() -> NsError {
    NsError::new(ErrorKind::EIO, "the namespace writer has stopped")
}

impl Writer {
    /// Starts the writer; it frees removed subtrees left from a previous run
    /// in the background.
    pub fn start(store: Store, config: WriterConfig) -> Result<Writer, NsError> {
        Writer::start_committing(store, config, Arc::new(LogSync))
    }

    /// As `start`, with groups made durable by `commit` (a Raft leader's:
    /// `store` has pending writes, and `commit` proposes them).
    pub fn start_committing(store: Store, config: WriterConfig, commit: Arc<dyn Commit>) -> Result<Writer, NsError> {
        let counters = store.counters()?;
        let reaping = counters.pending_delete > 0;
        let counted_term = Mutex::new(commit.lead().ok());
        let shared = Shared {
            store,
            config,
            state: Mutex::default(),
            idle: Condvar::new(),
            counters: Mutex::new(counters),
            on_dropped: Mutex::new(None),
            held: Arc::new(Held::new(config.open_files_timeout)),
            commit,
            counted_term,
        };
        let writer = Writer { shared: Arc::new(shared) };
        if reaping {
            writer.shared.lock().leading = true;
            writer.lead_in_background();
        }
        Ok(writer)
    }

    /// Applies `m` as the master itself and returns once it is durable.
    pub async fn submit(&self, m: Mutation) -> Result<Outcome, NsError> {
        self.submit_changed(m).await.map(|(outcome, _)| outcome)
    }

    /// As `submit`, with the directories the mutation changed.
    pub async fn submit_changed(&self, m: Mutation) -> Result<Applied, NsError> {
        self.submit_as(Who::root(), m).await
    }

    /// Applies `m` with the permissions of `who`; answers once durable,
    /// with the directories the mutation changed.
    pub async fn submit_as(&self, who: Who, m: Mutation) -> Result<Applied, NsError> {
        self.submit_call(who, m, None).await
    }

    /// As `submit_as`; a `call` applied before (a client's retry) gets the
    /// answer it got then, nothing applied again (`retries.rs`).
    pub async fn submit_call(&self, who: Who, m: Mutation, call: Option<CallKey>) -> Result<Applied, NsError> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(gone());
            }
            state.queue.push_back((m, who, call, reply));
            !std::mem::replace(&mut state.leading, true)
        };
        if lead {
            self.lead_here().await;
        }
        answer.await.map_err(|_| gone())?
    }

    /// Has `hook` told of the chunks every later durable group (or reaper
    /// step) made garbage: chunk management learns of garbage when it is
    /// committed, instead of polling the store for it.
    pub fn on_chunks_dropped(&self, hook: DroppedHook) {
        *self.shared.on_dropped.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// What requests that leave them out get (replication, chunk size).
    pub fn defaults(&self) -> crate::store::mutations::Defaults {
        self.shared.config.defaults
    }

    /// The files clients hold open: a file held loses its last name
    /// without being freed (see `held.rs`).
    pub fn held(&self) -> Arc<Held> {
        self.shared.held.clone()
    }

    /// Stops taking mutations and waits until the one leading is done.
    /// Everything answered is durable already.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        while state.leading {
            state = self.shared.idle.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Leads one group on this thread (where other runtime workers can go
    /// on meanwhile), then hands the lead to the background if work is left.
    async fn lead_here(&self) {
        let on_workers = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread && h.metrics().num_workers() > 1);
        if !on_workers || self.shared.commit.blocks() {
            let shared = self.shared.clone();
            if tokio::task::spawn_blocking(move || shared.lead_until_idle()).await.is_err() {
                tracing::error!("the namespace writer failed");
            }
            return;
        }
        if self.shared.lead_one_group() {
            self.lead_in_background();
        }
    }

    fn lead_in_background(&self) {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.lead_until_idle());
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies and answers one group; gives up the lead unless more work
    /// is waiting (returns whether it is).
    fn lead_one_group(&self) -> bool {
        let _guard = PanicGuard(self);
        self.apply_group(self.next_group());
        self.release_unless_busy()
    }

    /// Leads until nothing is queued and no removed subtree is left to
    /// free (or the writer is closed).
    fn lead_until_idle(&self) {
        let _guard = PanicGuard(self);
        loop {
            let group = self.next_group();
            if !group.is_empty() {
                self.apply_group(group);
            } else if self.reaping() {
                self.reap();
            }
            if !self.release_unless_busy() {
                return;
            }
        }
    }

    /// The queued mutations of the next group (at most `group_max`).
    fn next_group(&self) -> Vec<Queued> {
        let mut state = self.lock();
        let n = state.queue.len().min(self.config.group_max);
        state.queue.drain(..n).collect()
    }

    /// Whether a removed subtree waits to be freed (and may be, now).
    fn reaping(&self) -> bool {
        let pending = self.counters().pending_delete > 0;
        let state = self.lock();
        pending && !state.reaper_halted && !state.closed
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives up the lead, unless mutations are queued or a removed subtree
    /// waits to be freed: then keeps it and returns true.
    fn release_unless_busy(&self) -> bool {
        let reaping = self.reaping();
        let mut state = self.lock();
        if !state.queue.is_empty() || reaping {
            return true;
        }
        state.leading = false;
        self.idle.notify_all();
        false
    }

    fn apply_group(&self, group: Vec<Queued>) {
        if let Err(e) = self.follow_term() {
            for (.., reply) in group {
                let _ = reply.send(Err(e.clone())); // the caller may have gone
            }
            return;
        }
        let mut dropped = Vec::new();
        let results: Vec<_> = {
            let mut counters = self.counters();
            group
                .iter()
                .map(|(m, who, call, _)| apply_one(&self.store, &self.held, &mut counters, (m, who, call.as_ref()), &self.config, &mut dropped))
                .collect()
        };
        let synced = self.commit();
        match synced {
            Ok(()) => self.tell_dropped(dropped),
            Err(_) => self.recount(),
        }
        // New removals may be what a halted reaper was missing: try again.
        self.lock().reaper_halted = false;
        for ((.., reply), result) in group.into_iter().zip(results) {
            let answer = match (&synced, result) {
                (Err(e), Ok(_)) => Err(e.clone()),
                (_, r) => r,
            };
            let _ = reply.send(answer); // the caller may have gone; nothing to do
        }
    }

    /// Makes the writes so far durable. With pending writes (a Raft
    /// leader), those of a failed commit are dropped.
    fn commit(&self) -> Result<(), NsError> {
        let committed = self.commit.commit(&self.store);
        if committed.is_err() && self.store.has_pending() {
            let _ = self.store.take_pending();
        }
        committed
    }

    /// Checks that this master may decide groups now; at a new term, reads
    /// the counters again first.
    fn follow_term(&self) -> Result<(), NsError> {
        let term = self.commit.lead()?;
        let mut counted = self.counted_term.lock().unwrap_or_else(|p| p.into_inner());
        if *counted != Some(term) {
            *self.counters() = self.store.counters()?;
            *counted = Some(term);
        }
        Ok(())
    }

    /// The counters as the store has them, after a group failed to commit
    /// on a Raft leader: they counted the group's dropped writes.
    fn recount(&self) {
        if !self.store.has_pending() {
            return; // a single master's failed sync: the writes are in RocksDB
        }
        match self.store.counters() {
            Ok(c) => *self.counters() = c,
            Err(e) => tracing::error!(error = %e, "the namespace counters could not be read again"),
        }
    }

    /// Hands garbage made durable to the hook, if one is set.
    fn tell_dropped(&self, dropped: Vec<ChunkHandle>) {
        if dropped.is_empty() {
            return;
        }
        if let Some(hook) = self.on_dropped.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            hook(dropped);
        }
    }

    /// One reaper step, made durable.
    fn reap(&self) {
        if let Err(e) = self.follow_term() {
            tracing::debug!(error = %e, "not freeing removed subtrees: this master does not lead");
            self.lock().reaper_halted = true;
            return;
        }
        let mut counters = self.counters();
        let mut txn = Txn::new(&self.store, *counters, now_ns()).keeping_open(&self.held);
        let step = reap_step(&mut txn, self.config.reap_batch).and_then(|more| Ok((more, txn.take_dropped(), txn.commit()?)));
        let halt = match step.and_then(|(more, d, c)| self.commit().map(|_| (more, d, c))) {
            Ok((more, dropped, c)) => {
                *counters = c;
                self.tell_dropped(dropped);
                !more
            }
            Err(e) => {
                // Halt until the next group rather than spin on a damaged entry.
                tracing::error!(error = %e, "freeing a removed subtree failed");
                true
            }
        };
        drop(counters);
        if halt {
            self.lock().reaper_halted = true;
        }
    }
}

/// If the leader panics, the lead is given up and the queued requests
/// are failed, so later ones are not left waiting for a leader.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.lock();
            state.queue.clear(); // dropping the replies fails their requests
            state.leading = false;
            self.0.idle.notify_all();
        }
    }
}

fn apply_one(
    store: &Store,
    held: &Held,
    counters: &mut Counters,
    (m, who, call): (&Mutation, &Who, Option<&CallKey>),
    config: &WriterConfig,
    dropped: &mut Vec<ChunkHandle>,
) -> Result<Applied, NsError> {
    let now = now_ns();
    // A retry of a call applied before: its answer (durable with it, or
    // made so by this group's sync).
    if let Some(kept) = call.map(|c| store.retried(c, now)).transpose()?.flatten() {
        return Ok(kept);
    }
    let mut txn = Txn::new(store, *counters, now).keeping_open(held);
    let outcome = apply(&mut txn, m, &config.defaults, who)?;
    let applied = (outcome, txn.changed_dirs());
    if let Some(c) = call {
        remember(&mut txn, c, &applied)?;
    }
    let garbage = txn.take_dropped();
    *counters = txn.commit()?;
    dropped.extend(garbage);
    Ok(applied)
}
