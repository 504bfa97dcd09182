//! Real masters over loopback: the client routes, and the signed routes.

use std::time::Duration;

use dfs_proto::auth::signature::HEADER_AUTH;
use dfs_proto::wire::chunks::{BadReplica, CommitLength, Heartbeat, LeaseRequest, LocateQuery, NodeRequest, ReplicaReport, SafeModeRequest};
use dfs_proto::wire::namespace::{
    AppendRequest, CreateRequest, DeleteRequest, FsckQuery, ListQuery, LookupQuery, MkdirRequest, NodeRef, RemoveRequest, RenameRequest, SetattrRequest,
    SymlinkRequest,
};
use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};
use dfs_tests::insider::{self, closed_port_url, fake_heartbeat, master_key_file, Insider};
use dfs_tests::MasterProcess;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use crate::inputs::*;
use crate::{fail, fuzz, judge, Tally};

/// A master route: method, path (`{}` for the path parameter), and what it takes.
#[derive(Clone, Copy, Debug)]
struct MRoute {
    method: &'static str,
    path: &'static str,
    takes: Takes,
}

#[derive(Clone, Copy, Debug)]
enum Takes {
    Nothing,
    Json(fn(&Vals) -> Value, fn(&[u8]) -> bool),
    Query(&'static [&'static str], Option<fn(&str) -> bool>),
    Inode,
}

/// Values a valid body is made of.
#[derive(Clone, Debug)]
struct Vals {
    name: String,
    other: String,
    n: u64,
    m: u64,
    flag: bool,
    file_inode: u64,
}

fn vals() -> impl Strategy<Value = (String, String, u64, u64, bool)> {
    ("[a-z0-9._-]{1,12}", "[a-z0-9._-]{1,12}", any::<u64>(), any::<u64>(), any::<bool>())
}

fn at(v: &Vals) -> String {
    format!("/fz/{}", v.name)
}

