//! One process per data directory: a second `dfs-master` or
//! `dfs-chunkserver` started on a directory in use exits non-zero with a
//! one-line message, the first one keeps serving, and once the first is
//! killed a new one starts on the same directory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dfs_tests::cluster::Cluster;
use dfs_tests::process::bin_dir;

/// Runs a second daemon on a directory in use; returns its exit code and
/// stderr. Bounded: a daemon that starts serving instead is killed and the
/// test fails.
fn run_second(binary: &str, args: &[String]) -> (Option<i32>, String) {
    let mut child = Command::new(bin_dir().expect("binaries built").join(binary))
        .args(args)
        .env("DFS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the second daemon");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("a second {binary} on the same data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect the output");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn args(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().flat_map(|(k, v)| [k.to_string(), v.to_string()]).collect()
}

fn assert_refused(binary: &str, dir: &Path, (code, stderr): (Option<i32>, String)) {
    assert_eq!(code, Some(1), "{binary} exit code; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    let line = lines[0];
    assert!(line.starts_with(&format!("{binary}: data directory {}", dir.display())), "{line}");
    assert!(line.contains("is in use by another process") && line.contains("refusing to start"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_a_data_directory_in_use_refuses_to_start() {
    let mut c = Cluster::start(1).expect("cluster");
    c.wait_live(1, Duration::from_secs(10)).await.expect("chunkserver live");
    let master_dir = c.master.data_dir.clone();
    let cs_dir = c.cs_dir(0);

    // Port 0: only the directory is shared, so only the lock can stop them.
    let second_master = run_second("dfs-master", &args(&[("--listen", "127.0.0.1:0"), ("--data-dir", &master_dir.display().to_string())]));
    assert_refused("dfs-master", &master_dir, second_master);
    let key = dfs_tests::process::key_file_of(&c.master.url).expect("the master's key file");
    let cs_args = args(&[
        ("--listen", "127.0.0.1:0"),
        ("--master", &c.master.url),
        ("--data-dir", &cs_dir.display().to_string()),
        ("--cluster-key-file", &key.display().to_string()),
    ]);
    assert_refused("dfs-chunkserver", &cs_dir, run_second("dfs-chunkserver", &cs_args));

    // The first ones are unharmed: the master answers, the chunkserver stays live.
    let root = c.api.get("/v1/stat?path=/").await.expect("master answers");
    assert!(root.ok(), "{root:?}");
    assert!(c.chunkservers[0].is_running());
    c.wait_live(1, Duration::from_secs(5)).await.expect("still live");

    // Once the holders are gone (kill -9: no clean-up), new ones start.
    c.master.restart().expect("a new master on the same directory");
    c.chunkservers[0].restart(false).expect("a new chunkserver on the same directory");
    c.api = dfs_tests::Api::new(&c.master.url);
    c.wait_live(1, Duration::from_secs(10)).await.expect("the new chunkserver is live");
}
