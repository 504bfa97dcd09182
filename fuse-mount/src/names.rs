//! Directories whose every name this mount knows, so that a lookup of a
//! name that is not there is answered here instead of by the master: what
//! a negative dentry cached for the entry TTL would do, for names never
//! looked up before. Creating files (cp, tar, git, untar) looks up each new
//! name first; this halves the round trips of a create.
//!
//! A directory is known from its creation here (empty) or from a complete
//! listing, for one entry TTL; changes made through this mount keep it up
//! to date. Another mount's new names show once the TTL has passed, as
//! with the kernel's own entry cache.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs_proto::InodeId;

/// Most directories known at once, most names in one, and most names
/// learnt from listings in all (names added here grow them only at the
/// pace of creates, for one TTL).
const MAX_DIRS: usize = 4096;
const MAX_NAMES: usize = 100_000;
const MAX_LISTED: usize = 200_000;

struct Known {
    names: HashSet<String>,
    since: Instant,
    /// Last answer or change: the least recently used goes first.
    used: Instant,
}

pub struct KnownDirs {
    ttl: Duration,
    dirs: Mutex<HashMap<InodeId, Known>>,
}

impl KnownDirs {
    pub fn new(ttl: Duration) -> Self {
        KnownDirs { ttl, dirs: Mutex::default() }
    }

    fn dirs(&self) -> MutexGuard<'_, HashMap<InodeId, Known>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when `dir` is known (and fresh at `now`) and has no `name`.
    pub fn absent(&self, dir: InodeId, name: &str, now: Instant) -> bool {
        let mut dirs = self.dirs();
        match dirs.get_mut(&dir) {
            Some(k) if now.duration_since(k.since) < self.ttl => {
                k.used = k.used.max(now);
                !k.names.contains(name)
            }
            Some(_) => {
                dirs.remove(&dir);
                false
            }
            None => false,
        }
    }

    /// `dir` holds exactly `names` as of `since`.
    pub fn learn(&self, dir: InodeId, names: HashSet<String>, since: Instant) {
        if names.len() > MAX_NAMES {
            return;
        }
        let mut dirs = self.dirs();
        dirs.remove(&dir);
        // Names are counted only for a listing: a directory made here
        // (every mkdir) arrives empty and must not cost a pass over all.
        let full = |dirs: &HashMap<InodeId, Known>| {
            dirs.len() >= MAX_DIRS || (!names.is_empty() && dirs.values().map(|k| k.names.len()).sum::<usize>() + names.len() > MAX_LISTED)
        };
        if full(&dirs) {
            dirs.retain(|_, k| since.duration_since(k.since) < self.ttl);
        }
        while full(&dirs) {
            // Drop the least recently used (not the oldest: a directory
            // being filled, e.g. by mkdir of a tree, is old and busy).
            let coldest = dirs.iter().min_by_key(|(_, k)| k.used).map(|(d, _)| *d);
            coldest.map(|d| dirs.remove(&d));
        }
        dirs.insert(dir, Known { names, since, used: since });
    }

    /// `name` was made in `dir` through this mount.
    pub fn added(&self, dir: InodeId, name: &str) {
        let mut dirs = self.dirs();
        if let Some(k) = dirs.get_mut(&dir) {
            k.used = k.used.max(Instant::now());
            k.names.insert(name.to_string());
            if k.names.len() > MAX_NAMES {
                dirs.remove(&dir);
            }
        }
    }

    /// `name` was removed from `dir` through this mount.
    pub fn removed(&self, dir: InodeId, name: &str) {
        if let Some(k) = self.dirs().get_mut(&dir) {
            k.names.remove(name);
        }
    }

    /// What is known of `dir` may be wrong: forget it.
    pub fn forget(&self, dir: InodeId) {
        self.dirs().remove(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_complete_listing_answers_absent() {
        let t0 = Instant::now();
        let k = KnownDirs::new(Duration::from_secs(10));
        let d = InodeId(7);
        assert!(!k.absent(d, "a", t0), "an unknown directory answers nothing");
        k.learn(d, HashSet::from(["a".to_string()]), t0);
        assert!(!k.absent(d, "a", t0));
        assert!(k.absent(d, "b", t0));
        k.added(d, "b");
        assert!(!k.absent(d, "b", t0));
        k.removed(d, "a");
        assert!(k.absent(d, "a", t0 + Duration::from_secs(9)));
        assert!(!k.absent(d, "a", t0 + Duration::from_secs(10)), "stale after the TTL");
        assert!(!k.absent(d, "zzz", t0), "and forgotten once stale");
    }

    #[test]
    fn the_least_recently_used_directory_goes_first() {
        let t0 = Instant::now();
        let k = KnownDirs::new(Duration::from_secs(10));
        let busy = InodeId(1);
        k.learn(busy, HashSet::new(), t0);
        for i in 0..MAX_DIRS as u64 {
            let now = t0 + Duration::from_millis(i + 1);
            assert!(k.absent(busy, "x", now), "the busy directory was dropped after {i} others");
            k.learn(InodeId(i + 2), HashSet::new(), now);
        }
        assert!(!k.absent(InodeId(2), "x", t0 + Duration::from_secs(1)), "the coldest went");
    }

    #[test]
    fn forgotten_and_oversized_directories_answer_nothing() {
        let t0 = Instant::now();
        let k = KnownDirs::new(Duration::from_secs(10));
        k.learn(InodeId(1), HashSet::new(), t0);
        k.forget(InodeId(1));
        assert!(!k.absent(InodeId(1), "x", t0));
        let big: HashSet<String> = (0..=MAX_NAMES).map(|i| i.to_string()).collect();
        k.learn(InodeId(2), big, t0);
        assert!(!k.absent(InodeId(2), "x", t0));
    }
}
