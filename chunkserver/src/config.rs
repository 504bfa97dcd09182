//! The chunkserver's configuration: one struct, defaults in code,
//! overridable by a TOML file (`--config`), `DFS_*` variables and flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use dfs_server_kit::config::ConfigError;
use dfs_server_kit::http::daemon::DaemonConfig;
use serde::{Deserialize, Serialize};

#[derive(Parser, Serialize, Deserialize, Debug, Clone)]
#[command(name = "dfs-chunkserver", version, about = "A dfs chunkserver: stores checksummed chunk replicas")]
pub struct ChunkserverConfig {
    /// TOML file with any of these settings (keys are the names in snake_case).
    #[arg(long, env = "DFS_CONFIG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,

    /// Address for the data and status endpoints. Port 0 picks a free one.
    #[arg(long, env = "DFS_LISTEN", default_value = "127.0.0.1:9866")]
    pub listen: SocketAddr,

    /// The master's base URL.
    #[arg(long, env = "DFS_MASTER", default_value = "http://127.0.0.1:9870")]
    pub master: String,

    /// Directory holding the node id and the chunk replicas (created if missing).
    #[arg(long, env = "DFS_DATA_DIR", default_value = "dfs-data/chunkserver")]
    pub data_dir: PathBuf,

    /// The cluster key file (mode 0600), the master's DATA_DIR/cluster.key
    /// copied here: internal requests are signed with it and chunk tokens
    /// checked with keys derived from it. Required. Reloaded when it changes.
    #[arg(long, env = "DFS_CLUSTER_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_key_file: Option<PathBuf>,

    /// TLS: this node's certificate and key, the cluster CA (all or none).
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: dfs_server_kit::tls::TlsFlags,

    /// URL clients and peers should use for this node; default: http:// (https://
    /// with TLS) + the bound address.
    #[arg(long, env = "DFS_ADVERTISE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_url: Option<String>,

    /// Interval between heartbeats to the master, in ms.
    #[arg(long, env = "DFS_HEARTBEAT_INTERVAL_MS", default_value_t = 3_000)]
    pub heartbeat_interval_ms: u64,

    /// Interval between full chunk reports, in ms (also sent at registration).
    #[arg(long, env = "DFS_REPORT_INTERVAL_MS", default_value_t = 60_000)]
    pub report_interval_ms: u64,

    /// Largest body of one write request, in bytes.
    #[arg(long, env = "DFS_MAX_WRITE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_write_bytes: u64,

    /// Longest time a client may take to send a request's head, in ms; also
    /// how long an idle kept-alive connection stays open (slowloris).
    #[arg(long, env = "DFS_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Longest wait, in ms, on a client that moves less than 16 KiB of a
    /// request body (or of a response it reads): its request fails.
    #[arg(long, env = "DFS_BODY_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_idle_timeout_ms: u64,

    /// Most HTTP connections open at once; past it new ones wait in the
    /// listen backlog until one closes.
    #[arg(long, env = "DFS_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Bandwidth of each chunk copy made on the master's order
    /// (re-replication), in MiB/s: read from the source, written here.
    #[arg(long, env = "DFS_REPLICATION_MIB_PER_SEC", default_value_t = 128)]
    pub replication_mib_per_sec: u64,

    /// Bandwidth of the background scrubber, which re-reads every replica and
    /// checks its checksums, in MiB/s.
    #[arg(long, env = "DFS_SCRUB_MIB_PER_SEC", default_value_t = 16)]
    pub scrub_mib_per_sec: u64,

    /// Time between the starts of two scrubber passes over all replicas, in ms
    /// (a pass that overruns is followed at once by the next). The first
    /// pass starts min(this, 10 s) after start-up.
    #[arg(long, env = "DFS_SCRUB_PERIOD_MS", default_value_t = 86_400_000)]
    pub scrub_period_ms: u64,

    /// Serve short-circuit reads: clients on this host get read-only
    /// descriptors of replicas over a Unix socket in the data directory and
    /// read them without the HTTP hop (checking every block's CRC).
    #[arg(long, env = "DFS_LOCAL_READS", default_value_t = true, action = clap::ArgAction::Set)]
    pub local_reads: bool,

    /// Log filter (tracing's env-filter syntax).
    #[arg(long, env = "DFS_LOG", default_value = "info")]
    pub log: String,
}

/// Why a chunkserver without a key file does not start (one line).
pub const NO_CLUSTER_KEY: &str = "no cluster key: pass --cluster-key-file (the master created MASTER_DATA_DIR/cluster.key)";

impl DaemonConfig for ChunkserverConfig {
    fn log_filter(&self) -> &str {
        &self.log
    }

    /// Names the first broken relation between settings.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.cluster_key_file.is_none() {
            return invalid(NO_CLUSTER_KEY.into());
        }
        if let Err(e) = self.tls.check() {
            return invalid(e);
        }
        let tls = self.tls.enabled();
        let scheme = dfs_proto::tls::scheme(tls);
        if !self.master.split(',').map(str::trim).all(|m| dfs_proto::tls::scheme_fits(m, tls)) {
            return invalid(format!("master must be an {scheme}:// URL (TLS is {}), not {:?}", if tls { "on" } else { "off" }, self.master));
        }
        if self.advertise_url.as_deref().is_some_and(|u| !dfs_proto::tls::scheme_fits(u, tls)) {
            return invalid(format!("advertise_url must be an {scheme}:// URL"));
        }
        if self.heartbeat_interval_ms == 0 {
            return invalid("heartbeat_interval_ms must be at least 1".into());
        }
        if self.report_interval_ms < self.heartbeat_interval_ms {
            return invalid("report_interval_ms must be at least heartbeat_interval_ms".into());
        }
        if self.max_write_bytes < 64 * 1024 {
            return invalid("max_write_bytes must be at least one 64 KiB block".into());
        }
        if let Err(e) = dfs_server_kit::http::serve::Limits::check(self.header_read_timeout_ms, self.body_idle_timeout_ms, self.max_connections) {
            return invalid(e);
        }
        if self.replication_mib_per_sec == 0 {
            return invalid("replication_mib_per_sec must be at least 1".into());
        }
        if self.scrub_mib_per_sec == 0 {
            return invalid("scrub_mib_per_sec must be at least 1".into());
        }
        if self.scrub_period_ms == 0 {
            return invalid("scrub_period_ms must be at least 1".into());
        }
        Ok(())
    }
}
