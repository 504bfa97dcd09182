//! Users: their credential files, logging in, sessions, and the signatures
//! of their requests to the master.
//!
//! A credential is a user name and a random 32-byte secret. The master
//! keeps only `SHA-256(client key)`, where the client key is
//! `HMAC(secret, "dfs client key")`, so a copy of its database lets nobody
//! log in. Logging in proves the client key without sending it (as SCRAM
//! does): the proof is the client key XOR `HMAC(stored key, the login
//! message)`, and the login message carries a time and a nonce, so a
//! captured login cannot be played again.
//!
//! The answer is a session: a ticket the master sealed (user, generation of
//! the user's record, expiry) and the ticket's secret, sent wrapped with the
//! client key. Each request then carries the ticket (`x-dfs-session`) and a
//! signature with the ticket's secret (`x-dfs-user-auth`, the form of
//! [`super::signature`]) over the request line, time, nonce, body digest
//! and the headers of [`USER`]. The master recomputes a ticket's secret
//! from its own session key: nothing is stored per session.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hmac::Mac;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::{hex, unhex};
use super::sealed::{self, Unsealed};
use super::signature::{self, mac_over, AuthError, BodyDigest, RequestView, Scheme, Verified, MAX_SKEW_MS};

/// The session ticket a request is signed under.
pub const HEADER_SESSION: &str = "x-dfs-session";
/// The signature of a user's request.
pub const HEADER_USER_AUTH: &str = "x-dfs-user-auth";
/// A read grant (a dashboard download handed to a chunkserver).
pub const HEADER_GRANT: &str = "x-dfs-grant";
/// Who a proxy (a mount) acts for: `uid=N gids=A,B`.
pub const HEADER_ACT_AS: &str = "x-dfs-act-as";
/// A mutation's call id, the same in each of its retries (the master's
/// retry cache answers a retry with the first answer): 1 to
/// [`CALL_ID_MAX_CHARS`] ASCII letters, digits or dashes.
pub const HEADER_CALL: &str = "x-dfs-call";
/// Longest call id.
pub const CALL_ID_MAX_CHARS: usize = 64;

/// Whether `id` is a well-formed call id.
pub fn call_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= CALL_ID_MAX_CHARS && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
/// Signatures of users' requests, with a session's secret. The body is
/// always digested, so its length needs no cover (a GET's empty body may
/// travel with or without `content-length: 0`).
/// The call id is covered: a retry cache entry answers only its signer.
pub const USER: Scheme = Scheme { label: "dfs-user-request-v2", covered: &[HEADER_SESSION, HEADER_ACT_AS, HEADER_CALL] };
/// The key id a user's signature names (its secret comes from the ticket).
const SESSION_KEY_ID: &str = "session";
/// Longest user or group name.
pub const NAME_MAX_CHARS: usize = 64;
/// Most groups a caller may claim.
pub const GROUPS_MAX: usize = 64;
const SECRET_BYTES: usize = 32;

/// Why a credential file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} may be read by others (mode {mode:o}); run chmod 600 {path}")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path}: {why}")]
    Syntax { path: PathBuf, why: String },
}

/// A user name or group name: 1 to 64 of `a-z A-Z 0-9 . _ -`, not starting with `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= NAME_MAX_CHARS && !name.starts_with('-') && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} is not a name: 1 to {NAME_MAX_CHARS} of A-Z a-z 0-9 . _ -, not starting with -", name.chars().take(80).collect::<String>()))
    }
}

/// A user's credential: what a credentials file holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    secret: [u8; SECRET_BYTES],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

impl Credentials {
    /// A new credential with a fresh random secret.
    pub fn generate(user: &str) -> Self {
        let mut secret = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        Credentials { user: user.to_string(), secret }
    }

