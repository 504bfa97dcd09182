//! Three masters in a Raft group and four chunkservers, each a process on
//! a host of its own (a network namespace with its own address, joined by
//! veth pairs to a bridge), and clients that know every master: a stream
//! of creates, writes, mkdirs and renames from several clients goes on
//! while the leader is killed with SIGKILL, while the leader is cut off
//! from everyone (its link down) and then joins again, while a leader is
//! frozen (SIGSTOP, as a long pause) and thawed, and after every master is
//! restarted at once. Every acknowledged operation
//! is checked against a model of the history (bytes compared), no
//! operation may fail (a create or rename retried across a failover must
//! not be applied twice: it would fail with EEXIST or ENOENT), and the
//! masters must end with the same applied entries and the same namespace.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_client::fs::CreateOptions;
use dfs_client::Client;
use dfs_tests::faults::{fault_seed, random_bytes, SeedOnFailure};
use dfs_tests::ha::Group;
use dfs_tests::shell::dfs_with;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the clients were told: each file's path and bytes, and when each
/// acknowledgement came.
#[derive(Default)]
struct Model {
    /// The clients' directories.
    dirs: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    acks: Vec<Instant>,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Model>>;

async fn write_file(client: &Client, path: &str, data: &[u8]) -> Result<(), dfs_client::ClientError> {
    let mut w = client.create(path, &CreateOptions::default()).await?;
    w.write(data).await?;
    w.close().await.map(drop)
}

/// One client's stream in its own directory `dir` until `stop`: mostly
/// new files, some renames of its own files, a directory now and then.
async fn stream(client: Client, dir: String, seed: u64, model: Shared, stop: Arc<AtomicBool>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut mine, mut n): (Vec<String>, u32) = (Vec::new(), 0);
    if let Err(e) = client.mkdir(&dir, true, None).await {
        model.lock().unwrap().errors.push(format!("mkdir {dir}: {e}"));
        return;
    }
    model.lock().unwrap().dirs.push(dir.clone());
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let roll = rng.random_range(0..10);
        let done = if roll < 7 || mine.is_empty() {
            let path = format!("{dir}/f{n}");
            let len = rng.random_range(1..96 << 10);
            let data = random_bytes(&mut rng, len);
            let r = write_file(&client, &path, &data).await;
            r.map(|_| {
                mine.push(path.clone());
                model.lock().unwrap().files.insert(path, data);
            })
            .map_err(|e| format!("writing {dir}/f{n}: {e}"))
        } else if roll < 9 {
            let from = mine.swap_remove(rng.random_range(0..mine.len()));
            let to = format!("{dir}/r{n}");
            client
                .rename(&from, &to, true)
                .await
                .map(|_| {
                    let mut m = model.lock().unwrap();
                    let data = m.files.remove(&from).expect("renamed a file the model has");
                    m.files.insert(to.clone(), data);
                    mine.push(to.clone());
                })
                .map_err(|e| format!("renaming {from} to {to}: {e}"))
        } else {
            client.mkdir(&format!("{dir}/d{n}"), false, None).await.map(drop).map_err(|e| format!("mkdir {dir}/d{n}: {e}"))
        };
        let mut m = model.lock().unwrap();
        match done {
            Ok(()) => m.acks.push(Instant::now()),
            Err(e) => m.errors.push(e),
        }
    }
}

/// Runs `clients` streams of phase `phase` until the returned flag is
/// set; the handles end when they have stopped.
fn start_streams(urls: &str, phase: u64, clients: u64, seed: u64, model: &Shared) -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stream = |w: u64| stream(dfs_tests::faults::client(urls), format!("/p{phase}/w{w}"), seed ^ (phase << 8) ^ w, model.clone(), stop.clone());
    let tasks = (0..clients).map(|w| tokio::spawn(stream(w))).collect();
    (stop, tasks)
}

async fn stop_streams(stop: Arc<AtomicBool>, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(90), t).await.expect("a client's stream ended within 90 s").expect("a client's stream did not panic");
    }
}

/// Every file of the model reads back exact, and the namespace holds no
/// file the model does not (nothing applied that was not acknowledged,
/// nothing twice).
async fn check(client: &Client, model: &Shared) {
    let (files, dirs) = {
        let m = model.lock().unwrap();
        (m.files.clone(), m.dirs.clone())
    };
    for (path, want) in &files {
        let attr = client.stat(path).await.unwrap_or_else(|e| panic!("{path}, acknowledged, is gone: {e}"));
        let mut r = client.reader(attr);
        let got = r.read(want.len() as u64 + 1).await.unwrap_or_else(|e| panic!("reading {path}: {e}"));
        assert!(got.as_ref() == want.as_slice(), "{path} reads back {} bytes that differ from the {} written", got.len(), want.len());
    }
    let mut found = Vec::new();
    for dir in dirs {
        let names: Vec<_> = futures::StreamExt::collect::<Vec<_>>(client.list(&dir)).await;
        for e in names {
            let e = e.expect("listing a client's directory");
            if e.attr.kind == dfs_proto::wire::namespace::FileKind::File {
                found.push(format!("{dir}/{}", e.name));
            }
        }
    }
    found.sort();
    let want: Vec<String> = files.keys().cloned().collect();
    assert_eq!(found, want, "the files in the namespace are not those acknowledged");
}

