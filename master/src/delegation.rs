//! Delegation tokens (WebHDFS's `delegation=`, `dfs fetchdt`): handed to a
//! signed-in user, they let a tool that has no dfs credentials act as
//! that user (HdfsCLI's `TokenClient`, fsspec's `token=`). As HDFS: a token
//! lives a day from its issue or last renewal, renewals go on up to a week,
//! only its renewer renews it, its owner or renewer cancels it, and it
//! outlives a master restart (its record and the key are in the store).

use std::sync::OnceLock;

use dfs_proto::auth::delegation::DelegationToken;
use dfs_proto::auth::{unix_ms, AuthError};
use dfs_proto::ErrorKind;
use rand::RngCore;

use crate::store::delegation::TokenRecord;
use crate::store::{Mutation, NsError, Outcome, Store, Writer};
use crate::users::{Caller, Proof, Users};

/// How long a token lives past its issue or last renewal.
pub const RENEW_MS: u64 = 24 * 3_600_000;
/// How long renewals may keep a token alive.
pub const MAX_MS: u64 = 7 * 24 * 3_600_000;

pub struct Delegation {
    store: Store,
    writer: Writer,
    key: OnceLock<[u8; 32]>,
}

/// A token as issued: its text and its expiry.
pub struct Issued {
    pub token: String,
    pub expires_ms: u64,
}

impl Delegation {
    pub fn new(store: Store, writer: Writer) -> Self {
        Delegation { store, writer, key: OnceLock::new() }
    }

    /// The stored key, made and stored at the first need.
    async fn key(&self) -> Result<[u8; 32], NsError> {
        if let Some(k) = self.key.get() {
            return Ok(*k);
        }
        let store = self.store.clone();
        let stored = match tokio::task::spawn_blocking(move || store.delegation_key()).await {
            Ok(r) => r?,
            Err(e) => return Err(NsError::new(ErrorKind::EIO, e.to_string())),
        };
        let key = match stored {
            Some(k) => k,
            None => {
                let mut k = [0u8; 32];
                rand::rng().fill_bytes(&mut k);
                self.writer.submit(Mutation::SetDelegationKey(k)).await?;
                // Another request may have stored its own first: take what is stored.
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || store.delegation_key()).await.map_err(|e| NsError::new(ErrorKind::EIO, e.to_string()))??.unwrap_or(k)
            }
        };
        Ok(*self.key.get_or_init(|| key))
    }

    /// A new token for `owner`, renewable by `renewer` (a valid user name).
    pub async fn issue(&self, owner: &str, renewer: &str) -> Result<Issued, NsError> {
        dfs_proto::auth::user::check_name(renewer).map_err(|e| NsError::new(ErrorKind::EINVAL, e))?;
        let key = self.key().await?;
        let now = unix_ms();
        let record = TokenRecord {
            format: 1,
            id: rand::rng().next_u64(),
            owner: owner.to_string(),
            renewer: renewer.to_string(),
            issued_ms: now,
            expires_ms: now.saturating_add(RENEW_MS),
            max_ms: now.saturating_add(MAX_MS),
        };
        self.writer.submit(Mutation::IssueToken(record.clone())).await?;
        let token = DelegationToken { id: record.id, owner: record.owner, max_ms: record.max_ms }.seal(&key);
        Ok(Issued { token, expires_ms: record.expires_ms })
    }

    /// The token's record, if the token is genuine (its record may have expired).
    async fn record(&self, text: &str) -> Result<TokenRecord, AuthError> {
        let key = self.key().await.map_err(|e| AuthError::Malformed(e.message))?;
        let token = DelegationToken::open(&key, text)?;
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.token(token.id)).await.map_err(|e| AuthError::Malformed(e.to_string()))?;
        match found.map_err(|e| AuthError::Malformed(e.message))? {
            Some(r) if r.owner == token.owner && r.max_ms == token.max_ms => Ok(r),
            _ => Err(AuthError::SessionExpired),
        }
    }

    /// The caller a token stands for: its owner, while the token lives and
    /// the owner is a user.
    pub async fn caller(&self, users: &Users, text: &str) -> Result<Caller, AuthError> {
        let record = self.record(text).await?;
        if record.expires_ms <= unix_ms() {
            return Err(AuthError::SessionExpired);
        }
        let caller = users.named(&record.owner).ok_or(AuthError::SessionExpired)?;
        Ok(Caller { proof: Proof::Bearer { until_ms: record.expires_ms }, ..caller })
    }

    /// Renews a token for a day more (not past its max date): the new expiry.
    pub async fn renew(&self, text: &str, by: &str) -> Result<u64, NsError> {
        let record = self.record(text).await.map_err(expired)?;
        let now = unix_ms();
        let m = Mutation::RenewToken { id: record.id, by: by.to_string(), now_ms: now, expires_ms: now.saturating_add(RENEW_MS) };
        match self.writer.submit(m).await? {
            Outcome::Token(r) => Ok(r.expires_ms),
            _ => Err(NsError::new(ErrorKind::EIO, "renewing returned no token")),
        }
    }

    pub async fn cancel(&self, text: &str, by: &str) -> Result<(), NsError> {
        let record = self.record(text).await.map_err(expired)?;
        self.writer.submit(Mutation::CancelToken { id: record.id, by: by.to_string(), now_ms: unix_ms() }).await.map(|_| ())
    }
}

fn expired(e: AuthError) -> NsError {
    NsError::new(ErrorKind::EKEYEXPIRED, e.to_string())
}
