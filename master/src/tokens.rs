//! Chunk tokens: the keys the master signs them with, rolled on a schedule,
//! and the signing itself.
//!
//! Time is cut into slots of one roll period from the master's start; the
//! key of slot n signs during slot n only. It is announced to chunkservers
//! (in heartbeat answers) from `lead` before its slot begins, so that every
//! chunkserver knows it before the first token it signs reaches one, and
//! stays announced until the last token it signed has expired (the end of
//! its slot plus a token's lifetime); then it is retired. Keys live in
//! memory only: a restarted master makes new ones, and clients holding
//! tokens of the old ones get a new token when a chunkserver refuses theirs.
//!
//! [`TokenKeys`] is the schedule, a pure structure driven by the caller's
//! clock (tests use a fake one); [`Tokens`] is its thread-safe use.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use dfs_proto::auth::{unix_ms, ChunkToken, KeyRing, Ops, TokenError, TokenKey, TokenKeyInfo, TokenVerifier};
use dfs_proto::{ChunkHandle, ChunkVersion};
use dfs_server_kit::http::internal::ClusterAuth;
use rand::RngCore;

/// Whom tokens name until callers are authenticated (issue #20).
pub const ANONYMOUS: &str = "anonymous";

/// How long tokens and keys last, in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// A token is valid this long after it is signed.
    pub lifetime_ms: u64,
    /// A key signs for this long, then the next one does.
    pub roll_ms: u64,
    /// A key is announced at least this long before it signs (two
    /// heartbeat intervals: every live chunkserver has heard of it by then).
    pub lead_ms: u64,
}

impl Schedule {
    /// The schedule of the master's settings.
    pub fn new(lifetime_ms: u64, roll_ms: u64, heartbeat_interval_ms: u64) -> Self {
        Schedule { lifetime_ms, roll_ms: roll_ms.max(1), lead_ms: heartbeat_interval_ms.saturating_mul(2) }
    }
}

/// The token keys of one master process, by slot.
pub struct TokenKeys {
    schedule: Schedule,
    /// When slot 0 began (ms since the Unix epoch).
    start_ms: u64,
    keys: BTreeMap<u64, TokenKey>,
    /// Every key id handed out: none is used twice, so a token of a retired
    /// key can never check out under a new one.
    used_ids: HashSet<u32>,
}

impl TokenKeys {
    pub fn new(schedule: Schedule, now_ms: u64) -> Self {
        TokenKeys { schedule, start_ms: now_ms, keys: BTreeMap::new(), used_ids: HashSet::new() }
    }

    fn slot_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.start_ms) / self.schedule.roll_ms
    }

    fn signs_from(&self, slot: u64) -> u64 {
        self.start_ms.saturating_add(slot.saturating_mul(self.schedule.roll_ms))
    }

    /// When the last token a slot's key may sign expires: the key's end.
    fn not_after(&self, slot: u64) -> u64 {
        self.signs_from(slot.saturating_add(1)).saturating_add(self.schedule.lifetime_ms)
    }

    /// Makes the keys the schedule wants at `now_ms` (the signing one, and
    /// the next from `lead` before it signs) and retires those whose tokens
    /// have all expired, or whose cluster key is no longer in `ring` (no
    /// node can check them after a rotation). True if the announced set
    /// changed.
    pub fn advance(&mut self, ring: &KeyRing, now_ms: u64) -> bool {
        let before = self.keys.len();
        let ends: Vec<(u64, u64)> = self.keys.keys().map(|s| (*s, self.not_after(*s))).collect();
        for (slot, end) in ends {
            let derivable = self.keys.get(&slot).is_some_and(|k| ring.get(&k.info.cluster_key).is_some());
            if now_ms > end || !derivable {
                self.keys.remove(&slot);
            }
        }
        let mut changed = self.keys.len() != before;
        let current = self.slot_at(now_ms);
        let next = current.saturating_add(1);
        let wanted = match now_ms.saturating_add(self.schedule.lead_ms) >= self.signs_from(next) {
            true => vec![current, next],
            false => vec![current],
        };
        for slot in wanted {
            if !self.keys.contains_key(&slot) {
                self.make(ring, slot);
                changed = true;
            }
        }
        changed
    }

    fn make(&mut self, ring: &KeyRing, slot: u64) -> &TokenKey {
        let id = loop {
            let id = rand::rng().next_u32();
            if self.used_ids.insert(id) {
                break id;
            }
        };
        let key = TokenKey::generate(ring, id, self.not_after(slot));
        self.keys.entry(slot).or_insert(key)
    }

    /// The keys chunkservers should accept now, oldest first.
    pub fn announced(&self) -> Vec<TokenKeyInfo> {
        self.keys.values().map(|k| k.info.clone()).collect()
    }

    /// The key that signs at `now_ms` (made if [`TokenKeys::advance`] was
    /// not called since its slot began).
    pub fn signer(&mut self, ring: &KeyRing, now_ms: u64) -> &TokenKey {
        let slot = self.slot_at(now_ms);
        if !self.keys.contains_key(&slot) {
            return self.make(ring, slot);
        }
        &self.keys[&slot]
    }

    /// When a token signed at `now_ms` expires.
    pub fn expiry(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.schedule.lifetime_ms)
    }
}

