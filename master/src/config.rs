//! The master's configuration: one struct, defaults in code, overridable by
//! a TOML file (`--config`), `DFS_*` environment variables and flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use dfs_server_kit::config::ConfigError;
use dfs_server_kit::http::daemon::DaemonConfig;
use serde::{Deserialize, Serialize};

use crate::store::mutations::{check_chunk_size, check_replication};

#[derive(Parser, Serialize, Deserialize, Debug, Clone)]
#[command(name = "dfs-master", version, about = "The dfs master: namespace, chunk placement and the HTTP/JSON API")]
pub struct MasterConfig {
    /// TOML file with any of these settings (keys are the names in snake_case).
    #[arg(long, env = "DFS_CONFIG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,

    /// Address for the HTTP API, dashboard and metrics. Port 0 picks a free one.
    #[arg(long, env = "DFS_LISTEN", default_value = "127.0.0.1:9870")]
    pub listen: SocketAddr,

    /// Directory of the metadata database (created if missing).
    #[arg(long, env = "DFS_DATA_DIR", default_value = "dfs-data/master")]
    pub data_dir: PathBuf,

    /// The cluster key file (`key ID HEX` lines, mode 0600): every
    /// chunkserver of the cluster needs a copy. Default DATA_DIR/cluster.key,
    /// created with a new key on the first start.
    #[arg(long, env = "DFS_CLUSTER_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_key_file: Option<PathBuf>,

    /// TLS: this node's certificate and key, the cluster CA (all or none).
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: dfs_server_kit::tls::TlsFlags,

    /// Who may use the API: `users` (every request signed by a user's
    /// session; see `dfs admin user`) or `none` (anyone who reaches the
    /// port is the superuser: only for throwaway clusters, and logged loudly).
    #[arg(long, env = "DFS_AUTH", default_value = "users", value_parser = ["users", "none"])]
    pub auth: String,

    /// The first admin's name, made with DATA_DIR/admin.credentials (mode
    /// 0600) on the first start: uid 0, in the supergroup, admin, and allowed
    /// to act for local users (a mount).
    #[arg(long, env = "DFS_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,

    /// Members of this group pass every permission check, as uid 0 does
    /// (HDFS's dfs.permissions.superusergroup).
    #[arg(long, env = "DFS_SUPERUSER_GROUP", default_value = "supergroup")]
    pub superuser_group: String,

    /// WebHDFS's simple authentication: `true` takes `user.name=` as the
    /// caller, unchecked, as HDFS without Kerberos does (only for clusters
    /// whose network is trusted); `false` (the default) wants a
    /// delegation token (`dfs fetchdt`) or a signed request.
    #[arg(long, env = "DFS_WEBHDFS_SIMPLE_AUTH", default_value_t = false, action = clap::ArgAction::Set)]
    #[serde(default)]
    pub webhdfs_simple_auth: bool,

    /// The dashboard: `login` (users log in at /login) or `public` (anyone
    /// may look, read-only, with the rights of "other"; no downloads).
    #[arg(long, env = "DFS_DASHBOARD", default_value = "login", value_parser = ["login", "public"])]
    pub dashboard: String,

    /// Host names the dashboard answers to besides IP addresses and
    /// `localhost`, comma-separated (requests naming others are refused:
    /// DNS rebinding).
    #[arg(long, env = "DFS_DASHBOARD_HOSTS", default_value = "")]
    pub dashboard_hosts: String,

    /// How long a login session lasts, in ms; clients log in again by themselves.
    #[arg(long, env = "DFS_SESSION_MS", default_value_t = 3_600_000)]
    pub session_ms: u64,

    /// How long a chunk token (a client's right to read or write one chunk)
    /// stays valid, in ms; clients renew theirs transparently.
    #[arg(long, env = "DFS_TOKEN_LIFETIME_MS", default_value_t = 600_000)]
    pub token_lifetime_ms: u64,

