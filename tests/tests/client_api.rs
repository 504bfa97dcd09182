//! The client library against a real cluster: record append from several
//! clients, a write that outlives a dead replica, the read-ahead reader,
//! streamed listings and the file-system calls.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use dfs_client::{Client, CreateOptions, DataConfig};
use dfs_proto::wire::namespace::FileKind;
use dfs_proto::ErrorKind;
use dfs_tests::{seed, Cluster};
use futures::{StreamExt, TryStreamExt};
use rand::{Rng, RngCore, SeedableRng};

const MIB: u64 = 1 << 20;

fn cluster(n: usize) -> Cluster {
    Cluster::start_with(n, &["--default-chunk-size-bytes", "1048576"]).expect("cluster")
}

/// A record that says who wrote it: writer, sequence number, then a
/// pattern derived from both, so a torn or mixed record is recognisable.
fn record(writer: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut r = Vec::with_capacity(len);
    r.extend_from_slice(&writer.to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    let mut x = (writer as u64) << 32 | seq as u64;
    while r.len() < len {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        r.push((x >> 56) as u8);
    }
    r.truncate(len);
    r
}

#[tokio::test]
async fn concurrent_record_appends_never_interleave() {
    let c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    let url = c.master.url.clone();
    let setup = dfs_tests::client(&url);
    setup.create("/log", &CreateOptions::default()).await.unwrap().close().await.unwrap();
    let seed = seed();

    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = dfs_tests::client(&url); // one client per appender
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ w as u64);
            let mut placed = Vec::new();
            for seq in 0..40u32 {
                let len = rng.random_range(8..=256 * 1024); // up to a quarter chunk
                let offset = client.append_record("/log", Bytes::from(record(w, seq, len))).await.expect("append");
                placed.push((offset, w, seq, len));
            }
            placed
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let attr = setup.stat("/log").await.unwrap();
    let mut reader = setup.open("/log").await.unwrap();
    let mut end = 0;
    for (offset, w, seq, len) in &all {
        assert!(*offset >= end, "record {w}/{seq} at {offset} overlaps the one before (ends at {end})");
        assert_eq!(offset / MIB, (offset + *len as u64 - 1) / MIB, "record {w}/{seq} crosses a chunk boundary");
        end = offset + *len as u64;
        let got = reader.read_at(*offset, *len as u64).await.unwrap();
        assert!(got[..] == record(*w, *seq, *len)[..], "record {w}/{seq} at {offset} is not whole");
    }
    assert_eq!(all.len(), 160);
    assert!(attr.size >= end);
    let too_big = setup.append_record("/log", Bytes::from(vec![0u8; 256 * 1024 + 1])).await.unwrap_err();
    assert_eq!(too_big.kind, ErrorKind::EINVAL);
}

/// Streams 24 MiB into one 32 MiB chunk and kills the lease's primary (or a
/// secondary) after the first 8 MiB: the write must go on through the
/// master (new lease, version bumped on the survivors) and read back exact.
async fn write_through_a_death(c: &mut Cluster, client: &Client, path: &str, kill_primary: bool, rng: &mut rand::rngs::StdRng) {
    let mut data = vec![0u8; 24 * MIB as usize];
    rng.fill_bytes(&mut data);
    let opts = CreateOptions { replication: Some(3), chunk_size_bytes: Some(32 * MIB), ..Default::default() };
    let mut w = client.create(path, &opts).await.unwrap();
    let inode = w.attr().inode;
    w.write(&data[..8 * MIB as usize]).await.unwrap();
    w.flush().await.unwrap();
    let lease = client.master().lease(inode, 0).await.unwrap();
    let victim = if kill_primary { &lease.primary } else { &lease.secondaries[0] };
    let i = c.chunkservers.iter().position(|cs| cs.url == victim.address).expect("victim is ours");
    eprintln!("{path}: killing {} (primary: {kill_primary})", victim.address);
    c.chunkservers[i].kill9();
    for piece in data[8 * MIB as usize..].chunks(MIB as usize / 2) {
        w.write(piece).await.expect("write goes on");
    }
    let attr = w.close().await.expect("close");
    assert_eq!(attr.size, data.len() as u64);
    let back = client.open(path).await.unwrap().read_at(0, attr.size).await.unwrap();
    assert!(back[..] == data[..], "{path}: read back differs");
    let chunk = &client.master().locate(inode, 0, 1).await.unwrap().chunks[0];
    assert!(chunk.version > lease.version, "{path}: the version moved past the lease the dead node had");
    // The two survivors are current (and a re-replicated copy may join them).
    assert!(chunk.replicas.len() >= 2, "{path}: {chunk:?}");
    assert!(chunk.replicas.iter().all(|r| r.address != victim.address));
}

