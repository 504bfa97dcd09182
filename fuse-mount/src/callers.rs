//! Whom a FUSE request comes from: its uid, and its groups (the request's
//! gid first, then the process's supplementary groups from
//! `/proc/PID/status`). The master checks permissions as that user (the
//! mount's principal acts for it, as NFS AUTH_SYS does); groups are cached
//! per process and credentials for a second, so a burst of calls reads
//! `/proc` once (a process that changes its uid or gid misses the cache).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_client::auth::ActAs;
use dfs_proto::auth::user::GROUPS_MAX;
use fuser::Request;

const TTL: Duration = Duration::from_secs(1);
/// Processes remembered at once; past it the cache starts over.
const ENTRIES_MAX: usize = 4096;

/// A process as a request names it: pid, uid, gid.
type Process = (u32, u32, u32);

#[derive(Default)]
pub struct Callers {
    /// When each process's groups were read, and what they were.
    groups: Mutex<HashMap<Process, (Instant, Vec<u32>)>>,
}

impl Callers {
    /// The user a request acts for.
    pub fn of(&self, fr: &Request) -> ActAs {
        let mut gids = vec![fr.gid()];
        for g in self.groups_of(fr.pid(), fr.uid(), fr.gid()) {
            if !gids.contains(&g) && gids.len() < GROUPS_MAX {
                gids.push(g);
            }
        }
        ActAs { uid: fr.uid(), gids }
    }

    fn groups_of(&self, pid: u32, uid: u32, gid: u32) -> Vec<u32> {
        let now = Instant::now();
        let mut cache = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, groups)) = cache.get(&(pid, uid, gid)) {
            if now.duration_since(*at) < TTL {
                return groups.clone();
            }
        }
        // A process gone already (or pid 0, the kernel's own) has none to add.
        let groups = std::fs::read_to_string(format!("/proc/{pid}/status")).map(|s| parse_groups(&s)).unwrap_or_default();
        if cache.len() >= ENTRIES_MAX {
            cache.clear();
        }
        cache.insert((pid, uid, gid), (now, groups.clone()));
        groups
    }
}

/// The `Groups:` line of a `/proc/PID/status`.
fn parse_groups(status: &str) -> Vec<u32> {
    status.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_status_line() {
        assert_eq!(parse_groups("Name:\tx\nGroups:\t4 24 27 \nNSpid:\t1\n"), vec![4, 24, 27]);
        assert_eq!(parse_groups("Groups:\n"), Vec::<u32>::new());
        assert_eq!(parse_groups("nothing"), Vec::<u32>::new());
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(own.contains("Groups:"));
    }
}
