//! The soak's power cut of one node ([`LoopExt4::shut_down`] then
//! [`LoopExt4::remount`]) is faithful: what was fsynced before the cut
//! reads back, what was written and not synced is gone, and it works while
//! another process still holds a descriptor on the old filesystem (a
//! client's short-circuit read does: a plain unmount is then busy).
//!
//! Restoring a copy of a data directory taken at some earlier moment, the
//! soak's former fault, fails the first check: it also takes back writes
//! fsynced after the copy. Needs root (loop devices, mount); skipped
//! otherwise.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use dfs_tests::faults::LoopExt4;
use dfs_tests::{Api, MasterProcess};

const SYNCED: &[u8] = b"synced before the cut";
const OVERWRITE: &[u8] = b"OVERWRITTEN, not synced";

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(data).and_then(|_| f.sync_all()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn a_power_cut_keeps_what_was_synced_and_loses_the_rest() {
    if !dfs_tests::sys::is_root() {
        eprintln!("SKIPPED power-cut: a loop-mounted ext4 needs root");
        return;
    }
    let mut disk = LoopExt4::mount(64).unwrap_or_else(|e| panic!("as root, a loop-mounted ext4 should mount: {e}"));
    let (synced, unsynced) = (disk.path.join("synced"), disk.path.join("unsynced"));
    write_synced(&synced, SYNCED);
    File::open(&disk.path).and_then(|d| d.sync_all()).expect("sync the directory");
    // Acknowledged by the filesystem, never synced: an overwrite in place
    // (the length stays) and a new file.
    File::options().write(true).open(&synced).and_then(|f| f.write_all_at(OVERWRITE, 0)).expect("overwrite");
    std::fs::write(&unsynced, b"never synced").expect("write the unsynced file");
    // A reader's descriptor on the old filesystem, as a client's
    // short-circuit read holds: the unmount is busy.
    let held = File::open(&synced).expect("open for the held descriptor");

    disk.shut_down().expect("shut the ext4 down");
    assert!(std::fs::write(disk.path.join("after"), b"x").is_err(), "a shut-down ext4 took a write");
    disk.remount().unwrap_or_else(|e| panic!("mount again after the cut: {e}"));

    let got = std::fs::read(&synced).expect("the synced file is there after the cut");
    assert_eq!(got, SYNCED, "the power cut did not keep exactly the synced bytes (the unsynced overwrite must be gone, the synced write kept)");
    let lost = std::fs::read(&unsynced).unwrap_or_default();
    assert!(lost.is_empty(), "an unsynced file came back with {} bytes", lost.len());
    // The new filesystem takes writes; the old instance, still held, is not it.
    write_synced(&disk.path.join("after"), b"x");
    drop(held);
}

/// A master formatted just before a power cut keeps what formatting made:
/// the first admin's credentials file, the cluster key and the user table
/// that knows that admin (a lost credential would leave a cluster nobody
/// may administer).
#[tokio::test(flavor = "multi_thread")]
async fn a_master_formatted_before_a_power_cut_keeps_its_admin() {
    if !dfs_tests::sys::is_root() {
        eprintln!("SKIPPED power-cut: a loop-mounted ext4 needs root");
        return;
    }
    // RocksDB preallocates its write-ahead log (~230 MiB with the master's
    // write buffers): a smaller disk stops the master at its first write.
    let mut disk = LoopExt4::mount(1024).unwrap_or_else(|e| panic!("as root, a loop-mounted ext4 should mount: {e}"));
    let dir = disk.path.join("master");
    let mut master = MasterProcess::start(&dir, &[]).expect("master starts");
    disk.shut_down().expect("shut the ext4 down");
    master.kill9();
    disk.remount().unwrap_or_else(|e| panic!("mount again after the cut: {e}"));

    let credentials = dfs_proto::auth::user::Credentials::load(&dir.join("admin.credentials")).expect("the admin's credentials survive the cut");
    assert!(dir.join("cluster.key").exists(), "the cluster key survives the cut");
    master.restart().expect("the master starts again on its data");
    let r = Api::as_user(&master.url, credentials).get("/v1/auth/whoami").await.expect("whoami");
    assert_eq!(r.status, 200, "the admin logs in after the cut: {}", r.body);
    assert_eq!(r.body["admin"], serde_json::json!(true), "{}", r.body);
}
