//! The store as a state machine: openraft's storage suite on the real log
//! store and store, and what matters to dfs beyond it: a master applying
//! a leader's batches ends with the leader's namespace, key for key; the
//! leader itself only records them; a snapshot carries it to a new master.

use std::collections::BTreeMap;

use dfs_proto::wire::namespace::*;
use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use tempfile::TempDir;

use super::*;
use crate::raft::log_store::LogStore;
use crate::store::keys::{ALL_CFS, META_CLUSTER_ID, META_LOG_EPOCH, META_RAFT_STATE};
use crate::store::mutations::Mutation;
use crate::store::{Writer, WriterConfig};

struct Fresh;

impl StoreBuilder<Group, LogStore<Group>, StoreMachine, TempDir> for Fresh {
    async fn build(&self) -> Result<(TempDir, LogStore<Group>, StoreMachine), Error> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft-log"))?;
        let machine = StoreMachine::new(Store::open(dir.path()).unwrap(), dir.path(), Origin::now(1))?;
        Ok((dir, log, machine))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(Fresh).unwrap();
}

/// Every key of the store but those of the master itself (its cluster id
/// as bootstrapped, its log's epoch) and the group's state.
pub(crate) fn keys(store: &Store) -> BTreeMap<(String, Vec<u8>), Vec<u8>> {
    let own = [META_CLUSTER_ID, META_LOG_EPOCH, META_RAFT_STATE];
    let mut all = BTreeMap::new();
    for name in ALL_CFS {
        let cf = store.cf(name).unwrap();
        for item in store.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item.unwrap();
            if name == crate::store::keys::CF_META && own.contains(&&*k) {
                continue;
            }
            all.insert((name.to_string(), k.to_vec()), v.to_vec());
        }
    }
    all
}

fn entry(index: u64, payload: EntryPayload<Group>) -> Entry<Group> {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload }
}

fn at(path: &str) -> EntryRef {
    EntryRef::path(path)
}

/// What a leader's writer makes of some mutations, one command per group.
async fn leader_commands(writer: &Writer, store: &Store, origin: Origin) -> Vec<Command> {
    let groups = [
        vec![Mutation::Mkdir(MkdirRequest { at: at("/a"), ..Default::default() })],
        vec![
            Mutation::Create(CreateRequest { at: at("/a/f"), exclusive: true, ..Default::default() }),
            Mutation::Create(CreateRequest { at: at("/a/g"), exclusive: true, ..Default::default() }),
        ],
        vec![Mutation::Rename(RenameRequest { src: at("/a/f"), dst: at("/h"), noreplace: false })],
        vec![Mutation::Delete(DeleteRequest { at: at("/a"), recursive: true })],
    ];
    let mut commands = Vec::new();
    for group in groups {
        for m in group {
            writer.submit(m).await.unwrap();
        }
        let batches = store.take_tapped().into_iter().map(Batch).collect();
        commands.push(Command { origin, batches });
    }
    commands
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn a_master_applying_a_leaders_batches_ends_with_its_namespace() {
    runtime().block_on(async {
        let (leader_dir, follower_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader_store = Store::open(leader_dir.path()).unwrap();
        leader_store.tap(true);
        let config = WriterConfig::for_tests();
        let writer = Writer::start(leader_store.clone(), config).unwrap();
        let me = Origin::now(1);
        let commands = leader_commands(&writer, &leader_store, me).await;
        writer.close();
        assert!(commands.iter().all(|c| !c.batches.is_empty()), "every group made batches");
        let entries = |commands: &[Command]| -> Vec<Entry<Group>> {
            let mut all = vec![entry(1, EntryPayload::Blank)];
            all.extend(commands.iter().enumerate().map(|(i, c)| entry(i as u64 + 2, EntryPayload::Normal(c.clone()))));
            all
        };

        let mut follower = StoreMachine::new(Store::open(follower_dir.path()).unwrap(), follower_dir.path(), Origin::now(2)).unwrap();
        assert_ne!(keys(follower.store()), keys(&leader_store), "a new store differs from the leader's (the test proves nothing otherwise)");
        follower.apply(entries(&commands)).await.unwrap();
        assert_eq!(keys(follower.store()), keys(&leader_store), "the follower's namespace is not the leader's");

        // The leader, applying its own committed entries, writes only the
        // group's state: nothing is applied twice.
        let before = keys(&leader_store);
        let mut leader = StoreMachine::new(leader_store.clone(), leader_dir.path(), me).unwrap();
        leader.apply(entries(&commands)).await.unwrap();
        assert_eq!(keys(&leader_store), before);
        let last = Some(LogId::new(CommittedLeaderId::new(1, 1), commands.len() as u64 + 1));
        assert_eq!(leader.applied_state().await.unwrap().0, last);
        assert_eq!(follower.applied_state().await.unwrap().0, last);
        assert!(leader_store.take_tapped().is_empty(), "recording the group's state was tapped for proposing");

        // A restarted follower knows where it is.
        drop(follower);
        let mut follower = StoreMachine::new(Store::open(follower_dir.path()).unwrap(), follower_dir.path(), Origin::now(2)).unwrap();
        assert_eq!(follower.applied_state().await.unwrap().0, last);

        // A snapshot of the follower brings a new master to the same state.
        let snapshot = follower.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, last);
        let mut new = StoreMachine::new(Store::open(new_dir.path()).unwrap(), new_dir.path(), Origin::now(3)).unwrap();
        let mut receiving = new.begin_receiving_snapshot().await.unwrap();
        let mut from = snapshot.snapshot;
        tokio::io::copy(&mut from, &mut *receiving).await.unwrap();
        new.install_snapshot(&snapshot.meta, receiving).await.unwrap();
        assert_eq!(keys(new.store()), keys(follower.store()));
        assert_eq!(new.store().cluster_id().unwrap(), follower.store().cluster_id().unwrap(), "the snapshot brings the group's cluster id");
        assert_eq!(new.applied_state().await.unwrap().0, last);
        assert_eq!(new.get_current_snapshot().await.unwrap().unwrap().meta, snapshot.meta);
        // ...and it survives a restart.
        drop(new);
        let mut new = StoreMachine::new(Store::open(new_dir.path()).unwrap(), new_dir.path(), Origin::now(3)).unwrap();
        assert_eq!(new.applied_state().await.unwrap().0, last);
    });
}

#[test]
fn a_snapshot_is_not_installed_under_a_store_in_use() {
    runtime().block_on(async {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut source = StoreMachine::new(Store::open(a.path()).unwrap(), a.path(), Origin::now(1)).unwrap();
        source.apply([entry(1, EntryPayload::Blank)]).await.unwrap();
        let snapshot = source.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let store = Store::open(b.path()).unwrap();
        let _elsewhere = store.clone();
        let mut target = StoreMachine::new(store, b.path(), Origin::now(2)).unwrap();
        let mut receiving = target.begin_receiving_snapshot().await.unwrap();
        let mut from = snapshot.snapshot;
        tokio::io::copy(&mut from, &mut *receiving).await.unwrap();
        assert!(target.install_snapshot(&snapshot.meta, receiving).await.is_err());
        assert_eq!(target.applied_state().await.unwrap().0, None, "a refused snapshot changed the state");
        assert!(target.store().counters().is_ok(), "the store is still there");
    });
}
