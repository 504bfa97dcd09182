//! Request ids through the real server loop over loopback: taken from the
//! header or replaced, echoed, carried into spawned tasks and onto calls to
//! peers, and on every log line a handler writes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::*;
use crate::http::internal::ClusterAuth;
use crate::http::serve::{serve, Limits};
use dfs_proto::auth::{ClusterKey, KeyRing};

fn limits() -> Limits {
    Limits { header_read_timeout: Duration::from_secs(5), body_idle_timeout: Duration::from_secs(5), max_connections: 16, drain: Duration::from_millis(100) }
}

/// Serves `router` with the daemons' server loop; its base URL.
async fn start(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, router, limits(), None, std::future::pending()));
    url
}

fn current_text() -> String {
    current().map_or_else(|| "none".into(), |id| id.to_string())
}

/// `/id`: the id the handler runs under; `/spawned`: the one a task it
/// spawned runs under; `/peer`: the id a peer got on a signed call.
fn app(peer: String) -> Router {
    let auth = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
    Router::new().route("/id", get(|| async { current_text() })).route("/spawned", get(|| async { spawn(async { current_text() }).await.unwrap() })).route(
        "/peer",
        get(move || async move {
            let http = reqwest::Client::new();
            auth.send(&http, http.get(format!("{peer}/header"))).await.unwrap().text().await.unwrap()
        }),
    )
}

/// The peer: answers the request id header it received.
fn peer() -> Router {
    Router::new().route("/header", get(|h: HeaderMap| async move { h.get(HEADER_REQUEST_ID).map_or("none".into(), |v| v.to_str().unwrap().to_string()) }))
}

/// Body and echoed id of `GET url` with `id` (raw bytes) as the header.
async fn ask(url: &str, id: Option<&[u8]>) -> (String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(id) = id {
        req = req.header(HEADER_REQUEST_ID, HeaderValue::from_bytes(id).unwrap());
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success());
    let echoed = resp.headers().get(HEADER_REQUEST_ID).expect("echoed").to_str().unwrap().to_string();
    (resp.text().await.unwrap(), echoed)
}

fn is_fresh(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn a_well_formed_id_is_served_under_echoed_spawned_with_and_sent_on() {
    let peer = start(peer()).await;
    let url = start(app(peer)).await;
    for path in ["/id", "/spawned", "/peer"] {
        let (body, echoed) = ask(&format!("{url}{path}"), Some(b"op-42-abc")).await;
        assert_eq!((body.as_str(), echoed.as_str()), ("op-42-abc", "op-42-abc"), "{path}");
    }
}

#[tokio::test]
async fn a_missing_or_malformed_id_is_replaced_by_a_fresh_one() {
    let url = start(app(String::new())).await;
    let long = "a".repeat(65);
    let cases: [Option<&[u8]>; 6] = [None, Some(b"has space"), Some(b"a=b} forged"), Some(long.as_bytes()), Some(b"\xff\xfe"), Some(b"")];
    for id in cases {
        let (body, echoed) = ask(&format!("{url}/id"), id).await;
        assert!(is_fresh(&body), "{id:?} served as {body}");
        assert_eq!(body, echoed);
    }
    assert_ne!(ask(&format!("{url}/id"), None).await.0, ask(&format!("{url}/id"), None).await.0, "each request gets its own");
}

#[tokio::test]
async fn no_request_no_id() {
    assert_eq!(current(), None);
    assert_eq!(spawn(async { current() }).await.unwrap(), None);
}

/// A log sink for the test's subscriber.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_handlers_log_lines_name_the_request_and_the_answer_is_logged() {
    // The daemons' format (fmt, as daemon_main sets it up); on this
    // current-thread runtime the thread's default subscriber sees every task.
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,dfs_request=debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let router = Router::new().route(
        "/work",
        get(|| async {
            tracing::warn!("handler was here");
            "ok"
        }),
    );
    let url = start(router).await;
    ask(&format!("{url}/work?x=1"), Some(b"follow-me-1")).await;
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let line = |what: &str| log.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no line with {what:?} in:\n{log}")).to_string();
    for l in [line("handler was here"), line("answered")] {
        assert!(l.contains("request{request_id=follow-me-1 method=GET path=/work}"), "{l}");
    }
    assert!(line("answered").contains("status=200"));
}

/// A background worker's pass is one operation: one fresh id for the pass
/// and what it spawns, another for the next pass.
#[tokio::test]
async fn each_background_pass_runs_under_a_fresh_id_its_tasks_share() {
    let pass = || background("test", async { (current_text(), spawn(async { current_text() }).await.unwrap()) });
    let (first, spawned) = pass().await;
    let (second, _) = pass().await;
    assert_ne!(first, "none");
    assert_eq!(first, spawned);
    assert_ne!(first, second);
    assert_eq!(current_text(), "none", "nothing outside a pass");
}
