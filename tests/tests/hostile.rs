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
//!   versions, a stolen node id, huge capacity, version u64::MAX).
//! - `slowloris_on_a_chunkserver_does_not_stop_writes`.
//! - `a_chunkserver_refuses_a_master_of_another_cluster_and_deletes_nothing`
//!   (another key; that cluster's key but this cluster's id recorded) and
//!   `a_master_with_the_same_key_but_another_cluster_id_gets_no_chunkserver`.
//! - `masters_on_an_empty_or_old_directory_delete_nothing`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use dfs_client::{Client, CreateOptions};
use dfs_common::wire::chunks::{ChunkLocation, ChunkLocations, Heartbeat, ReplicaReport, ScrubProgress, WriteLease};
use dfs_common::{ChunkVersion, InodeId, NodeId};
use dfs_tests::api::Reply;
use dfs_tests::cluster::{FAST_CHUNKSERVER, FAST_MASTER};
use dfs_tests::faults::{self, check_files, first_diff, wait_healthy, Files};
use dfs_tests::insider::{self, closed_port_url, fake_heartbeat, get_data, host_port, lease, locations, master_key_file, put_data, raw_request, replica_files, Daemon, Insider, Slowloris, Trap};
use dfs_tests::{say, Cluster};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const TAG: &str = "hostile";
const LIVE: Duration = Duration::from_secs(20);
const HEAL: Duration = Duration::from_secs(45);
const KIB: usize = 1024;
const MIB: u64 = 1 << 20;
/// Chunk tokens live 2 s in the shared cluster, so an expired one is quick to get.
const TOKEN_LIFETIME: Duration = Duration::from_millis(2_000);

/// The fault tests' master flags (short GC grace, no start-up deletion
/// delay, 1 MiB chunks: a deletion that should not happen happens
/// quickly), plus `extra`.
fn master_flags(extra: &[&str]) -> Vec<String> {
    faults::master_args(extra)
}

async fn cluster(master_extra: &[&str], cs_extra: &[&str]) -> Cluster {
    let flags = master_flags(master_extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cs_extra: Vec<String> = cs_extra.iter().map(|s| s.to_string()).collect();
    let c = Cluster::start_custom(3, &flags, |i, dir| (dir.join(format!("cs{i}")), cs_extra.clone())).expect("start cluster");
    c.wait_live(3, LIVE).await.expect("3 live chunkservers");
    c
}

/// Writes `data` to a new file at `path`, three copies.
async fn write_file(client: &Client, path: &str, data: &[u8]) {
    let opts = CreateOptions { replication: Some(3), overwrite: true, ..Default::default() };
    let mut w = client.create(path, &opts).await.unwrap_or_else(|e| panic!("create {path}: {e}"));
    w.write(data).await.unwrap_or_else(|e| panic!("write {path}: {e}"));
    w.close().await.unwrap_or_else(|e| panic!("close {path}: {e}"));
}

/// A few files of different shapes (one of two chunks), remembered.
async fn write_files(client: &Client, root: &str, rng: &mut StdRng) -> Files {
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

fn refused(r: &Reply, status: u16, kind: &str, what: &str) {
    assert_eq!((r.status, r.kind()), (status, kind), "{what}: expected {status} {kind}, got {r:?}");
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: the error has no message: {r:?}");
}

/// A 4xx with a JSON error body.
fn client_error(r: &Reply, what: &str) {
    assert!((400..500).contains(&r.status), "{what}: expected a 4xx, got {r:?}");
    assert!(!r.kind().is_empty(), "{what}: the 4xx has no JSON error body: {r:?}");
}

/// Not a server error (and an answer at all: the caller unwrapped it).
fn no_server_error(r: &Reply, what: &str) {
    assert!(r.status < 500 || r.status == 503, "{what}: server error {r:?}");
}

/// What the master lists for every file: path → locations.
async fn all_locations(http: &reqwest::Client, c: &Cluster, client: &Client, files: &Files) -> BTreeMap<String, ChunkLocations> {
    let mut out = BTreeMap::new();
    for path in files.keys() {
        let attr = client.stat(path).await.unwrap_or_else(|e| panic!("stat {path}: {e}"));
        out.insert(path.clone(), locations(http, &c.master.url, attr.inode).await.expect("locate"));
    }
    out
}

/// (handle, version, sorted replica addresses) of every chunk: what an
/// attacker must not change.
fn shape(locs: &BTreeMap<String, ChunkLocations>) -> Vec<(String, u64, u64, Vec<String>)> {
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
async fn every_replica_holds(http: &reqwest::Client, c: &Cluster, client: &Client, files: &Files, replication: usize) {
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
                let (status, body) = get_data(http, &r.address, chunk.handle.0, chunk.version.0, 0, (end - start) as u64, Some(&chunk.token)).await.expect("read a replica");
                assert_eq!(status, 200, "{path} chunk {} on {}: {}", chunk.index, r.address, String::from_utf8_lossy(&body));
                assert_eq!(first_diff(&body, &want[start..end]), None, "{path} chunk {} on {}: other bytes than acknowledged", chunk.index, r.address);
            }
        }
    }
}

