//! WebHDFS against the native shell, same run: a 1 GiB file uploaded and
//! downloaded with `dfs put`/`dfs get`, HdfsCLI (`upload`/`download`) and
//! fsspec (`put_file`/`get_file`, which APPENDs every 5 MiB block), each
//! client unchanged, from the venv `make deps` installs. Medians of the
//! runs and each WebHDFS client's ratio to the shell. Chunkservers serve no
//! short-circuit reads, so every client's reads cross HTTP alike; local
//! files live in /dev/shm so the local disk is not measured.
//!
//! `cargo build --workspace --bins && target/debug/dfs-webhdfs-bench [--runs 3] [--size-mib 1024]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Parser;
use dfs_tests::{drop_caches, median, Cluster};

#[derive(Parser)]
#[command(about = "WebHDFS clients (HdfsCLI, fsspec) against dfs put/get, same run")]
struct Args {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
}

/// One transfer with a WebHDFS client; prints the seconds it took (the
/// interpreter's start and imports not counted).
const PY: &str = r#"
import sys, time, urllib.parse
kind, op, local, remote, url = sys.argv[1:6]
u = urllib.parse.urlparse(url)
if kind == "hdfscli":
    from hdfs import InsecureClient
    c = InsecureClient(url, user="admin")
    t = time.perf_counter()
    c.upload(remote, local) if op == "put" else c.download(remote, local)
else:
    import fsspec
    fs = fsspec.filesystem("webhdfs", host=u.hostname, port=u.port, user="admin")
    t = time.perf_counter()
    fs.put_file(local, remote) if op == "put" else fs.get_file(remote, local)
print(time.perf_counter() - t)
"#;

const CLIENTS: [&str; 3] = ["shell", "hdfscli", "fsspec"];

fn python() -> anyhow::Result<PathBuf> {
    let dir =
        std::env::var_os("DFS_PYVENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/dfs/pyvenv"));
    let python = dir.join("bin/python");
    ensure!(python.exists(), "{} is missing: `make deps` installs the WebHDFS clients", python.display());
    Ok(python)
}

/// Seconds for one transfer by `client`.
fn transfer(c: &Cluster, client: &str, op: &str, local: &Path, remote: &str) -> anyhow::Result<f64> {
    if client == "shell" {
        let mut cmd = dfs_tests::shell::command(&c.master.url)?;
        let args = if op == "put" {
            [op, &local.display().to_string(), remote].map(str::to_string)
        } else {
            [op, remote, &local.display().to_string()].map(str::to_string)
        };
        let t = Instant::now();
        let status = cmd.args(&args).stdout(std::process::Stdio::null()).status()?;
        ensure!(status.success(), "dfs {args:?} failed");
        return Ok(t.elapsed().as_secs_f64());
    }
    let out = Command::new(python()?).args(["-c", PY, client, op]).arg(local).args([remote, &c.master.url]).output()?;
    ensure!(out.status.success(), "{client} {op}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().context("the client's time")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster =
        Cluster::start_custom(3, &["--webhdfs-simple-auth", "true"], |i, dir| (dir.join(format!("cs{i}")), vec!["--local-reads".into(), "false".into()]))?;
    dfs_tests::tools::block_on(cluster.wait_live(3, std::time::Duration::from_secs(15)))?;
    let (local, src, data) = dfs_tests::bench_source(args.size_mib)?;
    let mib = args.size_mib as f64;
    // MiB/s per client: [put, get].
    let mut figures: Vec<[Vec<f64>; 2]> = CLIENTS.iter().map(|_| Default::default()).collect();
    for run in 0..args.runs {
        // Clients in turn within a run, so drift in the machine hits all alike.
        for (i, client) in CLIENTS.iter().enumerate() {
            let remote = format!("/bench-{client}-{run}");
            let put = mib / transfer(&cluster, client, "put", &src, &remote)?;
            drop_caches();
            let out = local.path().join(format!("out-{client}-{run}"));
            let get = mib / transfer(&cluster, client, "get", &out, &remote)?;
            ensure!(std::fs::read(&out)? == data, "{client} downloaded different bytes");
            std::fs::remove_file(&out)?;
            eprintln!("run {run}: {client} put {put:.0} get {get:.0} MiB/s");
            figures[i][0].push(put);
            figures[i][1].push(get);
        }
    }
    println!(
        "| client ({} MiB, 3 replicas, median of {}) | upload MiB/s | download MiB/s | upload / `dfs put` | download / `dfs get` |",
        args.size_mib, args.runs
    );
    println!("|---|---|---|---|---|");
    let shell = [median(figures[0][0].clone()), median(figures[0][1].clone())];
    for (i, client) in CLIENTS.iter().enumerate() {
        let (put, get) = (median(figures[i][0].clone()), median(figures[i][1].clone()));
        println!("| {client} | {put:.0} | {get:.0} | {:.2} | {:.2} |", put / shell[0], get / shell[1]);
    }
    Ok(())
}