#[tokio::test]
async fn a_streamed_write_survives_its_primary_or_a_secondary_dying() {
    let mut c = cluster(5);
    c.wait_live(5, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client(&c.master.url);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    write_through_a_death(&mut c, &client, "/secondary", false, &mut rng).await;
    // The next file's replicas must all be placed on live nodes.
    c.wait_live(4, Duration::from_secs(15)).await.unwrap();
    write_through_a_death(&mut c, &client, "/primary", true, &mut rng).await;
}

#[tokio::test]
async fn the_reader_serves_sequential_and_random_reads_exactly() {
    let c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client(&c.master.url);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let mut data = vec![0u8; (10 * MIB + 777) as usize];
    rng.fill_bytes(&mut data);
    let mut w = client.create("/r", &CreateOptions::default()).await.unwrap();
    // Unaligned writes of odd sizes, gathered by the writer.
    for piece in data.chunks(100_003) {
        w.write(piece).await.unwrap();
    }
    w.close().await.unwrap();

    let mut r = client.open("/r").await.unwrap();
    let mut seq = Vec::new();
    loop {
        let b = r.read(300_001).await.unwrap();
        if b.is_empty() {
            break;
        }
        seq.extend_from_slice(&b);
    }
    assert!(seq == data, "sequential reads differ");
    for _ in 0..50 {
        let off = rng.random_range(0..data.len() as u64 + 10);
        let len = rng.random_range(0..3 * MIB);
        let got = r.read_at(off, len).await.unwrap();
        let end = (off + len).min(data.len() as u64) as usize;
        let want = if (off as usize) < end { &data[off as usize..end] } else { &[][..] };
        assert!(got[..] == *want, "read_at({off}, {len}) differs");
    }
    // Writes at offsets, overlapping what is still in flight, land in order.
    let mut w = client.open_write("/r", false).await.unwrap();
    w.write_at(5, b"abc").await.unwrap();
    w.write_at(6, b"XY").await.unwrap();
    w.flush().await.unwrap();
    let got = client.open("/r").await.unwrap().read_at(5, 3).await.unwrap();
    assert_eq!(&got[..], b"aXY");
}

#[tokio::test]
async fn listings_stream_every_page_and_calls_map_to_errnos() {
    let c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client(&c.master.url);
    client.mkdir("/a/b", true, None).await.unwrap();
    let names: Vec<String> = (0..2500).map(|i| format!("f{i:05}")).collect();
    let creates = names.iter().map(|n| {
        let client = client.clone();
        let path = format!("/a/b/{n}");
        async move { client.create(&path, &CreateOptions::default()).await?.close().await }
    });
    futures::stream::iter(creates).buffer_unordered(32).try_collect::<Vec<_>>().await.unwrap();
    let listed: Vec<String> = client.list("/a/b").map_ok(|e| e.name).try_collect().await.unwrap();
    assert_eq!(listed, names, "2,500 entries over 3 pages, in order, once each");

    client.symlink("/a/link", "/a/b/f00001").await.unwrap();
    assert_eq!(client.readlink("/a/link").await.unwrap(), "/a/b/f00001");
    assert_eq!(client.stat("/a/link").await.unwrap().kind, FileKind::Symlink);
    let a = client.set_times("/a/b/f00001", Some(1_000_000_007), Some(2_000_000_009)).await.unwrap();
    assert_eq!((a.atime_ns, a.mtime_ns), (1_000_000_007, 2_000_000_009));
    assert_eq!(client.set_replication("/a/b/f00001", 2).await.unwrap().replication, 2);
    client.rename("/a/b/f00001", "/a/moved", true).await.unwrap();
    let exists = client.rename("/a/b/f00002", "/a/moved", true).await.unwrap_err();
    assert_eq!(exists.kind, ErrorKind::EEXIST);
    assert_eq!(client.delete("/a", false).await.unwrap_err().kind, ErrorKind::ENOTEMPTY);
    assert_eq!(client.open("/a").await.err().map(|e| e.kind), Some(ErrorKind::EISDIR));
    assert_eq!(client.stat("/nope").await.unwrap_err().kind, ErrorKind::ENOENT);
    assert!(client.try_stat("/nope").await.unwrap().is_none());
    client.delete("/a", true).await.unwrap();
    assert!(client.try_stat("/a").await.unwrap().is_none());
}

#[tokio::test]
async fn reads_fail_over_and_relocate_when_the_cached_replica_dies() {
    let mut c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client(&c.master.url);
    let data: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
    let mut w = client.create("/x", &CreateOptions::default()).await.unwrap();
    w.write(&data).await.unwrap();
    w.close().await.unwrap();
    let mut r = client.open("/x").await.unwrap();
    assert!(r.read_at(0, 3 * MIB).await.unwrap()[..] == data[..]); // locations now cached
    c.chunkservers[1].kill9();
    let mut seen = HashSet::new();
    for _ in 0..5 {
        let got = r.read_at(0, 3 * MIB).await.expect("fail-over read");
        seen.insert(got[..] == data[..]);
    }
    assert_eq!(seen, HashSet::from([true]));
}

/// A new file of `len` random bytes, written in one call; its bytes.
async fn put_random(client: &Client, path: &str, len: u64, rng: &mut impl RngCore) -> Vec<u8> {
    let mut data = vec![0u8; len as usize];
    rng.fill_bytes(&mut data);
    let mut w = client.create(path, &CreateOptions::default()).await.unwrap();
    w.write(&data).await.unwrap();
    w.close().await.unwrap();
    data
}

#[tokio::test]
async fn small_reads_on_the_callers_thread_match_and_give_way_when_they_cannot() {
    let c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    // Over HTTP: short-circuit reads are tested below.
    let client = dfs_tests::client_with(&c.master.url, DataConfig { local_reads: false, ..DataConfig::default() });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let data = put_random(&client, "/small", 3 * MIB + 5000, &mut rng).await;
    let data = std::sync::Arc::new(data);
    let r = client.open("/small").await.unwrap();
    // Blocking calls, off the runtime's threads.
    let mut r = tokio::task::spawn_blocking(move || {
        let mut r = r;
        assert!(r.read_now(4096, 4096).is_none(), "no location cached yet: the async path must go");
        r
    })
    .await
    .unwrap();
    for chunk in 0..4 {
        // Random reads (no read-ahead window) that cache every location.
        assert_eq!(r.read_at(chunk * MIB + 7, 10).await.unwrap().len(), 10);
    }
    let r = tokio::task::spawn_blocking({
        let data = data.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed() ^ 1);
        move || {
            let mut r = r;
            for _ in 0..200 {
                let off = rng.random_range(0..data.len() as u64);
                let len = rng.random_range(1..=65536u64).min(MIB - off % MIB);
                let got = r.read_now(off, len).expect("a cached small read is served on this thread");
                let end = (off + len).min(data.len() as u64) as usize;
                assert!(got[..] == data[off as usize..end], "read_now({off}, {len}) differs");
            }
            assert!(r.read_now(MIB - 10, 20).is_none(), "a read across a chunk boundary is not taken");
            assert_eq!(r.read_now(data.len() as u64, 10).map(|b| b.len()), Some(0), "at the end of the file");
            r
        }
    })
    .await
    .unwrap();
    // With every chunkserver frozen the fast path gives up within its
    // short timeout instead of holding the calling thread.
    for cs in &c.chunkservers {
        cs.sigstop();
    }
    let started = std::time::Instant::now();
    let (r, got) = tokio::task::spawn_blocking(move || {
        let mut r = r;
        let got = r.read_now(12345 + MIB, 100);
        (r, got)
    })
    .await
    .unwrap();
    assert!(got.is_none() && started.elapsed() < Duration::from_secs(3), "gave up after {:?}", started.elapsed());
    for cs in &c.chunkservers {
        cs.sigcont();
    }
    let mut r = r;
    assert!(r.read_at(12345 + MIB, 100).await.unwrap()[..] == data[(12345 + MIB) as usize..(12445 + MIB) as usize]);
}

