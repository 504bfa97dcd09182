//! Garbage-collection decisions: when a removed chunk, or a replica of a
//! chunk the master does not know, may be deleted. Deleting waits out a
//! grace period: a removed chunk may still be in a writer's cached lease,
//! and an unknown one may be a chunk being allocated right now (its replicas
//! are created before the master records it in its map). Replicas of
//! unknown chunks also wait until the master has run for a start-up delay
//! (HDFS's `startup.delay.block.deletion`): a master started on an empty or
//! wrong data directory knows no chunk, and must not delete every replica
//! it hears about before an operator notices.

use std::time::{Duration, Instant};

/// A chunk removed at `removed_ns` (wall clock, ns) is due at `now_ns`.
pub fn removed_chunk_due(removed_ns: i64, now_ns: i64, grace: Duration) -> bool {
    now_ns.saturating_sub(removed_ns) >= grace.as_nanos().min(i64::MAX as u128) as i64
}

/// When replicas of unknown chunks may be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrphanRule {
    /// How long a replica must have been reported.
    pub grace: Duration,
    /// When this master started.
    pub started: Instant,
    /// How long after the start nothing unknown is deleted.
    pub startup_delay: Duration,
}

/// A replica of an unknown chunk, first reported at `first_seen`, is due:
/// reported for the whole grace, and the start-up delay is over.
pub fn orphan_due(first_seen: Instant, now: Instant, rule: &OrphanRule) -> bool {
    now.saturating_duration_since(rule.started) >= rule.startup_delay && now.saturating_duration_since(first_seen) >= rule.grace
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
        let rule = OrphanRule { grace, started: t0, startup_delay: Duration::ZERO };
        assert!(!orphan_due(t0, t0 + Duration::from_secs(59), &rule));
        assert!(orphan_due(t0, t0 + grace, &rule));
    }

    #[test]
    fn unknown_replicas_wait_out_the_startup_delay_too() {
        let (grace, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
        let started = Instant::now();
        let rule = OrphanRule { grace, started, startup_delay: hour };
        // Reported at once by a chunkserver of another (or the old) cluster.
        assert!(!orphan_due(started, started + grace, &rule), "the grace alone is not enough");
        assert!(!orphan_due(started, started + hour - Duration::from_millis(1), &rule));
        assert!(orphan_due(started, started + hour, &rule));
        // Reported late: the grace still runs from the first report.
        let late = started + hour - Duration::from_secs(10);
        assert!(!orphan_due(late, started + hour, &rule));
        assert!(orphan_due(late, late + grace, &rule));
    }
}
