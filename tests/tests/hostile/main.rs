//! The hostile-client suite of #19 ("cluster trust"): each attack of the
//! issue against a running cluster with data in it, then proof that every
//! acknowledged byte is still there (`dfs fsck` healthy, every file and
//! every listed replica byte-equal) and that nothing the attacker sent was
//! adopted (versions and replica sets as before, nothing deleted, no
//! request reached a URL the attacker named).
//!
//! - `attacks_on_a_running_cluster_change_nothing`: one cluster for the
//!   attacks that leave it as it was: unsigned, forged and replayed
//!   internal requests; data requests without a token, with an expired
//!   one, one for another chunk or version, a read-only one; replicate
//!   with a hostile source; forwards to a foreign URL; u64::MAX versions,
//!   offsets and lengths; bad-replica reports from outsiders; oversized
//!   bodies; forged heartbeats (unsigned; signed by an insider: high
//!   versions, a stolen node id, huge capacity, version u64::MAX). The
//!   cluster they share is `world`.
//! - `slowloris_on_a_chunkserver_does_not_stop_writes`.
//! - `a_chunkserver_refuses_a_master_of_another_cluster_and_deletes_nothing`
//!   (another key; that cluster's key but this cluster's id recorded) and
//!   `a_master_with_the_same_key_but_another_cluster_id_gets_no_chunkserver`.
//! - `masters_on_an_empty_or_old_directory_delete_nothing`.

mod heartbeats;
mod other_clusters;
mod running;
mod slowloris;
mod world;

use std::collections::BTreeMap;
use std::time::Duration;

use dfs_client::{Client, CreateOptions};
use dfs_proto::wire::chunks::ChunkLocations;
use dfs_tests::api::Reply;
use dfs_tests::faults::{self, check_files, first_diff, wait_healthy, Files};
use dfs_tests::insider::{get_data, locations, Insider};
use dfs_tests::{say, Cluster};
use rand::rngs::StdRng;

pub const TAG: &str = "hostile";
pub const LIVE: Duration = Duration::from_secs(20);
pub const HEAL: Duration = Duration::from_secs(45);
pub const KIB: usize = 1024;
pub const MIB: u64 = 1 << 20;
/// Chunk tokens live 2 s in the shared cluster, so an expired one is quick to get.
pub const TOKEN_LIFETIME: Duration = Duration::from_millis(2_000);

/// The fault tests' master flags (short GC grace, no start-up deletion
/// delay, 1 MiB chunks: a deletion that should not happen happens
/// quickly), plus `extra`.
pub fn master_flags(extra: &[&str]) -> Vec<String> {
    faults::master_args(extra)
}

