//! Not a test: a throughput probe, run by hand with
//! `cargo test -p dfs-chunkserver --lib throughput -- --ignored --nocapture`.
//! Set DFS_BENCH_DIR to measure on a chosen file system.

use std::time::Instant;

use super::*;

fn probe(direct: bool, piece: usize) {
    let base = std::env::var_os("DFS_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = ChunkStore::open_with(dir.path(), options(direct)).unwrap();
    let (chunks, chunk_size) = (4u64, 64u64 << 20);
    let data = pattern(1, piece);
    let crcs = body_crcs(&data);
    let start = Instant::now();
    for c in 0..chunks {
        store.create(ChunkHandle(c), V1, chunk_size).unwrap();
        for off in (0..chunk_size).step_by(piece) {
            let len = piece.min((chunk_size - off) as usize);
            let body = (len == piece).then_some(&crcs[..]);
            store.write(ChunkHandle(c), V1, off, &data[..len], body).unwrap();
        }
        store.sync(ChunkHandle(c)).unwrap();
    }
    let mib = (chunks * chunk_size) as f64 / (1 << 20) as f64;
    let write_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for c in 0..chunks {
        for off in (0..chunk_size).step_by(piece) {
            assert!(!store.read(ChunkHandle(c), V1, off, piece as u64).unwrap().is_empty());
        }
    }
    let read_s = start.elapsed().as_secs_f64();
    println!(
        "direct_io={} (in use: {}): write+sync {:.0} MiB/s, read {:.0} MiB/s, {mib} MiB in calls of {piece} bytes",
        direct,
        store.direct_io(),
        mib / write_s,
        mib / read_s
    );
}

#[test]
#[ignore = "a throughput probe, not a check"]
fn throughput() {
    for piece in [1 << 20, (1 << 20) + 1000] {
        probe(true, piece);
        probe(false, piece);
    }
}
