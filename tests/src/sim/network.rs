//! The network between the master, chunkservers and clients: every message
//! gets its own random delay (so messages reorder), some are dropped, and a
//! partitioned chunkserver reaches nobody and is reached by nobody, its
//! heartbeats included, until the partition heals. A dropped call fails
//! at its caller's timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

use super::world::Time;

/// The longest delay of a slow message (a stalled connection, a GC pause).
pub const SLOW_MAX: Duration = Duration::from_millis(2500);

/// One end of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Master,
    Node(usize),
    Client(usize),
}

pub struct Network {
    /// Messages dropped, per million.
    pub drop_ppm: u32,
    /// Messages delayed up to `SLOW_MAX`, per million.
    pub slow_ppm: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Partitioned chunkservers, until when.
    cut: BTreeMap<usize, Time>,
}

impl Network {
    pub fn new(min_delay: Duration, max_delay: Duration) -> Network {
        Network { drop_ppm: 0, slow_ppm: 0, min_delay, max_delay, cut: BTreeMap::new() }
    }

    /// Cuts node `n` off until `until`.
    pub fn partition(&mut self, n: usize, until: Time) {
        let end = self.cut.entry(n).or_insert(until);
        *end = (*end).max(until);
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn is_cut(&self, n: usize, now: Time) -> bool {
        self.cut.get(&n).is_some_and(|until| *until > now)
    }

    fn reachable(&self, e: End, now: Time) -> bool {
        match e {
            End::Node(n) => !self.is_cut(n, now),
            End::Master | End::Client(_) => true,
        }
    }

    /// The delay of a message sent now from `from` to `to`, or None if it is
    /// lost (dropped, or either end is cut off). A message that left is
    /// also lost if its receiver is cut off when it arrives: the driver
    /// asks `arrives` then.
    pub fn send(&self, rng: &mut StdRng, from: End, to: End, now: Time) -> Option<Duration> {
        // Draw both numbers always, so a partition does not shift the stream.
        let dropped = rng.random_range(0..1_000_000) < self.drop_ppm;
        let slow = rng.random_range(0..1_000_000) < self.slow_ppm;
        let delay = match slow {
            true => rng.random_range(self.max_delay..=SLOW_MAX),
            false => rng.random_range(self.min_delay..=self.max_delay),
        };
        (!dropped && self.reachable(from, now) && self.reachable(to, now)).then_some(delay)
    }

    /// Whether a message reaches `to` at `now` (it is not cut off).
    pub fn arrives(&self, to: End, now: Time) -> bool {
        self.reachable(to, now)
    }
}
