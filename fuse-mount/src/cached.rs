//! Which version of each file the kernel's cached pages hold, as (size,
//! mtime): an open that finds the master's attributes equal keeps the
//! pages (close-to-open without re-reading unchanged files).
//!
//! Telling the kernel new attributes (a lookup, a getattr) does not make
//! its pages new: a file another client changed keeps its old pages until
//! an open drops them. So new attributes that differ from the version the
//! pages hold forget it (the next open drops the pages), unless the change
//! is this mount's own commit, whose data went through those very pages.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use dfs_proto::InodeId;

/// A file's size and mtime (ns).
pub type Version = (u64, i64);

#[derive(Default)]
pub struct CachedPages {
    held: Mutex<HashMap<InodeId, Version>>,
}

impl CachedPages {
    fn held(&self) -> MutexGuard<'_, HashMap<InodeId, Version>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kernel was told `seen`: the first version heard of is what the
    /// pages (read from now on) hold; a different one means they may be stale.
    pub fn told(&self, inode: InodeId, seen: Version) {
        let mut held = self.held();
        match held.get(&inode) {
            None => {
                held.insert(inode, seen);
            }
            Some(v) if *v != seen => {
                held.remove(&inode);
            }
            Some(_) => {}
        }
    }

    /// This mount committed its writes, which the pages hold, and the file
    /// is now `after`.
    pub fn committed(&self, inode: InodeId, after: Version) {
        self.held().insert(inode, after);
    }

    /// Whether the pages hold `current` (an open may keep them).
    pub fn holds(&self, inode: InodeId, current: Version) -> bool {
        self.held().get(&inode) == Some(&current)
    }

    /// The pages were dropped (an open without keeping them, the kernel
    /// forgetting the inode): nothing is held until told again.
    pub fn dropped(&self, inode: InodeId) {
        self.held().remove(&inode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unchanged_or_self_committed_version_keeps_the_pages() {
        let c = CachedPages::default();
        let f = InodeId(7);
        c.told(f, (10, 1));
        assert!(c.holds(f, (10, 1)));
        // Another client rewrote it at the same size; a stat told the kernel.
        c.told(f, (10, 2));
        assert!(!c.holds(f, (10, 2)), "a stat must not make stale pages look current");
        assert!(!c.holds(f, (10, 1)));
        // After the open dropped the pages, the next version told is held.
        c.dropped(f);
        c.told(f, (10, 2));
        assert!(c.holds(f, (10, 2)));
        // This mount's own commit: its pages are the new data.
        c.committed(f, (20, 3));
        c.told(f, (20, 3));
        assert!(c.holds(f, (20, 3)));
    }
}
