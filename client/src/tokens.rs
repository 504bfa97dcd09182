//! Chunk tokens as the client sees them. The master puts a token in every
//! chunk location (read) and write lease (read and write); a chunkserver
//! refuses a data request without a valid one (401: EKEYEXPIRED when it
//! expired or its key was retired, EKEYREJECTED when missing or not
//! verifiable), before touching the replica.
//!
//! The client holds no key, so it cannot check a token, but it can read
//! when the token expires: a cached location or lease is used only until
//! shortly before then (by this host's clock), and the next call asks the
//! master for a new one instead of paying a refused round trip. A refusal
//! anyway (clocks apart, a chunkserver that has not yet heard of a new
//! key, a master restarted with new keys) is handled where the request
//! failed: the location or lease is dropped and the master asked again,
//! a few times (`retry.rs`).

use std::time::{Duration, Instant};

use dfs_proto::auth::ChunkToken;

/// Most of a token's remaining life kept in reserve: a request that starts
/// just before the expiry may reach the chunkserver after it.
const RESERVE_MAX: Duration = Duration::from_secs(10);

/// Until when a token received at `now` (`now_unix_ms` on the wall clock)
/// is used: a quarter of its remaining life before its expiry, at most
/// `RESERVE_MAX` before. `None` when the client cannot tell: the token does
/// not decode (an empty one from an older master), or it looks expired
/// already by this host's clock, which then disagrees with the master's;
/// such a token is used until a chunkserver refuses it.
pub(crate) fn usable_until(token: &str, now: Instant, now_unix_ms: u64) -> Option<Instant> {
    let (decoded, _, _) = ChunkToken::decode(token).ok()?;
    let left = Duration::from_millis(decoded.expires_unix_ms.checked_sub(now_unix_ms).filter(|ms| *ms > 0)?);
    let reserve = (left / 4).min(RESERVE_MAX);
    Some(now + left - reserve)
}

/// Whether a token with this `usable_until` may still be sent at `now`.
pub(crate) fn still_usable(until: Option<Instant>, now: Instant) -> bool {
    until.is_none_or(|t| now < t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::auth::{ClusterKey, KeyRing, Ops, TokenKey};
    use dfs_proto::{ChunkHandle, ChunkVersion};

    fn token_expiring_at(unix_ms: u64) -> String {
        let ring = KeyRing::single(ClusterKey::generate());
        let key = TokenKey::generate(&ring, 1, u64::MAX);
        let t =
            ChunkToken { key_id: 1, expires_unix_ms: unix_ms, handle: ChunkHandle(1), version: ChunkVersion(1), ops: Ops::READ, identity: "anonymous".into() };
        key.sign(&t)
    }

    #[test]
    fn a_token_is_used_until_shortly_before_it_expires() {
        let t0 = Instant::now();
        let wall = 1_000_000_000;
        // 3 s left: used for 2.25 s (a quarter kept in reserve).
        let until = usable_until(&token_expiring_at(wall + 3_000), t0, wall).unwrap();
        assert_eq!(until - t0, Duration::from_millis(2_250));
        assert!(still_usable(Some(until), t0 + Duration::from_millis(2_249)));
        assert!(!still_usable(Some(until), t0 + Duration::from_millis(2_250)));
        // 10 minutes left: the reserve is capped at 10 s.
        let until = usable_until(&token_expiring_at(wall + 600_000), t0, wall).unwrap();
        assert_eq!(until - t0, Duration::from_secs(590));
    }

    #[test]
    fn a_token_the_client_cannot_judge_is_used_until_refused() {
        let t0 = Instant::now();
        let wall = 1_000_000_000;
        // Expired by this host's clock at receipt: the clocks disagree.
        assert_eq!(usable_until(&token_expiring_at(wall - 1), t0, wall), None);
        assert_eq!(usable_until(&token_expiring_at(wall), t0, wall), None);
        // Not a token (an older master sends none).
        assert_eq!(usable_until("", t0, wall), None);
        assert_eq!(usable_until("not a token", t0, wall), None);
        assert!(still_usable(None, t0 + Duration::from_secs(1_000_000)));
    }
}
