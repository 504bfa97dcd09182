//! The namespace writer's commit on a Raft leader: the group's pending
//! writes (`store::pending`) proposed as one entry, answered once this
//! master has applied it, that is once a majority holds it.

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
/// it would wait for ever. The entry may still commit later; a client's
/// retry then gets its answer from the retry cache.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Proposes each group; the writer leads groups on blocking threads, from
/// where this waits on the runtime.
pub struct Propose {
    raft: Raft<Group>,
    runtime: Handle,
}

impl Propose {
    pub fn new(raft: Raft<Group>, runtime: Handle) -> Arc<Propose> {
        Arc::new(Propose { raft, runtime })
    }
}

impl Commit for Propose {
    fn commit(&self, store: &Store) -> Result<(), NsError> {
        let batch = store.take_pending()?;
        if batch.is_empty() {
            return Ok(());
        }
        let proposed = self.runtime.block_on(async { tokio::time::timeout(COMMIT_WAIT, self.raft.client_write(Command::of(&batch))).await });
        match proposed {
            Ok(written) => written.map(|_| ()).map_err(not_committed),
            Err(_) => Err(NsError::new(ErrorKind::EAGAIN, format!("the masters did not commit the change within {COMMIT_WAIT:?} (no majority reachable?)"))),
        }
    }

    fn blocks(&self) -> bool {
        true
    }

    fn lead(&self) -> Result<u64, NsError> {
        match standing(&self.raft.metrics().borrow()) {
            Standing::Leads { term } => Ok(term),
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
