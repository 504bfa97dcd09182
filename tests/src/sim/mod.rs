//! A deterministic cluster simulator (in the style of FoundationDB's and
//! TigerBeetle's): the master's chunk-management engine, unchanged, driven
//! as `ChunkManager` drives it, against simulated chunkservers, disks, a
//! network and writers, all drawn from one seed. Time is simulated (no
//! clock, no threads, no I/O), so a seed replays exactly: a failing run
//! prints its seed, and `DFS_SIM_SEED=N cargo test -p dfs-tests --test sim`
//! runs it again, event for event.
//!
//! - [`world`]: simulated time and the event queue.
//! - [`disk`], [`chunkserver`]: replicas, crashes, the chunkserver's rules.
//! - [`network`]: delays, reordering, drops, partitions.
//! - [`namespace`]: the master's store as the engine's writes change it.
//! - [`client`]: the writers' workload.
//! - [`invariants`]: what must hold after every step, and the truth
//!   (acknowledged writes, granted leases) it is checked against.
//! - [`driver`]: the run itself, and the faults.
//! - [`scale`]: the engine alone at 1,000 chunkservers and 10M chunks.

pub mod chunkserver;
pub mod client;
pub mod disk;
pub mod driver;
pub mod invariants;
pub mod namespace;
pub mod network;
pub mod scale;
pub mod world;

pub use driver::{run, Failure, Params, Summary};
