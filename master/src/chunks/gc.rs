//! Garbage-collection decisions: when a removed chunk, or a replica of a
//! chunk the master does not know, may be deleted. Deleting waits out a
//! grace period: a removed chunk may still be in a writer's cached lease,
//! and an unknown one may be a chunk being allocated right now (its replicas
//! are created before the master records it in its map).

use std::time::{Duration, Instant};

/// A chunk removed at `removed_ns` (wall clock, ns) is due at `now_ns`.
pub fn removed_chunk_due(removed_ns: i64, now_ns: i64, grace: Duration) -> bool {
    now_ns.saturating_sub(removed_ns) >= grace.as_nanos().min(i64::MAX as u128) as i64
}

/// A replica of an unknown chunk, first reported at `first_seen`, is due.
pub fn orphan_due(first_seen: Instant, now: Instant, grace: Duration) -> bool {
    now.saturating_duration_since(first_seen) >= grace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_waits_out_the_grace_period() {
        let grace = Duration::from_secs(60);
        assert!(!removed_chunk_due(1_000, 1_000 + 59_999_999_999, grace));
        assert!(removed_chunk_due(1_000, 1_000 + 60_000_000_000, grace));
        assert!(removed_chunk_due(0, 60_000_000_000, grace), "records without a time are old");
        assert!(!removed_chunk_due(10, 0, grace), "a clock that went back is not a reason to delete");
        let t0 = Instant::now();
        assert!(!orphan_due(t0, t0 + Duration::from_secs(59), grace));
        assert!(orphan_due(t0, t0 + grace, grace));
    }
}
