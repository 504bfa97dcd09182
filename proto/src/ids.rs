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

impl ChunkVersion {
    /// The highest version the master hands out (2^63 - 1: at one bump a
    /// millisecond, 292 million years away). A version above it in a
    /// request or a report was never issued: out of range (EINVAL).
    pub const MAX_ISSUED: ChunkVersion = ChunkVersion(i64::MAX as u64);

    /// Whether the master can have issued this version.
    pub fn in_range(self) -> bool {
        self <= Self::MAX_ISSUED
    }
}

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
