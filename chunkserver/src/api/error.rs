//! The node's errors as API answers: the status and `{"error", "message"}`
//! a handler sends when the chunk store or the node refuses.

use dfs_proto::ErrorKind;
use dfs_server_kit::http::ApiError;

use crate::chunk_store::ChunkError;
use crate::node::NotServing;

/// Maps a chunk-store error to its API answer.
pub fn chunk_error(e: ChunkError) -> ApiError {
    let kind = match &e {
        ChunkError::UnknownChunk(_) => ErrorKind::ENOENT,
        ChunkError::Exists => ErrorKind::EEXIST,
        // The writer's lease is over: it asks the master for a new one.
        ChunkError::VersionConflict { .. } | ChunkError::LostWrites { .. } => ErrorKind::ESTALE,
        ChunkError::OutOfRange { .. } | ChunkError::BodyChecksum { .. } | ChunkError::BadArgument(_) => ErrorKind::EINVAL,
        ChunkError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => ErrorKind::ENOSPC,
        ChunkError::Corrupt { .. } | ChunkError::SyncFailed { .. } | ChunkError::Io(..) => ErrorKind::EIO,
    };
    ApiError::new(kind, e.to_string())
}

/// Not registered yet: EAGAIN, a retry (after the next report) helps.
impl From<NotServing> for ApiError {
    fn from(e: NotServing) -> Self {
        ApiError::new(ErrorKind::EAGAIN, e.to_string())
    }
}