    /// The credential's text form: `user NAME` and `secret HEX` lines,
    /// `#` comments.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CredentialsError> {
        let err = |why: &str| CredentialsError::Syntax { path: path.to_path_buf(), why: why.to_string() };
        let (mut user, mut secret) = (None, None);
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (word, value) = line.split_once(char::is_whitespace).map(|(w, v)| (w, v.trim())).ok_or_else(|| err("expected `user NAME` and `secret HEX`"))?;
            let slot = match word {
                "user" => &mut user,
                "secret" => &mut secret,
                _ => return Err(err(&format!("unknown field {:?}", word.chars().take(40).collect::<String>()))),
            };
            if slot.replace(value).is_some() {
                return Err(err(&format!("{word} given twice")));
            }
        }
        let user = user.ok_or_else(|| err("no `user NAME` line"))?;
        check_name(user).map_err(|e| err(&e))?;
        let secret = secret.and_then(unhex).and_then(|s| s.try_into().ok()).ok_or_else(|| err("no `secret` line of 64 hex digits"))?;
        Ok(Credentials { user: user.to_string(), secret })
    }

    /// Reads a credentials file, refusing one that the group or others may read.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let io = |source| CredentialsError::Io { path: path.to_path_buf(), source };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::Exposed { path: path.to_path_buf(), mode });
        }
        Credentials::parse(&std::fs::read_to_string(path).map_err(io)?, path)
    }

    pub fn to_file_text(&self) -> String {
        format!(
            "# dfs credentials: keep them secret (mode 0600); use with --credentials FILE,\n\
             # DFS_CREDENTIALS=FILE, or as ~/.config/dfs/credentials.\nuser {}\nsecret {}\n",
            self.user,
            hex(&self.secret)
        )
    }

    /// Writes a new file (never replacing one), mode 0600, synced with
    /// its directory.
    pub fn create_file(&self, path: &Path) -> Result<(), CredentialsError> {
        super::secret_file::create(path, self.to_file_text().as_bytes()).map_err(|source| CredentialsError::Io { path: path.to_path_buf(), source })
    }

    pub fn client_key(&self) -> [u8; 32] {
        mac_over(&self.secret, &["dfs client key"]).finalize().into_bytes().into()
    }

    /// What the master stores for this credential.
    pub fn stored_key(&self) -> [u8; 32] {
        stored_key(&self.client_key())
    }

    /// [`Credentials::stored_key`] as the API carries it (hex).
    pub fn stored_key_hex(&self) -> String {
        hex(&self.stored_key())
    }

    /// The secret as the file's `secret` line holds it (a dashboard login).
    pub fn secret_hex(&self) -> String {
        hex(&self.secret)
    }

    /// The credential whose secret is `hex` (a dashboard login form).
    pub fn from_secret_hex(user: &str, hex: &str) -> Option<Self> {
        let secret = unhex(hex.trim()).and_then(|s| s.try_into().ok())?;
        check_name(user).ok()?;
        Some(Credentials { user: user.to_string(), secret })
    }

    /// A login request made now.
    pub fn login(&self, now_ms: u64) -> LoginRequest {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let nonce = hex(&nonce);
        let sig = login_signature(&self.stored_key(), &self.user, now_ms, &nonce);
        let proof: Vec<u8> = self.client_key().iter().zip(sig).map(|(a, b)| a ^ b).collect();
        LoginRequest { user: self.user.clone(), ts_ms: now_ms, nonce, proof: hex(&proof) }
    }
}

fn stored_key(client_key: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(client_key).into()
}

fn login_signature(stored_key: &[u8; 32], user: &str, ts_ms: u64, nonce: &str) -> [u8; 32] {
    mac_over(stored_key, &["dfs-login-v1", user, &ts_ms.to_string(), nonce]).finalize().into_bytes().into()
}

/// `POST /v1/auth/login`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub user: String,
    pub ts_ms: u64,
    /// 16 random bytes, hex.
    pub nonce: String,
    /// The client key XOR the login signature, hex.
    pub proof: String,
}

/// The answer to a login: a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginAnswer {
    /// The ticket, sent as `x-dfs-session` with every request.
    pub session: String,
    /// The session's secret XOR `HMAC(client key, ticket)`, hex.
    pub wrapped_secret: String,
    pub expires_ms: u64,
    pub uid: u32,
    pub gids: Vec<u32>,
    pub admin: bool,
}

