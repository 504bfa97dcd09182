//! Chunk tokens, as HDFS block access tokens: the master signs what a
//! client may do with one chunk (read, write), at which version, until when
//! and for whom; chunkservers check the token before touching a replica.
//!
//! A token is `base64url(payload || mac)`, the payload binary and versioned
//! (see [`ChunkToken::encode`]), the MAC the first 16 bytes of an
//! HMAC-SHA256 with a token key. Token keys are made by the master and
//! rolled on a schedule; chunkservers learn them from heartbeat answers as
//! [`TokenKeyInfo`]: a salt from which the secret is derived with the
//! cluster key, so the secret itself never crosses the network.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::keys::{hex, unhex, KeyRing};
use crate::ids::{ChunkHandle, ChunkVersion};

type HmacSha256 = Hmac<Sha256>;

/// The header a client sends its token in.
pub const HEADER_TOKEN: &str = "x-dfs-token";
const FORMAT: u8 = 1;
const MAC_BYTES: usize = 16;
/// Longest identity a token names.
pub const IDENTITY_MAX_BYTES: usize = 255;
/// Longest token text accepted (a fixed payload plus the identity).
pub const TOKEN_MAX_CHARS: usize = 512;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ops(u8);

impl Ops {
    pub const READ: Ops = Ops(1);
    /// Write, append and sync the replica.
    pub const WRITE: Ops = Ops(2);
    pub const READ_WRITE: Ops = Ops(3);

    pub fn allows(self, op: Ops) -> bool {
        self.0 & op.0 == op.0
    }
}

/// What the master grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkToken {
    pub key_id: u32,
    pub expires_unix_ms: u64,
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub ops: Ops,
    /// Who it was issued to (a user name; "anonymous" until callers are
    /// authenticated).
    pub identity: String,
}

/// A token key as heartbeat answers announce it to chunkservers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenKeyInfo {
    pub id: u32,
    /// 32 random bytes, hex: the secret is HMAC(cluster key, salt).
    pub salt: String,
    /// The cluster key the secret is derived from.
    pub cluster_key: String,
    /// Tokens signed with this key are refused after this time (ms since
    /// the Unix epoch); the key is then retired.
    pub not_after_unix_ms: u64,
}

/// A token key with its secret.
#[derive(Clone)]
pub struct TokenKey {
    pub info: TokenKeyInfo,
    secret: [u8; 32],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.info.id)
    }
}

impl TokenKey {
    /// Derives the secret `info` describes; `None` if this node does not
    /// hold the cluster key named, or the salt is malformed.
    pub fn derive(ring: &KeyRing, info: &TokenKeyInfo) -> Option<TokenKey> {
        let cluster = ring.get(&info.cluster_key)?;
        let salt = unhex(&info.salt).filter(|s| s.len() == 32)?;
        let mut mac = HmacSha256::new_from_slice(cluster.secret()).expect("HMAC takes any key length");
        mac.update(b"dfs-token-key-v1");
        mac.update(&salt);
        Some(TokenKey { info: info.clone(), secret: mac.finalize().into_bytes().into() })
    }

    /// A new key with a random salt, derived from the ring's signing key.
    pub fn generate(ring: &KeyRing, id: u32, not_after_unix_ms: u64) -> TokenKey {
        let mut salt = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
        let info = TokenKeyInfo { id, salt: hex(&salt), cluster_key: ring.signing().id.clone(), not_after_unix_ms };
        TokenKey::derive(ring, &info).expect("the signing key is in the ring")
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_BYTES] {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    /// The token's text, signed with this key (its id is set).
    pub fn sign(&self, token: &ChunkToken) -> String {
        let token = ChunkToken { key_id: self.info.id, ..token.clone() };
        let mut bytes = token.encode();
        bytes.extend_from_slice(&self.mac(&bytes));
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("this request needs a chunk token ({HEADER_TOKEN}) from the master")]
    Missing,
    #[error("malformed chunk token")]
    Malformed,
    #[error("chunk token signed with key {0}, which is unknown or retired: get a new one from the master")]
    UnknownKey(u32),
    #[error("chunk token expired: get a new one from the master")]
    Expired,
    #[error("chunk token has a bad signature")]
    BadSignature,
    #[error("chunk token is for chunk {token} version {token_version}, not chunk {asked} version {asked_version}")]
    WrongChunk { token: ChunkHandle, token_version: ChunkVersion, asked: ChunkHandle, asked_version: ChunkVersion },
    #[error("chunk token does not allow this operation")]
    WrongOp,
}

impl TokenError {
    /// A new token from the master may succeed.
    pub fn renewable(&self) -> bool {
        matches!(self, TokenError::UnknownKey(_) | TokenError::Expired)
    }
}

impl ChunkToken {
    /// Payload: format u8, key id u32, expiry u64, handle u64, version u64,
    /// ops u8, identity length u8 and bytes; integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let id = &self.identity.as_bytes()[..self.identity.len().min(IDENTITY_MAX_BYTES)];
        let mut b = Vec::with_capacity(31 + id.len());
        b.push(FORMAT);
        b.extend_from_slice(&self.key_id.to_be_bytes());
        b.extend_from_slice(&self.expires_unix_ms.to_be_bytes());
        b.extend_from_slice(&self.handle.0.to_be_bytes());
        b.extend_from_slice(&self.version.0.to_be_bytes());
        b.push(self.ops.0);
        b.push(id.len() as u8);
        b.extend_from_slice(id);
        b
    }

