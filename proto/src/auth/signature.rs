//! Signatures of internal requests (master ↔ chunkserver, chunkserver ↔
//! chunkserver) with the cluster key, and of the answers that carry orders.
//!
//! A request carries `x-dfs-auth: v1 key=ID ts=MS nonce=HEX body=HEX sig=HEX`:
//! an HMAC-SHA256, with the key named, over the method, the path and query
//! as sent, the time in ms, a random nonce, the SHA-256 of the body, and the
//! headers in [`COVERED_HEADERS`]. Receivers refuse a time further than
//! [`MAX_SKEW_MS`] from theirs and a nonce seen before (see `replay`), so a
//! captured request cannot be played again. Streamed data bodies are sent
//! with `body=UNSIGNED`: their length and per-64-KiB CRCs are covered
//! headers, and the routes that allow it say so.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::keys::{hex, unhex, KeyRing};

type HmacSha256 = Hmac<Sha256>;

/// The request header that carries the signature.
pub const HEADER_AUTH: &str = "x-dfs-auth";
/// The answer header that signs an answer to a signed request.
pub const HEADER_REPLY_AUTH: &str = "x-dfs-reply-auth";
/// Headers whose values (empty when absent) every signature covers. The
/// request id (`x-dfs-request-id`) is left out on purpose: it only labels
/// log lines and steers nothing, and the receiver replaces a malformed one.
pub const COVERED_HEADERS: [&str; 5] = ["content-length", "x-dfs-checksums", "x-dfs-forward", "x-dfs-token", "x-dfs-cluster"];
/// Largest difference between the sender's and the receiver's clocks, in
/// ms: run NTP on every node.
pub const MAX_SKEW_MS: u64 = 60_000;
const UNSIGNED: &str = "UNSIGNED";

/// What a signature says about the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyDigest {
    Sha256([u8; 32]),
    /// A streamed body, not covered (only routes that allow it).
    Unsigned,
}

impl BodyDigest {
    pub fn of(body: &[u8]) -> Self {
        BodyDigest::Sha256(Sha256::digest(body).into())
    }

    fn text(&self) -> String {
        match self {
            BodyDigest::Sha256(d) => hex(d),
            BodyDigest::Unsigned => UNSIGNED.to_string(),
        }
    }
}

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing {HEADER_AUTH}: this is an internal endpoint of the cluster")]
    Missing,
    #[error("malformed {HEADER_AUTH}: {0}")]
    Malformed(String),
    #[error("signed with key {0:?}, which this node does not hold")]
    UnknownKey(String),
    #[error("bad signature (not signed with this cluster's key)")]
    BadSignature,
    #[error("signed at {ts_ms} ms, {skew_ms} ms away from this node's clock (the limit is {MAX_SKEW_MS}; check NTP)")]
    Skew { ts_ms: u64, skew_ms: u64 },
    #[error("replayed request (its nonce was seen before)")]
    Replayed,
    #[error("the body does not match its signed digest")]
    BodyMismatch,
    #[error("too many recent signed requests to remember; retry")]
    Busy,
    #[error("this endpoint needs a logged-in user: give credentials (--credentials FILE, DFS_CREDENTIALS or ~/.config/dfs/credentials)")]
    NoSession,
    #[error("the session has expired or this master does not know it; log in again")]
    SessionExpired,
    #[error("unknown user or wrong credentials")]
    BadCredentials,
}

/// A signature that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub ts_ms: u64,
    pub nonce: [u8; 16],
    pub body: BodyDigest,
}

/// The request as a signature sees it.
pub struct RequestView<'a> {
    pub method: &'a str,
    /// Path and query exactly as in the request line (`/v1/x?a=1`).
    pub path_and_query: &'a str,
    /// Value of a header (lower-case name), if present.
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

pub(crate) fn mac_over(secret: &[u8], parts: &[&str]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    for p in parts {
        // Length-prefixed: no two different part lists give the same input.
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p.as_bytes());
    }
    mac
}

