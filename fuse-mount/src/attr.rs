//! Translations between the dfs wire types and FUSE's: attributes, times,
//! names and errors.

use std::ffi::OsStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dfs_client::ClientError;
use dfs_proto::wire::namespace::{Attr, FileKind};
use dfs_proto::ErrorKind;
use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};

/// What `stat` reports as the preferred I/O size: one FUSE request.
pub const BLOCK_SIZE: u32 = 1 << 20;

pub fn file_attr(a: &Attr) -> FileAttr {
    let kind = match a.kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    };
    FileAttr {
        ino: INodeNo(a.inode.0),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: system_time(a.atime_ns),
        mtime: system_time(a.mtime_ns),
        ctime: system_time(a.ctime_ns),
        crtime: system_time(a.ctime_ns),
        kind,
        perm: (a.mode & 0o7777) as u16,
        // 0 for a file open after its last name went, as fstat shows on Linux.
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        // The kernel's 32-bit encoding, which is what mknod gave.
        rdev: u32::try_from(a.rdev).unwrap_or(0),
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

pub fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Nanoseconds since the epoch, saturating far outside the i64 range.
pub fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map(|n| -n).unwrap_or(i64::MIN),
    }
}

pub fn time_or_now(t: TimeOrNow) -> i64 {
    match t {
        TimeOrNow::SpecificTime(t) => nanos(t),
        TimeOrNow::Now => nanos(SystemTime::now()),
    }
}

/// Names are UTF-8 in dfs; other bytes cannot name anything there.
pub fn name(n: &OsStr) -> Result<&str, Errno> {
    n.to_str().ok_or(Errno::EINVAL)
}

/// The errno a system call returns for a client error. Trouble that a
/// retry might fix (EAGAIN, ESTALE) has already been retried for as long as
/// configured, so it reaches applications as EIO.
pub fn errno(e: &ClientError) -> Errno {
    match e.kind {
        ErrorKind::EAGAIN | ErrorKind::ESTALE | ErrorKind::EMSGSIZE => Errno::EIO,
        kind => Errno::from_i32(kind.errno()),
    }
}

/// Attributes for unit tests: inode 2 in the root, owned by 1000:100.
#[cfg(test)]
pub fn test_attr(kind: FileKind, mode: u32) -> Attr {
    Attr {
        inode: dfs_proto::InodeId(2),
        kind,
        mode,
        uid: 1000,
        gid: 100,
        size: 0,
        atime_ns: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        nlink: 1,
        replication: 3,
        chunk_size_bytes: 1 << 26,
        parent: dfs_proto::InodeId::ROOT,
        rdev: 0,
        has_xattrs: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_nanosecond_on_both_sides_of_the_epoch() {
        for ns in [0, 1, 1_234_567_890_123_456_789, -1, -86_400_000_000_001] {
            assert_eq!(nanos(system_time(ns)), ns);
        }
    }

    #[test]
    fn retryable_errors_reach_applications_as_eio() {
        let e = |k| errno(&ClientError::new(k, "x"));
        assert_eq!(e(ErrorKind::EAGAIN), Errno::EIO);
        assert_eq!(e(ErrorKind::ESTALE), Errno::EIO);
        assert_eq!(e(ErrorKind::ENOTEMPTY), Errno::ENOTEMPTY);
        assert_eq!(e(ErrorKind::ENAMETOOLONG), Errno::ENAMETOOLONG);
    }
}
