//! Shared use from several threads, and the bounded open-file cache.

use std::sync::Arc;
use std::thread;

use super::*;

/// Each thread appends 64 KiB + 1 byte pieces to its own chunk while
/// another reads them back; then every chunk holds exactly its writer's bytes.
#[test]
fn threads_write_their_own_chunks_in_parallel() {
    let (_dir, store) = new_store(true);
    let store = Arc::new(store);
    let threads = 4u64;
    let pieces = 6usize;
    let piece_len = BLOCK + 1;
    for t in 0..threads {
        store.create(ChunkHandle(t), V1, SIZE).unwrap();
    }
    let mut joins = Vec::new();
    for t in 0..threads {
        let s = Arc::clone(&store);
        joins.push(thread::spawn(move || {
            for p in 0..pieces {
                let data = pattern((t * 16 + p as u64) as u8, piece_len);
                s.write(ChunkHandle(t), V1, (p * piece_len) as u64, &data, Some(&body_crcs(&data))).unwrap();
            }
        }));
        let s = Arc::clone(&store);
        joins.push(thread::spawn(move || {
            for _ in 0..20 {
                // Whatever prefix exists so far must verify.
                s.read(ChunkHandle(t), V1, 0, SIZE).unwrap();
            }
        }));
    }
    for j in joins {
        j.join().unwrap();
    }
    for t in 0..threads {
        let expected: Vec<u8> = (0..pieces).flat_map(|p| pattern((t * 16 + p as u64) as u8, piece_len)).collect();
        assert_eq!(store.read(ChunkHandle(t), V1, 0, SIZE).unwrap(), expected, "chunk {t}");
    }
}

/// Writers to one chunk are serialized: racing unaligned writes to disjoint
/// ranges of the same blocks all land.
#[test]
fn racing_writes_to_one_chunk_all_land() {
    let (_dir, store) = new_store(true);
    let store = Arc::new(store);
    store.create(H, V1, SIZE).unwrap();
    let piece = 1000usize;
    let joins: Vec<_> = (0..4u8)
        .map(|t| {
            let s = Arc::clone(&store);
            thread::spawn(move || {
                for k in 0..25usize {
                    let i = k * 4 + t as usize;
                    s.write(H, V1, (i * piece) as u64, &pattern(i as u8, piece), None).unwrap();
                }
            })
        })
        .collect();
    for j in joins {
        j.join().unwrap();
    }
    let expected: Vec<u8> = (0..100usize).flat_map(|i| pattern(i as u8, piece)).collect();
    assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), expected);
    store.verify(H).unwrap();
}

#[test]
fn more_chunks_than_open_file_slots() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ChunkStoreOptions { max_open_replicas: 2, ..ChunkStoreOptions::default() };
    let store = ChunkStore::open_with(dir.path(), opts).unwrap();
    let n = 6u64;
    for round in 0..3u64 {
        for i in 0..n {
            if round == 0 {
                store.create(ChunkHandle(i), V1, SIZE).unwrap();
            }
            store.write(ChunkHandle(i), V1, round * 10, &pattern((i * 3 + round) as u8, 10), None).unwrap();
        }
    }
    for i in 0..n {
        let expected: Vec<u8> = (0..3).flat_map(|r| pattern((i * 3 + r) as u8, 10)).collect();
        assert_eq!(store.read(ChunkHandle(i), V1, 0, 100).unwrap(), expected);
        store.sync(ChunkHandle(i)).unwrap();
    }
    let zero = ChunkStoreOptions { max_open_replicas: 0, ..ChunkStoreOptions::default() };
    assert!(ChunkStore::open_with(dir.path(), zero).is_err());
}