#[tokio::test]
async fn reads_of_replicas_on_this_host_go_through_passed_descriptors_and_check_every_block() {
    let c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client(&c.master.url);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let data = put_random(&client, "/local", 3 * MIB + 5000, &mut rng).await;
    let mut r = client.open("/local").await.unwrap();
    for chunk in 0..4 {
        assert_eq!(r.read_at(chunk * MIB + 7, 10).await.unwrap().len(), 10); // caches the locations
    }
    let data = std::sync::Arc::new(data);
    let reads: Vec<(u64, u64)> = (0..200)
        .map(|_| {
            let off = rng.random_range(0..data.len() as u64);
            (off, rng.random_range(1..=65536u64).min(MIB - off % MIB))
        })
        .collect();
    let check = move |r: &mut dfs_client::FileReader, data: &[u8]| {
        for &(off, len) in &reads {
            let got = r.read_now(off, len).expect("a cached small read is served on this thread");
            let end = (off + len).min(data.len() as u64) as usize;
            assert!(got[..] == data[off as usize..end], "read_now({off}, {len}) differs");
        }
    };
    let (r, check) = tokio::task::spawn_blocking({
        let data = data.clone();
        move || {
            check(&mut r, &data);
            (r, check)
        }
    })
    .await
    .unwrap();
    // Frozen chunkservers cannot answer HTTP: the same reads, still served
    // at once, come through the descriptors they passed.
    for cs in &c.chunkservers {
        cs.sigstop();
    }
    let started = std::time::Instant::now();
    let r = tokio::task::spawn_blocking({
        let data = data.clone();
        move || {
            let mut r = r;
            check(&mut r, &data);
            r
        }
    })
    .await
    .unwrap();
    let took = started.elapsed();
    // A read on the async path (sequential reads and their read-ahead take
    // it) goes through the same descriptors: over HTTP it would wait for
    // the frozen chunkservers until the request timeout (a minute).
    let mut r = r;
    let whole = tokio::time::timeout(Duration::from_secs(5), r.read_at(0, data.len() as u64)).await;
    for cs in &c.chunkservers {
        cs.sigcont();
    }
    assert!(took < Duration::from_millis(400), "200 reads took {took:?}: not short-circuit reads");
    let whole = whole.expect("an async read with every chunkserver frozen: not a short-circuit read").unwrap();
    assert!(whole[..] == data[..], "the async short-circuit read differs");

    // Another client overwrites bytes in place; the reader's snapshot no
    // longer matches them, so it must not serve the old ones.
    let fresh = vec![0xa5u8; 3000];
    let other = dfs_tests::client(&c.master.url);
    let mut w = other.open_write("/local", false).await.unwrap();
    w.write_at(MIB + 70_000, &fresh).await.unwrap();
    w.close().await.unwrap();
    let (mut r, got) = tokio::task::spawn_blocking(move || {
        let mut r = r;
        let got = r.read_now(MIB + 69_000, 5000);
        (r, got)
    })
    .await
    .unwrap();
    let mut expected = data[(MIB + 69_000) as usize..(MIB + 74_000) as usize].to_vec();
    expected[1000..4000].copy_from_slice(&fresh);
    if let Some(got) = got {
        assert!(got[..] == expected[..], "read_now served bytes from before the overwrite");
    }
    assert!(r.read_at(MIB + 69_000, 5000).await.unwrap()[..] == expected[..]);

    // A byte flipped on disk in every replica of chunk 2 (through the page
    // cache, which the passed descriptors read): the block fails its CRC,
    // so no read on this thread may return it.
    let inode = r.attr().inode;
    let loc = client.master().locate(inode, 2, 1).await.unwrap().chunks.remove(0);
    for i in 0..c.chunkservers.len() {
        dfs_tests::faults::flip_byte(&dfs_tests::faults::data_path(&c.cs_dir(i), loc.handle.0), 1000, 0xff).unwrap();
    }
    let got = tokio::task::spawn_blocking(move || r.read_now(2 * MIB + 990, 20)).await.unwrap();
    assert!(got.is_none(), "a block that fails its CRC was served: {got:?}");
}

