//! Simulated time and the event queue. Time is an offset from the start of
//! the run (the engine gets `base + offset`, never the wall clock); events
//! run in (time, sequence number) order, so two events due at the same time
//! run in the order they were scheduled, on every run of a seed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

/// A moment of the run: how long after its start.
pub type Time = Duration;

/// Events waiting for their time.
pub struct Queue<E> {
    heap: BinaryHeap<Reverse<Slot<E>>>,
    seq: u64,
}

struct Slot<E> {
    at: Time,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Slot<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Slot<E> {}

impl<E> PartialOrd for Slot<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Slot<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<E> Queue<E> {
    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: Time, event: E) {
        self.seq += 1;
        self.heap.push(Reverse(Slot { at, seq: self.seq, event }));
    }

    /// The next event due, with its time.
    pub fn pop(&mut self) -> Option<(Time, E)> {
        self.heap.pop().map(|Reverse(s)| (s.at, s.event))
    }

    /// The time of the next event, if any.
    pub fn next_at(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(s)| s.at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_the_order_they_went_in() {
        let mut q = Queue::default();
        q.push(Duration::from_millis(5), "b");
        q.push(Duration::from_millis(1), "a");
        q.push(Duration::from_millis(5), "c");
        let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }
}
