//! The namespace store: inodes, directory entries and file → chunk records in
//! RocksDB, with mutations applied one at a time, sharing log syncs among
//! concurrent requests (group commit led by one of them).
//!
//! - [`keys`]: column families and the binary, ordered key layout.
//! - [`records`]: versioned value encodings (inode, entry, chunk, counters).
//! - [`db`]: opening the database and bootstrapping a new one; the log's
//!   replay, syncs and checkpoints.
//! - [`metalog`]: the metadata log, RocksDB's WAL replaced by direct
//!   synchronous writes into a preallocated file.
//! - [`reads`]: path resolution, stat, lookup, list, readlink, counters.
//! - [`txn`]: one mutation's view: reads through to RocksDB, writes to a batch.
//! - [`pending`]: a Raft leader's writes not committed yet, which its
//!   writer's reads see and RocksDB does not.
//! - [`mutations`]: the namespace rules of mkdir, create, rename, delete...
//! - [`writer`]: applying mutations with group commit, and the subtree reaper.
//! - [`retries`]: the retry cache: a call retried gets its first answer;
//!   [`expiry`]: its window, and the compaction filter that ends it.
//! - [`check`]: a full consistency scan.
//! - [`replicated`]: applying another master's batches (a Raft group).
//! - [`backup`]: checkpoints for backups, and restoring from one.
//! - [`users`]: users and groups.
//! - [`perms`]: the POSIX permission rules, as pure functions.
//! - [`xattrs`]: extended attributes.
//! - [`held`]: the files clients hold open, which outlive their last name.

pub mod backup;
pub mod check;
pub mod db;
pub mod delegation;
pub mod error;
pub mod expiry;
pub mod held;
pub mod keys;
pub mod metalog;
pub mod mutations;
pub mod pending;
pub mod perms;
pub mod reads;
pub mod records;
pub mod replicated;
pub mod retries;
pub mod txn;
pub mod users;
pub mod writer;
pub mod xattrs;

pub use db::Store;
pub use error::NsError;
pub use mutations::{Mutation, Outcome};
pub use writer::{Writer, WriterConfig};

#[cfg(test)]
pub(crate) mod tests;
