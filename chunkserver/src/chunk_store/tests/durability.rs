//! What survives a reopen, and what open does with damaged files.

use std::fs;

use super::*;
use crate::chunk_store::ChunkError;

#[test]
fn reopen_keeps_versions_lengths_and_crcs() {
    both_modes(|direct| {
        let (dir, store) = new_store(direct);
        let mut expected = Vec::new();
        for i in 1..=4u64 {
            let h = ChunkHandle(i);
            store.create(h, V1, SIZE).unwrap();
            let data = pattern(i as u8, (i as usize) * 50_000 + 7);
            store.write(h, V1, i * 1000, &data, None).unwrap();
            if i % 2 == 0 {
                store.set_version(h, ChunkVersion(10 + i)).unwrap();
            }
            store.sync(h).unwrap();
            let mut model = Vec::new();
            model_write(&mut model, (i * 1000) as usize, &data);
            expected.push((h, model));
        }
        let before = store.list();
        let used = store.used_bytes();
        drop(store);
        let store = reopen(dir.path(), direct);
        assert!(store.quarantined().is_empty(), "{:?}", store.quarantined());
        assert_eq!(store.list(), before);
        assert_eq!(store.used_bytes(), used);
        for (h, model) in expected {
            let v = store.info(h).unwrap().version;
            assert_eq!(store.read(h, v, 0, SIZE).unwrap(), model);
            store.verify(h).unwrap();
        }
    });
}

#[test]
fn damaged_and_stray_files_are_quarantined_at_open() {
    let (dir, store) = new_store(true);
    for i in 1..=5 {
        store.create(ChunkHandle(i), V1, SIZE).unwrap();
        store.write(ChunkHandle(i), V1, 0, &pattern(i as u8, 1000), None).unwrap();
    }
    drop(store);
    let chunks = dir.path().join("chunks");
    flip_byte(&meta_path(dir.path(), ChunkHandle(1)), 20); // the version, under the header CRC
    fs::write(meta_path(dir.path(), ChunkHandle(2)), b"not a meta file").unwrap();
    fs::remove_file(data_path(dir.path(), ChunkHandle(3))).unwrap();
    fs::remove_file(meta_path(dir.path(), ChunkHandle(4))).unwrap();
    fs::write(chunks.join("0000000000000005.meta.tmp"), b"half written").unwrap();
    fs::write(chunks.join("notes.txt"), b"?").unwrap();

    let store = reopen(dir.path(), true);
    let lines = store.quarantined();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("header checksum")), "{lines:#?}");
    assert_eq!(store.list().iter().map(|i| i.handle.0).collect::<Vec<_>>(), [5]);
    assert_eq!(store.read(ChunkHandle(5), V1, 0, 1000).unwrap(), pattern(5, 1000));
    let left: Vec<_> = fs::read_dir(&chunks).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "only chunk 5's files remain: {left:?}");
    drop(store);
    assert!(reopen(dir.path(), true).quarantined().is_empty(), "nothing left to move");
}

/// A crash can persist new data without the in-place metadata update (or
/// the reverse); either way the replica must report damage, not old or new
/// bytes under a CRC that does not cover them.
#[test]
fn a_lost_metadata_update_is_detected_not_served() {
    both_modes(|direct| {
        let (dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        store.write(H, V1, 0, &pattern(1, 5000), None).unwrap();
        store.sync(H).unwrap();
        let old_meta = fs::read(meta_path(dir.path(), H)).unwrap();
        store.write(H, V1, 100, &pattern(2, 300), None).unwrap();
        drop(store);
        fs::write(meta_path(dir.path(), H), &old_meta).unwrap();
        let store = reopen(dir.path(), direct);
        assert!(matches!(store.read(H, V1, 0, 10), Err(ChunkError::Corrupt { block: 0, .. })));
        assert!(matches!(store.verify(H), Err(ChunkError::Corrupt { block: 0, .. })));
    });
}

#[test]
fn set_version_is_on_disk_before_it_returns() {
    let (dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, b"data", None).unwrap();
    store.set_version(H, ChunkVersion(7)).unwrap();
    // Read the file itself rather than reopening: the store must have
    // replaced it (a temp file must not be left behind).
    let bytes = fs::read(meta_path(dir.path(), H)).unwrap();
    assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 7);
    assert_eq!(u64::from_le_bytes(bytes[32..40].try_into().unwrap()), 4, "the length came along");
    assert_eq!(fs::read_dir(dir.path().join("chunks")).unwrap().count(), 2);
    store.write(H, ChunkVersion(7), 4, b"more", None).unwrap();
    drop(store);
    let store = reopen(dir.path(), true);
    assert_eq!(store.read(H, ChunkVersion(7), 0, 8).unwrap(), b"datamore");
}
