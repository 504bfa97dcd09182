//! The master's store as the Raft group's state machine.
//!
//! An entry's command is what a leader's writer made of a group of
//! mutations: one RocksDB write batch of their pending writes
//! (`store::pending`, `store::replicated`). No master, the leader included,
//! has them in RocksDB before the entry commits: every master writes the
//! batch when it applies the entry. So a leader deposed with entries that
//! never commit keeps nothing of them, and nothing is applied twice.
//!
//! Snapshots are checkpoints of the store (the same as a backup's): a tar
//! file of its RocksDB files and manifest, under `raft-snapshots/` in the
//! data directory; the last applied log id and the membership are read
//! from the checkpoint itself, so they are exactly what it holds. A master
//! installs one by replacing its store's files (`backup::install_checkpoint`),
//! which needs the store closed everywhere else: the machine is then the
//! store's only holder, or it refuses.

#![allow(clippy::result_large_err, reason = "openraft's storage traits return its StorageError, and the helpers here return what they do")]

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use base64::Engine;
use dfs_proto::wire::backup::{unpack_tar, write_tar};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};

use super::log_store::NodeId;
use crate::store::backup::install_checkpoint;
use crate::store::replicated::replicated_state_in;
use crate::store::{NsError, Store};

type Error = StorageError<NodeId>;

openraft::declare_raft_types!(
    /// The masters' Raft group: commands are groups of write batches,
    /// snapshots are files.
    pub Group:
        D = Command,
        R = (),
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = tokio::fs::File,
);

/// Where snapshots are kept, in the data directory.
pub const SNAPSHOTS_DIR: &str = "raft-snapshots";
const CURRENT_TAR: &str = "current.tar";
const CURRENT_META: &str = "current.json";

/// One entry's change of the namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The group's pending writes as one RocksDB write batch.
    pub batch: Batch,
}

impl Command {
    /// The command carrying `batch` (a leader's pending writes).
    pub fn of(batch: &rocksdb::WriteBatch) -> Command {
        Command { batch: Batch(batch.data().to_vec()) }
    }
}

/// A RocksDB write batch's bytes (base64 in the log's JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch(pub Vec<u8>);

impl Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(text).map(Batch).map_err(serde::de::Error::custom)
    }
}

/// What the store records of the group with each applied entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Applied {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

impl Applied {
    fn decode(bytes: Option<Vec<u8>>) -> Result<Applied, AnyError> {
        match bytes {
            Some(b) => serde_json::from_slice(&b).map_err(|e| AnyError::new(&e)),
            None => Ok(Applied::default()),
        }
    }
}

/// The state machine of one master.
pub struct StoreMachine {
    /// `None` while a snapshot is being installed, and for good once an
    /// install failed part way.
    store: Option<Store>,
    data_dir: PathBuf,
    applied: Applied,
}

/// Builds snapshots from a store handle, beside the machine.
pub struct SnapshotBuilder {
    store: Store,
    snapshots: PathBuf,
}

fn store_err(e: NsError) -> AnyError {
    AnyError::error(e.to_string())
}

fn io_err(e: std::io::Error) -> AnyError {
    AnyError::new(&e)
}

impl StoreMachine {
    /// The machine over `store`, which lives in `data_dir`.
    pub fn new(store: Store, data_dir: &Path) -> Result<StoreMachine, Error> {
        let applied = Applied::decode(store.replicated_state().map_err(|e| StorageIOError::read_state_machine(store_err(e)))?)
            .map_err(StorageIOError::read_state_machine)?;
        let snapshots = data_dir.join(SNAPSHOTS_DIR);
        std::fs::create_dir_all(&snapshots).map_err(|e| StorageIOError::write_snapshot(None, io_err(e)))?;
        Ok(StoreMachine { store: Some(store), data_dir: data_dir.to_path_buf(), applied })
    }

    fn store(&self) -> &Store {
        // Away only after an install failed part way (the data directory
        // then holds RESTORING): this master must stop, and does here.
        self.store.as_ref().expect("the store is gone: installing a snapshot failed part way")
    }