    /// Splits a token's text into its fields and MAC (not yet checked).
    pub fn decode(text: &str) -> Result<(ChunkToken, Vec<u8>, [u8; MAC_BYTES]), TokenError> {
        if text.len() > TOKEN_MAX_CHARS {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| TokenError::Malformed)?;
        let (payload, mac) = bytes.split_at_checked(bytes.len().checked_sub(MAC_BYTES).ok_or(TokenError::Malformed)?).ok_or(TokenError::Malformed)?;
        let mut r = Reader(payload);
        if r.u8()? != FORMAT {
            return Err(TokenError::Malformed);
        }
        let (key_id, expires_unix_ms, handle, version, ops) = (r.u32()?, r.u64()?, r.u64()?, r.u64()?, r.u8()?);
        let len = r.u8()? as usize;
        let identity = String::from_utf8(r.take(len)?.to_vec()).map_err(|_| TokenError::Malformed)?;
        if !r.0.is_empty() || ops == 0 || ops > Ops::READ_WRITE.0 {
            return Err(TokenError::Malformed);
        }
        let token = ChunkToken { key_id, expires_unix_ms, handle: ChunkHandle(handle), version: ChunkVersion(version), ops: Ops(ops), identity };
        Ok((token, payload.to_vec(), mac.try_into().map_err(|_| TokenError::Malformed)?))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(TokenError::Malformed)?;
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, TokenError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| TokenError::Malformed)?))
    }
    fn u64(&mut self) -> Result<u64, TokenError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| TokenError::Malformed)?))
    }
}

/// The token keys a chunkserver accepts: exactly those of the master's
/// last announcement that it could derive.
#[derive(Default)]
pub struct TokenVerifier {
    keys: RwLock<HashMap<u32, TokenKey>>,
}

impl TokenVerifier {
    /// Takes the master's announced keys; keys not announced are retired.
    /// Answers the ids that could not be derived (a cluster key missing).
    pub fn install(&self, ring: &KeyRing, infos: &[TokenKeyInfo]) -> Vec<u32> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut missing = Vec::new();
        let mut next = HashMap::with_capacity(infos.len());
        for info in infos.iter().take(64) {
            match keys.get(&info.id).filter(|k| k.info == *info).cloned().or_else(|| TokenKey::derive(ring, info)) {
                Some(k) => {
                    next.insert(info.id, k);
                }
                None => missing.push(info.id),
            }
        }
        *keys = next;
        missing
    }

    pub fn key_count(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Checks `text` allows `op` on `handle` at `version` now.
    pub fn verify(&self, text: Option<&str>, now_ms: u64, handle: ChunkHandle, version: ChunkVersion, op: Ops) -> Result<ChunkToken, TokenError> {
        let (token, payload, mac) = ChunkToken::decode(text.ok_or(TokenError::Missing)?)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(&token.key_id).ok_or(TokenError::UnknownKey(token.key_id))?;
        use subtle_eq::ct_eq;
        if !ct_eq(&key.mac(&payload), &mac) {
            return Err(TokenError::BadSignature);
        }
        if now_ms > token.expires_unix_ms || now_ms > key.info.not_after_unix_ms {
            return Err(TokenError::Expired);
        }
        if token.handle != handle || token.version != version {
            return Err(TokenError::WrongChunk { token: token.handle, token_version: token.version, asked: handle, asked_version: version });
        }
        if !token.ops.allows(op) {
            return Err(TokenError::WrongOp);
        }
        Ok(token)
    }
}

