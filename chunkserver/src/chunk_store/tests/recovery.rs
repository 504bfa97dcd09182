//! Start-up recovery of torn writes (`recover.rs`) and what a failed sync
//! does to a replica.

use std::fs;
use std::os::unix::fs::FileExt;

use super::*;
use crate::chunk_store::ChunkError;

/// Overwrites `len` bytes at `pos` of a file with garbage, as a write the
/// disk only half kept would leave.
fn garble(path: &Path, pos: u64, len: usize) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&pattern(0xee, len), pos).unwrap();
}

fn quarantine_files(dir: &Path) -> usize {
    fs::read_dir(dir.join("quarantine")).unwrap().count()
}

#[test]
fn a_torn_tail_is_cut_back_to_the_synced_bytes_and_kept() {
    both_modes(|direct| {
        let (dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        // Synced up to the middle of block 2, then two more blocks appended.
        let synced = pattern(1, 2 * BLOCK + 1000);
        store.write(H, V1, 0, &synced, None).unwrap();
        store.sync(H).unwrap();
        store.write(H, V1, synced.len() as u64, &pattern(2, 2 * BLOCK), None).unwrap();
        drop(store);
        // A power cut kept the metadata of the append but not all its bytes,
        // in no particular order: block 2 past the synced part, and block 4,
        // hold other bytes; block 3 made it.
        let data = data_path(dir.path(), H);
        garble(&data, 2 * BLOCK_BYTES + 1000, 3000);
        garble(&data, 4 * BLOCK_BYTES, 100);

        let store = reopen(dir.path(), direct);
        assert!(store.quarantined().is_empty(), "{:?}", store.quarantined());
        assert_eq!(store.info(H).unwrap().length, synced.len() as u64);
        assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), synced);
        store.verify(H).unwrap();
        // It crashed dirty: it takes writes again once the master moved it
        // to a new version; the cut is durable.
        assert!(matches!(store.write(H, V1, synced.len() as u64, b"more", None), Err(ChunkError::LostWrites { .. })));
        store.set_version(H, V2).unwrap();
        store.write(H, V2, synced.len() as u64, b"more", None).unwrap();
        store.sync(H).unwrap();
        drop(store);
        let store = reopen(dir.path(), direct);
        assert_eq!(store.read(H, V2, 2 * BLOCK_BYTES + 1000, 10).unwrap(), b"more");
        assert_eq!(store.read(H, V2, 0, 2 * BLOCK_BYTES + 1000).unwrap(), synced);
    });
}

#[test]
fn a_torn_last_block_of_a_never_synced_replica_is_cut_off() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    let data = pattern(3, 3 * BLOCK);
    store.write(H, V1, 0, &data, None).unwrap();
    drop(store);
    garble(&data_path(dir.path(), H), 2 * BLOCK_BYTES + 5, 10);
    let store = reopen(dir.path(), true);
    assert!(store.quarantined().is_empty());
    assert_eq!(store.info(H).unwrap().length, 2 * BLOCK_BYTES);
    assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), data[..2 * BLOCK]);
    assert_eq!(store.used_bytes(), 2 * BLOCK_BYTES);
}

#[test]
fn a_bad_synced_block_followed_by_a_sound_one_is_quarantined() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, &pattern(4, 2 * BLOCK), None).unwrap();
    store.sync(H).unwrap();
    store.write(H, V1, 2 * BLOCK_BYTES, &pattern(5, 2 * BLOCK), None).unwrap();
    drop(store);
    // Block 1 was synced and is bad, block 2 after it checks out: damage in
    // the middle, not a torn tail.
    garble(&data_path(dir.path(), H), BLOCK_BYTES + 7, 10);
    let store = reopen(dir.path(), true);
    assert!(store.info(H).is_none());
    let lines = store.quarantined();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("block 1 fails its checksum"), "{lines:?}");
    assert_eq!(quarantine_files(dir.path()), 2);
}

