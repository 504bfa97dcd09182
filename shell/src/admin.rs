//! Verbs about the cluster: df, fsck, admin report.

use clap::Subcommand;
use dfs_proto::wire::chunks::ChunkserverInfo;
use dfs_proto::wire::namespace::{FileHealth, FsckQuery};
use serde_json::json;

use crate::fmt::size;
use crate::{absolute, Ctx, Failure, Show};

#[derive(Subcommand)]
pub enum Verb {
    /// Capacity and use of the cluster's live chunkservers.
    #[command(disable_help_flag = true)]
    Df {
        #[command(flatten)]
        show: Show,
    },
    /// Check the chunks of every file under a path: exit 0 only when all are
    /// readable, fully replicated, and none is stale or corrupt.
    Fsck {
        #[arg(default_value = "/")]
        path: String,
        /// List every file checked, not only those with problems.
        #[arg(long)]
        files: bool,
        #[arg(long)]
        json: bool,
    },
    /// Whom the master takes you for: user, uid, groups, roles.
    Whoami,
    /// A WebHDFS delegation token for you (as `hdfs fetchdt`): written to
    /// FILE (mode 0600, never over an existing file) or printed; with
    /// --renew or --cancel, the token in FILE is renewed or ended.
    Fetchdt {
        /// Who may renew it (you when not given).
        #[arg(long)]
        renewer: Option<String>,
        /// Renew the token in FILE for a day more (up to a week from its issue).
        #[arg(long, conflicts_with_all = ["cancel", "renewer"])]
        renew: bool,
        /// End the token in FILE.
        #[arg(long, conflicts_with = "renewer")]
        cancel: bool,
        /// Where the token goes (stdout without it), or is read from.
        file: Option<std::path::PathBuf>,
    },
    /// Cluster administration.
    Admin {
        #[command(subcommand)]
        cmd: AdminCmd,
    },
}

#[derive(Subcommand)]
pub enum AdminCmd {
    /// The cluster and each chunkserver: state, capacity, use, chunks;
    /// safe mode and background replication.
    Report {
        #[arg(long)]
        json: bool,
    },
    /// Drain a chunkserver (by node id or address): its chunks are copied
    /// elsewhere, then `admin report` shows it as decommissioned (safe to remove).
    Decommission { node: String },
    /// Users and their credentials.
    User {
        #[command(subcommand)]
        cmd: crate::users::UserCmd,
    },
    /// TLS certificates: a cluster CA and per-node certificates (made
    /// here, no master called).
    Certs {
        #[command(subcommand)]
        cmd: crate::certs::CertsCmd,
    },
    /// A consistent metadata backup from the running master into DIR (a
    /// new directory), for `dfs-master restore`.
    Backup { dir: std::path::PathBuf },
    /// Undo a decommission: the chunkserver takes new chunks again.
    Recommission { node: String },
    /// The masters named by --master and their Raft state.
    Masters {
        #[command(subcommand)]
        cmd: MastersCmd,
    },
    /// Show safe mode, or end it now with `leave`.
    Safemode {
        #[arg(value_parser = ["get", "leave"], default_value = "get")]
        action: String,
    },
}

/// `dfs admin masters ...`.
#[derive(Subcommand)]
pub enum MastersCmd {
    /// Each master: leader, follower, single or unreachable; term, last
    /// log and applied index.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(ctx: &mut Ctx, verb: Verb) -> u8 {
    let r = match verb {
        Verb::Df { show } => {
            ctx.verb = "df";
            df(ctx, show.human, show.json).await
        }
        Verb::Fsck { path, files, json } => {
            ctx.verb = "fsck";
            fsck(ctx, &absolute(&path), files, json).await
        }
        Verb::Whoami => crate::users::whoami(ctx).await,
        Verb::Fetchdt { renewer, renew, cancel, file } => crate::users::fetchdt(ctx, renewer, renew, cancel, file.as_deref()).await,
        Verb::Admin { cmd: AdminCmd::User { cmd } } => crate::users::run(ctx, cmd).await,
        Verb::Admin { cmd: AdminCmd::Certs { cmd } } => crate::certs::run(ctx, cmd),
        Verb::Admin { cmd: AdminCmd::Report { json } } => {
            ctx.verb = "admin report";
            report(ctx, json).await
        }
        Verb::Admin { cmd: AdminCmd::Decommission { node } } => {
            ctx.verb = "admin decommission";
            decommission(ctx, &node, true).await
        }
        Verb::Admin { cmd: AdminCmd::Recommission { node } } => {
            ctx.verb = "admin recommission";
            decommission(ctx, &node, false).await
        }
        Verb::Admin { cmd: AdminCmd::Backup { dir } } => {
            ctx.verb = "admin backup";
            crate::backup::backup(ctx, &dir).await
        }
        Verb::Admin { cmd: AdminCmd::Masters { cmd: MastersCmd::List { json } } } => {
            ctx.verb = "admin masters list";
            crate::masters::list(ctx, json).await
        }
        Verb::Admin { cmd: AdminCmd::Safemode { action } } => {
            ctx.verb = "admin safemode";
            safe_mode(ctx, action == "leave").await
        }
    };
    ctx.check(r).unwrap_or(1)
}

