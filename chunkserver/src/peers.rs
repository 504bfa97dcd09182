//! The cluster's chunkservers as this node knows them: the only nodes it
//! forwards writes to or copies replicas from, so a request naming any
//! other URL cannot make it send data (or requests) somewhere else.
//!
//! The list comes in heartbeat answers (signed by the master) whenever it
//! changed since the epoch this node holds. A node that registered a moment
//! ago may not be in it yet (the list lags by up to a heartbeat), so a
//! request naming an unknown URL first has a heartbeat sent at once and
//! waits, bounded, for its answer before it is refused.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use dfs_common::http::ApiError;
use dfs_common::wire::chunks::Peers;
use dfs_common::ErrorKind;
use tokio::sync::Notify;

/// Longest wait for a fresher peer list before a stranger is refused.
pub const REFRESH_WAIT: Duration = Duration::from_secs(2);

/// A base URL in the one form lists are compared in.
pub fn normalize(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The URLs of `wanted` that are not in `known` (pure, for tests).
pub fn strangers<'a>(known: &HashSet<String>, wanted: &'a [String]) -> Vec<&'a str> {
    wanted.iter().map(|u| normalize(u)).filter(|u| !known.contains(*u)).collect()
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

#[derive(Default)]
struct Known {
    epoch: u64,
    addresses: HashSet<String>,
}

impl PeerList {
    /// The epoch of the list held (0: none yet).
    pub fn epoch(&self) -> u64 {
        self.read().epoch
    }

    /// Takes a list the master sent (in a verified answer).
    pub fn set(&self, peers: Peers) {
        let addresses = peers.addresses.iter().map(|a| normalize(a).to_string()).collect();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Known { epoch: peers.epoch, addresses };
    }

    pub fn addresses(&self) -> Vec<String> {
        let mut list: Vec<String> = self.read().addresses.iter().cloned().collect();
        list.sort();
        list
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    fn strangers(&self, wanted: &[String]) -> Vec<String> {
        strangers(&self.read().addresses, wanted).into_iter().map(String::from).collect()
    }

    /// Ok when every URL of `wanted` is a registered chunkserver; otherwise
    /// asks for a heartbeat and checks again after each one ends, for up to
    /// `wait`; then 403 EACCES naming the strangers.
    pub async fn require(&self, wanted: &[String], wait: Duration) -> Result<(), ApiError> {
        let deadline = Instant::now() + wait;
        loop {
            let unknown = self.strangers(wanted);
            if unknown.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let m = format!("not a chunkserver of this cluster: {}", unknown.join(", "));
                return Err(ApiError::new(ErrorKind::EACCES, m));
            }
            let done = self.beat_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            self.beat_now.notify_one();
            let _ = tokio::time::timeout(left, done).await;
        }
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

    fn list(urls: &[&str]) -> PeerList {
        let p = PeerList::default();
        p.set(Peers { epoch: 9, addresses: urls.iter().map(|u| u.to_string()).collect() });
        p
    }

    #[test]
    fn only_listed_urls_pass_trailing_slashes_aside() {
        let known: HashSet<String> = ["http://a:1".to_string()].into();
        let wanted = vec!["http://a:1/".to_string(), "http://b:2".into(), "http://a:1.evil".into()];
        assert_eq!(strangers(&known, &wanted), vec!["http://b:2", "http://a:1.evil"]);
    }

    #[tokio::test]
    async fn a_stranger_is_refused_after_the_wait_and_a_peer_at_once() {
        let p = list(&["http://a:1"]);
        assert_eq!(p.epoch(), 9);
        p.require(&["http://a:1".into()], Duration::ZERO).await.unwrap();
        let e = p.require(&["http://x:1".into()], Duration::from_millis(50)).await.unwrap_err();
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
            beats.set(Peers { epoch: 10, addresses: vec!["http://a:1".into(), "http://new:1".into()] });
            beats.beat_finished();
        });
        p.require(&["http://new:1".into()], Duration::from_secs(5)).await.unwrap();
        assert_eq!(p.addresses(), vec!["http://a:1", "http://new:1"]);
    }
}
