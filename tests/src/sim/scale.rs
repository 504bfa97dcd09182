//! The engine alone at scale: `nodes` chunkservers holding `chunks` chunks
//! three times over, to measure what one event costs it (a registering full
//! report, a plain heartbeat, a periodic full report, a tick) and how much
//! memory its map takes. The model is only a formula (chunk `h` lives on
//! nodes `h`, `h+1` and `h+2` modulo the node count): reports are built on
//! the fly, so the engine's map is what is measured. Time is simulated; the
//! wall clock only measures the engine's steps.

use std::time::{Duration, Instant};

use dfs_master::chunks::chunk_map::{ChunkMap, ChunkMeta, FileMeta};
use dfs_master::chunks::engine::{Engine, Event};
use dfs_master::chunks::{safe_mode, ChunkConfig};
use dfs_proto::wire::chunks::{Heartbeat, ReplicaReport};
use dfs_proto::{ChunkHandle, ChunkVersion, InodeId, NodeId};

/// Chunks per file of the namespace model.
const CHUNKS_PER_FILE: u64 = 1000;
const CHUNK_BYTES: u64 = 64 << 20;

/// What each kind of event cost the engine (wall time of `Engine::step`).
#[derive(Clone, Debug, Default)]
pub struct Cost {
    pub count: u32,
    pub total: Duration,
    pub max: Duration,
}

impl Cost {
    fn add(&mut self, d: Duration) {
        self.count += 1;
        self.total += d;
        self.max = self.max.max(d);
    }

    pub fn mean(&self) -> Duration {
        self.total.checked_div(self.count.max(1)).unwrap_or_default()
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mean {:?}, max {:?} ({} events)", self.mean(), self.max, self.count)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub nodes: u64,
    pub chunks: u64,
    /// Building the map from the namespace (as `ChunkManager::load`).
    pub load: Duration,
    /// A node's first full report (registering).
    pub registering_report: Cost,
    pub tick: Cost,
    pub plain_heartbeat: Cost,
    /// A periodic full report of a registered node.
    pub full_report: Cost,
    /// Resident memory after the map was built and every node reported.
    pub rss_bytes: u64,
}

fn node_id(i: u64) -> NodeId {
    NodeId(uuid::Uuid::from_u128(i as u128 + 1))
}

/// The chunks node `n` holds (chunk `h` lives on `h`, `h+1`, `h+2` mod nodes).
fn held(n: u64, nodes: u64, chunks: u64) -> impl Iterator<Item = u64> {
    (0..3u64).flat_map(move |k| {
        let first = (n + nodes - k) % nodes;
        (first..chunks).step_by(nodes as usize)
    })
}

fn heartbeat(n: u64, nodes: u64, chunks: u64, report: bool, registering: bool) -> Heartbeat {
    let replicas = held(n, nodes, chunks).count() as u64;
    let report = report.then(|| {
        held(n, nodes, chunks).map(|h| ReplicaReport { handle: ChunkHandle(h + 1), version: ChunkVersion(1), length: CHUNK_BYTES, dirty: false }).collect()
    });
    Heartbeat {
        node_id: node_id(n),
        address: format!("http://10.{}.{}.{}:7000", n >> 16, (n >> 8) & 255, n & 255),
        capacity_bytes: 1 << 50,
        used_bytes: replicas * CHUNK_BYTES,
        chunk_count: replicas,
        load: 0,
        report,
        bytes_read: 0,
        bytes_written: 0,
        scrub: None,
        registering,
        cluster_id: None,
        peers_epoch: 0,
    }
}

fn config() -> ChunkConfig {
    ChunkConfig {
        lease: Duration::from_secs(60),
        dead_after: Duration::from_secs(30),
        monitor_interval: Duration::from_secs(1),
        copies_per_node: 4,
        gc_grace: Duration::from_secs(3600),
        startup_delete_delay: Duration::from_secs(3600),
        safe_mode: safe_mode::Rule { threshold: 0.999, extension: Duration::ZERO, timeout: Duration::from_secs(600) },
    }
}

/// Resident memory of this process, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) * 1024
}

/// Runs the measurement: `ticks` passes and `rounds` of plain heartbeats.
pub fn run(nodes: u64, chunks: u64, ticks: u32, rounds: u32, say: impl Fn(&str)) -> Figures {
    let mut f = Figures { nodes, chunks, ..Figures::default() };
    let started = Instant::now();
    let mut map = ChunkMap::default();
    for h in 0..chunks {
        let inode = InodeId(100 + h / CHUNKS_PER_FILE);
        if h % CHUNKS_PER_FILE == 0 {
            map.set_file(inode, FileMeta { replication: 3, chunk_size: CHUNK_BYTES });
        }
        map.record_chunk(ChunkHandle(h + 1), ChunkMeta { inode, index: h % CHUNKS_PER_FILE, version: ChunkVersion(1), length: CHUNK_BYTES });
    }
    f.load = started.elapsed();
    say(&format!("map of {chunks} chunks built in {:?}", f.load));
    let t0 = Instant::now();
    let mut now = t0;
    let mut engine = Engine::new(map, config(), t0);
    let mut req = 0;
    let step = |engine: &mut Engine, now: Instant, event: Event, cost: &mut Cost| {
        let t = Instant::now();
        let out = engine.step(now, event);
        cost.add(t.elapsed());
        drop(out);
    };
    for n in 0..nodes {
        req += 1;
        let hb = heartbeat(n, nodes, chunks, true, true);
        now += Duration::from_micros(100);
        step(&mut engine, now, Event::Heartbeat { req, hb: Box::new(hb) }, &mut f.registering_report);
    }
    say(&format!("registering full reports: {}", f.registering_report));
    f.rss_bytes = rss_bytes();
    for _ in 0..ticks {
        now += Duration::from_secs(1);
        step(&mut engine, now, Event::Tick, &mut f.tick);
    }
    say(&format!("ticks: {} (safe mode on: {}; census {:?})", f.tick, engine.safe_mode_on(), engine.summary().census));
    for _ in 0..rounds {
        for n in 0..nodes {
            req += 1;
            now += Duration::from_micros(100);
            step(&mut engine, now, Event::Heartbeat { req, hb: Box::new(heartbeat(n, nodes, chunks, false, false)) }, &mut f.plain_heartbeat);
        }
    }
    say(&format!("plain heartbeats: {}", f.plain_heartbeat));
    for n in 0..nodes.min(100) {
        req += 1;
        now += Duration::from_micros(100);
        step(&mut engine, now, Event::Heartbeat { req, hb: Box::new(heartbeat(n, nodes, chunks, true, false)) }, &mut f.full_report);
    }
    say(&format!("periodic full reports: {}", f.full_report));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chunk_is_held_by_three_nodes() {
        let (nodes, chunks) = (7, 50);
        let mut count = vec![0; chunks as usize];
        for n in 0..nodes {
            held(n, nodes, chunks).for_each(|h| count[h as usize] += 1);
        }
        assert!(count.iter().all(|c| *c == 3), "{count:?}");
    }
}
