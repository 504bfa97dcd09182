//! Metadata benchmark of the master's API: creates/s and stats/s with 1 and
//! with 32 concurrent clients against a real `dfs-master` process, next to
//! the disk's fdatasync latency measured in the same run.
//!
//! `cargo build --workspace --bins && target/debug/dfs-meta-bench [--runs 3] [--call-ids]`

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use dfs_tests::{median, Api, MasterProcess};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Metadata benchmark of the dfs master's API")]
struct Args {
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Files created (then stat'ed) per run with one client.
    #[arg(long, default_value_t = 3_000)]
    files_single: usize,
    /// Files created (then stat'ed) per run with the concurrent clients.
    #[arg(long, default_value_t = 20_000)]
    files_concurrent: usize,
    /// Number of concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Directory for the master's data (on the disk to measure); a temp dir by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A flag for the master (repeat for more), e.g. `--master-arg=--auth
    /// --master-arg=none` to measure without users.
    #[arg(long, allow_hyphen_values = true)]
    master_arg: Vec<String>,
    /// Also create with call ids (`x-dfs-call`), as the client library
    /// does (the master's retry cache keeps each answer), alternating with
    /// the plain runs against the same master: the cache's cost.
    #[arg(long)]
    call_ids: bool,
}

/// Median and 99th percentile of `iterations` 4 KiB write + fdatasync, in µs.
fn fdatasync_latency_us(dir: &Path, iterations: usize) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("fdatasync-probe");
    let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let block = [7u8; 4096];
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        file.write_at(&block, (i % 64 * 4096) as u64)?;
        let t = Instant::now();
        file.sync_data()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    std::fs::remove_file(&path)?;
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], samples[samples.len() * 99 / 100]))
}

/// Runs `count` requests split over `clients` tasks; returns requests/s.
async fn phase<F, Fut>(clients: usize, count: usize, op: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in (c..count).step_by(clients) {
                    op(i).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

async fn create_then_stat(api: &Api, dir: &str, clients: usize, count: usize, call_ids: bool) -> anyhow::Result<(f64, f64)> {
    let r = api.post("/v1/mkdir", &json!({"path": dir})).await?;
    anyhow::ensure!(r.ok(), "mkdir {dir}: {}", r.body);
    let (a, d) = (api.clone(), dir.to_string());
    let creates = phase(clients, count, move |i| {
        let (a, d) = (a.clone(), d.clone());
        async move {
            let body = json!({"path": format!("{d}/f{i}")});
            let call = format!("{d}-{i}").replace('/', "-");
            let r = match call_ids {
                true => a.post_with("/v1/create", &body, &[("x-dfs-call", &call)]).await?,
                false => a.post("/v1/create", &body).await?,
            };
            anyhow::ensure!(r.ok(), "create: {}", r.body);
            Ok(())
        }
    })
    .await?;
    let (a, d) = (api.clone(), dir.to_string());
    let stats = phase(clients, count, move |i| {
        let (a, d) = (a.clone(), d.clone());
        async move {
            let r = a.get_query("/v1/stat", &[("path", &format!("{d}/f{i}"))]).await?;
            anyhow::ensure!(r.ok(), "stat: {}", r.body);
            Ok(())
        }
    })
    .await?;
    Ok((creates, stats))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let (sync_p50, sync_p99) = fdatasync_latency_us(tmp.path(), 500)?;
    let extra: Vec<&str> = args.master_arg.iter().map(String::as_str).collect();
    let master = MasterProcess::start(&tmp.path().join("master"), &extra)?;
    // Without users (`--auth none`) nothing is signed: the figure is then
    // the cost of signing and checking, both ends.
    let api = if args.master_arg.iter().any(|a| a == "none") { Api::anonymous(&master.url) } else { Api::new(&master.url) };
    let mut rows = Vec::new();
    for (clients, count) in [(1, args.files_single), (args.clients, args.files_concurrent)] {
        let (mut creates, mut stats, mut with_calls) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..args.runs {
            // Alternating which goes first, so that neither always meets a
            // fuller store.
            let modes: &[bool] = match (args.call_ids, run % 2) {
                (false, _) => &[false],
                (true, 0) => &[false, true],
                (true, _) => &[true, false],
            };
            for &calls in modes {
                let (c, s) = create_then_stat(&api, &format!("/bench-c{clients}-r{run}-{calls}"), clients, count, calls).await?;
                eprintln!("clients {clients:>2} run {run} call ids {calls}: {c:>8.0} creates/s {s:>8.0} stats/s");
                match calls {
                    true => with_calls.push(c),
                    false => {
                        creates.push(c);
                        stats.push(s);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let with_calls = (!with_calls.is_empty()).then(|| median(with_calls));
        rows.push((clients, count, median(creates), median(stats), with_calls));
    }
    let check = api.get("/v1/admin/check").await?;
    anyhow::ensure!(check.body["ok"] == json!(true), "namespace check failed: {}", check.body);

    let mut out = std::io::stdout().lock();
    writeln!(out, "fdatasync of 4 KiB on this disk: median {sync_p50:.0} µs, p99 {sync_p99:.0} µs")?;
    writeln!(out, "(one fsync per create would cap one client at ~{:.0} creates/s)", 1e6 / sync_p50)?;
    writeln!(out, "| clients | files per run | creates/s (median of {}) | stats/s (median of {}) | creates/s with call ids (ratio) |", args.runs, args.runs)?;
    writeln!(out, "|---|---|---|---|---|")?;
    for (clients, count, c, s, calls) in rows {
        let calls = calls.map_or("-".to_string(), |k| format!("{k:.0} ({:.2})", k / c));
        writeln!(out, "| {clients} | {count} | {c:.0} | {s:.0} | {calls} |")?;
    }
    Ok(())
}