fn no_errors(model: &Shared) {
    let errors = model.lock().unwrap().errors.clone();
    assert!(errors.is_empty(), "{} operations failed, the first: {:?}", errors.len(), &errors[..errors.len().min(5)]);
}

/// The first acknowledgement after `since`, as a time since it.
fn first_ack_after(model: &Shared, since: Instant) -> Option<Duration> {
    model.lock().unwrap().acks.iter().filter(|a| **a > since).min().map(|a| *a - since)
}

/// The shell, given every master, lists them with their roles, and puts
/// and reads a file through whichever leads.
async fn shell_sees_the_group(group: &Group) {
    let (urls, long) = (group.urls(), Duration::from_secs(60));
    let run = dfs_with(&urls, &["admin", "masters", "list", "--json"], None, long).await.unwrap().ok();
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let roles: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "one leader: {roles:?}");
    assert_eq!(roles.iter().filter(|r| **r == "follower").count(), 2, "two followers: {roles:?}");
    dfs_with(&urls, &["put", "-", "/from-the-shell"], Some(b"through the leader\n".to_vec()), long).await.unwrap().ok();
    let cat = dfs_with(&urls, &["cat", "/from-the-shell"], None, long).await.unwrap().ok();
    assert_eq!(cat.stdout, "through the leader\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_masters_fail_over_and_lose_nothing_acknowledged() {
    let seed = fault_seed();
    let _replay = SeedOnFailure { seed, var: "DFS_FAULT_SEED" };
    let mut group = Group::start(3, 4, seed).await.expect("three masters and four chunkservers, in namespaces");
    let urls = group.urls();
    let model: Shared = Arc::default();
    let clients = 3;

    // 1. The leader is killed while the clients write.
    let (stop, tasks) = start_streams(&urls, 1, clients, seed, &model);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old = group.leader(Duration::from_secs(5)).await.unwrap();
    let killed = Instant::now();
    group.kill(old);
    let new = group.leader_besides(&[old], Duration::from_secs(5)).await.expect("a new leader within 5 s of the kill");
    let elected = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_streams(stop, tasks).await;
    no_errors(&model);
    let first_ack = first_ack_after(&model, killed).expect("operations were acknowledged after the kill");
    eprintln!("leader {old} killed: master {new} leads after {elected:?}; first acknowledgement after {first_ack:?}");
    assert!(first_ack < Duration::from_secs(10), "the first acknowledgement came {first_ack:?} after the kill");
    let client = dfs_tests::faults::client(&urls);
    check(&client, &model).await;

    // The killed master comes back as a follower and catches up.
    group.restart(old).unwrap();
    group.converged(Duration::from_secs(30)).await.expect("the restarted master catches up");
    shell_sees_the_group(&group).await;

    // 2. The leader is cut off from everyone; the others go on without it.
    let cut = group.leader(Duration::from_secs(5)).await.unwrap();
    group.net.cut(cut).unwrap();
    let (stop, tasks) = start_streams(&urls, 2, clients, seed, &model);
    let new = group.leader_besides(&[cut], Duration::from_secs(10)).await.expect("the majority elects a leader");
    tokio::time::sleep(Duration::from_secs(2)).await;
    group.net.heal(cut).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_streams(stop, tasks).await;
    no_errors(&model);
    eprintln!("leader {cut} cut off: master {new} led meanwhile");
    group.converged(Duration::from_secs(30)).await.expect("the old leader rejoins with no divergent state");
    assert_ne!(group.figure(cut, "dfs_master_raft_leader").await, Some(1.0), "the old leader does not serve once healed");
    check(&client, &model).await;

    // 3. The leader freezes (a long pause); the others go on.
    let frozen = group.leader(Duration::from_secs(5)).await.unwrap();
    group.masters[frozen].as_ref().unwrap().sigstop();
    let (stop, tasks) = start_streams(&urls, 3, clients, seed, &model);
    let new = group.leader_besides(&[frozen], Duration::from_secs(10)).await.expect("the others elect a leader");
    tokio::time::sleep(Duration::from_secs(2)).await;
    group.masters[frozen].as_ref().unwrap().sigcont();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_streams(stop, tasks).await;
    no_errors(&model);
    eprintln!("leader {frozen} frozen: master {new} led meanwhile");
    assert_ne!(group.figure(frozen, "dfs_master_raft_leader").await, Some(1.0), "the thawed old leader does not serve");
    group.converged(Duration::from_secs(30)).await.expect("the old leader rejoins with no divergent state");
    check(&client, &model).await;

    // 4. Every master restarts at once.
    for i in 0..3 {
        group.kill(i);
    }
    for i in 0..3 {
        group.restart(i).unwrap();
    }
    group.leader(Duration::from_secs(30)).await.expect("a leader after restarting every master");
    check(&client, &model).await;
    group.converged(Duration::from_secs(30)).await.expect("the restarted masters agree");
}