impl LoginAnswer {
    /// The wrapped secret, if it is 32 hex bytes.
    pub fn wrapped(&self) -> Option<[u8; 32]> {
        unhex(&self.wrapped_secret).and_then(|w| w.try_into().ok())
    }
}

impl LoginRequest {
    /// The nonce, if it is 16 hex bytes (for the replay cache).
    pub fn nonce_bytes(&self) -> Option<[u8; 16]> {
        unhex(&self.nonce).and_then(|n| n.try_into().ok())
    }

    /// Checks the proof against what the master stores for the user, and
    /// the time; the caller checks the nonce against its replay cache.
    /// Answers the client key, which wraps the session's secret.
    pub fn check(&self, stored: &[u8; 32], now_ms: u64) -> Result<[u8; 32], AuthError> {
        let proof: [u8; 32] = unhex(&self.proof).and_then(|p| p.try_into().ok()).ok_or(AuthError::BadCredentials)?;
        self.nonce_bytes().ok_or_else(|| AuthError::Malformed("nonce is not 16 hex bytes".into()))?;
        let sig = login_signature(stored, &self.user, self.ts_ms, &self.nonce);
        let mut client_key = [0u8; 32];
        for (i, b) in client_key.iter_mut().enumerate() {
            *b = proof[i] ^ sig[i];
        }
        let ok: bool = stored_key(&client_key).iter().zip(stored).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !ok {
            return Err(AuthError::BadCredentials);
        }
        let skew_ms = now_ms.abs_diff(self.ts_ms);
        if skew_ms > MAX_SKEW_MS {
            return Err(AuthError::Skew { ts_ms: self.ts_ms, skew_ms });
        }
        Ok(client_key)
    }
}

/// What a session ticket says; sealed by the master's session key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub user: String,
    /// The generation of the user's record when the session began: a
    /// removed or rotated user's sessions end with it.
    pub generation: u64,
    pub expires_ms: u64,
}

fn ticket_secret(key: &[u8; 32], text: &str) -> [u8; 32] {
    mac_over(key, &["dfs-session-secret", text]).finalize().into_bytes().into()
}

impl Ticket {
    /// The ticket's text and secret.
    pub fn seal(&self, key: &[u8; 32]) -> (String, [u8; 32]) {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let body = format!("{}\n{}\n{}\n{}", self.user, self.generation, self.expires_ms, hex(&id));
        let text = sealed::seal(key, "v1", "dfs-session-v1", &body);
        let secret = ticket_secret(key, &text);
        (text, secret)
    }

    /// A ticket this key sealed, with its secret; expiry is the caller's check.
    pub fn open(key: &[u8; 32], text: &str) -> Result<(Ticket, [u8; 32]), AuthError> {
        let malformed = || AuthError::Malformed(format!("{HEADER_SESSION} is not a session ticket"));
        // A ticket of another master (or one restarted) fails here: log in again.
        let body = sealed::open(key, "v1", "dfs-session-v1", text).map_err(|e| match e {
            Unsealed::Malformed => malformed(),
            Unsealed::BadMac => AuthError::SessionExpired,
        })?;
        let fields: Vec<&str> = body.split('\n').collect();
        let [user, generation, expires_ms, _id] = fields[..] else {
            return Err(malformed());
        };
        let ticket = Ticket {
            user: user.to_string(),
            generation: generation.parse().map_err(|_| malformed())?,
            expires_ms: expires_ms.parse().map_err(|_| malformed())?,
        };
        Ok((ticket, ticket_secret(key, text)))
    }
}

/// A short grant of a user's rights: the master seals one when it sends
/// a client to a chunkserver (a dashboard download, a WebHDFS data
/// request), which shows it (as `x-dfs-grant`) for the requests it makes
/// to the master for that client. A bearer capability, as a chunk token
/// is: a read grant allows GETs only, a write grant any request but the
/// admin's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub user: String,
    pub generation: u64,
    pub expires_ms: u64,
    pub writes: bool,
}

impl Grant {
    pub fn seal(&self, key: &[u8; 32]) -> String {
        let body = format!("{}\n{}\n{}\n{}", self.user, self.generation, self.expires_ms, if self.writes { "rw" } else { "r" });
        sealed::seal(key, "g2", "dfs-grant-v2", &body)
    }

