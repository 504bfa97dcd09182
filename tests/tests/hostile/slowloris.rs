//! Slowloris on a chunkserver while a client writes through it.

use std::time::{Duration, Instant};

use dfs_tests::faults::{self, Files};
use dfs_tests::insider::{self, host_port, lease, Slowloris};
use dfs_tests::say;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::*;

/// Half-open connections and trickled bodies against a chunkserver with a
/// connection cap, while a client writes files through it: the server
/// cuts the attackers off and every write completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_on_a_chunkserver_does_not_stop_writes() {
    const CAP: usize = 32;
    const FILES: usize = 5;
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let cap = CAP.to_string();
    let limits = ["--header-read-timeout-ms", "500", "--body-idle-timeout-ms", "500", "--max-connections", cap.as_str()];
    let c = cluster(&[], &limits).await;
    let client = faults::client(&c.master.url);
    let http = insider::http();
    client.mkdir("/slow", true, None).await.expect("mkdir");
    // The attacker's own file gives it a valid token for trickled writes.
    write_file(&client, "/slow/attacker", &[0u8; 4096]).await;
    let inode = client.stat("/slow/attacker").await.expect("stat").inode;
    let own = lease(&http, &c.master.url, inode, 0).await.expect("lease");
    let victim = &c.chunkservers[0];
    assert!(own.primary.address == victim.url || own.secondaries.iter().any(|r| r.address == victim.url), "all three nodes hold the attacker's chunk");
    let body_len = MIB as usize;
    let crcs = dfs_proto::wire::chunks::checksum_header(&vec![b'0'; body_len]);
    let trickle_head = format!(
        "PUT /v1/chunks/{}/data?version={}&offset=0 HTTP/1.1\r\nx-dfs-token: {}\r\nx-dfs-checksums: {crcs}\r\nContent-Length: {body_len}",
        own.handle.0, own.version.0, own.token
    );
    let attack = Slowloris::start(&host_port(&victim.url), 2 * CAP, CAP / 2, &trickle_head, Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut files = Files::new();
    let started = Instant::now();
    for i in 0..FILES {
        let path = format!("/slow/f{i}");
        let data = faults::random_bytes(&mut rng, 256 * KIB);
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(45), write_file(&client, &path, &data))
            .await
            .unwrap_or_else(|_| panic!("writing {path} under slowloris took over 45 s"));
        say!(TAG, "slowloris: {path} written in {:.2}s", t.elapsed().as_secs_f64());
        files.insert(path, data);
    }
    let writing = started.elapsed();
    let stats = attack.stop().await;
    let (opened, cut) = (stats.connections.load(std::sync::atomic::Ordering::Relaxed), stats.cut_off.load(std::sync::atomic::Ordering::Relaxed));
    say!(
        TAG,
        "slowloris: {FILES} files written in {:.1}s while {} attackers opened {opened} connections, {cut} cut off by the server",
        writing.as_secs_f64(),
        2 * CAP + CAP / 2
    );
    assert!(cut >= (2 * CAP) as u64, "the chunkserver did not cut the slow connections off ({cut} of {opened})");
    all_there(&http, &c, &files).await;
}
