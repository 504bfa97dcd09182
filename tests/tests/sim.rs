//! The deterministic cluster simulator (tests/src/sim/): many seeds, each a
//! whole run of the chunk-management engine against simulated chunkservers,
//! disks, network and writers under faults, with every invariant checked
//! after every step.
//!
//! - `DFS_SIM_SEED=N` runs that one seed (a failure prints its seed).
//! - `DFS_SIM_SEEDS=N` runs N seeds (default: the CI count below).
//! - `DFS_SIM_FIRST=N` starts the seeds at N (default 0).
//! - `DFS_SIM_TRACE=N` shows the last N events before a failure (default 400).

use std::time::{Duration, Instant};

use dfs_tests::sim::{run, Params};

/// Seeds `cargo test` runs (about 8 s on 2 cores; `make sim` runs more).
const CI_SEEDS: u64 = 400;
/// Faults are injected for this long in each run.
const FAULT_TIME: Duration = Duration::from_secs(120);

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Runs one seed; a failure replays it with a trace of the events before it.
fn one(seed: u64) -> Result<dfs_tests::sim::Summary, String> {
    let params = Params::for_seed(seed, FAULT_TIME);
    run(seed, &params).map_err(|_| {
        let traced = Params { trace_last: env("DFS_SIM_TRACE").unwrap_or(400) as usize, ..params.clone() };
        match run(seed, &traced) {
            Err(f) => f.to_string(),
            Ok(_) => format!("seed {seed} failed, but not when traced: the run is not deterministic"),
        }
    })
}

#[test]
fn seeds_hold_every_invariant() {
    let seeds: Vec<u64> = match env("DFS_SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env("DFS_SIM_FIRST").unwrap_or(0);
            (first..first + env("DFS_SIM_SEEDS").unwrap_or(CI_SEEDS)).collect()
        }
    };
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(seeds.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(u64, Result<dfs_tests::sim::Summary, String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(seed) = seeds.get(i) else { break };
                        let r = one(*seed);
                        if let Err(e) = &r {
                            eprintln!("{e}");
                        }
                        out.push((*seed, r));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    let failed: Vec<u64> = results.iter().filter(|(_, r)| r.is_err()).map(|(s, _)| *s).collect();
    let ok: Vec<&dfs_tests::sim::Summary> = results.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let steps: u64 = ok.iter().map(|s| s.steps).sum();
    let acked: u64 = ok.iter().map(|s| s.acked).sum();
    let slowest = ok.iter().map(|s| s.converged_after).max().unwrap_or_default();
    let lost: usize = ok.iter().map(|s| s.lost).sum();
    eprintln!(
        "sim: {} seeds in {:.1} s on {threads} threads ({steps} steps, {acked} writes acknowledged, slowest convergence {slowest:?}, {lost} chunks whose every current copy the faults destroyed); failed: {failed:?}",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?} (replay one with DFS_SIM_SEED=N)");
}

#[test]
fn a_seed_replays_exactly() {
    let seed = env("DFS_SIM_SEED").unwrap_or(7);
    let params = Params::for_seed(seed, Duration::from_secs(20));
    let a = run(seed, &params).map_err(|f| f.to_string());
    let b = run(seed, &params).map_err(|f| f.to_string());
    assert_eq!(a, b, "the same seed ran differently");
    let other = run(seed + 1, &Params::for_seed(seed + 1, Duration::from_secs(20))).map_err(|f| f.to_string());
    assert_ne!(a.map(|s| s.digest), other.map(|s| s.digest), "another seed ran the same way");
}

/// The engine alone at scale (tests/src/sim/scale.rs): 1,000 chunkservers
/// and 10M chunks by default (DFS_SIM_SCALE_NODES, DFS_SIM_SCALE_CHUNKS);
/// prints what a heartbeat and a tick cost it. `make sim-scale`.
#[test]
#[ignore = "minutes and several GiB: make sim-scale"]
fn scale() {
    let nodes = env("DFS_SIM_SCALE_NODES").unwrap_or(1000);
    let chunks = env("DFS_SIM_SCALE_CHUNKS").unwrap_or(10_000_000);
    let f = dfs_tests::sim::scale::run(nodes, chunks, 3, 3, |line| eprintln!("scale: {line}"));
    eprintln!(
        "scale: {} chunkservers, {} chunks: map built in {:?}; registering full report {}; tick {}; plain heartbeat {}; periodic full report {}; RSS {} MiB",
        f.nodes,
        f.chunks,
        f.load,
        f.registering_report,
        f.tick,
        f.plain_heartbeat,
        f.full_report,
        f.rss_bytes >> 20
    );
    assert_eq!(f.registering_report.count as u64, nodes);
}
