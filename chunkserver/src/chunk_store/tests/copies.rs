//! Copies built beside a replica and swapped in (`staging`): the replica
//! here is untouched until the copy is whole and durable, and a crash at any
//! step leaves either the old replica or the copy.

use std::fs;

use super::*;
use crate::chunk_store::ChunkError;

const V3: ChunkVersion = ChunkVersion(3);

fn copy_path(dir: &Path, h: ChunkHandle, suffix: &str) -> std::path::PathBuf {
    dir.join("copies").join("chunks").join(format!("{:016x}.{suffix}", h.0))
}

/// `H` at V1 holding `old`, and a copy of it at V2 holding `new`, not finished.
fn store_with_a_copy_under_way(direct: bool, old: &[u8], new: &[u8]) -> (TempDir, ChunkStore) {
    let (dir, store) = new_store(direct);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, old, None).unwrap();
    store.sync(H).unwrap();
    store.begin_copy(H, V2, SIZE).unwrap();
    store.write_copy(H, V2, 0, new, &body_crcs(new)).unwrap();
    (dir, store)
}

#[test]
fn a_copy_is_built_beside_the_replica_and_swapped_in_whole() {
    both_modes(|direct| {
        let (old, new) = (pattern(1, BLOCK + 7), pattern(2, 3 * BLOCK + 5));
        let (dir, store) = store_with_a_copy_under_way(direct, &old, &new);
        // Meanwhile the replica here is as it was, and the copy is not listed.
        assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), old);
        assert_eq!(store.list().iter().map(|i| (i.handle, i.version)).collect::<Vec<_>>(), [(H, V1)]);
        assert_eq!(store.used_bytes(), old.len() as u64);
        let info = store.finish_copy(H, V2).unwrap();
        assert_eq!((info.version, info.length, info.dirty), (V2, new.len() as u64, false));
        assert_eq!(store.read(H, V2, 0, SIZE).unwrap(), new);
        assert!(matches!(store.read(H, V1, 0, 1), Err(ChunkError::VersionConflict { .. })));
        assert_eq!(store.used_bytes(), new.len() as u64);
        assert!(store.copy_info(H).is_none());
        drop(store);
        let store = reopen(dir.path(), direct);
        assert_eq!(store.read(H, V2, 0, SIZE).unwrap(), new);
        store.verify(H).unwrap();
        assert!(fs::read_dir(dir.path().join("copies/chunks")).unwrap().next().is_none(), "nothing left beside");
    });
}

#[test]
fn a_copy_of_a_chunk_not_held_here_becomes_its_replica() {
    let (_dir, store) = new_store(false);
    let new = pattern(3, 2 * BLOCK);
    store.begin_copy(H, V2, SIZE).unwrap();
    store.write_copy(H, V2, 0, &new, &body_crcs(&new)).unwrap();
    assert!(store.info(H).is_none(), "not a replica before the swap");
    store.finish_copy(H, V2).unwrap();
    assert_eq!(store.read(H, V2, 0, SIZE).unwrap(), new);
}

#[test]
fn an_aborted_or_refused_copy_leaves_the_replica_untouched() {
    both_modes(|direct| {
        let (old, new) = (pattern(1, BLOCK + 7), pattern(2, 2 * BLOCK));
        let (_dir, store) = store_with_a_copy_under_way(direct, &old, &new);
        // A piece whose CRCs do not match is refused; nothing is written.
        let mut crcs = body_crcs(&new);
        crcs[0] ^= 1;
        assert!(matches!(store.write_copy(H, V2, 0, &new, &crcs), Err(ChunkError::BodyChecksum { .. })));
        store.abort_copy(H).unwrap();
        assert!(store.copy_info(H).is_none());
        assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), old);
        store.verify(H).unwrap();
        // Finishing a copy that is gone fails; the replica stays.
        assert!(matches!(store.finish_copy(H, V2), Err(ChunkError::UnknownChunk(_))));
        assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), old);
    });
}

#[test]
fn a_replica_that_moved_past_the_copy_is_kept() {
    let (old, new) = (pattern(1, 100), pattern(2, 200));
    let (_dir, store) = store_with_a_copy_under_way(false, &old, &new);
    store.set_version(H, V3).unwrap();
    let err = store.finish_copy(H, V2).unwrap_err();
    assert!(matches!(err, ChunkError::VersionConflict { have: V3, .. }), "{err:?}");
    assert_eq!(store.read(H, V3, 0, SIZE).unwrap(), old);
}

#[test]
fn a_crash_before_the_swap_keeps_the_old_replica_and_drops_the_copy() {
    let (old, new) = (pattern(1, BLOCK + 7), pattern(2, 2 * BLOCK));
    let (dir, store) = store_with_a_copy_under_way(true, &old, &new);
    drop(store); // a crash: the copy's files are left in copies/
    assert!(copy_path(dir.path(), H, "data").exists() && copy_path(dir.path(), H, "meta").exists());
    let store = reopen(dir.path(), true);
    assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), old);
    assert!(store.copy_info(H).is_none());
    assert!(!copy_path(dir.path(), H, "data").exists() && !copy_path(dir.path(), H, "meta").exists());
    assert!(store.quarantined().is_empty(), "{:?}", store.quarantined());
}

#[test]
fn a_crash_between_the_two_renames_finishes_the_swap_at_the_next_open() {
    let (old, new) = (pattern(1, BLOCK + 7), pattern(2, 2 * BLOCK + 3));
    let (dir, store) = store_with_a_copy_under_way(true, &old, &new);
    // The copy is durable (what finish_copy does first)...
    store.copies.as_ref().unwrap().sync(H).unwrap();
    drop(store);
    // ...and its data file was renamed into place when the power went.
    fs::rename(copy_path(dir.path(), H, "data"), data_path(dir.path(), H)).unwrap();
    let store = reopen(dir.path(), true);
    assert_eq!(store.read(H, V2, 0, SIZE).unwrap(), new);
    store.verify(H).unwrap();
    assert!(!copy_path(dir.path(), H, "meta").exists());
    assert!(store.quarantined().is_empty(), "{:?}", store.quarantined());
}
