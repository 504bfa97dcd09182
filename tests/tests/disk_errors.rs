//! A disk that fails under acknowledged writes: one chunkserver's data
//! directory is a small ext4 on a loop device, shut down
//! (`EXT4_IOC_SHUTDOWN`, without flushing its journal) after every replica
//! acknowledged the bytes and before they were synced. From then on its
//! writes, fsyncs and reads are EIO, as on a dying disk; the chunkserver
//! process lives on.
//!
//! The writeback error must not be lost: the sync fails (EIO) and the
//! replica is reported damaged, so the master stops listing it, copies the
//! chunk elsewhere, and that chunkserver never serves it again.
//!
//! Semantics asserted: `FileWriter::fsync` does not retry, so the one in
//! flight when the disk failed returns EIO (the bytes are not durable on
//! every replica it asked). `close` (durable by default) asks the master
//! again while a sync fails with EIO and syncs the replicas it lists then:
//! the damaged one is no longer among them, so `close` succeeds with the
//! bytes durable on the two good replicas.
//!
//! Needs root (loop devices, mount); skipped otherwise. `DFS_TEST_SEED=N`
//! replays the data.

use std::collections::BTreeMap;
use std::time::Duration;

use dfs_client::{Client, CreateOptions, DataConfig, FileWriter};
use dfs_proto::wire::chunks::ChunkLocation;
use dfs_proto::{ErrorKind, NodeId};
use dfs_tests::faults::{self, *};
use dfs_tests::{say, ChunkserverProcess, Cluster};
use rand::rngs::StdRng;
use rand::SeedableRng;

const TAG: &str = "disk-errors";
const LIVE_WAIT: Duration = Duration::from_secs(20);
/// fsck healthy again (the copies of the damaged replicas made).
const HEAL: Duration = Duration::from_secs(20);
/// 1 MiB chunks: each file spans two, so a sync covers several replicas.
const CHUNK: u64 = MIB;
const FILE_BYTES: u64 = 3 * CHUNK / 2;

/// Master flags: replication passes every 250 ms.
const MASTER: &[&str] = &["--replication-interval-ms", "250"];

/// Like `faults::client`, but a sync that keeps failing gives up after 8 s
/// (the build before the fix keeps listing the damaged replica: close
/// would retry it for a minute).
fn client(master: &str) -> Client {
    let config = DataConfig {
        request_timeout: Duration::from_secs(4),
        retry_for: Duration::from_secs(8),
        master_wait: Duration::from_secs(10),
        location_ttl: Duration::from_secs(2),
        ..DataConfig::default()
    };
    dfs_tests::client_with(master, config)
}

async fn locate_all(client: &Client, path: &str) -> Vec<ChunkLocation> {
    let attr = client.stat(path).await.unwrap_or_else(|e| panic!("stat {path}: {e}"));
    client.master().locate(attr.inode, 0, 1024).await.unwrap_or_else(|e| panic!("locate {path}: {e}")).chunks
}

/// Writes `data` to a new file with replication 3 and flushes it: the
/// bytes are acknowledged by every replica (with the OS, not yet synced).
async fn write_unsynced(client: &Client, path: &str, data: &[u8]) -> FileWriter {
    let opts = CreateOptions { replication: Some(3), chunk_size_bytes: Some(CHUNK), ..Default::default() };
    let mut w = client.create(path, &opts).await.unwrap_or_else(|e| panic!("create {path}: {e}"));
    w.write(data).await.unwrap_or_else(|e| panic!("write {path}: {e}"));
    w.flush().await.unwrap_or_else(|e| panic!("flush {path}: {e}"));
    w
}

/// The chunks of `files` for which the master lists a replica on `node`.
async fn listed_on(client: &Client, files: &Files, node: NodeId) -> Vec<String> {
    let mut out = Vec::new();
    for path in files.keys() {
        for c in locate_all(client, path).await {
            if let Some(r) = c.replicas.iter().find(|r| r.node_id == node) {
                out.push(format!("{path} chunk {} ({:#x} v{}) on {}", c.index, c.handle.0, c.version.0, r.address));
            }
        }
    }
    out
}

/// Err while the master lists a replica on `node` for any chunk of `files`.
async fn not_listed(client: &Client, files: &Files, node: NodeId) -> Result<(), String> {
    match listed_on(client, files, node).await {
        still if still.is_empty() => Ok(()),
        still => Err(format!("the failed disk's replicas are still listed: {still:?}")),
    }
}

