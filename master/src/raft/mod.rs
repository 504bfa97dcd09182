//! Consensus among the masters (#23), on openraft.
//!
//! - [`log_store`]: the Raft log, the vote and the committed index on disk,
//!   with group commit (one WAL sync acknowledges every append queued
//!   meanwhile).

pub mod log_store;
