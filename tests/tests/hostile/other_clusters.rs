//! Chunkservers and masters of different clusters, and masters that do
//! not know the chunks they hear about: nothing is deleted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use dfs_tests::cluster::{FAST_CHUNKSERVER, FAST_MASTER};
use dfs_tests::faults::{self, wait_healthy};
use dfs_tests::insider::{self, host_port, master_key_file, replica_files, Daemon};
use dfs_tests::{say, Cluster};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::*;

/// Flags of a master that would delete replicas of chunks it does not
/// know quickly, if it took a chunkserver's report: a short GC grace, no
/// start-up delay, a short safe mode.
fn eager_master(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = FAST_MASTER.iter().map(|s| s.to_string()).collect();
    v.extend(master_flags(&["--gc-grace-ms", "1000"]));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Heartbeats `master` refused (401 or 403), from its `/metrics`.
async fn refused_heartbeats(master: &str) -> u64 {
    let Ok(r) = insider::send(insider::http().get(format!("{master}/metrics"))).await else { return 0 };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("dfs_master_http_requests_total{") && l.contains(r#"route="/v1/heartbeat""#))
        .filter(|l| l.contains(r#"status="401""#) || l.contains(r#"status="403""#))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, n)| n.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

/// Waits until `master` has refused `n` more heartbeats than `from`: the
/// chunkservers did reach it (so nothing was kept safe by silence).
async fn wait_refusals(master: &str, from: u64, n: u64, what: &str) -> u64 {
    faults::wait_for(&format!("{what}: {n} heartbeats refused"), Duration::from_secs(30), || async {
        let now = refused_heartbeats(master).await;
        if now >= from + n {
            Ok(now)
        } else {
            Err(format!("{} refused", now - from.min(now)))
        }
    })
    .await
}

/// Every chunkserver's replica files.
fn holdings(c: &Cluster) -> Vec<BTreeMap<String, String>> {
    (0..c.chunkservers.len()).map(|i| replica_files(&c.cs_dir(i))).collect()
}

/// Points chunkserver `i` of `c` (stopped for this) at `master` with the
/// key file `key` for a few seconds: it must not be registered there, and
/// must not delete or change a replica. Then it goes back to its cluster.
async fn visit(c: &mut Cluster, i: usize, master: &str, key: &Path, what: &str) {
    let before = replica_files(&c.cs_dir(i));
    assert!(!before.is_empty(), "chunkserver {i} holds nothing to lose");
    let listen = host_port(&c.chunkservers[i].url);
    c.chunkservers[i].kill9();
    let mut args: Vec<&str> = FAST_CHUNKSERVER.to_vec();
    let key = key.display().to_string();
    args.extend(["--cluster-key-file", key.as_str()]);
    let from = refused_heartbeats(master).await;
    let mut stray = Daemon::chunkserver(&listen, master, &c.cs_dir(i), &args).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Refused once, then past the master's GC grace (1 s), refused again.
    let seen = wait_refusals(master, from, 1, what).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_refusals(master, seen, 1, what).await;
    assert!(stray.is_running(), "{what}: the chunkserver exited");
    let listed = insider::send_reply(insider::http().get(format!("{master}/v1/chunkservers"))).await.expect("list");
    assert_eq!(listed.body, json!([]), "{what}: the master took the chunkserver");
    stray.kill();
    assert_eq!(replica_files(&c.cs_dir(i)), before, "{what}: the chunkserver's replicas changed");
    c.chunkservers[i].restart(true).expect("restart in its own cluster");
    say!(TAG, "{what}: refused, nothing deleted");
}

/// A chunkserver pointed at the master of another cluster: with its own
/// key (the signatures fail) and with the other cluster's key file (its
/// recorded cluster id differs). Neither master takes it; it deletes
/// nothing; back in its cluster, everything is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunkserver_refuses_a_master_of_another_cluster_and_deletes_nothing() {
    let mut rng = StdRng::seed_from_u64(dfs_tests::seed());
    let mut c = cluster(&[], &[]).await;
    let client = faults::client(&c.master.url);
    let files = write_files(&client, "/x", &mut rng).await;
    let other_dir = c.dir.path().join("other-master");
    let other = Daemon::master("127.0.0.1:0", &other_dir, &strs(&eager_master(&[]))).expect("other master");
    let own_key = master_key_file(&c.master.data_dir);
    visit(&mut c, 0, &other.url, &own_key, "a chunkserver with its key at another cluster's master").await;
    visit(&mut c, 1, &other.url, &master_key_file(&other_dir), "a chunkserver given the other cluster's key file").await;
    c.wait_live(3, Duration::from_secs(45)).await.expect("back in their cluster");
    all_there(&insider::http(), &c, &files).await;
}

/// A master formatted with this cluster's key (copied in before its first
/// start) is another cluster all the same: its cluster id differs, and a
/// chunkserver of this cluster is refused there and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_with_the_same_key_but_another_cluster_id_gets_no_chunkserver() {
    let mut rng = StdRng::seed_from_u64(dfs_tests::seed());
    let mut c = cluster(&[], &[]).await;
    let client = faults::client(&c.master.url);
    let files = write_files(&client, "/y", &mut rng).await;
    let twin_dir = c.dir.path().join("twin-master");
    std::fs::create_dir_all(&twin_dir).expect("mkdir");
    let key = master_key_file(&c.master.data_dir);
    copy_key(&key, &master_key_file(&twin_dir));
    let twin = Daemon::master("127.0.0.1:0", &twin_dir, &strs(&eager_master(&[]))).expect("twin master");
    let ids =
        |url: String| async move { insider::send_reply(insider::http().get(format!("{url}/v1/cluster"))).await.expect("cluster").body["cluster_id"].clone() };
    let (ours, theirs) = (ids(c.master.url.clone()).await, ids(twin.url.clone()).await);
    assert!(ours.is_string() && theirs.is_string() && ours != theirs, "cluster ids {ours} and {theirs}");
    visit(&mut c, 2, &twin.url, &key, "a chunkserver at a master with the same key and another cluster id").await;
    c.wait_live(3, Duration::from_secs(45)).await.expect("back in its cluster");
    all_there(&insider::http(), &c, &files).await;
}

fn copy_key(from: &Path, to: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let text = std::fs::read(from).expect("read the key file");
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to).expect("create the key file");
    std::io::Write::write_all(&mut f, &text).expect("write the key file");
}

/// The master of a cluster replaced, on its own address, by masters that
/// do not know its chunks: one on an empty directory (a new key), one on
/// an empty directory given the cluster's key file (another cluster id),
/// and one on an old copy of its own directory (the same cluster, missing
/// the newest file; it must wait out the start-up deletion delay). None
/// deletes anything; the right master back, every byte is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masters_on_an_empty_or_old_directory_delete_nothing() {
    let mut rng = StdRng::seed_from_u64(dfs_tests::seed());
    let mut c = cluster(&[], &[]).await;
    let client = faults::client(&c.master.url);
    let mut files = write_files(&client, "/z", &mut rng).await;
    // An old copy of the master's directory, without the newest file.
    let old = c.dir.path().join("old-master");
    c.master.kill9();
    copy_dir(&c.master.data_dir, &old);
    c.master.restart().expect("restart");
    c.wait_live(3, LIVE).await.expect("live");
    let newest = faults::random_bytes(&mut rng, 200 * KIB);
    write_file(&client, "/z/newest", &newest).await;
    files.insert("/z/newest".into(), newest);
    wait_healthy(&c.master.url, HEAL, true).await;
    let before = holdings(&c);
    let listen = host_port(&c.master.url);
    let key = master_key_file(&c.master.data_dir).display().to_string();
    c.master.kill9();
    // The same cluster, missing the newest file: the chunkservers register,
    // safe mode ends, and only the start-up deletion delay (an hour, the
    // default) keeps the newest file's replicas past the GC grace.
    let mut flags: Vec<String> = FAST_MASTER.iter().map(|s| s.to_string()).collect();
    flags.extend(master_flags(&["--gc-grace-ms", "1000", "--startup-delete-delay-ms", "3600000"]));
    let m = Daemon::master(&listen, &old, &strs(&flags)).expect("a master on an old copy");
    let registered = || async {
        let r = insider::reply(insider::send(insider::http().get(format!("{}/v1/admin/replication", m.url))).await.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())?;
        let nodes = insider::reply(insider::send(insider::http().get(format!("{}/v1/chunkservers", m.url))).await.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())?;
        let live = nodes.body.as_array().map_or(0, |n| n.iter().filter(|n| n["state"] == "live").count());
        match (live, &r.body["safe_mode"]["on"]) {
            (3, Value::Bool(false)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    };
    faults::wait_for("the old copy's master takes the chunkservers and leaves safe mode", Duration::from_secs(30), registered).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(m);
    assert_eq!(holdings(&c), before, "a master on an old copy of its directory had replicas deleted or changed");
    say!(TAG, "a master on an old copy of its directory: nothing deleted");
    // Other clusters on the same address: refused, whatever the GC grace.
    let episodes = [
        ("an empty directory", c.dir.path().join("empty-1"), eager_master(&[])),
        ("an empty directory and the cluster's key", c.dir.path().join("empty-2"), eager_master(&["--cluster-key-file", &key])),
    ];
    for (what, dir, flags) in episodes {
        let m = Daemon::master(&listen, &dir, &strs(&flags)).unwrap_or_else(|e| panic!("a master on {what}: {e}"));
        // Every chunkserver refused (retrying with backoff), then past the GC grace (1 s), refused again.
        let seen = wait_refusals(&m.url, 0, 3, &format!("a master on {what}")).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        wait_refusals(&m.url, seen, 1, &format!("a master on {what}")).await;
        let listed = insider::send_reply(insider::http().get(format!("{}/v1/chunkservers", m.url))).await.expect("list");
        assert_eq!(listed.body, json!([]), "a master on {what} took chunkservers of another cluster");
        drop(m);
        assert_eq!(holdings(&c), before, "a master on {what} had replicas deleted or changed");
        say!(TAG, "a master on {what}: chunkservers refused, nothing deleted");
    }
    c.master.restart().expect("the right master again");
    c.wait_live(3, Duration::from_secs(45)).await.expect("chunkservers back");
    all_there(&insider::http(), &c, &files).await;
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().expect("run cp");
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}
