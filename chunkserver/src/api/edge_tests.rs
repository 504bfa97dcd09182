//! The chunkserver's router behind the daemons' server loop, with short
//! timeouts: what a hostile client can hold, and for how long.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dfs_proto::wire::chunks::{checksum_header, HEADER_CHECKSUMS};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorBody, ErrorKind};
use dfs_server_kit::http::serve::{serve, Limits};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::test_cluster::{grant, sign_by_hand};
use super::{router, CONTROL_BODY_MAX_BYTES};
use crate::chunk_store::ChunkStore;
use crate::config::ChunkserverConfig;
use crate::node::Node;
use dfs_proto::auth::Ops;

const H: ChunkHandle = ChunkHandle(7);
const V1: ChunkVersion = ChunkVersion(1);
const BODY_IDLE: Duration = Duration::from_millis(300);

struct Served {
    node: Arc<Node>,
    addr: std::net::SocketAddr,
    _dir: TempDir,
}

async fn start() -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ChunkserverConfig::parse_from(["dfs-chunkserver", "--data-dir", dir.path().to_str().expect("utf-8 path")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let store = ChunkStore::open(dir.path()).expect("store");
    let node = super::test_cluster::node(&config, store, format!("http://{addr}"));
    let limits = Limits { header_read_timeout: Duration::from_secs(5), body_idle_timeout: BODY_IDLE, max_connections: 64, drain: Duration::from_secs(1) };
    tokio::spawn(serve(listener, router(node.clone()), limits, None, std::future::pending()));
    Served { node, addr, _dir: dir }
}

/// Sends `head` and `body` on a new connection and reads the whole answer.
async fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.expect("answered").unwrap();
    out
}

fn error_of(answer: &str) -> ErrorBody {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a JSON error ({e}): {answer}"))
}

#[tokio::test]
async fn control_bodies_over_the_small_limit_are_refused_before_anything_changes() {
    let s = start().await;
    let small = br#"{"version":1,"chunk_size_bytes":1048576}"#.to_vec();
    let mut padded = small.clone();
    padded.splice(1..1, std::iter::repeat_n(b' ', CONTROL_BODY_MAX_BYTES + 1));
    // Signed, as the master sends it (create is an internal route).
    let head = |body: &[u8]| {
        let auth = sign_by_hand("POST", &format!("http://{}/v1/chunks/{H}/create", s.addr), &[("content-length", body.len().to_string())], body);
        let len = body.len();
        format!("POST /v1/chunks/{H}/create HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\nx-dfs-auth: {auth}\r\ncontent-length: {len}\r\n\r\n")
    };

    let answer = exchange(s.addr, &head(&padded), &padded).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(error_of(&answer).error, ErrorKind::EMSGSIZE);
    assert!(s.node.store.info(H).is_none());

    let answer = exchange(s.addr, &head(&small), &small).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(s.node.store.info(H).is_some());
}

#[tokio::test]
async fn a_data_put_larger_than_the_control_limit_still_passes() {
    let s = start().await;
    s.node.store.create(H, V1, 1 << 20).unwrap();
    let data = vec![5u8; 256 * 1024];
    let head = format!(
        "PUT /v1/chunks/{H}/data?version=1&offset=0 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{HEADER_CHECKSUMS}: {}\r\nx-dfs-token: {}\r\ncontent-length: {}\r\n\r\n",
        checksum_header(&data),
        grant(H, V1, Ops::WRITE),
        data.len()
    );
    let answer = exchange(s.addr, &head, &data).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(s.node.store.read(H, V1, 0, 1 << 20).unwrap(), data);
}

#[tokio::test]
async fn a_put_whose_body_stops_fails_and_gives_back_its_write_budget() {
    let s = start().await;
    s.node.store.create(H, V1, 4 << 20).unwrap();
    let full = s.node.write_budget.available_permits();
    let data = vec![3u8; 2 << 20];
    let head = format!(
        "PUT /v1/chunks/{H}/data?version=1&offset=0 HTTP/1.1\r\nhost: x\r\n{HEADER_CHECKSUMS}: {}\r\nx-dfs-token: {}\r\ncontent-length: {}\r\n\r\n",
        checksum_header(&data),
        grant(H, V1, Ops::WRITE),
        data.len()
    );
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&data[..100_000]).await.unwrap();
    let start = Instant::now();
    tokio::time::sleep(BODY_IDLE / 3).await;
    assert_eq!(s.node.write_budget.available_permits(), full - 2, "the write holds its budget while it waits");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut out)).await.expect("answered and closed").unwrap();
    let took = start.elapsed();
    assert!(took >= BODY_IDLE - Duration::from_millis(20) && took < 5 * BODY_IDLE, "answered after {took:?}");
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(error_of(&out).message.contains("request body"), "{out}");
    assert_eq!(s.node.write_budget.available_permits(), full);
    assert_eq!(s.node.store.read(H, V1, 0, 4 << 20).unwrap(), b"", "nothing written");
}

#[tokio::test]
async fn a_bad_chunk_handle_in_the_path_is_a_json_einval() {
    let s = start().await;
    for path in ["/v1/chunks/notanumber/data?version=1", "/v1/chunks/-3", "/v1/chunks/99999999999999999999/fsync?version=1"] {
        let method = if path.ends_with("fsync?version=1") { "POST" } else { "GET" };
        // Signed: `/v1/chunks/{h}` is internal, and its signature is checked first.
        let auth = sign_by_hand(method, &format!("http://{}{path}", s.addr), &[("content-length", "0".into())], b"");
        let head = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-dfs-auth: {auth}\r\ncontent-length: 0\r\n\r\n");
        let answer = exchange(s.addr, &head, b"").await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert_eq!(error_of(&answer).error, ErrorKind::EINVAL, "{path}");
    }
}

#[tokio::test]
async fn reads_hold_their_budget_until_the_answer_is_gone() {
    let s = start().await;
    s.node.store.create(H, V1, 4 << 20).unwrap();
    s.node.store.write(H, V1, 0, &vec![1u8; 3 << 20], None).unwrap();
    let full = s.node.read_budget.available_permits();
    let url = format!("http://{}/v1/chunks/{H}/data?version=1&offset=0&length={}", s.addr, 3 << 20);
    let answer = reqwest::Client::new().get(url).header("x-dfs-token", grant(H, V1, Ops::READ)).send().await.unwrap();
    assert!(answer.status().is_success());
    assert_eq!(answer.bytes().await.unwrap().len(), 3 << 20);
    // Given back once sent (the server drops the bytes just after the last write).
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.node.read_budget.available_permits() != full {
        assert!(Instant::now() < deadline, "read budget not returned: {} of {full}", s.node.read_budget.available_permits());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
