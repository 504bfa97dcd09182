//! The API served over real sockets by in-process nodes, each on a temp dir,
//! all of one test cluster (`test_cluster`): chunk copies between two
//! chunkservers, and the heartbeat's deletes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Parser;
use dfs_proto::endpoint::chunkserver as ep;
use dfs_proto::endpoint::url_no_query;
use dfs_proto::wire::chunks::{DeleteReplica, ReplicaReport, ReplicateChunk};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorBody, ErrorKind};
use tempfile::TempDir;

use super::router;
use super::test_cluster::{grant, insider, introduce};
use crate::chunk_store::{ChunkStore, BLOCK_BYTES};
use crate::config::ChunkserverConfig;
use crate::node::Node;
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::auth::Ops;

const H: ChunkHandle = ChunkHandle(7);
const V1: ChunkVersion = ChunkVersion(1);
const V3: ChunkVersion = ChunkVersion(3);
/// Room for one full 8 MiB piece and a short one.
const SIZE: u64 = 256 * BLOCK_BYTES;

/// A node serving its API on a free local port; the dir lives as long as it.
pub(crate) struct TestNode {
    pub node: Arc<Node>,
    _dir: TempDir,
}

pub(crate) async fn start_node() -> TestNode {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ChunkserverConfig::parse_from(["dfs-chunkserver", "--data-dir", dir.path().to_str().expect("utf-8 path")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("local addr"));
    let store = ChunkStore::open(dir.path()).expect("store");
    let node = super::test_cluster::node(&config, store, address);
    let app = router(node.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestNode { node, _dir: dir }
}

fn pattern(seed: u8, len: u64) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed | 1).collect()
}

/// Puts a replica of `H` at `version` holding `data` on `n`.
fn put_replica(n: &Node, version: ChunkVersion, data: &[u8]) {
    n.store.create(H, version, SIZE).unwrap();
    n.store.write(H, version, 0, data, None).unwrap();
}

/// Lists `url` as a registered chunkserver on `n` (a source outside the
/// test cluster's nodes).
fn be_peer(n: &Node, url: &str) {
    n.peers.set(dfs_proto::wire::chunks::Peers { epoch: 1, addresses: vec![url.to_string()] });
}

/// Asks `target` to copy `H` at `version` from `source`, as the master does
/// (signed).
pub(crate) async fn replicate(target: &Node, source: &str, version: ChunkVersion) -> Result<ReplicaReport, ErrorBody> {
    let order = ReplicateChunk { source: source.to_string(), version, chunk_size_bytes: SIZE };
    let url = format!("{}/v1/chunks/{H}/replicate", target.address);
    let http = reqwest::Client::new();
    let resp = insider().send(&http, http.post(url).json(&order)).await.unwrap();
    match resp.status().is_success() {
        true => Ok(resp.json().await.unwrap()),
        false => Err(resp.json().await.unwrap()),
    }
}

#[tokio::test]
async fn a_copy_moves_every_byte_verified_and_replaces_an_older_replica() {
    let (source, target) = (start_node().await, start_node().await);
    introduce(&[&source.node, &target.node]);
    let data = pattern(1, (8 << 20) + 3 * BLOCK_BYTES + 17);
    put_replica(&source.node, V3, &data);
    put_replica(&target.node, V1, b"stale");

    let report = replicate(&target.node, &source.node.address, V3).await.unwrap();

    assert_eq!(report, ReplicaReport { handle: H, version: V3, length: data.len() as u64, dirty: false });
    let t = &target.node;
    assert_eq!(t.store.read(H, V3, 0, SIZE).unwrap(), data);
    t.store.verify(H).unwrap();
    assert_eq!(t.replicas_copied.load(Ordering::Relaxed), 1);
    assert_eq!(t.bytes_replicated.load(Ordering::Relaxed), data.len() as u64);
    assert!(t.copying.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_newer_replica_here_is_kept_and_the_order_is_stale() {
    let (source, target) = (start_node().await, start_node().await);
    introduce(&[&source.node, &target.node]);
    put_replica(&source.node, V1, b"old");
    put_replica(&target.node, V3, b"newer");
    let err = replicate(&target.node, &source.node.address, V1).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::ESTALE, "{err:?}");
    assert_eq!(target.node.store.read(H, V3, 0, 10).unwrap(), b"newer");
}

#[tokio::test]
async fn a_source_that_moved_on_is_stale_and_leaves_nothing_behind() {
    let (source, target) = (start_node().await, start_node().await);
    introduce(&[&source.node, &target.node]);
    put_replica(&source.node, V3, b"moved on");
    let err = replicate(&target.node, &source.node.address, V1).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::ESTALE, "{err:?}");
    assert!(target.node.store.info(H).is_none());
    assert!(target.node.copying.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_source_is_named_in_an_eio() {
    let target = start_node().await;
    // A port that was free a moment ago: nothing listens there.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let source = format!("http://{gone}");
    be_peer(&target.node, &source);
    let err = replicate(&target.node, &source, V1).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::EIO, "{err:?}");
    assert!(err.message.contains(&source), "{err:?}");
    assert!(target.node.store.info(H).is_none());
}

#[tokio::test]
async fn a_second_copy_of_the_same_chunk_must_wait() {
    let (source, target) = (start_node().await, start_node().await);
    introduce(&[&source.node, &target.node]);
    put_replica(&source.node, V1, b"x");
    target.node.copying.lock().unwrap().insert(H);
    let err = replicate(&target.node, &source.node.address, V1).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::EAGAIN, "{err:?}");
    target.node.copying.lock().unwrap().remove(&H);
    replicate(&target.node, &source.node.address, V1).await.unwrap();
}