    /// A grant this key sealed; expiry is the caller's check.
    pub fn open(key: &[u8; 32], text: &str) -> Result<Grant, AuthError> {
        let malformed = || AuthError::Malformed(format!("{HEADER_GRANT} is not a grant"));
        let body = sealed::open(key, "g2", "dfs-grant-v2", text).map_err(|e| match e {
            Unsealed::Malformed => malformed(),
            Unsealed::BadMac => AuthError::SessionExpired,
        })?;
        let fields: Vec<&str> = body.split('\n').collect();
        let [user, generation, expires_ms, scope] = fields[..] else {
            return Err(malformed());
        };
        let writes = match scope {
            "r" => false,
            "rw" => true,
            _ => return Err(malformed()),
        };
        Ok(Grant {
            user: user.to_string(),
            generation: generation.parse().map_err(|_| malformed())?,
            expires_ms: expires_ms.parse().map_err(|_| malformed())?,
            writes,
        })
    }
}

/// The session's secret XOR `HMAC(client key, ticket)`: only the holder of
/// the client key unwraps it (the same operation undoes it).
pub fn wrap_secret(client_key: &[u8; 32], ticket: &str, secret: &[u8; 32]) -> [u8; 32] {
    let pad: [u8; 32] = mac_over(client_key, &["dfs-session-wrap", ticket]).finalize().into_bytes().into();
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = secret[i] ^ pad[i];
    }
    out
}

/// The [`HEADER_USER_AUTH`] value for a request under a session.
pub fn sign_request(session_secret: &[u8; 32], now_ms: u64, r: &RequestView<'_>, body: BodyDigest) -> String {
    signature::sign_with(USER, SESSION_KEY_ID, session_secret, now_ms, r, body)
}

/// Checks a user's request signature with its session's secret (the caller
/// checks the nonce and the body).
pub fn verify_request(session_secret: &[u8; 32], now_ms: u64, value: Option<&str>, r: &RequestView<'_>) -> Result<Verified, AuthError> {
    signature::verify_with(USER, |id| (id == SESSION_KEY_ID).then(|| session_secret.to_vec()), now_ms, value, r)
}

