//! The chunks being copied here (re-replication on the master's order):
//! one copy of a chunk at a time, and a delete order never removes a
//! replica while its copy is being made.

use std::collections::HashSet;
use std::sync::{Arc, MutexGuard, PoisonError};

use dfs_proto::ChunkHandle;

use super::state::Node;

/// The right to copy one chunk here; released when dropped, on every path.
pub struct CopyClaim {
    node: Arc<Node>,
    pub handle: ChunkHandle,
}

impl CopyClaim {
    /// `None` when a copy of the chunk is already under way.
    pub fn take(node: &Arc<Node>, handle: ChunkHandle) -> Option<CopyClaim> {
        copies(node).insert(handle).then(|| CopyClaim { node: node.clone(), handle })
    }
}

impl Drop for CopyClaim {
    fn drop(&mut self) {
        copies(&self.node).remove(&self.handle);
    }
}

fn copies(node: &Node) -> MutexGuard<'_, HashSet<ChunkHandle>> {
    // The set stays consistent even if a holder panicked: inserts and removes are single calls.
    node.copying.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a copy of the chunk is being made here right now.
pub fn copy_in_progress(node: &Node, handle: ChunkHandle) -> bool {
    copies(node).contains(&handle)
}
