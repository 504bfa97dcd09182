//! The store as a state machine: openraft's storage suite on the real log
//! store and store, and what matters to dfs beyond it: a master applying
//! a leader's batches ends with the leader's namespace, key for key; the
//! leader's store holds none of a group's writes before its entry is
//! applied; a snapshot carries it to a new master.

use std::sync::Arc;

use dfs_proto::wire::namespace::*;
use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use tempfile::TempDir;

use super::*;
use crate::raft::log_store::LogStore;
use crate::store::mutations::Mutation;
pub(crate) use crate::store::tests::keys;
use crate::store::{Writer, WriterConfig};

struct Fresh;

impl StoreBuilder<Group, LogStore<Group>, StoreMachine, TempDir> for Fresh {
    async fn build(&self) -> Result<(TempDir, LogStore<Group>, StoreMachine), Error> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft-log"))?;
        let machine = StoreMachine::new(Store::open(dir.path()).unwrap(), dir.path())?;
        Ok((dir, log, machine))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(Fresh).unwrap();
}

fn entry(index: u64, payload: EntryPayload<Group>) -> Entry<Group> {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload }
}

fn at(path: &str) -> EntryRef {
    EntryRef::path(path)
}

/// A leader at work: each group of mutations decided through pending
/// writes (its store untouched meanwhile), then its entry applied; the
/// entries, from index 1 (a blank one, as a new leader's).
async fn lead(leader: &mut StoreMachine) -> Vec<Entry<Group>> {
    let decided = leader.store().with_pending(Arc::default());
    let writer = Writer::start(decided.clone(), WriterConfig::for_tests()).unwrap();
    let mut entries = vec![entry(1, EntryPayload::Blank)];
    leader.apply(entries.clone()).await.unwrap();
    let groups = [
        vec![Mutation::Mkdir(MkdirRequest { at: at("/a"), ..Default::default() })],
        vec![
            Mutation::Create(CreateRequest { at: at("/a/f"), exclusive: true, ..Default::default() }),
            Mutation::Create(CreateRequest { at: at("/a/g"), exclusive: true, ..Default::default() }),
        ],
        vec![Mutation::Rename(RenameRequest { src: at("/a/f"), dst: at("/h"), noreplace: false })],
        vec![Mutation::Delete(DeleteRequest { at: at("/a"), recursive: true })],
    ];
    for group in groups {
        let before = keys(leader.store());
        for m in group {
            writer.submit(m).await.unwrap();
        }
        assert_eq!(keys(leader.store()), before, "a group's writes reached the store before its entry was applied");
        let next = entry(entries.len() as u64 + 1, EntryPayload::Normal(Command::of(&decided.take_pending().unwrap())));
        leader.apply([next.clone()]).await.unwrap();
        assert_ne!(keys(leader.store()), before, "the entry applied changed nothing");
        entries.push(next);
    }
    writer.close();
    entries
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn a_master_applying_a_leaders_batches_ends_with_its_namespace() {
    runtime().block_on(async {
        let (leader_dir, follower_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = StoreMachine::new(Store::open(leader_dir.path()).unwrap(), leader_dir.path()).unwrap();
        let entries = lead(&mut leader).await;

        let mut follower = StoreMachine::new(Store::open(follower_dir.path()).unwrap(), follower_dir.path()).unwrap();
        assert_ne!(keys(follower.store()), keys(leader.store()), "a new store differs from the leader's (the test proves nothing otherwise)");
        follower.apply(entries.clone()).await.unwrap();
        assert_eq!(keys(follower.store()), keys(leader.store()), "the follower's namespace is not the leader's");
        let last = entries.last().map(|e| e.log_id);
        assert_eq!(leader.applied_state().await.unwrap().0, last);
        assert_eq!(follower.applied_state().await.unwrap().0, last);

        // A restarted follower knows where it is.
        drop(follower);
        let mut follower = StoreMachine::new(Store::open(follower_dir.path()).unwrap(), follower_dir.path()).unwrap();
        assert_eq!(follower.applied_state().await.unwrap().0, last);

        // A snapshot of the follower brings a new master to the same state.
        let snapshot = follower.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, last);
        let mut new = StoreMachine::new(Store::open(new_dir.path()).unwrap(), new_dir.path()).unwrap();
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
        let mut new = StoreMachine::new(Store::open(new_dir.path()).unwrap(), new_dir.path()).unwrap();
        assert_eq!(new.applied_state().await.unwrap().0, last);
    });
}

#[test]
fn a_snapshot_is_not_installed_under_a_store_in_use() {
    runtime().block_on(async {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut source = StoreMachine::new(Store::open(a.path()).unwrap(), a.path()).unwrap();
        source.apply([entry(1, EntryPayload::Blank)]).await.unwrap();
        let snapshot = source.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let store = Store::open(b.path()).unwrap();
        let _elsewhere = store.clone();
        let mut target = StoreMachine::new(store, b.path()).unwrap();
        let mut receiving = target.begin_receiving_snapshot().await.unwrap();
        let mut from = snapshot.snapshot;
        tokio::io::copy(&mut from, &mut *receiving).await.unwrap();
        assert!(target.install_snapshot(&snapshot.meta, receiving).await.is_err());
        assert_eq!(target.applied_state().await.unwrap().0, None, "a refused snapshot changed the state");
        assert!(target.store().counters().is_ok(), "the store is still there");
    });
}
