//! The masters' Raft log (`dfs_master::raft::log_store`) through a power
//! cut: every append it acknowledged and the last vote it saved are there
//! after the cut, the log is a prefix of what was appended (no holes, no
//! entry of another content), and once its disk fails it acknowledges
//! nothing more. The cut drops every write not synced
//! ([`LoopExt4::shut_down`]), which kill -9 would keep. Needs root (loop
//! devices, mount); skipped otherwise.
//!
//! The appends run in a child process (this test binary again, told so by
//! [`WRITER`]), which prints each acknowledgement as it comes: RocksDB may
//! abort the process on the first operation after a failed write, as a
//! master whose log disk fails should stop anyway.

use std::io::{BufRead, BufReader, Cursor, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dfs_master::raft::log_store::LogStore;
use dfs_tests::faults::LoopExt4;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

openraft::declare_raft_types!(
    /// A group whose commands are strings.
    Config:
        D = String,
        R = String,
);

/// Set (to the log's directory) in the child that appends.
const WRITER: &str = "DFS_TEST_RAFT_LOG_WRITER";
const TEST: &str = "a_power_cut_keeps_every_acknowledged_entry_and_the_vote";

fn entry(index: u64) -> Entry<Config> {
    Entry { log_id: LogId::new(CommittedLeaderId::new(7, 1), index), payload: EntryPayload::Normal(format!("command {index}")) }
}

/// The child: saves a vote, appends 100 entries, then appends groups of 1
/// to 8 entries without waiting, printing `ack N` when the group ending at
/// N is synced, until an append is refused.
fn write_until_refused(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut store = LogStore::<Config>::open(dir).unwrap();
    runtime.block_on(store.save_vote(&Vote::new(7, 1))).unwrap();
    runtime.block_on(store.blocking_append((1..=100).map(entry))).unwrap();
    println!("ack 100");
    let mut next = 101u64;
    loop {
        let last = next + next % 8;
        let done = Box::new(move |synced: std::io::Result<()>| {
            let line = match synced {
                Ok(()) => format!("ack {last}\n"),
                Err(_) => format!("fail {last}\n"),
            };
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes()).and_then(|_| out.flush());
        });
        if store.append_then((next..=last).map(entry), done).is_err() {
            println!("refused {next}");
            return;
        }
        next = last + 1;
        // Groups made while a sync runs share the next one.
        std::thread::sleep(Duration::from_micros(50));
    }
}

struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_power_cut_keeps_every_acknowledged_entry_and_the_vote() {
    if let Some(dir) = std::env::var_os(WRITER) {
        return write_until_refused(Path::new(&dir));
    }
    if !dfs_tests::sys::is_root() {
        eprintln!("SKIPPED raft log power cut: a loop-mounted ext4 needs root");
        return;
    }
    let mut disk = LoopExt4::mount(256).unwrap_or_else(|e| panic!("as root, a loop-mounted ext4 should mount: {e}"));
    let dir = disk.path.join("raft");
    let mut writer = Writer(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(WRITER, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer"),
    );
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = writer.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut acknowledged = Vec::<u64>::new();
    let take = |line: String, acknowledged: &mut Vec<u64>| {
        if let Some(n) = line.strip_prefix("ack ") {
            acknowledged.push(n.parse().unwrap());
        }
    };
    // Let it append for a while, then cut the power under it.
    let cut_at = Instant::now() + Duration::from_millis(500);
    while Instant::now() < cut_at {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(10)) {
            take(line, &mut acknowledged);
        }
    }
    disk.shut_down().expect("shut the ext4 down");
    let acknowledged_at_cut = acknowledged.len();
    // The writer stops by itself (a refused append, or RocksDB's abort).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => take(line, &mut acknowledged),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => assert!(Instant::now() < deadline, "the writer went on appending a minute after its disk failed"),
        }
    }
    let _ = writer.0.wait();
    eprintln!("{} appends acknowledged before the cut, {} after it", acknowledged_at_cut, acknowledged.len() - acknowledged_at_cut);
    assert!(acknowledged.len() > 10, "few appends acknowledged before the cut: the test proves nothing");
    assert!(acknowledged.windows(2).all(|w| w[0] < w[1]), "acknowledged out of order");

    disk.remount().unwrap_or_else(|e| panic!("mount again after the cut: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut store = LogStore::<Config>::open(&dir).expect("the Raft log opens after a power cut");
    runtime.block_on(async {
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(7, 1)), "the synced vote was lost");
        let entries = store.try_get_log_entries(0..u64::MAX).await.unwrap();
        let last_acknowledged = *acknowledged.last().unwrap();
        assert!(entries.len() as u64 >= last_acknowledged, "{} entries after the cut, but entry {last_acknowledged} was acknowledged", entries.len());
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(*e, entry(i as u64 + 1), "entry {} after the cut is not the one appended there", i + 1);
        }
        eprintln!("{} entries after the cut, {last_acknowledged} acknowledged", entries.len());
        // The log goes on where it ends.
        let end = entries.len() as u64;
        store.blocking_append([entry(end + 1)]).await.expect("an append after the remount");
    });
}
