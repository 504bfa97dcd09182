//! Seeded random operations against an in-memory model of every chunk.
//! A failure names its seed and step; rerun with that seed to reproduce.

use super::*;
use crate::chunk_store::{Body, ChunkError};

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct ModelChunk {
    handle: ChunkHandle,
    version: ChunkVersion,
    size: u64,
    bytes: Vec<u8>,
    /// Written since its last sync or version change.
    dirty: bool,
    /// Loaded dirty by the last reopen: refuses writes and syncs until its
    /// version changes.
    lost_writes: bool,
}

/// An offset inside `size`, often on a block or page boundary.
fn pick_offset(rng: &mut Rng, size: u64) -> u64 {
    match rng.below(3) {
        0 => rng.below(size / BLOCK_BYTES) * BLOCK_BYTES,
        1 => rng.below(size / 4096) * 4096,
        _ => rng.below(size),
    }
}

/// A length from 1 byte to about three blocks, often near a boundary.
fn pick_len(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => 1 + rng.below(16),
        1 => 1 + rng.below(5000),
        2 => ((1 + rng.below(3)) * BLOCK_BYTES).saturating_add_signed(rng.below(9) as i64 - 4),
        _ => 1 + rng.below(3 * BLOCK_BYTES),
    }
}

/// `data` cut at up to three random places, as a body's frames may be.
fn frames<'a>(rng: &mut Rng, data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(data.len() as u64 + 1) as usize).collect();
    cuts.sort_unstable();
    let mut from = 0;
    let mut parts = Vec::new();
    for cut in cuts.into_iter().chain([data.len()]) {
        parts.push(&data[from..cut]);
        from = cut;
    }
    parts
}

fn random_write(store: &ChunkStore, rng: &mut Rng, c: &mut ModelChunk, ctx: &str) {
    let offset = pick_offset(rng, c.size);
    let len = pick_len(rng).min(c.size - offset).max(1);
    if offset + len > c.size {
        return; // offset == size: nothing fits
    }
    let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let parts = frames(rng, &data);
    let mut crcs = body_crcs(&data);
    let roll = rng.below(100);
    let write = |crcs: Option<&[u32]>| match roll % 2 {
        0 => store.write(c.handle, c.version, offset, &data, crcs),
        _ => store.write_body(c.handle, c.version, offset, Body::new(&parts), crcs),
    };
    if roll < 5 {
        let piece = rng.below(crcs.len() as u64) as usize;
        crcs[piece] ^= 0x8000_0000;
        let r = write(Some(&crcs));
        assert!(matches!(r, Err(ChunkError::BodyChecksum { .. })), "{ctx}: {r:?}");
        return;
    }
    let body = (roll < 50).then_some(&crcs[..]);
    if c.lost_writes {
        let r = write(body);
        assert!(matches!(r, Err(ChunkError::LostWrites { .. })), "{ctx}: {r:?}");
        return;
    }
    write(body).unwrap_or_else(|e| panic!("{ctx}: write {offset}+{len}: {e}"));
    model_write(&mut c.bytes, offset as usize, &data);
    c.dirty = true;
}

fn random_read(store: &ChunkStore, rng: &mut Rng, c: &ModelChunk, ctx: &str) {
    let offset = pick_offset(rng, c.size);
    let len = pick_len(rng);
    let got = store.read(c.handle, c.version, offset, len).unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
    let from = (offset as usize).min(c.bytes.len());
    let to = ((offset + len) as usize).min(c.bytes.len());
    assert!(got == c.bytes[from..to], "{ctx}: read {offset}+{len} differs from the model");
}

fn check_all(store: &ChunkStore, chunks: &[ModelChunk], ctx: &str) {
    let infos = store.list();
    assert_eq!(infos.len(), chunks.len(), "{ctx}");
    for (info, c) in infos.iter().zip(chunks) {
        assert_eq!((info.handle, info.version, info.length), (c.handle, c.version, c.bytes.len() as u64), "{ctx}");
        assert_eq!(info.dirty, c.dirty, "{ctx}: chunk {}", c.handle);
        store.verify(c.handle).unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
        assert!(store.read(c.handle, c.version, 0, c.size).unwrap() == c.bytes, "{ctx}: chunk {}", c.handle);
    }
}

fn run(seed: u64, steps: usize, direct: bool) {
    println!("random_model seed {seed:#x} steps {steps} direct_io {direct}");
    let mut rng = Rng(seed);
    let (dir, mut store) = new_store(direct);
    let mut chunks: Vec<ModelChunk> = [1u64, 4, 6]
        .iter()
        .enumerate()
        .map(|(i, &blocks)| ModelChunk {
            handle: ChunkHandle(i as u64 + 1),
            version: V1,
            size: blocks * BLOCK_BYTES,
            bytes: Vec::new(),
            dirty: false,
            lost_writes: false,
        })
        .collect();
    for c in &chunks {
        store.create(c.handle, c.version, c.size).unwrap();
    }
    for step in 0..steps {
        let ctx = format!("seed {seed:#x} step {step}");
        let i = rng.below(chunks.len() as u64) as usize;
        let c = &mut chunks[i];
        match rng.below(100) {
            0..=49 => random_write(&store, &mut rng, c, &ctx),
            50..=79 => random_read(&store, &mut rng, c, &ctx),
            80..=84 => {
                let stale = ChunkVersion(c.version.0 - 1);
                let r = store.write(c.handle, stale, 0, b"x", None);
                assert!(matches!(r, Err(ChunkError::VersionConflict { .. })), "{ctx}: {r:?}");
            }
            85..=88 => {
                c.version = ChunkVersion(c.version.0 + 1 + rng.below(2));
                store.set_version(c.handle, c.version).unwrap();
                (c.dirty, c.lost_writes) = (false, false);
            }
            89..=92 => store.verify(c.handle).unwrap_or_else(|e| panic!("{ctx}: verify: {e}")),
            93..=96 => match c.lost_writes {
                true => assert!(matches!(store.sync(c.handle), Err(ChunkError::LostWrites { .. })), "{ctx}"),
                false => {
                    store.sync(c.handle).unwrap();
                    c.dirty = false;
                }
            },
            _ => {
                drop(store);
                store = reopen(dir.path(), direct);
                assert!(store.quarantined().is_empty(), "{ctx}");
                check_all(&store, &chunks, &ctx);
                chunks.iter_mut().for_each(|c| c.lost_writes = c.dirty);
            }
        }
    }
    check_all(&store, &chunks, &format!("seed {seed:#x} end"));
}

#[test]
fn random_operations_match_the_model_direct() {
    for seed in [0x5eed_0001, 0xdead_beef_0042] {
        run(seed, 700, true);
    }
}

#[test]
fn random_operations_match_the_model_buffered() {
    run(0x5eed_0003, 700, false);
}