mod subtle_eq {
    /// Compares in time independent of where the inputs differ.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::ClusterKey;

    fn token(handle: u64, version: u64, ops: Ops) -> ChunkToken {
        ChunkToken { key_id: 0, expires_unix_ms: 10_000, handle: ChunkHandle(handle), version: ChunkVersion(version), ops, identity: "alice".into() }
    }

    #[test]
    fn a_token_checks_out_for_its_chunk_version_and_operation_only() {
        let ring = KeyRing::single(ClusterKey::generate());
        let key = TokenKey::generate(&ring, 7, 20_000);
        let v = TokenVerifier::default();
        assert!(v.install(&ring, std::slice::from_ref(&key.info)).is_empty());
        let text = key.sign(&token(5, 2, Ops::READ));
        let ok = v.verify(Some(&text), 9_000, ChunkHandle(5), ChunkVersion(2), Ops::READ).unwrap();
        assert_eq!((ok.key_id, ok.identity.as_str()), (7, "alice"));
        assert!(matches!(v.verify(Some(&text), 9_000, ChunkHandle(6), ChunkVersion(2), Ops::READ), Err(TokenError::WrongChunk { .. })));
        assert!(matches!(v.verify(Some(&text), 9_000, ChunkHandle(5), ChunkVersion(3), Ops::READ), Err(TokenError::WrongChunk { .. })));
        assert_eq!(v.verify(Some(&text), 9_000, ChunkHandle(5), ChunkVersion(2), Ops::WRITE), Err(TokenError::WrongOp));
        assert_eq!(v.verify(Some(&text), 10_001, ChunkHandle(5), ChunkVersion(2), Ops::READ), Err(TokenError::Expired));
        assert_eq!(v.verify(None, 0, ChunkHandle(5), ChunkVersion(2), Ops::READ), Err(TokenError::Missing));
    }

    #[test]
    fn forged_tampered_and_retired_tokens_are_refused() {
        let ring = KeyRing::single(ClusterKey::generate());
        let key = TokenKey::generate(&ring, 7, 20_000);
        let v = TokenVerifier::default();
        v.install(&ring, std::slice::from_ref(&key.info));
        // Signed by another cluster's key with the same key id.
        let other = TokenKey::generate(&KeyRing::single(ClusterKey::generate()), 7, 20_000);
        let forged = other.sign(&token(5, 2, Ops::READ_WRITE));
        assert_eq!(v.verify(Some(&forged), 0, ChunkHandle(5), ChunkVersion(2), Ops::READ), Err(TokenError::BadSignature));
        // A read token turned into a write token.
        let mut bytes = URL_SAFE_NO_PAD.decode(key.sign(&token(5, 2, Ops::READ))).unwrap();
        bytes[29] = 3;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(v.verify(Some(&tampered), 0, ChunkHandle(5), ChunkVersion(2), Ops::WRITE), Err(TokenError::BadSignature));
        for junk in ["", "!!!", "AAAA", &"A".repeat(TOKEN_MAX_CHARS + 1)] {
            assert_eq!(v.verify(Some(junk), 0, ChunkHandle(5), ChunkVersion(2), Ops::READ), Err(TokenError::Malformed), "{junk:?}");
        }
        // Retired: the next announcement leaves key 7 out.
        let text = key.sign(&token(5, 2, Ops::READ));
        let newer = TokenKey::generate(&ring, 8, 30_000);
        v.install(&ring, std::slice::from_ref(&newer.info));
        assert_eq!(v.verify(Some(&text), 0, ChunkHandle(5), ChunkVersion(2), Ops::READ), Err(TokenError::UnknownKey(7)));
        assert!(TokenError::UnknownKey(7).renewable() && !TokenError::BadSignature.renewable());
    }

    #[test]
    fn a_key_from_a_cluster_key_not_held_is_not_installed() {
        let ring = KeyRing::single(ClusterKey::generate());
        let key = TokenKey::generate(&KeyRing::single(ClusterKey::generate()), 1, 1);
        assert_eq!(TokenVerifier::default().install(&ring, &[key.info]), vec![1]);
    }

    #[test]
    fn decoding_random_bytes_never_panics() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = ChunkToken::decode(&URL_SAFE_NO_PAD.encode(&bytes));
        }
    }
}
