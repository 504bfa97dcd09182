//! Delegation tokens in the store (column family `users`, under `t/`):
//! WebHDFS's bearer tokens (HDFS's), each with an owner, a renewer, an
//! expiry that renewals push on, and a date past which no renewal goes.
//! The key their MACs are made with is stored too (`k/delegation`), so
//! tokens outlive a master restart as HDFS's do. Changes go through the
//! writer like every mutation; the caller (the leader, with HA) chooses
//! ids, times and the key, so applying a change is deterministic.

use dfs_proto::ErrorKind;
use serde::{Deserialize, Serialize};

use super::db::Store;
use super::error::{fail, NsError};
use super::keys::CF_USERS;
use super::txn::Txn;

const TOKEN_PREFIX: &[u8] = b"t/";
const KEY: &[u8] = b"k/delegation";
const TOKEN_FORMAT: u32 = 1;
/// Most live tokens one user may hold (expired ones are dropped when the
/// user asks for another).
pub const TOKENS_PER_USER: usize = 1_000;

/// One token's record (JSON: rare, small, readable in a dump).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub format: u32,
    pub id: u64,
    pub owner: String,
    pub renewer: String,
    pub issued_ms: u64,
    pub expires_ms: u64,
    pub max_ms: u64,
}

fn token_key(id: u64) -> Vec<u8> {
    [TOKEN_PREFIX, &id.to_be_bytes()[..]].concat()
}

fn corrupt() -> NsError {
    NsError::new(ErrorKind::EIO, "corrupt delegation token record in the metadata store")
}

impl Store {
    /// The key delegation tokens are made with, once one was stored.
    pub fn delegation_key(&self) -> Result<Option<[u8; 32]>, NsError> {
        match self.read(CF_USERS, KEY)? {
            Some(v) => Ok(Some(<[u8; 32]>::try_from(&v[..]).map_err(|_| corrupt())?)),
            None => Ok(None),
        }
    }

    pub fn token(&self, id: u64) -> Result<Option<TokenRecord>, NsError> {
        match self.read(CF_USERS, &token_key(id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|_| corrupt())?)),
            None => Ok(None),
        }
    }

    /// Every token record, by id.
    fn tokens(&self) -> Result<Vec<TokenRecord>, NsError> {
        let mut out = Vec::new();
        for item in self.scan(CF_USERS, TOKEN_PREFIX, None)? {
            let (k, v) = item?;
            if !k.starts_with(TOKEN_PREFIX) {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|_| corrupt())?);
        }
        Ok(out)
    }
}

/// Stores the token key unless one is stored already.
pub fn set_key(t: &mut Txn, key: &[u8; 32]) -> Result<(), NsError> {
    if t.store.delegation_key()?.is_none() {
        t.put_user_value(KEY, key)?;
    }
    Ok(())
}

/// Stores a new token; the owner's expired ones go, and a user holding
/// [`TOKENS_PER_USER`] live tokens gets no more.
pub fn issue(t: &mut Txn, record: &TokenRecord) -> Result<(), NsError> {
    if t.store.token(record.id)?.is_some() {
        return fail(ErrorKind::EEXIST, format!("token {} exists", record.id));
    }
    let mut live = 0;
    for old in t.store.tokens()?.into_iter().filter(|o| o.owner == record.owner) {
        if old.expires_ms <= record.issued_ms {
            t.delete_user_value(&token_key(old.id))?;
        } else {
            live += 1;
        }
    }
    if live >= TOKENS_PER_USER {
        return fail(ErrorKind::ENOSPC, format!("{} holds {TOKENS_PER_USER} live delegation tokens: cancel some first", record.owner));
    }
    put(t, record)
}

/// Ends every token of `owner` (a user removed: a user made again under
/// the name must not inherit them).
pub fn drop_tokens_of(t: &mut Txn, owner: &str) -> Result<(), NsError> {
    for old in t.store.tokens()?.into_iter().filter(|o| o.owner == owner) {
        t.delete_user_value(&token_key(old.id))?;
    }
    Ok(())
}

fn put(t: &mut Txn, record: &TokenRecord) -> Result<(), NsError> {
    let value = serde_json::to_vec(&TokenRecord { format: TOKEN_FORMAT, ..record.clone() }).map_err(|e| NsError::new(ErrorKind::EIO, e.to_string()))?;
    t.put_user_value(&token_key(record.id), &value)
}

/// Moves a live token's expiry to `expires_ms` (the caller bounded it by
/// the token's max date); only its renewer may.
pub fn renew(t: &mut Txn, id: u64, by: &str, now_ms: u64, expires_ms: u64) -> Result<TokenRecord, NsError> {
    let mut record = live(t, id, now_ms)?;
    if record.renewer != by {
        return fail(ErrorKind::EACCES, format!("{by} is not the renewer of this token ({} is)", record.renewer));
    }
    record.expires_ms = expires_ms.min(record.max_ms).max(record.expires_ms);
    put(t, &record)?;
    Ok(record)
}

/// Ends a token; its owner or its renewer may.
pub fn cancel(t: &mut Txn, id: u64, by: &str, now_ms: u64) -> Result<(), NsError> {
    let record = live(t, id, now_ms)?;
    if record.owner != by && record.renewer != by {
        return fail(ErrorKind::EACCES, format!("{by} may not cancel a token of {}", record.owner));
    }
    t.delete_user_value(&token_key(id))
}

fn live(t: &Txn, id: u64, now_ms: u64) -> Result<TokenRecord, NsError> {
    match t.store.token(id)? {
        Some(r) if r.expires_ms > now_ms => Ok(r),
        _ => fail(ErrorKind::EKEYEXPIRED, "the delegation token has expired or was cancelled"),
    }
}
