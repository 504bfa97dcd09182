//! Metadata backups end to end on real processes: `dfs admin backup DIR`
//! taken while clients write, then `dfs-master restore` into a new data
//! directory and the master started on it, over the same chunkservers.
//! The restored cluster's `dfs fsck` is healthy and its files are those of
//! the backup's point in time: every file acknowledged before the backup
//! began reads back exact, every file there is a prefix of what was
//! written to it, none made after the backup answered is there, and a
//! file appended to after the backup (its chunk's version moved on several
//! steps) is served at the newer version. New files written after the
//! restore read back (the id allocators moved past any id handed out
//! since the backup). A damaged or incomplete backup is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_client::{Client, CreateOptions};
use dfs_tests::faults::{self, check_files, first_diff, random_bytes, wait_healthy, Files};
use dfs_tests::process::bin_dir;
use dfs_tests::shell::dfs;
use dfs_tests::Cluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A file written in full and closed: its bytes, and when the close was
/// acknowledged (or, for files whose create started, when it did).
#[derive(Clone)]
struct Written {
    data: Vec<u8>,
    started: Instant,
    closed: Option<Instant>,
}

async fn write_file(client: &Client, path: &str, data: &[u8]) {
    let opts = CreateOptions { replication: Some(3), chunk_size_bytes: Some(1 << 20), ..Default::default() };
    let mut w = client.create(path, &opts).await.unwrap_or_else(|e| panic!("create {path}: {e}"));
    w.write(data).await.unwrap_or_else(|e| panic!("write {path}: {e}"));
    w.close().await.unwrap_or_else(|e| panic!("close {path}: {e}"));
}

async fn append(client: &Client, path: &str, data: &[u8]) {
    let mut w = client.open_write(path, true).await.unwrap_or_else(|e| panic!("open {path} to append: {e}"));
    w.write(data).await.unwrap_or_else(|e| panic!("append to {path}: {e}"));
    w.close().await.unwrap_or_else(|e| panic!("close {path}: {e}"));
}

/// Writes new files under /b until told to stop, recording each.
async fn writer(client: Client, seed: u64, log: Arc<Mutex<BTreeMap<String, Written>>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0.. {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let path = format!("/b/w{seed:x}-{n}");
        let len = rng.random_range(1..1_500_000);
        let data = random_bytes(&mut rng, len);
        log.lock().unwrap().insert(path.clone(), Written { data: data.clone(), started: Instant::now(), closed: None });
        write_file(&client, &path, &data).await;
        log.lock().unwrap().get_mut(&path).unwrap().closed = Some(Instant::now());
    }
}