fn master_failure(ctx: &Ctx) -> impl FnOnce(dfs_client::ClientError) -> Failure + '_ {
    move |e| Failure::dfs(&ctx.client.master().url(), e)
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

async fn df(ctx: &Ctx, human: bool, json: bool) -> Result<u8, Failure> {
    let nodes = ctx.client.master().chunkservers().await.map_err(master_failure(ctx))?;
    let live: Vec<&ChunkserverInfo> = nodes.iter().filter(|n| n.state == "live").collect();
    let capacity: u64 = live.iter().map(|n| n.capacity_bytes).sum();
    let used: u64 = live.iter().map(|n| n.used_bytes).sum();
    let free = capacity.saturating_sub(used);
    let url = ctx.client.master().url();
    if json {
        let v = json!({"filesystem": url, "capacity_bytes": capacity, "used_bytes": used, "free_bytes": free, "live_chunkservers": live.len()});
        println!("{v}");
    } else {
        println!("{:<28} {:>12} {:>12} {:>12} {:>5}", "Filesystem", "Size", "Used", "Available", "Use%");
        println!("{:<28} {:>12} {:>12} {:>12} {:>4.0}%", url, size(capacity, human), size(used, human), size(free, human), percent(used, capacity));
    }
    Ok(0)
}

/// What fsck adds up over all files.
#[derive(Default, serde::Serialize)]
struct FsckTotals {
    files: u64,
    bytes: u64,
    chunks: u64,
    missing: u64,
    under_replicated: u64,
    over_replicated: u64,
    stale: u64,
    corrupt: u64,
    unhealthy_files: u64,
}

impl FsckTotals {
    fn add(&mut self, h: &FileHealth) {
        self.files += 1;
        self.bytes += h.size;
        self.chunks += h.chunks;
        self.missing += h.missing;
        self.under_replicated += h.under_replicated;
        self.over_replicated += h.over_replicated;
        self.stale += h.stale;
        self.corrupt += h.corrupt;
        self.unhealthy_files += !h.healthy() as u64;
    }
}

