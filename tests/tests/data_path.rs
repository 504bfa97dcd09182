//! The replicated data path end to end: a real master and real chunkservers
//! on loopback, written and read through the client library.

use std::time::Duration;

use bytes::Bytes;
use dfs_client::Client;
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::wire::chunks::{checksum_header, ChunkLocation, ReplicaAddr, HEADER_CHECKSUMS, HEADER_FORWARD};
use dfs_proto::wire::namespace::{Attr, CreateRequest, EntryRef};
use dfs_proto::ErrorKind;
use dfs_tests::Cluster;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

const MIB: u64 = 1 << 20;
const LIVE_WAIT: Duration = Duration::from_secs(15);

async fn cluster(n: usize) -> Cluster {
    let c = Cluster::start(n).expect("start cluster");
    c.wait_live(n, LIVE_WAIT).await.expect("chunkservers live");
    c
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

async fn create(client: &Client, path: &str, replication: u16, chunk_size: u64) -> Attr {
    let req =
        CreateRequest { at: EntryRef::path(path), replication: Some(replication), chunk_size_bytes: Some(chunk_size), exclusive: true, ..Default::default() };
    client.master().create(&req).await.expect("create").attr
}

async fn locations(client: &Client, attr: &Attr) -> Vec<ChunkLocation> {
    client.master().locate(attr.inode, 0, 1024).await.expect("locate").chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_mib_with_three_replicas_reads_back_from_each_replica() {
    let c = cluster(4).await;
    let client = dfs_tests::client(&c.master.url);
    let seed = dfs_tests::seed();
    let data = random_bytes(seed, 200 * MIB as usize);
    let attr = create(&client, "/big", 3, 64 * MIB).await;
    client.write_at(&attr, 0, Bytes::from(data.clone())).await.expect("write");
    let attr = client.master().stat("/big").await.unwrap();
    assert_eq!(attr.size, 200 * MIB);

    let chunks = locations(&client, &attr).await;
    assert_eq!(chunks.len(), 4);
    let mut nodes_used = std::collections::HashSet::new();
    for chunk in &chunks {
        assert_eq!(chunk.replicas.len(), 3, "chunk {} has {:?}", chunk.index, chunk.replicas);
        let distinct: std::collections::HashSet<_> = chunk.replicas.iter().map(|r| r.node_id).collect();
        assert_eq!(distinct.len(), 3, "replicas must be on distinct chunkservers");
        let start = (chunk.index * 64 * MIB) as usize;
        let end = (start + 64 * MIB as usize).min(data.len());
        for replica in &chunk.replicas {
            nodes_used.insert(replica.node_id);
            let got = client.read_replica(replica, chunk, 0, (end - start) as u64).await.expect("replica read");
            assert!(got[..] == data[start..end], "chunk {} differs on {}", chunk.index, replica.address);
        }
    }
    assert_eq!(nodes_used.len(), 4, "placement should use all four chunkservers");
    let whole = client.read_at(&attr, 0, attr.size).await.expect("read");
    assert!(whole[..] == data[..]);
    // A range that spans a chunk boundary, at odd offsets.
    let (off, len) = (64 * MIB - 12_345, 100_001u64);
    let part = client.read_at(&attr, off, len).await.unwrap();
    assert!(part[..] == data[off as usize..(off + len) as usize]);
    client.fsync(&attr).await.expect("fsync on every replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_at_offsets_and_concurrent_writers_on_different_chunks() {
    let c = cluster(3).await;
    let client = std::sync::Arc::new(dfs_tests::client(&c.master.url));
    let seed = dfs_tests::seed();
    let attr = create(&client, "/multi", 3, MIB).await;
    let mut expected = vec![0u8; 8 * MIB as usize];
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let piece = random_bytes(seed + w, MIB as usize);
        expected[(w * MIB) as usize..((w + 1) * MIB) as usize].copy_from_slice(&piece);
        let (client, attr) = (client.clone(), attr.clone());
        tasks.push(tokio::spawn(async move { client.write_at(&attr, w * MIB, Bytes::from(piece)).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("concurrent write");
    }
    // Overwrite small unaligned ranges, one straddling a chunk boundary.
    for (off, len) in [(5u64, 1u64), (MIB - 3, 7), (3 * MIB + 65_535, 70_000)] {
        let patch = random_bytes(seed ^ off, len as usize);
        expected[off as usize..(off + len) as usize].copy_from_slice(&patch);
        client.write_at(&attr, off, Bytes::from(patch)).await.expect("patch");
    }
    let attr = client.master().stat("/multi").await.unwrap();
    let got = client.read_at(&attr, 0, attr.size).await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got[..] == expected[..], "read back differs");
}

/// Finds the data file of `handle` in a chunkserver's data directory.
fn data_file(dir: &std::path::Path, handle: u64) -> std::path::PathBuf {
    dir.join("chunks").join(format!("{handle:016x}.data"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_byte_is_detected_and_the_read_fails_over() {
    let c = cluster(3).await;
    let client = dfs_tests::client(&c.master.url);
    let data = random_bytes(dfs_tests::seed(), 3 * MIB as usize);
    let attr = create(&client, "/f", 3, MIB).await;
    client.write_at(&attr, 0, Bytes::from(data.clone())).await.unwrap();
    let attr = client.master().stat("/f").await.unwrap();
    let chunk = locations(&client, &attr).await.remove(1);
    // Corrupt the replica a reader tries first for this chunk.
    let victim = chunk.replicas[0].clone();
    let idx = c.chunkservers.iter().position(|cs| cs.url == victim.address).expect("victim is ours");
    let path = data_file(&c.cs_dir(idx), chunk.handle.0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    // The client reads everything right: the bad replica refuses, the next serves.
    let got = client.read_at(&attr, 0, attr.size).await.expect("read with fail-over");
    assert!(got[..] == data[..]);
    // The bad replica was moved aside and reported: never served again...
    let err = client.read_replica(&victim, &chunk, 0, MIB).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::EIO | ErrorKind::ENOENT), "{err}");
    // ...and the master no longer hands it out (re-replication may have
    // added a copy on the fourth node meanwhile).
    let after = locations(&client, &attr).await.remove(1);
    assert!(after.replicas.len() >= 2, "{after:?}");
    assert!(after.replicas.iter().all(|r| r.node_id != victim.node_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_with_an_old_version_is_never_used() {
    let mut c = cluster(4).await;
    let client = dfs_tests::client(&c.master.url);
    let attr = create(&client, "/v", 3, MIB).await;
    client.write_at(&attr, 0, Bytes::from(vec![1u8; 1000])).await.unwrap();
    let before = locations(&client, &attr).await.remove(0);
    let stale = before.replicas[1].clone();
    let idx = c.chunkservers.iter().position(|cs| cs.url == stale.address).unwrap();

    // The replica misses a lease: it is down while the chunk is written again.
    c.chunkservers[idx].kill9();
    c.wait_live(3, LIVE_WAIT).await.unwrap();
    client.write_at(&attr, 0, Bytes::from(vec![2u8; 1000])).await.expect("write without the dead replica");
    let during = locations(&client, &attr).await.remove(0);
    assert!(during.version > before.version, "a new lease bumps the version");
    c.chunkservers[idx].restart(true).unwrap();
    c.wait_live(4, LIVE_WAIT).await.unwrap();
    // Give it time for a full report; it still must not be listed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = locations(&client, &attr).await.remove(0);
    assert_eq!(after.version, during.version);
    assert!(after.replicas.iter().all(|r| r.node_id != stale.node_id), "stale replica listed: {after:?}");
    // Asked directly at the current version, it refuses with a version
    // conflict, or it is gone already (the master has it deleted as stale).
    let stale_now = ReplicaAddr { node_id: stale.node_id, address: c.chunkservers[idx].url.clone() };
    let err = client.read_replica(&stale_now, &after, 0, 1000).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::ESTALE | ErrorKind::ENOENT), "{err}");
    let attr = client.master().stat("/v").await.unwrap();
    assert_eq!(&client.read_at(&attr, 0, 1000).await.unwrap()[..], &[2u8; 1000][..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunkserver_restarted_on_another_port_is_recognised() {
    let mut c = cluster(3).await;
    let client = dfs_tests::client(&c.master.url);
    let attr = create(&client, "/r", 3, MIB).await;
    client.write_at(&attr, 0, Bytes::from(vec![7u8; 5000])).await.unwrap();
    // Synced: a replica that crashed with unsynced writes is not served
    // when copies that never crashed exist (tests/data_safety.rs).
    client.fsync(&client.master().stat("/r").await.unwrap()).await.unwrap();
    let old_url = c.chunkservers[0].url.clone();
    let id_before: Vec<_> = c.chunkservers().await.unwrap().iter().map(|n| n["node_id"].clone()).collect();
    c.chunkservers[0].restart(false).unwrap();
    assert_ne!(c.chunkservers[0].url, old_url);
    let new_url = c.chunkservers[0].url.clone();
    let deadline = std::time::Instant::now() + LIVE_WAIT;
    loop {
        let nodes = c.chunkservers().await.unwrap();
        if nodes.iter().any(|n| n["address"] == new_url.as_str() && n["state"] == "live") {
            assert_eq!(nodes.len(), 3, "the same node, not a new one: {nodes:?}");
            let mut ids: Vec<_> = nodes.iter().map(|n| n["node_id"].clone()).collect();
            let mut before = id_before.clone();
            ids.sort_by_key(|v| v.to_string());
            before.sort_by_key(|v| v.to_string());
            assert_eq!(ids, before);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "restarted node not seen at {new_url}: {nodes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let chunk = locations(&client, &attr).await.remove(0);
    assert!(chunk.replicas.iter().any(|r| r.address == new_url), "{chunk:?}");
    let attr = client.master().stat("/r").await.unwrap();
    assert_eq!(&client.read_at(&attr, 0, 5000).await.unwrap()[..], &[7u8; 5000][..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_writes_get_4xx_and_leave_the_replica_unchanged() {
    let c = cluster(3).await;
    let client = dfs_tests::client(&c.master.url);
    let attr = create(&client, "/bad", 1, MIB).await;
    client.write_at(&attr, 0, Bytes::from(vec![5u8; 100_000])).await.unwrap();
    let chunk = locations(&client, &attr).await.remove(0);
    let replica = chunk.replicas[0].clone();
    let http = reqwest::Client::new();
    let url = |h: u64, v: u64, off: u64| format!("{}/v1/chunks/{h}/data?version={v}&offset={off}", replica.address);
    // The writer's token (the lease it holds is renewed, same version).
    let lease = client.master().lease(attr.inode, 0).await.unwrap();
    let token = lease.token.clone();
    let (h, v) = (lease.handle.0, lease.version.0);
    assert_eq!(v, chunk.version.0);
    let body = vec![9u8; 1000];
    let good_crc = checksum_header(&body);
    // Another chunk or version than the token's is refused before it is looked up.
    let cases: Vec<(String, String, Vec<u8>, u16, &str)> = vec![
        (url(h + 1000, v, 0), good_crc.clone(), body.clone(), 403, "EACCES"),
        (url(h, v + 1, 0), good_crc.clone(), body.clone(), 403, "EACCES"),
        (url(h, v.saturating_sub(1), 0), good_crc.clone(), body.clone(), 403, "EACCES"),
        (url(h, v, MIB - 10), good_crc.clone(), body.clone(), 400, "EINVAL"),
        (url(h, v, 0), "deadbeef".into(), body.clone(), 400, "EINVAL"),
        (url(h, v, 0), String::new(), body.clone(), 400, "EINVAL"),
        (url(h, v, 0), "zz".into(), body.clone(), 400, "EINVAL"),
    ];
    for (u, crc, b, status, kind) in cases {
        let r = http.put(&u).header(HEADER_CHECKSUMS, crc.clone()).header(HEADER_TOKEN, &token).body(b).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{u} crc {crc:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], kind, "{u}: {body}");
    }
    // No token, or a read-only one: refused.
    let r = http.put(url(h, v, 0)).header(HEADER_CHECKSUMS, &good_crc).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http.put(url(h, v, 0)).header(HEADER_CHECKSUMS, &good_crc).header(HEADER_TOKEN, &chunk.token).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .put(url(h, v, 0))
        .header(HEADER_CHECKSUMS, &good_crc)
        .header(HEADER_TOKEN, &token)
        .header(HEADER_FORWARD, "ftp://x")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Reads past the chunk size, and a bad query.
    let r =
        http.get(format!("{}/v1/chunks/{h}/data?version={v}&offset={}&length=10", replica.address, 2 * MIB)).header(HEADER_TOKEN, &token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http.get(format!("{}/v1/chunks/{h}/data?version=x", replica.address)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // A body shorter than announced, over a raw connection.
    let addr = replica.address.trim_start_matches("http://").to_string();
    let crc = checksum_header(&[1u8; 50]);
    let raw = format!("PUT /v1/chunks/{h}/data?version={v}&offset=0 HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n{HEADER_CHECKSUMS}: {crc}\r\n{HEADER_TOKEN}: {token}\r\n\r\n");
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        s.write_all(&[1u8; 50]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(!answer.starts_with("HTTP/1.1 200"), "a short body must not succeed: {answer}");

    // Nothing above changed the stored bytes.
    let got = client.read_replica(&replica, &chunk, 0, 200_000).await.unwrap();
    assert_eq!(got.len(), 100_000);
    assert!(got.iter().all(|b| *b == 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_after_a_truncate_is_not_lost() {
    let c = cluster(3).await;
    let client = dfs_tests::client(&c.master.url);
    let attr = create(&client, "/t", 3, MIB).await;
    client.write_at(&attr, 0, Bytes::from(vec![1u8; 3000])).await.unwrap();
    // Truncate to 0 (the chunk is dropped) while the client still caches its lease.
    let r = c.api.post("/v1/setattr", &serde_json::json!({"path": "/t", "size": 0})).await.unwrap();
    assert!(r.ok(), "{}", r.body);
    client.write_at(&attr, 0, Bytes::from(vec![2u8; 10])).await.expect("write after truncate");
    let attr = client.master().stat("/t").await.unwrap();
    assert_eq!(attr.size, 10);
    assert_eq!(&client.read_at(&attr, 0, 10).await.unwrap()[..], &[2u8; 10][..]);
    assert_eq!(locations(&client, &attr).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_whose_placement_failed_is_placed_on_the_next_try() {
    let mut c = cluster(0).await;
    let client = dfs_tests::client(&c.master.url);
    let attr = create(&client, "/p", 1, MIB).await;
    // No chunkserver at all is temporary (they may be restarting), not ENOSPC.
    let err = client.master().lease(attr.inode, 0).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::EAGAIN, "{err}");
    let cs = dfs_tests::ChunkserverProcess::start(&c.master.url, &c.dir.path().join("late"), dfs_tests::cluster::FAST_CHUNKSERVER).unwrap();
    c.chunkservers.push(cs);
    c.wait_live(1, LIVE_WAIT).await.unwrap();
    client.write_at(&attr, 0, Bytes::from(vec![3u8; 100])).await.expect("write once a chunkserver is there");
    let attr = client.master().stat("/p").await.unwrap();
    assert_eq!(&client.read_at(&attr, 0, 100).await.unwrap()[..], &[3u8; 100][..]);
}
