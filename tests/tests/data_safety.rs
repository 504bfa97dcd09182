//! Acknowledged data under the failures that kill -9 does not show: a disk
//! that lost its last writes (a replica back at the current version with an
//! old length), a version bump that times out and completes later, a
//! master that restarts and hears from one replica first, and a chunk that
//! keeps being written after one of its replicas died.
//!
//! Lost writes are simulated honestly: the chunkserver is stopped
//! (SIGSTOP), its data directory copied, writes go on and are acknowledged,
//! then it is killed, the copy restored and the process restarted: the
//! state a disk that lost its last writes leaves behind.
//!
//! `DFS_TEST_SEED=N` replays a test's data.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_client::{Client, CreateOptions};
use dfs_proto::wire::chunks::{ChunkLocation, LeaseRequest};
use dfs_tests::faults::{self, *};
use dfs_tests::{say, Api, Cluster};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LIVE_WAIT: Duration = Duration::from_secs(20);
const HEAL: Duration = Duration::from_secs(60);
const KIB: usize = 1024;

async fn cluster(n: usize, master: &[&str]) -> Cluster {
    let c = Cluster::start_custom(n, master, |i, dir| (dir.join(format!("cs{i}")), Vec::new())).expect("start cluster");
    c.wait_live(n, LIVE_WAIT).await.expect("chunkservers live");
    c
}

async fn create(client: &Client, path: &str, replication: u16, chunk_size: u64) -> dfs_client::FileWriter {
    client.mkdir("/d", true, None).await.expect("mkdir");
    let opts = CreateOptions { replication: Some(replication), chunk_size_bytes: Some(chunk_size), ..Default::default() };
    client.create(path, &opts).await.unwrap_or_else(|e| panic!("create {path}: {e}"))
}

async fn locate(client: &Client, path: &str) -> ChunkLocation {
    let attr = client.stat(path).await.unwrap_or_else(|e| panic!("stat {path}: {e}"));
    let mut chunks = client.master().locate(attr.inode, 0, 1).await.unwrap_or_else(|e| panic!("locate {path}: {e}")).chunks;
    assert!(!chunks.is_empty(), "{path} has no chunk");
    chunks.remove(0)
}

