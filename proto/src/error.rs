//! Error kinds of the API. Each maps one-to-one to an errno name, so the shell
//! can print it and the FUSE mount can return it without a translation table
//! of its own.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, named after the errno a POSIX file system would return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, reason = "errno names as POSIX spells them, which is also their JSON form")]
pub enum ErrorKind {
    /// No such file or directory.
    ENOENT,
    /// The name exists already.
    EEXIST,
    /// A path component that must be a directory is not one.
    ENOTDIR,
    /// A directory where a file is needed.
    EISDIR,
    /// A directory to remove or replace still has entries.
    ENOTEMPTY,
    /// An argument is malformed or not allowed (bad name, bad JSON, moving a
    /// directory into itself...).
    EINVAL,
    /// A name over 255 bytes, or a path over the length limit.
    ENAMETOOLONG,
    /// An inode has as many hard links as it may have.
    EMLINK,
    /// No such extended attribute.
    ENODATA,
    /// An extended attribute's value over 64 KiB.
    E2BIG,
    /// An extended attribute's name empty or over 255 bytes (or a buffer
    /// too small for a value).
    ERANGE,
    /// Not supported here: an extended attribute namespace dfs does not
    /// keep (`system.`, ACLs), or an unknown one.
    ENOTSUP,
    /// The operation is not permitted on this object (e.g. removing the root).
    EPERM,
    /// A request body over the size limit.
    EMSGSIZE,
    /// A file would grow past the largest file size.
    EFBIG,
    /// No space left: the cluster cannot store what was asked.
    ENOSPC,
    /// An internal failure (storage error); the request may be retried.
    EIO,
    /// Not possible right now (e.g. a lease is held by an unreachable
    /// primary until it expires); retry later.
    EAGAIN,
    /// A version conflict: the request names a version the replica does not
    /// hold (stale replica, or a write from an old lease).
    ESTALE,
    /// Authenticated, but not allowed: a chunk token for another chunk,
    /// version or operation; a node of another cluster.
    EACCES,
    /// Not authenticated: no signature or chunk token, or a forged one.
    EKEYREJECTED,
    /// A signature or chunk token that was valid once: expired, or signed
    /// with a key since retired. A new token from the master helps.
    EKEYEXPIRED,
}

impl ErrorKind {
    /// The errno value on Linux.
    pub fn errno(self) -> i32 {
        match self {
            ErrorKind::ENOENT => 2,
            ErrorKind::EIO => 5,
            ErrorKind::EPERM => 1,
            ErrorKind::EMLINK => 31,
            ErrorKind::ENODATA => 61,
            ErrorKind::E2BIG => 7,
            ErrorKind::ERANGE => 34,
            ErrorKind::ENOTSUP => 95,
            ErrorKind::EEXIST => 17,
            ErrorKind::ENOTDIR => 20,
            ErrorKind::EISDIR => 21,
            ErrorKind::EINVAL => 22,
            ErrorKind::ENOSPC => 28,
            ErrorKind::ENAMETOOLONG => 36,
            ErrorKind::ENOTEMPTY => 39,
            ErrorKind::EMSGSIZE => 90,
            ErrorKind::EFBIG => 27,
            ErrorKind::EAGAIN => 11,
            ErrorKind::ESTALE => 116,
            ErrorKind::EACCES => 13,
            ErrorKind::EKEYEXPIRED => 127,
            ErrorKind::EKEYREJECTED => 129,
        }
    }

    /// The HTTP status the API answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::ENOENT | ErrorKind::ENODATA => 404,
            ErrorKind::EEXIST | ErrorKind::ENOTEMPTY | ErrorKind::EMLINK => 409,
            ErrorKind::EPERM => 403,
            ErrorKind::EMSGSIZE => 413,
            ErrorKind::EAGAIN => 503,
            ErrorKind::ESTALE => 409,
            ErrorKind::EACCES => 403,
            ErrorKind::EKEYREJECTED | ErrorKind::EKEYEXPIRED => 401,
            ErrorKind::ENOSPC => 507,
            ErrorKind::EIO => 500,
            ErrorKind::ENOTDIR | ErrorKind::EISDIR | ErrorKind::EINVAL | ErrorKind::ENAMETOOLONG | ErrorKind::EFBIG => 400,
            ErrorKind::E2BIG | ErrorKind::ERANGE | ErrorKind::ENOTSUP => 400,
        }
    }

    /// What `strerror` says for this errno, for messages meant for people.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::ENOENT => "No such file or directory",
            ErrorKind::EEXIST => "File exists",
            ErrorKind::ENOTDIR => "Not a directory",
            ErrorKind::EISDIR => "Is a directory",
            ErrorKind::ENOTEMPTY => "Directory not empty",
            ErrorKind::EINVAL => "Invalid argument",
            ErrorKind::ENAMETOOLONG => "File name too long",
            ErrorKind::EPERM => "Operation not permitted",
            ErrorKind::EMLINK => "Too many links",
            ErrorKind::ENODATA => "No data available",
            ErrorKind::E2BIG => "Argument list too long",
            ErrorKind::ERANGE => "Numerical result out of range",
            ErrorKind::ENOTSUP => "Operation not supported",
            ErrorKind::EMSGSIZE => "Message too long",
            ErrorKind::EFBIG => "File too large",
            ErrorKind::ENOSPC => "No space left on device",
            ErrorKind::EIO => "Input/output error",
            ErrorKind::EAGAIN => "Resource temporarily unavailable",
            ErrorKind::ESTALE => "Stale file handle",
            ErrorKind::EACCES => "Permission denied",
            ErrorKind::EKEYEXPIRED => "Key has expired",
            ErrorKind::EKEYREJECTED => "Key was rejected by service",
        }
    }

    /// True when trying the same request again may succeed.
    pub fn is_temporary(self) -> bool {
        matches!(self, ErrorKind::EIO | ErrorKind::EAGAIN)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// On a master's `EAGAIN` answer (503) when another master leads the Raft
/// group: the leader's base URL, for the client to send the request there.
pub const HEADER_LEADER: &str = "x-dfs-leader";

/// The JSON body of every error answer: `{"error": "ENOENT", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorKind,
    pub message: String,
}