    fn snapshots(&self) -> PathBuf {
        self.data_dir.join(SNAPSHOTS_DIR)
    }

    /// Applies one entry to the store (not synced).
    fn apply_one(&mut self, entry: Entry<Group>) -> Result<(), Error> {
        let mut next = Applied { last: Some(entry.log_id), membership: self.applied.membership.clone() };
        let batch = match entry.payload {
            EntryPayload::Blank => None,
            EntryPayload::Membership(m) => {
                next.membership = StoredMembership::new(Some(entry.log_id), m);
                None
            }
            EntryPayload::Normal(c) => Some(c.batch),
        };
        let state = serde_json::to_vec(&next).map_err(|e| StorageIOError::apply(entry.log_id, &e))?;
        let batch = batch.as_ref().map(|b| b.0.as_slice());
        self.store().apply_replicated(batch, &state).map_err(|e| StorageIOError::apply(entry.log_id, store_err(e)))?;
        self.applied = next;
        Ok(())
    }
}

impl RaftStateMachine<Group> for StoreMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), Error> {
        Ok((self.applied.last, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, Error>
    where
        I: IntoIterator<Item = Entry<Group>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut answers = Vec::new();
        for entry in entries {
            self.apply_one(entry)?;
            answers.push(());
        }
        // Not synced: the entries are on disk in the Raft log, which is
        // kept whole (no snapshots, no purge), and the store records the
        // last entry it applied in the same batch as its writes. After a
        // crash that loses applied writes, the store says it applied less,
        // and openraft applies the rest again from the log: the same
        // batches, the same result. A sync here cost every master one more
        // fsync per entry (3-master creates/s: see BENCHMARKS).
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { store: self.store().clone(), snapshots: self.snapshots() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, Error> {
        let path = self.snapshots().join(format!("incoming-{}.tar", uuid::Uuid::new_v4().simple()));
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(|e| StorageIOError::write_snapshot(None, io_err(e)))?;
        // Unlinked at once: the descriptor is all the snapshot needs, and
        // nothing is left behind by a transfer cut short.
        std::fs::remove_file(&path).map_err(|e| StorageIOError::write_snapshot(None, io_err(e)))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta<NodeId, BasicNode>, snapshot: Box<tokio::fs::File>) -> Result<(), Error> {
        let failed = |e: AnyError| -> Error { StorageIOError::write_snapshot(Some(meta.signature()), e).into() };
        let mut file = snapshot.into_std().await;
        let store = self.store.take().expect("the store is here between installs");
        let (data_dir, snapshots) = (self.data_dir.clone(), self.snapshots());
        let installed = tokio::task::spawn_blocking(move || install(store, &data_dir, &snapshots, &mut file)).await.map_err(|e| failed(AnyError::error(e)))?;
        match installed {
            Ok((store, applied)) => {
                self.store = Some(store);
                self.applied = applied;
                write_current_meta(&self.snapshots(), meta).map_err(|e| failed(io_err(e)))
            }
            Err((store, e)) => {
                self.store = store;
                Err(failed(e))
            }
        }
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Group>>, Error> {
        let snapshots = self.snapshots();
        let meta = match std::fs::read(snapshots.join(CURRENT_META)) {
            Ok(text) => serde_json::from_slice::<SnapshotMeta<NodeId, BasicNode>>(&text).map_err(|e| StorageIOError::read_snapshot(None, &e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageIOError::read_snapshot(None, io_err(e)).into()),
        };
        let file = std::fs::File::open(snapshots.join(CURRENT_TAR)).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), io_err(e)))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) }))
    }
}

