//! The dfs chunkserver: stores chunk replicas on local disk and serves them.
//!
//! - [`chunk_store`]: one data file and one metadata file per replica, a
//!   CRC32 per 64 KiB block, O_DIRECT I/O, every read verified.
//! - [`node`]: the node apart from HTTP: the state that the API, the
//!   workers and the figures share, copies under way, damage reports.
//! - [`api`]: the HTTP API: pipelined replicated writes, verified reads,
//!   replica commands from the master, status. Handlers call the node,
//!   never the reverse.
//! - [`heartbeat`]: heartbeats and chunk reports to the master, and the
//!   deletes it answers with.
//! - [`scrubber`]: background verification of every replica.
//! - [`local_reads`]: short-circuit reads for clients on this host (a
//!   Unix socket passing replica descriptors).
//! - [`metrics`]: the figures `/metrics` shows.
//! - [`pacing`]: the bandwidth limit of copies and scrubbing.
//! - [`node_id`]: the node's lasting identity.
//! - [`cluster_id`]: the cluster it belongs to, recorded at registration.
//! - [`peers`]: the registered chunkservers, the only ones it sends data to.
//! - [`config`] and [`server`]: settings and start-up.

pub mod api;
pub mod chunk_store;
pub mod cluster_id;
pub mod config;
pub mod heartbeat;
pub mod local_reads;
pub mod metrics;
pub mod node;
pub mod node_id;
pub mod pacing;
pub mod peers;
pub mod scrubber;
pub mod server;
