//! Writes and reads at aligned and unaligned places, and the API's refusals.

use super::*;
use crate::chunk_store::ChunkError;

#[test]
fn aligned_blocks_round_trip_with_and_without_body_crcs() {
    both_modes(|direct| {
        let (_dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        let a = pattern(1, 3 * BLOCK);
        store.write(H, V1, 0, &a, Some(&body_crcs(&a))).unwrap();
        let b = pattern(2, 2 * BLOCK);
        store.write(H, V1, 3 * BLOCK_BYTES, &b, None).unwrap();
        let all = store.read(H, V1, 0, SIZE).unwrap();
        assert_eq!(all, [a, b].concat());
        assert_eq!(store.info(H).unwrap().length, 5 * BLOCK_BYTES);
        store.verify(H).unwrap();
    });
}

#[test]
fn unaligned_writes_match_a_model() {
    let b = BLOCK_BYTES;
    // (offset, len): 1-byte writes, page and block straddles, a gap past the
    // length, an overwrite in the middle, a short tail with body CRCs.
    let writes: &[(u64, usize)] = &[
        (0, 1),
        (1, 1),
        (4095, 2),
        (b - 1, 2),
        (b - 100, 4096 + 200),
        (3 * b + 5, 10),
        (2 * b - 7, 2 * BLOCK + 14),
        (100, 3),
        (5 * b, BLOCK + 1),
        (7 * b + 4000, 3000),
        (SIZE - 1, 1),
    ];
    both_modes(|direct| {
        let (_dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        let mut model = Vec::new();
        for (i, &(offset, len)) in writes.iter().enumerate() {
            let data = pattern(i as u8 + 10, len);
            let crcs = body_crcs(&data);
            let body = (i % 2 == 0).then_some(&crcs[..]);
            store.write(H, V1, offset, &data, body).unwrap();
            model_write(&mut model, offset as usize, &data);
            assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), model, "after write {i} at {offset}+{len}");
        }
        assert_eq!(store.info(H).unwrap().length, SIZE);
        for (offset, len) in [(0, 1), (4095, 2), (b - 3, 6), (3 * b + 4, 12), (b + 17, 3 * BLOCK as u64)] {
            let got = store.read(H, V1, offset, len).unwrap();
            assert_eq!(got, model[offset as usize..(offset + len) as usize], "read {offset}+{len}");
        }
        store.verify(H).unwrap();
    });
}

#[test]
fn a_gap_reads_as_zeros() {
    both_modes(|direct| {
        let (dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        store.write(H, V1, 0, b"abc", None).unwrap();
        store.write(H, V1, 5 * BLOCK_BYTES + 9, b"xyz", None).unwrap();
        let mut expected = vec![0u8; 5 * BLOCK + 12];
        expected[..3].copy_from_slice(b"abc");
        expected[5 * BLOCK + 9..].copy_from_slice(b"xyz");
        assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), expected);
        store.verify(H).unwrap();
        drop(store);
        let store = reopen(dir.path(), direct);
        store.verify(H).unwrap();
        assert_eq!(store.read(H, V1, 0, SIZE).unwrap(), expected);
    });
}

