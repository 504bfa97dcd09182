//! The dfs client library: talks to the master for metadata, leases and
//! chunk locations, and moves data straight to and from chunkservers.
//!
//! - [`fs`]: the file-system calls by path (stat, list, mkdir, create,
//!   open, rename, delete, set replication, chmod, chown, times, symlinks).
//! - [`file`]: open files: a streaming writer and a reader with read-ahead.
//! - `client`: [`Client`], the I/O core both drivers below share: tuning,
//!   connections, the caches of leases and locations, local reads.
//! - [`data`]: the async driver, the data path under both: writes through
//!   a chunk's replica chain, verified reads with fail-over, record append.
//! - `blocking`: the blocking driver: small reads served on the caller's
//!   own thread. It and `data` build on `client`; neither imports the other.
//! - `local`: short-circuit reads of replicas on this host.
//! - [`locations`]: the cache of chunk locations.
//! - `tokens`: when a chunk token from the master is renewed.
//! - `retry`: what a call does after a failure (a refused token is renewed).
//! - `sync`: durable close: the chunks a writer wrote, synced on every replica.
//! - [`master`]: the master's API, call by call.
//! - [`masters`]: which of several masters calls go to (the leader).
//! - [`auth`]: credentials, the session every request is signed under,
//!   and the local user a mount acts for.
//! - [`tls`]: the cluster CA `https://` masters and chunkservers are verified against.
//! - [`error`]: `ClientError`, which says whether a retry can help.
//! - [`request_id`]: the id every request of one operation carries, so it
//!   can be followed through the daemons' logs.
//!
//! The `dfs` shell and the FUSE mount are built on this crate.

pub mod auth;
mod blocking;
mod client;
pub mod data;
pub mod error;
pub mod file;
pub mod fs;
mod local;
pub mod locations;
pub mod master;
pub mod masters;
pub mod request_id;
mod retry;
mod sync;
pub mod tls;
mod tokens;

pub use client::{Client, DataConfig};
pub use error::ClientError;
pub use file::{FileReader, FileWriter};
pub use fs::CreateOptions;
pub use request_id::{with_request_id, RequestId};
