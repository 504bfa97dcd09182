//! The server loop over real loopback sockets, with raw clients that
//! misbehave on purpose, and timeouts of a few hundred milliseconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::*;

const HEADER: Duration = Duration::from_millis(300);
const BODY: Duration = Duration::from_millis(300);
/// Longest wait for something that should happen at once.
const SOON: Duration = Duration::from_secs(5);

fn limits(max_connections: usize) -> Limits {
    Limits { header_read_timeout: HEADER, body_idle_timeout: BODY, max_connections, drain: Duration::from_millis(500) }
}

/// Reads a body frame by frame, as the chunkserver's PUT does; answers
/// with its length, or 400 and the error.
async fn count(mut body: Body) -> (axum::http::StatusCode, String) {
    use http_body::Body as _;
    let mut n = 0;
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        match frame {
            Ok(f) => n += f.data_ref().map_or(0, |d| d.len()),
            Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
    (axum::http::StatusCode::OK, n.to_string())
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/count", post(count))
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slept"
            }),
        )
        .route("/forever", get(std::future::pending::<&'static str>))
        .route("/big", get(|| async { vec![7u8; 32 << 20] }))
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: Limits) -> Server {
    start_with(limits, None).await
}

async fn start_with(limits: Limits, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve(listener, app(), limits, tls, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop), done }
}

/// One request on a new connection (closed after), answered in time.
async fn request(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(SOON, s.read_to_string(&mut out)).await.expect("answered in time").unwrap();
    out
}

