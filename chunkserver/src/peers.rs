//! The cluster's chunkservers as this node knows them: the only nodes it
//! forwards writes to or copies replicas from, so a request naming any
//! other URL cannot make it send data (or requests) somewhere else.
//!
//! The list comes in heartbeat answers (signed by the master) whenever it
//! changed since the epoch this node holds. A node that registered a moment
//! ago may not be in it yet (the list lags by up to a heartbeat), so a
//! request naming an unknown URL first has a heartbeat sent at once and
//! waits, bounded, for its answer before it is refused. A URL that was in
//! an earlier list (a node that died since) is not a stranger: a writer's
//! lease may still name it, and the write fails as if it were unreachable
//! (which it is), after one fresh list, not the whole wait.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::Peers;
use dfs_proto::ErrorKind;
use dfs_server_kit::http::ApiError;
use tokio::sync::Notify;

/// Longest wait for a fresher peer list before a stranger is refused.
pub const REFRESH_WAIT: Duration = Duration::from_secs(2);
/// Most former peers remembered; past it the memory starts again (a
/// forgotten one is then refused as a stranger: 403 instead of EIO).
const FORMER_MAX: usize = 4096;

/// A base URL in the one form lists are compared in.
pub fn normalize(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Why some URLs of a request are not peers.
#[derive(Debug, PartialEq, Eq)]
pub enum NotPeer {
    /// Never in a list this node held: 403 EACCES.
    Strangers(Vec<String>),
    /// Registered once, not now (dead or removed): this one is down.
    Gone(String),
}

impl NotPeer {
    /// The answer when the caller has nothing better to say.
    pub fn into_error(self) -> ApiError {
        match self {
            NotPeer::Strangers(s) => ApiError::new(ErrorKind::EACCES, format!("not a chunkserver of this cluster: {}", s.join(", "))),
            NotPeer::Gone(a) => ApiError::new(ErrorKind::EIO, format!("chunkserver {a} is no longer registered with the master")),
        }
    }
}

/// The peers a node knows now and knew before.
#[derive(Default)]
struct Known {
    epoch: u64,
    addresses: HashSet<String>,
    former: HashSet<String>,
}

impl Known {
    /// Judges `wanted` (pure, for tests): `None` when all are peers.
    fn judge(&self, wanted: &[String]) -> Option<NotPeer> {
        let unknown: Vec<&str> = wanted.iter().map(|u| normalize(u)).filter(|u| !self.addresses.contains(*u)).collect();
        let strangers: Vec<String> = unknown.iter().filter(|u| !self.former.contains(**u)).map(|u| u.to_string()).collect();
        match (unknown.first(), strangers.is_empty()) {
            (None, _) => None,
            (Some(first), true) => Some(NotPeer::Gone(first.to_string())),
            (Some(_), false) => Some(NotPeer::Strangers(strangers)),
        }
    }

    fn replace(&mut self, peers: Peers) {
        let addresses: HashSet<String> = peers.addresses.iter().map(|a| normalize(a).to_string()).collect();
        if self.former.len() >= FORMER_MAX {
            self.former.clear();
        }
        self.former.extend(self.addresses.difference(&addresses).cloned());
        self.former.retain(|a| !addresses.contains(a));
        self.addresses = addresses;
        self.epoch = peers.epoch;
    }
}

/// The peer list and the signals that refresh it.
#[derive(Default)]
pub struct PeerList {
    current: RwLock<Known>,
    /// A request is waiting for a fresher list: heartbeat now.
    beat_now: Notify,
    /// A heartbeat finished (answered or not).
    beat_done: Notify,
}

impl PeerList {
    /// The epoch of the list held (0: none yet).
    pub fn epoch(&self) -> u64 {
        self.read().epoch
    }

    /// Takes a list the master sent (in a verified answer).
    pub fn set(&self, peers: Peers) {
        self.current.write().unwrap_or_else(|e| e.into_inner()).replace(peers);
    }

    pub fn addresses(&self) -> Vec<String> {
        let mut list: Vec<String> = self.read().addresses.iter().cloned().collect();
        list.sort();
        list
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Ok when every URL of `wanted` is a registered chunkserver. Otherwise
    /// asks for a heartbeat and judges again after it: former peers after
    /// one fresh list, strangers after up to `wait`.
    pub async fn check(&self, wanted: &[String], wait: Duration) -> Result<(), NotPeer> {
        let deadline = Instant::now() + wait;
        let mut refreshed = false;
        loop {
            let verdict = match self.read().judge(wanted) {
                None => return Ok(()),
                Some(v) => v,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || (refreshed && matches!(verdict, NotPeer::Gone(_))) {
                return Err(verdict);
            }
            let done = self.beat_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            self.beat_now.notify_one();
            refreshed = tokio::time::timeout(left, done).await.is_ok();
        }
    }

    /// [`PeerList::check`], its refusal as an API error.
    pub async fn require(&self, wanted: &[String], wait: Duration) -> Result<(), ApiError> {
        self.check(wanted, wait).await.map_err(NotPeer::into_error)
    }

    /// Resolves when a request is waiting for a fresher list (heartbeat loop).
    pub async fn refresh_wanted(&self) {
        self.beat_now.notified().await
    }

    /// Called by the heartbeat loop after every heartbeat.
    pub fn beat_finished(&self) {
        self.beat_done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(epoch: u64, urls: &[&str]) -> Peers {
        Peers { epoch, addresses: urls.iter().map(|u| u.to_string()).collect() }
    }

    fn list(urls: &[&str]) -> PeerList {
        let p = PeerList::default();
        p.set(peers(9, urls));
        p
    }

    fn urls(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn listed_urls_pass_former_ones_are_gone_and_others_are_strangers() {
        let mut k = Known::default();
        k.replace(peers(1, &["http://a:1", "http://b:2"]));
        k.replace(peers(2, &["http://a:1"]));
        assert_eq!(k.judge(&urls(&["http://a:1/"])), None, "a trailing slash aside");
        assert_eq!(k.judge(&urls(&["http://a:1", "http://b:2"])), Some(NotPeer::Gone("http://b:2".into())));
        let mixed = k.judge(&urls(&["http://b:2", "http://x:9", "http://a:1.evil"]));
        assert_eq!(mixed, Some(NotPeer::Strangers(urls(&["http://x:9", "http://a:1.evil"]))), "a stranger among them is named");
        // Back in a later list: a peer again, not former.
        k.replace(peers(3, &["http://a:1", "http://b:2"]));
        assert_eq!(k.judge(&urls(&["http://b:2"])), None);
        assert!(k.former.is_empty());
    }

    #[tokio::test]
    async fn a_stranger_is_refused_after_the_wait_and_a_peer_at_once() {
        let p = list(&["http://a:1"]);
        assert_eq!(p.epoch(), 9);
        p.require(&urls(&["http://a:1"]), Duration::ZERO).await.unwrap();
        let e = p.require(&urls(&["http://x:1"]), Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(e.0.error, ErrorKind::EACCES);
        assert!(e.0.message.contains("http://x:1"), "{}", e.0.message);
    }

    #[tokio::test]
    async fn a_node_learnt_by_the_heartbeat_it_triggers_is_accepted() {
        let p = std::sync::Arc::new(list(&["http://a:1"]));
        let beats = p.clone();
        // A heartbeat loop: answers each refresh with the new list.
        tokio::spawn(async move {
            beats.refresh_wanted().await;
            beats.set(peers(10, &["http://a:1", "http://new:1"]));
            beats.beat_finished();
        });
        p.require(&urls(&["http://new:1"]), Duration::from_secs(5)).await.unwrap();
        assert_eq!(p.addresses(), vec!["http://a:1", "http://new:1"]);
    }

    #[tokio::test]
    async fn a_former_peer_is_gone_after_one_fresh_list_not_the_whole_wait() {
        let p = std::sync::Arc::new(list(&["http://a:1", "http://dead:1"]));
        p.set(peers(10, &["http://a:1"]));
        let beats = p.clone();
        tokio::spawn(async move {
            loop {
                beats.refresh_wanted().await;
                beats.beat_finished();
            }
        });
        let started = Instant::now();
        let e = p.check(&urls(&["http://dead:1"]), Duration::from_secs(30)).await.unwrap_err();
        assert_eq!(e, NotPeer::Gone("http://dead:1".into()));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(e.into_error().0.error, ErrorKind::EIO);
    }
}