/// What a kind of signature covers besides the request line: a label
/// (so no signature of one kind passes as another) and its headers.
#[derive(Clone, Copy, Debug)]
pub struct Scheme {
    pub label: &'static str,
    pub covered: &'static [&'static str],
}

/// Signatures of internal requests, with the cluster key.
pub const INTERNAL: Scheme = Scheme { label: "dfs-request-v1", covered: &COVERED_HEADERS };

fn request_parts(scheme: Scheme, r: &RequestView<'_>, ts_ms: u64, nonce: &str, body: &str) -> Vec<String> {
    let mut parts = vec![scheme.label.to_string(), r.method.to_string(), r.path_and_query.to_string(), ts_ms.to_string(), nonce.to_string(), body.to_string()];
    parts.extend(scheme.covered.iter().map(|h| (r.header)(h).unwrap_or_default()));
    parts
}

/// The [`HEADER_AUTH`] value for a request.
pub fn sign_request(ring: &KeyRing, now_ms: u64, r: &RequestView<'_>, body: BodyDigest) -> String {
    let key = ring.signing();
    sign_with(INTERNAL, &key.id, key.secret(), now_ms, r, body)
}

/// A signature of `scheme` with `secret`, named `key_id`.
pub fn sign_with(scheme: Scheme, key_id: &str, secret: &[u8], now_ms: u64, r: &RequestView<'_>, body: BodyDigest) -> String {
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let (nonce, body) = (hex(&nonce), body.text());
    let parts = request_parts(scheme, r, now_ms, &nonce, &body);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let sig = hex(&mac_over(secret, &refs).finalize().into_bytes());
    format!("v1 key={key_id} ts={now_ms} nonce={nonce} body={body} sig={sig}")
}

struct Fields<'a> {
    key: &'a str,
    ts: &'a str,
    nonce: &'a str,
    body: &'a str,
    sig: &'a str,
}

fn fields(value: &str) -> Result<Fields<'_>, AuthError> {
    let mut words = value.split_ascii_whitespace();
    if words.next() != Some("v1") {
        return Err(AuthError::Malformed("expected version v1".into()));
    }
    let (mut key, mut ts, mut nonce, mut body, mut sig) = (None, None, None, None, None);
    for w in words {
        let (name, v) = w.split_once('=').ok_or_else(|| AuthError::Malformed(format!("{w:?} is not name=value")))?;
        let slot = match name {
            "key" => &mut key,
            "ts" => &mut ts,
            "nonce" => &mut nonce,
            "body" => &mut body,
            "sig" => &mut sig,
            _ => return Err(AuthError::Malformed(format!("unknown field {name:?}"))),
        };
        if slot.replace(v).is_some() {
            return Err(AuthError::Malformed(format!("field {name:?} twice")));
        }
    }
    fn need<'a>(f: Option<&'a str>, n: &str) -> Result<&'a str, AuthError> {
        f.ok_or_else(|| AuthError::Malformed(format!("missing field {n:?}")))
    }
    Ok(Fields { key: need(key, "key")?, ts: need(ts, "ts")?, nonce: need(nonce, "nonce")?, body: need(body, "body")?, sig: need(sig, "sig")? })
}

/// Checks a request's [`HEADER_AUTH`] value (signature and clock; the
/// caller checks the nonce against its replay cache and the body against
/// [`Verified::body`]).
pub fn verify_request(ring: &KeyRing, now_ms: u64, value: Option<&str>, r: &RequestView<'_>) -> Result<Verified, AuthError> {
    verify_with(INTERNAL, |id| ring.get(id).map(|k| k.secret().to_vec()), now_ms, value, r)
}