/// Reads the whole file with a fresh client (no cached locations).
async fn read_fresh(master: &str, path: &str) -> Vec<u8> {
    let client = faults::client(master);
    let attr = client.stat(path).await.unwrap_or_else(|e| panic!("stat {path}: {e}"));
    client.read_at(&attr, 0, attr.size).await.unwrap_or_else(|e| panic!("read {path}: {e}")).to_vec()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().expect("run cp");
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

/// Replaces `dir` with `copy` (the disk lost what was written since).
fn restore_dir(copy: &Path, dir: &Path) {
    std::fs::remove_dir_all(dir).expect("remove data dir");
    copy_dir(copy, dir);
}

/// Waits until a restarted chunkserver serves again, i.e. the master has
/// taken its first report (503 until then). A listing made before that is
/// the master's memory of the previous process (see the closing note on
/// clients holding such a location).
async fn registered(url: &str) {
    let http = reqwest::Client::new();
    wait_for("the restarted chunkserver registered", LIVE_WAIT, || async {
        match http.get(format!("{url}/v1/chunks/0/data?version=1&offset=0&length=1")).send().await {
            Ok(r) if r.status().as_u16() != 503 => Ok(()),
            other => Err(format!("{:?}", other.map(|r| r.status()))),
        }
    })
    .await;
}

/// For `window`, checks that every replica the master lists holds exactly
/// `want` (straight from its chunkserver) and that a fresh client reads
/// `want`; returns how many listings named `watched`.
async fn never_served_wrong(c: &Cluster, path: &str, want: &[u8], watched: &str, window: Duration) -> usize {
    let (http, client) = (reqwest::Client::new(), faults::client(&c.master.url));
    let (until, mut named) = (Instant::now() + window, 0);
    while Instant::now() < until {
        let loc = locate(&client, path).await;
        for r in &loc.replicas {
            let (status, got) = read_replica(&http, &r.address, loc.handle.0, loc.version.0, 0, want.len() as u64).await.expect("read replica");
            if status == 409 || status == 503 {
                // Refused, as it must be: the version moved on since the
                // listing (a copy's fence), or a restarted node has not
                // reported its replicas yet.
                continue;
            }
            named += (r.address == watched) as usize;
            let at = first_diff(&got, want);
            assert!(
                status == 200 && at.is_none(),
                "the master lists {} at v{} holding other bytes (status {status}, {} bytes, first difference at {at:?})",
                r.address,
                loc.version.0,
                got.len()
            );
        }
        let got = read_fresh(&c.master.url, path).await;
        assert!(first_diff(&got, want).is_none(), "a client read other bytes than acknowledged (first difference at {:?})", first_diff(&got, want));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    named
}

/// Waits for fsck to pass, then checks every listed replica byte for byte.
async fn heals_with_every_replica_whole(c: &Cluster, path: &str, want: &[u8], replicas: usize) {
    wait_healthy(&c.master.url, HEAL, true).await;
    let client = faults::client(&c.master.url);
    let loc = locate(&client, path).await;
    assert_eq!(loc.replicas.len(), replicas, "{loc:?}");
    never_served_wrong(c, path, want, "", Duration::from_millis(300)).await;
}

// ---------------------------------------------------------------------------

/// A replica whose disk lost its last writes comes back at the current
/// version with its old length and every CRC matching. It must never be
/// listed or read (before: listed current, and reads past its length came
/// back as zeros while fsck said healthy); it is replaced by a good copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_lost_its_last_writes_is_never_served_and_is_replaced() {
    let tag = "lost-writes";
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = cluster(3, FAULT_MASTER).await;
    let client = faults::client(&c.master.url);
    let (first, second) = (random_bytes(&mut rng, 512 * KIB), random_bytes(&mut rng, 512 * KIB));
    let mut w = create(&client, "/d/f", 3, 4 << 20).await;
    w.write(&first).await.expect("write");
    w.flush().await.expect("flush");
    let before = locate(&client, "/d/f").await;
    let victim = c.index_of(&before.replicas[0].address).expect("ours");
    let (victim_url, dir) = (c.chunkservers[victim].url.clone(), c.cs_dir(victim));
    let backup = c.dir.path().join("lost-writes-backup");
    c.chunkservers[victim].sigstop();
    copy_dir(&dir, &backup);
    c.chunkservers[victim].sigcont();
    w.write(&second).await.expect("write");
    w.close().await.expect("close");
    let want: Vec<u8> = [first, second].concat();
    let after = locate(&client, "/d/f").await;
    assert_eq!(after.version, before.version, "the second write took a new lease: the restored replica would be stale by version, not by length");
    say!(
        tag,
        "chunk {} v{} written to {} bytes (committed {}); {victim_url} loses the last {} bytes",
        after.handle,
        after.version.0,
        want.len(),
        after.length,
        512 * KIB
    );
    c.chunkservers[victim].kill9();
    restore_dir(&backup, &dir);
    c.chunkservers[victim].restart(true).expect("restart");
    registered(&c.chunkservers[victim].url).await;
    let http = reqwest::Client::new();
    let info = replica_info(&http, &victim_url, after.handle.0).await.expect("info");
    assert_eq!(info, Some((after.version.0, 512 * KIB as u64)), "the restored replica is at the current version with its old length");
    // Through its registration, full reports and the monitor's passes.
    let named = never_served_wrong(&c, "/d/f", &want, &victim_url, Duration::from_secs(6)).await;
    say!(tag, "{named} listings named {victim_url} (only ever with every byte)");
    heals_with_every_replica_whole(&c, "/d/f", &want, 3).await;
}

/// A power cut drops an overwrite a replica acknowledged but had not
/// synced: its data and CRC slots go back to what they were, at the same
/// version and length, and only the dirty flag its chunkserver made durable
/// before taking the write survives. The master must not serve it (before
/// the flag: listed current with the old bytes, every CRC matching).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_lost_an_unsynced_overwrite_in_a_power_cut_is_not_served() {
    let tag = "lost-overwrite";
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = cluster(3, FAULT_MASTER).await;
    let client = faults::client(&c.master.url);
    let (old, new) = (random_bytes(&mut rng, 256 * KIB), random_bytes(&mut rng, 64 * KIB));
    let mut w = create(&client, "/d/o", 3, 1 << 20).await;
    w.write(&old).await.expect("write");
    let attr = w.close().await.expect("close"); // synced: clean
    let before = locate(&client, "/d/o").await;
    let victim = c.index_of(&before.replicas[0].address).expect("ours");
    let (victim_url, dir) = (c.chunkservers[victim].url.clone(), c.cs_dir(victim));
    let backup = c.dir.path().join("lost-overwrite-backup");
    c.chunkservers[victim].sigstop();
    copy_dir(&dir, &backup);
    c.chunkservers[victim].sigcont();
    client.write_at(&attr, 64 * KIB as u64, Bytes::from(new.clone())).await.expect("overwrite"); // acknowledged, not synced
    let after = locate(&client, "/d/o").await;
    assert_eq!(after.version, before.version, "the overwrite took a new lease: the replica would be stale by version");
    let mut want = old.clone();
    want[64 * KIB..128 * KIB].copy_from_slice(&new);
    // The power cut: data and slots as before the overwrite, the header's
    // dirty flag as made durable (format 2, byte 5; header CRC at 52..56).
    c.chunkservers[victim].kill9();
    let h = after.handle.0;
    let mut meta = std::fs::read(meta_path(&backup, h)).expect("old metadata");
    let now_meta = std::fs::read(meta_path(&dir, h)).expect("metadata");
    assert_eq!(now_meta[5], 1, "the chunkserver recorded the replica dirty before taking the overwrite");
    meta[5] = 1;
    let crc = crc32fast::hash(&meta[..52]);
    meta[52..56].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(meta_path(&dir, h), &meta).expect("write metadata");
    std::fs::copy(data_path(&backup, h), data_path(&dir, h)).expect("restore data");
    c.chunkservers[victim].restart(true).expect("restart");
    registered(&c.chunkservers[victim].url).await;
    say!(tag, "{victim_url} lost the overwrite of chunk {h} v{} (same length, old bytes)", after.version.0);
    let named = never_served_wrong(&c, "/d/o", &want, &victim_url, Duration::from_secs(5)).await;
    say!(tag, "{named} listings named {victim_url} (only ever with the new bytes)");
    heals_with_every_replica_whole(&c, "/d/o", &want, 3).await;
}

