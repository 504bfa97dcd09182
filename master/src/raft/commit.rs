//! The namespace writer's commit on a Raft leader: the group's pending
//! writes (`store::pending`) proposed as one entry, answered once this
//! master has applied it, that is once a majority holds it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dfs_proto::ErrorKind;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use tokio::runtime::Handle;

use super::log_store::NodeId;
use super::machine::{Command, Group};
use super::role::{refusal, standing, Standing};
use crate::store::writer::Commit;
use crate::store::{NsError, Store};

/// The longest a group waits for its entry to commit: without a majority
/// it would wait for ever. The entry may still commit later (a client's
/// retry then gets its answer from the retry cache), so until it does or
/// fails for good this master decides no other group (`unresolved`).
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Proposes each group; the writer leads groups on blocking threads, from
/// where this waits on the runtime.
pub struct Propose {
    raft: Raft<Group>,
    runtime: Handle,
    /// A group's entry outlived `COMMIT_WAIT` and is still pending: a group
    /// decided now would not see its writes, and both could commit (the
    /// same ids twice).
    unresolved: Arc<AtomicBool>,
    /// Counts the entries that were resolved late: the writer reads its
    /// counters again after each (they may hold the entry's writes now).
    late: Arc<AtomicU64>,
}

impl Propose {
    pub fn new(raft: Raft<Group>, runtime: Handle) -> Arc<Propose> {
        Arc::new(Propose { raft, runtime, unresolved: Arc::default(), late: Arc::default() })
    }
}

impl Commit for Propose {
    fn commit(&self, store: &Store) -> Result<(), NsError> {
        let batch = store.take_pending()?;
        if batch.is_empty() {
            return Ok(());
        }
        let (raft, command) = (self.raft.clone(), Command::of(&batch));
        let mut write = self.runtime.spawn(async move { raft.client_write(command).await });
        match self.runtime.block_on(async { tokio::time::timeout(COMMIT_WAIT, &mut write).await }) {
            Ok(Ok(written)) => written.map(drop).map_err(not_committed),
            Ok(Err(e)) => Err(NsError::new(ErrorKind::EIO, format!("proposing the change failed: {e}"))),
            Err(_) => {
                self.unresolved.store(true, Ordering::Release);
                let (unresolved, late) = (self.unresolved.clone(), self.late.clone());
                self.runtime.spawn(async move {
                    let _ = write.await;
                    late.fetch_add(1, Ordering::AcqRel);
                    unresolved.store(false, Ordering::Release);
                });
                // Not EAGAIN: it may still be committed, and a client must
                // not take it for a refusal that did nothing.
                Err(NsError::new(ErrorKind::EIO, format!("the masters did not commit the change within {COMMIT_WAIT:?}; it may still be committed")))
            }
        }
    }

    fn blocks(&self) -> bool {
        true
    }

    /// The term, and how many entries were resolved late in it: the
    /// writer reads its counters again whenever either moves.
    fn lead(&self) -> Result<u64, NsError> {
        if self.unresolved.load(Ordering::Acquire) {
            return Err(NsError::new(ErrorKind::EAGAIN, "an earlier change is not committed yet; try again shortly"));
        }
        match standing(&self.raft.metrics().borrow()) {
            Standing::Leads { term } => Ok(term.wrapping_shl(24).wrapping_add(self.late.load(Ordering::Acquire))),
            Standing::Follows { leader } => Err(NsError::new(ErrorKind::EAGAIN, refusal(leader.as_deref()))),
        }
    }
}

/// Why a group was not answered: this master does not lead (retry at the
/// leader), or the group could not be committed. Either way the entry may
/// still commit later, which the retry cache answers for.
fn not_committed(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> NsError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => NsError::new(ErrorKind::EAGAIN, refusal(f.leader_node.map(|n| n.addr).as_deref())),
        other => NsError::new(ErrorKind::EIO, format!("the masters did not commit the change: {other}")),
    }
}
