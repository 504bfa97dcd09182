//! The node: a chunkserver apart from its HTTP API. The handlers (`api`),
//! the background workers (`heartbeat`, `scrubber`) and the figures
//! (`metrics`) all work through it; it calls none of them.
//!
//! - `state`: [`Node`], what they share, and how it is built.
//! - `counters`: the scrubber's progress and the writers' syncs.
//! - `copies`: the chunks being copied here (one copy of a chunk at a time).
//! - `damage`: a corrupt replica moved aside and reported, a failed
//!   replica of a write reported: the node's reports to the master.
//! - `disk`: chunk-store calls on the blocking pool, free space.
//!
//! The files name each other by their own paths (`super::state::Node`),
//! never by these re-exports: the node's modules form no cycle.

mod copies;
mod counters;
mod damage;
mod disk;
mod state;

pub use copies::{copy_in_progress, CopyClaim};
pub use counters::{ScrubStats, SyncCounters};
pub use damage::{quarantine_and_report, report_bad};
pub use disk::{available_bytes, blocking};
pub use state::{new_node, InFlight, Node, NotServing, Trust};