/// The master client that FUSE threads use blocks its thread instead of
/// waiting on the runtime; its answers and errors must be the async one's.
#[tokio::test]
async fn a_blocking_master_client_answers_as_the_async_one() {
    use dfs_proto::wire::namespace::{CreateRequest, EntryRef, MkdirRequest};
    let c = cluster(1);
    c.wait_live(1, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client_with(&c.master.url, DataConfig { master_wait: Duration::from_millis(300), ..DataConfig::default() });
    let blocking = client.blocking_master();
    let checked = std::thread::spawn(move || {
        let m = blocking;
        futures::executor::block_on(async {
            let dir = m.mkdir(&MkdirRequest { at: EntryRef::path("/d"), ..Default::default() }).await.unwrap();
            let create = CreateRequest { at: EntryRef::child(dir.attr.inode, "f"), exclusive: true, ..Default::default() };
            let made = m.create(&create).await.unwrap();
            assert_eq!(m.stat("/d/f").await.unwrap().inode, made.attr.inode, "a GET with a query");
            assert_eq!(m.create(&create).await.unwrap_err().kind, ErrorKind::EEXIST);
            assert_eq!(m.stat("/nope").await.unwrap_err().kind, ErrorKind::ENOENT);
            assert_eq!(m.unlink(EntryRef::path("/d")).await.unwrap_err().kind, ErrorKind::EISDIR);
            m.unlink(EntryRef::path("/d/f")).await.unwrap();
            m
        })
    })
    .join()
    .unwrap();
    assert!(client.try_stat("/d/f").await.unwrap().is_none(), "the async client sees the blocking one's changes");
    // With the master gone, a call gives up after the wait, with EIO.
    drop(c);
    let started = std::time::Instant::now();
    let gone = std::thread::spawn(move || futures::executor::block_on(checked.stat("/d"))).join().unwrap();
    assert_eq!(gone.unwrap_err().kind, ErrorKind::EIO);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// `FileWriter::close` makes what it wrote durable: each chunkserver holding
/// a replica of the file's chunks syncs each of them once before the close
/// returns; an append syncs only the chunk it wrote to; with the client's
/// `sync_on_close` off nothing is synced (and the bytes are there all the same).
#[tokio::test]
async fn close_syncs_every_replica_of_the_chunks_written_and_only_those() {
    use dfs_tests::syncs::{deltas, replica_fsyncs, replicas_held};
    let c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client(&c.master.url);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let mut data = vec![0u8; 3 * MIB as usize + 1000]; // four 1 MiB chunks
    rng.fill_bytes(&mut data);
    let three = CreateOptions { replication: Some(3), ..Default::default() };

    let before = replica_fsyncs(&c).await.unwrap();
    let mut w = client.create("/durable", &three).await.unwrap();
    w.write(&data).await.unwrap();
    w.close().await.unwrap();
    let synced = deltas(&before, &replica_fsyncs(&c).await.unwrap());
    assert_eq!(synced, replicas_held(&c, "/durable", 0).await.unwrap(), "syncs per chunkserver = replicas it holds");
    assert_eq!(synced.iter().sum::<u64>(), 12, "4 chunks x 3 replicas");

    let before = replica_fsyncs(&c).await.unwrap();
    let mut w = client.open_write("/durable", true).await.unwrap();
    w.write(&[7u8; 1000]).await.unwrap();
    w.close().await.unwrap();
    data.extend_from_slice(&[7u8; 1000]);
    let synced = deltas(&before, &replica_fsyncs(&c).await.unwrap());
    assert_eq!(synced, replicas_held(&c, "/durable", 3).await.unwrap(), "only the last chunk's replicas");
    assert_eq!(synced.iter().sum::<u64>(), 3);

    let lazy = dfs_tests::client_with(&c.master.url, DataConfig { sync_on_close: false, ..DataConfig::default() });
    let before = replica_fsyncs(&c).await.unwrap();
    let mut w = lazy.create("/lazy", &three).await.unwrap();
    w.write(&data).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(deltas(&before, &replica_fsyncs(&c).await.unwrap()), [0, 0, 0], "sync_on_close off: no sync");
    for path in ["/durable", "/lazy"] {
        let mut r = client.open(path).await.unwrap();
        assert!(r.read(data.len() as u64 + 1).await.unwrap() == data, "{path} reads back");
    }
}

/// A replica whose node died after taking the bytes does not make the
/// close fail: the close asks the master again until the dead node is
/// dropped, and every live replica is synced.
#[tokio::test]
async fn close_syncs_the_live_replicas_when_one_node_died_after_the_writes() {
    use dfs_tests::syncs::{deltas, node_fsyncs, replica_fsyncs, replicas_held};
    let mut c = cluster(3);
    c.wait_live(3, Duration::from_secs(15)).await.unwrap();
    let client = dfs_tests::client(&c.master.url);
    let data = vec![5u8; 2 * MIB as usize];
    let mut w = client.create("/f", &CreateOptions { replication: Some(3), ..Default::default() }).await.unwrap();
    w.write(&data).await.unwrap();
    w.flush().await.unwrap(); // on every replica, committed, not synced
    let held = replicas_held(&c, "/f", 0).await.unwrap();
    assert_eq!(held, [2, 2, 2]);
    let before = replica_fsyncs(&c).await.unwrap();
    c.chunkservers[0].kill9();
    tokio::time::timeout(Duration::from_secs(30), w.close()).await.expect("close within 30 s").expect("close");
    let mut after = Vec::new();
    for cs in &c.chunkservers[1..] {
        after.push(node_fsyncs(&cs.url).await.unwrap());
    }
    assert_eq!(deltas(&before[1..], &after), held[1..], "both live replicas of both chunks synced");
}
