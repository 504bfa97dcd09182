//! The log store against openraft's storage conformance suite, and what the
//! suite does not check: a reopened store keeps what it acknowledged, and
//! acknowledgements come in order, grouped.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, StoredMembership, Vote};
use tempfile::TempDir;

use super::{Error, LogStore, NodeId};

openraft::declare_raft_types!(
    /// A group whose commands are strings, for the tests.
    pub Config:
        D = String,
        R = String,
);

/// What a state machine must remember for the suite: the last applied log
/// id, the membership, the snapshot. The log store is what is under test.
#[derive(Default)]
struct Applied {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

#[derive(Clone, Default)]
struct Machine(Arc<Mutex<Applied>>);

impl RaftSnapshotBuilder<Config> for Machine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Config>, Error> {
        let mut applied = self.0.lock().unwrap();
        applied.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: applied.last,
            last_membership: applied.membership.clone(),
            snapshot_id: format!("snapshot-{}", applied.snapshots_built),
        };
        let data = serde_json::to_vec(&(applied.last, &applied.membership)).unwrap();
        applied.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<Config> for Machine {
    type SnapshotBuilder = Machine;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), Error> {
        let applied = self.0.lock().unwrap();
        Ok((applied.last, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, Error>
    where
        I: IntoIterator<Item = Entry<Config>> + Send,
    {
        let mut applied = self.0.lock().unwrap();
        let mut answers = Vec::new();
        for entry in entries {
            applied.last = Some(entry.log_id);
            if let EntryPayload::Membership(m) = &entry.payload {
                applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
            }
            answers.push(format!("applied {}", entry.log_id.index));
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Machine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta<NodeId, BasicNode>, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), Error> {
        let data = snapshot.into_inner();
        let (last, membership): (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>) = serde_json::from_slice(&data).unwrap();
        let mut applied = self.0.lock().unwrap();
        (applied.last, applied.membership) = (last, membership);
        applied.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Config>>, Error> {
        let applied = self.0.lock().unwrap();
        Ok(applied.snapshot.clone().map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

struct Fresh;

impl StoreBuilder<Config, LogStore<Config>, Machine, TempDir> for Fresh {
    async fn build(&self) -> Result<(TempDir, LogStore<Config>, Machine), Error> {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path())?;
        Ok((dir, store, Machine::default()))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(Fresh).unwrap();
}

fn normal(term: u64, index: u64) -> Entry<Config> {
    Entry { log_id: LogId::new(openraft::CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Normal(format!("command {index}")) }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_reopened_log_has_its_entries_vote_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        {
            let mut store = LogStore::<Config>::open(dir.path()).unwrap();
            store.blocking_append((1..=20).map(|i| normal(1, i))).await.unwrap();
            store.save_vote(&Vote::new(3, 2)).await.unwrap();
            store.purge(LogId::new(openraft::CommittedLeaderId::new(1, 1), 5)).await.unwrap();
            store.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), 18)).await.unwrap();
            store.blocking_append([normal(3, 18)]).await.unwrap();
        }
        let mut store = LogStore::<Config>::open(dir.path()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(5));
        assert_eq!(state.last_log_id, Some(normal(3, 18).log_id));
        let entries = store.try_get_log_entries(0..100).await.unwrap();
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, (6..=18).collect::<Vec<_>>());
        assert_eq!(entries.last().unwrap().log_id.leader_id.term, 3, "the truncated entry was replaced");
    });
}

#[test]
fn appends_are_acknowledged_in_order_and_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::<Config>::open(dir.path()).unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    const APPENDS: u64 = 500;
    let (all_done, wait) = std::sync::mpsc::channel();
    for i in 1..=APPENDS {
        let (seen, all_done) = (Arc::clone(&acknowledged), all_done.clone());
        let done = Box::new(move |synced: std::io::Result<()>| {
            synced.unwrap();
            seen.lock().unwrap().push(i);
            if i == APPENDS {
                all_done.send(()).unwrap();
            }
        });
        store.append_then([normal(1, i)], done).unwrap();
    }
    wait.recv_timeout(std::time::Duration::from_secs(60)).expect("every append acknowledged within a minute");
    assert_eq!(*acknowledged.lock().unwrap(), (1..=APPENDS).collect::<Vec<_>>());
    // Appending takes microseconds and a sync a hundred or more: the
    // appends made during one sync share the next.
    let syncs = store.syncs();
    assert!(syncs < APPENDS / 2, "{syncs} syncs for {APPENDS} appends made back to back: appends are not grouped");
}
