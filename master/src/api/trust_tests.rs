//! The master's trust rules through its router, in process: heartbeats
//! must be signed with the cluster key and of this cluster, answers are
//! signed, locations and leases carry tokens, and a client's bad-replica
//! report never drops a replica. A fake chunkserver on loopback (behind
//! the same signature check as the real one) takes the master's calls.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::routing::post;
use axum::Router;
use dfs_proto::auth::{unix_ms, ClusterKey, KeyRing, Ops, TokenKey, TokenVerifier};
use dfs_proto::wire::chunks::*;
use dfs_proto::{ChunkHandle, NodeId};
use dfs_server_kit::http::internal::{require_signed, ClusterAuth};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::router;
use crate::chunks::trust::Trust;
use crate::chunks::{safe_mode, ChunkConfig, ChunkManager};
use crate::state;
use crate::store::mutations::Defaults;
use crate::store::{Store, Writer, WriterConfig};
use crate::tokens::{Schedule, Tokens};

struct Master {
    app: Router,
    auth: Arc<ClusterAuth>,
    ring: KeyRing,
    cluster_id: String,
    _dir: tempfile::TempDir,
}

/// A master whose client calls need no login (these tests are about the cluster's trust).
fn master() -> Master {
    master_with(crate::users::AuthMode::None)
}

fn master_with(mode: crate::users::AuthMode) -> Master {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let defaults = Defaults { replication: 1, chunk_size_bytes: 1 << 20 };
    let writer =
        Writer::start(store.clone(), WriterConfig { defaults, group_max: 64, reap_batch: 100, open_files_timeout: crate::store::held::SESSION_TIMEOUT })
            .unwrap();
    let ring = KeyRing::single(ClusterKey::generate());
    let auth = ClusterAuth::fixed(ring.clone());
    let ms = Duration::from_millis;
    let config = ChunkConfig {
        lease: ms(10_000),
        dead_after: ms(10_000),
        monitor_interval: ms(1_000),
        copies_per_node: 2,
        gc_grace: ms(60_000),
        startup_delete_delay: ms(60_000),
        safe_mode: safe_mode::Rule { threshold: 0.0, extension: ms(0), timeout: ms(0) },
    };
    let cluster_id = store.cluster_id().unwrap();
    let trust = Trust::new(auth.clone(), Tokens::new(auth.clone(), Schedule::new(60_000, 120_000, 1_000)), cluster_id.clone());
    let chunks = ChunkManager::load(store.clone(), writer.clone(), config, trust).unwrap();
    let state = state::Master {
        store: store.clone(),
        writer: writer.clone(),
        chunks,
        started: Instant::now(),
        history: Default::default(),
        http_metrics: dfs_server_kit::http::metrics::HttpMetrics::new("test"),
        auth: auth.clone(),
        users: std::sync::Arc::new(crate::users::Users::new(mode, "supergroup", 3_600_000)),
        dashboard: Default::default(),
        delegation: std::sync::Arc::new(crate::delegation::Delegation::new(store.clone(), writer.clone())),
        self_url: "http://127.0.0.1:1".into(),
        workers: Default::default(),
        role: std::sync::Arc::new(crate::raft::role::Role::single()),
    };
    Master { app: router(state, 1 << 20), auth, ring, cluster_id, _dir: dir }
}

/// A chunkserver that answers the master's calls (create, version,
/// verify) when they are signed with `ring`, and notes them.
async fn fake_chunkserver(ring: KeyRing) -> (String, Arc<Mutex<Vec<String>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let noted = calls.clone();
    let note = move |req: Request| {
        let noted = noted.clone();
        async move {
            noted.lock().unwrap().push(req.uri().path().to_string());
            match req.uri().path().ends_with("/verify") {
                true => axum::Json(json!({"corrupt": false})),
                false => axum::Json(json!({})),
            }
        }
    };
    let app =
        Router::new().route("/v1/chunks/{h}/{op}", post(note)).route_layer(axum::middleware::from_fn_with_state(ClusterAuth::fixed(ring), require_signed));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (url, calls)
}

fn heartbeat(node: u128, address: &str, cluster_id: Option<&str>, peers_epoch: u64) -> Heartbeat {
    Heartbeat {
        node_id: NodeId(uuid::Uuid::from_u128(node)),
        address: address.into(),
        capacity_bytes: 1 << 40,
        used_bytes: 0,
        chunk_count: 0,
        load: 0,
        report: Some(Vec::new()),
        bytes_read: 0,
        bytes_written: 0,
        scrub: None,
        registering: true,
        cluster_id: cluster_id.map(str::to_string),
        peers_epoch,
    }
}