/// The end of every test: fsck healthy without surplus, every file and
/// every replica byte-equal.
async fn all_there(http: &reqwest::Client, c: &Cluster, files: &Files) {
    wait_healthy(&c.master.url, HEAL, true).await;
    let client = faults::client(&c.master.url);
    faults::wait_for("every file reads back exact", Duration::from_secs(30), || check_files(&client, files)).await;
    every_replica_holds(http, c, &client, files, 3).await;
    say!(TAG, "fsck healthy; {} files and every replica byte-equal", files.len());
}

/// A signed `GET {cs}/v1/chunks/{h}`: the replica's (version, length).
async fn replica_info(insider: &Insider, cs: &str, handle: u64) -> Option<(u64, u64)> {
    let r = insider.send(insider.http.get(format!("{cs}/v1/chunks/{handle}"))).await.expect("info");
    match r.status {
        404 => None,
        200 => Some((r.body["version"].as_u64().expect("version"), r.body["length"].as_u64().expect("length"))),
        _ => panic!("info of {handle} on {cs}: {r:?}"),
    }
}

/// The shared cluster and what the attacks need.
struct World {
    c: Cluster,
    files: Files,
    client: Client,
    http: reqwest::Client,
    insider: Insider,
    stranger: Insider,
    /// Where attackers point chunkservers: it must never be contacted.
    trap: Trap,
    /// The attacker's own file, written through raw data requests.
    scratch: (String, InodeId),
    /// A lease on the scratch file taken at the start: its token expires.
    early: (WriteLease, Instant),
    /// The first chunk of a file the attacker does not write: (location, its read token).
    victim: ChunkLocation,
    before: Vec<(String, u64, u64, Vec<String>)>,
}

impl World {
    /// The victim chunk's location again, with a fresh read token (they
    /// live 2 s here); its chunk, version and replicas must not change.
    async fn victim(&self) -> ChunkLocation {
        let inode = self.client.stat("/h/two-chunks").await.expect("stat").inode;
        let now = locations(&self.http, &self.c.master.url, inode).await.expect("locate").chunks.remove(0);
        assert_eq!((now.handle, now.version, &now.replicas), (self.victim.handle, self.victim.version, &self.victim.replicas), "the victim chunk changed");
        now
    }
}

async fn world() -> World {
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let lifetime = TOKEN_LIFETIME.as_millis().to_string();
    let c = cluster(&["--token-lifetime-ms", &lifetime, "--token-key-roll-ms", "4000"], &[]).await;
    let client = faults::client(&c.master.url);
    let mut files = write_files(&client, "/h", &mut rng).await;
    let scratch_path = "/h/scratch".to_string();
    let scratch_data = faults::random_bytes(&mut rng, 64 * KIB);
    write_file(&client, &scratch_path, &scratch_data).await;
    files.insert(scratch_path.clone(), scratch_data);
    let http = insider::http();
    let scratch_inode = client.stat(&scratch_path).await.expect("stat").inode;
    let early = (lease(&http, &c.master.url, scratch_inode, 0).await.expect("lease"), Instant::now());
    let insider = Insider::from_key_file(&master_key_file(&c.master.data_dir)).expect("the master's key file");
    let victim_inode = client.stat("/h/two-chunks").await.expect("stat").inode;
    let victim = locations(&http, &c.master.url, victim_inode).await.expect("locate").chunks.remove(0);
    assert_eq!(victim.replicas.len(), 3, "{victim:?}");
    assert!(!victim.token.is_empty(), "locations carry no read token: {victim:?}");
    let before = shape(&all_locations(&http, &c, &client, &files).await);
    World {
        c,
        files,
        client,
        http,
        insider,
        stranger: Insider::stranger(),
        trap: Trap::start().await,
        scratch: (scratch_path, scratch_inode),
        early,
        victim,
        before,
    }
}

