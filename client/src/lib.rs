//! The dfs client library: talks to the master for metadata, leases and
//! chunk locations, and moves data straight to and from chunkservers.
//!
//! - [`error`]: `ClientError`, which says whether a retry can help.
//! - [`master`]: calls to the master's API.
//! - [`data`]: writes through a chunk's replica chain and verified reads
//!   with fail-over; `Client` ties both together.
//!
//! The `dfs` shell and the FUSE mount (later issues) are built on this crate.

pub mod data;
pub mod error;
pub mod master;

pub use data::{Client, DataConfig};
pub use error::ClientError;
