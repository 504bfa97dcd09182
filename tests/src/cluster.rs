//! A whole cluster for a test: one master and N chunkservers on loopback,
//! with timing knobs shortened so failure detection takes about a second.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use crate::api::Api;
use crate::process::{ChunkserverProcess, MasterProcess};

/// Master flags for tests: heartbeats every 100 ms, dead after 1 s, 2 s leases.
pub const FAST_MASTER: &[&str] = &["--heartbeat-interval-ms", "100", "--dead-after-ms", "1000", "--lease-ms", "2000"];
/// Chunkserver flags for tests: heartbeats every 100 ms, full reports every 2 s.
pub const FAST_CHUNKSERVER: &[&str] = &["--heartbeat-interval-ms", "100", "--report-interval-ms", "2000"];

/// Fields drop in order: chunkservers, then the master, then the directory.
pub struct Cluster {
    pub chunkservers: Vec<ChunkserverProcess>,
    pub master: MasterProcess,
    pub api: Api,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a master and `n` chunkservers and waits until all are live.
    pub fn start(n: usize) -> anyhow::Result<Cluster> {
        Self::start_with(n, &[])
    }

    /// Like [`Cluster::start`], with more master flags.
    pub fn start_with(n: usize, master_args: &[&str]) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let args: Vec<&str> = FAST_MASTER.iter().chain(master_args).copied().collect();
        let master = MasterProcess::start(&dir.path().join("master"), &args)?;
        let mut chunkservers = Vec::new();
        for i in 0..n {
            chunkservers.push(ChunkserverProcess::start(&master.url, &dir.path().join(format!("cs{i}")), FAST_CHUNKSERVER)?);
        }
        let api = Api::new(&master.url);
        Ok(Cluster { dir, master, chunkservers, api })
    }

    /// Like [`Cluster::start_with`], with each chunkserver's data directory
    /// and extra flags (replacing those of [`FAST_CHUNKSERVER`] they name)
    /// chosen by `node(i, dir)`,
    /// where `dir` is the cluster's temporary directory.
    pub fn start_custom(n: usize, master_args: &[&str], node: impl Fn(usize, &Path) -> (PathBuf, Vec<String>)) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let args: Vec<&str> = FAST_MASTER.iter().chain(master_args).copied().collect();
        let master = MasterProcess::start(&dir.path().join("master"), &args)?;
        let mut chunkservers = Vec::new();
        for i in 0..n {
            let (data_dir, extra) = node(i, dir.path());
            // A flag given in `extra` replaces the fast default (flags may appear once).
            let fast = FAST_CHUNKSERVER.chunks(2).filter(|p| !extra.iter().any(|e| e == p[0])).flatten().copied();
            let cs_args: Vec<&str> = fast.chain(extra.iter().map(String::as_str)).collect();
            chunkservers.push(ChunkserverProcess::start(&master.url, &data_dir, &cs_args)?);
        }
        let api = Api::new(&master.url);
        Ok(Cluster { dir, master, chunkservers, api })
    }

    /// The index of the chunkserver at `address` (its base URL).
    pub fn index_of(&self, address: &str) -> Option<usize> {
        self.chunkservers.iter().position(|cs| cs.url == address.trim_end_matches('/'))
    }

    pub fn cs_dir(&self, i: usize) -> PathBuf {
        self.chunkservers[i].data_dir.clone()
    }

    /// The master's view of chunkservers.
    pub async fn chunkservers(&self) -> anyhow::Result<Vec<Value>> {
        let r = self.api.get("/v1/chunkservers").await?;
        Ok(r.body.as_array().cloned().unwrap_or_default())
    }

    /// Waits (bounded) until the master counts exactly `live` live chunkservers.
    pub async fn wait_live(&self, live: usize, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let nodes = self.chunkservers().await?;
            let n = nodes.iter().filter(|c| c["state"] == "live").count();
            if n == live {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("expected {live} live chunkservers, have {n} after {timeout:?}: {nodes:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
