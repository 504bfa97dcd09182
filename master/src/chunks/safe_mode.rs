//! Safe mode after a start: the master knows its chunks from the namespace
//! but not yet where their replicas are, so until enough chunkservers have
//! reported it must neither copy (everything would look under-replicated)
//! nor delete (everything unreported would look lost, and reported replicas
//! of chunks it has not matched yet would look like garbage).
//!
//! It ends once `threshold` of the chunks have a current replica reported
//! and `extension` has passed since (so the other nodes' reports arrive
//! too), or `timeout` after the start, whichever comes first, or on an
//! operator's request. Once ended it stays ended.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// Share of chunks (0..=1) that must have a current replica reported.
    pub threshold: f64,
    pub extension: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SafeMode {
    /// `reached`: when the threshold was met (and has stayed met).
    On {
        since: Instant,
        reached: Option<Instant>,
    },
    Off,
}

impl SafeMode {
    pub fn start(now: Instant) -> SafeMode {
        SafeMode::On { since: now, reached: None }
    }

    pub fn is_on(&self) -> bool {
        matches!(self, SafeMode::On { .. })
    }

    /// The state after observing `reported` of `total` chunks at `now`.
    pub fn step(self, rule: &Rule, now: Instant, reported: u64, total: u64) -> SafeMode {
        let SafeMode::On { since, reached } = self else { return SafeMode::Off };
        if now.saturating_duration_since(since) >= rule.timeout {
            return SafeMode::Off;
        }
        let share = if total == 0 { 1.0 } else { reported as f64 / total as f64 };
        if share < rule.threshold {
            return SafeMode::On { since, reached: None };
        }
        let reached = reached.unwrap_or(now);
        if now.saturating_duration_since(reached) >= rule.extension {
            SafeMode::Off
        } else {
            SafeMode::On { since, reached: Some(reached) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule { threshold: 0.999, extension: Duration::from_secs(5), timeout: Duration::from_secs(60) };

    #[test]
    fn ends_after_the_threshold_holds_for_the_extension() {
        let t0 = Instant::now();
        let s = SafeMode::start(t0).step(&RULE, t0 + Duration::from_secs(1), 500, 1000);
        assert!(s.is_on());
        let s = s.step(&RULE, t0 + Duration::from_secs(2), 1000, 1000);
        assert_eq!(s, SafeMode::On { since: t0, reached: Some(t0 + Duration::from_secs(2)) });
        assert!(s.step(&RULE, t0 + Duration::from_secs(6), 1000, 1000).is_on());
        assert!(!s.step(&RULE, t0 + Duration::from_secs(7), 1000, 1000).is_on());
    }

    #[test]
    fn falling_below_the_threshold_restarts_the_extension() {
        let t0 = Instant::now();
        let s = SafeMode::start(t0).step(&RULE, t0, 1000, 1000);
        let s = s.step(&RULE, t0 + Duration::from_secs(3), 10, 1000);
        assert_eq!(s, SafeMode::On { since: t0, reached: None });
    }

    #[test]
    fn the_timeout_ends_it_whatever_was_reported_and_off_stays_off() {
        let t0 = Instant::now();
        let s = SafeMode::start(t0).step(&RULE, t0 + Duration::from_secs(60), 0, 1000);
        assert_eq!(s, SafeMode::Off);
        assert_eq!(s.step(&RULE, t0 + Duration::from_secs(61), 0, 1000), SafeMode::Off);
    }

    #[test]
    fn an_empty_namespace_needs_only_the_extension() {
        let t0 = Instant::now();
        let s = SafeMode::start(t0).step(&RULE, t0, 0, 0);
        assert!(s.is_on());
        assert!(!s.step(&RULE, t0 + RULE.extension, 0, 0).is_on());
    }
}
