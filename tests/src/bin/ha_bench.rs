//! Master HA benchmark (#23): creates/s and stats/s of three masters in a
//! Raft group against one master, alternated in the same run, and the
//! failover time: from a SIGKILL of the leader to the first acknowledged
//! file write (create, 4 KiB, close) of a client that writes all along.
//!
//! `cargo build --workspace --bins && target/debug/dfs-ha-bench [--runs 3] [--failovers 10]`

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use dfs_client::Client;
use dfs_proto::wire::namespace::{CreateRequest, EntryRef, MkdirRequest};
use dfs_tests::ha::Group;
use dfs_tests::{median, MasterProcess};

#[derive(Parser)]
#[command(about = "Three masters against one: throughput, and the failover time")]
struct Args {
    /// Runs per throughput figure (alternating one master and three); the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Files created (then stat'ed) per run.
    #[arg(long, default_value_t = 5_000)]
    files: usize,
    /// Concurrent clients of the throughput runs.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Leaders killed, one after the other.
    #[arg(long, default_value_t = 10)]
    failovers: usize,
}

/// `count` creates then `count` stats split over `clients` tasks of
/// `client` under `dir`: (creates/s, stats/s).
async fn throughput(client: &Client, dir: &str, clients: usize, count: usize) -> anyhow::Result<(f64, f64)> {
    client.master().mkdir(&MkdirRequest { at: EntryRef::path(dir), ..Default::default() }).await?;
    let mut figures = Vec::new();
    for stat in [false, true] {
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (client, dir) = (client.clone(), dir.to_string());
                tokio::spawn(async move {
                    for i in (c..count).step_by(clients) {
                        let path = format!("{dir}/f{i}");
                        if stat {
                            client.master().stat(&path).await?;
                        } else {
                            client.master().create(&CreateRequest { at: EntryRef::path(&path), ..Default::default() }).await?;
                        }
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        figures.push(count as f64 / start.elapsed().as_secs_f64());
    }
    Ok((figures[0], figures[1]))
}

async fn write_file(client: &Client, path: &str) -> Result<(), dfs_client::ClientError> {
    let mut w = client.create(path, &Default::default()).await?;
    w.write(&[7u8; 4096]).await?;
    w.close().await.map(drop)
}

/// Kills the leader while a client writes small files; returns the time
/// from the kill to the first write acknowledged after it.
async fn one_failover(group: &mut Group, n: usize) -> anyhow::Result<Duration> {
    let client = dfs_tests::faults::client(&group.urls());
    let dir = format!("/failover{n}");
    client.mkdir(&dir, false, None).await?;
    let (acks, stop) = (Arc::new(Mutex::new(Vec::<Instant>::new())), Arc::new(AtomicBool::new(false)));
    let writer = {
        let (acks, stop) = (acks.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                write_file(&client, &format!("{dir}/f{i}")).await?;
                acks.lock().unwrap().push(Instant::now());
            }
            anyhow::Ok(())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = group.leader(Duration::from_secs(10)).await?;
    let killed = Instant::now();
    group.kill(leader);
    let deadline = killed + Duration::from_secs(60);
    let first = loop {
        if let Some(a) = acks.lock().unwrap().iter().find(|a| **a > killed) {
            break *a - killed;
        }
        anyhow::ensure!(Instant::now() < deadline && !writer.is_finished(), "no write acknowledged within 60 s of the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    stop.store(true, Ordering::Relaxed);
    writer.await??;
    group.restart(leader)?;
    group.converged(Duration::from_secs(60)).await?;
    Ok(first)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let single_dir = tempfile::tempdir()?;
    let single = MasterProcess::start(&single_dir.path().join("master"), &[])?;
    let one = dfs_tests::client(&single.url);
    let mut group = Group::start(3, 3, u64::from(std::process::id())).await?;
    let three = dfs_tests::client(&group.urls());
    let (mut rows, mut both) = (Vec::new(), [Vec::new(), Vec::new(), Vec::new(), Vec::new()]);
    for clients in [1, args.clients] {
        let count = if clients == 1 { args.files / 5 } else { args.files };
        for run in 0..args.runs {
            let (c1, s1) = throughput(&one, &format!("/c{clients}r{run}"), clients, count).await?;
            let (c3, s3) = throughput(&three, &format!("/c{clients}r{run}"), clients, count).await?;
            eprintln!("clients {clients:>2} run {run}: one master {c1:>7.0} creates/s {s1:>7.0} stats/s; three {c3:>7.0} creates/s {s3:>7.0} stats/s");
            for (v, x) in both.iter_mut().zip([c1, s1, c3, s3]) {
                v.push(x);
            }
        }
        let [c1, s1, c3, s3] = std::mem::take(&mut both).map(median);
        rows.push((clients, count, c1, c3, s1, s3));
    }
    drop(single);
    let mut times = Vec::new();
    for n in 0..args.failovers {
        let t = one_failover(&mut group, n).await?;
        eprintln!("failover {n}: first write acknowledged {:.2} s after the kill", t.as_secs_f64());
        times.push(t.as_secs_f64());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "| clients | files per run | creates/s, 1 master | creates/s, 3 masters (ratio) | stats/s, 1 master | stats/s, 3 masters (ratio) |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for (clients, count, c1, c3, s1, s3) in rows {
        writeln!(out, "| {clients} | {count} | {c1:.0} | {c3:.0} ({:.2}) | {s1:.0} | {s3:.0} ({:.2}) |", c3 / c1, s3 / s1)?;
    }
    times.sort_by(f64::total_cmp);
    let listed: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
    writeln!(
        out,
        "failover, SIGKILL of the leader to the first acknowledged write: median {:.2} s of {} ({} s)",
        median(times.clone()),
        times.len(),
        listed.join(", ")
    )?;
    Ok(())
}
