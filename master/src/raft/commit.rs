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
use crate::store::writer::Commit;
use crate::store::{NsError, Store};

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
        self.runtime.block_on(self.raft.client_write(Command::of(&batch))).map(|_| ()).map_err(not_committed)
    }

    fn blocks(&self) -> bool {
        true
    }
}

/// Why a group was not answered: this master does not lead (retry at the
/// leader), or the group could not be committed. Either way the entry may
/// still commit later, which the retry cache answers for.
fn not_committed(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> NsError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            let leader = f.leader_node.map_or_else(|| "not known yet".to_string(), |n| n.addr);
            NsError::new(ErrorKind::EAGAIN, format!("this master does not lead the group; the leader is {leader}"))
        }
        other => NsError::new(ErrorKind::EIO, format!("the masters did not commit the change: {other}")),
    }
}
