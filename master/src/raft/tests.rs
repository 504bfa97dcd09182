//! Three masters' Raft nodes in one process, talking over loopback HTTP
//! with signed calls: the group elects a leader, replicates what its
//! writer made so that every store ends equal key for key, sends a
//! follower's proposal to the leader, and goes on under a new leader when
//! the old one stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::auth::keys::{ClusterKey, KeyRing};
use dfs_proto::wire::namespace::*;
use dfs_server_kit::http::internal::ClusterAuth;
use dfs_server_kit::http::serve::{serve, Limits};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::log_store::{LogStore, NodeId};
use super::machine::tests::keys;
use super::machine::{Batch, Command, Group, Origin, StoreMachine};
use super::network::{routes, Cut, Peers};
use crate::store::mutations::Mutation;
use crate::store::{Store, Writer, WriterConfig};

struct Node {
    id: NodeId,
    raft: Raft<Group>,
    store: Store,
    origin: Origin,
    stop: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Node {
    async fn start(id: NodeId, listener: TcpListener, auth: Arc<ClusterAuth>, cut: Cut) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let origin = Origin::now(id);
        let log = LogStore::<Group>::open(&dir.path().join("raft-log")).unwrap();
        let machine = StoreMachine::new(store.clone(), dir.path(), origin).unwrap();
        // Elections wait a second or two: the suite runs beside other
        // tests on two cores, where a busy node must not look dead.
        let config = openraft::Config { heartbeat_interval: 150, election_timeout_min: 1000, election_timeout_max: 2000, ..Default::default() };
        let raft = Raft::new(id, Arc::new(config.validate().unwrap()), Peers::new(auth.clone()).partitioned(id, cut), log, machine).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let router = routes(raft.clone(), auth);
        tokio::spawn(serve(listener, router, Limits::from_config(5000, 5000, 64), None, async move {
            let _ = stopped.await;
        }));
        Node { id, raft, store, origin, stop: Some(stop), _dir: dir }
    }

    /// Stops answering and ends the Raft node, as a master that dies.
    async fn kill(&mut self) {
        drop(self.stop.take());
        self.raft.shutdown().await.unwrap();
    }

    fn last_applied(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_applied.map(|l| l.index)
    }
}

/// The leader all `nodes` agree on, within `within`.
async fn leader(nodes: &[&Node], within: Duration) -> NodeId {
    let deadline = Instant::now() + within;
    loop {
        let seen: Vec<Option<NodeId>> = nodes.iter().map(|n| n.raft.metrics().borrow().current_leader).collect();
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|s| *s == Some(*l)) && nodes.iter().any(|n| n.id == *l) {
                return *l;
            }
        }
        assert!(Instant::now() < deadline, "no leader agreed on within {within:?}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node has applied up to `index`.
async fn applied(nodes: &[&Node], index: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !nodes.iter().all(|n| n.last_applied() >= Some(index)) {
        assert!(Instant::now() < deadline, "not applied up to {index} within 20 s: {:?}", nodes.iter().map(|n| n.last_applied()).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn at(path: &str) -> EntryRef {
    EntryRef::path(path)
}

/// Runs `mutations` through a writer on `leader`'s store and proposes the
/// batches they made as one command; returns its log index.
async fn propose(leader: &Node, mutations: Vec<Mutation>) -> u64 {
    leader.store.tap(true);
    let config = WriterConfig::for_tests();
    let writer = Writer::start(leader.store.clone(), config).unwrap();
    for m in mutations {
        writer.submit(m).await.unwrap();
    }
    writer.close();
    let batches: Vec<Batch> = leader.store.take_tapped().into_iter().map(Batch).collect();
    leader.store.tap(false);
    assert!(!batches.is_empty());
    let written = leader.raft.client_write(Command { origin: leader.origin, batches }).await.unwrap();
    written.log_id.index
}

/// Three nodes (ids 1 to 3) on loopback, initialized as one group.
async fn group(auth: &Arc<ClusterAuth>, cut: &Cut) -> Vec<Node> {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let address = |l: &TcpListener| BasicNode::new(format!("http://{}", l.local_addr().unwrap()));
    let members: BTreeMap<NodeId, BasicNode> = listeners.iter().enumerate().map(|(i, l)| (i as NodeId + 1, address(l))).collect();
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        nodes.push(Node::start(i as NodeId + 1, l, auth.clone(), cut.clone()).await);
    }
    nodes[0].raft.initialize(members).await.unwrap();
    nodes
}

#[test]
fn three_masters_replicate_the_leaders_batches_and_survive_its_loss() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let auth = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
        let mut nodes = group(&auth, &Cut::default()).await;
        let all: Vec<&Node> = nodes.iter().collect();
        let first = leader(&all, Duration::from_secs(10)).await;
        let lead = &nodes[first as usize - 1];

        let index = propose(
            lead,
            vec![
                Mutation::Mkdir(MkdirRequest { at: at("/a"), ..Default::default() }),
                Mutation::Create(CreateRequest { at: at("/a/f"), exclusive: true, ..Default::default() }),
            ],
        )
        .await;
        applied(&all, index).await;
        for n in &nodes {
            assert_eq!(keys(&n.store), keys(&lead.store), "master {} differs from the leader {first}", n.id);
        }

        // Each endpoint is served as declared: unsigned calls are refused
        // (with nothing applied: the checks below find the stores equal).
        let wrong = dfs_server_kit::http::route::undeclared_behaviour(routes(lead.raft.clone(), auth.clone()), dfs_proto::endpoint::raft::ALL).await;
        assert!(wrong.is_empty(), "{wrong:?}");

        // A follower does not take proposals: it names the leader.
        let follower = nodes.iter().find(|n| n.id != first).unwrap();
        let refused = follower.raft.client_write(Command { origin: follower.origin, batches: Vec::new() }).await.unwrap_err();
        match refused {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => assert_eq!(f.leader_id, Some(first)),
            other => panic!("a follower's proposal: {other}"),
        }

        // The leader dies; the others elect one of them and go on.
        let killed_at = Instant::now();
        nodes[first as usize - 1].kill().await;
        let rest: Vec<&Node> = nodes.iter().filter(|n| n.id != first).collect();
        let second = leader(&rest, Duration::from_secs(10)).await;
        eprintln!("new leader {second} {:?} after the leader's loss", killed_at.elapsed());
        let lead = rest.iter().find(|n| n.id == second).unwrap();
        let index = propose(lead, vec![Mutation::Rename(RenameRequest { src: at("/a/f"), dst: at("/g"), noreplace: false })]).await;
        applied(&rest, index).await;
        assert_eq!(keys(&rest[0].store), keys(&rest[1].store));
        let who = crate::store::perms::Who::root();
        assert!(lead.store.resolve_path("/g", &who).is_ok() && rest.iter().all(|n| n.store.resolve_path("/a/f", &who).is_err()));

        for n in &mut nodes {
            if n.stop.is_some() {
                n.kill().await;
            }
        }
    });
}

