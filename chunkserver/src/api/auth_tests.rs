//! Cluster trust on the chunkserver's routes, served over real sockets by
//! in-process nodes of one test cluster: chunk tokens on the data routes,
//! signatures on the internal ones, peers as the only forward targets and
//! copy sources. Every refusal is checked to have changed nothing.

use std::time::Duration;

use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::auth::{ClusterKey, KeyRing, Ops};
use dfs_proto::wire::chunks::{checksum_header, VerifyAnswer, HEADER_CHECKSUMS, HEADER_FORWARD};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorBody, ErrorKind};
use dfs_server_kit::http::internal::ClusterAuth;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::test_cluster::{grant, grant_until, insider, introduce};
use super::tests::{replicate, start_node};
use crate::chunk_store::BLOCK_BYTES;
use crate::node::Node;

const H: ChunkHandle = ChunkHandle(7);
const OTHER: ChunkHandle = ChunkHandle(8);
const V1: ChunkVersion = ChunkVersion(1);
const V2: ChunkVersion = ChunkVersion(2);
const SIZE: u64 = 256 * BLOCK_BYTES;

fn put_replica(n: &Node, handle: ChunkHandle, data: &[u8]) {
    n.store.create(handle, V1, SIZE).unwrap();
    n.store.write(handle, V1, 0, data, None).unwrap();
}

/// A status and, for a refusal, its JSON error kind.
async fn outcome(resp: reqwest::Response) -> (u16, Option<ErrorKind>) {
    let status = resp.status().as_u16();
    let kind = match status {
        200..=299 => None,
        _ => Some(resp.json::<ErrorBody>().await.unwrap_or_else(|e| panic!("{status}: not a JSON error: {e}")).error),
    };
    (status, kind)
}

fn data_url(n: &Node, handle: ChunkHandle) -> String {
    format!("{}/v1/chunks/{handle}/data?version=1&offset=0", n.address)
}

async fn get(n: &Node, token: Option<String>) -> (u16, Option<ErrorKind>) {
    let mut req = reqwest::Client::new().get(data_url(n, H));
    if let Some(t) = token {
        req = req.header(HEADER_TOKEN, t);
    }
    outcome(req.send().await.unwrap()).await
}

async fn put(n: &Node, token: Option<String>, data: &[u8]) -> (u16, Option<ErrorKind>) {
    let mut req = reqwest::Client::new().put(data_url(n, H)).header(HEADER_CHECKSUMS, checksum_header(data)).body(data.to_vec());
    if let Some(t) = token {
        req = req.header(HEADER_TOKEN, t);
    }
    outcome(req.send().await.unwrap()).await
}

const UNAUTHORIZED: (u16, Option<ErrorKind>) = (401, Some(ErrorKind::EKEYREJECTED));
const EXPIRED: (u16, Option<ErrorKind>) = (401, Some(ErrorKind::EKEYEXPIRED));
const FORBIDDEN: (u16, Option<ErrorKind>) = (403, Some(ErrorKind::EACCES));
const OK: (u16, Option<ErrorKind>) = (200, None);

#[tokio::test]
async fn data_reads_need_a_read_token_for_that_chunk_and_version() {
    let t = start_node().await;
    let n = &t.node;
    put_replica(n, H, b"hello");
    assert_eq!(get(n, None).await, UNAUTHORIZED);
    assert_eq!(get(n, Some("garbage".into())).await, UNAUTHORIZED);
    assert_eq!(get(n, Some(grant(OTHER, V1, Ops::READ))).await, FORBIDDEN, "another chunk's token");
    assert_eq!(get(n, Some(grant(H, V2, Ops::READ))).await, FORBIDDEN, "another version's token");
    assert_eq!(get(n, Some(grant(H, V1, Ops::WRITE))).await, FORBIDDEN, "a write-only token");
    assert_eq!(get(n, Some(grant_until(H, V1, Ops::READ, 1))).await, EXPIRED);
    let resp = reqwest::Client::new().get(data_url(n, H)).header(HEADER_TOKEN, grant(H, V1, Ops::READ)).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), "hello");
    assert_eq!(n.bytes_read.load(std::sync::atomic::Ordering::Relaxed), 5, "only the allowed read was served");
}

