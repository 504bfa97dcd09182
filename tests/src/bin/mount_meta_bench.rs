//! Metadata rates through the FUSE mount: creates, stats (from a second,
//! fresh mount, so each one reaches the master), hard links and unlinks
//! per second, one process making calls one after another (as `cp -r`,
//! `tar x` or `rm -r` do). With `--before DIR` the same figures are taken
//! of an older build's binaries (master, chunkserver, mount) in the same
//! run, alternating, to measure what a change costs.
//!
//! `cargo build --workspace --bins && target/debug/dfs-mount-meta-bench [--runs 3] [--before DIR]`

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use dfs_tests::{median, Cluster, Mount};

#[derive(Parser)]
#[command(about = "Metadata rates through the dfs FUSE mount")]
struct Args {
    /// Runs per build; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Files per run.
    #[arg(long, default_value_t = 2_000)]
    files: usize,
    /// The binaries of another build to measure alongside this one.
    #[arg(long)]
    before: Option<PathBuf>,
}

/// One run's rates (operations per second); `link` is None for a build
/// without hard links.
#[derive(Clone, Copy, Debug)]
struct Rates {
    create: f64,
    stat: f64,
    link: Option<f64>,
    unlink: f64,
}

fn rate(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

/// Times each phase over `n` files in a fresh cluster of the binaries in
/// `DFS_BIN_DIR` (or this build's).
fn run_once(n: usize) -> anyhow::Result<Rates> {
    let c = Cluster::start(1)?;
    let (a, b) = (Mount::start(&c.master.url, &[])?, Mount::start(&c.master.url, &[])?);
    let (da, db) = (a.path().join("bench"), b.path().join("bench"));
    fs::create_dir(&da)?;
    let name = |d: &Path, i: usize| d.join(format!("file-{i:06}"));
    let t = Instant::now();
    for i in 0..n {
        fs::File::create(name(&da, i))?;
    }
    let create = rate(n, t);
    let t = Instant::now();
    for i in 0..n {
        fs::metadata(name(&db, i))?;
    }
    let stat = rate(n, t);
    let t = Instant::now();
    let mut linked = true;
    for i in 0..n {
        if let Err(e) = fs::hard_link(name(&da, i), da.join(format!("link-{i:06}"))) {
            anyhow::ensure!(i == 0 && e.raw_os_error() == Some(libc::EPERM), "link: {e}");
            linked = false;
            break;
        }
    }
    let link = linked.then(|| rate(n, t));
    let t = Instant::now();
    for i in 0..n {
        fs::remove_file(name(&da, i))?;
    }
    let unlink = rate(n, t);
    Ok(Rates { create, stat, link, unlink })
}

fn with_bins(dir: Option<&Path>, n: usize) -> anyhow::Result<Rates> {
    // The harness reads the variable when it starts a process; this tool
    // starts them from this one thread.
    match dir {
        Some(d) => std::env::set_var("DFS_BIN_DIR", d),
        None => std::env::remove_var("DFS_BIN_DIR"),
    }
    run_once(n)
}

fn medians(rs: &[Rates]) -> Rates {
    let m = |f: fn(&Rates) -> f64| median(rs.iter().map(f).collect());
    let links: Vec<f64> = rs.iter().filter_map(|r| r.link).collect();
    Rates { create: m(|r| r.create), stat: m(|r| r.stat), link: (!links.is_empty()).then(|| median(links)), unlink: m(|r| r.unlink) }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (mut now, mut before) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        // Alternate which build goes first, so drift hits both alike.
        let order: Vec<bool> = if run % 2 == 0 { vec![true, false] } else { vec![false, true] };
        for this_build in order {
            match (this_build, &args.before) {
                (true, _) => now.push(with_bins(None, args.files)?),
                (false, Some(dir)) => before.push(with_bins(Some(dir), args.files)?),
                (false, None) => {}
            }
        }
        eprintln!("run {run}: this build {:?}; before {:?}", now.last(), before.last());
    }
    let show = |what: &str, r: &Rates| {
        let link = r.link.map_or("n/a".to_string(), |l| format!("{l:.0}"));
        println!("{what:<12} creates/s {:>7.0}  stats/s {:>7.0}  links/s {:>7}  unlinks/s {:>7.0}", r.create, r.stat, link, r.unlink);
    };
    let n = medians(&now);
    show("this build", &n);
    if !before.is_empty() {
        let b = medians(&before);
        show("before", &b);
        println!("ratio        creates {:.3}  stats {:.3}  unlinks {:.3}", n.create / b.create, n.stat / b.stat, n.unlink / b.unlink);
    }
    Ok(())
}