fn health_line(h: &FileHealth) -> String {
    if h.healthy() {
        return format!("{}: {} bytes, {} chunks: OK", h.path, h.size, h.chunks);
    }
    let mut parts = Vec::new();
    let counts = [(h.missing, "missing"), (h.under_replicated, "under-replicated"), (h.stale, "stale"), (h.corrupt, "corrupt")];
    for (n, what) in counts {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let detail: Vec<String> = h
        .problems
        .iter()
        .take(8)
        .map(|c| format!("chunk {} (#{}, v{}): {}/{} live, {} stale, {} corrupt", c.index, c.handle, c.version, c.live, h.replication, c.stale, c.corrupt))
        .collect();
    format!("{}: {} chunks: {}\n  {}", h.path, h.chunks, parts.join(", "), detail.join("\n  "))
}

async fn fsck(ctx: &Ctx, root: &str, list_all: bool, json: bool) -> Result<u8, Failure> {
    let mut totals = FsckTotals::default();
    let mut reported = Vec::new();
    let mut dirs = vec![root.to_string()];
    while let Some(dir) = dirs.pop() {
        let mut query = FsckQuery { path: dir.clone(), ..Default::default() };
        loop {
            let page = ctx.client.master().fsck(&query).await.map_err(|e| Failure::dfs(&dir, e))?;
            for h in page.files {
                totals.add(&h);
                if !json && (list_all || !h.healthy()) {
                    println!("{}", health_line(&h));
                }
                if json && (list_all || !h.healthy()) {
                    reported.push(h);
                }
            }
            dirs.extend(page.dirs.into_iter().rev());
            match page.next_start_after {
                Some(after) => query.start_after = Some(after),
                None => break,
            }
        }
    }
    let nodes = ctx.client.master().chunkservers().await.map_err(master_failure(ctx))?;
    // Decommissioning nodes are up and serve reads.
    let live = nodes.iter().filter(|n| n.state != "dead").count();
    let healthy = totals.unhealthy_files == 0;
    let status = if healthy { "HEALTHY" } else { "CORRUPT" };
    if json {
        let v = json!({"path": root, "status": status, "healthy": healthy, "totals": totals, "files": reported,
                       "live_chunkservers": live, "dead_chunkservers": nodes.len() - live});
        println!("{v}");
    } else {
        println!("Status: {status}");
        println!(" Total files:\t\t{}", totals.files);
        println!(" Total size:\t\t{} B", totals.bytes);
        println!(" Total chunks:\t\t{}", totals.chunks);
        println!(" Missing chunks:\t{}", totals.missing);
        println!(" Under-replicated:\t{}", totals.under_replicated);
        println!(" Over-replicated:\t{}", totals.over_replicated);
        println!(" Stale chunks:\t\t{}", totals.stale);
        println!(" Corrupt chunks:\t{}", totals.corrupt);
        println!(" Chunkservers:\t\t{live} live, {} dead", nodes.len() - live);
        println!("The filesystem under path '{root}' is {status}");
    }
    Ok(if healthy { 0 } else { 1 })
}

async fn decommission(ctx: &Ctx, node: &str, on: bool) -> Result<u8, Failure> {
    ctx.client.master().decommission(node, on).await.map_err(|e| Failure::dfs(node, e))?;
    match on {
        true => println!("decommissioning {node}: see `dfs admin report` for when it is safe to remove"),
        false => println!("recommissioned {node}"),
    }
    Ok(0)
}

async fn safe_mode(ctx: &Ctx, leave: bool) -> Result<u8, Failure> {
    let m = ctx.client.master();
    let status = match leave {
        true => m.leave_safe_mode().await,
        false => m.replication().await,
    };
    let s = status.map_err(master_failure(ctx))?.safe_mode;
    let state = if s.on { "ON" } else { "OFF" };
    println!("Safe mode is {state} ({} of {} chunks reported, threshold {:.1}%)", s.reported_chunks, s.total_chunks, s.threshold * 100.0);
    Ok(0)
}

async fn report(ctx: &Ctx, json: bool) -> Result<u8, Failure> {
    let m = ctx.client.master();
    let (cluster, fs, nodes, repl) = (
        m.cluster().await.map_err(master_failure(ctx))?,
        m.fs_stats().await.map_err(master_failure(ctx))?,
        m.chunkservers().await.map_err(master_failure(ctx))?,
        m.replication().await.map_err(master_failure(ctx))?,
    );
    if json {
        println!("{}", json!({"cluster": cluster, "namespace": fs, "chunkservers": nodes, "replication": repl}));
        return Ok(0);
    }
    let live: Vec<&ChunkserverInfo> = nodes.iter().filter(|n| n.state == "live").collect();
    let capacity: u64 = live.iter().map(|n| n.capacity_bytes).sum();
    let used: u64 = live.iter().map(|n| n.used_bytes).sum();
    println!("Cluster {} (dfs {}, format {})", cluster.cluster_id, cluster.version, cluster.format_version);
    println!(
        "Capacity: {}  Used: {} ({:.1}%)  Free: {}",
        size(capacity, true),
        size(used, true),
        percent(used, capacity),
        size(capacity.saturating_sub(used), true)
    );
    println!("Namespace: {} files, {} directories, {} symlinks, {} bytes", fs.files, fs.directories, fs.symlinks, fs.bytes);
    let count = |state: &str| nodes.iter().filter(|n| n.state == state).count();
    println!(
        "Chunkservers: {} live, {} dead, {} decommissioning, {} decommissioned",
        live.len(),
        count("dead"),
        count("decommissioning"),
        count("decommissioned")
    );
    let safe = if repl.safe_mode.on { "ON" } else { "OFF" };
    println!("Safe mode: {safe} ({} of {} chunks reported)", repl.safe_mode.reported_chunks, repl.safe_mode.total_chunks);
    println!(
        "Replication: {} under-replicated, {} missing, {} over-replicated, {} copies running, {} deletions waiting, {} chunks of removed data waiting",
        repl.under_replicated, repl.missing, repl.over_replicated, repl.copies_running, repl.deletes_waiting, repl.garbage_chunks
    );
    println!();
    println!("{:<36} {:<26} {:<15} {:>10} {:>10} {:>6} {:>8} {:>9}", "NODE", "ADDRESS", "STATE", "CAPACITY", "USED", "USE%", "CHUNKS", "HEARTBEAT");
    for n in &nodes {
        println!(
            "{:<36} {:<26} {:<15} {:>10} {:>10} {:>5.1}% {:>8} {:>7}ms",
            n.node_id.to_string(),
            n.address,
            n.state,
            size(n.capacity_bytes, true),
            size(n.used_bytes, true),
            percent(n.used_bytes, n.capacity_bytes),
            n.chunk_count,
            n.last_heartbeat_age_ms
        );
    }
    Ok(0)
}