/// Attacks on one running cluster, each leaving it as it was; then the
/// cluster is whole, every byte is there and nothing was adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attacks_on_a_running_cluster_change_nothing() {
    let started = Instant::now();
    let mut w = world().await;
    say!(TAG, "cluster with {} files up in {:.1}s", w.files.len(), started.elapsed().as_secs_f64());
    internal_routes_refuse_outsiders_and_replays(&w).await;
    data_requests_need_the_right_token(&mut w).await;
    forwards_and_copies_go_only_to_peers(&w).await;
    version_max_and_out_of_range_numbers_are_refused(&w).await;
    outsiders_bad_replica_reports_keep_every_copy(&w).await;
    oversized_bodies_are_refused_without_being_read(&w).await;
    forged_heartbeats_change_nothing(&w).await;
    // The fake nodes fall silent and go dead; the cluster is as it was.
    w.c.wait_live(3, LIVE).await.expect("only the 3 real chunkservers live");
    let client = faults::client(&w.c.master.url);
    let after = shape(&all_locations(&w.http, &w.c, &client, &w.files).await);
    let scratch = &w.scratch.0;
    let keep = |v: &Vec<(String, u64, u64, Vec<String>)>| v.iter().filter(|s| &s.0 != scratch).cloned().collect::<Vec<_>>();
    assert_eq!(keep(&after), keep(&w.before), "chunks, versions or replica sets changed");
    all_there(&w.http, &w.c, &w.files).await;
    assert_eq!(w.trap.hits(), 0, "a chunkserver contacted the URL an attacker named");
    say!(TAG, "all attacks done in {:.1}s", started.elapsed().as_secs_f64());
}

/// Internal routes without a signature, with a stranger's, with a body
/// other than the one signed, and a correctly signed request sent twice.
async fn internal_routes_refuse_outsiders_and_replays(w: &World) {
    let (m, cs, peer) = (&w.c.master.url, &w.c.chunkservers[0].url, &w.c.chunkservers[1].url);
    let (h, v) = (w.victim.handle.0, w.victim.version.0);
    let hb = serde_json::to_value(fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await)).expect("json");
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", format!("{m}/v1/heartbeat"), Some(hb)),
        ("POST", format!("{cs}/v1/chunks/{h}/create"), Some(json!({"version": v + 1, "chunk_size_bytes": MIB}))),
        ("POST", format!("{cs}/v1/chunks/{h}/version"), Some(json!({"version": v + 1}))),
        ("POST", format!("{cs}/v1/chunks/{h}/replicate"), Some(json!({"source": peer, "version": v, "chunk_size_bytes": MIB}))),
        ("POST", format!("{cs}/v1/chunks/{h}/verify"), Some(json!({"version": v}))),
        ("GET", format!("{cs}/v1/chunks/{h}"), None),
    ];
    for (method, url, body) in &routes {
        let build = |http: &reqwest::Client| {
            let b = http.request(method.parse().expect("method"), url);
            match body {
                Some(j) => b.header("content-type", "application/json").body(j.to_string()),
                None => b,
            }
        };
        let plain = insider::send_reply(build(&w.http)).await.expect("send");
        refused(&plain, 401, "EKEYREJECTED", &format!("unsigned {method} {url}"));
        let forged = w.stranger.send(build(&w.stranger.http)).await.expect("send");
        refused(&forged, 401, "EKEYREJECTED", &format!("{method} {url} signed with a stranger's key"));
    }
    // A signature over one body does not carry another.
    let mut swapped = w.insider.signed(w.http.post(format!("{cs}/v1/chunks/{h}/version")).header("content-type", "application/json").body(json!({"version": v}).to_string()));
    *swapped.body_mut() = Some(json!({"version": v + 7}).to_string().into());
    let r = w.insider.execute(swapped).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "a signed version order with its body swapped");
    // Replay: the same signed request twice.
    let first = w.insider.signed(w.http.get(format!("{cs}/v1/chunks/{h}")));
    let again = first.try_clone().expect("clonable");
    let r = w.insider.execute(first).await.expect("send");
    assert_eq!((r.status, r.body["version"].as_u64()), (200, Some(v)), "a signed info request: {r:?}");
    let r = w.insider.execute(again).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "the same signed request again (a replay)");
    // Nothing changed on the replica.
    assert_eq!(replica_info(&w.insider, cs, h).await.map(|i| i.0), Some(v));
    say!(TAG, "internal routes: unsigned, stranger-signed, body-swapped and replayed requests refused");
}

