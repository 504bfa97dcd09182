//! Which files clients hold open, so that a file whose last name goes
//! while it is open is kept (an orphan: no name, `nlink` 0) instead of
//! freed, as POSIX wants: open descriptors keep reading and writing it.
//!
//! Soft state, as chunk locations are. A client session (a mount)
//! registers each open as it happens, numbered by the session in order
//! (`seq`), and every few seconds restates the set it holds, with the
//! number of its last open before it took the set ([`Held::renew`]): a
//! file missing from the set is let go only if it was registered at or
//! before that number, so a restatement never undoes an open that crossed
//! it. A restatement adds nothing, except during the grace after the
//! start of a master that has had sessions (a durable mark), when they
//! restate what they held before; during that grace every file counts as
//! held (an unlink makes an orphan, freed after the grace unless
//! restated). A session not heard from within the timeout (its client
//! crashed) holds nothing.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs_proto::{ErrorKind, InodeId};

use super::error::{fail, NsError};

/// A session not restated for this long holds nothing (the default; the
/// master's `--open-files-timeout-ms`). Mounts restate every 5 s.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most files one session may hold open.
pub use dfs_proto::wire::namespace::SESSION_FILES_MAX;
/// Most (session, file) pairs one principal's sessions may hold together.
pub const PRINCIPAL_FILES_MAX: usize = 1_000_000;
/// Most (session, file) pairs all sessions together may hold: bounds the
/// memory authenticated clients can make the master spend.
pub const TOTAL_FILES_MAX: usize = 4_000_000;
/// Most sessions one principal may have.
pub const SESSIONS_PER_USER_MAX: usize = 256;

/// A session: the principal that signed its calls and the id it chose.
pub type SessionKey = (String, String);

struct Session {
    /// Each file held, with the number of its latest registration.
    files: HashMap<InodeId, u64>,
    seen: Instant,
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionKey, Session>,
    /// How many sessions hold each file.
    holders: HashMap<InodeId, u32>,
    /// Pairs held, per principal and in all.
    per_user: HashMap<String, usize>,
    total: usize,
}

impl State {
    /// Counts a (session of `user`, `inode`) pair coming (`up`) or going.
    fn count(&mut self, user: &str, inode: InodeId, up: bool) {
        if up {
            *self.holders.entry(inode).or_default() += 1;
            *self.per_user.entry(user.to_string()).or_default() += 1;
            self.total += 1;
            return;
        }
        if let Some(n) = self.holders.get_mut(&inode) {
            *n -= 1;
            if *n == 0 {
                self.holders.remove(&inode);
            }
        }
        if let Some(n) = self.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(user);
            }
        }
        self.total = self.total.saturating_sub(1);
    }

    /// Refuses `more` new pairs for `key` past any limit.
    fn room_for(&self, key: &SessionKey, more: usize) -> Result<(), NsError> {
        let (user, _) = key;
        let session = self.sessions.get(key);
        if session.is_none() && self.sessions.keys().filter(|(u, _)| u == user).count() >= SESSIONS_PER_USER_MAX {
            return fail(ErrorKind::ENOSPC, format!("{user} has {SESSIONS_PER_USER_MAX} sessions already"));
        }
        if session.map_or(0, |s| s.files.len()) + more > SESSION_FILES_MAX {
            return fail(ErrorKind::ENOSPC, format!("a session holds at most {SESSION_FILES_MAX} open files"));
        }
        if self.per_user.get(user).copied().unwrap_or(0) + more > PRINCIPAL_FILES_MAX || self.total + more > TOTAL_FILES_MAX {
            return fail(ErrorKind::ENOSPC, "as many open files are held as the master keeps track of");
        }
        Ok(())
    }

    fn drop_session(&mut self, key: &SessionKey) {
        let Some(session) = self.sessions.remove(key) else { return };
        for inode in session.files.into_keys() {
            self.count(&key.0, inode, false);
        }
    }
}

pub struct Held {
    state: Mutex<State>,
    timeout: Duration,
    /// Until then (a start's grace), every file counts as held.
    grace_until: Mutex<Option<Instant>>,
    /// The store's mark that sessions held files here is set (or being set).
    noted: std::sync::atomic::AtomicBool,
}