/// One key and expiry for a batch of tokens (a list of locations).
pub struct Signer {
    key: TokenKey,
    expires_unix_ms: u64,
}

impl Signer {
    pub fn sign(&self, handle: ChunkHandle, version: ChunkVersion, ops: Ops) -> String {
        let token = ChunkToken { key_id: self.key.info.id, expires_unix_ms: self.expires_unix_ms, handle, version, ops, identity: ANONYMOUS.into() };
        self.key.sign(&token)
    }
}

/// The master's token keys, shared by its handlers.
pub struct Tokens {
    keys: Mutex<TokenKeys>,
    /// The announced keys, to check the tokens clients send back (their
    /// bad-replica reports).
    verifier: TokenVerifier,
    auth: Arc<ClusterAuth>,
}

impl Tokens {
    pub fn new(auth: Arc<ClusterAuth>, schedule: Schedule) -> Self {
        let tokens = Tokens { keys: Mutex::new(TokenKeys::new(schedule, unix_ms())), verifier: TokenVerifier::default(), auth };
        tokens.with_keys(unix_ms(), |_, _| ());
        tokens
    }

    /// Runs `f` on the keys brought up to `now_ms`.
    fn with_keys<T>(&self, now_ms: u64, f: impl FnOnce(&mut TokenKeys, &KeyRing) -> T) -> T {
        let ring = self.auth.ring();
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.advance(&ring, now_ms) {
            let missing = self.verifier.install(&ring, &keys.announced());
            if !missing.is_empty() {
                tracing::error!(?missing, "token keys this master made cannot be derived again");
            }
        }
        f(&mut keys, &ring)
    }

    /// The keys to announce in a heartbeat answer.
    pub fn announced(&self) -> Vec<TokenKeyInfo> {
        self.with_keys(unix_ms(), |keys, _| keys.announced())
    }

    /// A signer for tokens granted now.
    pub fn signer(&self) -> Signer {
        let now = unix_ms();
        self.with_keys(now, |keys, ring| {
            let expires_unix_ms = keys.expiry(now);
            Signer { key: keys.signer(ring, now).clone(), expires_unix_ms }
        })
    }

