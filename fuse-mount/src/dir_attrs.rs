//! Attributes of directories as the master gave them back with a change
//! made through this mount (a create, mkdir, rename, unlink...). The kernel
//! drops a directory's cached attributes whenever an entry in it changes,
//! then asks for them again at the next path walk through it (to check
//! permissions): answering that here saves a master round trip per change.
//! They are trusted for the attribute TTL from the change, exactly as the
//! kernel trusts what a getattr returns.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs_proto::wire::namespace::Attr;
use dfs_proto::InodeId;

/// Most directories remembered at once.
const MAX_DIRS: usize = 4096;

pub struct DirAttrs {
    ttl: Duration,
    dirs: Mutex<HashMap<InodeId, (Attr, Instant)>>,
}

impl DirAttrs {
    pub fn new(ttl: Duration) -> Self {
        DirAttrs { ttl, dirs: Mutex::default() }
    }

    fn dirs(&self) -> MutexGuard<'_, HashMap<InodeId, (Attr, Instant)>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The master answered a change with these directories' attributes. An
    /// answer older than what is held (two changes answered out of order)
    /// is ignored: ctimes only go up.
    pub fn learn(&self, attrs: &[Attr], now: Instant) {
        let mut dirs = self.dirs();
        for a in attrs {
            if dirs.get(&a.inode).is_some_and(|(held, _)| held.ctime_ns > a.ctime_ns) {
                continue;
            }
            dirs.insert(a.inode, (a.clone(), now));
        }
        if dirs.len() > MAX_DIRS {
            dirs.retain(|_, (_, since)| now.duration_since(*since) < self.ttl);
        }
        while dirs.len() > MAX_DIRS {
            let oldest = dirs.iter().min_by_key(|(_, (_, since))| *since).map(|(d, _)| *d);
            oldest.map(|d| dirs.remove(&d));
        }
    }

    /// A directory's attributes if learnt within the TTL, with the time
    /// they may still be trusted.
    pub fn fresh(&self, dir: InodeId, now: Instant) -> Option<(Attr, Duration)> {
        let mut dirs = self.dirs();
        let (attr, since) = dirs.get(&dir)?;
        match self.ttl.checked_sub(now.duration_since(*since)) {
            Some(left) if !left.is_zero() => Some((attr.clone(), left)),
            _ => {
                dirs.remove(&dir);
                None
            }
        }
    }

    /// What is held of `dir` may be wrong: forget it.
    pub fn forget(&self, dir: InodeId) {
        self.dirs().remove(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::wire::namespace::FileKind;

    fn dir(inode: u64, ctime_ns: i64) -> Attr {
        let a = crate::attr::test_attr(FileKind::Dir, 0o755);
        Attr { inode: InodeId(inode), mtime_ns: ctime_ns, ctime_ns, nlink: 2, ..a }
    }

    #[test]
    fn attributes_are_trusted_for_the_ttl_from_the_change() {
        let t0 = Instant::now();
        let c = DirAttrs::new(Duration::from_secs(10));
        assert!(c.fresh(InodeId(5), t0).is_none());
        c.learn(&[dir(5, 100)], t0);
        let (a, left) = c.fresh(InodeId(5), t0 + Duration::from_secs(4)).unwrap();
        assert_eq!((a.ctime_ns, left), (100, Duration::from_secs(6)));
        assert!(c.fresh(InodeId(5), t0 + Duration::from_secs(10)).is_none(), "expired");
        assert!(c.fresh(InodeId(5), t0).is_none(), "and dropped once expired");
    }

    #[test]
    fn a_late_older_answer_does_not_replace_a_newer_one() {
        let t0 = Instant::now();
        let c = DirAttrs::new(Duration::from_secs(10));
        c.learn(&[dir(5, 200)], t0);
        c.learn(&[dir(5, 100)], t0);
        assert_eq!(c.fresh(InodeId(5), t0).unwrap().0.ctime_ns, 200);
        c.learn(&[dir(5, 300)], t0);
        assert_eq!(c.fresh(InodeId(5), t0).unwrap().0.ctime_ns, 300);
        c.forget(InodeId(5));
        assert!(c.fresh(InodeId(5), t0).is_none());
    }

    #[test]
    fn it_stays_bounded() {
        let t0 = Instant::now();
        let c = DirAttrs::new(Duration::from_secs(10));
        for i in 0..(MAX_DIRS as u64 + 10) {
            c.learn(&[dir(i + 2, 1)], t0 + Duration::from_millis(i));
        }
        assert_eq!(c.dirs().len(), MAX_DIRS);
        assert!(c.fresh(InodeId(2), t0).is_none(), "the oldest went first");
    }
}