/// Panics if the chunkserver at `address` knows or serves any of `chunks`
/// (handle, version): a replica whose sync failed is set aside for good.
async fn serves_none(http: &reqwest::Client, address: &str, chunks: &[(u64, u64)], when: &str) {
    for &(handle, version) in chunks {
        let info = replica_info(http, address, handle).await.expect("ask the failed chunkserver");
        assert!(info.is_none(), "{when}: {address} still has chunk {handle:#x} as a replica: {info:?}");
        let (status, body) = read_replica(http, address, handle, version, 0, 4096).await.expect("read from the failed chunkserver");
        assert_ne!(status, 200, "{when}: {address} served {} bytes of chunk {handle:#x}", body.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_fsync_error_sets_the_replica_aside_and_the_chunk_is_copied_elsewhere() {
    if !dfs_tests::sys::is_root() {
        eprintln!("SKIPPED {TAG}: a loop-mounted ext4 needs root");
        return;
    }
    // Declared before the cluster: the processes die before it is unmounted.
    let disk = LoopExt4::mount(128).unwrap_or_else(|e| panic!("as root, a loop-mounted ext4 should mount: {e}"));
    let failing_dir = disk.path.join("cs0");
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c =
        Cluster::start_custom(3, MASTER, |i, dir| (if i == 0 { failing_dir.clone() } else { dir.join(format!("cs{i}")) }, vec![])).expect("start cluster");
    c.wait_live(3, LIVE_WAIT).await.expect("chunkservers live");
    let failing = c.chunkservers[0].url.clone();
    let client = client(&c.master.url);
    client.mkdir("/d", true, None).await.expect("mkdir");

    // Two files of 1.5 chunks, on all three nodes (replication 3 of 3).
    let files: Files = ["/d/fsynced", "/d/closed"].iter().map(|p| (p.to_string(), random_bytes(&mut rng, FILE_BYTES as usize))).collect();
    let mut writers = BTreeMap::new();
    for (path, data) in &files {
        writers.insert(path.clone(), write_unsynced(&client, path, data).await);
    }
    let mut chunks = Vec::new();
    let mut node = None;
    for path in files.keys() {
        for loc in locate_all(&client, path).await {
            let r = loc.replicas.iter().find(|r| r.address == failing).unwrap_or_else(|| panic!("{path}: no replica on {failing}: {loc:?}"));
            node = Some(r.node_id);
            chunks.push((loc.handle.0, loc.version.0));
        }
    }
    let node = node.expect("a chunk on the failing node");
    // A fourth node, so each chunk can have three good replicas again.
    let spare = ChunkserverProcess::start(&c.master.url, &c.dir.path().join("cs3"), dfs_tests::cluster::FAST_CHUNKSERVER).expect("start a 4th chunkserver");
    c.chunkservers.push(spare);
    c.wait_live(4, LIVE_WAIT).await.expect("4 chunkservers live");

    disk.shut_down().expect("shut the ext4 down");
    say!(TAG, "{} chunks acknowledged by every replica, none synced; the disk under {failing} is shut down", chunks.len());

    // The fsync in flight fails: one replica could not make the bytes durable.
    let mut fsynced = writers.remove("/d/fsynced").expect("writer");
    let err = fsynced.fsync().await.expect_err("fsync must fail: a replica's disk failed before the bytes were synced");
    assert_eq!(err.kind, ErrorKind::EIO, "fsync: {err}");
    say!(TAG, "fsync failed as it must: {err}");
    // The replica whose EIO the client got was reported bad before that
    // reply: unlisted at once. A sync the client dropped on the first error
    // may leave its chunk to the next full report (2 s), which no longer
    // names the replica set aside.
    let one: Files = files.iter().filter(|(p, _)| *p == "/d/fsynced").map(|(p, d)| (p.clone(), d.clone())).collect();
    let still = listed_on(&client, &one, node).await;
    assert!((still.len() as u64) < FILE_BYTES.div_ceil(CHUNK), "the replica whose fsync failed is still listed at once: {still:?}");
    wait_for("the master lists no replica on the failed disk", Duration::from_secs(3), || not_listed(&client, &one, node)).await;

    // Durable close asks the master again, which lists only good replicas
    // now: they sync and close succeeds. The other file's close meets the
    // failed disk first, has it reported the same way, and succeeds too.
    fsynced.close().await.unwrap_or_else(|e| panic!("close after the failed fsync: {e} (the master still lists the replica that cannot sync?)"));
    let closed = writers.remove("/d/closed").expect("writer").close().await;
    closed.unwrap_or_else(|e| panic!("durable close with a failed disk under one replica: {e}"));
    say!(TAG, "both files closed (durable on the replicas the master lists)");
    not_listed(&client, &files, node).await.unwrap_or_else(|e| panic!("after the closes: {e}"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client");
    serves_none(&http, &failing, &chunks, "after the failed syncs").await;

    // Copied elsewhere: three good replicas of each chunk, none on the
    // failed disk, every acknowledged byte on each (read straight from it).
    wait_healthy(&c.master.url, HEAL, true).await;
    let inv = Invariants::new();
    let checked = check_replicas(&faults::client(&c.master.url), &files, &inv, Some(3)).await.expect("every replica holds the bytes");
    for (path, want) in &files {
        let fresh = faults::client(&c.master.url);
        let attr = fresh.stat(path).await.unwrap_or_else(|e| panic!("stat {path}: {e}"));
        assert_eq!(attr.size, want.len() as u64, "{path}: committed size");
        let got = fresh.read_at(&attr, 0, attr.size).await.unwrap_or_else(|e| panic!("read {path}: {e}"));
        assert!(first_diff(&got, want).is_none(), "{path}: read other bytes than acknowledged at {:?}", first_diff(&got, want));
    }
    // Its full reports (every 2 s) must not bring the replicas back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    not_listed(&client, &files, node).await.unwrap_or_else(|e| panic!("after a full report: {e}"));
    serves_none(&http, &failing, &chunks, "after a full report").await;
    say!(TAG, "healed: {checked} replicas checked byte for byte, none on {failing}");
}
