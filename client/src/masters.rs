//! The masters a client may call: one, or the members of a Raft group
//! (`--master URL1,URL2,URL3`), of which the one to call now is the
//! leader last heard of. A follower's refusal names the leader
//! (`dfs_proto::error::HEADER_LEADER`); a master that cannot be reached
//! hands over to the next one in the list.

use std::sync::{Arc, Mutex};

/// The list and the master calls go to now.
#[derive(Debug)]
pub struct Masters {
    urls: Vec<String>,
    current: Mutex<String>,
}

impl Masters {
    /// The comma-separated base URLs in `list` (one, for a single master).
    pub fn parse(list: &str) -> Arc<Masters> {
        let mut urls: Vec<String> = list.split(',').map(|u| u.trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty()).collect();
        if urls.is_empty() {
            urls.push(String::new()); // every call then fails with the URL's own error
        }
        Arc::new(Masters { current: Mutex::new(urls[0].clone()), urls })
    }

    /// The master to call now.
    pub fn current(&self) -> String {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The list as given (for another client of the same masters).
    pub fn list(&self) -> String {
        self.urls.join(",")
    }

    /// Whether there is more than one master to try.
    pub fn several(&self) -> bool {
        self.urls.len() > 1
    }

    /// Calls go to `leader` from now on (a follower named it), if it is one
    /// of the list: a master outside it (another name of a listed one, or a
    /// hostile answer sending signed requests elsewhere) is not followed,
    /// and the next master of the list is tried instead. Returns whether
    /// calls go to another master than `tried` now.
    pub fn follow(&self, tried: &str, leader: &str) -> bool {
        let leader = leader.trim_end_matches('/');
        if !self.urls.iter().any(|u| u == leader) {
            self.pass_over(tried);
            return self.current() != tried;
        }
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = leader.to_string();
        leader != tried
    }

    /// `tried` could not be reached or knows no leader: calls go to the
    /// next master of the list (unless another call moved on already).
    pub fn pass_over(&self, tried: &str) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if *current != tried {
            return;
        }
        let at = self.urls.iter().position(|u| u == tried);
        *current = self.urls[at.map_or(0, |i| (i + 1) % self.urls.len())].clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_go_round_the_list_and_to_the_leader_named() {
        let m = Masters::parse("http://a:1/, http://b:2,http://c:3");
        assert_eq!(m.current(), "http://a:1");
        assert!(m.several());
        m.pass_over("http://a:1");
        assert_eq!(m.current(), "http://b:2");
        // Another call moved on already: not again.
        m.pass_over("http://a:1");
        assert_eq!(m.current(), "http://b:2");
        m.pass_over("http://b:2");
        m.pass_over("http://c:3");
        assert_eq!(m.current(), "http://a:1");
        assert!(m.follow("http://a:1", "http://c:3/"));
        assert_eq!(m.current(), "http://c:3");
        assert!(!m.follow("http://c:3", "http://c:3"));
        // A leader outside the list is not followed: the next one is tried.
        assert!(m.follow("http://c:3", "https://evil:4"));
        assert_eq!(m.current(), "http://a:1");
        assert_eq!(m.list(), "http://a:1,http://b:2,http://c:3");
    }

    #[test]
    fn a_single_master_stays_itself() {
        let m = Masters::parse("http://a:1");
        assert!(!m.several());
        m.pass_over("http://a:1");
        assert_eq!(m.current(), "http://a:1");
    }
}
