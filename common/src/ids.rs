//! Typed ids, so that an inode number is never passed where a chunk handle is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An inode number. The root directory is [`InodeId::ROOT`]; 0 is never used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InodeId(pub u64);

impl InodeId {
    /// The root directory, as in most Unix file systems' FUSE view.
    pub const ROOT: InodeId = InodeId(1);
}

/// A chunk's cluster-wide handle, allocated by the master and never reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkHandle(pub u64);

/// A chunk's version, bumped on every new lease; replicas below it are stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkVersion(pub u64);

macro_rules! display_as_number {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    )*};
}
display_as_number!(InodeId, ChunkHandle, ChunkVersion);

/// A chunkserver's identity: created on its first start and kept in its data
/// directory, so it is recognised whatever address it comes back on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub uuid::Uuid);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
