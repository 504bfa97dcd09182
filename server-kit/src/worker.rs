//! The one shape of every background worker of the daemons (heartbeats,
//! the scrubber, the dashboard's sampler, the master's monitor): a loop of
//! passes on a tick, woken early when it has work, stopped by a signal,
//! and counted. A worker says what one pass does ([`Worker::pass`]) and
//! when the next is due ([`Next`]); [`run`] does the waiting, the stopping
//! and the counting, the same way for all of them.
//!
//! Stopping is cooperative and prompt: [`run`] returns at the stop signal,
//! whether it is waiting or in the middle of a pass (the pass's future is
//! dropped at its current await, as `abort` would), so the owner can await
//! the task and know the worker is gone.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::metrics::{label, Snapshot};

/// When a worker's next pass is due, as its pass answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// At the regular tick: one interval after this pass started (at once
    /// if the pass took longer than that).
    Tick,
    /// At once (the work asks for another pass straight away).
    Now,
    /// This long after this pass ended (a backoff).
    After(Duration),
    /// Never: the worker is done and [`run`] returns.
    Stop,
}

/// What [`run`] does after a pass: pure, for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// The next pass at this instant (unless woken or stopped before).
    At(Instant),
    /// No pass is due on the clock (the interval is too long to add):
    /// only a wake or the stop signal ends the wait.
    Idle,
    /// Return.
    End,
}

/// The instant of the next pass, after one that ran `started..ended` and
/// answered `next`, for a worker whose interval is `interval`.
pub fn then(next: Next, started: Instant, ended: Instant, interval: Duration) -> Then {
    let at = match next {
        Next::Tick => started.checked_add(interval),
        Next::Now => Some(ended),
        Next::After(wait) => ended.checked_add(wait),
        Next::Stop => return Then::End,
    };
    at.map_or(Then::Idle, Then::At)
}

/// A background worker: one pass of its work, its tick, and what wakes it.
pub trait Worker: Send {
    /// Its name in logs and metrics (`heartbeat`, `scrubber`).
    fn name(&self) -> &'static str;

    /// The regular interval between the starts of passes ([`Next::Tick`]).
    fn interval(&self) -> Duration;

    /// The wait before the first pass (none by default).
    fn first_pass_after(&self) -> Duration {
        Duration::ZERO
    }

    /// One pass of the work; answers when the next is due.
    fn pass(&mut self) -> impl Future<Output = Next> + Send;

    /// Resolves when the worker has work before its next tick (a request
    /// waiting on it); by default never. A pass follows at once.
    fn woken(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// The owner's end of a stop signal; dropping it stops the workers too.
#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { tx: watch::channel(false).0 }
    }
}

impl Shutdown {
    /// A signal for one worker (as many as wanted).
    pub fn signal(&self) -> Stop {
        Stop { rx: Some(self.tx.subscribe()) }
    }

    /// Tells every worker holding a signal to stop.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }
}

/// A worker's end of the stop signal.
#[derive(Clone, Debug)]
pub struct Stop {
    /// `None`: a signal that never fires.
    rx: Option<watch::Receiver<bool>>,
}

impl Stop {
    /// A signal that never fires (a worker run for a process's lifetime,
    /// or in a test that aborts it).
    pub fn never() -> Stop {
        Stop { rx: None }
    }

    /// Whether the stop was asked for (or its `Shutdown` dropped).
    pub fn is_stopped(&self) -> bool {
        self.rx.as_ref().is_some_and(|rx| *rx.borrow() || rx.has_changed().is_err())
    }

    /// Resolves once the stop is asked for, or its `Shutdown` is dropped.
    pub async fn stopped(&mut self) {
        match &mut self.rx {
            // `wait_for` fails only when the sender is gone: a stop as well.
            Some(rx) => drop(rx.wait_for(|stop| *stop).await),
            None => std::future::pending().await,
        }
    }
}

/// A worker's figures since start-up: passes, how long the last took,
/// when it ended, and whether one is running now.
#[derive(Debug, Default)]
pub struct WorkerStats {
    passes: AtomicU64,
    last_pass_micros: AtomicU64,
    last_pass_end_unix_ms: AtomicU64,
    running: AtomicBool,
}

