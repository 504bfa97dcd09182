//! What the dashboard shows over time, kept in memory: each chunkserver's
//! traffic (byte totals from its heartbeats, turned into rates here) and
//! scrub progress; one sample of cluster throughput and capacity every
//! [`SAMPLE_EVERY`], an hour of them. [`Sampler`] is the worker: every second
//! it turns chunkserver state changes into events, and every
//! [`SAMPLE_EVERY`] it takes a sample. (The chunk census is the monitor
//! pass's: `ChunkManager::census`.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dfs_proto::wire::chunks::{ChunkserverInfo, Heartbeat, ScrubProgress};
pub use dfs_proto::wire::dashboard::Sample;
use dfs_proto::NodeId;
use dfs_server_kit::worker::{Next, Worker};

use crate::chunks::ChunkManager;

/// Interval between samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: one hour.
pub const KEEP: usize = 720;
/// Shortest interval a rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// One chunkserver's traffic as its heartbeats tell it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub scrub: Option<ScrubProgress>,
    /// Totals at the start of the current rate window.
    mark: (u64, u64, Option<Instant>),
}

#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    samples: VecDeque<Sample>,
    traffic: HashMap<NodeId, Traffic>,
    /// Each node's state at the last look, to see changes.
    states: HashMap<NodeId, String>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl History {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a heartbeat's totals (called on heartbeat intake: a map update).
    pub fn note_heartbeat(&self, hb: &Heartbeat) {
        let now = Instant::now();
        let mut inner = self.inner();
        let t = inner.traffic.entry(hb.node_id).or_default();
        let (read0, written0, since) = t.mark;
        match since {
            Some(at) if now.duration_since(at) < RATE_WINDOW => {}
            Some(at) => {
                // A restarted chunkserver starts its totals again: no negative rates.
                let secs = now.duration_since(at).as_secs_f64();
                t.read_bytes_per_sec = hb.bytes_read.saturating_sub(read0) as f64 / secs;
                t.write_bytes_per_sec = hb.bytes_written.saturating_sub(written0) as f64 / secs;
                t.mark = (hb.bytes_read, hb.bytes_written, Some(now));
            }
            None => t.mark = (hb.bytes_read, hb.bytes_written, Some(now)),
        }
        t.bytes_read = hb.bytes_read;
        t.bytes_written = hb.bytes_written;
        t.scrub = hb.scrub;
    }

    pub fn traffic(&self) -> HashMap<NodeId, Traffic> {
        self.inner().traffic.clone()
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.inner().samples.iter().copied().collect()
    }

    /// Records a sample of the cluster now; `nodes` is the master's view.
    pub fn sample(&self, nodes: &[ChunkserverInfo]) {
        let mut inner = self.inner();
        let mut s = Sample { unix_ms: unix_ms(), ..Default::default() };
        for n in nodes.iter().filter(|n| n.state != "dead") {
            // Reported numbers: many nodes' worth must not overflow.
            s.used_bytes = s.used_bytes.saturating_add(n.used_bytes);
            s.capacity_bytes = s.capacity_bytes.saturating_add(n.capacity_bytes);
            if let Some(t) = inner.traffic.get(&n.node_id) {
                s.read_bytes_per_sec += t.read_bytes_per_sec;
                s.write_bytes_per_sec += t.write_bytes_per_sec;
            }
        }
        if inner.samples.len() == KEEP {
            inner.samples.pop_front();
        }
        inner.samples.push_back(s);
    }

    /// Each node whose state changed since the last call, with its old
    /// state (None: first seen).
    pub fn state_changes(&self, nodes: &[ChunkserverInfo]) -> Vec<(ChunkserverInfo, Option<String>)> {
        let mut inner = self.inner();
        let mut changed = Vec::new();
        for n in nodes {
            let old = inner.states.insert(n.node_id, n.state.clone());
            if old.as_deref() != Some(n.state.as_str()) {
                changed.push((n.clone(), old));
            }
        }
        changed
    }
}

/// The event for a node's change of state, if it is one worth telling.
pub fn state_event(node: &ChunkserverInfo, old: Option<&str>) -> Option<(&'static str, String)> {
    let addr = &node.address;
    Some(match (old, node.state.as_str()) {
        (None, "dead") => return None,
        (None, state) => ("node_joined", format!("chunkserver {addr} registered ({state})")),
        (Some(_), "dead") => ("node_lost", format!("chunkserver {addr} is dead (no heartbeat for {} ms)", node.last_heartbeat_age_ms)),
        (Some("dead"), state) => ("node_back", format!("chunkserver {addr} is back ({state})")),
        (Some(_), "decommissioned") => ("decommissioned", format!("chunkserver {addr} is drained: safe to remove")),
        _ => return None,
    })
}

/// The dashboard's sampler, a worker: every second it turns chunkserver
/// state changes into events, every [`SAMPLE_EVERY`] it takes a sample;
/// until the manager is gone (it holds only a weak reference: the
/// manager's Writer handle must not outlive the server) or it is stopped.
pub struct Sampler {
    manager: Weak<ChunkManager>,
    history: Arc<History>,
    last_sample: Option<Instant>,
}

impl Sampler {
    pub fn new(manager: Weak<ChunkManager>, history: Arc<History>) -> Self {
        Sampler { manager, history, last_sample: None }
    }
}

impl Worker for Sampler {
    fn name(&self) -> &'static str {
        "dashboard_sampler"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn pass(&mut self) -> Next {
        let Some(m) = self.manager.upgrade() else { return Next::Stop };
        let nodes = m.chunkservers();
        for (node, old) in self.history.state_changes(&nodes) {
            if let Some((kind, message)) = state_event(&node, old.as_deref()) {
                m.events.push(kind, message);
            }
        }
        if self.last_sample.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY) {
            self.last_sample = Some(Instant::now());
            self.history.sample(&nodes);
        }
        Next::Tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(state: &str) -> ChunkserverInfo {
        ChunkserverInfo {
            node_id: NodeId(uuid::Uuid::from_u128(1)),
            address: "http://127.0.0.1:1".into(),
            state: state.into(),
            capacity_bytes: 100,
            used_bytes: 10,
            chunk_count: 1,
            load: 0,
            last_heartbeat_age_ms: 0,
        }
    }

    #[test]
    fn state_changes_become_events_once() {
        let h = History::default();
        let first = h.state_changes(&[info("live")]);
        assert_eq!(state_event(&first[0].0, first[0].1.as_deref()).unwrap().0, "node_joined");
        assert!(h.state_changes(&[info("live")]).is_empty());
        let lost = h.state_changes(&[info("dead")]);
        assert_eq!(state_event(&lost[0].0, lost[0].1.as_deref()).unwrap().0, "node_lost");
        let back = h.state_changes(&[info("live")]);
        assert_eq!(state_event(&back[0].0, back[0].1.as_deref()).unwrap().0, "node_back");
    }

    #[tokio::test]
    async fn the_sampler_ends_when_the_manager_is_gone() {
        let mut sampler = Sampler::new(Weak::new(), Arc::default());
        assert_eq!(sampler.pass().await, Next::Stop);
    }

    #[test]
    fn samples_sum_live_nodes_and_keep_an_hour() {
        let h = History::default();
        for _ in 0..KEEP + 5 {
            h.sample(&[info("live"), ChunkserverInfo { node_id: NodeId(uuid::Uuid::from_u128(2)), ..info("dead") }]);
        }
        let s = h.samples();
        assert_eq!(s.len(), KEEP);
        assert_eq!((s[0].used_bytes, s[0].capacity_bytes), (10, 100));
    }
}
