//! The metadata log after a SIGKILL and damage on disk, on a real
//! `dfs-master`: a flipped bit in an old record (one followed by records
//! of later groups) makes the master refuse to start, in one line naming
//! the file, the offset and the records after it, with a non-zero exit,
//! until `dfs-master recover-log --yes` truncates the log there
//! (`recover-log` alone changes nothing); a damaged last record (a torn
//! tail) is dropped with a warning and the master starts.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dfs_tests::faults::flip_byte;
use dfs_tests::process::bin_dir;
use dfs_tests::{Api, MasterProcess};
use serde_json::json;

/// The log's file in the master's data directory (`store/metalog.rs`).
const LOG_FILE: &str = "dfs-metalog";
/// A record's header: magic, payload length, epoch, sequence number, the
/// group's first sequence number, CRC32 (format 2, `store/metalog.rs`).
const HEADER: u64 = 36;
const MAGIC: u32 = 0x6466_7332;
/// Format 1 had no group field (read too, so that this test can be run
/// against a build from before format 2 and fail for the right reason).
const HEADER_V1: u64 = 28;
const MAGIC_V1: u32 = 0x6466_736c;

/// One record of the log's current epoch: its offset, header and payload
/// lengths.
#[derive(Debug, Clone, Copy)]
struct Record {
    offset: u64,
    header: u64,
    len: u64,
}

impl Record {
    /// The offset of its payload's byte `i`.
    fn payload(&self, i: u64) -> u64 {
        self.offset + self.header + i
    }
}