pub async fn cluster(master_extra: &[&str], cs_extra: &[&str]) -> Cluster {
    let flags = master_flags(master_extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cs_extra: Vec<String> = cs_extra.iter().map(|s| s.to_string()).collect();
    let c = Cluster::start_custom(3, &flags, |i, dir| (dir.join(format!("cs{i}")), cs_extra.clone())).expect("start cluster");
    c.wait_live(3, LIVE).await.expect("3 live chunkservers");
    c
}

/// Writes `data` to a new file at `path`, three copies.
pub async fn write_file(client: &Client, path: &str, data: &[u8]) {
    let opts = CreateOptions { replication: Some(3), overwrite: true, ..Default::default() };
    let mut w = client.create(path, &opts).await.unwrap_or_else(|e| panic!("create {path}: {e}"));
    w.write(data).await.unwrap_or_else(|e| panic!("write {path}: {e}"));
    w.close().await.unwrap_or_else(|e| panic!("close {path}: {e}"));
}

/// A few files of different shapes (one of two chunks), remembered.
pub async fn write_files(client: &Client, root: &str, rng: &mut StdRng) -> Files {
    client.mkdir(root, true, None).await.expect("mkdir");
    let mut files = Files::new();
    for (name, len) in [("small", 1000), ("medium", 300 * KIB), ("two-chunks", 1536 * KIB), ("tiny", 1)] {
        let path = format!("{root}/{name}");
        let data = faults::random_bytes(rng, len);
        write_file(client, &path, &data).await;
        files.insert(path, data);
    }
    files
}

pub fn refused(r: &Reply, status: u16, kind: &str, what: &str) {
    assert_eq!((r.status, r.kind()), (status, kind), "{what}: expected {status} {kind}, got {r:?}");
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: the error has no message: {r:?}");
}

/// A 4xx with a JSON error body.
pub fn client_error(r: &Reply, what: &str) {
    assert!((400..500).contains(&r.status), "{what}: expected a 4xx, got {r:?}");
    assert!(!r.kind().is_empty(), "{what}: the 4xx has no JSON error body: {r:?}");
}

/// Not a server error (and an answer at all: the caller unwrapped it).
pub fn no_server_error(r: &Reply, what: &str) {
    assert!(r.status < 500 || r.status == 503, "{what}: server error {r:?}");
}

/// What the master lists for every file: path → locations.
pub async fn all_locations(http: &reqwest::Client, c: &Cluster, client: &Client, files: &Files) -> BTreeMap<String, ChunkLocations> {
    let mut out = BTreeMap::new();
    for path in files.keys() {
        let attr = client.stat(path).await.unwrap_or_else(|e| panic!("stat {path}: {e}"));
        out.insert(path.clone(), locations(http, &c.master.url, attr.inode).await.expect("locate"));
    }
    out
}

/// (handle, version, sorted replica addresses) of every chunk: what an
/// attacker must not change.
pub fn shape(locs: &BTreeMap<String, ChunkLocations>) -> Vec<(String, u64, u64, Vec<String>)> {
    let mut out = Vec::new();
    for (path, l) in locs {
        for c in &l.chunks {
            let mut addrs: Vec<String> = c.replicas.iter().map(|r| r.address.clone()).collect();
            addrs.sort();
            out.push((path.clone(), c.handle.0, c.version.0, addrs));
        }
    }
    out
}

/// Every listed replica of every file, read straight from its chunkserver
/// with the location's token, holds exactly the acknowledged bytes, and
/// every chunk has `replication` of them.
pub async fn every_replica_holds(http: &reqwest::Client, c: &Cluster, client: &Client, files: &Files, replication: usize) {
    for (path, l) in all_locations(http, c, client, files).await {
        let want = &files[&path];
        let cs = l.chunk_size_bytes as usize;
        for chunk in &l.chunks {
            let (start, end) = (chunk.index as usize * cs, ((chunk.index as usize + 1) * cs).min(want.len()));
            if start >= end {
                continue;
            }
            assert_eq!(chunk.replicas.len(), replication, "{path} chunk {}: {:?}", chunk.index, chunk.replicas);
            for r in &chunk.replicas {
                let (status, body) =
                    get_data(http, &r.address, chunk.handle.0, chunk.version.0, 0, (end - start) as u64, Some(&chunk.token)).await.expect("read a replica");
                assert_eq!(status, 200, "{path} chunk {} on {}: {}", chunk.index, r.address, String::from_utf8_lossy(&body));
                assert_eq!(first_diff(&body, &want[start..end]), None, "{path} chunk {} on {}: other bytes than acknowledged", chunk.index, r.address);
            }
        }
    }
}

/// The end of every test: fsck healthy without surplus, every file and
/// every replica byte-equal.
pub async fn all_there(http: &reqwest::Client, c: &Cluster, files: &Files) {
    wait_healthy(&c.master.url, HEAL, true).await;
    let client = faults::client(&c.master.url);
    faults::wait_for("every file reads back exact", Duration::from_secs(30), || check_files(&client, files)).await;
    every_replica_holds(http, c, &client, files, 3).await;
    say!(TAG, "fsck healthy; {} files and every replica byte-equal", files.len());
}

/// A signed `GET {cs}/v1/chunks/{h}`: the replica's (version, length).
pub async fn replica_info(insider: &Insider, cs: &str, handle: u64) -> Option<(u64, u64)> {
    let r = insider.send(insider.http.get(format!("{cs}/v1/chunks/{handle}"))).await.expect("info");
    match r.status {
        404 => None,
        200 => Some((r.body["version"].as_u64().expect("version"), r.body["length"].as_u64().expect("length"))),
        _ => panic!("info of {handle} on {cs}: {r:?}"),
    }
}
