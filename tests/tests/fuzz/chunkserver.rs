//! The chunkserver's router, in process.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use dfs_chunkserver::node::Node;
use dfs_proto::auth::signature::{self, RequestView, HEADER_AUTH};
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::auth::{unix_ms, BodyDigest, ChunkToken, ClusterKey, KeyRing, Ops, TokenKey};
use dfs_proto::wire::chunks::{checksum_header, CreateReplica, DataQuery, ReplicateChunk, SetReplicaVersion, VerifyReplica, HEADER_CHECKSUMS, HEADER_FORWARD};
use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};
use dfs_server_kit::http::internal::ClusterAuth;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::inputs::*;
use crate::{fuzz, judge, Tally, CS_CHUNK, H0, V0};

/// A chunkserver node on a temp dir with a replica of chunk `H0` at `V0`,
/// the token key `key` installed, a stub master answering ENOENT to all,
/// and one peer, a stub answering ESTALE to all (so forwards and copies
/// end at once; a URL that is no peer waits 2 s for a fresher list).
struct CsWorld {
    app: axum::Router,
    ring: KeyRing,
    key: TokenKey,
    peer: String,
    _node: Arc<Node>,
    _dir: tempfile::TempDir,
}

/// A server answering `status` with a JSON error of `kind` to everything.
async fn stub(status: u16, kind: &'static str) -> String {
    let status = axum::http::StatusCode::from_u16(status).expect("status");
    let app = axum::Router::new().fallback(move || async move { (status, axum::Json(json!({"error": kind, "message": "stub"}))) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn cs_world() -> CsWorld {
    use clap::Parser;
    let dir = tempfile::tempdir().expect("temp dir");
    let ring = KeyRing::single(ClusterKey::generate());
    let key_file = dir.path().join("cluster.key");
    ring.create_file(&key_file).expect("key file");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let (master, peer) = (stub(404, "ENOENT").await, stub(409, "ESTALE").await);
    let args = [
        "dfs-chunkserver",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--master",
        &master,
        "--cluster-key-file",
        key_file.to_str().expect("utf-8"),
        "--local-reads",
        "false",
    ];
    let config = dfs_chunkserver::config::ChunkserverConfig::parse_from(args);
    let store = dfs_chunkserver::chunk_store::ChunkStore::open(&data).expect("store");
    let trust = dfs_chunkserver::node::Trust { auth: ClusterAuth::fixed(ring.clone()), cluster_id: Some("fuzz".into()) };
    let node = Arc::new(dfs_chunkserver::node::new_node(&config, NodeId(uuid::Uuid::new_v4()), store, "http://127.0.0.1:9".into(), trust).expect("node"));
    node.registered.store(true, std::sync::atomic::Ordering::Release);
    let key = TokenKey::generate(&ring, 7, unix_ms() + 3_600_000);
    node.tokens.install(&ring, std::slice::from_ref(&key.info));
    node.peers.set(dfs_proto::wire::chunks::Peers { epoch: 1, addresses: vec![peer.clone()] });
    node.store.create(ChunkHandle(H0), ChunkVersion(V0), CS_CHUNK).expect("create");
    node.store.write(ChunkHandle(H0), ChunkVersion(V0), 0, &vec![7u8; 100_000], None).expect("write");
    CsWorld { app: dfs_chunkserver::api::router(node.clone()), ring, key, peer, _node: node, _dir: dir }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CsRoute {
    Data,
    Fsync,
    Create,
    Version,
    Replicate,
    Verify,
    Info,
    Status,
    Local,
    Files,
    Root,
    Metrics,
    Unknown,
}

const CS_ROUTES: &[CsRoute] = &[
    CsRoute::Data,
    CsRoute::Data,
    CsRoute::Data,
    CsRoute::Fsync,
    CsRoute::Create,
    CsRoute::Version,
    CsRoute::Replicate,
    CsRoute::Verify,
    CsRoute::Info,
    CsRoute::Status,
    CsRoute::Local,
    CsRoute::Files,
    CsRoute::Root,
    CsRoute::Metrics,
    CsRoute::Unknown,
];

#[derive(Clone, Debug)]
enum TokenCase {
    None,
    /// A token for `H0` at `V0` + delta, with these ops (1..=3).
    Issued {
        version_delta: i8,
        ops: u8,
    },
    Edited(TokenInput),
}

/// `x-dfs-forward`: none, the peer, empty entries, too many, or text.
#[derive(Clone, Debug)]
enum ForwardCase {
    None,
    Peer,
    Empty,
    Many,
    Text(String),
}

#[derive(Clone, Debug)]
struct CsCase {
    route: CsRoute,
    /// Another method than the route's.
    other_method: Option<&'static str>,
    handle: Part,
    query: QueryCase,
    token: TokenCase,
    checksums: Option<HeaderInput>,
    forward: ForwardCase,
    auth: AuthCase,
    body: BodyCase,
    /// A Content-Length other than the body's.
    length: Option<u64>,
    json_type: bool,
}

fn cs_case() -> BoxedStrategy<CsCase> {
    let token = prop_oneof![
        2 => Just(TokenCase::None),
        5 => (prop_oneof![6 => Just(0i8), 1 => any::<i8>()], 1u8..=3).prop_map(|(version_delta, ops)| TokenCase::Issued { version_delta, ops }),
        2 => token_input().prop_map(TokenCase::Edited),
    ];
    let auth = prop_oneof![
        4 => Just(AuthCase::None),
        4 => any::<bool>().prop_map(|unsigned_body| AuthCase::Signed { unsigned_body }),
        2 => header_input().prop_map(AuthCase::Edited),
        1 => Just(AuthCase::Stranger),
    ];
    let forward = prop_oneof![
        6 => Just(ForwardCase::None),
        2 => Just(ForwardCase::Peer),
        1 => Just(ForwardCase::Empty),
        1 => Just(ForwardCase::Many),
        1 => "[ -~]{0,40}".prop_map(ForwardCase::Text),
    ];
    let method = prop_oneof![8 => Just(None), 1 => prop::sample::select(&["GET", "PUT", "POST", "DELETE", "PATCH"][..]).prop_map(Some)];
    let checksums = prop_oneof![3 => Just(None), 1 => header_input().prop_map(Some)];
    let length = prop_oneof![6 => Just(None), 1 => prop_oneof![any::<u64>(), 0u64..200_000].prop_map(Some)];
    (prop::sample::select(CS_ROUTES), method, part(), query_case(), token, checksums, forward, auth, body_case(), length, prop::bool::weighted(0.9))
        .prop_map(|(route, other_method, handle, query, token, checksums, forward, auth, body, length, json_type)| CsCase {
            route,
            other_method,
            handle,
            query,
            token,
            checksums,
            forward,
            auth,
            body,
            length,
            json_type,
        })
        .boxed()
}

/// What a chunkserver request is made of, and whether it is malformed.
struct CsRequest {
    req: axum::http::Request<Body>,
    what: String,
    path: String,
    malformed: bool,
}

/// A chunkserver route's method, path, query keys, valid query and valid body.
type RouteShape = (&'static str, String, &'static [&'static str], Vec<(String, String)>, Value);

fn route_shape(w: &CsWorld, c: &CsCase, h: &str) -> RouteShape {
    match c.route {
        CsRoute::Data | CsRoute::Fsync => {
            let q = vec![("version".into(), V0.to_string()), ("offset".into(), "0".into())];
            let (m, p) = match c.route {
                CsRoute::Fsync => ("POST", format!("/v1/chunks/{h}/fsync")),
                _ if matches!(c.body, BodyCase::Empty) => ("GET", format!("/v1/chunks/{h}/data")),
                _ => ("PUT", format!("/v1/chunks/{h}/data")),
            };
            (m, p, &["version", "offset", "length"], q, json!({}))
        }
        CsRoute::Create => ("POST", format!("/v1/chunks/{h}/create"), &[], vec![], json!({"version": V0, "chunk_size_bytes": CS_CHUNK})),
        CsRoute::Version => ("POST", format!("/v1/chunks/{h}/version"), &[], vec![], json!({"version": V0})),
        CsRoute::Replicate => {
            ("POST", format!("/v1/chunks/{h}/replicate"), &[], vec![], json!({"source": w.peer, "version": V0, "chunk_size_bytes": CS_CHUNK}))
        }
        CsRoute::Verify => ("POST", format!("/v1/chunks/{h}/verify"), &[], vec![], json!({"version": V0})),
        CsRoute::Info => ("GET", format!("/v1/chunks/{h}"), &[], vec![], json!({})),
        CsRoute::Status => ("GET", "/v1/status".into(), &[], vec![], json!({})),
        CsRoute::Local => ("GET", "/v1/local".into(), &[], vec![], json!({})),
        CsRoute::Files => ("GET", "/files".into(), &["path"], vec![("path".into(), "/fz/file".into())], json!({})),
        CsRoute::Root => ("GET", "/".into(), &[], vec![], json!({})),
        CsRoute::Metrics => ("GET", "/metrics".into(), &[], vec![], json!({})),
        CsRoute::Unknown => ("GET", format!("/v1/chunks/{h}/nothing"), &[], vec![], json!({})),
    }
}

/// The `x-dfs-token` value of a case, if any.
fn token_header(w: &CsWorld, c: &CsCase) -> Option<String> {
    let token = |version: u64, ops: Ops| ChunkToken {
        key_id: 7,
        expires_unix_ms: unix_ms() + 600_000,
        handle: ChunkHandle(H0),
        version: ChunkVersion(version),
        ops,
        identity: "fuzz".into(),
    };
    match &c.token {
        TokenCase::None => None,
        TokenCase::Issued { version_delta, ops } => {
            let ops = [Ops::READ, Ops::WRITE, Ops::READ_WRITE][(*ops as usize - 1) % 3];
            Some(w.key.sign(&token(V0.wrapping_add_signed(*version_delta as i64), ops)))
        }
        TokenCase::Edited(input) => Some(token_text(input, &w.key.sign(&token(V0, Ops::READ_WRITE)))),
    }
}

/// The `x-dfs-forward` value of a case, and whether it names anything
/// but the peer (once): refused.
fn forward_header(w: &CsWorld, c: &CsCase) -> (Option<String>, bool) {
    let forward = match &c.forward {
        ForwardCase::None => None,
        ForwardCase::Peer => Some(w.peer.clone()),
        ForwardCase::Empty => Some(" , ,".to_string()),
        ForwardCase::Many => Some(vec![w.peer.as_str(); 20].join(",")),
        ForwardCase::Text(t) => Some(t.clone()),
    };
    let bad = matches!(c.forward, ForwardCase::Many) || forward.as_deref().is_some_and(|f| f.split(',').map(str::trim).any(|u| !u.is_empty() && u != w.peer));
    (forward, bad)
}

/// What the request's signature is, judged by verifying it (an edited one
/// may still verify: whitespace).
#[derive(Clone, Copy, PartialEq)]
enum Signed {
    No,
    Bad,
    /// Verifies, with the body's digest.
    Digest,
    /// Verifies, with the body UNSIGNED (a forwarding peer's).
    Unsigned,
}

/// The `x-dfs-auth` value of a case over the request so far, and what it is.
fn auth_header(w: &CsWorld, c: &CsCase, view: &RequestView<'_>, body: &[u8]) -> (Option<String>, Signed) {
    let digest = |unsigned| if unsigned { BodyDigest::Unsigned } else { BodyDigest::of(body) };
    let auth = match &c.auth {
        AuthCase::None => return (None, Signed::No),
        AuthCase::Signed { unsigned_body } => signature::sign_request(&w.ring, unix_ms(), view, digest(*unsigned_body)),
        AuthCase::Edited(input) => header_value(input, &signature::sign_request(&w.ring, unix_ms(), view, digest(false))),
        AuthCase::Stranger => signature::sign_request(&KeyRing::single(ClusterKey::generate()), unix_ms(), view, digest(false)),
    };
    let signed = match signature::verify_request(&w.ring, unix_ms(), Some(&auth), view) {
        Ok(v) if v.body == BodyDigest::Unsigned => Signed::Unsigned,
        Ok(_) => Signed::Digest,
        Err(_) => Signed::Bad,
    };
    (Some(auth), signed)
}

/// What decides whether a request is malformed.
struct Facts<'a> {
    /// The route takes this method (the data route GET and PUT).
    right_method: bool,
    method: &'a str,
    query: &'a str,
    body: &'a [u8],
    signed: Signed,
    /// The token allows reading, writing (1, 2) H0 at V0, and the request is for them.
    token_allows: &'a dyn Fn(u8) -> bool,
    crcs_ok: bool,
    length_ok: bool,
    forward_bad: bool,
}

/// Whether the route must refuse the request with a 4xx.
fn malformed(c: &CsCase, f: &Facts<'_>) -> bool {
    if !f.right_method {
        return true;
    }
    let handle_ok = part_is_u64(&c.handle);
    let query_ok = query_decodes::<DataQuery>(f.query);
    let (bad_auth, digest) = (f.signed == Signed::Bad, f.signed == Signed::Digest);
    let signed = matches!(f.signed, Signed::Digest | Signed::Unsigned);
    let internal = |decodes: bool| !handle_ok || !digest || !c.json_type || !decodes;
    match c.route {
        CsRoute::Data if f.method == "GET" => !handle_ok || !query_ok || bad_auth || (!signed && !(f.token_allows)(1)),
        CsRoute::Data => !handle_ok || !query_ok || bad_auth || digest || !(f.token_allows)(2) || !f.crcs_ok || !f.length_ok || f.forward_bad,
        // A sync changes no byte: any token for the chunk at its version.
        CsRoute::Fsync => !handle_ok || !query_ok || bad_auth || !((f.token_allows)(1) || (f.token_allows)(2)),
        CsRoute::Create => internal(decodes::<CreateReplica>(f.body)),
        CsRoute::Version => internal(decodes::<SetReplicaVersion>(f.body)),
        CsRoute::Replicate => internal(decodes::<ReplicateChunk>(f.body)),
        CsRoute::Verify => internal(decodes::<VerifyReplica>(f.body)),
        CsRoute::Info => !handle_ok || !digest,
        CsRoute::Files => !query_decodes::<FilesQuery>(f.query),
        CsRoute::Unknown => true,
        CsRoute::Status | CsRoute::Local | CsRoute::Root | CsRoute::Metrics => false,
    }
}

fn cs_request(w: &CsWorld, c: &CsCase) -> Option<CsRequest> {
    let h = part_text(&c.handle, H0);
    let (route_method, path, keys, valid_query, valid_body) = route_shape(w, c, &h);
    let method = c.other_method.unwrap_or(route_method);
    let right_method = method == route_method || (c.route == CsRoute::Data && matches!(method, "GET" | "PUT"));
    let query = query_text(&c.query, keys, &valid_query);
    let path_and_query = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
    let body = match (c.route, &c.body) {
        (CsRoute::Data, BodyCase::Bytes(b)) if method == "PUT" => b.clone(),
        (CsRoute::Data, other) if method == "PUT" => body_bytes(other, &json!({"data": "x"})),
        (_, other) => body_bytes(other, &valid_body),
    };
    let mut headers: Vec<(&str, String)> = vec![("content-length", c.length.unwrap_or(body.len() as u64).to_string())];
    if c.json_type {
        headers.push(("content-type", "application/json".into()));
    }
    if let Some(t) = token_header(w, c) {
        headers.push((HEADER_TOKEN, t));
    }
    let right_crcs = checksum_header(&body);
    let crcs = c.checksums.as_ref().map_or(right_crcs.clone(), |input| header_value(input, &right_crcs));
    headers.push((HEADER_CHECKSUMS, crcs.clone()));
    let (forward, forward_bad) = forward_header(w, c);
    if let Some(f) = forward {
        headers.push((HEADER_FORWARD, f));
    }
    let header_fn = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let view = RequestView { method, path_and_query: &path_and_query, header: &header_fn };
    let (auth, signed) = auth_header(w, c, &view, &body);
    if let Some(a) = auth {
        headers.push((HEADER_AUTH, a));
    }
    let mut b = axum::http::Request::builder().method(method).uri(&path_and_query);
    for (n, v) in &headers {
        b = b.header(*n, v.as_str());
    }
    let req = b.body(Body::from(body.clone())).ok()?;
    let version = query_version(&query);
    let token_allows = |op: u8| match &c.token {
        TokenCase::Issued { version_delta, ops } => *version_delta == 0 && ops & op == op && version == Some(V0) && h == H0.to_string(),
        _ => false,
    };
    let facts = Facts {
        right_method,
        method,
        query: &query,
        body: &body,
        signed,
        token_allows: &token_allows,
        crcs_ok: crcs == right_crcs,
        length_ok: c.length.is_none_or(|l| l == body.len() as u64),
        forward_bad,
    };
    let malformed = malformed(c, &facts);
    let what = format!("{method} {path_and_query} ({c:?})");
    Some(CsRequest { req, what, path, malformed })
}

/// `GET /files?path=` (the chunkserver's private query type, mirrored).
#[derive(serde::Deserialize)]
#[allow(dead_code, reason = "decoded only to see whether the query is well-formed")]
struct FilesQuery {
    path: String,
}

fn query_version(query: &str) -> Option<u64> {
    serde_urlencoded::from_str::<DataQuery>(query).ok().map(|q| q.version.0)
}

/// Every chunkserver route: no panic, no server error, JSON errors, 4xx
/// for malformed input.
#[test]
fn chunkserver_routes_refuse_malformed_input_with_json_4xx() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let w = rt.block_on(cs_world());
    let tally = Tally::default();
    fuzz("chunkserver routes", 4000, cs_case(), |c| {
        let Some(r) = cs_request(&w, &c) else { return Ok(()) };
        let app = w.app.clone();
        let (status, body) = rt
            .block_on(async move {
                let Ok(resp) = tokio::time::timeout(Duration::from_secs(20), app.oneshot(r.req)).await.map_err(|_| "no answer within 20 s".to_string())?;
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.map_err(|e| format!("reading the answer: {e}"))?;
                Ok::<_, String>((status, body))
            })
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", r.what)))?;
        tally.note(status);
        judge(&r.what, &r.path, status, &body, r.malformed, false)
    });
    tally.print("chunkserver routes");
}