/// Commands made on a store of no master (so every master applies them,
/// the leader too): `mkdir /dN` for each N.
struct Maker {
    _dir: TempDir,
    store: Store,
    writer: Writer,
}

impl Maker {
    fn new() -> Maker {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.tap(true);
        let config = WriterConfig::for_tests();
        let writer = Writer::start(store.clone(), config).unwrap();
        Maker { _dir: dir, store, writer }
    }

    async fn mkdir(&self, n: u32) -> Command {
        self.writer.submit(Mutation::Mkdir(MkdirRequest { at: at(&format!("/d{n}")), ..Default::default() })).await.unwrap();
        let batches = self.store.take_tapped().into_iter().map(Batch).collect();
        Command { origin: Origin { node: 0, incarnation: 0 }, batches }
    }
}

impl Drop for Maker {
    fn drop(&mut self) {
        self.writer.close();
    }
}

#[test]
fn a_partitioned_leader_acknowledges_nothing_and_rejoins_without_divergence() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let auth = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
        let cut = Cut::default();
        let mut nodes = group(&auth, &cut).await;
        let maker = Maker::new();
        let all: Vec<&Node> = nodes.iter().collect();
        let old = leader(&all, Duration::from_secs(10)).await;
        let mut acknowledged = Vec::new();
        for n in 0..5 {
            nodes[old as usize - 1].raft.client_write(maker.mkdir(n).await).await.unwrap();
            acknowledged.push(n);
        }

        // The leader is cut off from both others: what it is asked now is
        // never acknowledged, and the two elect a leader of their own.
        for other in (1..=3).filter(|&o| o != old) {
            cut.lock().unwrap().extend([(old, other), (other, old)]);
        }
        let stranded = tokio::time::timeout(Duration::from_secs(3), nodes[old as usize - 1].raft.client_write(maker.mkdir(100).await)).await;
        assert!(!matches!(stranded, Ok(Ok(_))), "a leader cut off from the majority acknowledged a write");
        let rest: Vec<&Node> = nodes.iter().filter(|n| n.id != old).collect();
        let new = leader(&rest, Duration::from_secs(10)).await;
        for n in 5..10 {
            nodes[new as usize - 1].raft.client_write(maker.mkdir(n).await).await.unwrap();
            acknowledged.push(n);
        }

        // Healed: the old leader follows the new one and ends with its state.
        cut.lock().unwrap().clear();
        let all: Vec<&Node> = nodes.iter().collect();
        assert_eq!(leader(&all, Duration::from_secs(10)).await, new, "the majority's leader leads after the heal");
        let last = nodes[new as usize - 1].last_applied().unwrap();
        applied(&all, last).await;
        let who = crate::store::perms::Who::root();
        for node in &nodes {
            assert_eq!(keys(&node.store), keys(&nodes[new as usize - 1].store), "master {} diverges from the leader {new}", node.id);
            for n in &acknowledged {
                assert!(node.store.resolve_path(&format!("/d{n}"), &who).is_ok(), "acknowledged /d{n} missing on master {}", node.id);
            }
            assert!(node.store.resolve_path("/d100", &who).is_err(), "the stranded leader's write is on master {}", node.id);
        }
        for n in &mut nodes {
            n.kill().await;
        }
    });
}
