//! Damage in transit and on disk is detected, and bad bytes never served.

use super::*;
use crate::chunk_store::ChunkError;

#[test]
fn a_body_checksum_mismatch_changes_nothing() {
    both_modes(|direct| {
        let (_dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        let old = pattern(1, 2 * BLOCK + 10);
        store.write(H, V1, 0, &old, Some(&body_crcs(&old))).unwrap();
        let new = pattern(2, 3 * BLOCK);
        let mut crcs = body_crcs(&new);
        crcs[1] ^= 1;
        let err = store.write(H, V1, BLOCK_BYTES, &new, Some(&crcs)).unwrap_err();
        assert!(matches!(err, ChunkError::BodyChecksum { piece: 1, .. }), "{err:?}");
        assert!(err.is_client_error());
        let too_few = store.write(H, V1, 0, &new, Some(&crcs[..2]));
        assert!(matches!(too_few, Err(ChunkError::BadArgument(_))));
        assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), old);
        assert_eq!(store.info(H).unwrap().length, old.len() as u64);
    });
}

#[test]
fn a_flipped_data_byte_is_corrupt_on_read_and_verify() {
    both_modes(|direct| {
        let (dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        let data = pattern(3, 3 * BLOCK + 100);
        store.write(H, V1, 0, &data, None).unwrap();
        flip_byte(&data_path(dir.path(), H), BLOCK_BYTES + 12345);

        let err = store.read(H, V1, BLOCK_BYTES + 60_000, 10).unwrap_err();
        assert!(matches!(err, ChunkError::Corrupt { block: 1, .. }), "{err:?}");
        assert!(!err.is_client_error());
        assert!(matches!(store.read(H, V1, 0, SIZE), Err(ChunkError::Corrupt { block: 1, .. })));
        assert!(matches!(store.verify(H), Err(ChunkError::Corrupt { block: 1, .. })));
        // The other blocks are still served.
        assert_eq!(store.read(H, V1, 0, BLOCK_BYTES).unwrap(), data[..BLOCK]);
        assert_eq!(store.read(H, V1, 2 * BLOCK_BYTES, SIZE).unwrap(), data[2 * BLOCK..]);
    });
}

#[test]
fn a_partial_write_into_a_damaged_block_is_refused_not_blessed() {
    both_modes(|direct| {
        let (dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        store.write(H, V1, 0, &pattern(4, 2 * BLOCK), None).unwrap();
        flip_byte(&data_path(dir.path(), H), 100);
        let err = store.write(H, V1, 5000, b"patch", None).unwrap_err();
        assert!(matches!(err, ChunkError::Corrupt { block: 0, .. }), "{err:?}");
        assert!(matches!(store.read(H, V1, 0, 10), Err(ChunkError::Corrupt { block: 0, .. })));
        // Rewriting the whole block repairs it.
        let fresh = pattern(5, BLOCK);
        store.write(H, V1, 0, &fresh, None).unwrap();
        assert_eq!(store.read(H, V1, 0, BLOCK_BYTES).unwrap(), fresh);
        store.verify(H).unwrap();
    });
}

#[test]
fn a_flipped_crc_slot_is_corrupt_after_reopen() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, &pattern(6, 2 * BLOCK), None).unwrap();
    // Synced: a replica written since its last sync would be checked at
    // open, and its bad last block cut off as a torn write (recovery.rs).
    store.sync(H).unwrap();
    drop(store);
    flip_byte(&meta_path(dir.path(), H), 64 + 4 + 2); // block 1's slot
    let store = reopen(dir.path(), true);
    assert!(store.quarantined().is_empty());
    assert_eq!(store.read(H, V1, 0, 10).unwrap(), pattern(6, 10));
    assert!(matches!(store.read(H, V1, BLOCK_BYTES, 10), Err(ChunkError::Corrupt { block: 1, .. })));
}

#[test]
fn quarantine_moves_the_replica_aside_for_good() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, b"bad", None).unwrap();
    store.quarantine(H).unwrap();
    assert!(store.info(H).is_none());
    assert!(matches!(store.read(H, V1, 0, 3), Err(ChunkError::UnknownChunk(_))));
    assert_eq!(store.used_bytes(), 0);
    assert_eq!(store.quarantined().len(), 1);
    assert!(!data_path(dir.path(), H).exists() && !meta_path(dir.path(), H).exists());
    let moved = std::fs::read_dir(dir.path().join("quarantine")).unwrap().count();
    assert_eq!(moved, 2);
    drop(store);
    let store = reopen(dir.path(), true);
    assert!(store.info(H).is_none());
    // A new replica of the same chunk can be created again (re-replication).
    store.create(H, V1, SIZE).unwrap();
    assert_eq!(store.read(H, V1, 0, 3).unwrap(), b"");
}

#[test]
fn delete_removes_the_files() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, b"gone soon", None).unwrap();
    store.delete(H).unwrap();
    assert!(store.info(H).is_none());
    assert!(matches!(store.delete(H), Err(ChunkError::UnknownChunk(_))));
    assert!(!data_path(dir.path(), H).exists() && !meta_path(dir.path(), H).exists());
    drop(store);
    let store = reopen(dir.path(), true);
    assert!(store.list().is_empty());
    assert!(store.quarantined().is_empty());
}

#[test]
fn delete_up_to_keeps_a_newer_replica() {
    let (_dir, store) = new_store(true);
    store.create(H, V2, SIZE).unwrap();
    store.write(H, V2, 0, b"newer", None).unwrap();
    let kept = store.delete_up_to(H, V1).unwrap_err();
    assert!(matches!(kept, ChunkError::VersionConflict { have: V2, want: V1, .. }), "{kept:?}");
    assert_eq!(store.read(H, V2, 0, 5).unwrap(), b"newer");
    assert_eq!(store.delete_up_to(H, V2).unwrap(), V2);
    assert!(store.info(H).is_none());
    assert_eq!(store.used_bytes(), 0);
    assert!(matches!(store.delete_up_to(H, V2), Err(ChunkError::UnknownChunk(_))));
}

#[test]
fn a_long_write_ending_in_a_damaged_block_writes_nothing() {
    let (dir, store) = new_store(true);
    let size = 32 * BLOCK_BYTES;
    store.create(H, V1, size).unwrap();
    let old = pattern(7, size as usize);
    store.write(H, V1, 0, &old, None).unwrap();
    flip_byte(&data_path(dir.path(), H), 20 * BLOCK_BYTES + 9000);
    // Blocks 0..=20 over two segments; block 20 is merged (partly kept).
    let new = pattern(8, 20 * BLOCK + 100);
    let err = store.write(H, V1, 50, &new, None).unwrap_err();
    assert!(matches!(err, ChunkError::Corrupt { block: 20, .. }), "{err:?}");
    assert_eq!(store.read(H, V1, 0, 20 * BLOCK_BYTES).unwrap(), old[..20 * BLOCK]);
}
