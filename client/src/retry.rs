//! What a call that goes back to the master after a failure does next:
//! one decision for reads, writes and syncs, so that an error is judged in
//! one place.
//!
//! A chunk token the chunkserver refused (`ClientError::token_refused`) is
//! renewed: the caller has dropped the location or lease it came with, and
//! the next attempt asks the master for a fresh one. The first renewal is
//! at once (the usual case: the token expired, and a new one works); then
//! with growing pauses, since a chunkserver learns a token key the master
//! just made with its next heartbeat; a few times only, since a token the
//! master keeps issuing and a chunkserver keeps refusing will not get
//! better. Other errors are retried while the caller says a retry can help
//! and the call's deadline allows, with pauses doubling up to a cap.

use std::time::{Duration, Instant};

use crate::error::ClientError;

/// Pauses before each new token for one call: about two heartbeats of the
/// default 3 s in all, after which a chunkserver has heard of any key the
/// master signs with.
const RENEWAL_PAUSES: [Duration; 6] =
    [Duration::ZERO, Duration::from_millis(250), Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(3)];

/// The retry state of one call.
#[derive(Debug)]
pub(crate) struct Retry {
    until: Instant,
    pause: Duration,
    max_pause: Duration,
    renewals: usize,
}

impl Retry {
    /// Retries until `until`, pausing `first` and then twice as long each
    /// time, up to `max_pause`.
    pub fn new(until: Instant, first: Duration, max_pause: Duration) -> Retry {
        Retry { until, pause: first, max_pause, renewals: 0 }
    }

    /// After the failure `e` at `now`: how long to pause before trying
    /// again, or `None` when the call fails with `e`. `retryable`: whether
    /// the caller may try again after this (other than token) error.
    pub fn after(&mut self, e: &ClientError, retryable: bool, now: Instant) -> Option<Duration> {
        if e.token_refused() {
            let pause = RENEWAL_PAUSES.get(self.renewals).copied()?;
            self.renewals += 1;
            return Some(pause);
        }
        if !retryable || now + self.pause > self.until {
            return None;
        }
        let pause = self.pause;
        self.pause = (pause * 2).min(self.max_pause);
        Some(pause)
    }
}

/// Of the failures of one attempt that asked several replicas, the one it
/// reports: a refused token only when nothing else failed, since a new
/// token is then all that helps, while another failure is retried (or
/// reported) for what it is, for longer than a token is renewed.
pub(crate) fn combine(earlier: Option<ClientError>, next: ClientError) -> ClientError {
    match earlier {
        Some(e) if next.token_refused() && !e.token_refused() => e,
        _ => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::ErrorKind;

    fn err(kind: ErrorKind) -> ClientError {
        ClientError::new(kind, "test")
    }

    #[test]
    fn a_refused_token_is_renewed_at_once_then_a_few_times_more_slowly() {
        let t0 = Instant::now();
        // A deadline already past does not stop renewals: they have their own bound.
        let mut r = Retry::new(t0, Duration::from_millis(20), Duration::from_secs(1));
        let mut pauses = Vec::new();
        for kind in [ErrorKind::EKEYEXPIRED, ErrorKind::EKEYREJECTED].iter().cycle().take(10) {
            match r.after(&err(*kind), false, t0) {
                Some(p) => pauses.push(p),
                None => break,
            }
        }
        assert_eq!(pauses, RENEWAL_PAUSES);
        assert!(pauses.iter().sum::<Duration>() >= Duration::from_secs(6), "covers a chunkserver's next heartbeats");
    }

    #[test]
    fn other_errors_back_off_until_the_deadline() {
        let t0 = Instant::now();
        let mut r = Retry::new(t0 + Duration::from_secs(3), Duration::from_millis(500), Duration::from_secs(1));
        let e = err(ErrorKind::EIO);
        assert_eq!(r.after(&e, true, t0), Some(Duration::from_millis(500)));
        assert_eq!(r.after(&e, true, t0), Some(Duration::from_secs(1)));
        assert_eq!(r.after(&e, true, t0 + Duration::from_secs(1)), Some(Duration::from_secs(1)), "capped");
        assert_eq!(r.after(&e, true, t0 + Duration::from_millis(2_500)), None, "the pause would end past the deadline");
        let mut r = Retry::new(t0 + Duration::from_secs(3), Duration::from_millis(500), Duration::from_secs(1));
        assert_eq!(r.after(&err(ErrorKind::EACCES), false, t0), None, "not retryable: fails at once");
    }

    #[test]
    fn a_refused_token_is_reported_only_when_nothing_else_failed() {
        let (eio, expired) = (err(ErrorKind::EIO), err(ErrorKind::EKEYEXPIRED));
        assert_eq!(combine(None, expired.clone()).kind, ErrorKind::EKEYEXPIRED);
        assert_eq!(combine(Some(eio.clone()), expired.clone()).kind, ErrorKind::EIO);
        assert_eq!(combine(Some(expired.clone()), eio.clone()).kind, ErrorKind::EIO);
        assert_eq!(combine(Some(expired.clone()), err(ErrorKind::EKEYREJECTED)).kind, ErrorKind::EKEYREJECTED);
        assert_eq!(combine(Some(eio), err(ErrorKind::ESTALE)).kind, ErrorKind::ESTALE, "otherwise the last one");
    }

    #[test]
    fn renewals_and_backoff_are_counted_apart() {
        let t0 = Instant::now();
        let mut r = Retry::new(t0 + Duration::from_secs(60), Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(r.after(&err(ErrorKind::EIO), true, t0), Some(Duration::from_millis(100)));
        assert_eq!(r.after(&err(ErrorKind::EKEYEXPIRED), false, t0), Some(Duration::ZERO));
        assert_eq!(r.after(&err(ErrorKind::EAGAIN), true, t0), Some(Duration::from_millis(200)));
        assert_eq!(r.after(&err(ErrorKind::EKEYEXPIRED), false, t0), Some(Duration::from_millis(250)));
    }
}