/// Data writes and reads without a token, with garbage, an expired token,
/// a token for another chunk or version, a read-only token; a legitimate
/// write of the attacker's own file as the control.
async fn data_requests_need_the_right_token(w: &mut World) {
    let (m, http) = (w.c.master.url.clone(), w.http.clone());
    let victim = w.victim().await;
    let (h, v, r0) = (victim.handle.0, victim.version.0, victim.replicas[0].address.clone());
    let garbage = vec![0xa5u8; 4096];
    // The control: the attacker's own file, with its own lease, through the chain.
    let own = lease(&http, &m, w.scratch.1, 0).await.expect("lease");
    let chain: Vec<&str> = own.secondaries.iter().map(|r| r.address.as_str()).collect();
    let new_head = vec![0x3cu8; 4096];
    let r = put_data(&http, &own.primary.address, own.handle.0, own.version.0, 0, &new_head, Some(&own.token), &chain).await.expect("put");
    assert!(r.ok(), "a write with its own lease's token: {r:?}");
    w.files.get_mut(&w.scratch.0).expect("scratch")[..4096].copy_from_slice(&new_head);
    let (status, body) = get_data(&http, &r0, h, v, 0, 100, Some(&victim.token)).await.expect("get");
    assert_eq!((status, &body[..]), (200, &w.files["/h/two-chunks"][..100]), "a read with a location's token");

    let put = |addr: String, handle: u64, version: u64, token: Option<String>| {
        let (http, garbage) = (http.clone(), garbage.clone());
        async move { put_data(&http, &addr, handle, version, 0, &garbage, token.as_deref(), &[]).await.expect("put") }
    };
    refused(&put(r0.clone(), h, v, None).await, 401, "EKEYREJECTED", "a write without a token");
    refused(&put(r0.clone(), h, v, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into())).await, 401, "EKEYREJECTED", "a write with a made-up token");
    refused(&put(r0.clone(), h, v, Some(victim.token.clone())).await, 403, "EACCES", "a write with a read-only token");
    refused(&put(r0.clone(), h, v, Some(own.token.clone())).await, 403, "EACCES", "a write with a token for another chunk");
    let p = own.primary.address.clone();
    refused(&put(p.clone(), own.handle.0, own.version.0 + 1, Some(own.token.clone())).await, 403, "EACCES", "a write with a token for another version (+1)");
    refused(&put(p.clone(), own.handle.0, own.version.0 - 1, Some(own.token.clone())).await, 403, "EACCES", "a write with a token for another version (-1)");
    // A token is bound to its signature: a stranger's signature on top is refused.
    let signed_forward = w.stranger.send(
        http.put(format!("{p}/v1/chunks/{}/data?version={}&offset=0", own.handle.0, own.version.0))
            .header(dfs_common::auth::token::HEADER_TOKEN, own.token.as_str())
            .header(dfs_common::wire::chunks::HEADER_CHECKSUMS, dfs_common::wire::chunks::checksum_header(&garbage))
            .body(garbage.clone()),
    );
    refused(&signed_forward.await.expect("put"), 401, "EKEYREJECTED", "a write with a valid token and a stranger's signature");
    // Reads and syncs need tokens too.
    let (status, body) = get_data(&http, &r0, h, v, 0, 100, None).await.expect("get");
    assert_eq!(status, 401, "a read without a token: {}", String::from_utf8_lossy(&body));
    let (status, body) = get_data(&http, &r0, h, v, 0, 100, Some(&own.token)).await.expect("get");
    assert_eq!(status, 403, "a read with a token for another chunk: {}", String::from_utf8_lossy(&body));
    let r = insider::send_reply(http.post(format!("{r0}/v1/chunks/{h}/fsync?version={v}"))).await.expect("fsync");
    refused(&r, 401, "EKEYREJECTED", "an fsync without a token");
    // An expired token (the lease taken at the start).
    let (early, at) = w.early.clone();
    tokio::time::sleep((TOKEN_LIFETIME + Duration::from_millis(500)).saturating_sub(at.elapsed())).await;
    let r = put(early.primary.address.clone(), early.handle.0, early.version.0, Some(early.token.clone())).await;
    refused(&r, 401, "EKEYEXPIRED", "a write with an expired token");
    say!(TAG, "data path: missing, made-up, read-only, other-chunk, other-version, stranger-signed and expired tokens refused");
}