/// Checks a signature of `scheme`; `secret_of` gives the secret a key id names.
pub fn verify_with(
    scheme: Scheme,
    secret_of: impl Fn(&str) -> Option<Vec<u8>>,
    now_ms: u64,
    value: Option<&str>,
    r: &RequestView<'_>,
) -> Result<Verified, AuthError> {
    let f = fields(value.ok_or(AuthError::Missing)?)?;
    let ts_ms: u64 = f.ts.parse().map_err(|_| AuthError::Malformed("ts is not a number".into()))?;
    let nonce: [u8; 16] = unhex(f.nonce).and_then(|n| n.try_into().ok()).ok_or_else(|| AuthError::Malformed("nonce is not 16 hex bytes".into()))?;
    let body = match f.body {
        UNSIGNED => BodyDigest::Unsigned,
        d => BodyDigest::Sha256(unhex(d).and_then(|d| d.try_into().ok()).ok_or_else(|| AuthError::Malformed("body is not a SHA-256".into()))?),
    };
    let sig = unhex(f.sig).ok_or_else(|| AuthError::Malformed("sig is not hex".into()))?;
    let secret = secret_of(f.key).ok_or_else(|| AuthError::UnknownKey(f.key.chars().take(40).collect()))?;
    let parts = request_parts(scheme, r, ts_ms, f.nonce, f.body);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    mac_over(&secret, &refs).verify_slice(&sig).map_err(|_| AuthError::BadSignature)?;
    // After the MAC: an outsider learns nothing from the clock check.
    let skew_ms = now_ms.abs_diff(ts_ms);
    if skew_ms > MAX_SKEW_MS {
        return Err(AuthError::Skew { ts_ms, skew_ms });
    }
    Ok(Verified { key_id: f.key.to_string(), ts_ms, nonce, body })
}

fn reply_parts(nonce: &[u8; 16], status: u16, body: &[u8]) -> [String; 4] {
    ["dfs-reply-v1".to_string(), hex(nonce), status.to_string(), hex(&Sha256::digest(body))]
}

/// The [`HEADER_REPLY_AUTH`] value for the answer to the request whose
/// nonce is `nonce`: the caller knows the answer is the cluster's, and
/// this very request's.
pub fn sign_reply(ring: &KeyRing, nonce: &[u8; 16], status: u16, body: &[u8]) -> String {
    let key = ring.signing();
    let parts = reply_parts(nonce, status, body);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("v1 key={} sig={}", key.id, hex(&mac_over(key.secret(), &refs).finalize().into_bytes()))
}

pub fn verify_reply(ring: &KeyRing, nonce: &[u8; 16], status: u16, body: &[u8], value: Option<&str>) -> Result<(), AuthError> {
    let value = value.ok_or(AuthError::Missing)?;
    let mut words = value.split_ascii_whitespace();
    let (Some("v1"), Some(key), Some(sig), None) = (words.next(), words.next(), words.next(), words.next()) else {
        return Err(AuthError::Malformed("expected `v1 key=ID sig=HEX`".into()));
    };
    let key = key.strip_prefix("key=").ok_or_else(|| AuthError::Malformed("expected key=".into()))?;
    let sig = sig.strip_prefix("sig=").and_then(unhex).ok_or_else(|| AuthError::Malformed("expected sig=HEX".into()))?;
    let key = ring.get(key).ok_or_else(|| AuthError::UnknownKey(key.chars().take(40).collect()))?;
    let parts = reply_parts(nonce, status, body);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    mac_over(key.secret(), &refs).verify_slice(&sig).map_err(|_| AuthError::BadSignature)
}