fn dfs_master(args: &[&str]) -> std::process::Output {
    Command::new(bin_dir().unwrap().join("dfs-master")).args(args).output().expect("run dfs-master")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_writes_restores_to_its_point_in_time() {
    let seed = faults::fault_seed();
    let mut c = Cluster::start(4).unwrap();
    c.wait_live(4, Duration::from_secs(10)).await.unwrap();
    let url = c.master.url.clone();
    let client = faults::client(&url);
    let mut rng = StdRng::seed_from_u64(seed);

    // Files complete before the backup, and one that grows after it.
    client.mkdir("/a", true, None).await.unwrap();
    client.mkdir("/b", true, None).await.unwrap();
    let mut before = Files::new();
    for i in 0..5 {
        let len = rng.random_range(1..3_000_000);
        let data = random_bytes(&mut rng, len);
        write_file(&client, &format!("/a/f{i}"), &data).await;
        before.insert(format!("/a/f{i}"), data);
    }
    let mut log_data = random_bytes(&mut rng, 300_000);
    write_file(&client, "/a/log", &log_data).await;

    // Writers keep going while the backup is taken.
    let written = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2).map(|i| tokio::spawn(writer(faults::client(&url), seed + i, written.clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let dir = c.dir.path().join("backup");
    let backup_began = Instant::now();
    let run = dfs(&url, &["admin", "backup", dir.to_str().unwrap()]).await.unwrap().ok();
    let backup_answered = Instant::now();
    eprintln!("{}", run.stdout.trim());
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    // After the backup: appends on fresh clients, each after the last
    // lease ran out, so the chunk's version moves on a step each time.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        let more = random_bytes(&mut rng, 100_000);
        append(&faults::client(&url), "/a/log", &more).await;
        log_data.extend_from_slice(&more);
    }
    let acknowledged_log = log_data.clone();

    // A second backup into the same directory is refused; the first is whole.
    let again = dfs(&url, &["admin", "backup", dir.to_str().unwrap()]).await.unwrap();
    assert_ne!(again.code, 0, "{again:?}");
    assert!(dir.join("BACKUP.json").exists() && !Path::new(&format!("{}.partial", dir.display())).exists());

    // The restore: into a new data directory, with the cluster key and the
    // admin's credentials an operator keeps apart from the metadata.
    let old_dir = c.master.data_dir.clone();
    c.master.terminate().unwrap();
    let new_dir = c.dir.path().join("master-restored");
    let out = dfs_master(&["--data-dir", new_dir.to_str().unwrap(), "restore", dir.to_str().unwrap()]);
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    let out = dfs_master(&["--data-dir", new_dir.to_str().unwrap(), "restore", dir.to_str().unwrap()]);
    assert!(!out.status.success(), "a second restore into a namespace must be refused");
    for f in ["cluster.key", "admin.credentials"] {
        std::fs::copy(old_dir.join(f), new_dir.join(f)).unwrap();
    }
    c.master.data_dir = new_dir;
    c.master.restart().unwrap();
    let client = faults::client(&url);

    wait_healthy(&url, Duration::from_secs(90), false).await;
    check_files(&client, &before).await.unwrap();
    // The appended file: the backup's length at least (it may have caught
    // a later append's commit), its bytes those written, served at the
    // version the appends left on the replicas.
    let attr = client.stat("/a/log").await.unwrap();
    assert!(attr.size >= 300_000 && attr.size <= acknowledged_log.len() as u64, "size {}", attr.size);
    let got = client.read_at(&attr, 0, attr.size).await.unwrap();
    assert_eq!(first_diff(&got, &acknowledged_log[..got.len()]), None, "/a/log differs");
    // Files under /b: those closed before the backup began are there and
    // whole; every one there is a prefix of what was written; none that
    // began after the backup answered is there.
    let written = written.lock().unwrap().clone();
    let there = faults::walk(&client, "/b").await.unwrap();
    let mut whole = 0;
    for (path, w) in &written {
        let closed_before = w.closed.is_some_and(|t| t < backup_began);
        match there.get(path) {
            None => assert!(!closed_before, "{path} was closed before the backup began and is missing"),
            Some(&size) => {
                assert!(w.started < backup_answered, "{path} was begun after the backup answered");
                if closed_before {
                    assert_eq!(size, w.data.len() as u64, "{path}");
                    whole += 1;
                }
                let attr = client.stat(path).await.unwrap();
                let got = client.read_at(&attr, 0, size).await.unwrap();
                assert_eq!(first_diff(&got, &w.data[..got.len()]), None, "{path} differs");
            }
        }
    }
    assert!(whole > 0, "no file was closed before the backup began: the test proved nothing");
    assert!(there.keys().all(|p| written.contains_key(p)), "unknown files: {there:?}");

    // New files after the restore get new ids and chunks, and read back.
    let mut after = Files::new();
    for i in 0..3 {
        let len = rng.random_range(1..2_000_000);
        let data = random_bytes(&mut rng, len);
        write_file(&client, &format!("/c{i}"), &data).await;
        after.insert(format!("/c{i}"), data);
    }
    check_files(&client, &after).await.unwrap();
    wait_healthy(&url, Duration::from_secs(60), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_partial_backup_is_refused() {
    let c = Cluster::start(1).unwrap();
    c.wait_live(1, Duration::from_secs(10)).await.unwrap();
    let dir = c.dir.path().join("backup");
    dfs(&c.master.url, &["admin", "backup", dir.to_str().unwrap()]).await.unwrap().ok();
    let restore = |from: &Path, name: &str| dfs_master(&["--data-dir", c.dir.path().join(name).to_str().unwrap(), "restore", from.to_str().unwrap()]);

    // A flipped byte in a table.
    let damaged = c.dir.path().join("damaged");
    copy_dir(&dir, &damaged);
    let sst = std::fs::read_dir(&damaged).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|e| e == "sst")).expect("a table");
    faults::flip_byte(&sst, 100, 0x01).unwrap();
    let out = restore(&damaged, "r1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CRC32") && err.lines().count() <= 2, "{err}");
    assert!(!c.dir.path().join("r1/CURRENT").exists(), "nothing restored from a damaged backup");

    // No manifest (a stream cut short never gets one).
    let partial = c.dir.path().join("partial");
    copy_dir(&dir, &partial);
    std::fs::remove_file(partial.join("BACKUP.json")).unwrap();
    assert!(!restore(&partial, "r2").status.success());

    // A restore cut short (its marker left) is refused by another restore
    // and by the master.
    let cut = c.dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::write(cut.join("RESTORING"), b"").unwrap();
    let out = dfs_master(&["--data-dir", cut.to_str().unwrap(), "restore", dir.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unfinished restore"));
    assert!(dfs_tests::MasterProcess::start(&cut, &[]).is_err(), "a master must not start on a half-made namespace");

    // The whole backup restores, and leaves no marker.
    let out = restore(&dir, "r3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!c.dir.path().join("r3/RESTORING").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
