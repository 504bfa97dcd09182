//! How long the retry cache's answers live (`retries.rs`), and the
//! compaction filter that drops them after: RocksDB removes an expired
//! entry when a compaction comes across it, so keeping the cache small
//! costs no scan and no index; a lookup checks the time itself, for
//! entries not compacted yet.

use std::time::Duration;

use rocksdb::compaction_filter::Decision;

/// How long an answer is kept for a retry (HDFS keeps 10 minutes too).
pub const RETRY_WINDOW: Duration = Duration::from_secs(600);

/// An entry's value starts with when it was made (i64 ns, big-endian).
pub fn made_at(value: &[u8]) -> Option<i64> {
    value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_be_bytes)
}

/// Whether an entry made at `at` is past the window at `now` (both ns).
pub fn expired(at: i64, now: i64) -> bool {
    now.saturating_sub(at) > RETRY_WINDOW.as_nanos() as i64
}

/// Nanoseconds since the Unix epoch, now (`db::now_ns` is this).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// The retry cache's compaction filter: drops entries past the window
/// (and malformed ones, which no lookup could use).
pub fn drop_expired(_level: u32, _key: &[u8], value: &[u8]) -> Decision {
    match made_at(value) {
        Some(at) if !expired(at, now_ns()) => Decision::Keep,
        _ => Decision::Remove,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_past_the_window_are_dropped() {
        let now = now_ns();
        let window = RETRY_WINDOW.as_nanos() as i64;
        assert!(matches!(drop_expired(0, b"k", &now.to_be_bytes()), Decision::Keep));
        assert!(matches!(drop_expired(0, b"k", &(now - window - 1_000_000_000).to_be_bytes()), Decision::Remove));
        assert!(matches!(drop_expired(0, b"k", b"short"), Decision::Remove));
        assert!(!expired(0, window) && expired(0, window + 1));
    }
}
