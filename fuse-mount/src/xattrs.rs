//! Extended attributes in the mount: the kernel's get/list/set/remove
//! calls go to the master, except for inodes the master said have none
//! (`Attr::has_xattrs`), which are answered here: the kernel asks for
//! `security.capability` before a file's first write and `ls -l` lists
//! every file's attributes, and neither should cost a master call.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs_proto::wire::namespace::Attr;
use dfs_proto::InodeId;
use fuser::{Errno, ReplyXattr};

/// What the master last said about each inode's attributes, and when.
pub struct XattrHints {
    /// How long a "none" is trusted: as long as the kernel trusts attributes.
    ttl: Duration,
    seen: Mutex<HashMap<InodeId, (bool, Instant)>>,
}

impl XattrHints {
    pub fn new(ttl: Duration) -> Self {
        XattrHints { ttl, seen: Mutex::default() }
    }

    fn seen(&self) -> MutexGuard<'_, HashMap<InodeId, (bool, Instant)>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes what fresh attributes say.
    pub fn learn(&self, a: &Attr, now: Instant) {
        self.seen().insert(a.inode, (a.has_xattrs, now));
    }

    /// True when the inode surely has no attributes: the master said so
    /// within the attribute TTL.
    pub fn surely_none(&self, inode: InodeId, now: Instant) -> bool {
        self.seen().get(&inode).is_some_and(|(has, at)| !has && now.saturating_duration_since(*at) < self.ttl)
    }

    pub fn forget(&self, inode: InodeId) {
        self.seen().remove(&inode);
    }
}

/// Replies to getxattr/listxattr with `bytes` under the kernel's size
/// protocol: a size of 0 asks for the length, a smaller buffer is ERANGE.
pub fn reply_bytes(reply: ReplyXattr, size: u32, bytes: &[u8]) {
    match u32::try_from(bytes.len()) {
        Ok(len) if size == 0 => reply.size(len),
        Ok(len) if len <= size => reply.data(bytes),
        _ => reply.error(Errno::ERANGE),
    }
}

/// listxattr's answer: each name followed by a NUL.
pub fn name_list(names: &[String]) -> Vec<u8> {
    names.iter().flat_map(|n| n.bytes().chain(std::iter::once(0))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::test_attr;
    use dfs_proto::wire::namespace::FileKind;

    #[test]
    fn none_is_trusted_for_the_attribute_ttl_only() {
        let hints = XattrHints::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let mut a = test_attr(FileKind::File, 0o644);
        assert!(!hints.surely_none(a.inode, t0), "unknown is not none");
        hints.learn(&a, t0);
        assert!(hints.surely_none(a.inode, t0 + Duration::from_millis(999)));
        assert!(!hints.surely_none(a.inode, t0 + Duration::from_secs(1)));
        a.has_xattrs = true;
        hints.learn(&a, t0);
        assert!(!hints.surely_none(a.inode, t0));
        assert_eq!(name_list(&["user.a".into(), "user.bc".into()]), b"user.a\0user.bc\0");
    }
}
