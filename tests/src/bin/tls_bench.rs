//! What TLS costs on the data path: a plaintext cluster and a TLS cluster
//! (master and three chunkservers each, certificates from
//! `dfs_tests::tls`) in the same run, `dfs put`/`dfs get` of one file and
//! a FUSE mount's sequential write (1 MiB writes, then close, which syncs
//! every replica) and sequential read, alternating between the two
//! clusters run by run; medians and the TLS/plaintext ratio, and the CPU
//! time every process of a side used per GiB (what TLS adds, whatever the
//! number of cores). Chunkservers
//! serve no short-circuit reads, so reads cross the network (TLS) too.
//! Local files live in /dev/shm so the local disk is not measured.
//!
//! `cargo build --workspace --bins && target/debug/dfs-tls-bench [--runs 3] [--size-mib 1024]`

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::ensure;
use clap::Parser;
use dfs_tests::mount::Mount;
use dfs_tests::{drop_caches, median, Cluster};

#[derive(Parser)]
#[command(about = "dfs put/get and mount sequential I/O over TLS against plaintext, same run")]
struct Args {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
}

/// One cluster under test, with its mount.
struct Side {
    name: &'static str,
    cluster: Cluster,
    mount: Mount,
    ca: Option<PathBuf>,
    /// MiB/s per run: put, get, mount write, mount read.
    figures: [Vec<f64>; 4],
    /// CPU seconds per GiB of the same, all processes together.
    cpu: [Vec<f64>; 4],
}

impl Side {
    /// CPU time used so far by this side's daemons and mount, this process
    /// and the shells it ran.
    fn cpu_seconds(&self) -> f64 {
        let c = &self.cluster;
        let pids = std::iter::once(c.master.pid()).chain(c.chunkservers.iter().map(|cs| cs.pid())).chain([self.mount.pid()]);
        pids.map(dfs_tests::sys::cpu_seconds).sum::<f64>() + dfs_tests::sys::own_and_children_cpu_seconds()
    }

    fn dfs(&self, args: &[&str]) -> anyhow::Result<f64> {
        let mut cmd = dfs_tests::shell::command(&self.cluster.master.url)?;
        if let Some(ca) = &self.ca {
            cmd.arg("--tls-ca").arg(ca);
        }
        let t = Instant::now();
        let status = cmd.args(args).stdout(std::process::Stdio::null()).status()?;
        ensure!(status.success(), "dfs {args:?} failed on the {} cluster", self.name);
        Ok(t.elapsed().as_secs_f64())
    }

    fn run(&mut self, run: usize, src: &Path, data: &[u8], local: &Path) -> anyhow::Result<()> {
        let mib = data.len() as f64 / (1 << 20) as f64;
        let gib = mib / 1024.0;
        let mut cpu = Vec::new();
        let dst = format!("/put-{run}");
        let c0 = self.cpu_seconds();
        let put = mib / self.dfs(&["put", &src.display().to_string(), &dst])?;
        cpu.push((self.cpu_seconds() - c0) / gib);
        drop_caches();
        let out = local.join(format!("out-{}-{run}", self.name));
        let c0 = self.cpu_seconds();
        let get = mib / self.dfs(&["get", &dst, &out.display().to_string()])?;
        cpu.push((self.cpu_seconds() - c0) / gib);
        ensure!(std::fs::read(&out)? == data, "get returned different bytes");
        std::fs::remove_file(&out)?;

        let path = self.mount.path().join(format!("mount-{run}"));
        let c0 = self.cpu_seconds();
        let t = Instant::now();
        let mut f = std::fs::File::create(&path)?;
        for piece in data.chunks(1 << 20) {
            f.write_all(piece)?;
        }
        drop(f);
        let write = mib / t.elapsed().as_secs_f64();
        cpu.push((self.cpu_seconds() - c0) / gib);
        drop_caches();
        let c0 = self.cpu_seconds();
        let t = Instant::now();
        let (mut f, mut buf, mut n) = (std::fs::File::open(&path)?, vec![0u8; 1 << 20], 0usize);
        loop {
            let got = f.read(&mut buf)?;
            if got == 0 {
                break;
            }
            ensure!(buf[..got] == data[n..n + got], "the mount read different bytes at {n}");
            n += got;
        }
        ensure!(n == data.len(), "the mount read {n} bytes");
        let read = mib / t.elapsed().as_secs_f64();
        cpu.push((self.cpu_seconds() - c0) / gib);
        eprintln!("{} run {run}: put {put:.0} get {get:.0} mount write {write:.0} read {read:.0} MiB/s", self.name);
        for (v, x) in self.figures.iter_mut().zip([put, get, write, read]) {
            v.push(x);
        }
        for (v, x) in self.cpu.iter_mut().zip(cpu) {
            v.push(x);
        }
        Ok(())
    }
}

async fn side(name: &'static str, tls: bool) -> anyhow::Result<Side> {
    let tls_args = |name: &str| if tls { dfs_tests::tls::node_args(name) } else { Vec::new() };
    let master = tls_args("master");
    let master: Vec<&str> = master.iter().map(String::as_str).collect();
    // Reads over the network: a client on the chunkservers' host would
    // otherwise read their files directly (short-circuit), without TLS.
    let cluster = Cluster::start_custom(3, &master, |i, dir| {
        let mut args = tls_args(&format!("cs{i}"));
        args.extend(["--local-reads".to_string(), "false".to_string()]);
        (dir.join(format!("cs{i}")), args)
    })?;
    let ca = tls.then(dfs_tests::tls::ca_file);
    cluster.wait_live(3, std::time::Duration::from_secs(15)).await?;
    let ca_arg = ca.as_ref().map(|ca| format!("--tls-ca={}", ca.display()));
    let mount = Mount::start(&cluster.master.url, &ca_arg.iter().map(String::as_str).collect::<Vec<_>>())?;
    Ok(Side { name, cluster, mount, ca, figures: Default::default(), cpu: Default::default() })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Before any client is made: a process trusts the CA it has at its
    // first client (dfs_client::tls).
    dfs_tests::tls::ca_dir();
    let mut sides = [side("plaintext", false).await?, side("tls", true).await?];
    let (local, src, data) = dfs_tests::bench_source(args.size_mib)?;
    for run in 0..args.runs {
        // Alternating, so drift in the machine's speed hits both alike.
        for side in &mut sides {
            tokio::task::block_in_place(|| side.run(run, &src, &data, local.path()))?;
        }
    }
    println!("| figure ({} MiB, 3 replicas, median of {}) | plaintext MiB/s | TLS MiB/s | TLS / plaintext |", args.size_mib, args.runs);
    println!("|---|---|---|---|");
    let names = ["`dfs put` from /dev/shm", "`dfs get` to /dev/shm", "mount: sequential write + close", "mount: sequential read"];
    for (i, name) in names.iter().enumerate() {
        let (p, t) = (median(sides[0].figures[i].clone()), median(sides[1].figures[i].clone()));
        println!("| {name} | {p:.0} | {t:.0} | {:.2} |", t / p);
    }
    println!();
    println!("| CPU seconds per GiB, all processes (median of {}) | plaintext | TLS | TLS − plaintext |", args.runs);
    println!("|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        let (p, t) = (median(sides[0].cpu[i].clone()), median(sides[1].cpu[i].clone()));
        println!("| {name} | {p:.2} | {t:.2} | {:+.2} |", t - p);
    }
    Ok(())
}
