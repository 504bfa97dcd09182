//! Files unlinked (or replaced by a rename) while open, across mounts: the
//! open descriptors keep reading and writing them, fstat shows no link,
//! and the master frees them after the last close, after the holding
//! mount crashes, and not before, also across a master restart.
//! Needs root and /dev/fuse, as `fuse_mount.rs`.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use dfs_tests::tools::*;

/// The master's timeout for a silent mount's open files (its least).
const TIMEOUT_MS: &str = "12000";

#[test]
fn a_file_removed_in_one_mount_lives_on_in_another_until_its_last_close() {
    let c = cluster(&["--open-files-timeout-ms", TIMEOUT_MS]);
    let a = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let b = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
    let url = c.master.url.clone();
    within(Duration::from_secs(120), move || {
        fs::write(pa.join("f"), "written before").unwrap();
        fs::write(pa.join("g"), "the old g").unwrap();
        let mut f = OpenOptions::new().read(true).write(true).open(pa.join("f")).unwrap();
        let mut g = fs::File::open(pa.join("g")).unwrap();
        let (fi, gi) = (f.metadata().unwrap().ino(), g.metadata().unwrap().ino());

        // B removes f and renames over g while A holds both open.
        fs::remove_file(pb.join("f")).unwrap();
        fs::write(pb.join("new"), "the new g").unwrap();
        fs::rename(pb.join("new"), pb.join("g")).unwrap();
        poll(Duration::from_secs(5), "A to see the name gone", || fs::metadata(pa.join("f")).is_err());
        poll(Duration::from_secs(5), "fstat to show no link", || f.metadata().unwrap().nlink() == 0);

        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(b", and after").unwrap();
        f.sync_all().unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "written before, and after");
        let mut old = String::new();
        g.read_to_string(&mut old).unwrap();
        assert_eq!(old, "the old g", "the replaced file reads on through its descriptor");
        assert_eq!(fs::read_to_string(pa.join("g")).unwrap(), "the new g");

        // Held: still there after more than a session timeout.
        std::thread::sleep(Duration::from_millis(13_000));
        assert!(inode_exists(&url, fi) && inode_exists(&url, gi), "an open file was freed");
        drop((f, g));
        poll(Duration::from_secs(20), "both files to be freed after their last close", || !inode_exists(&url, fi) && !inode_exists(&url, gi));
    });
    assert_namespace_consistent(&c);
}

#[test]
fn a_crashed_mount_lets_go_and_a_restarted_master_waits_for_holders() {
    let mut c = cluster(&["--open-files-timeout-ms", TIMEOUT_MS]);
    let a = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let mut crashing = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let (pa, pc) = (a.path().to_path_buf(), crashing.path().to_path_buf());
    fs::write(pa.join("held-by-a"), "kept across the restart").unwrap();
    fs::write(pa.join("held-by-crashing"), "freed after the crash").unwrap();
    let mut kept = fs::File::open(pa.join("held-by-a")).unwrap();
    let lost = fs::File::open(pc.join("held-by-crashing")).unwrap();
    let (ki, li) = (kept.metadata().unwrap().ino(), lost.metadata().unwrap().ino());
    fs::remove_file(pa.join("held-by-a")).unwrap();
    fs::remove_file(pa.join("held-by-crashing")).unwrap();
    let url = c.master.url.clone();
    assert!(inode_exists(&url, ki) && inode_exists(&url, li));

    // The master restarts: both orphans are durable, and wait for their holders.
    c.master.restart().expect("master restart");
    std::thread::sleep(Duration::from_millis(2_000));
    assert!(inode_exists(&url, ki) && inode_exists(&url, li), "orphans freed right after a restart");

    // The second mount crashes: its file goes once its session times out;
    // the first restates its own, which stays.
    dfs_tests::sys::signal(crashing.pid(), libc::SIGKILL);
    drop(lost);
    let start = std::time::Instant::now();
    poll(Duration::from_secs(40), "the crashed mount's orphan to be freed", || !inode_exists(&url, li));
    assert!(start.elapsed() >= Duration::from_secs(8), "freed {:?} after the crash, before the timeout", start.elapsed());
    assert!(inode_exists(&url, ki), "the live mount's open file was freed");
    let text = within(Duration::from_secs(60), move || {
        let mut text = String::new();
        kept.read_to_string(&mut text).unwrap();
        text
    });
    assert_eq!(text, "kept across the restart");
    poll(Duration::from_secs(20), "the orphan to go after its last close", || !inode_exists(&url, ki));
    drop(crashing.wait_exit(Duration::from_secs(5)));
    assert_namespace_consistent(&c);
}

/// Whether the master still has inode `ino`.
fn inode_exists(url: &str, ino: u64) -> bool {
    let reply = block_on(dfs_tests::Api::new(url).get(&format!("/v1/inodes/{ino}"))).expect("stat inode");
    match reply.status {
        200 => true,
        404 => false,
        s => panic!("stat of inode {ino}: {s} {}", reply.body),
    }
}