    /// How long one token key signs before the next takes over, in ms.
    #[arg(long, env = "DFS_TOKEN_KEY_ROLL_MS", default_value_t = 1_800_000)]
    pub token_key_roll_ms: u64,

    /// Replicas per chunk for files that do not ask for another number.
    #[arg(long, env = "DFS_DEFAULT_REPLICATION", default_value_t = 3)]
    pub default_replication: u16,

    /// Chunk size in bytes for files that do not ask for another (64 MiB).
    #[arg(long, env = "DFS_DEFAULT_CHUNK_SIZE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub default_chunk_size_bytes: u64,

    /// Largest request body the API accepts, in bytes.
    #[arg(long, env = "DFS_MAX_REQUEST_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_request_body_bytes: usize,

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

    /// Most namespace mutations that share one metadata log sync (group commit).
    #[arg(long, env = "DFS_GROUP_COMMIT_MAX_OPS", default_value_t = 1024)]
    pub group_commit_max_ops: usize,

    /// How often chunkservers are expected to heartbeat, in ms.
    #[arg(long, env = "DFS_HEARTBEAT_INTERVAL_MS", default_value_t = 3_000)]
    pub heartbeat_interval_ms: u64,

    /// A chunkserver silent this long (ms) is dead; its replicas stop counting.
    #[arg(long, env = "DFS_DEAD_AFTER_MS", default_value_t = 30_000)]
    pub dead_after_ms: u64,

    /// Length of a chunk lease in ms; extended while writes go on.
    #[arg(long, env = "DFS_LEASE_MS", default_value_t = 60_000)]
    pub lease_ms: u64,

    /// Interval between background passes (re-replication, garbage collection), in ms.
    #[arg(long, env = "DFS_REPLICATION_INTERVAL_MS", default_value_t = 1_000)]
    pub replication_interval_ms: u64,

    /// How long a client (a mount) that stopped saying which files it
    /// holds open keeps holding them, in ms: a file unlinked while open
    /// there is freed this long after the client crashed.
    #[arg(long, env = "DFS_OPEN_FILES_TIMEOUT_MS", default_value_t = 30_000)]
    pub open_files_timeout_ms: u64,

    /// Replica copies in flight through one chunkserver (as source or target) at once.
    #[arg(long, env = "DFS_MAX_COPIES_PER_NODE", default_value_t = 2)]
    pub max_copies_per_node: usize,

    /// How long chunks of removed data, and replicas of chunks the master
    /// does not know, are kept before they are deleted, in ms.
    #[arg(long, env = "DFS_GC_GRACE_MS", default_value_t = 60_000)]
    pub gc_grace_ms: u64,

    /// Replicas of chunks the master does not know are not deleted until
    /// this long (ms) after the master started, on top of gc_grace_ms (as
    /// HDFS's startup.delay.block.deletion): a master started on an empty
    /// or wrong data directory must not delete the replicas it hears about.
    #[arg(long, env = "DFS_STARTUP_DELETE_DELAY_MS", default_value_t = 3_600_000)]
    pub startup_delete_delay_ms: u64,

    /// Safe mode ends once this share (0..=1) of chunks has a replica reported...
    #[arg(long, env = "DFS_SAFE_MODE_THRESHOLD", default_value_t = 0.999)]
    pub safe_mode_threshold: f64,

    /// ...and this long (ms) has passed since, for the other reports to arrive...
    #[arg(long, env = "DFS_SAFE_MODE_EXTENSION_MS", default_value_t = 5_000)]
    pub safe_mode_extension_ms: u64,

    /// ...or at the latest this long (ms) after the start.
    #[arg(long, env = "DFS_SAFE_MODE_TIMEOUT_MS", default_value_t = 60_000)]
    pub safe_mode_timeout_ms: u64,

    /// This master's id in its Raft group (1 or more). With raft_peers the
    /// masters replicate the namespace, one leads and the others send
    /// clients to it (README: "Several masters"). Unset: a single master.
    #[arg(long, env = "DFS_RAFT_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_id: Option<u64>,

