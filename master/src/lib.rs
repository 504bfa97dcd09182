//! The dfs master: owns the namespace and, in later layers, chunk placement
//! and leases. It never carries file data.
//!
//! - [`config`]: the daemon's settings (flags, `DFS_*` variables, TOML).
//! - [`cluster_key`], [`tokens`]: the cluster key file; chunk tokens and
//!   the keys that sign them.
//! - [`users`]: who is calling: users, logins, sessions.
//! - [`store`]: the namespace in RocksDB and its group-commit writer.
//! - [`chunks`]: chunkservers, placement, leases and versions (soft state).
//! - [`state`]: [`state::Master`], what the running parts share (store,
//!   writer, chunk management, history, cluster key).
//! - [`api`]: the HTTP/JSON API under `/v1/`, and the dashboard.
//! - [`events`], [`history`]: recent events and an hour of samples for the dashboard.
//! - [`metrics`]: the master's figures for `/metrics` (no HTTP in it).
//! - [`webhdfs`], [`delegation`]: Hadoop's WebHDFS REST API and its
//!   delegation tokens.
//! - [`raft`]: consensus among several masters (the Raft log on disk).
//! - [`server`]: wiring them together and serving until a signal.

pub mod api;
pub mod chunks;
pub mod cluster_key;
pub mod config;
pub mod delegation;
pub mod events;
pub mod history;
pub mod metrics;
pub mod orphans;
pub mod raft;
pub mod server;
pub mod state;
pub mod store;
pub mod tokens;
pub mod users;
pub mod webhdfs;