/// Installs the snapshot in `file` over the store (blocking): unpacks and
/// checks it, replaces the store's files, keeps the tar as the current
/// snapshot. On failure, gives back the store if it is still open.
fn install(store: Store, data_dir: &Path, snapshots: &Path, file: &mut std::fs::File) -> Result<(Store, Applied), (Option<Store>, AnyError)> {
    if !store.only_handle() {
        return Err((
            Some(store),
            AnyError::error("the store is open elsewhere in this master; a snapshot is installed on a store only the state machine holds"),
        ));
    }
    let unpacked = snapshots.join(format!("unpacked-{}", uuid::Uuid::new_v4().simple()));
    let checked = (|| {
        std::fs::create_dir(&unpacked)?;
        file.seek(SeekFrom::Start(0))?;
        unpack_tar(&mut *file, &unpacked)
    })();
    let manifest = match checked {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&unpacked);
            return Err((Some(store), io_err(e)));
        }
    };
    drop(store);
    let installed = install_checkpoint(&unpacked, &manifest, data_dir).map_err(store_err);
    let _ = std::fs::remove_dir_all(&unpacked);
    let store = installed.map_err(|e| (None, e))?;
    let applied = store.replicated_state().map_err(store_err).and_then(Applied::decode);
    let kept = file.seek(SeekFrom::Start(0)).and_then(|_| replace(snapshots, CURRENT_TAR, |mut copy| std::io::copy(file, &mut copy).map(drop)));
    match (applied, kept) {
        (Ok(applied), Ok(())) => Ok((store, applied)),
        (Err(e), _) => Err((Some(store), e)),
        (_, Err(e)) => Err((Some(store), io_err(e))),
    }
}

/// Writes `name` in `snapshots` anew: `fill` writes a file of its own,
/// which is synced and renamed over the old one (the directory is synced
/// by `write_current_meta`, which comes last every time).
fn replace(snapshots: &Path, name: &str, fill: impl FnOnce(&std::fs::File) -> std::io::Result<()>) -> std::io::Result<()> {
    let tmp = snapshots.join(format!("{name}.{}", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&tmp)?;
    fill(&file)?;
    file.sync_all()?;
    std::fs::rename(&tmp, snapshots.join(name))
}

/// Makes `meta` the current snapshot's (its tar replaced before).
fn write_current_meta(snapshots: &Path, meta: &SnapshotMeta<NodeId, BasicNode>) -> std::io::Result<()> {
    let text = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
    replace(snapshots, CURRENT_META, |mut f| std::io::Write::write_all(&mut f, &text))?;
    std::fs::File::open(snapshots)?.sync_all()
}

impl RaftSnapshotBuilder<Group> for SnapshotBuilder {
    /// A checkpoint of the store, as tar, made the current snapshot.
    async fn build_snapshot(&mut self) -> Result<Snapshot<Group>, Error> {
        let (store, snapshots) = (self.store.clone(), self.snapshots.clone());
        let built =
            tokio::task::spawn_blocking(move || build(&store, &snapshots)).await.map_err(|e| StorageIOError::write_snapshot(None, AnyError::error(e)))?;
        let (meta, file) = built.map_err(|e| StorageIOError::write_snapshot(None, e))?;
        Ok(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) })
    }
}

/// Takes a checkpoint and writes it as the current snapshot (blocking).
fn build(store: &Store, snapshots: &Path) -> Result<(SnapshotMeta<NodeId, BasicNode>, std::fs::File), AnyError> {
    let checkpoint = store.checkpoint_for_backup().map_err(store_err)?;
    let applied = Applied::decode(replicated_state_in(&checkpoint.dir).map_err(store_err)?)?;
    let meta = SnapshotMeta {
        last_log_id: applied.last,
        last_membership: applied.membership,
        snapshot_id: format!("{}-{}", applied.last.map_or(0, |l| l.index), uuid::Uuid::new_v4().simple()),
    };
    replace(snapshots, CURRENT_TAR, |f| write_tar(&checkpoint.dir, &checkpoint.manifest, std::io::BufWriter::new(f))).map_err(io_err)?;
    write_current_meta(snapshots, &meta).map_err(io_err)?;
    let file = std::fs::File::open(snapshots.join(CURRENT_TAR)).map_err(io_err)?;
    Ok((meta, file))
}

#[cfg(test)]
pub(crate) mod tests;
