//! Failure detection: a chunkserver is dead once it has been silent for the
//! dead interval. State is derived from the last heartbeat, never stored, so
//! it cannot go stale.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Live,
    Dead,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Dead => "dead",
        }
    }
}

pub fn liveness(last_heartbeat: Instant, now: Instant, dead_after: Duration) -> Liveness {
    if now.saturating_duration_since(last_heartbeat) >= dead_after {
        Liveness::Dead
    } else {
        Liveness::Live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_past_the_dead_interval_is_death() {
        let t0 = Instant::now();
        let dead_after = Duration::from_secs(30);
        assert_eq!(liveness(t0, t0, dead_after), Liveness::Live);
        assert_eq!(liveness(t0, t0 + Duration::from_millis(29_999), dead_after), Liveness::Live);
        assert_eq!(liveness(t0, t0 + dead_after, dead_after), Liveness::Dead);
        // A heartbeat "from the future" (clock read order) is not death.
        assert_eq!(liveness(t0 + Duration::from_secs(1), t0, dead_after), Liveness::Live);
    }
}