/// A POST of `body` as JSON, signed with `auth` if given; the request and
/// its signature header.
fn post_json(auth: Option<&ClusterAuth>, path: &str, body: &impl serde::Serialize) -> (Request, String) {
    let mut r = reqwest::Client::new().post(format!("http://master{path}")).json(body).build().unwrap();
    if let Some(auth) = auth {
        auth.sign(&mut r);
    }
    let mut b = axum::http::Request::builder().method("POST").uri(path);
    for (k, v) in r.headers() {
        b = b.header(k, v);
    }
    let signature = r.headers().get("x-dfs-auth").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = r.body().and_then(|b| b.as_bytes()).unwrap_or_default().to_vec();
    (b.body(Body::from(bytes)).unwrap(), signature)
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn call(app: &Router, req: Request) -> Answer {
    let r = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec();
    Answer { status, headers, body }
}

async fn get(app: &Router, path: &str) -> Value {
    let req = axum::http::Request::builder().uri(path).body(Body::empty()).unwrap();
    let a = call(app, req).await;
    assert_eq!(a.status, 200, "{path}: {}", String::from_utf8_lossy(&a.body));
    a.json()
}

async fn registered(app: &Router) -> usize {
    get(app, "/v1/chunkservers").await.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn heartbeats_must_be_signed_by_this_cluster_and_are_answered_signed() {
    let m = master();
    let hb = heartbeat(1, "http://127.0.0.1:1", None, 0);
    let (unsigned, _) = post_json(None, "/v1/heartbeat", &hb);
    let a = call(&m.app, unsigned).await;
    assert_eq!((a.status, a.json()["error"].as_str()), (401, Some("EKEYREJECTED")));
    let stranger = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
    let (forged, _) = post_json(Some(&stranger), "/v1/heartbeat", &hb);
    assert_eq!(call(&m.app, forged).await.status, 401);
    // Signed with this key but of another cluster: refused, naming both.
    let other = heartbeat(1, "http://127.0.0.1:1", Some("other-cluster"), 0);
    let (req, _) = post_json(Some(&m.auth), "/v1/heartbeat", &other);
    let a = call(&m.app, req).await;
    assert_eq!((a.status, a.json()["error"].as_str()), (403, Some("EACCES")));
    let message = a.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("other-cluster") && message.contains(&m.cluster_id), "{message}");
    assert_eq!(registered(&m.app).await, 0, "no refused heartbeat registered a node");

    // Signed, new (no cluster id yet): taken, and the answer is signed.
    let (req, signature) = post_json(Some(&m.auth), "/v1/heartbeat", &hb);
    let a = call(&m.app, req).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    m.auth.verify_answer(&signature, a.status, &a.headers, &a.body).expect("the answer is signed for this request");
    let stranger_view = stranger.verify_answer(&signature, a.status, &a.headers, &a.body);
    assert!(stranger_view.is_err(), "another key cannot vouch for it");
    let answer: HeartbeatResponse = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(answer.cluster_id, m.cluster_id);
    assert!(!answer.token_keys.is_empty());
    assert!(TokenVerifier::default().install(&m.ring, &answer.token_keys).is_empty(), "a node with the key derives them");
    let peers = answer.peers.expect("a node without a list gets one");
    assert_eq!(peers.addresses, vec!["http://127.0.0.1:1".to_string()]);
    assert_eq!(registered(&m.app).await, 1);

    // Same cluster id and epoch: no list; another node joining changes it.
    let again = heartbeat(1, "http://127.0.0.1:1", Some(&m.cluster_id), peers.epoch);
    let (req, _) = post_json(Some(&m.auth), "/v1/heartbeat", &again);
    let answer: HeartbeatResponse = serde_json::from_slice(&call(&m.app, req).await.body).unwrap();
    assert_eq!(answer.peers, None, "the list did not change");
    let (req, _) = post_json(Some(&m.auth), "/v1/heartbeat", &heartbeat(2, "http://127.0.0.1:2", None, 0));
    assert_eq!(call(&m.app, req).await.status, 200);
    let (req, _) = post_json(Some(&m.auth), "/v1/heartbeat", &again);
    let answer: HeartbeatResponse = serde_json::from_slice(&call(&m.app, req).await.body).unwrap();
    let grown = answer.peers.expect("the list changed");
    assert_ne!(grown.epoch, peers.epoch);
    assert_eq!(grown.addresses.len(), 2);
}

/// A file of one chunk placed on the fake chunkserver: its location.
async fn one_chunk_file(m: &Master, path: &str) -> (ChunkLocation, WriteLease) {
    let (req, _) = post_json(None, "/v1/create", &json!({"path": path, "replication": 1}));
    let created = call(&m.app, req).await;
    assert_eq!(created.status, 200, "{}", String::from_utf8_lossy(&created.body));
    let inode = created.json()["inode"].as_u64().unwrap();
    let (req, _) = post_json(None, "/v1/chunks/lease", &json!({"inode": inode, "index": 0}));
    let a = call(&m.app, req).await;
    assert_eq!(a.status, 200, "lease: {}", String::from_utf8_lossy(&a.body));
    let lease: WriteLease = serde_json::from_slice(&a.body).unwrap();
    let locations: ChunkLocations = serde_json::from_value(get(&m.app, &format!("/v1/chunks?inode={inode}")).await).unwrap();
    (locations.chunks[0].clone(), lease)
}

async fn listed(m: &Master, inode_path: &str, handle: ChunkHandle) -> usize {
    let inode = get(&m.app, &format!("/v1/stat?path={inode_path}")).await["inode"].as_u64().unwrap();
    let locations: ChunkLocations = serde_json::from_value(get(&m.app, &format!("/v1/chunks?inode={inode}")).await).unwrap();
    locations.chunks.iter().find(|c| c.handle == handle).map_or(0, |c| c.replicas.len())
}

#[tokio::test]
async fn tokens_are_handed_out_and_a_client_report_only_asks_for_a_verification() {
    let m = master();
    let (cs, calls) = fake_chunkserver(m.ring.clone()).await;
    let (req, _) = post_json(Some(&m.auth), "/v1/heartbeat", &heartbeat(7, &cs, None, 0));
    let a = call(&m.app, req).await;
    let answer: HeartbeatResponse = serde_json::from_slice(&a.body).unwrap();
    let chunkserver = TokenVerifier::default();
    chunkserver.install(&m.ring, &answer.token_keys);

    // Placing the chunk took a signed create call; its tokens check out.
    let (loc, lease) = one_chunk_file(&m, "/a").await;
    assert!(calls.lock().unwrap().iter().any(|c| c.ends_with("/create")), "{calls:?}");
    let now = unix_ms();
    let read = chunkserver.verify(Some(&loc.token), now, loc.handle, loc.version, Ops::READ).expect("a read token");
    assert_eq!(read.identity, "anonymous");
    assert!(chunkserver.verify(Some(&loc.token), now, loc.handle, loc.version, Ops::WRITE).is_err(), "a location's token does not write");
    chunkserver.verify(Some(&lease.token), now, lease.handle, lease.version, Ops::WRITE).expect("a lease's token writes");
    let (other, _) = one_chunk_file(&m, "/b").await;
    assert_eq!(listed(&m, "/a", loc.handle).await, 1);

    // Unsigned reports without a good read token for the chunk: refused.
    let report = |token: Option<String>| BadReplica {
        handle: loc.handle,
        node_id: Some(NodeId(uuid::Uuid::from_u128(7))),
        address: None,
        corrupt: true,
        reporter_version: None,
        token,
    };
    let forged = TokenKey::generate(&KeyRing::single(ClusterKey::generate()), read.key_id, u64::MAX).sign(&read);
    for (token, status, kind) in [
        (None, 401, "EKEYREJECTED"),
        (Some("junk".to_string()), 401, "EKEYREJECTED"),
        (Some(forged), 401, "EKEYREJECTED"),
        (Some(other.token.clone()), 403, "EACCES"),
    ] {
        let (req, _) = post_json(None, "/v1/chunks/bad", &report(token.clone()));
        let a = call(&m.app, req).await;
        assert_eq!((a.status, a.json()["error"].as_str()), (status, Some(kind)), "{token:?}");
    }
    assert!(!calls.lock().unwrap().iter().any(|c| c.ends_with("/verify")), "no verification for a refused report");

    // With the client's read token: the chunkserver is asked to verify,
    // and the replica stays (it verified sound).
    let (req, _) = post_json(None, "/v1/chunks/bad", &report(Some(loc.token.clone())));
    assert_eq!(call(&m.app, req).await.status, 200);
    let until = Instant::now() + Duration::from_secs(5);
    while !calls.lock().unwrap().iter().any(|c| c == &format!("/v1/chunks/{}/verify", loc.handle)) {
        assert!(Instant::now() < until, "no verification was asked: {calls:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(listed(&m, "/a", loc.handle).await, 1, "a client's report never drops a replica");

    // A chunkserver's report (signed) is acted on.
    let (req, _) = post_json(Some(&m.auth), "/v1/chunks/bad", &report(None));
    assert_eq!(call(&m.app, req).await.status, 200);
    assert_eq!(listed(&m, "/a", loc.handle).await, 0, "a signed report drops the replica");
    // A badly signed one is refused, not taken for a client's.
    let stranger = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
    let other_report = BadReplica { handle: other.handle, ..report(None) };
    let (req, _) = post_json(Some(&stranger), "/v1/chunks/bad", &other_report);
    assert_eq!(call(&m.app, req).await.status, 401);
    assert_eq!(listed(&m, "/b", other.handle).await, 1);
}

#[tokio::test]
async fn every_declared_endpoint_is_routed_and_internal_ones_need_a_signature() {
    let m = master_with(crate::users::AuthMode::Users);
    let wrong = dfs_server_kit::http::route::undeclared_behaviour(m.app.clone(), dfs_proto::endpoint::master::ALL).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}