    /// Checks a token a client sent back allows `op` on `handle` at the
    /// version it names; the token.
    pub fn verify(&self, text: Option<&str>, handle: ChunkHandle, op: Ops) -> Result<ChunkToken, TokenError> {
        let (token, _, _) = ChunkToken::decode(text.ok_or(TokenError::Missing)?)?;
        let now = unix_ms();
        self.with_keys(now, |_, _| ());
        self.verifier.verify(text, now, handle, token.version, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::auth::ClusterKey;

    const LIFETIME: u64 = 600;
    const ROLL: u64 = 1_000;
    const LEAD: u64 = 200;

    fn schedule() -> Schedule {
        Schedule { lifetime_ms: LIFETIME, roll_ms: ROLL, lead_ms: LEAD }
    }

    fn ids(keys: &TokenKeys) -> Vec<u32> {
        keys.announced().iter().map(|k| k.id).collect()
    }

    #[test]
    fn a_key_is_announced_before_it_signs_and_retired_after_its_last_token_expires() {
        let ring = KeyRing::single(ClusterKey::generate());
        let t0 = 1_000_000;
        let mut keys = TokenKeys::new(schedule(), t0);
        // The first key signs at once (nobody holds a token yet).
        assert!(keys.advance(&ring, t0));
        let first = keys.signer(&ring, t0).info.clone();
        assert_eq!(ids(&keys), vec![first.id]);
        assert_eq!(first.not_after_unix_ms, t0 + ROLL + LIFETIME, "its last token expires a lifetime after its slot");
        assert!(!keys.advance(&ring, t0 + ROLL - LEAD - 1), "nothing new before the lead");
        // `lead` before the roll, the next key is announced but does not sign.
        assert!(keys.advance(&ring, t0 + ROLL - LEAD));
        let announced = ids(&keys);
        assert_eq!(announced.len(), 2);
        assert_eq!(keys.signer(&ring, t0 + ROLL - 1).info.id, first.id);
        let second = *announced.last().unwrap();
        // At the roll, the announced key signs and the old one stays.
        assert!(!keys.advance(&ring, t0 + ROLL));
        assert_eq!(keys.signer(&ring, t0 + ROLL).info.id, second);
        assert_eq!(ids(&keys), vec![first.id, second]);
        // A token the first key signed just before the roll expires at its not_after.
        assert!(keys.expiry(t0 + ROLL - 1) <= first.not_after_unix_ms);
        assert!(!keys.advance(&ring, t0 + ROLL + LIFETIME), "still verifying until its last token expired");
        assert!(keys.advance(&ring, t0 + ROLL + LIFETIME + 1));
        assert_eq!(ids(&keys), vec![second], "retired once its last token expired");
    }

    #[test]
    fn after_a_long_silence_the_current_slot_signs_and_old_keys_are_gone() {
        let ring = KeyRing::single(ClusterKey::generate());
        let mut keys = TokenKeys::new(schedule(), 0);
        keys.advance(&ring, 0);
        let old = keys.signer(&ring, 0).info.id;
        let now = 10 * ROLL + 1;
        keys.advance(&ring, now);
        let now_signing = keys.signer(&ring, now).info.clone();
        assert_ne!(now_signing.id, old);
        assert_eq!(ids(&keys), vec![now_signing.id], "no keys made for slots that signed nothing");
        assert_eq!(now_signing.not_after_unix_ms, 11 * ROLL + LIFETIME);
    }

    #[test]
    fn key_ids_are_never_reused_and_keys_of_a_removed_cluster_key_are_replaced() {
        let (old, new) = (ClusterKey::generate(), ClusterKey::generate());
        let ring = KeyRing::parse(&format!("{}\n{}\n", old.to_line(), new.to_line()), std::path::Path::new("k")).unwrap();
        let mut keys = TokenKeys::new(schedule(), 0);
        let mut seen = HashSet::new();
        for step in 0..500 {
            keys.advance(&ring, step * 100);
            assert!(keys.announced().iter().all(|k| k.cluster_key == old.id));
            for id in ids(&keys) {
                seen.insert(id);
            }
        }
        assert_eq!(seen.len(), keys.used_ids.len(), "every id made is a different one");
        assert!(seen.len() >= 49);
        // The old cluster key removed: its token keys go, a new one signs.
        let rotated = KeyRing::single(new.clone());
        let now = 500 * 100;
        assert!(keys.advance(&rotated, now));
        assert!(keys.announced().iter().all(|k| k.cluster_key == new.id));
        assert_eq!(keys.signer(&rotated, now).info.cluster_key, new.id);
    }

    #[test]
    fn signed_tokens_check_out_against_the_announced_keys() {
        let ring = KeyRing::single(ClusterKey::generate());
        let tokens = Tokens::new(ClusterAuth::fixed(ring.clone()), Schedule::new(60_000, 120_000, 1_000));
        let text = tokens.signer().sign(ChunkHandle(9), ChunkVersion(4), Ops::READ);
        let checked = tokens.verify(Some(&text), ChunkHandle(9), Ops::READ).unwrap();
        assert_eq!((checked.version, checked.identity.as_str()), (ChunkVersion(4), ANONYMOUS));
        assert!(matches!(tokens.verify(Some(&text), ChunkHandle(8), Ops::READ), Err(TokenError::WrongChunk { .. })));
        assert_eq!(tokens.verify(Some(&text), ChunkHandle(9), Ops::WRITE), Err(TokenError::WrongOp));
        assert_eq!(tokens.verify(None, ChunkHandle(9), Ops::READ), Err(TokenError::Missing));
        // A chunkserver holding the same cluster key accepts it.
        let cs = TokenVerifier::default();
        assert!(cs.install(&ring, &tokens.announced()).is_empty());
        assert!(cs.verify(Some(&text), unix_ms(), ChunkHandle(9), ChunkVersion(4), Ops::READ).is_ok());
    }
}
