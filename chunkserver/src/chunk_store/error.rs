//! The chunk store's error type.

use std::io;
use std::path::Path;

use dfs_proto::{ChunkHandle, ChunkVersion};

/// Everything a chunk store call can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// No replica of this chunk is stored here (or it was deleted or
    /// quarantined).
    #[error("chunk {0} is not stored here")]
    UnknownChunk(ChunkHandle),
    /// `create` found a replica with the same version but another chunk size.
    #[error("the chunk already exists with another chunk size")]
    Exists,
    /// The caller's version is not the replica's (or, for `set_version`, is
    /// below it): a stale replica is never read or written.
    #[error("chunk {handle}: replica has version {have}, request wants {want}")]
    VersionConflict { handle: ChunkHandle, have: ChunkVersion, want: ChunkVersion },
    /// The replica came back from a crash with writes it had not synced
    /// (see `ReplicaState::lost_writes`): no write or sync at this version.
    #[error("chunk {handle}: the replica came back from a crash with unsynced writes, some may be lost; it takes no write at version {version}")]
    LostWrites { handle: ChunkHandle, version: ChunkVersion },
    /// The byte range does not fit in the chunk.
    #[error("chunk {handle}: range at {offset_bytes} of {len_bytes} bytes is outside its {chunk_size_bytes} bytes")]
    OutOfRange { handle: ChunkHandle, offset_bytes: u64, len_bytes: u64, chunk_size_bytes: u64 },
    /// A piece of a write's body does not match the CRC sent with it; nothing
    /// was written. Resending the body can help.
    #[error("write body piece {piece} has CRC {actual:08x}, expected {expected:08x}")]
    BodyChecksum { piece: usize, expected: u32, actual: u32 },
    /// A stored block does not match its CRC: the replica is damaged and must
    /// not be served (see `ChunkStore::quarantine`).
    #[error("chunk {handle}: block {block} fails its checksum")]
    Corrupt { handle: ChunkHandle, block: u64 },
    /// Making the replica durable failed (an fsync error: its writeback
    /// may be lost, and a retry cannot tell). The replica was set aside
    /// (`quarantine/`) and is unknown to the store from now on.
    #[error("chunk {handle}: could not be made durable ({source}); the replica was set aside")]
    SyncFailed { handle: ChunkHandle, source: io::Error },
    /// An I/O error from the local file system. Errors made here keep the
    /// OS error's kind and name the action and file in their message.
    #[error("{0}")]
    Io(io::Error),
    /// A malformed argument (a chunk size that is not a multiple of 64 KiB, a
    /// wrong number of body CRCs, ...).
    #[error("bad argument: {0}")]
    BadArgument(String),
}

impl ChunkError {
    /// True when the request itself is at fault (unknown chunk, stale version,
    /// bad range or argument, damaged body): the replica is fine and the same
    /// request will fail again, except `BodyChecksum`, which a resend can fix.
    /// False for damage or I/O failure on this server.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, ChunkError::Corrupt { .. } | ChunkError::SyncFailed { .. } | ChunkError::Io(_))
    }

    /// An I/O error on `path`, saying what was being done.
    pub(crate) fn io(action: &str, path: &Path, source: io::Error) -> ChunkError {
        Self::io_context(format_args!("{action} {}", path.display()), source)
    }

    /// An I/O error, its message prefixed with `context`.
    pub(crate) fn io_context(context: std::fmt::Arguments<'_>, source: io::Error) -> ChunkError {
        ChunkError::Io(io::Error::new(source.kind(), format!("{context}: {source}")))
    }
}
