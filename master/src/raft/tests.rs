//! Three masters' Raft nodes in one process, talking over loopback HTTP
//! with signed calls: the group elects a leader, replicates what its
//! writer made so that every store ends equal key for key, sends a
//! follower's proposal to the leader, goes on under a new leader when
//! the old one stops, keeps a cut-off leader's writes out of every store,
//! and commits a namespace writer's groups as entries.

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

use super::commit::Propose;
use super::log_store::{LogStore, NodeId};
use super::machine::tests::keys;
use super::machine::{Command, Group, StoreMachine};
use super::network::{routes, Cut, Peers};
use crate::store::mutations::Mutation;
use crate::store::{Store, Writer, WriterConfig};

struct Node {
    id: NodeId,
    raft: Raft<Group>,
    store: Store,
    stop: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Node {
    async fn start(id: NodeId, listener: TcpListener, auth: Arc<ClusterAuth>, cut: Cut) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = LogStore::<Group>::open(&dir.path().join("raft-log")).unwrap();
        let machine = StoreMachine::new(store.clone(), dir.path()).unwrap();
        // Elections wait a second or two: the suite runs beside other
        // tests on two cores, where a busy node must not look dead.
        let config = openraft::Config { heartbeat_interval: 150, election_timeout_min: 1000, election_timeout_max: 2000, ..Default::default() };
        let raft = Raft::new(id, Arc::new(config.validate().unwrap()), Peers::new(auth.clone()).partitioned(id, cut), log, machine).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let router = routes(raft.clone(), auth);
        tokio::spawn(serve(listener, router, Limits::from_config(5000, 5000, 64), None, async move {
            let _ = stopped.await;
        }));
        Node { id, raft, store, stop: Some(stop), _dir: dir }
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

/// What a leader's writer decides of `mutations` on `node`: one command,
/// made through pending writes that the node's store never gets (only
/// the committed entry writes them, on every master).
async fn decide(node: &Node, mutations: Vec<Mutation>) -> Command {
    let decided = node.store.with_pending(Arc::default());
    let writer = Writer::start(decided.clone(), WriterConfig::for_tests()).unwrap();
    for m in mutations {
        writer.submit(m).await.unwrap();
    }
    writer.close();
    Command::of(&decided.take_pending().unwrap())
}

/// Decides `mutations` on `leader` and proposes them; returns the entry's
/// log index once the leader has applied it.
async fn propose(leader: &Node, mutations: Vec<Mutation>) -> u64 {
    let command = decide(leader, mutations).await;
    leader.raft.client_write(command).await.unwrap().log_id.index
}

fn mkdir(n: u32) -> Vec<Mutation> {
    vec![Mutation::Mkdir(MkdirRequest { at: at(&format!("/d{n}")), ..Default::default() })]
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

/// A runtime for one test: two workers, as the machine has cores.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A group of three under one key, with `cut` between them, once its
/// members agree on a leader: the key, the nodes, the leader's id.
async fn started(cut: &Cut) -> (Arc<ClusterAuth>, Vec<Node>, NodeId) {
    let auth = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
    let nodes = group(&auth, cut).await;
    let first = leader(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(10)).await;
    (auth, nodes, first)
}

#[test]
fn three_masters_replicate_the_leaders_batches_and_survive_its_loss() {
    runtime().block_on(async {
        let (auth, mut nodes, first) = started(&Cut::default()).await;
        let all: Vec<&Node> = nodes.iter().collect();
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
        let refused = follower.raft.client_write(decide(follower, mkdir(0)).await).await.unwrap_err();
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

#[test]
fn a_partitioned_leader_acknowledges_nothing_and_rejoins_without_divergence() {
    runtime().block_on(async {
        let cut = Cut::default();
        let (_auth, mut nodes, old) = started(&cut).await;
        let mut acknowledged = Vec::new();
        for n in 0..5 {
            propose(&nodes[old as usize - 1], mkdir(n)).await;
            acknowledged.push(n);
        }

        // The leader is cut off from both others: what it is asked now is
        // never acknowledged, and the two elect a leader of their own.
        for other in (1..=3).filter(|&o| o != old) {
            cut.lock().unwrap().extend([(old, other), (other, old)]);
        }
        let stranded = &nodes[old as usize - 1];
        let command = decide(stranded, mkdir(100)).await;
        let answer = tokio::time::timeout(Duration::from_secs(3), stranded.raft.client_write(command)).await;
        assert!(!matches!(answer, Ok(Ok(_))), "a leader cut off from the majority acknowledged a write");
        let who = crate::store::perms::Who::root();
        assert!(stranded.store.resolve_path("/d100", &who).is_err(), "the stranded leader's store has its uncommitted write");
        let rest: Vec<&Node> = nodes.iter().filter(|n| n.id != old).collect();
        let new = leader(&rest, Duration::from_secs(10)).await;
        for n in 5..10 {
            propose(&nodes[new as usize - 1], mkdir(n)).await;
            acknowledged.push(n);
        }

        // Healed: the old leader follows the new one and ends with its state.
        cut.lock().unwrap().clear();
        let all: Vec<&Node> = nodes.iter().collect();
        assert_eq!(leader(&all, Duration::from_secs(10)).await, new, "the majority's leader leads after the heal");
        let last = nodes[new as usize - 1].last_applied().unwrap();
        applied(&all, last).await;
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

/// A namespace writer on `node` whose groups are proposed to the group.
fn proposing_writer(node: &Node) -> Writer {
    let commit = Propose::new(node.raft.clone(), tokio::runtime::Handle::current());
    Writer::start_committing(node.store.with_pending(Arc::default()), WriterConfig::for_tests(), commit).unwrap()
}

/// The leader's namespace writer proposes each group as one entry: many
/// concurrent creates are each answered once committed, and every master
/// ends with the same keys. A follower's writer fails its group with the
/// leader's address and changes nothing, however often it is asked.
#[test]
fn a_leaders_writer_commits_its_groups_through_the_group() {
    runtime().block_on(async {
        let (_auth, mut nodes, first) = started(&Cut::default()).await;
        let all: Vec<&Node> = nodes.iter().collect();
        let lead = &nodes[first as usize - 1];
        let writer = proposing_writer(lead);
        writer.submit(mkdir(0).remove(0)).await.unwrap();
        let before = lead.last_applied().unwrap();
        let mut creates = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (w, m) = (writer.clone(), Mutation::Create(CreateRequest { at: at(&format!("/d0/f{i}")), exclusive: true, ..Default::default() }));
            creates.spawn(async move { w.submit(m).await });
        }
        while let Some(done) = creates.join_next().await {
            done.unwrap().unwrap();
        }
        let last = lead.last_applied().unwrap();
        eprintln!("40 concurrent creates in {} entries", last - before);
        applied(&all, last).await;
        let who = crate::store::perms::Who::root();
        for n in &nodes {
            assert_eq!(keys(&n.store), keys(&lead.store), "master {} differs from the leader", n.id);
            assert_eq!(n.store.list(&NodeRef { path: Some("/d0".into()), inode: None }, None, None, &who).unwrap().entries.len(), 40);
        }

        let follower = nodes.iter().find(|n| n.id != first).unwrap();
        let (unchanged, refusing) = (keys(&follower.store), proposing_writer(follower));
        for _ in 0..2 {
            let refused = refusing.submit(mkdir(1).remove(0)).await.unwrap_err();
            assert_eq!(refused.kind, dfs_proto::ErrorKind::EAGAIN, "{refused:?}");
            assert!(refused.message.contains("does not lead"), "{}", refused.message);
        }
        assert_eq!(keys(&follower.store), unchanged, "a follower's refused group changed its store");
        writer.close();
        refusing.close();
        for n in &mut nodes {
            n.kill().await;
        }
    });
}