async fn get_root(addr: SocketAddr) -> String {
    request(addr, "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await
}

/// Waits for the server to close `s`; returns how long that took.
async fn closed_after(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(SOON, s.read(&mut buf)).await.expect("closed in time") {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_slowloris_head_is_cut_off_while_others_are_served() {
    let server = start(limits(16)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    // A header line every 100 ms, never the blank line that ends the head.
    let trickle = async {
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(format!("x-{i}: y\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    };
    let others = async {
        for _ in 0..3 {
            assert!(get_root(server.addr).await.ends_with("hello"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let start = Instant::now();
    tokio::join!(trickle, others);
    let cut = start.elapsed();
    assert!(cut >= HEADER && cut < HEADER * 5, "cut off after {cut:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let server = start(limits(16)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hello"));
    // Kept alive: a second request on the same connection.
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hello"));
    let idle = closed_after(&mut s).await;
    assert!(idle >= HEADER - Duration::from_millis(20) && idle < HEADER * 5, "closed after {idle:?}");
}

#[tokio::test]
async fn a_body_that_stops_fails_the_request_after_the_body_timeout() {
    let server = start(limits(16)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /count HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n").await.unwrap();
    s.write_all(&[1u8; 5000]).await.unwrap();
    let start = Instant::now();
    let mut out = String::new();
    tokio::time::timeout(SOON, s.read_to_string(&mut out)).await.expect("answered").unwrap();
    let took = start.elapsed();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("request body"), "{out}");
    assert!(took >= BODY - Duration::from_millis(20) && took < BODY * 5, "answered after {took:?}");
}

#[tokio::test]
async fn a_trickled_body_fails_and_a_steady_one_passes() {
    let server = start(limits(16)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /count HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n").await.unwrap();
    // 10 bytes every 100 ms: never idle for the whole timeout at once.
    let trickle = async {
        for _ in 0..100 {
            if s.write_all(&[1u8; 10]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(SOON, trickle).await.expect("the server cut the trickle off");

    // 64 KiB every 100 ms passes however long it takes.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let len = 10 * 65536;
    s.write_all(format!("POST /count HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {len}\r\n\r\n").as_bytes()).await.unwrap();
    for _ in 0..10 {
        s.write_all(&[2u8; 65536]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200") && out.ends_with(&len.to_string()), "{out}");
}

#[tokio::test]
async fn a_response_the_client_does_not_read_frees_its_connection() {
    let server = start(limits(1)).await;
    let mut reader = TcpStream::connect(server.addr).await.unwrap();
    reader.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    // The one slot is held while the socket buffers fill; then the stall
    // timer runs out and the next client gets the slot.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    assert!(get_root(server.addr).await.ends_with("hello"));
    assert!(start.elapsed() >= BODY / 3, "served after {:?}", start.elapsed());
    drop(reader);
}

#[tokio::test]
async fn over_the_cap_new_connections_wait_until_a_slot_frees() {
    let server = start(limits(2)).await;
    // Two connections take both slots (a head in progress each).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A third connects (the kernel's backlog) but is not served...
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    let early = tokio::time::timeout(Duration::from_millis(150), third.read_to_string(&mut out)).await;
    assert!(early.is_err(), "served over the cap: {out}");
    // ...until a held one ends (here: its client closes it).
    held.pop();
    tokio::time::timeout(SOON, third.read_to_string(&mut out)).await.expect("served").unwrap();
    assert!(out.ends_with("hello"), "{out}");
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_stops_accepting() {
    let mut server = start(limits(16)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /sleep HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop.take().unwrap().send(()).unwrap();
    let mut out = String::new();
    tokio::time::timeout(SOON, s.read_to_string(&mut out)).await.expect("answered").unwrap();
    assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("slept"), "{out}");
    tokio::time::timeout(SOON, server.done).await.expect("stopped").unwrap().unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn shutdown_waits_for_a_stuck_request_only_as_long_as_the_drain() {
    let mut server = start(limits(16)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /forever HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(SOON, server.done).await.expect("stopped").unwrap().unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(2), "stopped after {took:?}");
    assert!(closed_after(&mut s).await < SOON);
}

#[test]
fn limits_must_be_non_zero() {
    assert!(Limits::check(10_000, 30_000, 4096).is_ok());
    assert!(Limits::check(0, 30_000, 4096).unwrap_err().contains("header_read_timeout_ms"));
    assert!(Limits::check(10_000, 0, 4096).unwrap_err().contains("body_idle_timeout_ms"));
    assert!(Limits::check(10_000, 30_000, 0).unwrap_err().contains("max_connections"));
}

/// A CA and a listener certificate for 127.0.0.1 in a temp dir.
fn tls_files() -> (tempfile::TempDir, Arc<rustls::ServerConfig>, Arc<dfs_proto::tls::TrustedCa>) {
    use dfs_proto::tls::{certs, ServerCert, TrustedCa};
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::create_ca(dir.path(), "test").unwrap();
    let (cert, key) = certs::issue(dir.path(), "node", &["127.0.0.1".to_string()], 1).unwrap();
    (dir, ServerCert::open(&cert, &key).unwrap().server_config(), TrustedCa::open(&ca).unwrap())
}

fn https_client(ca: &Arc<dfs_proto::tls::TrustedCa>) -> reqwest::Client {
    reqwest::Client::builder().use_preconfigured_tls(ca.client_config()).build().unwrap()
}

#[tokio::test]
async fn over_tls_a_trusting_client_is_served_and_plaintext_is_told_why_not() {
    let (_dir, config, ca) = tls_files();
    let server = start_with(limits(16), Some(config)).await;
    let body = https_client(&ca).get(format!("https://{}/", server.addr)).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "hello");
    // Several requests on one kept-alive TLS connection, with a body.
    let http = https_client(&ca);
    for _ in 0..3 {
        let n = http.post(format!("https://{}/count", server.addr)).body(vec![1u8; 100_000]).send().await.unwrap().text().await.unwrap();
        assert_eq!(n, "100000");
    }

    let plain = get_root(server.addr).await;
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    assert!(plain.contains("use an https:// URL"), "{plain}");
    let refused = reqwest::get(format!("http://{}/", server.addr)).await.unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn over_tls_another_cas_client_is_refused_and_a_stalled_handshake_cut_off() {
    let (_dir, config, _) = tls_files();
    let (_other_dir, _, other_ca) = tls_files();
    let server = start_with(limits(16), Some(config)).await;
    let err = https_client(&other_ca).get(format!("https://{}/", server.addr)).send().await.unwrap_err();
    assert!(format!("{err:?}").contains("InvalidCertificate"), "{err:?}");

    // A client that sends one byte of a TLS record and stops.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0x16]).await.unwrap();
    let took = closed_after(&mut s).await;
    assert!(took >= HEADER - Duration::from_millis(50) && took < SOON, "closed after {took:?}");
    assert_eq!(get_root(server.addr).await.lines().next(), Some("HTTP/1.1 400 Bad Request"), "still serving");
}