/// A version bump that times out on a frozen replica, then completes when
/// it resumes, must not make that replica current: it missed the writes of
/// the lease it was left out of (before: listed at the new version with the
/// old bytes, which every CRC matched).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_bump_that_completes_late_does_not_make_its_replica_current() {
    late_bump("late-bump", false).await;
}

/// The same, with the master restarted in between: the members of a
/// version are recorded with it, not only remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_bump_is_refused_by_a_restarted_master_too() {
    late_bump("late-bump-restart", true).await;
}

async fn late_bump(tag: &str, restart_master: bool) {
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = cluster(3, FAULT_MASTER).await;
    let client = faults::client(&c.master.url);
    let (old, new) = (random_bytes(&mut rng, 256 * KIB), random_bytes(&mut rng, 256 * KIB));
    let mut w = create(&client, "/d/g", 3, 1 << 20).await;
    w.write(&old).await.expect("write");
    let attr = w.close().await.expect("close");
    let before = locate(&client, "/d/g").await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // the lease runs out
    let victim = c.index_of(&before.replicas[0].address).expect("ours");
    let victim_url = c.chunkservers[victim].url.clone();
    say!(tag, "SIGSTOP {victim_url}, then overwrite: its bump times out");
    c.chunkservers[victim].sigstop();
    let started = Instant::now();
    client.write_at(&attr, 0, Bytes::from(new.clone())).await.expect("overwrite");
    let after = locate(&client, "/d/g").await;
    say!(tag, "overwritten at v{} in {:?} without {victim_url}", after.version.0, started.elapsed());
    assert!(after.version > before.version && after.replicas.iter().all(|r| r.address != victim_url), "{after:?}");
    if restart_master {
        say!(tag, "kill -9 the master and restart it");
        c.master.restart().expect("restart master");
    }
    // The bump reaches the replica late, as a slow disk or network would
    // deliver it: sent while the process is stopped, served as it resumes.
    // (The master's own request is dropped with its connection when the
    // process resumes, so it cannot play this part.) The replica's node is
    // then restarted, so its first heartbeat reports it at once.
    let http = reqwest::Client::new();
    let url = format!("{victim_url}/v1/chunks/{}/version", after.handle.0);
    let body = serde_json::json!({ "version": after.version.0 });
    // Signed with the cluster key, as the master's own would be.
    let late_bump = {
        let (http, victim_url) = (http.clone(), victim_url.clone());
        tokio::spawn(async move { faults::send_as_peer(&http, &victim_url, http.post(url).json(&body).timeout(Duration::from_secs(30))).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The master is held still (SIGSTOP) while the replica takes the bump
    // and is looked at: once it hears of the replica at the new version it
    // repairs it at once, as it should (a copy made in place, fenced at the
    // next version), and a look after that would find the copy, not the
    // late bump. Frozen, it cannot hear the resumed node or order anything;
    // the replica is then on disk as the restarted node will report it.
    c.master.sigstop();
    c.chunkservers[victim].sigcont();
    let answered = late_bump.await.expect("join").expect("late bump");
    let taken = replica_info(&http, &victim_url, after.handle.0).await;
    c.chunkservers[victim].kill9();
    c.master.sigcont();
    assert!(answered.status().is_success(), "the late bump: {}", answered.status());
    let late = match taken {
        Ok(Some((v, len))) if v == after.version.0 => len,
        other => panic!("the resumed replica did not take the late bump: {other:?}"),
    };
    say!(tag, "{victim_url} took v{} late ({late} bytes, the old ones)", after.version.0);
    // Its first report names it at that version. Listed current, it would be
    // counted, nothing copied, and the window below would catch its old
    // bytes; refused, it is replaced by a copy (which may be done already).
    c.chunkservers[victim].restart(true).expect("restart");
    registered(&c.chunkservers[victim].url).await;
    let named = never_served_wrong(&c, "/d/g", &new, &victim_url, Duration::from_secs(5)).await;
    say!(tag, "{named} listings named {victim_url} (only ever with the new bytes)");
    heals_with_every_replica_whole(&c, "/d/g", &new, 3).await;
}

/// A restarted master in safe mode hears from one replica of a chunk
/// first. A lease then would bump that replica alone and make the others
/// stale (and the first may be one that lost writes): it must wait until
/// the chunk's replicas have reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_lease_is_granted_in_safe_mode_before_the_replicas_report() {
    let tag = "safe-mode-lease";
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let master = master_args(&["--safe-mode-extension-ms", "15000"]);
    let master: Vec<&str> = master.iter().map(String::as_str).collect();
    let mut c = cluster(3, &master).await;
    let client = faults::client(&c.master.url);
    let data = random_bytes(&mut rng, 128 * KIB);
    let mut w = create(&client, "/d/h", 3, 1 << 20).await;
    w.write(&data).await.expect("write");
    let attr = w.close().await.expect("close");
    let before = locate(&client, "/d/h").await;
    let first = c.index_of(&before.replicas[0].address).expect("ours");
    let others: Vec<usize> = (0..3).filter(|i| *i != first).collect();
    c.master.kill9();
    others.iter().for_each(|i| c.chunkservers[*i].sigstop());
    c.master.restart().expect("restart master");
    let api = Api::new(&c.master.url);
    wait_for("the first replica reported", LIVE_WAIT, || async {
        let loc = client.master().locate(attr.inode, 0, 1).await.map_err(|e| e.to_string())?;
        match loc.chunks.first().map(|l| l.replicas.len()) {
            Some(1) => Ok(()),
            other => Err(format!("{other:?} replicas listed")),
        }
    })
    .await;
    let req = LeaseRequest { inode: attr.inode, index: 0 };
    let refused = api.post("/v1/chunks/lease", &req).await.expect("lease call");
    say!(tag, "lease with 1 of 3 replicas reported: {} {}", refused.status, refused.body);
    others.iter().for_each(|i| c.chunkservers[*i].sigcont());
    assert_eq!((refused.status, refused.kind()), (503, "EAGAIN"), "a lease was granted in safe mode on one reported replica: {}", refused.body);
    let granted = wait_for("a lease once every replica reported", LIVE_WAIT, || async {
        let r = api.post("/v1/chunks/lease", &req).await.map_err(|e| e.to_string())?;
        match r.ok() {
            true => Ok(r.body),
            false => Err(format!("{} {}", r.status, r.body)),
        }
    })
    .await;
    say!(tag, "granted: {granted}");
    assert_eq!(granted["secondaries"].as_array().map(Vec::len), Some(2), "every replica took the lease: {granted}");
    heals_with_every_replica_whole(&c, "/d/h", &data, 3).await;
}

/// A chunk that keeps being written after one of its replicas died is back
/// at its replication goal within the normal repair time, while the writer
/// goes on (before: a leased chunk was never copied, so a file appended to
/// for an hour stayed under-replicated for the hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_being_written_is_re_replicated_while_the_writer_goes_on() {
    let tag = "leased-repair";
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = cluster(4, FAULT_MASTER).await;
    let client = faults::client(&c.master.url);
    let mut w = create(&client, "/d/log", 3, 64 << 20).await;
    let (stop, written) = (Arc::new(AtomicBool::new(false)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let piece_seed: u64 = rng.random();
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(piece_seed);
            while !stop.load(Ordering::Relaxed) {
                let piece = random_bytes(&mut rng, 32 * KIB);
                w.write(&piece).await.expect("append");
                w.flush().await.expect("flush");
                written.lock().unwrap().extend_from_slice(&piece);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            w.close().await.expect("close")
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = locate(&client, "/d/log").await;
    // A secondary: the lease then goes on without a gap (a lost primary's
    // lease must run out first, and a copy could slip into that gap).
    let attr = client.stat("/d/log").await.expect("stat");
    let lease = Api::new(&c.master.url).post("/v1/chunks/lease", &LeaseRequest { inode: attr.inode, index: 0 }).await.expect("lease");
    let primary = lease.body["primary"]["address"].as_str().unwrap_or_default().to_string();
    let dead_url = before.replicas.iter().map(|r| r.address.clone()).find(|a| *a != primary).expect("a secondary");
    let dead = c.index_of(&dead_url).expect("ours");
    say!(tag, "kill -9 {dead_url} while the writer appends to chunk {}", before.handle);
    c.chunkservers[dead].kill9();
    let killed = Instant::now();
    let healed = wait_for("three live replicas of the chunk being written", Duration::from_secs(30), || async {
        let loc = locate(&client, "/d/log").await;
        match loc.replicas.len() == 3 && loc.replicas.iter().all(|r| r.address != dead_url) {
            true => Ok(loc),
            false => Err(format!("{:?}", loc.replicas.iter().map(|r| &r.address).collect::<Vec<_>>())),
        }
    })
    .await;
    assert!(!writer.is_finished(), "the writer stopped");
    say!(tag, "back at 3 replicas (v{}) {:?} after the kill, {} bytes written so far", healed.version.0, killed.elapsed(), written.lock().unwrap().len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let want = written.lock().unwrap().clone();
    assert_eq!(read_fresh(&c.master.url, "/d/log").await.len(), want.len());
    heals_with_every_replica_whole(&c, "/d/log", &want, 3).await;
}
