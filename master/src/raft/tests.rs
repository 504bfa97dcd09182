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
use super::network::{routes, Peers};
use crate::store::mutations::{Defaults, Mutation};
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
    async fn start(id: NodeId, listener: TcpListener, auth: Arc<ClusterAuth>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let origin = Origin::now(id);
        let log = LogStore::<Group>::open(&dir.path().join("raft-log")).unwrap();
        let machine = StoreMachine::new(store.clone(), dir.path(), origin).unwrap();
        let config = openraft::Config { heartbeat_interval: 100, election_timeout_min: 500, election_timeout_max: 1000, ..Default::default() };
        let raft = Raft::new(id, Arc::new(config.validate().unwrap()), Peers::new(auth.clone()), log, machine).await.unwrap();
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
    let config = WriterConfig {
        defaults: Defaults { replication: 3, chunk_size_bytes: 64 << 20 },
        group_max: 64,
        reap_batch: 7,
        open_files_timeout: crate::store::held::SESSION_TIMEOUT,
    };
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

#[test]
fn three_masters_replicate_the_leaders_batches_and_survive_its_loss() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let auth = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
        let mut listeners = Vec::new();
        for _ in 0..3 {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let members: BTreeMap<NodeId, BasicNode> =
            listeners.iter().enumerate().map(|(i, l)| (i as NodeId + 1, BasicNode::new(format!("http://{}", l.local_addr().unwrap())))).collect();
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            nodes.push(Node::start(i as NodeId + 1, l, auth.clone()).await);
        }
        nodes[0].raft.initialize(members).await.unwrap();
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