/// `x-dfs-forward` naming a URL that is no chunkserver of the cluster, and
/// `replicate` from such a source: refused before anything is sent there.
async fn forwards_and_copies_go_only_to_peers(w: &World) {
    let (m, http, trap) = (&w.c.master.url, &w.http, w.trap.url.as_str());
    let data = vec![0x77u8; 1024];
    for second in [false, true] {
        // A fresh lease each time: a refusal may wait 2 s for a fresher peer list, the token lives 2 s.
        let own = lease(http, m, w.scratch.1, 0).await.expect("lease");
        let p = own.primary.address.as_str();
        let chain: Vec<&str> = if second { vec![own.secondaries[0].address.as_str(), trap] } else { vec![trap] };
        let r = put_data(http, p, own.handle.0, own.version.0, 0, &data, Some(&own.token), &chain).await.expect("put");
        refused(&r, 403, "EACCES", &format!("a write forwarded to {chain:?}"));
        let r = put_data(http, p, own.handle.0, own.version.0, 0, &data, None, &chain).await.expect("put");
        assert!(r.status == 401 || r.status == 403, "a write without a token forwarded to {chain:?}: {r:?}");
    }
    let (h, v, cs) = (w.victim.handle.0, w.victim.version.0, &w.victim.replicas[0].address);
    let order = |source: &str| json!({"source": source, "version": v, "chunk_size_bytes": MIB});
    let url = format!("{cs}/v1/chunks/{h}/replicate");
    let r = insider::send_reply(http.post(&url).json(&order(trap))).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "an unsigned replicate order");
    let r = w.stranger.post_json(&url, &order(trap)).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "a replicate order signed by a stranger");
    let r = w.insider.post_json(&url, &order(trap)).await.expect("send");
    refused(&r, 403, "EACCES", "a signed replicate order from a source outside the cluster");
    let r = w.insider.post_json(&url, &order(&closed_port_url().await)).await.expect("send");
    refused(&r, 403, "EACCES", "a signed replicate order from an unreachable source outside the cluster");
    assert_eq!(replica_info(&w.insider, cs, h).await.map(|i| i.0), Some(v), "the replica survives the refused copies");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.trap.hits(), 0, "a chunkserver contacted the URL an attacker named");
    say!(TAG, "forwards to a foreign URL and copies from a foreign source refused; the trap was never contacted");
}

/// u64::MAX as a version, an offset or a length, in data queries, in
/// signed create/version orders and on the master's client routes: 4xx,
/// and every daemon still answers.
async fn version_max_and_out_of_range_numbers_are_refused(w: &World) {
    let (m, http) = (&w.c.master.url, &w.http);
    let max = u64::MAX;
    let victim = w.victim().await;
    let (h, v, cs, token) = (victim.handle.0, victim.version.0, victim.replicas[0].address.as_str(), victim.token.as_str());
    for (version, offset, length) in [(max, 0, 100), (v, max, 10), (v, max - 5, 100), (v, 0, max)] {
        let (status, body) = get_data(http, cs, h, version, offset, length, Some(token)).await.expect("get");
        assert!((400..500).contains(&status), "a read at version {version} offset {offset} length {length}: {status} {}", String::from_utf8_lossy(&body));
    }
    // A read asking for more than there is is clipped at the replica's length.
    let (status, body) = get_data(http, cs, h, v, 0, 2 * MIB, Some(token)).await.expect("get");
    assert_eq!((status, body.len() as u64), (200, MIB), "a read of 2 MiB from a full 1 MiB chunk");
    let own = lease(http, m, w.scratch.1, 0).await.expect("lease");
    let data = vec![1u8; 100];
    let p = own.primary.address.as_str();
    for (version, offset) in [(max, 0), (own.version.0, max - 10), (own.version.0, max)] {
        let r = put_data(http, p, own.handle.0, version, offset, &data, Some(&own.token), &[]).await.expect("put");
        client_error(&r, &format!("a write at version {version} offset {offset}"));
    }
    // Signed orders (an insider's: only the range checks stand in the way).
    let fresh = 0x7fff_0000_0000_0000u64 + rand::random::<u32>() as u64;
    for body in [json!({"version": max, "chunk_size_bytes": MIB}), json!({"version": 1, "chunk_size_bytes": max})] {
        let r = w.insider.post_json(&format!("{cs}/v1/chunks/{fresh}/create"), &body).await.expect("create");
        client_error(&r, &format!("a signed create of {body}"));
    }
    assert_eq!(replica_info(&w.insider, cs, fresh).await, None, "a refused create left a replica");
    let r = w.insider.post_json(&format!("{cs}/v1/chunks/{h}/version"), &json!({"version": max})).await.expect("version");
    client_error(&r, "a signed version order of u64::MAX");
    assert_eq!(replica_info(&w.insider, cs, h).await.map(|i| i.0), Some(v), "the replica kept its version");
    // The master's client routes.
    let inode = w.scratch.1 .0;
    for (path, body) in [
        ("/v1/chunks/lease", json!({"inode": inode, "index": max})),
        ("/v1/commit_length", json!({"inode": inode, "length": max})),
        ("/v1/append", json!({"inode": inode, "length": max})),
    ] {
        let r = insider::send_reply(http.post(format!("{m}{path}")).json(&body)).await.expect("send");
        client_error(&r, &format!("POST {path} {body}"));
    }
    let r = insider::send_reply(http.get(format!("{m}/v1/chunks?inode={inode}&first={max}&count={max}"))).await.expect("send");
    no_server_error(&r, "locations from chunk u64::MAX");
    alive(w).await;
    say!(TAG, "u64::MAX versions, offsets and lengths refused with 4xx; every daemon answers");
}