const MASTER_ROUTES: &[MRoute] = &[
    MRoute {
        method: "POST",
        path: "/v1/mkdir",
        takes: Takes::Json(|v| json!({"path": at(v), "parents": v.flag, "mode": v.n % 0o10000}), decodes::<MkdirRequest>),
    },
    MRoute {
        method: "POST",
        path: "/v1/create",
        takes: Takes::Json(
            |v| json!({"path": at(v), "replication": v.n % 4, "chunk_size_bytes": 1 << 20, "overwrite": v.flag, "exclusive": v.m % 2 == 0}),
            decodes::<CreateRequest>,
        ),
    },
    MRoute { method: "POST", path: "/v1/symlink", takes: Takes::Json(|v| json!({"path": at(v), "target": v.other}), decodes::<SymlinkRequest>) },
    MRoute {
        method: "POST",
        path: "/v1/rename",
        takes: Takes::Json(
            |v| json!({"src": {"path": at(v)}, "dst": {"parent": v.file_inode, "name": v.other}, "noreplace": v.flag}),
            decodes::<RenameRequest>,
        ),
    },
    MRoute { method: "POST", path: "/v1/unlink", takes: Takes::Json(|v| json!({"path": at(v)}), decodes::<RemoveRequest>) },
    MRoute { method: "POST", path: "/v1/rmdir", takes: Takes::Json(|v| json!({"path": at(v)}), decodes::<RemoveRequest>) },
    MRoute { method: "POST", path: "/v1/delete", takes: Takes::Json(|v| json!({"path": at(v), "recursive": v.flag}), decodes::<DeleteRequest>) },
    MRoute {
        method: "POST",
        path: "/v1/setattr",
        takes: Takes::Json(
            |v| json!({"inode": v.file_inode, "mode": v.n % 0o7777, "size": v.m % (1 << 24), "mtime_ns": v.n as i64}),
            decodes::<SetattrRequest>,
        ),
    },
    MRoute { method: "POST", path: "/v1/chunks/lease", takes: Takes::Json(|v| json!({"inode": v.file_inode, "index": v.n % 4}), decodes::<LeaseRequest>) },
    MRoute {
        method: "POST",
        path: "/v1/chunks/bad",
        takes: Takes::Json(
            |v| json!({"handle": v.n, "node_id": "00000000-0000-0000-0000-000000000001", "corrupt": v.flag, "token": v.other}),
            decodes::<BadReplica>,
        ),
    },
    MRoute {
        method: "POST",
        path: "/v1/commit_length",
        takes: Takes::Json(|v| json!({"inode": v.file_inode, "length": v.n % (1 << 20), "chunks": []}), decodes::<CommitLength>),
    },
    MRoute { method: "POST", path: "/v1/append", takes: Takes::Json(|v| json!({"inode": v.file_inode, "length": v.n % 1000}), decodes::<AppendRequest>) },
    MRoute { method: "POST", path: "/v1/admin/safemode", takes: Takes::Json(|_| json!({"leave": true}), decodes::<SafeModeRequest>) },
    MRoute { method: "POST", path: "/v1/admin/decommission", takes: Takes::Json(|v| json!({"node": v.name}), decodes::<NodeRequest>) },
    MRoute { method: "POST", path: "/v1/admin/recommission", takes: Takes::Json(|v| json!({"node": v.name}), decodes::<NodeRequest>) },
    MRoute { method: "GET", path: "/v1/stat", takes: Takes::Query(&["path", "inode"], Some(query_decodes::<NodeRef>)) },
    MRoute { method: "GET", path: "/v1/readlink", takes: Takes::Query(&["path", "inode"], Some(query_decodes::<NodeRef>)) },
    MRoute { method: "GET", path: "/v1/lookup", takes: Takes::Query(&["parent", "name"], Some(query_decodes::<LookupQuery>)) },
    MRoute { method: "GET", path: "/v1/list", takes: Takes::Query(&["path", "inode", "start_after", "limit"], Some(query_decodes::<ListQuery>)) },
    MRoute { method: "GET", path: "/v1/chunks", takes: Takes::Query(&["inode", "first", "count"], Some(query_decodes::<LocateQuery>)) },
    MRoute { method: "GET", path: "/v1/admin/fsck", takes: Takes::Query(&["path", "start_after", "limit"], Some(query_decodes::<FsckQuery>)) },
    MRoute { method: "GET", path: "/v1/dashboard/browse", takes: Takes::Query(&["path", "start_after"], None) },
    MRoute { method: "GET", path: "/v1/dashboard/file", takes: Takes::Query(&["path", "first"], None) },
    MRoute { method: "GET", path: "/v1/dashboard/events", takes: Takes::Query(&["after", "limit"], None) },
    MRoute { method: "GET", path: "/browse", takes: Takes::Query(&["path", "start_after"], None) },
    MRoute { method: "GET", path: "/file", takes: Takes::Query(&["path", "first"], None) },
    MRoute { method: "GET", path: "/download", takes: Takes::Query(&["path"], None) },
    MRoute { method: "GET", path: "/events", takes: Takes::Query(&["after", "limit"], None) },
    MRoute { method: "GET", path: "/v1/inodes/{}", takes: Takes::Inode },
    MRoute { method: "GET", path: "/v1/fs", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/chunkservers", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/cluster", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/admin/check", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/admin/replication", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/dashboard/overview", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/dashboard/chunkservers", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/dashboard/work", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/dashboard/history", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/chunkservers", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/work", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/metrics", takes: Takes::Nothing },
    MRoute { method: "GET", path: "/v1/nothing/here", takes: Takes::Nothing },
];

#[derive(Clone, Debug)]
struct MCase {
    route: usize,
    other_method: Option<&'static str>,
    vals: (String, String, u64, u64, bool),
    query: QueryCase,
    inode: Part,
    body: BodyCase,
    json_type: bool,
}

fn m_case() -> BoxedStrategy<MCase> {
    let method = prop_oneof![12 => Just(None), 1 => prop::sample::select(&["GET", "POST", "PUT", "DELETE"][..]).prop_map(Some)];
    (0..MASTER_ROUTES.len(), method, vals(), query_case(), part(), body_case(), prop::bool::weighted(0.9))
        .prop_map(|(route, other_method, vals, query, inode, body, json_type)| MCase { route, other_method, vals, query, inode, body, json_type })
        .boxed()
}

/// A master route request: (method, path, query, body, content type JSON, malformed).
fn m_request(c: &MCase, file_inode: u64) -> (String, String, String, Vec<u8>, bool, bool) {
    let r = MASTER_ROUTES[c.route];
    let (name, other, n, m, flag) = c.vals.clone();
    let v = Vals { name, other, n, m, flag, file_inode };
    let method = c.other_method.unwrap_or(r.method).to_string();
    let right_method = c.other_method.is_none_or(|m| m == r.method);
    let mut path = r.path.to_string();
    let (mut query, mut body) = (String::new(), Vec::new());
    let malformed;
    match r.takes {
        Takes::Nothing => malformed = path.starts_with("/v1/nothing"),
        Takes::Json(valid, decodes) => {
            body = body_bytes(&c.body, &valid(&v));
            malformed = !c.json_type || !decodes(&body);
        }
        Takes::Query(keys, decodes) => {
            query = query_text(&c.query, keys, &[]);
            malformed = decodes.is_some_and(|d| !d(&query));
        }
        Takes::Inode => {
            path = path.replace("{}", &part_text(&c.inode, file_inode));
            malformed = !part_is_u64(&c.inode);
        }
    }
    (method, path, query, body, c.json_type, malformed || !right_method)
}

struct MasterWorld {
    master: MasterProcess,
    http: reqwest::Client,
    file_inode: u64,
    _dir: tempfile::TempDir,
}

async fn master_world() -> MasterWorld {
    let dir = tempfile::tempdir().expect("temp dir");
    let master = MasterProcess::start(&dir.path().join("m"), &["--safe-mode-extension-ms", "0"]).expect("master");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("http");
    let post = |path: &str, body: Value| {
        let (http, url) = (http.clone(), format!("{}{path}", master.url));
        async move { insider::send(http.post(url).json(&body)).await.expect("send").json::<Value>().await.expect("json") }
    };
    post("/v1/mkdir", json!({"path": "/fz"})).await;
    let made = post("/v1/create", json!({"path": "/fz/file"})).await;
    post("/v1/symlink", json!({"path": "/fz/link", "target": "file"})).await;
    let file_inode = made["inode"].as_u64().unwrap_or_else(|| panic!("creating /fz/file: {made}"));
    MasterWorld { master, http, file_inode, _dir: dir }
}

/// Sends a request; (status, body) or why there was no answer.
async fn exchange(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Vec<u8>,
    json_type: bool,
) -> Result<(u16, Vec<u8>, reqwest::header::HeaderMap), String> {
    let mut b = http.request(method.parse().map_err(|e| format!("{e}"))?, url);
    if json_type {
        b = b.header("content-type", "application/json");
    }
    let resp = insider::send(b.body(body)).await.map_err(|e| format!("no answer: {e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Ok((status, resp.bytes().await.map_err(|e| format!("reading the answer: {e}"))?.to_vec(), headers))
}

/// Every client route of a master: no panic, no server error but 503 (or
/// 507 for well-formed requests: no chunkserver to place on), JSON errors,
/// 4xx for malformed input. The master answers afterwards.
#[test]
fn master_client_routes_refuse_malformed_input_with_json_4xx() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let w = rt.block_on(master_world());
    let tally = Tally::default();
    fuzz("master client routes", 3000, m_case(), |c| {
        let (method, path, query, body, json_type, malformed) = m_request(&c, w.file_inode);
        let url = if query.is_empty() { format!("{}{path}", w.master.url) } else { format!("{}{path}?{query}", w.master.url) };
        let Ok(parsed) = reqwest::Url::parse(&url) else { return Ok(()) };
        let what = format!("{method} {} ({c:?})", &parsed.as_str()[w.master.url.len()..]);
        let (status, answer, _) =
            rt.block_on(exchange(&w.http, &method, parsed.as_str(), body, json_type)).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        tally.note(status);
        judge(&what, &path, status, &answer, malformed, true)
    });
    tally.print("master client routes");
    let alive = rt.block_on(exchange(&w.http, "GET", &format!("{}/v1/fs", w.master.url), Vec::new(), false));
    assert!(matches!(alive, Ok((200, _, _))), "the master after the fuzz: {alive:?}");
}

/// A signed route's path, valid body and decoder.
type SignedRoute = (&'static str, Value, fn(&[u8]) -> bool);

#[derive(Clone, Debug)]
struct SignedCase {
    bad_report: bool,
    vals: (String, String, u64, u64, bool),
    report: Vec<(u64, u64, u64)>,
    body: BodyCase,
    auth: AuthCase,
}

fn signed_case() -> BoxedStrategy<SignedCase> {
    let auth = prop_oneof![
        1 => Just(AuthCase::None),
        6 => Just(AuthCase::Signed { unsigned_body: false }),
        1 => Just(AuthCase::Signed { unsigned_body: true }),
        1 => header_input().prop_map(AuthCase::Edited),
        1 => Just(AuthCase::Stranger),
    ];
    let report = prop::collection::vec((1u64..64, 0u64..8, 0u64..(2 << 20)), 0..6);
    (prop::bool::weighted(0.25), vals(), report, body_case(), auth)
        .prop_map(|(bad_report, vals, report, body, auth)| SignedCase { bad_report, vals, report, body, auth })
        .boxed()
}

/// The route, valid body and decoder of a signed case (`sink`: a closed
/// port for fake chunkservers' addresses).
fn signed_route(c: &SignedCase, sink: &str) -> SignedRoute {
    let (name, _, n, m, flag) = c.vals.clone();
    if c.bad_report {
        let valid = json!({"handle": n % 64, "node_id": uuid::Uuid::new_v4(), "corrupt": flag, "reporter_version": m % 8});
        return ("/v1/chunks/bad", valid, decodes::<BadReplica>);
    }
    let mut hb: Heartbeat = fake_heartbeat(NodeId(uuid::Uuid::new_v4()), sink);
    hb.report = Some(c.report.iter().map(|&(h, v, l)| ReplicaReport { handle: ChunkHandle(h), version: ChunkVersion(v), length: l, dirty: false }).collect());
    (hb.capacity_bytes, hb.used_bytes, hb.registering) = (n, m, flag);
    hb.address = if name.len() % 3 == 0 { format!("http://{name}") } else { sink.to_string() };
    ("/v1/heartbeat", serde_json::to_value(&hb).expect("json"), decodes::<Heartbeat>)
}

/// The request of a signed case, and whether its signature holds; None
/// when the edited signature is no header value at all.
fn signed_request(insider: &Insider, stranger: &Insider, url: &str, body: &[u8], auth: &AuthCase) -> Option<(reqwest::Request, bool)> {
    let post = || insider.http.post(url).header("content-type", "application/json");
    Some(match auth {
        AuthCase::None => (post().body(body.to_vec()).build().ok()?, false),
        AuthCase::Signed { unsigned_body: false } => (insider.signed(post().body(body.to_vec())), true),
        AuthCase::Signed { unsigned_body: true } => {
            // Signed as a stream (UNSIGNED), sent with the bytes.
            let stream = futures::stream::iter([Ok::<_, std::io::Error>(body.to_vec())]);
            let mut r = insider.signed(post().body(reqwest::Body::wrap_stream(stream)));
            *r.body_mut() = Some(body.to_vec().into());
            (r, false)
        }
        AuthCase::Edited(input) => {
            let mut r = insider.signed(post().body(body.to_vec()));
            let value = r.headers().get(HEADER_AUTH).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let edited = header_value(input, &value);
            let same = edited.split_ascii_whitespace().eq(value.split_ascii_whitespace());
            r.headers_mut().insert(HEADER_AUTH, reqwest::header::HeaderValue::from_str(&edited).ok()?);
            (r, same)
        }
        AuthCase::Stranger => (stranger.signed(post().body(body.to_vec())), false),
    })
}

/// The signed routes of a master (heartbeats, chunkservers' bad-replica
/// reports), signed correctly so the body decoders are reached: malformed
/// bodies and bad signatures get a 4xx, a signed answer verifies, and
/// the master never answers a server error.
#[test]
fn master_signed_routes_refuse_malformed_input_with_json_4xx() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (master, _dir, sink) = rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let master = MasterProcess::start(&dir.path().join("m"), &["--heartbeat-interval-ms", "100", "--dead-after-ms", "1000"]).expect("master");
        (master, dir, closed_port_url().await)
    });
    let insider = Insider::from_key_file(&master_key_file(&master.data_dir)).expect("key file");
    let stranger = Insider::stranger();
    let tally = Tally::default();
    fuzz("master signed routes", 2000, signed_case(), |c| {
        let (path, valid, decodes) = signed_route(&c, &sink);
        let body = body_bytes(&c.body, &valid);
        let Some((req, signed_ok)) = signed_request(&insider, &stranger, &format!("{}{path}", master.url), &body, &c.auth) else { return Ok(()) };
        let request_auth = req.headers().get(HEADER_AUTH).and_then(|v| v.to_str().ok()).map(str::to_string);
        let what = format!("POST {path} {:?} ({c:?})", String::from_utf8_lossy(&body[..body.len().min(200)]));
        let resp = rt.block_on(insider::execute(&insider.http, req)).map_err(|e| TestCaseError::fail(format!("{what}: no answer: {e:?}")))?;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let answer = rt.block_on(resp.bytes()).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        tally.note(status);
        // Unsigned bad-replica reports are a client's: they need a token (none here).
        judge(&what, path, status, &answer, !decodes(&body) || !signed_ok, false)?;
        if signed_ok && (200..300).contains(&status) && !c.bad_report {
            if let Err(e) = insider.auth.verify_answer(request_auth.as_deref().unwrap_or(""), status, &headers, &answer) {
                return fail(format!("{what}: the answer to a signed heartbeat is not signed: {e}"));
            }
        }
        Ok(())
    });
    tally.print("master signed routes");
    let alive = rt.block_on(async { insider::send(insider.http.get(format!("{}/v1/fs", master.url))).await });
    assert!(alive.is_ok_and(|r| r.status().is_success()), "the master after the fuzz");
}