impl WorkerStats {
    /// Passes completed.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// How long the last completed pass took (zero before the first).
    pub fn last_pass(&self) -> Duration {
        Duration::from_micros(self.last_pass_micros.load(Ordering::Relaxed))
    }

    /// When the last pass ended, in ms since the Unix epoch; 0: none yet.
    pub fn last_pass_end_unix_ms(&self) -> u64 {
        self.last_pass_end_unix_ms.load(Ordering::Relaxed)
    }

    /// Whether a pass is under way.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    fn started(&self) {
        self.running.store(true, Ordering::Relaxed);
    }

    fn ended(&self, took: Duration) {
        self.last_pass_micros.store(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.last_pass_end_unix_ms.store(now_ms, Ordering::Relaxed);
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Runs `worker` until its stop signal (or until a pass answers
/// [`Next::Stop`]), counting its passes into `stats`.
pub async fn run<W: Worker>(mut worker: W, stats: Arc<WorkerStats>, mut stop: Stop) {
    let interval = worker.interval();
    let mut next = match Instant::now().checked_add(worker.first_pass_after()) {
        Some(at) => Then::At(at),
        None => Then::Idle,
    };
    loop {
        let due_at = next;
        let due = async move {
            match due_at {
                Then::At(at) => tokio::time::sleep_until(at).await,
                Then::Idle | Then::End => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.stopped() => return,
            _ = due => {}
            _ = worker.woken() => {}
        }
        let started = Instant::now();
        stats.started();
        let name = worker.name();
        let answer = tokio::select! {
            _ = stop.stopped() => {
                stats.running.store(false, Ordering::Relaxed);
                return;
            }
            // One operation: its calls to other daemons carry one id.
            answer = crate::http::request_id::background(name, worker.pass()) => answer,
        };
        let ended = Instant::now();
        stats.ended(ended - started);
        next = then(answer, started, ended, interval);
        if next == Then::End {
            tracing::info!(worker = worker.name(), "worker done");
            return;
        }
    }
}

/// The workers of one daemon by name, for its status and `/metrics`.
#[derive(Debug, Default)]
pub struct Workers {
    list: Mutex<Vec<(&'static str, Arc<WorkerStats>)>>,
}

impl Workers {
    /// The figures of the worker called `name`, created at first ask.
    pub fn stats(&self, name: &'static str) -> Arc<WorkerStats> {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = list.iter().find(|(n, _)| *n == name) {
            return s.clone();
        }
        let stats = Arc::new(WorkerStats::default());
        list.push((name, stats.clone()));
        stats
    }

    /// Every worker's figures, in the order they were first asked for.
    pub fn all(&self) -> Vec<(&'static str, Arc<WorkerStats>)> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts `worker` on the runtime, its figures under its name.
    pub fn spawn<W: Worker + 'static>(&self, worker: W, stop: Stop) -> tokio::task::JoinHandle<()> {
        let stats = self.stats(worker.name());
        tokio::spawn(run(worker, stats, stop))
    }

    /// Adds `{prefix}_worker_passes`, `{prefix}_worker_last_pass_seconds`
    /// and `{prefix}_worker_running`, labelled by worker, to `snapshot`.
    pub fn add_to(&self, snapshot: &mut Snapshot, prefix: &str) {
        let all = self.all();
        let series = |f: &dyn Fn(&WorkerStats) -> f64| all.iter().map(|(n, s)| (label("worker", *n), f(s))).collect::<Vec<_>>();
        let passes = all.iter().map(|(n, s)| (label("worker", *n), s.passes())).collect();
        snapshot.counters(&format!("{prefix}_worker_passes"), "Passes completed by each background worker", passes);
        let last = series(&|s| s.last_pass().as_secs_f64());
        snapshot.gauges(&format!("{prefix}_worker_last_pass_seconds"), "How long each background worker's last pass took", last);
        let running = series(&|s| s.is_running() as u8 as f64);
        snapshot.gauges(&format!("{prefix}_worker_running"), "1 while a background worker is in a pass", running);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_pass_is_due_by_the_tick_at_once_after_a_backoff_or_never() {
        let t0 = Instant::now();
        let (started, ended) = (t0, t0 + Duration::from_millis(30));
        let tick = Duration::from_millis(100);
        assert_eq!(then(Next::Tick, started, ended, tick), Then::At(t0 + tick), "a tick counts from the pass's start");
        // A pass longer than the interval is followed at once.
        assert_eq!(then(Next::Tick, started, t0 + 3 * tick, tick), Then::At(t0 + tick));
        assert_eq!(then(Next::Now, started, ended, tick), Then::At(ended));
        assert_eq!(then(Next::After(Duration::from_secs(2)), started, ended, tick), Then::At(ended + Duration::from_secs(2)));
        assert_eq!(then(Next::Stop, started, ended, tick), Then::End);
        assert_eq!(then(Next::Tick, started, ended, Duration::MAX), Then::Idle, "an interval past the clock's end never comes");
    }

    /// Counts its passes; answers `next`; wakes when `wake` is notified.
    struct Counter {
        interval: Duration,
        passes: Arc<AtomicU64>,
        next: Next,
        wake: Arc<tokio::sync::Notify>,
        /// Each pass takes this long.
        busy: Duration,
    }

    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn interval(&self) -> Duration {
            self.interval
        }
        async fn pass(&mut self) -> Next {
            tokio::time::sleep(self.busy).await;
            self.passes.fetch_add(1, Ordering::Relaxed);
            self.next
        }
        async fn woken(&self) {
            self.wake.notified().await
        }
    }

    fn counter(interval: Duration, next: Next, busy: Duration) -> (Counter, Arc<AtomicU64>, Arc<tokio::sync::Notify>) {
        let (passes, wake) = (Arc::new(AtomicU64::new(0)), Arc::new(tokio::sync::Notify::new()));
        (Counter { interval, passes: passes.clone(), next, wake: wake.clone(), busy }, passes, wake)
    }

    #[tokio::test]
    async fn passes_run_on_the_tick_and_early_when_woken_and_stop_at_the_signal() {
        let (worker, passes, wake) = counter(Duration::from_secs(3600), Next::Tick, Duration::ZERO);
        let workers = Workers::default();
        let shutdown = Shutdown::default();
        let task = workers.spawn(worker, shutdown.signal());
        // The first pass at once; the next not for an hour unless woken.
        let stats = workers.stats("counter");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while stats.passes() < 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(passes.load(Ordering::Relaxed), 1);
        wake.notify_one();
        while stats.passes() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(stats.passes(), 2, "a wake runs a pass before the tick");
        assert!(stats.last_pass_end_unix_ms() > 0 && !stats.is_running());
        shutdown.stop();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stopped promptly").expect("no panic");
        let mut m = Snapshot::default();
        workers.add_to(&mut m, "t");
        let text = crate::http::metrics::render(&crate::http::metrics::HttpMetrics::new("t"), &m);
        let lines = ["t_worker_passes_total{worker=\"counter\"} 2", "t_worker_running{worker=\"counter\"} 0", "t_worker_last_pass_seconds{worker=\"counter\"}"];
        for line in lines {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }

    #[tokio::test]
    async fn a_stop_ends_a_pass_under_way_and_a_dropped_shutdown_stops_too() {
        let (worker, passes, _wake) = counter(Duration::from_millis(1), Next::Tick, Duration::from_secs(3600));
        let stats = Arc::new(WorkerStats::default());
        let shutdown = Shutdown::default();
        let task = tokio::spawn(run(worker, stats.clone(), shutdown.signal()));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !stats.is_running() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(stats.is_running(), "in its hour-long pass");
        drop(shutdown);
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stopped mid-pass").expect("no panic");
        assert_eq!((passes.load(Ordering::Relaxed), stats.passes(), stats.is_running()), (0, 0, false));
        assert!(!Stop::never().is_stopped());
    }

    #[tokio::test]
    async fn a_pass_answering_stop_ends_the_worker() {
        let (worker, passes, _wake) = counter(Duration::from_millis(1), Next::Stop, Duration::ZERO);
        tokio::time::timeout(Duration::from_secs(5), run(worker, Arc::default(), Stop::never())).await.expect("ended by its pass");
        assert_eq!(passes.load(Ordering::Relaxed), 1);
    }
}
