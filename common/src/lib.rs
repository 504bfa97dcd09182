//! Shared vocabulary of dfs: what every crate must agree on and nothing more.
//!
//! - [`ids`]: typed ids (`InodeId`, `ChunkHandle`, `ChunkVersion`).
//! - [`error`]: the error kinds the API speaks (one per errno) and their JSON body.
//! - [`names`]: the rules for file names and absolute paths.
//! - [`wire`]: request and response types of the master's HTTP/JSON API.
//! - [`http`] (feature `http`): API errors and extractors for axum servers.
//! - [`local_reads`]: the Unix-socket protocol of short-circuit reads.
//! - [`auth`]: the cluster key, signatures of internal requests, chunk tokens.
//! - [`config`]: layering of defaults, a TOML file, `DFS_*` variables and flags.
//! - [`dir_lock`]: one daemon per data directory (an exclusive `flock`).
//! - [`worker`] (feature `http`): the one shape of the daemons' background
//!   workers (a tick, a stop signal, figures).

pub mod auth;
pub mod config;
pub mod dir_lock;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod ids;
pub mod local_reads;
pub mod names;
pub mod wire;
#[cfg(feature = "http")]
pub mod worker;

pub use error::{ErrorBody, ErrorKind};
pub use ids::{ChunkHandle, ChunkVersion, InodeId, NodeId};