#[test]
fn reads_clip_at_the_length() {
    let (_dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    assert_eq!(store.read(H, V1, 0, 10).unwrap(), b"");
    store.write(H, V1, 0, b"hello world", None).unwrap();
    assert_eq!(store.read(H, V1, 6, 100).unwrap(), b"world");
    assert_eq!(store.read(H, V1, 6, u64::MAX).unwrap(), b"world");
    assert_eq!(store.read(H, V1, 11, 5).unwrap(), b"");
    assert_eq!(store.read(H, V1, SIZE, 5).unwrap(), b"");
    assert!(matches!(store.read(H, V1, SIZE + 1, 5), Err(ChunkError::OutOfRange { .. })));
}

#[test]
fn versions_must_match_and_never_go_down() {
    let (_dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, b"v1", None).unwrap();
    let conflict = |r: Result<_, ChunkError>, have, want| match r {
        Err(ChunkError::VersionConflict { have: h, want: w, .. }) => assert_eq!((h.0, w.0), (have, want)),
        other => panic!("expected a version conflict, got {other:?}"),
    };
    conflict(store.read(H, V2, 0, 2).map(|_| ()), 1, 2);
    conflict(store.write(H, V2, 0, b"x", None), 1, 2);
    store.set_version(H, V1).unwrap();
    store.set_version(H, ChunkVersion(5)).unwrap();
    conflict(store.set_version(H, V2), 5, 2);
    conflict(store.read(H, V1, 0, 2).map(|_| ()), 5, 1);
    conflict(store.write(H, V1, 0, b"x", None), 5, 1);
    assert_eq!(store.read(H, ChunkVersion(5), 0, 2).unwrap(), b"v1");
    assert_eq!(store.info(H).unwrap().version, ChunkVersion(5));
}

#[test]
fn create_is_idempotent_and_checks_its_arguments() {
    let (_dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    store.write(H, V1, 0, b"kept", None).unwrap();
    store.create(H, V1, SIZE).unwrap();
    assert_eq!(store.read(H, V1, 0, 4).unwrap(), b"kept");
    assert!(matches!(store.create(H, V2, SIZE), Err(ChunkError::VersionConflict { .. })));
    assert!(matches!(store.create(H, V1, 2 * SIZE), Err(ChunkError::Exists)));
    for bad in [0, BLOCK_BYTES + 1, 2 << 30] {
        let err = store.create(ChunkHandle(9), V1, bad).unwrap_err();
        assert!(matches!(err, ChunkError::BadArgument(_)), "size {bad}");
        assert!(err.is_client_error());
    }
    assert!(store.info(ChunkHandle(9)).is_none());
}

#[test]
fn writes_past_the_chunk_size_are_refused() {
    let (_dir, store) = new_store(true);
    store.create(H, V1, SIZE).unwrap();
    for (offset, len) in [(SIZE, 1), (SIZE - 1, 2), (0, SIZE as usize + 1), (u64::MAX, 1)] {
        let r = store.write(H, V1, offset, &vec![1u8; len], None);
        assert!(matches!(r, Err(ChunkError::OutOfRange { .. })), "{offset}+{len}: {r:?}");
    }
    store.write(H, V1, SIZE, b"", None).unwrap();
    assert_eq!(store.info(H).unwrap().length, 0);
    store.write(H, V1, 0, &vec![1u8; SIZE as usize], None).unwrap();
    assert_eq!(store.info(H).unwrap().length, SIZE);
}

#[test]
fn unknown_chunks_are_named() {
    let (_dir, store) = new_store(true);
    let unknown = |r: Result<(), ChunkError>| assert!(matches!(r, Err(ChunkError::UnknownChunk(H))), "{r:?}");
    unknown(store.write(H, V1, 0, b"x", None));
    unknown(store.read(H, V1, 0, 1).map(|_| ()));
    unknown(store.set_version(H, V2));
    unknown(store.verify(H));
    unknown(store.sync(H));
    unknown(store.delete(H));
    unknown(store.quarantine(H));
    assert!(store.info(H).is_none());
}

#[test]
fn list_info_and_used_bytes() {
    let (_dir, store) = new_store(true);
    store.create(ChunkHandle(3), V1, SIZE).unwrap();
    store.create(ChunkHandle(1), V2, 2 * BLOCK_BYTES).unwrap();
    store.write(ChunkHandle(3), V1, 10, &[7; 100], None).unwrap();
    store.write(ChunkHandle(1), V2, 0, &[7; 5], None).unwrap();
    let list = store.list();
    assert_eq!(list.iter().map(|i| (i.handle.0, i.version.0, i.length, i.chunk_size)).collect::<Vec<_>>(), [(1, 2, 5, 2 * BLOCK_BYTES), (3, 1, 110, SIZE)]);
    assert_eq!(store.used_bytes(), 115);
    store.write(ChunkHandle(3), V1, 0, &[1; 50], None).unwrap();
    assert_eq!(store.used_bytes(), 115, "an overwrite adds nothing");
    store.delete(ChunkHandle(3)).unwrap();
    assert_eq!(store.used_bytes(), 5);
}

#[test]
fn cached_reads_serve_only_what_the_page_cache_holds_and_see_every_write() {
    both_modes(|direct| {
        let (_dir, store) = new_store(direct);
        store.create(H, V1, SIZE).unwrap();
        let a = pattern(3, 2 * BLOCK);
        store.write(H, V1, 0, &a, None).unwrap();
        // A blocking read brings the blocks into the page cache; a cached
        // read may then answer, and when it does it is exact.
        assert_eq!(store.read(H, V1, 100, 5000).unwrap(), a[100..5100]);
        let warm = store.read_cached(H, V1, 100, 5000);
        if let Some(got) = warm {
            assert_eq!(got.unwrap(), a[100..5100]);
        }
        // An overwrite (direct or not) is seen by the next cached read.
        let b = pattern(4, 4096);
        store.write(H, V1, 0, &b, None).unwrap();
        store.read(H, V1, 0, 8192).unwrap();
        if let Some(got) = store.read_cached(H, V1, 0, 8192) {
            assert_eq!(got.unwrap(), [&b[..], &a[4096..8192]].concat());
        }
        // The version and range checks apply as in `read`.
        assert!(matches!(store.read_cached(H, V2, 0, 10), Some(Err(_))));
        assert_eq!(store.read_cached(H, V1, SIZE, 10).map(Result::unwrap), Some(Vec::new()));
    });
}
