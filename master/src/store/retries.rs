//! The retry cache, as HDFS's RetryCache: a client names each mutation it
//! sends with a call id (`x-dfs-call`, signed with the request) and sends
//! the same id again when it retries after a lost answer (a timeout, a
//! connection reset, a master restarting or failing over). A call id the
//! store has applied for the same user within [`RETRY_WINDOW`] gets the
//! first answer back, nothing applied again: a create retried after its
//! answer was lost neither fails with EEXIST nor runs twice, a rename is
//! not refused with ENOENT, an unlink not with ENOENT.
//!
//! The answer is stored with the mutation, in its batch, so it is as
//! durable as the mutation (and replayed with the metadata log): a retry
//! after a restart finds it. Only successes are kept (a failed call changed
//! nothing, so running it again is no different from the first time).
//! Entries past [`RETRY_WINDOW`] are not answered, and compactions drop
//! them (`expiry.rs`).

use dfs_proto::wire::namespace::Attr;
use serde::{Deserialize, Serialize};

use super::db::Store;
use super::error::NsError;
use super::expiry::{expired, made_at};
use super::keys::CF_RETRIES;
use super::mutations::Outcome;
use super::txn::Txn;

pub use super::expiry::RETRY_WINDOW;

/// A mutation's outcome and the directories it changed (`writer::Applied`).
type Applied = (Outcome, Vec<Attr>);

/// One call of one user: whose it is and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallKey {
    pub user: String,
    pub id: String,
}

impl CallKey {
    fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(2 + self.user.len() + self.id.len());
        k.push(b'k');
        k.extend_from_slice(self.user.as_bytes());
        k.push(0);
        k.extend_from_slice(self.id.as_bytes());
        k
    }
}

/// A stored answer: the outcome's attributes (if it had them) and the
/// directories the mutation changed.
#[derive(Serialize, Deserialize)]
struct Kept {
    attr: Option<Attr>,
    dirs: Vec<Attr>,
}

impl Store {
    /// The answer kept for `call`, if it was applied within the window
    /// before `now_ns`.
    pub fn retried(&self, call: &CallKey, now_ns: i64) -> Result<Option<Applied>, NsError> {
        let Some(v) = self.read(CF_RETRIES, &call.key())? else { return Ok(None) };
        let at = made_at(&v).ok_or_else(|| NsError::new(dfs_proto::ErrorKind::EIO, "a retry-cache entry is short"))?;
        if expired(at, now_ns) {
            return Ok(None);
        }
        let kept = &v[8..];
        let kept: Kept = serde_json::from_slice(kept).map_err(|e| NsError::new(dfs_proto::ErrorKind::EIO, format!("a retry-cache entry: {e}")))?;
        Ok(Some((kept.attr.map_or(Outcome::Done, Outcome::Attr), kept.dirs)))
    }
}

/// Keeps `applied` as the answer to `call` in `t`'s batch, if it is one
/// the cache can give again (attributes or nothing).
pub fn remember(t: &mut Txn, call: &CallKey, applied: &Applied) -> Result<(), NsError> {
    let attr = match &applied.0 {
        Outcome::Attr(a) => Some(a.clone()),
        Outcome::Done => None,
        _ => return Ok(()),
    };
    let kept = serde_json::to_vec(&Kept { attr, dirs: applied.1.clone() }).map_err(|e| NsError::new(dfs_proto::ErrorKind::EIO, e.to_string()))?;
    t.put_retry(&call.key(), &[t.now_ns.to_be_bytes().as_slice(), &kept].concat())
}