#[tokio::test]
async fn bad_orders_are_refused_before_anything_changes() {
    let (source, target) = (start_node().await, start_node().await);
    introduce(&[&source.node, &target.node]);
    put_replica(&target.node, V1, b"kept");
    let own = target.node.address.clone();
    for (src, version) in [("ftp://x", V3), (own.as_str(), V3), (source.node.address.as_str(), ChunkVersion(0))] {
        let err = replicate(&target.node, src, version).await.unwrap_err();
        assert_eq!(err.error, ErrorKind::EINVAL, "{src} {version}: {err:?}");
    }
    assert_eq!(target.node.store.read(H, V1, 0, 10).unwrap(), b"kept");
}

#[tokio::test]
async fn heartbeat_deletes_spare_newer_replicas_and_copies_in_progress() {
    let t = start_node().await;
    let n = &t.node;
    put_replica(n, V3, b"current");
    crate::heartbeat::delete_one(n, DeleteReplica { handle: H, max_version: V1 });
    assert!(n.store.info(H).is_some());
    n.copying.lock().unwrap().insert(H);
    crate::heartbeat::delete_one(n, DeleteReplica { handle: H, max_version: V3 });
    assert!(n.store.info(H).is_some());
    n.copying.lock().unwrap().remove(&H);
    crate::heartbeat::delete_one(n, DeleteReplica { handle: H, max_version: V3 });
    assert!(n.store.info(H).is_none());
    crate::heartbeat::delete_one(n, DeleteReplica { handle: H, max_version: V3 });
    assert_eq!(n.replicas_deleted.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn status_shows_copies_deletes_and_scrub_progress() {
    let t = start_node().await;
    let v: serde_json::Value = reqwest::get(format!("{}/v1/status", t.node.address)).await.unwrap().json().await.unwrap();
    for key in ["replicas_deleted", "replicas_copied", "bytes_replicated"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    assert!(v["cluster_id"].is_null(), "not registered: {v}");
    assert_eq!(v["token_keys"], 1, "{v}");
    assert!(!v.to_string().contains("salt"), "no secrets: {v}");
    let scrub = &v["scrub"];
    assert_eq!(scrub["passes_completed"], 0, "{v}");
    assert_eq!(scrub["pass_replicas_total"], 0, "{v}");
    assert!(scrub["last_pass_completed_unix_ms"].is_null(), "{v}");
}

/// How a hostile (or broken) copy source answers a read of `H`.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Bytes whose checksums header does not match them.
    WrongChecksums,
    /// More bytes than were asked for.
    TooLong,
    /// A checksums header that is not one.
    GarbledChecksums,
    /// A good first piece, then a server error.
    FailsAfterOnePiece,
}

/// A source that answers reads of `H` as `mode` says; its base URL.
async fn hostile_source(mode: Hostile) -> String {
    use axum::extract::Query;
    use axum::response::IntoResponse;
    use dfs_proto::wire::chunks::{checksum_header, DataQuery, HEADER_CHECKSUMS};
    let served = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let handler = move |Query(q): Query<DataQuery>| {
        let served = served.clone();
        async move {
            let want = q.length.unwrap_or(0).min(8 << 20);
            let data = pattern(9, want);
            let n = served.fetch_add(1, Ordering::Relaxed);
            let (crcs, body) = match mode {
                Hostile::WrongChecksums => (checksum_header(&pattern(10, want)), data),
                Hostile::TooLong => (checksum_header(&data), [data.clone(), data].concat()),
                Hostile::GarbledChecksums => ("not,checksums".to_string(), data),
                Hostile::FailsAfterOnePiece if n > 0 => return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                Hostile::FailsAfterOnePiece => (checksum_header(&data), data),
            };
            ([(HEADER_CHECKSUMS, crcs)], body).into_response()
        }
    };
    let app = axum::Router::new().route("/v1/chunks/{handle}/data", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The replica of `H` here is exactly `data` at `version`, whole and verified.
fn assert_untouched(n: &Node, version: ChunkVersion, data: &[u8]) {
    assert_eq!(n.store.read(H, version, 0, SIZE).unwrap(), data);
    n.store.verify(H).unwrap();
    assert!(n.store.copy_info(H).is_none(), "the failed copy is dropped");
    assert!(n.copying.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_source_never_touches_an_older_replica_here() {
    let target = start_node().await;
    let old = pattern(3, 3 * BLOCK_BYTES + 11);
    put_replica(&target.node, V1, &old);
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    be_peer(&target.node, &format!("http://{gone}"));
    let err = replicate(&target.node, &format!("http://{gone}"), V3).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::EIO, "{err:?}");
    assert_untouched(&target.node, V1, &old);
}

#[tokio::test]
async fn a_hostile_source_never_damages_the_replica_here() {
    for mode in [Hostile::WrongChecksums, Hostile::TooLong, Hostile::GarbledChecksums, Hostile::FailsAfterOnePiece] {
        let target = start_node().await;
        let old = pattern(4, 2 * BLOCK_BYTES + 5);
        put_replica(&target.node, V1, &old);
        let source = hostile_source(mode).await;
        be_peer(&target.node, &source);
        let err = replicate(&target.node, &source, V3).await.unwrap_err();
        assert_eq!(err.error, ErrorKind::EIO, "{mode:?}: {err:?}");
        assert_untouched(&target.node, V1, &old);
    }
}

#[tokio::test]
async fn a_replica_moved_on_during_the_copy_is_kept_and_the_copy_dropped() {
    let (source, target) = (start_node().await, start_node().await);
    introduce(&[&source.node, &target.node]);
    put_replica(&source.node, V1, &pattern(5, 1000));
    let newer = pattern(6, 700);
    put_replica(&target.node, ChunkVersion(2), &newer);
    let err = replicate(&target.node, &source.node.address, V1).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::ESTALE, "{err:?}");
    assert_untouched(&target.node, ChunkVersion(2), &newer);
}

/// Versions, offsets, lengths and sizes at the top of their range are
/// refused with a 4xx (or, where a value is legal, taken), never a panic:
/// the node answers afterwards.
#[tokio::test]
async fn values_at_the_top_of_their_range_get_a_4xx_not_a_panic() {
    let (source, target) = (start_node().await, start_node().await);
    introduce(&[&source.node, &target.node]);
    put_replica(&source.node, V3, &pattern(7, 100));
    put_replica(&target.node, V1, b"kept");
    let max = ChunkVersion(u64::MAX);
    // A copy at a version never issued: refused before anything is asked.
    let err = replicate(&target.node, &source.node.address, max).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::EINVAL, "{err:?}");
    // Orders to create or move a replica to a version never issued.
    let http = reqwest::Client::new();
    let t = &target.node.address;
    let create_max = http.post(format!("{t}/v1/chunks/9/create")).json(&serde_json::json!({"version": max, "chunk_size_bytes": SIZE}));
    let version_max = http.post(format!("{t}/v1/chunks/{H}/version")).json(&serde_json::json!({"version": ChunkVersion(i64::MAX as u64 + 1)}));
    for (what, request) in [("create at u64::MAX", create_max), ("version 2^63", version_max)] {
        let err: ErrorBody = insider().send(&http, request).await.unwrap().json().await.unwrap();
        assert_eq!(err.error, ErrorKind::EINVAL, "{what}: {err:?}");
    }
    assert!(target.node.store.info(ChunkHandle(9)).is_none());
    assert_eq!(target.node.store.info(H).map(|i| i.version), Some(V1));
    let order = ReplicateChunk { source: source.node.address.clone(), version: V3, chunk_size_bytes: u64::MAX };
    let url = format!("{}/v1/chunks/{H}/replicate", target.node.address);
    let resp = insider().send(&http, http.post(url).json(&order)).await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let m = u64::MAX;
    // Signed (create), or with tokens for what they name: the range checks answer, not the auth checks.
    let (read_token, write_token) = (grant(H, V1, Ops::READ), grant(H, V1, Ops::WRITE));
    let create = http.post(format!("{t}/v1/chunks/9/create")).json(&serde_json::json!({"version": m, "chunk_size_bytes": m}));
    let fsync = http.post(format!("{t}/v1/chunks/{H}/fsync?version={m}")).header(HEADER_TOKEN, grant(H, ChunkVersion(m), Ops::WRITE));
    let read = http.get(format!("{t}/v1/chunks/{H}/data?version=1&offset={m}&length={m}")).header(HEADER_TOKEN, &read_token);
    let read_at_end = http.get(format!("{t}/v1/chunks/{H}/data?version=1&offset={m}&length=10")).header(HEADER_TOKEN, &read_token);
    let write = http.put(format!("{t}/v1/chunks/{H}/data?version=1&offset={m}")).header(HEADER_TOKEN, &write_token).body(vec![1u8; 10]);
    let past_u64 = http.get(format!("{t}/v1/chunks/{H}/data?version=18446744073709551616&offset=0"));
    let create = insider().send(&http, create).await;
    let others = [("fsync", fsync), ("read", read), ("read at the end", read_at_end), ("write", write), ("past u64", past_u64)];
    let mut sent = vec![("create", create)];
    for (what, request) in others {
        sent.push((what, request.send().await));
    }
    for (what, resp) in sent {
        let resp = resp.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(resp.status().is_client_error(), "{what}: {}", resp.status());
        assert!(!matches!(resp.status().as_u16(), 401 | 403), "{what}: refused by an auth check: {}", resp.status());
        let body: ErrorBody = resp.json().await.unwrap_or_else(|e| panic!("{what}: not a JSON error: {e}"));
        assert!(!body.message.is_empty(), "{what}");
    }
    assert_eq!(target.node.store.read(H, V1, 0, 10).unwrap(), b"kept");
    let status = reqwest::get(format!("{t}/v1/status")).await.unwrap();
    assert!(status.status().is_success(), "the node still answers");
}

/// Before the master took this process's first full report, no order is
/// carried out: not a create, a version change or a copy.
#[tokio::test]
async fn an_unregistered_node_carries_out_no_order() {
    let t = start_node().await;
    let n = &t.node;
    put_replica(n, V1, &pattern(1, 100));
    n.registered.store(false, Ordering::Release);
    let http = reqwest::Client::new();
    let create = url_no_query::<ep::CreateReplica>(&n.address, &ChunkHandle(9));
    let orders = [
        (create.clone(), serde_json::json!({"version": 1, "chunk_size_bytes": SIZE})),
        (url_no_query::<ep::SetVersion>(&n.address, &H), serde_json::json!({"version": 3})),
        (url_no_query::<ep::Replicate>(&n.address, &ChunkHandle(9)), serde_json::json!({"source": n.address, "version": 1, "chunk_size_bytes": SIZE})),
    ];
    for (url, body) in orders {
        let resp = insider().send(&http, http.post(&url).json(&body)).await.unwrap();
        assert_eq!(resp.status().as_u16(), 503, "{url}");
        assert_eq!(resp.json::<ErrorBody>().await.unwrap().error, ErrorKind::EAGAIN, "{url}");
    }
    assert!(n.store.info(ChunkHandle(9)).is_none(), "no replica was created");
    assert_eq!(n.store.info(H).unwrap().version, V1, "the version did not move");
    n.registered.store(true, Ordering::Release);
    let created = insider().send(&http, http.post(&create).json(&serde_json::json!({"version": 1, "chunk_size_bytes": SIZE}))).await.unwrap();
    assert!(created.status().is_success(), "registered: the create is carried out");
}