/// Every daemon of the shared cluster answers.
async fn alive(w: &World) {
    for url in std::iter::once(&w.c.master.url).chain(w.c.chunkservers.iter().map(|c| &c.url)) {
        let path = if *url == w.c.master.url { "/v1/fs" } else { "/v1/status" };
        let r = w.http.get(format!("{url}{path}")).send().await.unwrap_or_else(|e| panic!("{url} does not answer: {e}"));
        assert_eq!(r.status().as_u16(), 200, "{url}{path}");
    }
}

/// Many reports that every replica of a chunk is bad, from clients:
/// without a token (refused), with a read token (verified by each
/// chunkserver, found good) and naming replicas by address. Every copy is
/// kept.
async fn outsiders_bad_replica_reports_keep_every_copy(w: &World) {
    let (m, http) = (&w.c.master.url, &w.http);
    let (h, v) = (w.victim.handle.0, w.victim.version.0);
    let mut accepted = 0;
    for _ in 0..20 {
        for r in &w.victim.replicas {
            let plain = json!({"handle": h, "node_id": r.node_id, "corrupt": true});
            let reply = insider::send_reply(http.post(format!("{m}/v1/chunks/bad")).json(&plain)).await.expect("send");
            client_error(&reply, "a bad-replica report without a token");
            let by_address = json!({"handle": h, "address": r.address, "corrupt": false, "reporter_version": v});
            let reply = insider::send_reply(http.post(format!("{m}/v1/chunks/bad")).json(&by_address)).await.expect("send");
            client_error(&reply, "a bad-replica report by address without a token");
            let with_token = json!({"handle": h, "node_id": r.node_id, "corrupt": true, "token": w.victim().await.token});
            let reply = insider::send_reply(http.post(format!("{m}/v1/chunks/bad")).json(&with_token)).await.expect("send");
            no_server_error(&reply, "a bad-replica report with a read token");
            accepted += reply.ok() as usize;
        }
    }
    // The verifications run in the background: give them time, then every copy is still listed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let locs = locations(http, m, w.client.stat("/h/two-chunks").await.expect("stat").inode).await.expect("locate");
    let chunk = &locs.chunks[0];
    assert_eq!((chunk.handle.0, chunk.version.0, chunk.replicas.len()), (h, v, 3), "after the reports: {chunk:?}");
    for (i, cs) in w.c.chunkservers.iter().enumerate() {
        assert_eq!(replica_info(&w.insider, &cs.url, h).await.map(|i| i.0), Some(v), "chunkserver {i} lost its replica");
        assert!(faults::quarantined(&w.c.cs_dir(i), h).is_empty(), "chunkserver {i} quarantined a good replica");
    }
    say!(TAG, "180 bad-replica reports from outsiders ({accepted} with a token accepted for verification): every copy kept");
}

