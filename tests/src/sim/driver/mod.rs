//! The run: one seed, one world (the engine, chunkservers, network,
//! namespace, writers), one event queue. Each event is handled, the engine
//! steps as the real driver (`ChunkManager`) would step it, its commands are
//! carried out over the simulated network, and the invariants are checked
//! (see `invariants`). Faults run for `Params::fault_time`, then stop; the
//! cluster must then converge within `Params::converge_within`.

mod clients;
mod faults;
mod master;
mod nodes;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use dfs_master::chunks::chunk_map::ChunkMap;
use dfs_master::chunks::engine::{Engine, Event, Granted, OpId, ReqId};
use dfs_master::chunks::{safe_mode, ChunkConfig};
use dfs_master::store::{Mutation, NsError};
use dfs_proto::wire::chunks::{BadReplica, Heartbeat, HeartbeatResponse};
use dfs_proto::{ChunkHandle, ChunkVersion, InodeId, NodeId};
use dfs_server_kit::http::call::CallError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::chunkserver::Chunkserver;
use super::client::{Unit, Writer};
use super::disk::WriteId;
use super::invariants::{self, Grants, Truth, Versions};
use super::namespace::Namespace;
use super::network::Network;
use super::world::{Queue, Time};

/// The size of one run.
#[derive(Clone, Debug)]
pub struct Params {
    pub nodes: usize,
    pub writers: usize,
    /// How long faults are injected.
    pub fault_time: Duration,
    /// How long after the faults every chunk must be back to its goal.
    pub converge_within: Duration,
    /// Keep this many of the last events, to show on a failure.
    pub trace_last: usize,
}

impl Params {
    /// A run's shape drawn from its seed: 4 to 8 chunkservers, 2 to 5 writers.
    pub fn for_seed(seed: u64, fault_time: Duration) -> Params {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_5eed);
        Params { nodes: rng.random_range(4..=8), writers: rng.random_range(2..=5), fault_time, converge_within: Duration::from_secs(120), trace_last: 0 }
    }
}

/// A run that held every invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub seed: u64,
    /// A hash of every event and every engine command, in order.
    pub digest: u64,
    pub steps: u64,
    pub sim_time: Duration,
    /// Writes acknowledged.
    pub acked: u64,
    pub faults: u64,
    /// How long after the faults ended the cluster was back to its goal.
    pub converged_after: Duration,
    /// Chunks whose every current copy the faults destroyed.
    pub lost: usize,
}

