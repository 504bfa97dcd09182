//! Recent cluster events for the dashboard: a bounded ring buffer (the
//! oldest go first), fed by chunk management (corruption, repairs,
//! decommissioning, safe mode) and by the dashboard's sampler (nodes that
//! join, are lost, come back or finish draining). Nothing is persisted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use dfs_proto::wire::dashboard::Event;

/// Events kept.
pub const CAPACITY: usize = 500;

#[derive(Default)]
pub struct Events {
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    last_id: u64,
    events: VecDeque<Event>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Events {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, kind: &'static str, message: impl Into<String>) {
        let mut ring = self.ring();
        ring.last_id += 1;
        let event = Event { id: ring.last_id, unix_ms: unix_ms(), kind: kind.into(), message: message.into() };
        if ring.events.len() == CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(event);
    }

    /// Up to `limit` events with an id above `after`, newest first.
    pub fn since(&self, after: u64, limit: usize) -> Vec<Event> {
        self.ring().events.iter().rev().take_while(|e| e.id > after).take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_and_pages_by_id() {
        let events = Events::default();
        for i in 0..CAPACITY + 10 {
            events.push("corrupt", format!("e{i}"));
        }
        let all = events.since(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].id, (CAPACITY + 10) as u64);
        assert_eq!(all[0].message, format!("e{}", CAPACITY + 9));
        let newer = events.since(all[1].id, 10);
        assert_eq!(newer.iter().map(|e| e.id).collect::<Vec<_>>(), vec![all[0].id]);
        assert_eq!(events.since(0, 3).len(), 3);
    }
}
