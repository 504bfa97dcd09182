//! The client's cache of chunk locations. An entry lives `ttl` at most, and
//! no longer than its chunk token may be used (`tokens.rs`), and is dropped
//! as soon as a read through it fails (a replica died, the version moved
//! on, the token was refused): the next read asks the master again.
//! Opening a file drops its entries, which gives close-to-open consistency.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::ChunkLocation;
use dfs_proto::InodeId;

use crate::tokens::usable_until;

/// What the cache knows about chunk `index` of a file: where it is, or that
/// the file had no chunk there (a hole) when asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    At(ChunkLocation),
    Hole,
}

pub struct LocationCache {
    ttl: Duration,
    max_entries: usize,
    /// Each entry with the instant it stops being used.
    entries: Mutex<HashMap<(InodeId, u64), (Known, Instant)>>,
}

impl LocationCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        LocationCache { ttl, max_entries, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(InodeId, u64), (Known, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chunks `first..=last` of a file when every one is cached and fresh.
    pub fn get_range(&self, inode: InodeId, first: u64, last: u64, now: Instant) -> Option<HashMap<u64, Known>> {
        (first..=last).map(|i| self.get(inode, i, now).map(|k| (i, k))).collect()
    }

    /// Chunk `index` of a file when cached and fresh.
    pub fn get(&self, inode: InodeId, index: u64, now: Instant) -> Option<Known> {
        match self.entries().get(&(inode, index)) {
            Some((k, until)) if now < *until => Some(k.clone()),
            _ => None,
        }
    }

    /// Caches what the master answered at `now` (`now_unix_ms` on the
    /// wall clock, to judge the tokens' expiry).
    pub fn put(&self, inode: InodeId, found: &HashMap<u64, Known>, now: Instant, now_unix_ms: u64) {
        let mut entries = self.entries();
        if entries.len() + found.len() > self.max_entries {
            // Bounded memory: starting over costs one locate per open file.
            entries.clear();
        }
        let until = |k: &Known| match k {
            Known::At(loc) => usable_until(&loc.token, now, now_unix_ms).map_or(now + self.ttl, |t| t.min(now + self.ttl)),
            Known::Hole => now + self.ttl,
        };
        entries.extend(found.iter().map(|(i, k)| ((inode, *i), (k.clone(), until(k)))));
    }

    pub fn forget(&self, inode: InodeId, index: u64) {
        self.entries().remove(&(inode, index));
    }

    pub fn forget_file(&self, inode: InodeId) {
        self.entries().retain(|(i, _), _| *i != inode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::auth::{ChunkToken, ClusterKey, KeyRing, Ops, TokenKey};
    use dfs_proto::{ChunkHandle, ChunkVersion};

    /// A wall-clock time for the tests (ms since the Unix epoch).
    const WALL: u64 = 1_700_000_000_000;

    fn loc(index: u64) -> Known {
        Known::At(ChunkLocation { index, handle: ChunkHandle(index), version: ChunkVersion(1), replicas: vec![], length: 0, token: String::new() })
    }

    #[test]
    fn entries_expire_and_are_dropped_on_demand() {
        let t0 = Instant::now();
        let cache = LocationCache::new(Duration::from_secs(10), 100);
        let f = InodeId(5);
        cache.put(f, &HashMap::from([(0, loc(0)), (1, Known::Hole)]), t0, WALL);
        assert_eq!(cache.get_range(f, 0, 1, t0).map(|m| m.len()), Some(2));
        assert!(cache.get_range(f, 0, 2, t0).is_none(), "chunk 2 was never asked for");
        assert!(cache.get_range(f, 0, 1, t0 + Duration::from_secs(11)).is_none(), "expired");
        cache.forget(f, 1);
        assert!(cache.get_range(f, 0, 1, t0).is_none());
        assert!(cache.get_range(f, 0, 0, t0).is_some());
        cache.forget_file(f);
        assert!(cache.get_range(f, 0, 0, t0).is_none());
    }

    #[test]
    fn an_entry_is_not_used_past_its_token() {
        let t0 = Instant::now();
        let cache = LocationCache::new(Duration::from_secs(60), 100);
        let ring = KeyRing::single(ClusterKey::generate());
        let key = TokenKey::generate(&ring, 1, u64::MAX);
        let token = ChunkToken {
            key_id: 1,
            expires_unix_ms: WALL + 4_000,
            handle: ChunkHandle(1),
            version: ChunkVersion(1),
            ops: Ops::READ,
            identity: "anonymous".into(),
        };
        let Known::At(mut at) = loc(0) else { unreachable!() };
        at.token = key.sign(&token);
        cache.put(InodeId(1), &HashMap::from([(0, Known::At(at)), (1, Known::Hole)]), t0, WALL);
        assert!(cache.get(InodeId(1), 0, t0 + Duration::from_millis(2_900)).is_some());
        assert!(cache.get(InodeId(1), 0, t0 + Duration::from_millis(3_000)).is_none(), "a quarter of the token's life is kept in reserve");
        assert!(cache.get(InodeId(1), 1, t0 + Duration::from_secs(59)).is_some(), "a hole has no token: the ttl holds");
    }

    #[test]
    fn the_cache_stays_bounded() {
        let t0 = Instant::now();
        let cache = LocationCache::new(Duration::from_secs(10), 3);
        cache.put(InodeId(1), &HashMap::from([(0, loc(0)), (1, loc(1))]), t0, WALL);
        cache.put(InodeId(2), &HashMap::from([(0, loc(0)), (1, loc(1))]), t0, WALL);
        assert!(cache.entries().len() <= 3);
        assert!(cache.get_range(InodeId(2), 0, 1, t0).is_some());
    }
}