    /// Every master of the group, this one included, comma-separated
    /// `ID=URL` (each URL the master's API base, as the others and the
    /// clients reach it), the same on every master.
    #[arg(long, env = "DFS_RAFT_PEERS", default_value = "")]
    pub raft_peers: String,

    /// The masters' own key file (`key ID HEX` lines, as `dfs-master
    /// keygen` prints, mode 0600): Raft's calls between masters are signed
    /// with it. Only the masters hold it, never a chunkserver, so a stolen
    /// chunkserver cannot vote or append. Required with raft_peers.
    #[arg(long, env = "DFS_RAFT_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_key_file: Option<PathBuf>,

    /// The shortest Raft election timeout in ms (each election waits a
    /// random time up to 1.5 times it): how long a silent leader is waited
    /// for. Followers also refuse to vote for as long as the longest
    /// timeout after the leader's last word, so a failover takes about two
    /// to three times this.
    #[arg(long, env = "DFS_RAFT_ELECTION_MS", default_value_t = 500)]
    pub raft_election_ms: u64,

    /// Log filter (tracing's env-filter syntax), e.g. "info" or
    /// "dfs_master=debug". openraft's own lines are left out but for
    /// errors (it logs every vote and append, and every failed call to
    /// a master that is down); this master logs its role changes.
    #[arg(long, env = "DFS_LOG", default_value = "info,openraft=error")]
    pub log: String,

    /// A maintenance command to run on the data directory instead of serving.
    #[command(subcommand)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<MasterCommand>,
}

/// Maintenance commands, run with the master stopped.
#[derive(Subcommand, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum MasterCommand {
    /// Shows what truncating a metadata log damaged in the middle would
    /// lose (offset, records, bytes); with --yes, keeps a copy of the log
    /// and truncates it at the damaged record.
    RecoverLog {
        /// Truncate (without it, nothing is changed).
        #[arg(long)]
        yes: bool,
    },
    /// Prints a new cluster key line (`key ID HEX`) for a rotation: see
    /// "Rotating the cluster key" in the README.
    Keygen,
    /// Makes the namespace in --data-dir (which must hold none) from a
    /// backup `dfs admin backup` wrote; then start the master as usual.
    Restore {
        /// The backup's directory.
        backup: std::path::PathBuf,
    },
}

const NO_RAFT_KEY: &str =
    "several masters need --raft-key-file: a key only masters hold (`dfs-master keygen > raft.key`, chmod 600, a copy on every master, never on a chunkserver)";

/// Most masters in one group: each write waits for a majority of them.
pub const MAX_MASTERS: usize = 7;

impl MasterConfig {
    /// The Raft group's members (id → base URL), if this master has peers.
    pub fn raft_members(&self) -> Result<Option<std::collections::BTreeMap<u64, String>>, String> {
        let peers = self.raft_peers.trim();
        let id = match (self.raft_id, peers.is_empty()) {
            (None, true) => return Ok(None),
            (Some(id), false) => id,
            _ => return Err("raft_id and raft_peers go together: both or neither".into()),
        };
        if self.raft_key_file.is_none() {
            return Err(NO_RAFT_KEY.into());
        }
        let mut members = std::collections::BTreeMap::new();
        for part in peers.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (n, url) = part.split_once('=').ok_or_else(|| format!("raft_peers: {part:?} is not ID=URL"))?;
            let n: u64 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("raft_peers: {n:?} is not an id of 1 or more"))?;
            let url = url.trim().trim_end_matches('/');
            if !dfs_proto::tls::scheme_fits(url, self.tls.tls_cert.is_some()) || url.contains(['?', '#', ' ']) {
                return Err(format!("raft_peers: {url:?} is not a base URL of the scheme this master serves"));
            }
            if members.insert(n, url.to_string()).is_some() {
                return Err(format!("raft_peers: id {n} is named twice"));
            }
        }
        if !members.contains_key(&id) {
            return Err(format!("raft_peers does not name this master's raft_id {id}"));
        }
        if members.len() > MAX_MASTERS {
            return Err(format!("raft_peers names {} masters; at most {MAX_MASTERS}", members.len()));
        }
        Ok(Some(members))
    }
}