/// The nonce of a signed request's header value (to check its answer).
pub fn nonce_of(value: &str) -> Option<[u8; 16]> {
    fields(value).ok().and_then(|f| unhex(f.nonce)).and_then(|n| n.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::ClusterKey;

    fn view<'a>(method: &'a str, pq: &'a str, headers: &'a dyn Fn(&str) -> Option<String>) -> RequestView<'a> {
        RequestView { method, path_and_query: pq, header: headers }
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let ring = KeyRing::single(ClusterKey::generate());
        let h = |n: &str| (n == "x-dfs-forward").then(|| "http://a".to_string());
        let r = view("POST", "/v1/chunks/7/create?x=1", &h);
        let body = BodyDigest::of(b"{}");
        let value = sign_request(&ring, 1_000_000, &r, body);
        let ok = verify_request(&ring, 1_000_500, Some(&value), &r).unwrap();
        assert_eq!(ok.body, body);
        assert_eq!(Some(ok.nonce), nonce_of(&value));
        // Another path, method, covered header, or key: refused.
        assert_eq!(verify_request(&ring, 1_000_000, Some(&value), &view("POST", "/v1/chunks/8/create?x=1", &h)), Err(AuthError::BadSignature));
        assert_eq!(verify_request(&ring, 1_000_000, Some(&value), &view("PUT", "/v1/chunks/7/create?x=1", &h)), Err(AuthError::BadSignature));
        let none = |_: &str| None;
        assert_eq!(verify_request(&ring, 1_000_000, Some(&value), &view("POST", "/v1/chunks/7/create?x=1", &none)), Err(AuthError::BadSignature));
        let other = KeyRing::single(ClusterKey { id: ring.signing().id.clone(), secret: [7; 32] });
        assert_eq!(verify_request(&other, 1_000_000, Some(&value), &r), Err(AuthError::BadSignature));
        let tampered = value.replace("ts=1000000", "ts=1000001");
        assert_eq!(verify_request(&ring, 1_000_000, Some(&tampered), &r), Err(AuthError::BadSignature));
    }

    #[test]
    fn old_or_future_times_and_garbage_are_refused() {
        let ring = KeyRing::single(ClusterKey::generate());
        let none = |_: &str| None;
        let r = view("GET", "/", &none);
        let value = sign_request(&ring, 1_000_000, &r, BodyDigest::Unsigned);
        assert!(matches!(verify_request(&ring, 1_000_000 + MAX_SKEW_MS + 1, Some(&value), &r), Err(AuthError::Skew { .. })));
        assert!(matches!(verify_request(&ring, 0, Some(&value), &r), Err(AuthError::Skew { .. })));
        assert_eq!(verify_request(&ring, 0, None, &r), Err(AuthError::Missing));
        for junk in ["", "v2", "v1 key=a", "v1 key=a ts=x nonce=00 body=UNSIGNED sig=00", "v1 a b c", "v1 key=a key=b"] {
            assert!(matches!(verify_request(&ring, 0, Some(junk), &r), Err(AuthError::Malformed(_))), "{junk:?}");
        }
        let unknown = value.replace(&format!("key={}", ring.signing().id), "key=nope");
        assert_eq!(verify_request(&ring, 1_000_000, Some(&unknown), &r), Err(AuthError::UnknownKey("nope".into())));
    }

    #[test]
    fn a_reply_is_bound_to_its_request_status_and_body() {
        let ring = KeyRing::single(ClusterKey::generate());
        let nonce = [3u8; 16];
        let value = sign_reply(&ring, &nonce, 200, b"{\"delete\":[]}");
        assert_eq!(verify_reply(&ring, &nonce, 200, b"{\"delete\":[]}", Some(&value)), Ok(()));
        assert_eq!(verify_reply(&ring, &[4; 16], 200, b"{\"delete\":[]}", Some(&value)), Err(AuthError::BadSignature));
        assert_eq!(verify_reply(&ring, &nonce, 200, b"{\"delete\":[1]}", Some(&value)), Err(AuthError::BadSignature));
        assert_eq!(verify_reply(&ring, &nonce, 201, b"{\"delete\":[]}", Some(&value)), Err(AuthError::BadSignature));
        assert_eq!(verify_reply(&ring, &nonce, 200, b"", None), Err(AuthError::Missing));
    }
}
