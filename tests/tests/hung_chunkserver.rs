//! One hung chunkserver delays only the chunks it holds. The master used to
//! grant leases under one cluster-wide lock held across its calls to
//! chunkservers: a lease whose version bump waited on a frozen chunkserver
//! (5 s, the call timeout) stalled every other lease and new chunk in the
//! cluster. Now each chunk waits only for its own operation.
//!
//! Real processes: a master and four chunkservers; one is frozen (SIGSTOP)
//! while a lease on a chunk it holds waits on it, and leases on chunks it
//! does not hold must come back in under 100 ms.

use std::time::{Duration, Instant};

use dfs_client::CreateOptions;
use dfs_tests::faults::{self, master_args, MIB};
use dfs_tests::{say, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_next_to_a_hung_chunkserver_is_not_delayed_by_it() {
    let tag = "hung-cs";
    // The harness's 2 s leases run out fast: each request below needs a
    // version bump, the calls the old lock was held across. The frozen
    // node is found dead after 1 s, but the call already sent to it hangs
    // to its 5 s timeout.
    let args = master_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = Cluster::start_custom(4, &args, |i, dir| (dir.join(format!("cs{i}")), Vec::new())).expect("start cluster");
    c.wait_live(4, Duration::from_secs(20)).await.expect("chunkservers live");
    let client = faults::client(&c.master.url);
    client.mkdir("/h", true, None).await.expect("mkdir");
    let opts = CreateOptions { replication: Some(3), chunk_size_bytes: Some(MIB), ..Default::default() };
    let mut w = client.create("/h/f", &opts).await.expect("create");
    w.write(&vec![7u8; 12 * MIB as usize]).await.expect("write 12 chunks");
    let attr = w.attr().clone();
    w.close().await.expect("close");
    let locs = client.master().locate(attr.inode, 0, 64).await.expect("locate");

    // The frozen node: the one holding the fewest chunks, so that chunks
    // without it exist (3 of 4 nodes hold each chunk).
    let holds = |i: usize, l: &dfs_proto::wire::chunks::ChunkLocation| l.replicas.iter().any(|r| c.index_of(&r.address) == Some(i));
    let hung = (0..4).min_by_key(|i| locs.chunks.iter().filter(|l| holds(*i, l)).count()).unwrap();
    let (held, free): (Vec<_>, Vec<_>) = locs.chunks.iter().partition(|l| holds(hung, l));
    assert!(!held.is_empty() && !free.is_empty(), "chunks with and without cs{hung}: {} and {}", held.len(), free.len());
    say!(tag, "cs{hung} holds {} of {} chunks; freezing it", held.len(), locs.chunks.len());
    tokio::time::sleep(Duration::from_millis(2500)).await; // every lease has run out
    c.chunkservers[hung].sigstop();

    // A lease on a chunk the frozen node holds: its bump waits on the node.
    let stuck = {
        let (client, inode, index) = (client.clone(), attr.inode, held[0].index);
        tokio::spawn(async move {
            let t = Instant::now();
            let r = client.master().lease(inode, index).await;
            (t.elapsed(), r)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stuck.is_finished(), "the lease on a chunk of the frozen node should wait for its call");

    // Leases on the other chunks, one after another, while it waits.
    let mut took = Vec::new();
    for l in &free {
        let t = Instant::now();
        let lease = client.master().lease(attr.inode, l.index).await.expect("a lease on a chunk the frozen node does not hold");
        took.push(t.elapsed());
        assert!(lease.version > l.version, "each lease bumped its chunk: {lease:?}");
    }
    took.sort();
    let median = took[took.len() / 2];
    say!(tag, "{} leases next to the frozen node: median {median:?}, slowest {:?}", took.len(), took[took.len() - 1]);
    assert!(!stuck.is_finished() || took.len() < 3, "the stuck lease ended before the others were measured");
    assert!(median < Duration::from_millis(100), "leases waited for the frozen node: {took:?}");
    assert!(took[took.len() - 1] < Duration::from_secs(2), "a lease waited for the frozen node's call: {took:?}");

    // The stuck one ends when its call times out (the client may give up
    // first); the next lease on that chunk goes on without the frozen node.
    let (waited, first) = stuck.await.unwrap();
    say!(tag, "the lease on the frozen node's chunk answered after {waited:?}: {:?}", first.as_ref().map(|l| l.version));
    let lease = faults::wait_for("a lease on the frozen node's chunk without it", Duration::from_secs(20), || {
        let client = client.clone();
        let (inode, index) = (attr.inode, held[0].index);
        async move { client.master().lease(inode, index).await.map_err(|e| e.to_string()) }
    })
    .await;
    assert!(lease.secondaries.iter().chain([&lease.primary]).all(|r| c.index_of(&r.address) != Some(hung)), "{lease:?}");
    c.chunkservers[hung].sigcont();
}