/// Bodies far over any limit, announced by Content-Length: refused at
/// once, before any of the body is sent (a stranger's signature is
/// checked first), or, on the master's client routes, after at most
/// their 1 MiB limit is read (one byte more is sent).
async fn oversized_bodies_are_refused_without_being_read(w: &World) {
    let m = host_port(&w.c.master.url);
    let cs = host_port(&w.victim.replicas[0].address);
    let (h, v) = (w.victim.handle.0, w.victim.version.0);
    let json_head = |line: &str, len: u64| format!("{line}\r\nContent-Type: application/json\r\nContent-Length: {len}");
    let limit = (1u64 << 20) + 1; // the master's --max-request-body-bytes, and one byte
    let cases = [
        (m.as_str(), json_head("POST /v1/heartbeat HTTP/1.1", 256 << 20), 0, "a 256 MiB heartbeat from a stranger"),
        (m.as_str(), json_head("POST /v1/heartbeat HTTP/1.1", (256 << 20) + 1), 0, "a heartbeat over 256 MiB from a stranger"),
        (m.as_str(), json_head("POST /v1/create HTTP/1.1", 64 << 20), limit, "a 64 MiB create"),
        (cs.as_str(), json_head(&format!("POST /v1/chunks/{h}/create HTTP/1.1"), 64 << 20), 0, "a 64 MiB create order from a stranger"),
        (cs.as_str(), format!("PUT /v1/chunks/{h}/data?version={v}&offset=0 HTTP/1.1\r\nContent-Length: {}", 1u64 << 30), 0, "a 1 GiB write without a token"),
        (
            cs.as_str(),
            format!("PUT /v1/chunks/{h}/data?version={v}&offset=0 HTTP/1.1\r\nx-dfs-token: {}\r\nContent-Length: {}", w.victim().await.token, 1u64 << 30),
            0,
            "a 1 GiB write with a read token",
        ),
    ];
    for (addr, head, sent, what) in cases {
        let a = raw_request(addr, &head, sent, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!((400..500).contains(&a.status), "{what}: {}", a.text);
        assert!(a.text.contains("\"error\""), "{what}: no JSON error: {}", a.text);
        assert!(a.elapsed < Duration::from_secs(3), "{what}: answered after {:?}", a.elapsed);
        say!(TAG, "{what}: {} after {:?}, {} body bytes sent", a.status, a.elapsed, a.body_bytes_sent);
    }
    alive(w).await;
}

/// A heartbeat as a chunkserver reporting `report`.
fn reporting(node: NodeId, address: &str, report: Vec<ReplicaReport>) -> Heartbeat {
    let mut hb = fake_heartbeat(node, address);
    hb.chunk_count = report.len() as u64;
    hb.report = Some(report);
    hb
}

/// Forged heartbeats: unsigned (401), and signed by an insider: every
/// chunk reported at a version far ahead (not adopted, every real replica
/// kept), a real node's id from another address (refused), absurd
/// capacities and counters (no overflow), a version of u64::MAX (4xx),
/// and a signed heartbeat sent twice (the second is a replay).
async fn forged_heartbeats_change_nothing(w: &World) {
    let (m, http) = (&w.c.master.url, &w.http);
    // Each fake node has an address of its own (an address is one node's).
    let sink = closed_port_url().await;
    let locs = all_locations(http, &w.c, &w.client, &w.files).await;
    let ahead: Vec<ReplicaReport> = locs
        .values()
        .flat_map(|l| l.chunks.iter())
        .map(|c| ReplicaReport { handle: c.handle, version: ChunkVersion(c.version.0 + 1000), length: c.length, dirty: false })
        .collect();
    let ahead_node = NodeId(uuid::Uuid::new_v4());
    let hb = reporting(ahead_node, &sink, ahead.clone());
    let r = insider::send_reply(http.post(format!("{m}/v1/heartbeat")).json(&hb)).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "an unsigned heartbeat reporting every chunk ahead");
    // Signed: the master may take the node, never the versions.
    for i in 0..5 {
        let mut hb = hb.clone();
        hb.registering = i == 0;
        let r = w.insider.heartbeat(m, &hb).await.expect("heartbeat");
        no_server_error(&r, "a signed heartbeat reporting every chunk 1000 versions ahead");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let now = shape(&all_locations(http, &w.c, &w.client, &w.files).await);
    let scratch = &w.scratch.0;
    let versions = |v: &[(String, u64, u64, Vec<String>)]| v.iter().filter(|s| &s.0 != scratch).map(|s| (s.1, s.2)).collect::<Vec<_>>();
    assert_eq!(versions(&now), versions(&w.before), "the master adopted versions it never issued");
    for (i, cs) in w.c.chunkservers.iter().enumerate() {
        for c in locs.values().flat_map(|l| l.chunks.iter()) {
            assert_eq!(replica_info(&w.insider, &cs.url, c.handle.0).await.map(|i| i.0), Some(c.version.0), "chunkserver {i}: replica of {:#x}", c.handle.0);
        }
    }
    // A real node's id from another address.
    let nodes = w.c.chunkservers().await.expect("chunkservers");
    let real = nodes.iter().find(|n| n["state"] == "live").expect("a live node").clone();
    let id: NodeId = serde_json::from_value(real["node_id"].clone()).expect("node id");
    let r = w.insider.heartbeat(m, &fake_heartbeat(id, &closed_port_url().await)).await.expect("heartbeat");
    client_error(&r, "a signed heartbeat with a live node's id from another address");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nodes = w.c.chunkservers().await.expect("chunkservers");
    let same = nodes.iter().find(|n| n["node_id"] == real["node_id"]).expect("the node is still known");
    assert_eq!((&same["address"], &same["state"]), (&real["address"], &json!("live")), "the node's address was hijacked: {nodes:?}");
    // Absurd capacities and counters (refused or taken, never a panic),
    // then the largest taken on several nodes, counters going backwards.
    let max = u64::MAX;
    let mut absurd = fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await);
    (absurd.capacity_bytes, absurd.used_bytes) = (max, max);
    let r = w.insider.heartbeat(m, &absurd).await.expect("heartbeat");
    no_server_error(&r, "a heartbeat with u64::MAX capacity");
    (absurd.capacity_bytes, absurd.used_bytes) = (1, max);
    let r = w.insider.heartbeat(m, &absurd).await.expect("heartbeat");
    no_server_error(&r, "a heartbeat using more than its capacity");
    const LARGEST: u64 = 64 << 50; // 64 PiB
    for _ in 0..4 {
        let mut huge = fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await);
        (huge.capacity_bytes, huge.used_bytes, huge.chunk_count, huge.load, huge.bytes_read, huge.bytes_written) = (LARGEST, LARGEST, max, u32::MAX, max, max);
        huge.scrub = Some(ScrubProgress { passes_completed: max, pass_done: max, pass_total: max, corrupt_found: max, last_pass_completed_unix_ms: max });
        let r = w.insider.heartbeat(m, &huge).await.expect("heartbeat");
        assert!(r.ok(), "a heartbeat of a full 64 PiB node with u64::MAX counters: {r:?}");
        (huge.registering, huge.bytes_read, huge.bytes_written, huge.used_bytes) = (false, 0, 0, 0);
        let r = w.insider.heartbeat(m, &huge).await.expect("heartbeat");
        assert!(r.ok(), "the same node with its counters gone back to 0: {r:?}");
    }
    for path in ["/v1/chunkservers", "/v1/fs", "/v1/cluster", "/v1/admin/replication", "/metrics", "/", "/chunkservers"] {
        let r = http.get(format!("{m}{path}")).send().await.unwrap_or_else(|e| panic!("{path} after absurd heartbeats: {e}"));
        assert_eq!(r.status().as_u16(), 200, "{path} after absurd heartbeats");
    }
    // A version of u64::MAX in a report.
    let top = vec![ReplicaReport { handle: w.victim.handle, version: ChunkVersion(max), length: 10, dirty: false }];
    let r = w.insider.heartbeat(m, &reporting(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await, top)).await.expect("heartbeat");
    client_error(&r, "a signed heartbeat reporting version u64::MAX");
    // The same signed heartbeat twice.
    let req = w.insider.signed(http.post(format!("{m}/v1/heartbeat")).header("content-type", "application/json").body(serde_json::to_vec(&fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await)).expect("json")));
    let again = req.try_clone().expect("clonable");
    let r = w.insider.execute(req).await.expect("heartbeat");
    assert!(r.ok(), "a signed heartbeat of a new node: {r:?}");
    refused(&w.insider.execute(again).await.expect("heartbeat"), 401, "EKEYREJECTED", "the same signed heartbeat again (a replay)");
    alive(w).await;
    say!(TAG, "forged heartbeats: unsigned refused, versions not adopted, node id not hijacked, absurd numbers and a replay survived");
}