/// A broken invariant: where, and the events just before it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub at: Duration,
    pub message: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} step {} at {:?}: {}", self.seed, self.step, self.at, self.message)?;
        writeln!(f, "replay: DFS_SIM_SEED={} cargo test -p dfs-tests --test sim", self.seed)?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Timing of the simulated cluster (the real defaults scaled down, their
/// relations kept: dead after 3+ heartbeats, a lease outlasting 3).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Every this many heartbeats carries a full report.
const REPORT_EVERY: u32 = 5;
const DEAD_AFTER: Duration = Duration::from_secs(4);
const LEASE: Duration = Duration::from_secs(6);
const TICK: Duration = Duration::from_secs(1);
/// A chunkserver call without an answer by then failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const COPY_TIMEOUT: Duration = Duration::from_secs(5);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// A copy's read of its source without an answer by then failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

pub fn config() -> ChunkConfig {
    ChunkConfig {
        lease: LEASE,
        dead_after: DEAD_AFTER,
        monitor_interval: TICK,
        copies_per_node: 2,
        gc_grace: Duration::from_secs(10),
        startup_delete_delay: Duration::from_secs(5),
        safe_mode: safe_mode::Rule { threshold: 0.999, extension: Duration::from_secs(1), timeout: Duration::from_secs(30) },
    }
}

/// A chunkserver call as it travels.
#[derive(Clone, Debug)]
enum Call {
    Create { node: NodeId, handle: ChunkHandle, version: ChunkVersion },
    SetVersion { node: NodeId, handle: ChunkHandle, version: ChunkVersion },
    Replicate { source: usize, handle: ChunkHandle, version: ChunkVersion },
}

impl Call {
    fn handle(&self) -> ChunkHandle {
        match self {
            Call::Create { handle, .. } | Call::SetVersion { handle, .. } | Call::Replicate { handle, .. } => *handle,
        }
    }

    fn timeout(&self) -> Duration {
        match self {
            Call::Replicate { .. } => COPY_TIMEOUT,
            _ => CALL_TIMEOUT,
        }
    }

    /// The engine's event for this call's answer.
    fn answer(&self, op: OpId, result: Result<dfs_proto::wire::chunks::ReplicaReport, CallError>) -> Event {
        match self {
            Call::Create { node, .. } => Event::Created { op, node: *node, ok: result.is_ok() },
            Call::SetVersion { node, .. } => Event::VersionSet { op, node: *node, ok: result.is_ok() },
            Call::Replicate { .. } => Event::Copied { op, result },
        }
    }
}

/// Who waits for the engine's answer to a request.
#[derive(Clone, Copy, Debug)]
enum Asker {
    Node { node: usize, inc: u64, had_report: bool, sent: Time },
    Client { client: usize, call: u64, sent: Time },
    Nobody,
}

#[derive(Debug)]
enum Ev {
    Tick,
    Beat(usize),
    HbAtMaster {
        node: usize,
        inc: u64,
        sent: Time,
        hb: Box<Heartbeat>,
    },
    /// `unseen`: chunks whose deletion the engine decided while it still
    /// counted a copy a fault had destroyed (see `World::unseen`).
    HbBack {
        node: usize,
        inc: u64,
        had_report: bool,
        answer: Option<HeartbeatResponse>,
        unseen: Vec<ChunkHandle>,
    },
    CallAtNode {
        op: OpId,
        node: usize,
        sent: Time,
        call: Call,
    },
    CopyAtSource {
        op: OpId,
        target: usize,
        inc: u64,
        sent: Time,
        source: usize,
        handle: ChunkHandle,
        version: ChunkVersion,
    },
    CopyAtTarget {
        op: OpId,
        target: usize,
        inc: u64,
        sent: Time,
        handle: ChunkHandle,
        version: ChunkVersion,
        data: Option<Vec<WriteId>>,
    },
    /// An answer for the engine (a call's, or a timeout's).
    Engine(Event),
    Stored {
        op: OpId,
        mutation: Mutation,
    },
    Committed {
        handle: ChunkHandle,
        end: u64,
    },
    Removed {
        handles: Vec<ChunkHandle>,
    },
    Wake {
        client: usize,
        call: u64,
    },
    LeaseAtMaster {
        client: usize,
        call: u64,
        sent: Time,
        inode: InodeId,
        index: u64,
    },
    LeaseBack {
        client: usize,
        call: u64,
        sent: Time,
        answer: Option<Result<Granted, NsError>>,
    },
    WriteAtNode {
        client: usize,
        call: u64,
        node: usize,
        node_id: NodeId,
        handle: ChunkHandle,
        version: ChunkVersion,
        unit: Unit,
        sync: bool,
    },
    WriteBack {
        client: usize,
        call: u64,
        node_id: NodeId,
        ok: bool,
    },
    WriteTimeout {
        client: usize,
        call: u64,
    },
    BadAtMaster {
        bad: BadReplica,
    },
    Scrub {
        node: usize,
        handle: ChunkHandle,
    },
    Fault,
    Restart(usize),
    Unfill(usize),
    Calm,
    EndFaults,
}

pub(crate) struct World {
    seed: u64,
    params: Params,
    rng: StdRng,
    queue: Queue<Ev>,
    now: Time,
    base: Instant,
    engine: Engine,
    nodes: Vec<Chunkserver>,
    net: Network,
    ns: Namespace,
    writers: Vec<Writer>,
    truth: Truth,
    grants: Grants,
    versions: Versions,
    asks: BTreeMap<ReqId, Asker>,
    next_req: ReqId,
    /// The chunks each engine operation concerns (to check after its answer).
    op_handles: BTreeMap<OpId, Vec<ChunkHandle>>,
    /// A heartbeat of this node is in flight (a node sends one at a time).
    beating: Vec<bool>,
    touched: BTreeSet<ChunkHandle>,
    touch_all: bool,
    faults_on: bool,
    store_fail_ppm: u32,
    next_write: WriteId,
    next_node: u128,
    digest: DefaultHasher,
    steps: u64,
    trace: VecDeque<String>,
    violation: Option<String>,
    acked: u64,
    faults: u64,
    converged_at: Option<Time>,
    last_unconverged: String,
    /// Chunks a fault destroyed a replica of (bit flip, replaced disk).
    destroyed: BTreeSet<ChunkHandle>,
    /// Replicas a fault destroyed (a flipped bit, a replaced disk): while
    /// the engine still lists one, its decisions may rest on it.
    unseen: BTreeSet<(ChunkHandle, NodeId)>,
    lost: usize,
}

/// Runs one seed; a broken invariant is a `Failure` with the seed and step.
pub fn run(seed: u64, params: &Params) -> Result<Summary, Box<Failure>> {
    let mut w = World::new(seed, params.clone());
    w.start();
    let deadline = params.fault_time + params.converge_within;
    while let Some((at, ev)) = w.queue.pop() {
        if at > deadline {
            let m = format!("not converged {:?} after the faults ended: {}", params.converge_within, w.last_unconverged);
            return Err(w.failure(m));
        }
        w.now = at;
        w.steps += 1;
        w.record(&ev);
        w.handle(ev);
        w.check();
        if let Some(m) = w.violation.take() {
            return Err(w.failure(m));
        }
        if w.converged_at.is_some() {
            break;
        }
    }
    let converged_after = w.converged_at.map_or(Duration::MAX, |t| t.saturating_sub(params.fault_time));
    Ok(Summary { seed, digest: w.digest.finish(), steps: w.steps, sim_time: w.now, acked: w.acked, faults: w.faults, converged_after, lost: w.lost })
}

impl World {
    fn new(seed: u64, params: Params) -> World {
        let base = Instant::now();
        let mut net = Network::new(Duration::from_millis(1), Duration::from_millis(30));
        net.slow_ppm = 10_000;
        let nodes = (0..params.nodes).map(|i| Chunkserver::new(node_id(i as u128 + 1), format!("http://10.0.0.{}:7000", i + 1))).collect();
        World {
            seed,
            rng: StdRng::seed_from_u64(seed),
            queue: Queue::default(),
            now: Duration::ZERO,
            base,
            engine: Engine::new(ChunkMap::default(), config(), base),
            nodes,
            net,
            ns: Namespace::default(),
            writers: (0..params.writers).map(|_| Writer::default()).collect(),
            truth: Truth::default(),
            grants: Grants::default(),
            versions: Versions::default(),
            asks: BTreeMap::new(),
            next_req: 0,
            op_handles: BTreeMap::new(),
            beating: vec![false; params.nodes],
            touched: BTreeSet::new(),
            touch_all: false,
            faults_on: true,
            store_fail_ppm: 0,
            next_write: 0,
            next_node: 1000,
            digest: DefaultHasher::new(),
            steps: 0,
            trace: VecDeque::new(),
            violation: None,
            acked: 0,
            faults: 0,
            converged_at: None,
            last_unconverged: String::new(),
            destroyed: BTreeSet::new(),
            unseen: BTreeSet::new(),
            lost: 0,
            params,
        }
    }

    fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let at = self.rng.random_range(Duration::ZERO..HEARTBEAT);
            self.queue.push(at, Ev::Beat(i));
        }
        self.queue.push(TICK, Ev::Tick);
        for client in 0..self.writers.len() {
            let at = self.rng.random_range(Duration::from_secs(2)..Duration::from_secs(3));
            self.queue.push(at, Ev::Wake { client, call: 0 });
        }
        self.queue.push(Duration::from_secs(3), Ev::Fault);
        self.queue.push(self.params.fault_time, Ev::EndFaults);
        self.net.drop_ppm = 2_000;
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.queue.push(at, ev);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick => self.tick(),
            Ev::Beat(n) => self.beat(n),
            Ev::HbAtMaster { node, inc, sent, hb } => self.heartbeat_at_master(node, inc, sent, hb),
            Ev::HbBack { node, inc, had_report, answer, unseen } => self.heartbeat_back(node, inc, had_report, answer, unseen),
            Ev::CallAtNode { op, node, sent, call } => self.call_at_node(op, node, sent, call),
            Ev::CopyAtSource { op, target, inc, sent, source, handle, version } => self.copy_at_source(op, target, inc, sent, source, handle, version),
            Ev::CopyAtTarget { op, target, inc, sent, handle, version, data } => self.copy_at_target(op, target, inc, sent, handle, version, data),
            Ev::Engine(event) => self.step_engine(event),
            Ev::Stored { op, mutation } => self.stored(op, mutation),
            Ev::Committed { handle, end } => {
                if self.ns.commit_length(handle, end) {
                    self.step_engine(Event::LengthsCommitted { ends: vec![(handle, end)] });
                }
            }
            Ev::Removed { handles } => self.step_engine(Event::ChunksRemoved { chunks: handles.into_iter().map(|h| (h, Duration::ZERO)).collect() }),
            Ev::Wake { client, call } => self.wake(client, call),
            Ev::LeaseAtMaster { client, call, sent, inode, index } => self.lease_at_master(client, call, sent, inode, index),
            Ev::LeaseBack { client, call, sent, answer } => self.lease_back(client, call, sent, answer),
            Ev::WriteAtNode { client, call, node, node_id, handle, version, unit, sync } => {
                self.write_at_node(client, call, node, node_id, handle, version, unit, sync)
            }
            Ev::WriteBack { client, call, node_id, ok } => self.write_back(client, call, node_id, ok),
            Ev::WriteTimeout { client, call } => self.write_timeout(client, call),
            Ev::BadAtMaster { bad } => self.bad_at_master(bad),
            Ev::Scrub { node, handle } => self.scrub(node, handle),
            Ev::Fault => self.fault(),
            Ev::Restart(n) => self.restart(n),
            Ev::Unfill(n) => self.nodes[n].disk.full = false,
            Ev::Calm => {
                if self.faults_on {
                    self.net.drop_ppm = 2_000;
                    self.store_fail_ppm = 0;
                }
            }
            Ev::EndFaults => self.end_faults(),
        }
    }

    fn tick(&mut self) {
        self.push(self.now + TICK, Ev::Tick);
        self.step_engine(Event::Tick);
        self.touch_all = true;
        let settled = self.params.fault_time + 2 * DEAD_AFTER;
        if self.faults_on || self.now < settled || self.converged_at.is_some() {
            return;
        }
        let now = self.instant();
        match invariants::converged(&self.engine, &self.nodes, &self.ns, &self.truth, &self.destroyed, now) {
            Ok(lost) => {
                self.converged_at = Some(self.now);
                self.lost = lost;
            }
            Err(m) => self.last_unconverged = m,
        }
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    fn touch(&mut self, handle: ChunkHandle) {
        self.touched.insert(handle);
    }

    fn violate(&mut self, m: String) {
        self.violation.get_or_insert(m);
    }

    /// The invariants over what this step touched.
    fn check(&mut self) {
        let handles: Vec<ChunkHandle> = match std::mem::take(&mut self.touch_all) {
            true => self.ns.by_handle.keys().copied().collect(),
            false => std::mem::take(&mut self.touched).into_iter().collect(),
        };
        self.touched.clear();
        let now = self.instant();
        for h in handles {
            let r = self.versions.check(h, &self.engine, &self.ns).and_then(|_| invariants::served(h, &self.engine, &self.nodes, &self.ns, &self.truth, now));
            if let Err(m) = r {
                return self.violate(m);
            }
        }
    }

    fn record(&mut self, ev: &Ev) {
        self.now.hash(&mut self.digest);
        if self.params.trace_last == 0 {
            std::mem::discriminant(ev).hash(&mut self.digest);
            return;
        }
        let line = format!("#{} {:?} {:?}", self.steps, self.now, ev);
        line.hash(&mut self.digest);
        self.trace.push_back(line);
        if self.trace.len() > self.params.trace_last {
            self.trace.pop_front();
        }
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.params.trace_last > 0 {
            self.trace.push_back(format!("    {}", line()));
        }
    }

    fn failure(&self, message: String) -> Box<Failure> {
        Box::new(Failure { seed: self.seed, step: self.steps, at: self.now, message, trace: self.trace.iter().cloned().collect() })
    }

    /// The chunkserver slot at `address`.
    fn slot(&self, address: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.address == address)
    }

    fn new_req(&mut self, asker: Asker) -> ReqId {
        self.next_req += 1;
        self.asks.insert(self.next_req, asker);
        self.next_req
    }

    fn end_faults(&mut self) {
        self.faults_on = false;
        self.net.heal();
        self.net.drop_ppm = 0;
        self.net.slow_ppm = 0;
        self.store_fail_ppm = 0;
        for i in 0..self.nodes.len() {
            self.nodes[i].disk.full = false;
            self.restart(i);
        }
        self.writers.iter_mut().for_each(|w| w.stopping = true);
    }
}

/// A call that got no answer in time.
fn lost() -> CallError {
    CallError::lost("no answer in time")
}

/// A call the chunkserver refused.
fn refused(why: &str) -> CallError {
    CallError::Refused { url: String::new(), status: 409, kind: None, message: why.to_string() }
}

fn node_id(n: u128) -> NodeId {
    NodeId(uuid::Uuid::from_u128(n))
}
