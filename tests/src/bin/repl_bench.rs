//! Re-replication benchmark: 1 GiB with 3 replicas on 4 local chunkservers;
//! one chunkserver is killed; how long until every chunk has 3 current
//! replicas again (from the master declaring it dead), and what a client
//! writing at the same time gets, against the same write with nothing else
//! going on. Medians of several runs, each on a fresh cluster.
//!
//! `cargo build --workspace --bins && target/debug/dfs-repl-bench [--runs 3]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use dfs_client::Client;
use dfs_proto::wire::namespace::{Attr, CreateRequest, EntryRef};
use dfs_tests::{median, Cluster};
use rand::{RngCore, SeedableRng};

#[derive(Parser)]
#[command(about = "Re-replication benchmark of dfs: time to restore 3 replicas after a chunkserver dies")]
struct Args {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Size of the file whose replicas are restored, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Size of the foreground write, in MiB.
    #[arg(long, default_value_t = 512)]
    foreground_mib: u64,
}

/// Background passes every 200 ms; safe mode ends 1 s after the start.
const MASTER_ARGS: &[&str] = &["--replication-interval-ms", "200", "--safe-mode-extension-ms", "1000"];

struct Run {
    restore_s: f64,
    restored_mib: f64,
    alone_mib_s: f64,
    during_mib_s: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut data = vec![0u8; (args.size_mib.max(args.foreground_mib) << 20) as usize];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut data);
    let data = Bytes::from(data);
    let mut runs = Vec::new();
    for i in 0..args.runs {
        let r = one_run(&args, &data).await?;
        eprintln!(
            "run {i}: restored {:.0} MiB in {:.2} s ({:.0} MiB/s); foreground write {:.0} MiB/s alone, {:.0} MiB/s during",
            r.restored_mib,
            r.restore_s,
            r.restored_mib / r.restore_s,
            r.alone_mib_s,
            r.during_mib_s
        );
        runs.push(r);
    }
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    println!("| figure ({} MiB file, 3 replicas, 4 chunkservers, median of {}) | value |", args.size_mib, args.runs);
    println!("|---|---|");
    println!("| replicas lost with the node (MiB) | {:.0} |", m(|r| r.restored_mib));
    println!("| time to restore 3 replicas, from detection (s) | {:.2} |", m(|r| r.restore_s));
    println!("| restore rate (MiB/s copied) | {:.0} |", m(|r| r.restored_mib / r.restore_s));
    println!("| foreground write, alone (MiB/s) | {:.0} |", m(|r| r.alone_mib_s));
    println!("| foreground write, during re-replication (MiB/s) | {:.0} |", m(|r| r.during_mib_s));
    Ok(())
}

async fn create(client: &Client, path: &str) -> anyhow::Result<Attr> {
    let req = CreateRequest { at: EntryRef::path(path), replication: Some(3), exclusive: true, ..Default::default() };
    Ok(client.master().create(&req).await?.attr)
}

/// Writes `data` to a new file and returns MiB/s.
async fn timed_write(client: &Client, path: &str, data: Bytes) -> anyhow::Result<f64> {
    let attr = create(client, path).await?;
    let t = Instant::now();
    let mib = data.len() as f64 / (1 << 20) as f64;
    client.write_at(&attr, 0, data).await?;
    Ok(mib / t.elapsed().as_secs_f64())
}

async fn one_run(args: &Args, data: &Bytes) -> anyhow::Result<Run> {
    let mut cluster = Cluster::start_with(4, MASTER_ARGS)?;
    cluster.wait_live(4, Duration::from_secs(15)).await?;
    let client = dfs_tests::client(&cluster.master.url);
    let file = data.slice(..(args.size_mib << 20) as usize);
    timed_write(&client, "/big", file).await?;
    let foreground = data.slice(..(args.foreground_mib << 20) as usize);
    let alone_mib_s = timed_write(&client, "/alone", foreground.clone()).await?;
    client.delete("/alone", false).await?;
    wait_healthy(&cluster, Duration::from_secs(60)).await?;

    // The node holding the most of /big goes.
    let attr = client.master().stat("/big").await?;
    let chunks = client.master().locate(attr.inode, 0, 1024).await?;
    let victim =
        (0..4).max_by_key(|i| chunks.chunks.iter().filter(|c| c.replicas.iter().any(|r| r.address == cluster.chunkservers[*i].url)).count()).unwrap_or(0);
    let lost = chunks.chunks.iter().filter(|c| c.replicas.iter().any(|r| r.address == cluster.chunkservers[victim].url)).count();
    let restored_mib = (lost as u64 * chunks.chunk_size_bytes) as f64 / (1 << 20) as f64;
    cluster.chunkservers[victim].kill9();
    cluster.wait_live(3, Duration::from_secs(15)).await?;
    let detected = Instant::now();
    let writer = {
        let client = client.clone();
        tokio::spawn(async move { timed_write(&client, "/during", foreground).await })
    };
    // The pass summary lags by one pass: first see the loss counted.
    while cluster.api.get("/v1/admin/replication").await?.body["under_replicated"] == 0 {
        anyhow::ensure!(detected.elapsed() < Duration::from_secs(10), "the master never counted the lost replicas");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_healthy(&cluster, Duration::from_secs(600)).await?;
    let restore_s = detected.elapsed().as_secs_f64();
    let during_mib_s = writer.await??;
    Ok(Run { restore_s, restored_mib, alone_mib_s, during_mib_s })
}

/// Waits until no chunk is under-replicated and no copy runs.
async fn wait_healthy(cluster: &Cluster, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let r = cluster.api.get("/v1/admin/replication").await?.body;
        let calm = r["safe_mode"]["on"] == false && r["under_replicated"] == 0 && r["copies_running"] == 0;
        if calm {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < limit, "not fully replicated after {limit:?}: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
