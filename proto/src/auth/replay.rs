//! The nonces of recently accepted signed requests, so that a captured
//! request is accepted once only. A nonce is remembered for as long as its
//! timestamp would pass the clock check; after that the check refuses it.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use super::signature::{AuthError, MAX_SKEW_MS};

/// Most nonces held at once (~48 bytes each): about 17 000 signed requests
/// a second for two minutes. Past it, new requests are refused for now
/// rather than letting memory grow or forgetting nonces early.
pub const NONCES_MAX: usize = 1 << 21;

#[derive(Default)]
pub struct ReplayCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashSet<[u8; 16]>,
    /// (forget after, nonce), in insertion order.
    order: VecDeque<(u64, [u8; 16])>,
}

impl ReplayCache {
    /// Accepts `nonce` once; `ts_ms` has passed the clock check already.
    pub fn check(&self, nonce: [u8; 16], ts_ms: u64, now_ms: u64) -> Result<(), AuthError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.expire(now_ms);
        if g.seen.contains(&nonce) {
            return Err(AuthError::Replayed);
        }
        if g.seen.len() >= NONCES_MAX {
            return Err(AuthError::Busy);
        }
        g.seen.insert(nonce);
        g.order.push_back((ts_ms.saturating_add(MAX_SKEW_MS), nonce));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn expire(&mut self, now_ms: u64) {
        // Timestamps arrive nearly in order; an early one stuck behind a
        // later one is forgotten a little late, never early.
        while let Some(&(until, nonce)) = self.order.front() {
            if until >= now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_while_it_can_pass_the_clock_check() {
        let cache = ReplayCache::default();
        assert_eq!(cache.check([1; 16], 1000, 1000), Ok(()));
        assert_eq!(cache.check([1; 16], 1000, 1000 + MAX_SKEW_MS), Err(AuthError::Replayed));
        assert_eq!(cache.check([2; 16], 1000, 1000), Ok(()));
        // Past the window the entries go (the clock check refuses those requests).
        assert_eq!(cache.check([3; 16], 1000 + 2 * MAX_SKEW_MS, 1001 + MAX_SKEW_MS), Ok(()));
        assert_eq!(cache.len(), 1);
    }
}