// ---------------------------------------------------------------------------

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
    let crcs = dfs_common::wire::chunks::checksum_header(&vec![b'0'; body_len]);
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
        tokio::time::timeout(Duration::from_secs(45), write_file(&client, &path, &data)).await.unwrap_or_else(|_| panic!("writing {path} under slowloris took over 45 s"));
        say!(TAG, "slowloris: {path} written in {:.2}s", t.elapsed().as_secs_f64());
        files.insert(path, data);
    }
    let writing = started.elapsed();
    let stats = attack.stop().await;
    let (opened, cut) = (stats.connections.load(std::sync::atomic::Ordering::Relaxed), stats.cut_off.load(std::sync::atomic::Ordering::Relaxed));
    say!(TAG, "slowloris: {FILES} files written in {:.1}s while {} attackers opened {opened} connections, {cut} cut off by the server", writing.as_secs_f64(), 2 * CAP + CAP / 2);
    assert!(cut >= (2 * CAP) as u64, "the chunkserver did not cut the slow connections off ({cut} of {opened})");
    all_there(&http, &c, &files).await;
}

// ---------------------------------------------------------------------------

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
        if now >= from + n { Ok(now) } else { Err(format!("{} refused", now - from.min(now))) }
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
    let ids = |url: String| async move { insider::send_reply(insider::http().get(format!("{url}/v1/cluster"))).await.expect("cluster").body["cluster_id"].clone() };
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
        let r = insider::reply(insider::http().get(format!("{}/v1/admin/replication", m.url)).send().await.map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
        let nodes = insider::reply(insider::http().get(format!("{}/v1/chunkservers", m.url)).send().await.map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
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