/// Who a proxy acts for: a local user's uid and groups (primary first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActAs {
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl ActAs {
    pub fn to_header(&self) -> String {
        let gids: Vec<String> = self.gids.iter().map(u32::to_string).collect();
        format!("uid={} gids={}", self.uid, gids.join(","))
    }

    pub fn parse(value: &str) -> Result<ActAs, String> {
        let bad = || format!("{HEADER_ACT_AS} must be `uid=N gids=A,B` with at most {GROUPS_MAX} groups");
        let mut words = value.split_ascii_whitespace();
        let (Some(uid), Some(gids), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let uid = uid.strip_prefix("uid=").and_then(|u| u.parse().ok()).ok_or_else(bad)?;
        let gids = gids.strip_prefix("gids=").ok_or_else(bad)?;
        let gids: Vec<u32> = if gids.is_empty() { Vec::new() } else { gids.split(',').map(|g| g.parse().map_err(|_| bad())).collect::<Result<_, _>>()? };
        if gids.len() > GROUPS_MAX {
            return Err(bad());
        }
        Ok(ActAs { uid, gids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_round_trips_through_its_file_text() {
        let c = Credentials::generate("alice");
        assert_eq!(Credentials::parse(&c.to_file_text(), Path::new("f")).unwrap(), c);
        for bad in ["", "user alice", "secret 00", "user -x\nsecret 00", "user a\nuser b\nsecret 00", "who a"] {
            assert!(Credentials::parse(bad, Path::new("f")).is_err(), "{bad:?}");
        }
        assert!(!format!("{c:?}").contains(&hex(&c.secret)), "Debug shows no secret");
    }

    #[test]
    fn a_login_proves_the_key_once_and_nothing_else_passes() {
        let c = Credentials::generate("alice");
        let stored = c.stored_key();
        let login = c.login(1_000_000);
        assert_eq!(login.check(&stored, 1_000_100).unwrap(), c.client_key());
        // Another user's stored key, a changed field, or an old time: refused.
        assert_eq!(login.check(&Credentials::generate("alice").stored_key(), 1_000_000), Err(AuthError::BadCredentials));
        let other_time = LoginRequest { ts_ms: 1_000_001, ..login.clone() };
        assert_eq!(other_time.check(&stored, 1_000_000), Err(AuthError::BadCredentials));
        let other_user = LoginRequest { user: "bob".into(), ..login.clone() };
        assert_eq!(other_user.check(&stored, 1_000_000), Err(AuthError::BadCredentials));
        assert!(matches!(login.check(&stored, 1_000_000 + MAX_SKEW_MS + 1), Err(AuthError::Skew { .. })));
        // The stored key alone proves nothing: it is not the client key.
        assert_ne!(stored, c.client_key());
    }

    #[test]
    fn a_ticket_opens_only_with_its_key_and_its_secret_unwraps_only_with_the_client_key() {
        let key = [5u8; 32];
        let t = Ticket { user: "alice".into(), generation: 3, expires_ms: 99 };
        let (text, secret) = t.seal(&key);
        assert_eq!(Ticket::open(&key, &text).unwrap(), (t, secret));
        assert_eq!(Ticket::open(&[6u8; 32], &text), Err(AuthError::SessionExpired));
        let forged = text.replacen("v1.", "v1.A", 1);
        assert!(Ticket::open(&key, &forged).is_err());
        let c = Credentials::generate("alice");
        let wrapped = wrap_secret(&c.client_key(), &text, &secret);
        assert_ne!(wrapped, secret);
        assert_eq!(wrap_secret(&c.client_key(), &text, &wrapped), secret);
    }

    #[test]
    fn a_grant_opens_only_with_its_key() {
        let g = Grant { user: "alice".into(), generation: 2, expires_ms: 7, writes: true };
        let text = g.seal(&[1; 32]);
        assert_eq!(Grant::open(&[1; 32], &text).unwrap(), g);
        assert_eq!(Grant::open(&[2; 32], &text), Err(AuthError::SessionExpired));
        assert!(Grant::open(&[1; 32], "g2.x.y").is_err());
        let read = Grant { writes: false, ..g };
        assert_eq!(Grant::open(&[1; 32], &read.seal(&[1; 32])).unwrap(), read);
        let c = Credentials::generate("bob");
        assert_eq!(Credentials::from_secret_hex("bob", &hex(&c.secret)), Some(c));
        assert_eq!(Credentials::from_secret_hex("bob", "00"), None);
    }

    #[test]
    fn a_call_id_is_covered_by_the_signature() {
        let secret = [7u8; 32];
        let headers = |call: &'static str| move |name: &str| (name == HEADER_CALL).then(|| call.to_string());
        let (h1, h2) = (headers("call-1"), headers("call-2"));
        let signed = RequestView { method: "POST", path_and_query: "/v1/create", header: &h1 };
        let value = sign_request(&secret, 1_000, &signed, BodyDigest::of(b"{}"));
        assert!(verify_request(&secret, 1_000, Some(&value), &signed).is_ok());
        let swapped = RequestView { header: &h2, ..signed };
        assert_eq!(verify_request(&secret, 1_000, Some(&value), &swapped).unwrap_err(), AuthError::BadSignature);
        assert!(call_id_ok("0123abcd-x") && !call_id_ok("") && !call_id_ok("a b") && !call_id_ok(&"x".repeat(65)));
    }

    #[test]
    fn act_as_round_trips_and_refuses_junk() {
        let a = ActAs { uid: 1000, gids: vec![1000, 27] };
        assert_eq!(ActAs::parse(&a.to_header()).unwrap(), a);
        assert_eq!(ActAs::parse("uid=5 gids=").unwrap(), ActAs { uid: 5, gids: vec![] });
        for bad in ["", "uid=x gids=1", "uid=1", "gids=1 uid=1", "uid=1 gids=a", "uid=-1 gids=1", "uid=1 gids=1 x"] {
            assert!(ActAs::parse(bad).is_err(), "{bad:?}");
        }
    }
}
