//! Lease benchmark: how many write leases a master grants per second on a
//! local cluster of 3 chunkservers, for new chunks (each allocated, placed
//! on 3 chunkservers and leased) and for chunks whose lease ran out (each
//! moved to a new version on its 3 replicas and recorded), with one client
//! and with many at once. Medians of several runs, each on a fresh cluster.
//!
//! `cargo build --workspace --bins && target/debug/dfs-lease-bench [--runs 3]`;
//! `DFS_MASTER_BIN=PATH` runs another master build with the same harness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dfs_client::Client;
use dfs_proto::wire::namespace::{CreateRequest, EntryRef};
use dfs_proto::InodeId;
use dfs_tests::{median, Cluster};

#[derive(Parser)]
#[command(about = "Lease benchmark of dfs: leases granted per second, new chunks and version bumps")]
struct Args {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Chunks leased per figure.
    #[arg(long, default_value_t = 2000)]
    chunks: u64,
    /// Concurrent clients of the "many" figures.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

/// Leases per second: new chunks and bumps, one client and many.
#[derive(Clone, Copy, Debug)]
struct Run {
    new_one: f64,
    new_many: f64,
    bump_one: f64,
    bump_many: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for i in 0..args.runs {
        let r = one_run(&args).await?;
        eprintln!("run {i}: {r:.0?}");
        runs.push(r);
    }
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    println!("leases/s, median of {} runs of {} chunks:", args.runs, args.chunks);
    println!("  new chunks, 1 client:      {:>8.0}", m(|r| r.new_one));
    println!("  new chunks, {:>2} clients:    {:>8.0}", args.clients, m(|r| r.new_many));
    println!("  version bumps, 1 client:   {:>8.0}", m(|r| r.bump_one));
    println!("  version bumps, {:>2} clients: {:>8.0}", args.clients, m(|r| r.bump_many));
    Ok(())
}

async fn one_run(args: &Args) -> anyhow::Result<Run> {
    let c = Cluster::start(3)?;
    c.wait_live(3, Duration::from_secs(20)).await?;
    let client = dfs_tests::client(&c.master.url);
    let one = file(&client, "/one").await?;
    let many = file(&client, "/many").await?;
    let new_one = leases(&client, one, args.chunks, 1).await?;
    let new_many = leases(&client, many, args.chunks, args.clients).await?;
    // The harness's leases last 2 s: past them, every lease bumps a version.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let bump_one = leases(&client, one, args.chunks, 1).await?;
    let bump_many = leases(&client, many, args.chunks, args.clients).await?;
    Ok(Run { new_one, new_many, bump_one, bump_many })
}

async fn file(client: &Client, path: &str) -> anyhow::Result<InodeId> {
    let req = CreateRequest { at: EntryRef::path(path), replication: Some(3), exclusive: true, ..Default::default() };
    Ok(client.master().create(&req).await?.attr.inode)
}

/// Leases chunks `0..count` of `inode` split over `clients` tasks; leases/s.
async fn leases(client: &Client, inode: InodeId, count: u64, clients: usize) -> anyhow::Result<f64> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if index >= count {
                        return Ok::<_, anyhow::Error>(());
                    }
                    client.master().lease(inode, index).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