impl DaemonConfig for MasterConfig {
    fn log_filter(&self) -> &str {
        &self.log
    }

    /// Names the first broken relation between settings.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Err(e) = self.tls.check() {
            return invalid(e);
        }
        if let Err(e) = check_replication(self.default_replication) {
            return invalid(format!("default_replication: {}", e.message));
        }
        if let Err(e) = check_chunk_size(self.default_chunk_size_bytes) {
            return invalid(format!("default_chunk_size_bytes: {}", e.message));
        }
        if let Err(e) = dfs_proto::auth::user::check_name(&self.admin_user).and(dfs_proto::auth::user::check_name(&self.superuser_group)) {
            return invalid(format!("admin_user / superuser_group: {e}"));
        }
        if !(60_000..=7 * 86_400_000).contains(&self.session_ms) {
            return invalid(format!("session_ms ({}) must be from one minute to a week", self.session_ms));
        }
        if self.max_request_body_bytes < 128 * 1024 {
            return invalid("max_request_body_bytes must be at least 131072 to carry an extended attribute's 64 KiB value".into());
        }
        if let Err(e) = dfs_server_kit::http::serve::Limits::check(self.header_read_timeout_ms, self.body_idle_timeout_ms, self.max_connections) {
            return invalid(e);
        }
        if self.heartbeat_interval_ms == 0 || self.dead_after_ms < 3 * self.heartbeat_interval_ms {
            return invalid(format!(
                "dead_after_ms ({}) must cover at least three heartbeats of heartbeat_interval_ms ({})",
                self.dead_after_ms, self.heartbeat_interval_ms
            ));
        }
        if self.lease_ms < 3 * self.heartbeat_interval_ms {
            return invalid(format!("lease_ms ({}) must outlast three heartbeats of heartbeat_interval_ms ({})", self.lease_ms, self.heartbeat_interval_ms));
        }
        // A token key is announced two heartbeats before it signs, and a
        // token must outlive the heartbeat that tells chunkservers its key.
        let three = self.heartbeat_interval_ms.saturating_mul(3);
        if self.token_lifetime_ms < three || self.token_key_roll_ms < three {
            return invalid(format!(
                "token_lifetime_ms ({}) and token_key_roll_ms ({}) must cover at least three heartbeats of heartbeat_interval_ms ({})",
                self.token_lifetime_ms, self.token_key_roll_ms, self.heartbeat_interval_ms
            ));
        }
        // Mounts restate their open files every 5 s: two may be missed.
        if !(12_000..=3_600_000).contains(&self.open_files_timeout_ms) {
            return invalid(format!("open_files_timeout_ms ({}) must be from 12000 to 3600000", self.open_files_timeout_ms));
        }
        if self.replication_interval_ms == 0 || self.max_copies_per_node == 0 {
            return invalid("replication_interval_ms and max_copies_per_node must be at least 1".into());
        }
        if self.gc_grace_ms < 1_000 {
            // Unknown replicas may be chunks being placed right now.
            return invalid("gc_grace_ms must be at least 1000".into());
        }
        if !(0.0..=1.0).contains(&self.safe_mode_threshold) {
            return invalid(format!("safe_mode_threshold must be between 0 and 1, not {}", self.safe_mode_threshold));
        }
        if self.group_commit_max_ops == 0 {
            return invalid("group_commit_max_ops must be at least 1".into());
        }
        if let Err(e) = self.raft_members() {
            return invalid(e);
        }
        if !(100..=60_000).contains(&self.raft_election_ms) {
            return invalid(format!("raft_election_ms ({}) must be from 100 to 60000", self.raft_election_ms));
        }
        Ok(())
    }
}
