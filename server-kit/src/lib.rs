//! What the dfs daemons (master, chunkserver) share to serve; clients never
//! depend on it. The wire contract itself is `dfs-proto`.
//!
//! - [`config`]: layering of defaults, a TOML file, `DFS_*` variables and flags.
//! - [`dir_lock`]: one daemon per data directory (an exclusive `flock`).
//! - [`http`]: daemon setup, the server loop, API errors and extractors,
//!   routing by endpoint declarations, signed internal calls and their typed
//!   errors, metrics, the HTML shell of status pages.
//! - [`tls`]: a daemon's TLS: listener certificate, trusted CA, SIGHUP.
//! - [`worker`]: the one shape of the daemons' background workers (a tick,
//!   a stop signal, figures).

pub mod config;
pub mod dir_lock;
pub mod http;
pub mod tls;
pub mod worker;
