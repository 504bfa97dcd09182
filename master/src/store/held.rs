//! Which files clients hold open, so that a file whose last name goes
//! while it is open is kept (an orphan: no name, `nlink` 0) instead of
//! freed, as POSIX wants: open descriptors keep reading and writing it.
//!
//! Soft state, as chunk locations are: each client session (a mount)
//! registers an open as it happens and restates the whole set it holds
//! every few seconds ([`Held::renew`]); a session not heard from within
//! the timeout (its client crashed) holds nothing. Orphans themselves are
//! durable (the `orphans` family), and after a master restart they wait
//! one session timeout for their holders to restate before they are freed.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs_proto::{ErrorKind, InodeId};

use super::error::{fail, NsError};

/// A session not restated for this long holds nothing (the default; the
/// master's `--open-files-timeout-ms`). Mounts restate every 5 s.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most files one session may hold open.
pub use dfs_proto::wire::namespace::SESSION_FILES_MAX;
/// Most (session, file) pairs all sessions together may hold: bounds the
/// memory an authenticated client can make the master spend.
pub const TOTAL_FILES_MAX: usize = 4_000_000;
/// Most sessions one principal may have.
pub const SESSIONS_PER_USER_MAX: usize = 256;

/// A session: the principal that signed its calls and the id it chose.
pub type SessionKey = (String, String);

struct Session {
    files: HashSet<InodeId>,
    seen: Instant,
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionKey, Session>,
    /// How many sessions hold each file.
    holders: HashMap<InodeId, u32>,
    total: usize,
}

impl State {
    fn add(&mut self, key: &SessionKey, inode: InodeId, now: Instant) -> Result<(), NsError> {
        self.room_for(key, 1)?;
        let session = self.sessions.entry(key.clone()).or_insert_with(|| Session { files: HashSet::new(), seen: now });
        session.seen = now;
        if session.files.len() >= SESSION_FILES_MAX {
            return fail(ErrorKind::ENOSPC, format!("a session holds at most {SESSION_FILES_MAX} open files"));
        }
        if session.files.insert(inode) {
            *self.holders.entry(inode).or_default() += 1;
            self.total += 1;
        }
        Ok(())
    }

    fn drop_session(&mut self, key: &SessionKey) {
        let Some(session) = self.sessions.remove(key) else { return };
        for inode in session.files {
            self.total -= 1;
            if let Some(n) = self.holders.get_mut(&inode) {
                *n -= 1;
                if *n == 0 {
                    self.holders.remove(&inode);
                }
            }
        }
    }

    /// Refuses a new session past the principal's limit, or `more` files
    /// past the total.
    fn room_for(&self, key: &SessionKey, more: usize) -> Result<(), NsError> {
        if !self.sessions.contains_key(key) && self.sessions.keys().filter(|(user, _)| *user == key.0).count() >= SESSIONS_PER_USER_MAX {
            return fail(ErrorKind::ENOSPC, format!("{} has {SESSIONS_PER_USER_MAX} sessions already", key.0));
        }
        if self.total + more > TOTAL_FILES_MAX {
            return fail(ErrorKind::ENOSPC, "the master holds as many open files as it keeps track of");
        }
        Ok(())
    }
}

pub struct Held {
    state: Mutex<State>,
    timeout: Duration,
}

impl Default for Held {
    fn default() -> Self {
        Held::new(SESSION_TIMEOUT)
    }
}

impl Held {
    pub fn new(timeout: Duration) -> Self {
        Held { state: Mutex::default(), timeout }
    }

    /// How long a silent session keeps holding its files.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session opened `inode`.
    pub fn open(&self, key: &SessionKey, inode: InodeId, now: Instant) -> Result<(), NsError> {
        self.state().add(key, inode, now)
    }

    /// The session holds exactly `files` now (an empty set ends it).
    pub fn renew(&self, key: &SessionKey, files: &[InodeId], now: Instant) -> Result<(), NsError> {
        if files.len() > SESSION_FILES_MAX {
            return fail(ErrorKind::ENOSPC, format!("a session holds at most {SESSION_FILES_MAX} open files"));
        }
        let mut s = self.state();
        s.drop_session(key);
        if files.is_empty() {
            return Ok(());
        }
        s.room_for(key, files.len())?;
        files.iter().try_for_each(|f| s.add(key, *f, now))
    }

    /// Ends the sessions not heard from within the timeout.
    pub fn expire(&self, now: Instant) {
        let mut s = self.state();
        let stale: Vec<SessionKey> = s.sessions.iter().filter(|(_, v)| now.saturating_duration_since(v.seen) >= self.timeout).map(|(k, _)| k.clone()).collect();
        stale.iter().for_each(|k| s.drop_session(k));
    }

    /// Whether some session holds `inode` open.
    pub fn holds(&self, inode: InodeId) -> bool {
        self.state().holders.contains_key(&inode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str, id: &str) -> SessionKey {
        (user.to_string(), id.to_string())
    }

    #[test]
    fn a_file_is_held_while_a_live_session_says_so() {
        let held = Held::default();
        let t0 = Instant::now();
        let (a, b) = (key("mnt", "a"), key("mnt", "b"));
        held.open(&a, InodeId(5), t0).unwrap();
        held.open(&b, InodeId(5), t0).unwrap();
        assert!(held.holds(InodeId(5)));
        held.renew(&a, &[], t0).unwrap();
        assert!(held.holds(InodeId(5)), "b still holds it");
        held.renew(&b, &[InodeId(6)], t0 + Duration::from_secs(10)).unwrap();
        assert!(!held.holds(InodeId(5)) && held.holds(InodeId(6)));
        // A crashed client's session ends after the timeout.
        held.expire(t0 + Duration::from_secs(10) + SESSION_TIMEOUT - Duration::from_millis(1));
        assert!(held.holds(InodeId(6)));
        held.expire(t0 + Duration::from_secs(10) + SESSION_TIMEOUT);
        assert!(!held.holds(InodeId(6)));
        assert_eq!(held.state().total, 0);
    }

    #[test]
    fn sessions_and_their_files_are_bounded() {
        let held = Held::default();
        let t0 = Instant::now();
        for i in 0..SESSIONS_PER_USER_MAX {
            held.open(&key("u", &i.to_string()), InodeId(1), t0).unwrap();
        }
        assert_eq!(held.open(&key("u", "one more"), InodeId(1), t0).unwrap_err().kind, ErrorKind::ENOSPC);
        held.open(&key("other", "x"), InodeId(1), t0).unwrap();
        let too_many: Vec<InodeId> = (0..SESSION_FILES_MAX as u64 + 1).map(InodeId).collect();
        assert_eq!(held.renew(&key("other", "x"), &too_many, t0).unwrap_err().kind, ErrorKind::ENOSPC);
    }
}