#[tokio::test]
async fn data_writes_and_syncs_need_a_write_token_and_a_refused_one_changes_nothing() {
    let t = start_node().await;
    let n = &t.node;
    put_replica(n, H, b"kept");
    let evil = b"EVIL";
    for (token, expected) in [
        (None, UNAUTHORIZED),
        (Some("x".repeat(600)), UNAUTHORIZED),
        (Some(grant(H, V1, Ops::READ)), FORBIDDEN),
        (Some(grant(OTHER, V1, Ops::WRITE)), FORBIDDEN),
        (Some(grant(H, V2, Ops::WRITE)), FORBIDDEN),
        (Some(grant_until(H, V1, Ops::WRITE, 1)), EXPIRED),
    ] {
        assert_eq!(put(n, token.clone(), evil).await, expected, "{token:?}");
        assert_eq!(n.store.read(H, V1, 0, 10).unwrap(), b"kept");
    }
    assert_eq!(put(n, Some(grant(H, V1, Ops::WRITE)), b"new!").await, OK);
    assert_eq!(n.store.read(H, V1, 0, 10).unwrap(), b"new!");

    let fsync = |token: Option<String>| async move {
        let mut req = reqwest::Client::new().post(format!("{}/v1/chunks/{H}/fsync?version=1", n.address));
        if let Some(t) = token {
            req = req.header(HEADER_TOKEN, t);
        }
        outcome(req.send().await.unwrap()).await
    };
    assert_eq!(fsync(None).await, UNAUTHORIZED);
    assert_eq!(fsync(Some(grant(ChunkHandle(H.0 + 1), V1, Ops::READ_WRITE))).await, FORBIDDEN);
    assert_eq!(fsync(Some(grant(H, ChunkVersion(V1.0 + 1), Ops::READ_WRITE))).await, FORBIDDEN);
    assert_eq!(n.syncs.replica_fsyncs.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Any token for this chunk and version: a sync changes no byte.
    assert_eq!(fsync(Some(grant(H, V1, Ops::READ))).await, OK);
    assert_eq!(fsync(Some(grant(H, V1, Ops::WRITE))).await, OK);
    assert_eq!(fsync(Some(grant(H, V1, Ops::READ_WRITE))).await, OK);
}

#[tokio::test]
async fn a_forwarded_write_carries_the_token_and_the_forwarders_signature() {
    let (a, b) = (start_node().await, start_node().await);
    introduce(&[&a.node, &b.node]);
    put_replica(&a.node, H, b"old");
    put_replica(&b.node, H, b"old");
    let data = b"both replicas";
    let req = reqwest::Client::new()
        .put(data_url(&a.node, H))
        .header(HEADER_CHECKSUMS, checksum_header(data))
        .header(HEADER_FORWARD, b.node.address.clone())
        .header(HEADER_TOKEN, grant(H, V1, Ops::WRITE))
        .body(data.to_vec());
    assert_eq!(outcome(req.send().await.unwrap()).await, OK);
    for n in [&a.node, &b.node] {
        assert_eq!(n.store.read(H, V1, 0, 100).unwrap(), data);
    }
    // A node's signature alone does not allow a write: the token is needed too.
    let signed = reqwest::Client::new().put(data_url(&b.node, H)).header(HEADER_CHECKSUMS, checksum_header(b"evil")).body(b"evil".to_vec());
    let http = reqwest::Client::new();
    assert_eq!(outcome(insider().send(&http, signed).await.unwrap()).await, UNAUTHORIZED);
    // A forward signed with another cluster's key is refused before its token is looked at.
    let stranger = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
    let forged = http.put(data_url(&b.node, H)).header(HEADER_TOKEN, grant(H, V1, Ops::WRITE)).body(b"evil".to_vec());
    assert_eq!(outcome(stranger.send(&http, forged).await.unwrap()).await, UNAUTHORIZED);
    assert_eq!(b.node.store.read(H, V1, 0, 100).unwrap(), data);
}

#[tokio::test]
async fn a_forward_to_a_stranger_is_refused_before_the_body_is_read() {
    let t = start_node().await;
    let n = &t.node;
    introduce(&[n]);
    put_replica(n, H, b"kept");
    let addr = n.address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The head only: a 1 MiB body announced and never sent.
    let head = format!(
        "PUT /v1/chunks/{H}/data?version=1&offset=0 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{HEADER_FORWARD}: http://198.51.100.7:80\r\n{HEADER_TOKEN}: {}\r\n{HEADER_CHECKSUMS}: {}\r\ncontent-length: {}\r\n\r\n",
        grant(H, V1, Ops::WRITE),
        checksum_header(&vec![0u8; 1 << 20]),
        1 << 20
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer)).await.expect("answered without the body").unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("198.51.100.7"), "the stranger is named: {answer}");
    assert_eq!(n.store.read(H, V1, 0, 10).unwrap(), b"kept");
}