#[test]
fn a_data_file_shorter_than_the_length_is_cut_back() {
    // The metadata's new length reached the disk, the data did not.
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    let data = pattern(6, 3 * BLOCK);
    store.write(H, V1, 0, &data, None).unwrap();
    drop(store);
    let f = fs::OpenOptions::new().write(true).open(data_path(dir.path(), H)).unwrap();
    f.set_len(BLOCK_BYTES).unwrap();
    let store = reopen(dir.path(), true);
    assert!(store.quarantined().is_empty());
    assert_eq!(store.info(H).unwrap().length, BLOCK_BYTES);
    assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), data[..BLOCK]);
}

#[test]
fn a_sound_replica_checked_at_open_is_recorded_as_synced() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    let data = pattern(9, BLOCK + 5);
    store.write(H, V1, 0, &data, None).unwrap();
    drop(store); // never synced: checked at the next open
    let meta = fs::read(meta_path(dir.path(), H)).unwrap();
    assert_eq!(u64::from_le_bytes(meta[40..48].try_into().unwrap()), 0);
    let store = reopen(dir.path(), true);
    assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), data);
    let meta = fs::read(meta_path(dir.path(), H)).unwrap();
    assert_eq!(u64::from_le_bytes(meta[40..48].try_into().unwrap()), data.len() as u64, "synced length recorded");
}

#[test]
fn a_format_1_metadata_file_is_read_and_rewritten() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    let data = pattern(7, BLOCK + 10);
    store.write(H, V1, 0, &data, None).unwrap();
    store.sync(H).unwrap();
    drop(store);
    // Format 1: the same fields without the synced ones, a 48-byte header.
    let v2 = fs::read(meta_path(dir.path(), H)).unwrap();
    let mut v1 = v2[..40].to_vec();
    v1[4] = 1;
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    v1.extend_from_slice(&[0; 4]);
    v1.extend_from_slice(&v2[64..]);
    fs::write(meta_path(dir.path(), H), &v1).unwrap();

    let store = reopen(dir.path(), true);
    assert!(store.quarantined().is_empty(), "{:?}", store.quarantined());
    assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), data);
    assert_eq!(fs::read(meta_path(dir.path(), H)).unwrap()[4], 2, "rewritten as format 2");
    store.write(H, V1, data.len() as u64, b"x", None).unwrap();
    drop(store);
    assert_eq!(reopen(dir.path(), true).info(H).unwrap().length, data.len() as u64 + 1);
}

#[test]
fn a_failed_sync_sets_the_replica_aside_and_answers_eio() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, &pattern(8, 1000), None).unwrap();
    store.fail_syncs(true);
    let err = store.sync(H).unwrap_err();
    assert!(matches!(err, ChunkError::SyncFailed { handle: H, .. }), "{err:?}");
    assert!(!err.is_client_error());
    assert_eq!(crate::api::error::chunk_error(err).0.error, dfs_proto::ErrorKind::EIO);
    // Damaged: neither served nor written any more, and moved aside.
    assert!(store.info(H).is_none());
    assert!(matches!(store.read(H, V1, 0, 10), Err(ChunkError::UnknownChunk(_))));
    assert!(matches!(store.write(H, V1, 0, b"x", None), Err(ChunkError::UnknownChunk(_))));
    assert_eq!(store.used_bytes(), 0);
    assert_eq!(quarantine_files(dir.path()), 2);
    assert!(store.quarantined()[0].contains("fsync failed"), "{:?}", store.quarantined());
}

#[test]
fn a_failed_version_change_sync_sets_the_replica_aside() {
    let (_dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, b"data", None).unwrap();
    store.fail_syncs(true);
    assert!(matches!(store.set_version(H, V2), Err(ChunkError::SyncFailed { .. })));
    assert!(store.info(H).is_none());
}