/// The records of the epoch that starts at offset 0, in order (the log
/// starts over at every open, so that is the current one).
fn records(dir: &Path) -> Vec<Record> {
    let data = std::fs::read(dir.join(LOG_FILE)).expect("read the metadata log");
    let field = |at: u64, n: usize| data.get(at as usize..at as usize + n).map(|b| b.to_vec());
    let u32_at = |at| field(at, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let u64_at = |at| field(at, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    let (magic, epoch) = (u32_at(0).unwrap(), u64_at(8).unwrap());
    let header = match magic {
        MAGIC => HEADER,
        MAGIC_V1 => HEADER_V1,
        other => panic!("no log header at offset 0: magic {other:x}"),
    };
    let mut out = Vec::new();
    let mut at = 0;
    while u32_at(at) == Some(magic) && u64_at(at + 8) == Some(epoch) && u64_at(at + 16) == Some(out.len() as u64 + 1) {
        let len = u32_at(at + 4).unwrap() as u64;
        out.push(Record { offset: at, header, len });
        at += header + len;
    }
    out
}

/// Makes `/dir`, then `count` files in it, one request (one group) each;
/// returns the inode ids handed out.
async fn mutate(master: &MasterProcess, dir: &str, count: usize) -> Vec<u64> {
    let api = Api::new(&master.url);
    let r = api.post("/v1/mkdir", &json!({"path": dir})).await.unwrap();
    assert!(r.ok(), "mkdir {dir}: {r:?}");
    let mut ids = vec![r.body["inode"].as_u64().unwrap()];
    for i in 1..=count {
        let r = api.post("/v1/create", &json!({"path": format!("{dir}/f{i}")})).await.unwrap();
        assert!(r.ok(), "create {dir}/f{i}: {r:?}");
        ids.push(r.body["inode"].as_u64().unwrap());
    }
    ids
}

async fn exists(api: &Api, path: &str) -> bool {
    let r = api.get_query("/v1/stat", &[("path", path)]).await.unwrap();
    assert!(r.ok() || r.kind() == "ENOENT", "stat {path}: {r:?}");
    r.ok()
}

async fn assert_consistent(api: &Api) {
    let check = api.get("/v1/admin/check").await.unwrap();
    assert_eq!(check.body["ok"], json!(true), "{}", check.body);
}

/// Runs `dfs-master ARGS` to its end (bounded), for its exit and output.
fn run_master(args: &[&str]) -> Output {
    let mut child = Command::new(bin_dir().unwrap().join("dfs-master"))
        .args(args)
        .env("DFS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dfs-master");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dfs-master {args:?} still running after 30 s: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A master whose stderr goes to a file, to read its log lines.
struct LoggedMaster {
    child: Child,
    url: String,
    stderr: PathBuf,
}

impl LoggedMaster {
    fn start(data_dir: &Path, stderr: PathBuf) -> LoggedMaster {
        let mut child = Command::new(bin_dir().unwrap().join("dfs-master"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("DFS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("start dfs-master");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout so the master never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("dfs-master listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let started = rx.recv_timeout(Duration::from_secs(30));
        let url = started.unwrap_or_else(|_| panic!("master did not start: {}", std::fs::read_to_string(&stderr).unwrap_or_default()));
        dfs_tests::process::note_credentials(&url, data_dir);
        LoggedMaster { child, url, stderr }
    }

    /// Its log so far, without terminal colours.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let mut plain = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|c| c.is_ascii_alphabetic());
            } else {
                plain.push(c);
            }
        }
        plain
    }
}

impl Drop for LoggedMaster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_damaged_old_record_stops_the_master_until_the_log_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("master");
    let mut master = MasterProcess::start(&dir, &[]).unwrap();
    let lost_ids = mutate(&master, "/a", 9).await;
    master.kill9();
    drop(master);

    let log = records(&dir);
    assert_eq!(log.len(), 11, "one record per mutation since the start (the first is the first admin's): {log:?}");
    // Record 4 (the create of /a/f2): acknowledged, and 7 more after it.
    let bad = log[3];
    flip_byte(&dir.join(LOG_FILE), bad.payload(bad.len / 2), 0x08).unwrap();
    let damaged = std::fs::read(dir.join(LOG_FILE)).unwrap();

    let data_dir = dir.to_str().unwrap();
    let refused = run_master(&["--listen", "127.0.0.1:0", "--data-dir", data_dir]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the master started on a log damaged in the middle: {stderr}");
    let line = stderr.lines().find(|l| l.starts_with("dfs-master:")).unwrap_or_else(|| panic!("no error line: {stderr}"));
    eprintln!("refused: {line}");
    let file = dir.join(LOG_FILE);
    for part in [format!("{}", file.display()), format!("offset {}", bad.offset), "7 valid records".into(), "recover-log".into()] {
        assert!(line.contains(&part), "{part:?} missing from the error line: {line}");
    }

    // Without --yes: it says what would be lost, and changes nothing.
    let shown = run_master(&["--data-dir", data_dir, "recover-log"]);
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{stdout}{}", String::from_utf8_lossy(&shown.stderr));
    eprintln!("recover-log:\n{stdout}");
    for part in [format!("offset {}", bad.offset), "records 4..=11".into(), "8 records".into(), "nothing changed".into()] {
        assert!(stdout.contains(&part), "{part:?} missing from: {stdout}");
    }
    assert!(std::fs::read(&file).unwrap() == damaged, "recover-log without --yes changed the log");
    let refused = run_master(&["--listen", "127.0.0.1:0", "--data-dir", data_dir]);
    assert!(!refused.status.success(), "still refused after a look");

    let done = run_master(&["--data-dir", data_dir, "recover-log", "--yes"]);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{stdout}{}", String::from_utf8_lossy(&done.stderr));
    assert!(stdout.contains("truncated at offset"), "{stdout}");
    eprintln!("recover-log --yes:\n{stdout}");
    let kept = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("dfs-metalog.damaged")).count();
    assert_eq!(kept, 1, "a copy of the damaged log is kept");

    let master = MasterProcess::start(&dir, &[]).unwrap();
    let api = Api::new(&master.url);
    assert!(exists(&api, "/a").await && exists(&api, "/a/f1").await, "records before the damaged one are kept");
    for i in 2..=9 {
        assert!(!exists(&api, &format!("/a/f{i}")).await, "/a/f{i} is past the truncation");
    }
    assert_consistent(&api).await;
    // Clients may still hold the ids the lost records handed out.
    let new_ids = mutate(&master, "/b", 3).await;
    assert!(new_ids.iter().all(|id| !lost_ids.contains(id)), "ids handed out again: {new_ids:?} (lost {lost_ids:?})");
    assert_consistent(&api).await;
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("master");
    let mut master = MasterProcess::start(&dir, &[]).unwrap();
    mutate(&master, "/t", 5).await;
    master.kill9();
    drop(master);

    let log = records(&dir);
    assert_eq!(log.len(), 7, "the first admin and 6 mutations: {log:?}");
    let last = log[6];
    // Garble the second half of the last record, as a write cut short.
    for at in last.payload(last.len / 2)..last.payload(last.len) {
        flip_byte(&dir.join(LOG_FILE), at, 0xff).unwrap();
    }

    let master = LoggedMaster::start(&dir, tmp.path().join("stderr"));
    let api = Api::new(&master.url);
    assert!(exists(&api, "/t").await);
    for i in 1..=4 {
        assert!(exists(&api, &format!("/t/f{i}")).await, "/t/f{i} was before the torn record");
    }
    assert!(!exists(&api, "/t/f5").await, "the torn record is dropped");
    assert_consistent(&api).await;
    let log = master.log();
    let warning = log.lines().find(|l| l.contains("torn last group")).unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(warning.contains("WARN") && warning.contains(&format!("offset={}", last.offset)) && warning.contains("records=1"), "{warning}");
}
