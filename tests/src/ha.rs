//! Several masters in one Raft group, with chunkservers and clients that
//! know them all (`--master URL1,URL2,URL3`): the harness of the master HA
//! tests. Each master and each chunkserver is a host of its own, in a
//! network namespace with its own address (`crate::netns`); the clients
//! are the test process. Masters can be killed, frozen, cut off and
//! started again on their own address; the leader is found from each
//! master's `/metrics`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cluster::{FAST_CHUNKSERVER, FAST_MASTER};
use crate::netns::Net;
use crate::process::{note_credentials, ChunkserverProcess, MasterProcess};

/// A Raft group of masters and the chunkservers of its cluster. Fields
/// drop in order: chunkservers, masters, the network, then the directory.
pub struct Group {
    pub chunkservers: Vec<ChunkserverProcess>,
    /// `None` while killed.
    pub masters: Vec<Option<MasterProcess>>,
    /// Hosts 0.. are the masters, then the chunkservers.
    pub net: Net,
    /// Each master's `ADDRESS:PORT`, kept across restarts.
    addrs: Vec<String>,
    pub dir: tempfile::TempDir,
    /// The cluster key (every node) and the masters' Raft key.
    key: PathBuf,
    raft_key: PathBuf,
}

/// The port of every daemon: each has an address of its own.
const MASTER_PORT: u16 = 9870;
const CHUNKSERVER_PORT: u16 = 9866;

impl Group {
    /// Starts `masters` masters and `chunkservers` chunkservers, each in a
    /// namespace of its own (`seed` picks their names and subnet); returns
    /// once a leader serves and every chunkserver is live.
    pub async fn start(masters: usize, chunkservers: usize, seed: u64) -> anyhow::Result<Group> {
        let net = Net::new(masters + chunkservers, seed)?;
        let dir = tempfile::tempdir()?;
        let (key, raft_key) = (dir.path().join("cluster.key"), dir.path().join("raft.key"));
        for file in [&key, &raft_key] {
            std::fs::write(file, format!("{}\n", dfs_proto::auth::ClusterKey::generate().to_line()))?;
            std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        }
        let addrs = (0..masters).map(|i| format!("{}:{MASTER_PORT}", net.addr(i))).collect();
        let mut group = Group { chunkservers: Vec::new(), masters: Vec::new(), net, addrs, dir, key, raft_key };
        for i in 0..masters {
            let m = group.spawn_master(i)?;
            group.masters.push(Some(m));
        }
        let leader = group.leader(Duration::from_secs(30)).await?;
        group.note_admin(leader)?;
        let key = group.key.display().to_string();
        for i in 0..chunkservers {
            let args: Vec<&str> = FAST_CHUNKSERVER.iter().copied().chain(["--cluster-key-file", &key]).collect();
            let host = masters + i;
            let (ns, listen) = (group.net.ns(host), format!("{}:{CHUNKSERVER_PORT}", group.net.addr(host)));
            let cs = ChunkserverProcess::start_in(&ns, &listen, &group.urls(), &group.dir.path().join(format!("cs{i}")), &args)?;
            group.chunkservers.push(cs);
        }
        group.live_chunkservers(chunkservers, Duration::from_secs(30)).await?;
        Ok(group)
    }

    /// Every master's base URL, comma-separated: what clients are given.
    pub fn urls(&self) -> String {
        self.addrs.iter().map(|a| format!("http://{a}")).collect::<Vec<_>>().join(",")
    }

    fn peers(&self) -> String {
        self.addrs.iter().enumerate().map(|(i, a)| format!("{}=http://{a}", i + 1)).collect::<Vec<_>>().join(",")
    }

    fn spawn_master(&self, i: usize) -> anyhow::Result<MasterProcess> {
        let (id, peers) = ((i + 1).to_string(), self.peers());
        let (key, raft_key) = (self.key.display().to_string(), self.raft_key.display().to_string());
        let mut args: Vec<&str> = FAST_MASTER.to_vec();
        args.extend(["--raft-id", &id, "--raft-peers", &peers, "--cluster-key-file", &key, "--raft-key-file", &raft_key]);
        MasterProcess::start_at(&self.dir.path().join(format!("m{i}")), &self.addrs[i], &args, Some(&self.net.ns(i)))
    }

    /// The admin credentials the first leader made, for every client of
    /// the group ([`crate::client`] with [`Group::urls`]).
    fn note_admin(&self, leader: usize) -> anyhow::Result<()> {
        let dir = self.dir.path().join(format!("m{leader}"));
        let file = dir.join("admin.credentials");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !file.exists() {
            if Instant::now() > deadline {
                bail!("the first leader made no {}", file.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        note_credentials(&self.urls(), &dir);
        Ok(())
    }

    /// SIGKILL to master `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut m) = self.masters[i].take() {
            m.kill9();
        }
    }

    /// Starts master `i` again, on its address and data directory.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.masters[i] = Some(self.spawn_master(i)?);
        Ok(())
    }

    /// Master `i`'s figure `name` from its `/metrics` (None: not running,
    /// not answering, or no such figure).
    pub async fn figure(&self, i: usize, name: &str) -> Option<f64> {
        self.masters[i].as_ref()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
        let text = http.get(format!("http://{}/metrics", self.addrs[i])).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The master that leads and serves, among those running and not in
    /// `besides`, within `within`.
    pub async fn leader_besides(&self, besides: &[usize], within: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            for i in (0..self.masters.len()).filter(|i| !besides.contains(i)) {
                if self.figure(i, "dfs_master_raft_leader").await == Some(1.0) {
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                bail!("no master led within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn leader(&self, within: Duration) -> anyhow::Result<usize> {
        self.leader_besides(&[], within).await
    }

    /// Waits until every running master has applied the same entries and
    /// counts the same files and directories (the followers' stores
    /// hold what the leader's does).
    pub async fn converged(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let names = ["dfs_master_raft_applied_index", "dfs_master_files", "dfs_master_directories"];
        loop {
            let mut seen = Vec::new();
            for i in (0..self.masters.len()).filter(|i| self.masters[*i].is_some()) {
                let mut figures = Vec::new();
                for n in names {
                    figures.push(self.figure(i, n).await);
                }
                seen.push(figures);
            }
            if seen.windows(2).all(|w| w[0] == w[1]) && seen.first().is_some_and(|f| f.iter().all(Option::is_some)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the masters did not converge within {within:?}: (applied, files, directories) per master: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn live_chunkservers(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let client = crate::client(&self.urls());
        let deadline = Instant::now() + within;
        loop {
            let live = client.master().chunkservers().await.map(|c| c.iter().filter(|n| n.state == "live").count()).unwrap_or(0);
            if live >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(anyhow::anyhow!("{live} of {n} chunkservers live")).context("waiting for the chunkservers");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
