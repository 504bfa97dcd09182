//! Bandwidth pacing for background work (re-replication copies, scrubbing):
//! after each piece, wait until the average rate since the start is back at
//! or under the limit, so background I/O never crowds out clients for long.

use std::time::{Duration, Instant};

/// A rate in MiB/s (as configured) in bytes/s.
pub fn mib_per_sec(mib: u64) -> u64 {
    mib.saturating_mul(1 << 20)
}

/// How long to wait, `elapsed` after the start with `bytes_done` bytes done,
/// for the average rate to be at most `bytes_per_sec` (0: no limit).
pub fn pause_for(bytes_done: u64, bytes_per_sec: u64, elapsed: Duration) -> Duration {
    if bytes_per_sec == 0 {
        return Duration::ZERO;
    }
    let due_ns = u128::from(bytes_done) * 1_000_000_000 / u128::from(bytes_per_sec);
    let due = Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX));
    due.saturating_sub(elapsed)
}

/// Paces one stream of work from the moment it is made.
pub struct Pacer {
    started: Instant,
    bytes_per_sec: u64,
    done: u64,
}

impl Pacer {
    /// `bytes_per_sec` 0 means no limit.
    pub fn new(bytes_per_sec: u64) -> Pacer {
        Pacer { started: Instant::now(), bytes_per_sec, done: 0 }
    }

    /// Counts `bytes` as done and sleeps as long as the rate requires.
    pub async fn add(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes);
        let wait = pause_for(self.done, self.bytes_per_sec, self.started.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn ahead_of_the_rate_waits_the_difference() {
        // 8 MiB at 16 MiB/s is due at 500 ms.
        assert_eq!(pause_for(8 * MIB, 16 * MIB, Duration::from_millis(100)), Duration::from_millis(400));
        assert_eq!(pause_for(8 * MIB, 16 * MIB, Duration::ZERO), Duration::from_millis(500));
    }

    #[test]
    fn at_or_behind_the_rate_does_not_wait() {
        assert_eq!(pause_for(8 * MIB, 16 * MIB, Duration::from_millis(500)), Duration::ZERO);
        assert_eq!(pause_for(8 * MIB, 16 * MIB, Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(pause_for(0, 16 * MIB, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn no_limit_and_extremes() {
        assert_eq!(pause_for(u64::MAX, 0, Duration::ZERO), Duration::ZERO);
        // No overflow: u64::MAX bytes at 1 B/s is as long as a Duration of nanoseconds gets.
        assert_eq!(pause_for(u64::MAX, 1, Duration::ZERO), Duration::from_nanos(u64::MAX));
        assert_eq!(mib_per_sec(128), 128 * MIB);
        assert_eq!(mib_per_sec(u64::MAX), u64::MAX);
    }

    #[tokio::test]
    async fn a_pacer_holds_the_average_rate() {
        let start = Instant::now();
        let mut pacer = Pacer::new(10 * MIB);
        pacer.add(MIB).await;
        pacer.add(MIB).await;
        // 2 MiB at 10 MiB/s: at least 200 ms.
        assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    }
}