/// Files evicted from the open-file cache with writes not yet synced are
/// synced before they close; if that fails, the replica is damaged and is
/// set aside at its next call, rather than the error being lost with the
/// descriptor.
#[test]
fn unsynced_files_are_synced_before_they_close() {
    let dir = tempfile::tempdir().unwrap();
    let options = ChunkStoreOptions { max_open_replicas: 1, ..ChunkStoreOptions::default() };
    let store = ChunkStore::open_with(dir.path(), options).unwrap();
    let (a, b, c) = (ChunkHandle(1), ChunkHandle(2), ChunkHandle(3));
    for h in [a, b, c] {
        store.create(h, V1, SIZE).unwrap();
    }
    store.write(a, V1, 0, b"synced on eviction", None).unwrap();
    store.write(b, V1, 0, b"evicts a", None).unwrap();
    assert_eq!(store.read(a, V1, 0, 100).unwrap(), b"synced on eviction", "a is fine");

    store.write(c, V1, 0, b"unsynced", None).unwrap(); // evicts a again, then c is open
    store.fail_syncs(true);
    store.read(b, V1, 0, 1).unwrap(); // evicts c: its sync fails
    assert!(matches!(store.read(c, V1, 0, 8), Err(ChunkError::SyncFailed { .. })));
    assert!(store.info(c).is_none());
    assert_eq!(store.list().len(), 2);
}

#[test]
fn a_write_after_a_sync_marks_the_replica_dirty_on_disk_until_the_next_sync() {
    both_modes(|direct| {
        let (dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        store.write(H, V1, 0, &pattern(1, BLOCK), None).unwrap();
        store.sync(H).unwrap();
        assert!(!store.info(H).unwrap().dirty);
        // An overwrite inside the length: the length cannot tell it was lost.
        store.write(H, V1, 0, &pattern(2, 100), None).unwrap();
        assert!(store.info(H).unwrap().dirty);
        let header = fs::read(meta_path(dir.path(), H)).unwrap();
        assert_eq!(header[5], 1, "the flag is in the file before the write is taken");
        // A sync that changes no length clears it on disk too.
        store.sync(H).unwrap();
        drop(store);
        assert!(!reopen(dir.path(), direct).info(H).unwrap().dirty);
        let store = reopen(dir.path(), direct);
        store.write(H, V1, 0, &pattern(3, 100), None).unwrap();
        drop(store);
        // A start after a crash reports it, through the start-up scan too.
        let store = reopen(dir.path(), direct);
        assert!(store.info(H).unwrap().dirty, "writes since the last sync may be gone");
        assert!(store.list().iter().all(|i| i.dirty));
        // No write or sync at this version: a writer going on would have
        // its sync claim bytes the crash dropped.
        assert!(matches!(store.write(H, V1, 0, &pattern(4, 100), None), Err(ChunkError::LostWrites { .. })));
        assert!(matches!(store.sync(H), Err(ChunkError::LostWrites { .. })));
        assert_eq!(store.sync_dirty(), 0, "a clean stop leaves it dirty too");
        assert!(store.info(H).unwrap().dirty);
        // The master's next version (once it judged the replica) lifts it.
        store.set_version(H, V2).unwrap();
        assert!(!store.info(H).unwrap().dirty);
        store.write(H, V2, 0, &pattern(5, 100), None).unwrap();
        store.sync(H).unwrap();
        drop(store);
        assert!(!reopen(dir.path(), direct).info(H).unwrap().dirty);
    });
}

#[test]
fn a_torn_dirty_replica_cut_back_at_start_up_stays_dirty() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, &pattern(1, BLOCK), None).unwrap();
    store.sync(H).unwrap();
    store.write(H, V1, BLOCK_BYTES, &pattern(2, BLOCK), None).unwrap();
    drop(store);
    garble(&data_path(dir.path(), H), BLOCK_BYTES, 100);
    let store = reopen(dir.path(), true);
    assert_eq!(store.info(H).unwrap().length, BLOCK_BYTES);
    assert!(store.info(H).unwrap().dirty);
    drop(store);
    assert!(reopen(dir.path(), true).info(H).unwrap().dirty, "the cut-back metadata keeps the flag");
}
