//! `dfs put` / `dfs get` of 1 GiB against the in-process data path on the
//! same cluster in the same run: the shell's overhead, as a ratio.
//! Local files live in /dev/shm (memory) so the local disk is not measured.
//!
//! `cargo build --workspace --bins && target/debug/dfs-shell-bench [--runs 3]`

use std::time::Instant;

use anyhow::ensure;
use bytes::Bytes;
use clap::Parser;
use dfs_client::CreateOptions;
use dfs_tests::{drop_caches, median, Cluster};
use futures::StreamExt;

#[derive(Parser)]
#[command(about = "dfs put/get against the client library's data path, same cluster, same run")]
struct Args {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
}

fn dfs(master: &str, args: &[&str]) -> anyhow::Result<f64> {
    let t = Instant::now();
    let status = dfs_tests::shell::command(master)?.args(args).stdout(std::process::Stdio::null()).status()?;
    ensure!(status.success(), "dfs {args:?} failed");
    Ok(t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = Cluster::start(3)?;
    cluster.wait_live(3, std::time::Duration::from_secs(15)).await?;
    let m = cluster.master.url.clone();
    let (local, src, data) = dfs_tests::bench_source(args.size_mib)?;
    let data = Bytes::from(data);
    let client = dfs_tests::client(&m);
    let mib = args.size_mib as f64;
    let (mut lib_w, mut lib_r, mut put, mut get, mut cat) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs {
        // The library: one write_at of the whole buffer, one streamed read.
        let w = client.create(&format!("/lib-{run}"), &CreateOptions::default()).await?;
        let attr = w.attr().clone();
        w.close().await?;
        let t = Instant::now();
        client.write_at(&attr, 0, data.clone()).await?;
        lib_w.push(mib / t.elapsed().as_secs_f64());
        let attr = client.stat(&format!("/lib-{run}")).await?;
        drop_caches();
        let t = Instant::now();
        let mut pieces = std::pin::pin!(client.read_stream(&attr, 0, attr.size).await?);
        let mut n = 0;
        while let Some(p) = pieces.next().await {
            n += p?.len();
        }
        ensure!(n == data.len(), "library read {n} bytes");
        lib_r.push(mib / t.elapsed().as_secs_f64());

        // The shell, as a user runs it: whole commands, process start included.
        let dst = format!("/shell-{run}");
        put.push(mib / dfs(&m, &["put", src.to_str().unwrap_or_default(), &dst])?);
        drop_caches();
        let out = local.path().join(format!("out-{run}"));
        get.push(mib / dfs(&m, &["get", &dst, out.to_str().unwrap_or_default()])?);
        ensure!(std::fs::read(&out)? == data[..], "get returned different bytes");
        std::fs::remove_file(&out)?;
        drop_caches();
        cat.push(mib / dfs(&m, &["cat", &dst])?);
        eprintln!("run {run}: library write {:.0} read {:.0}, dfs put {:.0} get {:.0} cat {:.0} MiB/s", lib_w[run], lib_r[run], put[run], get[run], cat[run]);
    }
    let (lw, lr, p, g, c) = (median(lib_w), median(lib_r), median(put), median(get), median(cat));
    println!("| figure ({} MiB, 3 replicas, median of {}) | MiB/s | vs library |", args.size_mib, args.runs);
    println!("|---|---|---|");
    println!("| library write_at (in-process) | {lw:.0} | 1.00 |");
    println!("| `dfs put` from /dev/shm | {p:.0} | {:.2} |", p / lw);
    println!("| library read_stream (in-process) | {lr:.0} | 1.00 |");
    println!("| `dfs get` to /dev/shm | {g:.0} | {:.2} |", g / lr);
    println!("| `dfs cat` to /dev/null | {c:.0} | {:.2} |", c / lr);
    Ok(())
}
