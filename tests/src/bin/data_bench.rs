//! Data-path benchmark: write and read 1 GiB with 3 replicas on 3 local
//! chunkservers through the client library, medians of several runs.
//! Compare with `../shared/bench/limits.sh` run on the same machine.
//!
//! `cargo build --workspace --bins && target/debug/dfs-data-bench [--runs 3]`

use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use dfs_client::DataConfig;
use dfs_proto::wire::namespace::{CreateRequest, EntryRef};
use dfs_tests::{drop_caches, median, Cluster};
use futures::StreamExt;
use rand::{RngCore, SeedableRng};

#[derive(Parser)]
#[command(about = "Data-path benchmark of dfs: replicated writes and verified reads")]
struct Args {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Bytes per run, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    #[arg(long, default_value_t = 3)]
    replication: u16,
    /// Write/read pieces in flight per client.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Size of one write or read request, in MiB.
    #[arg(long, default_value_t = 8)]
    piece_mib: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = Cluster::start(3)?;
    cluster.wait_live(3, std::time::Duration::from_secs(15)).await?;
    let config = DataConfig {
        write_piece_bytes: args.piece_mib << 20,
        read_piece_bytes: args.piece_mib << 20,
        pieces_in_flight: args.in_flight,
        ..DataConfig::default()
    };
    let client = dfs_tests::client_with(&cluster.master.url, config);
    let mut data = vec![0u8; (args.size_mib << 20) as usize];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut data);
    let data = Bytes::from(data);
    let mib = args.size_mib as f64;
    let (mut writes, mut synced, mut reads, mut file_reads) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cold = true;
    for run in 0..args.runs {
        let req = CreateRequest { at: EntryRef::path(format!("/bench-{run}")), replication: Some(args.replication), exclusive: true, ..Default::default() };
        let attr = client.master().create(&req).await?.attr;
        let t = Instant::now();
        client.write_at(&attr, 0, data.clone()).await?;
        let w = t.elapsed().as_secs_f64();
        let attr = client.master().stat_inode(attr.inode).await?;
        client.fsync(&attr).await?;
        let ws = t.elapsed().as_secs_f64();
        cold &= drop_caches();
        let t = Instant::now();
        // Streamed and compared piece by piece, as a copy to a file or a
        // FUSE read would consume it: no 1 GiB buffer of fresh pages.
        let mut pieces = std::pin::pin!(client.read_stream(&attr, 0, attr.size).await?);
        let mut at = 0usize;
        while let Some(piece) = pieces.next().await {
            let piece = piece?;
            anyhow::ensure!(piece[..] == data[at..at + piece.len()], "read back differs at {at}");
            at += piece.len();
        }
        let r = t.elapsed().as_secs_f64();
        anyhow::ensure!(at == data.len(), "read back {at} bytes of {}", data.len());
        // The same through an open file with read-ahead (what `dfs get` and
        // `dfs cat` use), piece-sized reads.
        drop_caches();
        let t = Instant::now();
        let mut file = client.open(&format!("/bench-{run}")).await?;
        let mut at = 0usize;
        loop {
            let piece = file.read(args.piece_mib << 20).await?;
            if piece.is_empty() {
                break;
            }
            anyhow::ensure!(piece[..] == data[at..at + piece.len()], "file read differs at {at}");
            at += piece.len();
        }
        let fr = t.elapsed().as_secs_f64();
        file_reads.push(mib / fr);
        eprintln!("run {run}: write {:.0} MiB/s, write+fsync {:.0} MiB/s, read {:.0} MiB/s", mib / w, mib / ws, mib / r);
        writes.push(mib / w);
        synced.push(mib / ws);
        reads.push(mib / r);
    }
    println!("| figure ({} MiB, {} replicas, median of {}) | MiB/s |", args.size_mib, args.replication, args.runs);
    println!("|---|---|");
    println!("| write (acknowledged: in every replica's OS) | {:.0} |", median(writes));
    println!("| write + fsync on every replica | {:.0} |", median(synced));
    println!("| read ({}) | {:.0} |", if cold { "page cache dropped" } else { "cache not dropped" }, median(reads));
    println!("| read through an open file, with read-ahead | {:.0} |", median(file_reads));
    Ok(())
}