/// Sends `req` unsigned, and signed with another cluster's key.
async fn unsigned_and_forged(http: &reqwest::Client, req: reqwest::RequestBuilder) -> [(u16, Option<ErrorKind>); 2] {
    let forged = req.try_clone().expect("clonable");
    let stranger = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
    [outcome(req.send().await.unwrap()).await, outcome(stranger.send(http, forged).await.unwrap()).await]
}

#[tokio::test]
async fn internal_routes_refuse_unsigned_and_forged_requests_and_change_nothing() {
    let (t, peer) = (start_node().await, start_node().await);
    let n = &t.node;
    introduce(&[n, &peer.node]);
    put_replica(n, H, b"kept");
    peer.node.store.create(H, ChunkVersion(3), SIZE).unwrap();
    let http = reqwest::Client::new();
    let base = &n.address;
    let requests = [
        http.post(format!("{base}/v1/chunks/{OTHER}/create")).json(&serde_json::json!({"version": 1, "chunk_size_bytes": SIZE})),
        http.post(format!("{base}/v1/chunks/{H}/version")).json(&serde_json::json!({"version": 2})),
        http.post(format!("{base}/v1/chunks/{H}/replicate")).json(&serde_json::json!({"source": peer.node.address, "version": 3, "chunk_size_bytes": SIZE})),
        http.post(format!("{base}/v1/chunks/{H}/verify")).json(&serde_json::json!({"version": 1})),
        http.get(format!("{base}/v1/chunks/{H}")),
    ];
    for req in requests {
        let what = format!("{:?}", req.try_clone().unwrap().build().unwrap().url().path());
        assert_eq!(unsigned_and_forged(&http, req).await, [UNAUTHORIZED, UNAUTHORIZED], "{what}");
    }
    assert!(n.store.info(OTHER).is_none(), "no replica created");
    assert_eq!(n.store.info(H).map(|i| i.version), Some(V1), "version unchanged");
    assert_eq!(n.store.read(H, V1, 0, 10).unwrap(), b"kept", "replica not replaced");
    // Signed by the cluster: taken, once; the same request again is a replay.
    let create = http.post(format!("{base}/v1/chunks/{OTHER}/create")).json(&serde_json::json!({"version": 1, "chunk_size_bytes": SIZE})).build().unwrap();
    let mut signed = create;
    insider().sign(&mut signed);
    let replay = signed.try_clone().unwrap();
    assert_eq!(outcome(http.execute(signed).await.unwrap()).await, OK);
    n.store.delete(OTHER).unwrap();
    assert_eq!(outcome(http.execute(replay).await.unwrap()).await, UNAUTHORIZED);
    assert!(n.store.info(OTHER).is_none(), "the replay created nothing");
}

#[tokio::test]
async fn a_copy_from_a_stranger_is_refused_and_the_replica_here_kept() {
    let (source, target) = (start_node().await, start_node().await);
    put_replica(&source.node, H, b"theirs");
    put_replica(&target.node, H, b"kept");
    introduce(&[&target.node]); // the source is not a registered chunkserver
    let err = replicate(&target.node, &source.node.address, V1).await.unwrap_err();
    assert_eq!(err.error, ErrorKind::EACCES, "{err:?}");
    assert!(err.message.contains(&source.node.address), "{err:?}");
    assert_eq!(target.node.store.read(H, V1, 0, 10).unwrap(), b"kept");
    assert_eq!(source.node.bytes_read.load(std::sync::atomic::Ordering::Relaxed), 0, "the source was never asked");
}

