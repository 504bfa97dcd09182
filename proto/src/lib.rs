//! The wire contract of dfs: what every daemon and client must agree on to
//! talk, and nothing that serves or sends (no HTTP stack, no HTML).
//!
//! - [`ids`]: typed ids (`InodeId`, `ChunkHandle`, `ChunkVersion`, `NodeId`).
//! - [`error`]: the error kinds the APIs speak (one per errno) and their JSON body.
//! - [`names`]: the rules for file names and absolute paths.
//! - [`wire`]: request, response and query types of the HTTP/JSON APIs.
//! - [`endpoint`]: every endpoint of master and chunkserver, declared once
//!   (method, route, path parameter, query, body, answer): servers route by
//!   these declarations and clients build their URLs from them.
//! - [`auth`]: the cluster key, signatures of internal requests, chunk tokens.
//! - [`local_reads`]: the Unix-socket protocol of short-circuit reads.
//! - [`tls`]: certificates, the cluster CA and their reloading; `tls::certs`
//!   makes them (`dfs admin certs`).

pub mod auth;
pub mod endpoint;
pub mod error;
pub mod ids;
pub mod local_reads;
pub mod names;
pub mod tls;
pub mod webhdfs;
pub mod wire;

pub use error::{ErrorBody, ErrorKind};
pub use ids::{ChunkHandle, ChunkVersion, InodeId, NodeId};
