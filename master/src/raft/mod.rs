//! Consensus among the masters (#23), on openraft.
//!
//! - [`commit`]: the namespace writer's groups proposed as entries.
//! - [`log_store`]: the Raft log, the vote and the committed index on disk,
//!   with group commit (one WAL sync acknowledges every append queued
//!   meanwhile).
//! - [`machine`]: the namespace store as the group's state machine:
//!   an entry carries a leader's group of writes as one batch; snapshots
//!   are checkpoints.
//! - [`member`]: starting this master's node in the daemon.
//! - [`network`]: openraft's messages between masters, as signed calls.
//! - [`role`]: whether this master leads and serves, or which one does.

pub mod commit;
pub mod log_store;
pub mod machine;
pub mod member;
pub mod network;
pub mod role;

#[cfg(test)]
mod tests;
