//! Unit tests of the chunk store on real files in temp dirs. Most run twice:
//! with O_DIRECT (where the temp dir's file system allows it) and buffered.

mod concurrency;
mod copies;
mod durability;
mod integrity;
mod random_model;
mod recovery;
mod round_trip;

use std::path::Path;

use dfs_proto::{ChunkHandle, ChunkVersion};
use tempfile::TempDir;

use super::{ChunkStore, ChunkStoreOptions, BLOCK_BYTES};

const H: ChunkHandle = ChunkHandle(0x42);
const V1: ChunkVersion = ChunkVersion(1);
const V2: ChunkVersion = ChunkVersion(2);
/// Eight blocks: small enough to be quick, big enough for multi-block writes.
const SIZE: u64 = 8 * BLOCK_BYTES;
const BLOCK: usize = BLOCK_BYTES as usize;

fn options(direct_io: bool) -> ChunkStoreOptions {
    ChunkStoreOptions { direct_io, ..ChunkStoreOptions::default() }
}

/// A fresh store in a temp dir, with or without O_DIRECT.
fn new_store(direct_io: bool) -> (TempDir, ChunkStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ChunkStore::open_with(dir.path(), options(direct_io)).expect("open store");
    (dir, store)
}

fn reopen(dir: &Path, direct_io: bool) -> ChunkStore {
    ChunkStore::open_with(dir, options(direct_io)).expect("reopen store")
}

/// Runs `test` once per I/O mode.
fn both_modes(test: impl Fn(bool)) {
    for direct_io in [true, false] {
        test(direct_io);
    }
}

/// Deterministic bytes that differ between seeds and are never all zero.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed | 1).collect()
}

/// The CRC32 of each 64 KiB piece of `data`, as a client sends them.
fn body_crcs(data: &[u8]) -> Vec<u32> {
    data.chunks(BLOCK).map(crc32fast::hash).collect()
}

/// Flips one bit of a file at `pos`, as bit rot would.
fn flip_byte(path: &Path, pos: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, pos).unwrap();
    b[0] ^= 0x10;
    f.write_all_at(&b, pos).unwrap();
}

fn data_path(dir: &Path, h: ChunkHandle) -> std::path::PathBuf {
    dir.join("chunks").join(format!("{:016x}.data", h.0))
}

fn meta_path(dir: &Path, h: ChunkHandle) -> std::path::PathBuf {
    dir.join("chunks").join(format!("{:016x}.meta", h.0))
}

/// Writes into a model of a chunk's bytes: extends with zeros as needed.
fn model_write(model: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if model.len() < offset + data.len() {
        model.resize(offset + data.len(), 0);
    }
    model[offset..offset + data.len()].copy_from_slice(data);
}