#[tokio::test]
async fn a_peer_reads_for_a_copy_with_its_signature_and_a_stranger_cannot() {
    let t = start_node().await;
    let n = &t.node;
    put_replica(n, H, b"replica");
    let http = reqwest::Client::new();
    let [unsigned, forged] = unsigned_and_forged(&http, http.get(data_url(n, H))).await;
    assert_eq!((unsigned, forged), (UNAUTHORIZED, UNAUTHORIZED));
    let resp = insider().send(&http, http.get(data_url(n, H))).await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), "replica");
}

#[tokio::test]
async fn verify_answers_whether_the_replica_is_sound_and_sets_a_corrupt_one_aside() {
    let t = start_node().await;
    let n = &t.node;
    put_replica(n, H, &vec![9u8; 3 * BLOCK_BYTES as usize]);
    let (http, auth) = (reqwest::Client::new(), insider());
    let verify = |version: u64| {
        let req = http.post(format!("{}/v1/chunks/{H}/verify", n.address)).json(&serde_json::json!({ "version": version }));
        auth.send(&http, req)
    };
    let sound: VerifyAnswer = verify(1).await.unwrap().json().await.unwrap();
    assert!(!sound.corrupt);
    assert_eq!(outcome(verify(2).await.unwrap()).await, (409, Some(ErrorKind::ESTALE)));
    {
        use std::os::unix::fs::FileExt;
        let path = n.data_dir.join("chunks").join(format!("{:016x}.data", H.0));
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(b"\x01", BLOCK_BYTES + 3).unwrap();
    }
    let rotten: VerifyAnswer = verify(1).await.unwrap().json().await.unwrap();
    assert!(rotten.corrupt);
    assert!(n.store.info(H).is_none(), "quarantined");
    assert_eq!(outcome(verify(1).await.unwrap()).await, (404, Some(ErrorKind::ENOENT)));
}

#[tokio::test]
async fn a_forward_to_a_peer_gone_since_fails_as_unreachable_without_contacting_it() {
    let t = start_node().await;
    let n = &t.node;
    // A peer that died: in the list before, not in the current one.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_url = format!("http://{}", gone.local_addr().unwrap());
    n.peers.set(dfs_proto::wire::chunks::Peers { epoch: 1, addresses: vec![n.address.clone(), gone_url.clone()] });
    n.peers.set(dfs_proto::wire::chunks::Peers { epoch: 2, addresses: vec![n.address.clone()] });
    put_replica(n, H, b"kept");
    let data = b"new bytes";
    let req = reqwest::Client::new()
        .put(data_url(n, H))
        .header(HEADER_CHECKSUMS, checksum_header(data))
        .header(HEADER_FORWARD, gone_url.clone())
        .header(HEADER_TOKEN, grant(H, V1, Ops::WRITE))
        .body(data.to_vec());
    let resp = req.send().await.unwrap();
    assert!(resp.headers().contains_key("x-dfs-replica-reported"), "the writer's retry gets a lease without it");
    assert_eq!(outcome(resp).await.1, Some(ErrorKind::EIO), "a failed replica (the writer retries), not a 403");
    assert_eq!(n.store.read(H, V1, 0, 10).unwrap(), b"kept");
    // Nothing was sent to it: its listener never saw a connection.
    let accepted = tokio::time::timeout(Duration::from_millis(100), gone.accept()).await;
    assert!(accepted.is_err(), "the gone peer was contacted");
}

#[tokio::test]
async fn every_declared_endpoint_is_routed_and_internal_ones_need_a_signature() {
    let t = start_node().await;
    let app = super::router(t.node.clone());
    let wrong = dfs_server_kit::http::route::undeclared_behaviour(app, dfs_proto::endpoint::chunkserver::ALL).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}