impl Default for Held {
    fn default() -> Self {
        Held::new(SESSION_TIMEOUT)
    }
}

impl Held {
    pub fn new(timeout: Duration) -> Self {
        Held { state: Mutex::default(), timeout, grace_until: Mutex::new(None), noted: std::sync::atomic::AtomicBool::new(false) }
    }

    /// True the first time it is asked (unless `noted_already`): the
    /// caller then records durably that sessions hold files here.
    pub fn needs_note(&self) -> bool {
        !self.noted.swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// The store already says sessions held files here.
    pub fn noted_already(&self) {
        self.noted.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A master start: for one timeout, files open on mounts before the
    /// start are not known yet, so every file counts as held and sessions
    /// may restate what they hold.
    pub fn begin_grace(&self, now: Instant) {
        *self.grace_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(now + self.timeout);
    }

    fn in_grace(&self, now: Instant) -> bool {
        self.grace_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|until| now < until)
    }

    /// The session opened `inode`, as its open number `seq`.
    pub fn open(&self, key: &SessionKey, inode: InodeId, seq: u64, now: Instant) -> Result<(), NsError> {
        let mut s = self.state();
        let known = s.sessions.get(key).is_some_and(|v| v.files.contains_key(&inode));
        if !known {
            s.room_for(key, 1)?;
        }
        let session = s.sessions.entry(key.clone()).or_insert_with(|| Session { files: HashMap::new(), seen: now });
        session.seen = now;
        let slot = session.files.entry(inode).or_insert(seq);
        *slot = (*slot).max(seq);
        if !known {
            s.count(&key.0, inode, true);
        }
        Ok(())
    }

    /// Undoes the open numbered `seq` (the file turned out not to exist),
    /// unless a later open of it came since.
    pub fn undo_open(&self, key: &SessionKey, inode: InodeId, seq: u64) {
        let mut s = self.state();
        let gone = s.sessions.get_mut(key).is_some_and(|v| v.files.get(&inode) == Some(&seq) && v.files.remove(&inode).is_some());
        if gone {
            s.count(&key.0, inode, false);
        }
    }

    /// The session holds `files` now, as it stood after its open numbered
    /// `upto`: files registered up to then and missing are let go; during
    /// a start's grace, files not known are taken (a restatement). All or
    /// nothing.
    pub fn renew(&self, key: &SessionKey, files: &[InodeId], upto: u64, now: Instant) -> Result<(), NsError> {
        if files.len() > SESSION_FILES_MAX {
            return fail(ErrorKind::ENOSPC, format!("a session holds at most {SESSION_FILES_MAX} open files"));
        }
        let grace = self.in_grace(now);
        let mut s = self.state();
        let listed: std::collections::HashSet<InodeId> = files.iter().copied().collect();
        let empty = HashMap::new();
        let held = s.sessions.get(key).map_or(&empty, |v| &v.files);
        let dropped: Vec<InodeId> = held.iter().filter(|(i, seq)| **seq <= upto && !listed.contains(i)).map(|(i, _)| *i).collect();
        let added: Vec<InodeId> = if grace { listed.iter().filter(|i| !held.contains_key(i)).copied().collect() } else { Vec::new() };
        let held_none = held.is_empty();
        if added.len() > dropped.len() {
            s.room_for(key, added.len() - dropped.len())?;
        }
        if held_none && added.is_empty() {
            return Ok(()); // nothing held, nothing to restate: no session made
        }
        let session = s.sessions.entry(key.clone()).or_insert_with(|| Session { files: HashMap::new(), seen: now });
        session.seen = now;
        for i in &dropped {
            session.files.remove(i);
        }
        for i in &added {
            session.files.insert(*i, upto);
        }
        dropped.iter().for_each(|i| s.count(&key.0, *i, false));
        added.iter().for_each(|i| s.count(&key.0, *i, true));
        Ok(())
    }

    /// Ends the sessions not heard from within the timeout.
    pub fn expire(&self, now: Instant) {
        let mut s = self.state();
        let stale: Vec<SessionKey> = s.sessions.iter().filter(|(_, v)| now.saturating_duration_since(v.seen) >= self.timeout).map(|(k, _)| k.clone()).collect();
        stale.iter().for_each(|k| s.drop_session(k));
    }

    /// Whether `inode` must be kept if its last name goes: some session
    /// holds it, or the master started too recently to know.
    pub fn holds(&self, inode: InodeId) -> bool {
        self.in_grace(Instant::now()) || self.state().holders.contains_key(&inode)
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
        held.open(&a, InodeId(5), 1, t0).unwrap();
        held.open(&b, InodeId(5), 1, t0).unwrap();
        assert!(held.holds(InodeId(5)));
        held.renew(&a, &[], 1, t0).unwrap();
        assert!(held.holds(InodeId(5)), "b still holds it");
        held.open(&b, InodeId(6), 2, t0).unwrap();
        held.renew(&b, &[InodeId(6)], 2, t0 + Duration::from_secs(10)).unwrap();
        assert!(!held.holds(InodeId(5)) && held.holds(InodeId(6)));
        // A crashed client's session ends after the timeout.
        held.expire(t0 + Duration::from_secs(10) + SESSION_TIMEOUT - Duration::from_millis(1));
        assert!(held.holds(InodeId(6)));
        held.expire(t0 + Duration::from_secs(10) + SESSION_TIMEOUT);
        assert!(!held.holds(InodeId(6)));
        assert_eq!(held.state().total, 0);
    }

    #[test]
    fn a_restatement_never_undoes_an_open_it_did_not_see_and_adds_nothing_outside_the_grace() {
        let held = Held::default();
        let t0 = Instant::now();
        let a = key("mnt", "a");
        held.open(&a, InodeId(1), 1, t0).unwrap();
        // Open number 2 reached the master before the restatement taken after open 1.
        held.open(&a, InodeId(2), 2, t0).unwrap();
        held.renew(&a, &[InodeId(1)], 1, t0).unwrap();
        assert!(held.holds(InodeId(2)), "the later open was undone");
        // Files the session never opened are not taken from a restatement.
        held.renew(&a, &[InodeId(1), InodeId(2), InodeId(99)], 2, t0).unwrap();
        assert!(!held.holds(InodeId(99)));
        // ... except in the grace after a start, when everything is held anyway.
        held.begin_grace(t0);
        assert!(held.holds(InodeId(12345)));
        held.renew(&a, &[InodeId(1), InodeId(2), InodeId(99)], 2, t0).unwrap();
        assert!(held.state().holders.contains_key(&InodeId(99)));
        held.undo_open(&a, InodeId(1), 0);
        assert!(held.state().holders.contains_key(&InodeId(1)), "an undo of an older open changes nothing");
        held.undo_open(&a, InodeId(1), 1);
        assert!(!held.state().holders.contains_key(&InodeId(1)));
    }

    #[test]
    fn sessions_and_their_files_are_bounded_and_a_refused_renewal_changes_nothing() {
        let held = Held::default();
        let t0 = Instant::now();
        for i in 0..SESSIONS_PER_USER_MAX {
            held.open(&key("u", &i.to_string()), InodeId(1), 1, t0).unwrap();
        }
        assert_eq!(held.open(&key("u", "one more"), InodeId(1), 1, t0).unwrap_err().kind, ErrorKind::ENOSPC);
        held.open(&key("other", "x"), InodeId(1), 1, t0).unwrap();
        held.begin_grace(t0);
        let too_many: Vec<InodeId> = (0..SESSION_FILES_MAX as u64 + 1).map(InodeId).collect();
        assert_eq!(held.renew(&key("other", "x"), &too_many, 1, t0).unwrap_err().kind, ErrorKind::ENOSPC);
        let almost: Vec<InodeId> = (10..SESSION_FILES_MAX as u64 + 11).map(InodeId).collect();
        assert_eq!(held.renew(&key("other", "x"), &almost, 1, t0).unwrap_err().kind, ErrorKind::ENOSPC, "with the file held already");
        assert!(held.state().holders.contains_key(&InodeId(1)), "a refused renewal dropped what was held");
    }
}
