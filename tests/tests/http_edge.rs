//! Hostile clients against the daemons' HTTP edge, real processes on
//! loopback with short timeouts: slowloris heads, bodies that stop, more
//! connections than the cap, made-up methods and paths against the metrics,
//! and bad path parameters. Every request here is one whose answer does not
//! depend on authentication (the header timeout acts before any handler;
//! the master's client routes are open).

use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_proto::wire::namespace::{CreateRequest, EntryRef};
use dfs_tests::{Cluster, MasterProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The timeouts the daemons run with here (both, in ms).
const HEADER_MS: u64 = 800;
const BODY_MS: u64 = 800;
/// Longest wait for anything that should come soon.
const SOON: Duration = Duration::from_secs(10);

fn edge_flags(header_ms: u64, max_connections: usize) -> Vec<String> {
    [
        "--header-read-timeout-ms".to_string(),
        header_ms.to_string(),
        "--body-idle-timeout-ms".to_string(),
        BODY_MS.to_string(),
        "--max-connections".to_string(),
        max_connections.to_string(),
    ]
    .to_vec()
}

/// A master whose API takes unsigned requests (`--auth none`): these
/// tests are about the HTTP edge, which raw requests reach only so.
fn master(dir: &tempfile::TempDir, header_ms: u64, max_connections: usize) -> MasterProcess {
    let mut flags = edge_flags(header_ms, max_connections);
    flags.extend(["--auth".to_string(), "none".to_string()]);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    MasterProcess::start(&dir.path().join("master"), &args).expect("start master")
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// Sends `raw` on a new connection and reads the whole answer (the request
/// asks the server to close).
async fn exchange(addr: &str, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(SOON, s.read_to_end(&mut out)).await.expect("answered in time").expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").into_bytes()
}

/// The JSON body of an answer.
fn json_of(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

/// A connection sending a request head one line at a time, never ending
/// it; resolves with how long the server took to close it.
async fn slowloris(addr: String) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    let _ = s.write_all(b"GET /v1/fs HTTP/1.1\r\nhost: x\r\n").await;
    let mut buf = [0u8; 1024];
    for i in 0.. {
        tokio::select! {
            read = s.read(&mut buf) => match read {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {} // a 408 or 400 before the close
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if s.write_all(format!("x-slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                    return start.elapsed();
                }
            }
        }
        assert!(start.elapsed() < SOON, "a slowloris head on {addr} was never cut off");
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_heads_are_cut_off_while_writes_and_reads_go_on() {
    let flags = edge_flags(HEADER_MS, 64);
    let c = Cluster::start_custom(1, &flags.iter().map(String::as_str).collect::<Vec<_>>(), |i, dir| (dir.join(format!("cs{i}")), edge_flags(HEADER_MS, 64)))
        .expect("start cluster");
    c.wait_live(1, SOON).await.expect("chunkserver live");
    let targets = [addr_of(&c.master.url), addr_of(&c.chunkservers[0].url)];
    let slow: Vec<_> = (0..16).map(|i| tokio::spawn(slowloris(targets[i % 2].clone()))).collect();

    // Meanwhile a client writes and reads back through both daemons.
    let client = dfs_tests::client(&c.master.url);
    let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    for n in 0..3 {
        let path = format!("/during-slowloris-{n}");
        let req = CreateRequest { at: EntryRef::path(&path), replication: Some(1), exclusive: true, ..Default::default() };
        let attr = client.master().create(&req).await.expect("create").attr;
        client.write_at(&attr, 0, Bytes::from(data.clone())).await.expect("write during slowloris");
        let attr = client.master().stat(&path).await.expect("stat");
        assert!(client.read_at(&attr, 0, attr.size).await.expect("read") == data[..]);
    }

    for s in slow {
        let cut = s.await.expect("slowloris task");
        let header = Duration::from_millis(HEADER_MS);
        assert!(cut >= header - Duration::from_millis(50) && cut < 4 * header, "cut off after {cut:?}");
    }
}

#[tokio::test]
async fn a_body_that_stops_midway_is_cut_off_after_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let m = master(&dir, HEADER_MS, 64);
    let addr = addr_of(&m.url);
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/mkdir HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"at\":").await.unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(SOON, s.read_to_end(&mut out)).await.expect("answered and closed").unwrap();
    let took = start.elapsed();
    let out = String::from_utf8_lossy(&out).into_owned();
    let body = Duration::from_millis(BODY_MS);
    assert!(took >= body - Duration::from_millis(50) && took < 4 * body, "cut off after {took:?}");
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(json_of(&out)["error"], "EINVAL", "{out}");
    // Nothing was made, and the master serves on.
    let answer = exchange(&addr, &get("/v1/stat?path=/")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn over_the_connection_cap_new_connections_wait_and_service_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 4;
    // A long header timeout: the holders below keep their slots until they go.
    let m = master(&dir, 30_000, cap);
    let addr = addr_of(&m.url);
    // One kept-alive connection in use, and the other slots held by heads
    // in progress (well inside the header timeout).
    let mut existing = TcpStream::connect(&addr).await.unwrap();
    let ask = b"GET /v1/fs HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut buf = vec![0u8; 64 * 1024];
    existing.write_all(ask).await.unwrap();
    let n = existing.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut held = Vec::new();
    for _ in 1..cap {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /v1/fs HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Over the cap: the connection is taken by the kernel, not served.
    let mut newcomer = TcpStream::connect(&addr).await.unwrap();
    newcomer.write_all(&get("/v1/fs")).await.unwrap();
    let mut answer = Vec::new();
    let early = tokio::time::timeout(Duration::from_millis(300), newcomer.read_to_end(&mut answer)).await;
    assert!(early.is_err(), "served over the cap: {}", String::from_utf8_lossy(&answer));

    // The connection already open works meanwhile.
    existing.write_all(ask).await.unwrap();
    let n = existing.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Slots free (here the holders give up) and the waiting one is served.
    drop(held);
    tokio::time::timeout(SOON, newcomer.read_to_end(&mut answer)).await.expect("served once slots freed").unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(exchange(&addr, &get("/v1/fs")).await.starts_with("HTTP/1.1 200"));
}

/// The request series on `/metrics`: each line of the request counter and
/// latency histogram count, without its value.
async fn series(addr: &str) -> std::collections::BTreeSet<String> {
    let text = exchange(addr, &get("/metrics")).await;
    text.lines()
        .filter(|l| l.starts_with("dfs_master_http_requests_total{") || l.starts_with("dfs_master_http_request_duration_seconds_count{"))
        .filter_map(|l| l.rsplit_once(' ').map(|(labels, _)| labels.to_string()))
        .collect()
}

#[tokio::test]
async fn made_up_methods_and_garbage_paths_create_no_metric_series() {
    let dir = tempfile::tempdir().unwrap();
    let m = master(&dir, HEADER_MS, 64);
    let addr = addr_of(&m.url);
    // Made-up methods on known and unknown paths, known methods on garbage.
    let send_all = |range: std::ops::Range<u32>| {
        let addr = addr.clone();
        async move {
            for i in range {
                let method = format!("M{i}X");
                for path in [format!("/garbage-{i}/%ff%00"), format!("/v1/inodes/{}", i + 1000), "/v1/fs".to_string(), format!("/{i}/../../etc")] {
                    exchange(&addr, format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await;
                    exchange(&addr, &get(&path)).await;
                }
            }
        }
    };
    // A first round makes the series these land in; a scrape makes its own.
    send_all(0..2).await;
    series(&addr).await;
    let before = series(&addr).await;
    send_all(2..50).await;
    let after = series(&addr).await;
    assert_eq!(before, after, "new series appeared");
    assert!(after.iter().all(|s| !s.contains("garbage") && !s.contains("M1X")), "{after:#?}");
    assert!(after.iter().any(|s| s.contains(r#"route="unmatched""#)) && after.iter().any(|s| s.contains(r#"method="other""#)), "{after:#?}");
}

#[tokio::test]
async fn bad_path_parameters_are_json_400s() {
    let dir = tempfile::tempdir().unwrap();
    let m = master(&dir, HEADER_MS, 64);
    let addr = addr_of(&m.url);
    for path in ["/v1/inodes/xyz", "/v1/inodes/-1", "/v1/inodes/99999999999999999999999", "/v1/inodes/1.5", "/v1/inodes/%FF"] {
        let answer = exchange(&addr, &get(path)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        let body = json_of(&answer);
        assert_eq!(body["error"], "EINVAL", "{path}: {answer}");
        assert!(body["message"].as_str().unwrap_or("").contains("path parameter"), "{path}: {answer}");
    }
    let root = exchange(&addr, &get("/v1/inodes/1")).await;
    assert!(root.starts_with("HTTP/1.1 200"), "{root}");
}
