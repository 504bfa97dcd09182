//! The fuzz target of #19: every request body and header decoder, fed
//! random and mutated-valid input with proptest.
//!
//! - Decoders, in process: the `x-dfs-auth` and `x-dfs-reply-auth`
//!   parsers, the chunk token decoder and verifier, the checksum header,
//!   the key file. Nothing panics; nothing but the original verifies.
//! - The short-circuit read socket, in process: its binary request
//!   decoder and server; a descriptor passes only with the right tokens.
//! - The chunkserver's router, in process (a node on a temp dir, tokens
//!   installed, a stub master): every route, with random and mutated path
//!   parameters, query strings, tokens, checksum, forward and signature
//!   headers, Content-Lengths and bodies (random, and mutated valid JSON;
//!   signed correctly so the decoders behind the signature check are
//!   reached too).
//! - A real master over loopback: every client route (JSON bodies, query
//!   strings, path parameters), and a second master for the signed routes
//!   (heartbeats and chunkservers' bad-replica reports).
//!
//! Every answer must come (no panic, the daemon alive), none may be a
//! server error but 503 (and 507 for well-formed requests a master without
//! chunkservers cannot place), every error under `/v1/` is a JSON
//! `{"error", "message"}`, and malformed input (a body, query or parameter
//! its route cannot decode, a missing or bad token or signature) gets a 4xx.
//!
//! Seeded: the seed is printed; `DFS_FUZZ_SEED=N` replays a run, and
//! `DFS_FUZZ_CASES=N` runs N cases per target (the suite runs 2000 to 5000
//! per target, a few seconds in all; `make fuzz` runs many more).

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use dfs_chunkserver::api::Node;
use dfs_common::auth::signature::{self, RequestView, HEADER_AUTH};
use dfs_common::auth::token::HEADER_TOKEN;
use dfs_common::auth::{unix_ms, BodyDigest, ChunkToken, ClusterKey, KeyRing, Ops, TokenKey, TokenVerifier};
use dfs_common::http::internal::ClusterAuth;
use dfs_common::wire::chunks::{
    checksum_header, parse_checksum_header, BadReplica, CommitLength, CreateReplica, DataQuery, Heartbeat, LeaseRequest, LocateQuery, NodeRequest, ReplicaReport,
    ReplicateChunk, SafeModeRequest, SetReplicaVersion, VerifyReplica, HEADER_CHECKSUMS, HEADER_FORWARD,
};
use dfs_common::wire::namespace::{
    AppendRequest, CreateRequest, DeleteRequest, FsckQuery, ListQuery, LookupQuery, MkdirRequest, NodeRef, RemoveRequest, RenameRequest, SetattrRequest, SymlinkRequest,
};
use dfs_common::{ChunkHandle, ChunkVersion, NodeId};
use dfs_tests::insider::{self, closed_port_url, fake_heartbeat, master_key_file, Insider};
use dfs_tests::MasterProcess;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// Seeds and the runner.

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// The run's seed: `DFS_FUZZ_SEED`, else a fresh one; printed once.
fn fuzz_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = env_u64("DFS_FUZZ_SEED").unwrap_or_else(rand::random::<u64>);
        eprintln!("fuzz seed: {seed} (replay with DFS_FUZZ_SEED={seed})");
        seed
    })
}

/// Runs `test` on `cases` inputs of `strategy` (`DFS_FUZZ_CASES` instead,
/// when set), from the run's seed and the target's name; a failure names
/// the (shrunk) input and the seed that replays it.
fn fuzz<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: Debug,
{
    let seed = fuzz_seed();
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)).to_le_bytes());
    let cases = env_u64("DFS_FUZZ_CASES").map_or(cases, |n| n.min(u32::MAX as u64) as u32);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 400, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let started = Instant::now();
    if let Err(e) = runner.run(&strategy, test) {
        panic!("fuzz {name} failed after {:.2}s; replay with DFS_FUZZ_SEED={seed}: {e}", started.elapsed().as_secs_f64());
    }
    eprintln!("fuzz {name}: {cases} cases passed in {:.2}s (seed {seed})", started.elapsed().as_secs_f64());
}

/// Statuses answered, for the run's summary (how deep the cases got).
#[derive(Default)]
struct Tally(std::sync::Mutex<std::collections::BTreeMap<u16, u64>>);

impl Tally {
    fn note(&self, status: u16) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_default() += 1;
    }

    fn print(&self, name: &str) {
        let lost = insider::LOST_ANSWERS.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!("fuzz {name}: statuses {:?}; answers lost and asked again (whole process): {lost}", self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

fn fail(why: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(why))
}

// ---------------------------------------------------------------------------
// Inputs: text edits, weird numbers and strings, JSON values and mutations.

/// One edit of a text: delete, insert, replace a byte, or cut the rest.
#[derive(Clone, Debug)]
struct Edit {
    at: usize,
    op: u8,
    byte: u8,
}

fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((any::<usize>(), 0u8..4, any::<u8>()).prop_map(|(at, op, byte)| Edit { at, op, byte }), 1..=max)
}

fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = if bytes.is_empty() { 0 } else { e.at % (bytes.len() + 1) };
        match e.op {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, e.byte),
            2 if at < bytes.len() => bytes[at] = e.byte,
            3 => bytes.truncate(at),
            _ => bytes.insert(at, e.byte),
        }
    }
    bytes
}

/// Edits keeping the text printable ASCII (header values must be).
fn apply_text_edits(text: &str, edits: &[Edit]) -> String {
    let edits: Vec<Edit> = edits.iter().map(|e| Edit { byte: 0x20 + e.byte % 0x5f, ..e.clone() }).collect();
    String::from_utf8_lossy(&apply_edits(text.as_bytes().to_vec(), &edits)).into_owned()
}

/// Numbers as text, as they may appear in a query or a path.
fn number_text() -> BoxedStrategy<String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..10).prop_map(|n| n.to_string()),
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("1.5".to_string()),
        Just("1e400".to_string()),
        Just(String::new()),
        Just("+7".to_string()),
        Just("0x10".to_string()),
        Just("%ff".to_string()),
        Just("%00".to_string()),
        "[a-zA-Z0-9%._~+-]{0,12}",
    ]
    .boxed()
}

/// Paths and names as text.
fn path_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just("/".to_string()),
        Just("/fz".to_string()),
        Just("/fz/file".to_string()),
        Just("/fz/link".to_string()),
        Just("..".to_string()),
        Just("/fz/../..".to_string()),
        Just(String::new()),
        Just("/a\u{0}b".to_string()),
        Just(format!("/{}", "n".repeat(300))),
        Just(format!("/{}", "d/".repeat(600))),
        "/fz/\\PC{0,12}",
        "\\PC{0,24}",
    ]
    .boxed()
}

/// JSON values that stress decoders and arithmetic.
fn weird_json() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(u64::MAX)),
        Just(json!(u64::MAX - 1)),
        Just(json!(i64::MIN)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e300)),
        Just(json!(0.5)),
        Just(Value::Null),
        Just(json!(true)),
        Just(json!("")),
        Just(json!([])),
        Just(json!({})),
        Just(json!("x".repeat(70_000))),
        Just(json!("00000000-0000-0000-0000-000000000000")),
        Just(json!("/fz/file")),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,20}".prop_map(Value::from),
    ]
    .boxed()
}

/// Keys the wire types use, so random objects sometimes hit real fields.
const KEYS: &[&str] = &[
    "version", "chunk_size_bytes", "handle", "node_id", "address", "inode", "index", "length", "path", "at", "src", "dst", "source", "report", "capacity_bytes",
    "used_bytes", "chunk_count", "load", "registering", "cluster_id", "peers_epoch", "corrupt", "token", "leave", "node", "parents", "recursive", "size", "mode",
    "replication", "target", "chunks", "end", "offset", "parent", "name", "overwrite", "exclusive", "dirty", "scrub", "reporter_version",
];

fn json_key() -> BoxedStrategy<String> {
    prop_oneof![prop::sample::select(KEYS).prop_map(str::to_string), "[a-z_]{1,10}"].boxed()
}

fn random_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![weird_json(), any::<bool>().prop_map(Value::from), (0u64..100).prop_map(Value::from)];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A change to a valid JSON value (by pre-order node number), or to its text.
#[derive(Clone, Debug)]
enum Mutation {
    Set { at: usize, to: Value },
    Remove { at: usize },
    Add { at: usize, key: String, value: Value },
    /// Wrapped in this many arrays (deep nesting).
    Nest(usize),
    Text(Vec<Edit>),
}

fn mutations() -> BoxedStrategy<Vec<Mutation>> {
    let one = prop_oneof![
        4 => (any::<usize>(), weird_json()).prop_map(|(at, to)| Mutation::Set { at, to }),
        2 => (any::<usize>(), random_json()).prop_map(|(at, to)| Mutation::Set { at, to }),
        2 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
        1 => (any::<usize>(), json_key(), weird_json()).prop_map(|(at, key, value)| Mutation::Add { at, key, value }),
        1 => (1usize..300).prop_map(Mutation::Nest),
        2 => edits(4).prop_map(Mutation::Text),
    ];
    prop::collection::vec(one, 1..4).boxed()
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Calls `f` on the `at`-th node (pre-order); true once done.
fn visit_node(v: &mut Value, at: &mut usize, f: &mut dyn FnMut(&mut Value)) -> bool {
    if *at == 0 {
        f(v);
        return true;
    }
    *at -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| visit_node(c, at, f)),
        Value::Object(o) => o.values_mut().any(|c| visit_node(c, at, f)),
        _ => false,
    }
}

fn mutate(valid: &Value, muts: &[Mutation]) -> Vec<u8> {
    let mut v = valid.clone();
    let mut text_edits = Vec::new();
    for m in muts {
        let n = count_nodes(&v);
        match m {
            Mutation::Set { at, to } => {
                visit_node(&mut v, &mut (at % n), &mut |node| *node = to.clone());
            }
            Mutation::Remove { at } => {
                visit_node(&mut v, &mut (at % n), &mut |node| match node {
                    Value::Object(o) => {
                        let key = o.keys().nth(*at % o.len().max(1)).cloned();
                        if let Some(k) = key {
                            o.remove(&k);
                        }
                    }
                    Value::Array(a) if !a.is_empty() => {
                        a.remove(*at % a.len());
                    }
                    _ => {}
                });
            }
            Mutation::Add { at, key, value } => {
                visit_node(&mut v, &mut (at % n), &mut |node| {
                    if let Value::Object(o) = node {
                        o.insert(key.clone(), value.clone());
                    }
                });
            }
            Mutation::Nest(depth) => {
                for _ in 0..*depth {
                    v = Value::Array(vec![v]);
                }
            }
            Mutation::Text(e) => text_edits.extend(e.iter().cloned()),
        }
    }
    apply_edits(serde_json::to_vec(&v).expect("serialisable"), &text_edits)
}

/// A request body: empty, the route's valid JSON, that mutated, random
/// JSON, or random bytes.
#[derive(Clone, Debug)]
enum BodyCase {
    Empty,
    Valid,
    Mutated(Vec<Mutation>),
    Json(Value),
    Bytes(Vec<u8>),
}

fn body_case() -> BoxedStrategy<BodyCase> {
    prop_oneof![
        1 => Just(BodyCase::Empty),
        3 => Just(BodyCase::Valid),
        6 => mutations().prop_map(BodyCase::Mutated),
        2 => random_json().prop_map(BodyCase::Json),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(BodyCase::Bytes),
    ]
    .boxed()
}

fn body_bytes(case: &BodyCase, valid: &Value) -> Vec<u8> {
    match case {
        BodyCase::Empty => Vec::new(),
        BodyCase::Valid => serde_json::to_vec(valid).expect("serialisable"),
        BodyCase::Mutated(m) => mutate(valid, m),
        BodyCase::Json(v) => serde_json::to_vec(v).expect("serialisable"),
        BodyCase::Bytes(b) => b.clone(),
    }
}

/// A query string: known keys with odd values, or raw text.
#[derive(Clone, Debug)]
enum QueryCase {
    Pairs(Vec<(usize, String)>),
    Raw(String),
}

fn query_case() -> BoxedStrategy<QueryCase> {
    let value = prop_oneof![number_text(), path_text()];
    prop_oneof![
        4 => prop::collection::vec((any::<usize>(), value), 0..5).prop_map(QueryCase::Pairs),
        1 => "[ -~]{0,40}".prop_map(QueryCase::Raw),
    ]
    .boxed()
}

/// The query text for a route whose keys are `keys` (an index past them is
/// a key the route does not know).
fn query_text(q: &QueryCase, keys: &[&str], valid: &[(String, String)]) -> String {
    match q {
        QueryCase::Pairs(pairs) if pairs.is_empty() => serde_urlencoded::to_string(valid).unwrap_or_default(),
        QueryCase::Pairs(pairs) => {
            let named: Vec<(String, String)> = pairs.iter().map(|(k, v)| (keys.get(k % (keys.len() + 1)).map_or("x".to_string(), |k| k.to_string()), v.clone())).collect();
            serde_urlencoded::to_string(named).unwrap_or_default()
        }
        QueryCase::Raw(raw) => raw.replace([' ', '#'], "+"),
    }
}

/// A path parameter: the valid one, a number, or text.
#[derive(Clone, Debug)]
enum Part {
    Valid,
    Number(u64),
    Text(String),
}

fn part() -> BoxedStrategy<Part> {
    prop_oneof![
        4 => Just(Part::Valid),
        2 => any::<u64>().prop_map(Part::Number),
        2 => number_text().prop_map(|t| Part::Text(t.replace(['/', '?', '#', ' '], "%2F"))),
    ]
    .boxed()
}

fn part_text(p: &Part, valid: u64) -> String {
    match p {
        Part::Valid => valid.to_string(),
        Part::Number(n) => n.to_string(),
        Part::Text(t) => t.clone(),
    }
}

fn part_is_u64(p: &Part) -> bool {
    match p {
        Part::Text(t) => t.parse::<u64>().is_ok(),
        _ => true,
    }
}

fn decodes<T: DeserializeOwned>(body: &[u8]) -> bool {
    serde_json::from_slice::<T>(body).is_ok()
}

fn query_decodes<T: DeserializeOwned>(query: &str) -> bool {
    serde_urlencoded::from_str::<T>(query).is_ok()
}

/// The checks every answer passes: not a server error (503 always
/// allowed, 507 for well-formed input), a JSON error under `/v1/`, a
/// message elsewhere, and a 4xx for malformed input.
fn judge(what: &str, path: &str, status: u16, body: &[u8], malformed: bool, may_507: bool) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status >= 500 && status != 503 && !(status == 507 && may_507 && !malformed) {
        return fail(format!("{what}: server error {status} {text}"));
    }
    if malformed && !(400..500).contains(&status) {
        return fail(format!("{what}: malformed input answered {status} {text}"));
    }
    if status >= 400 {
        if path.starts_with("/v1/") {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let ok = v["error"].as_str().is_some_and(|e| !e.is_empty()) && v["message"].as_str().is_some_and(|m| !m.is_empty());
            if !ok {
                return fail(format!("{what}: error {status} without a JSON error body: {text:?}"));
            }
        } else if body.is_empty() {
            return fail(format!("{what}: error {status} with an empty body"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Decoders, in process.

fn auth_view_headers(name: &str) -> Option<String> {
    match name {
        "content-length" => Some("2".into()),
        "x-dfs-forward" => Some("http://a,http://b".into()),
        _ => None,
    }
}

#[derive(Clone, Debug)]
enum HeaderInput {
    Random(String),
    Edited(Vec<Edit>),
    /// The valid value with one field's value replaced.
    Field(usize, String),
}

fn header_input() -> BoxedStrategy<HeaderInput> {
    prop_oneof![
        1 => "[ -~]{0,120}".prop_map(HeaderInput::Random),
        3 => edits(6).prop_map(HeaderInput::Edited),
        2 => (0usize..6, prop_oneof![number_text(), "[0-9a-f]{0,70}", Just("UNSIGNED".to_string())]).prop_map(|(i, v)| HeaderInput::Field(i, v)),
    ]
    .boxed()
}

fn header_value(input: &HeaderInput, valid: &str) -> String {
    match input {
        HeaderInput::Random(s) => s.clone(),
        HeaderInput::Edited(e) => apply_text_edits(valid, e),
        HeaderInput::Field(i, value) => {
            let mut words: Vec<String> = valid.split(' ').map(str::to_string).collect();
            let i = i % words.len();
            words[i] = match words[i].split_once('=') {
                Some((name, _)) => format!("{name}={value}"),
                None => value.clone(),
            };
            words.join(" ")
        }
    }
}

/// The signature headers: nothing verifies but what was signed, and no
/// input panics the parsers.
#[test]
fn signature_headers_never_panic_and_only_the_signed_value_verifies() {
    let ring = KeyRing::single(ClusterKey::generate());
    let view = RequestView { method: "POST", path_and_query: "/v1/chunks/7/create?x=1", header: &auth_view_headers };
    let now = unix_ms();
    let valid = signature::sign_request(&ring, now, &view, BodyDigest::of(b"{}"));
    let original = signature::verify_request(&ring, now, Some(&valid), &view).expect("the valid value verifies");
    let nonce = original.nonce;
    let reply = signature::sign_reply(&ring, &nonce, 200, b"{}");
    fuzz("x-dfs-auth", 5000, header_input(), |input| {
        let value = header_value(&input, &valid);
        let _ = signature::nonce_of(&value);
        match signature::verify_request(&ring, now, Some(&value), &view) {
            Ok(v) if v != original => fail(format!("{value:?} verified as {v:?}")),
            _ => Ok(()),
        }
    });
    fuzz("x-dfs-reply-auth", 3000, header_input(), |input| {
        let value = header_value(&input, &reply);
        // Hex digits may change case: the same bytes.
        let lower = |v: &str| v.split_ascii_whitespace().map(str::to_ascii_lowercase).collect::<Vec<_>>();
        match signature::verify_reply(&ring, &nonce, 200, b"{}", Some(&value)) {
            Ok(()) if lower(&value) != lower(&reply) => fail(format!("{value:?} verified as the reply")),
            _ => Ok(()),
        }
    });
}

#[derive(Clone, Debug)]
enum TokenInput {
    Random(String),
    /// The valid token's text edited.
    Text(Vec<Edit>),
    /// Its bytes edited, then encoded again (reaching the payload decoder).
    Bytes(Vec<Edit>),
}

fn token_input() -> BoxedStrategy<TokenInput> {
    prop_oneof![
        1 => "[A-Za-z0-9_=+/-]{0,80}".prop_map(TokenInput::Random),
        1 => "[ -~]{0,40}".prop_map(TokenInput::Random),
        2 => edits(4).prop_map(TokenInput::Text),
        4 => edits(4).prop_map(TokenInput::Bytes),
    ]
    .boxed()
}

fn token_text(input: &TokenInput, valid: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    match input {
        TokenInput::Random(s) => s.clone(),
        TokenInput::Text(e) => apply_text_edits(valid, e),
        TokenInput::Bytes(e) => b64.encode(apply_edits(b64.decode(valid).expect("base64"), e)),
    }
}

/// The chunk token decoder and verifier: no panic, and only the token
/// issued verifies.
#[test]
fn chunk_tokens_never_panic_and_only_the_issued_token_verifies() {
    let ring = KeyRing::single(ClusterKey::generate());
    let key = TokenKey::generate(&ring, 7, u64::MAX);
    let verifier = TokenVerifier::default();
    verifier.install(&ring, std::slice::from_ref(&key.info));
    let token = ChunkToken { key_id: 7, expires_unix_ms: unix_ms() + 3_600_000, handle: ChunkHandle(5), version: ChunkVersion(2), ops: Ops::READ, identity: "anonymous".into() };
    let valid = key.sign(&token);
    fuzz("x-dfs-token", 5000, token_input(), |input| {
        let text = token_text(&input, &valid);
        let _ = ChunkToken::decode(&text);
        match verifier.verify(Some(&text), unix_ms(), ChunkHandle(5), ChunkVersion(2), Ops::READ) {
            Ok(t) if text != valid => fail(format!("{text:?} verified as {t:?}")),
            _ => Ok(()),
        }
    });
}

/// The checksum header: no panic, and a parse always has one CRC per
/// 64 KiB of the body.
#[test]
fn checksum_headers_never_panic_and_count_the_body() {
    let body = vec![3u8; 200_000];
    let valid = checksum_header(&body);
    let input = (prop_oneof![header_input(), "[0-9a-fA-F,x -]{0,60}".prop_map(HeaderInput::Random)], prop_oneof![Just(body.len() as u64), any::<u64>(), 0u64..300_000]);
    fuzz("x-dfs-checksums", 4000, input, |(input, len)| {
        let text = header_value(&input, &valid);
        match parse_checksum_header(&text, len) {
            Ok(crcs) if crcs.len() as u64 != len.div_ceil(64 * 1024) => fail(format!("{text:?} for {len} bytes gave {} CRCs", crcs.len())),
            _ => Ok(()),
        }
    });
}

/// The key file parser: no panic; what parses writes back the same.
#[test]
fn key_files_never_panic() {
    let valid = KeyRing::single(ClusterKey::generate()).to_file_text();
    let input = prop_oneof![2 => edits(6).prop_map(HeaderInput::Edited), 1 => "(key [ -~]{0,80}\n){0,3}".prop_map(HeaderInput::Random)];
    fuzz("cluster.key", 3000, input, |input| {
        let text = match &input {
            HeaderInput::Edited(e) => String::from_utf8_lossy(&apply_edits(valid.as_bytes().to_vec(), e)).into_owned(),
            other => header_value(other, &valid),
        };
        if let Ok(ring) = KeyRing::parse(&text, std::path::Path::new("fuzz")) {
            let again = KeyRing::parse(&ring.to_file_text(), std::path::Path::new("fuzz")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, ring);
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// The short-circuit read socket (its requests are binary), in process.

/// A request on the socket: the valid one's bytes edited, random bytes,
/// or its fields changed.
#[derive(Clone, Debug)]
enum LocalInput {
    Edited(Vec<Edit>),
    Random(Vec<u8>),
    Fields { right_process: bool, handle: Option<u64>, version: Option<u64>, token: Option<TokenInput> },
}

fn local_input() -> BoxedStrategy<LocalInput> {
    prop_oneof![
        3 => edits(4).prop_map(LocalInput::Edited),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(LocalInput::Random),
        3 => (prop::bool::weighted(0.8), prop::option::weighted(0.3, any::<u64>()), prop::option::weighted(0.3, any::<u64>()), prop::option::weighted(0.6, token_input()))
            .prop_map(|(right_process, handle, version, token)| LocalInput::Fields { right_process, handle, version, token }),
    ]
    .boxed()
}

/// The socket's request decoder and server: nothing panics, the decoder
/// reads back what it was given, and a replica's descriptor is passed only
/// for the request carrying this process's token and a read token for
/// that very replica.
#[test]
fn local_read_requests_never_panic_and_pass_nothing_without_the_token() {
    use dfs_common::local_reads::{recv_replica, LocalRequest, REQUEST_HEAD_BYTES};
    use std::io::Write;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(dfs_chunkserver::chunk_store::ChunkStore::open(dir.path()).expect("store"));
    store.create(ChunkHandle(H0), ChunkVersion(V0), CS_CHUNK).expect("create");
    store.write(ChunkHandle(H0), ChunkVersion(V0), 0, &vec![5u8; 70_000], None).expect("write");
    let ring = KeyRing::single(ClusterKey::generate());
    let key = TokenKey::generate(&ring, 3, u64::MAX);
    let tokens = Arc::new(TokenVerifier::default());
    tokens.install(&ring, std::slice::from_ref(&key.info));
    let endpoint = dfs_chunkserver::local_reads::start(dir.path(), store, tokens).expect("the socket");
    let process = u128::from_str_radix(&endpoint.token, 16).expect("hex");
    let grant = |ops| key.sign(&ChunkToken { key_id: 3, expires_unix_ms: unix_ms() + 3_600_000, handle: ChunkHandle(H0), version: ChunkVersion(V0), ops, identity: "fuzz".into() });
    let read = grant(Ops::READ);
    let valid = LocalRequest { token: process, handle: ChunkHandle(H0), version: ChunkVersion(V0), chunk_token: read.clone() };
    let tally = Tally::default();
    fuzz("local-reads socket", 3000, local_input(), |input| {
        let bytes = match &input {
            LocalInput::Edited(e) => apply_edits(valid.encode(), e),
            LocalInput::Random(b) => b.clone(),
            LocalInput::Fields { right_process, handle, version, token } => LocalRequest {
                token: if *right_process { process } else { process ^ 1 },
                handle: ChunkHandle(handle.unwrap_or(H0)),
                version: ChunkVersion(version.unwrap_or(V0)),
                chunk_token: token.as_ref().map_or(read.clone(), |t| token_text(t, &read)),
            }
            .encode(),
        };
        // The decoder: what it reads encodes to the bytes it consumed.
        let decoded = LocalRequest::read_from(&mut &bytes[..]).ok();
        if let Some(d) = &decoded {
            let used = REQUEST_HEAD_BYTES + d.chunk_token.len();
            prop_assert_eq!(&d.encode()[..], &bytes[..used]);
        }
        // The server: the whole request, then end of input.
        let stream = std::os::unix::net::UnixStream::connect(&endpoint.socket).map_err(|e| TestCaseError::fail(format!("connect: {e}")))?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = (&stream).write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let started = Instant::now();
        let answer = recv_replica(&stream);
        if started.elapsed() > Duration::from_secs(5) {
            return fail(format!("{input:?}: no answer for {:?}", started.elapsed()));
        }
        tally.note(match &answer {
            Ok(_) => 200,
            Err(dfs_common::local_reads::LocalError::Refused(_)) => 403,
            Err(dfs_common::local_reads::LocalError::WrongToken) => 409,
            Err(_) => 400,
        });
        match answer {
            Ok(_) if decoded.as_ref() != Some(&valid) => fail(format!("a descriptor passed for {decoded:?} ({input:?})")),
            _ => Ok(()),
        }
    });
    tally.print("local-reads socket (200 passed, 403 refused, 409 other process, 400 closed)");
    // Still serving: the valid request gets its descriptor.
    let stream = std::os::unix::net::UnixStream::connect(&endpoint.socket).expect("connect");
    (&stream).write_all(&valid.encode()).expect("write");
    assert!(recv_replica(&stream).is_ok(), "the socket stopped serving after the fuzz");
}

// ---------------------------------------------------------------------------
// The chunkserver's router, in process.

const H0: u64 = 42;
const V0: u64 = 5;
const CS_CHUNK: u64 = 1 << 20;

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
    let args = ["dfs-chunkserver", "--data-dir", data.to_str().expect("utf-8"), "--master", &master, "--cluster-key-file", key_file.to_str().expect("utf-8"), "--local-reads", "false"];
    let config = dfs_chunkserver::config::ChunkserverConfig::parse_from(args);
    let store = dfs_chunkserver::chunk_store::ChunkStore::open(&data).expect("store");
    let trust = dfs_chunkserver::server::Trust { auth: ClusterAuth::fixed(ring.clone()), cluster_id: Some("fuzz".into()) };
    let node = Arc::new(dfs_chunkserver::server::new_node(&config, NodeId(uuid::Uuid::new_v4()), store, "http://127.0.0.1:9".into(), trust).expect("node"));
    node.registered.store(true, std::sync::atomic::Ordering::Release);
    let key = TokenKey::generate(&ring, 7, unix_ms() + 3_600_000);
    node.tokens.install(&ring, std::slice::from_ref(&key.info));
    node.peers.set(dfs_common::wire::chunks::Peers { epoch: 1, addresses: vec![peer.clone()] });
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
    Issued { version_delta: i8, ops: u8 },
    Edited(TokenInput),
}

#[derive(Clone, Debug)]
enum AuthCase {
    None,
    /// Signed correctly (the body digested, or UNSIGNED as a forwarding peer).
    Signed { unsigned_body: bool },
    /// Signed correctly, then the value edited.
    Edited(HeaderInput),
    /// Signed with another cluster's key.
    Stranger,
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

fn cs_request(w: &CsWorld, c: &CsCase) -> Option<CsRequest> {
    let h = part_text(&c.handle, H0);
    let (method, path, keys, valid_query, valid_body): RouteShape = match c.route {
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
        CsRoute::Replicate => ("POST", format!("/v1/chunks/{h}/replicate"), &[], vec![], json!({"source": w.peer, "version": V0, "chunk_size_bytes": CS_CHUNK})),
        CsRoute::Verify => ("POST", format!("/v1/chunks/{h}/verify"), &[], vec![], json!({"version": V0})),
        CsRoute::Info => ("GET", format!("/v1/chunks/{h}"), &[], vec![], json!({})),
        CsRoute::Status => ("GET", "/v1/status".into(), &[], vec![], json!({})),
        CsRoute::Local => ("GET", "/v1/local".into(), &[], vec![], json!({})),
        CsRoute::Files => ("GET", "/files".into(), &["path"], vec![("path".into(), "/fz/file".into())], json!({})),
        CsRoute::Root => ("GET", "/".into(), &[], vec![], json!({})),
        CsRoute::Metrics => ("GET", "/metrics".into(), &[], vec![], json!({})),
        CsRoute::Unknown => ("GET", format!("/v1/chunks/{h}/nothing"), &[], vec![], json!({})),
    };
    let method = c.other_method.unwrap_or(method);
    let query = query_text(&c.query, keys, &valid_query);
    let path_and_query = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
    let body = match c.route {
        CsRoute::Data if method == "PUT" => match &c.body {
            BodyCase::Bytes(b) => b.clone(),
            other => body_bytes(other, &json!({"data": "x"})),
        },
        _ => body_bytes(&c.body, &valid_body),
    };
    let mut b = axum::http::Request::builder().method(method).uri(&path_and_query);
    let mut headers: Vec<(&str, String)> = vec![("content-length", c.length.unwrap_or(body.len() as u64).to_string())];
    if c.json_type {
        headers.push(("content-type", "application/json".into()));
    }
    let version = query_version(&query);
    let token_ok = |op: u8| match &c.token {
        TokenCase::Issued { version_delta, ops } => *version_delta == 0 && ops & op == op && version == Some(V0) && h == H0.to_string(),
        _ => false,
    };
    match &c.token {
        TokenCase::None => {}
        TokenCase::Issued { version_delta, ops } => {
            let ops = [Ops::READ, Ops::WRITE, Ops::READ_WRITE][(*ops as usize - 1) % 3];
            let t = ChunkToken {
                key_id: 7,
                expires_unix_ms: unix_ms() + 600_000,
                handle: ChunkHandle(H0),
                version: ChunkVersion(V0.wrapping_add_signed(*version_delta as i64)),
                ops,
                identity: "fuzz".into(),
            };
            headers.push((HEADER_TOKEN, w.key.sign(&t)));
        }
        TokenCase::Edited(input) => {
            let t = ChunkToken { key_id: 7, expires_unix_ms: unix_ms() + 600_000, handle: ChunkHandle(H0), version: ChunkVersion(V0), ops: Ops::READ_WRITE, identity: "fuzz".into() };
            headers.push((HEADER_TOKEN, token_text(input, &w.key.sign(&t))));
        }
    }
    let right_crcs = checksum_header(&body);
    let crcs = match &c.checksums {
        None => right_crcs.clone(),
        Some(input) => header_value(input, &right_crcs),
    };
    headers.push((HEADER_CHECKSUMS, crcs.clone()));
    let forward = match &c.forward {
        ForwardCase::None => None,
        ForwardCase::Peer => Some(w.peer.clone()),
        ForwardCase::Empty => Some(" , ,".to_string()),
        ForwardCase::Many => Some(vec![w.peer.as_str(); 20].join(",")),
        ForwardCase::Text(t) => Some(t.clone()),
    };
    if let Some(f) = &forward {
        headers.push((HEADER_FORWARD, f.clone()));
    }
    // A chain naming anything but the peer (once) is refused.
    let forward_bad = matches!(c.forward, ForwardCase::Many) || forward.as_deref().is_some_and(|f| f.split(',').map(str::trim).any(|u| !u.is_empty() && u != w.peer));
    let header_fn = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let view = RequestView { method, path_and_query: &path_and_query, header: &header_fn };
    let digest = |unsigned| if unsigned { BodyDigest::Unsigned } else { BodyDigest::of(&body) };
    let auth = match &c.auth {
        AuthCase::None => None,
        AuthCase::Signed { unsigned_body } => Some(signature::sign_request(&w.ring, unix_ms(), &view, digest(*unsigned_body))),
        AuthCase::Edited(input) => Some(header_value(input, &signature::sign_request(&w.ring, unix_ms(), &view, digest(false)))),
        AuthCase::Stranger => Some(signature::sign_request(&KeyRing::single(ClusterKey::generate()), unix_ms(), &view, digest(false))),
    };
    // A correct signature; an edited one may still be (whitespace): judged by verifying.
    let auth_state = auth.as_deref().map(|a| {
        let ok = signature::verify_request(&w.ring, unix_ms(), Some(a), &view);
        match ok {
            Ok(v) => Some(v.body != BodyDigest::Unsigned),
            Err(_) => None,
        }
    });
    if let Some(a) = &auth {
        headers.push((HEADER_AUTH, a.clone()));
    }
    for (n, v) in &headers {
        b = b.header(*n, v.as_str());
    }
    let req = b.body(Body::from(body.clone())).ok()?;
    // Malformed: what the route must refuse with a 4xx.
    let right_method = c.other_method.is_none();
    let bad_auth = matches!(auth_state, Some(None));
    let signed_digest = auth_state.flatten() == Some(true);
    let signed_any = matches!(auth_state, Some(Some(_)));
    let handle_ok = part_is_u64(&c.handle);
    let length_ok = c.length.is_none_or(|l| l == body.len() as u64);
    let query_ok = query_decodes::<DataQuery>(&query);
    let malformed = right_method
        && match c.route {
            CsRoute::Data if method == "GET" => !handle_ok || !query_ok || bad_auth || (!signed_any && !token_ok(1)),
            CsRoute::Data => {
                !handle_ok || !query_ok || bad_auth || signed_digest || !token_ok(2) || crcs != right_crcs || !length_ok || forward_bad
            }
            CsRoute::Fsync => !handle_ok || !query_ok || bad_auth || !token_ok(2),
            CsRoute::Create => !handle_ok || !signed_digest || !c.json_type || !decodes::<CreateReplica>(&body),
            CsRoute::Version => !handle_ok || !signed_digest || !c.json_type || !decodes::<SetReplicaVersion>(&body),
            CsRoute::Replicate => !handle_ok || !signed_digest || !c.json_type || !decodes::<ReplicateChunk>(&body),
            CsRoute::Verify => !handle_ok || !signed_digest || !c.json_type || !decodes::<VerifyReplica>(&body),
            CsRoute::Info => !handle_ok || !signed_digest,
            CsRoute::Files => !query_decodes::<FilesQuery>(&query),
            CsRoute::Unknown => true,
            CsRoute::Status | CsRoute::Local | CsRoute::Root | CsRoute::Metrics => false,
        };
    let what = format!("{method} {path_and_query} ({c:?})");
    Some(CsRequest { req, what, path, malformed })
}

/// `GET /files?path=` (the chunkserver's private query type, mirrored).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
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
        let (status, body) = rt.block_on(async move {
            let Ok(resp) = tokio::time::timeout(Duration::from_secs(20), app.oneshot(r.req)).await.map_err(|_| "no answer within 20 s".to_string())?;
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.map_err(|e| format!("reading the answer: {e}"))?;
            Ok::<_, String>((status, body))
        }).map_err(|e| TestCaseError::fail(format!("{}: {e}", r.what)))?;
        tally.note(status);
        judge(&r.what, &r.path, status, &body, r.malformed, false)
    });
    tally.print("chunkserver routes");
}

// ---------------------------------------------------------------------------
// A real master over loopback.

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
    MRoute { method: "POST", path: "/v1/mkdir", takes: Takes::Json(|v| json!({"path": at(v), "parents": v.flag, "mode": v.n % 0o10000}), decodes::<MkdirRequest>) },
    MRoute {
        method: "POST",
        path: "/v1/create",
        takes: Takes::Json(|v| json!({"path": at(v), "replication": v.n % 4, "chunk_size_bytes": 1 << 20, "overwrite": v.flag, "exclusive": v.m % 2 == 0}), decodes::<CreateRequest>),
    },
    MRoute { method: "POST", path: "/v1/symlink", takes: Takes::Json(|v| json!({"path": at(v), "target": v.other}), decodes::<SymlinkRequest>) },
    MRoute {
        method: "POST",
        path: "/v1/rename",
        takes: Takes::Json(|v| json!({"src": {"path": at(v)}, "dst": {"parent": v.file_inode, "name": v.other}, "noreplace": v.flag}), decodes::<RenameRequest>),
    },
    MRoute { method: "POST", path: "/v1/unlink", takes: Takes::Json(|v| json!({"path": at(v)}), decodes::<RemoveRequest>) },
    MRoute { method: "POST", path: "/v1/rmdir", takes: Takes::Json(|v| json!({"path": at(v)}), decodes::<RemoveRequest>) },
    MRoute { method: "POST", path: "/v1/delete", takes: Takes::Json(|v| json!({"path": at(v), "recursive": v.flag}), decodes::<DeleteRequest>) },
    MRoute {
        method: "POST",
        path: "/v1/setattr",
        takes: Takes::Json(|v| json!({"inode": v.file_inode, "mode": v.n % 0o7777, "size": v.m % (1 << 24), "mtime_ns": v.n as i64}), decodes::<SetattrRequest>),
    },
    MRoute { method: "POST", path: "/v1/chunks/lease", takes: Takes::Json(|v| json!({"inode": v.file_inode, "index": v.n % 4}), decodes::<LeaseRequest>) },
    MRoute {
        method: "POST",
        path: "/v1/chunks/bad",
        takes: Takes::Json(|v| json!({"handle": v.n, "node_id": "00000000-0000-0000-0000-000000000001", "corrupt": v.flag, "token": v.other}), decodes::<BadReplica>),
    },
    MRoute { method: "POST", path: "/v1/commit_length", takes: Takes::Json(|v| json!({"inode": v.file_inode, "length": v.n % (1 << 20), "chunks": []}), decodes::<CommitLength>) },
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
        async move { http.post(url).json(&body).send().await.expect("send").json::<Value>().await.expect("json") }
    };
    post("/v1/mkdir", json!({"path": "/fz"})).await;
    let made = post("/v1/create", json!({"path": "/fz/file"})).await;
    post("/v1/symlink", json!({"path": "/fz/link", "target": "file"})).await;
    let file_inode = made["inode"].as_u64().unwrap_or_else(|| panic!("creating /fz/file: {made}"));
    MasterWorld { master, http, file_inode, _dir: dir }
}

/// Sends a request; (status, body) or why there was no answer.
async fn exchange(http: &reqwest::Client, method: &str, url: &str, body: Vec<u8>, json_type: bool) -> Result<(u16, Vec<u8>, reqwest::header::HeaderMap), String> {
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
        let (status, answer, _) = rt.block_on(exchange(&w.http, &method, parsed.as_str(), body, json_type)).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
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
    (prop::bool::weighted(0.25), vals(), report, body_case(), auth).prop_map(|(bad_report, vals, report, body, auth)| SignedCase { bad_report, vals, report, body, auth }).boxed()
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
        let (name, _, n, m, flag) = c.vals.clone();
        let (path, valid, decodes): SignedRoute = match c.bad_report {
            true => ("/v1/chunks/bad", json!({"handle": n % 64, "node_id": uuid::Uuid::new_v4(), "corrupt": flag, "reporter_version": m % 8}), decodes::<BadReplica>),
            false => {
                let mut hb: Heartbeat = fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &sink);
                hb.report = Some(c.report.iter().map(|&(h, v, l)| ReplicaReport { handle: ChunkHandle(h), version: ChunkVersion(v), length: l, dirty: false }).collect());
                (hb.capacity_bytes, hb.used_bytes, hb.registering) = (n, m, flag);
                hb.address = if name.len() % 3 == 0 { format!("http://{name}") } else { sink.clone() };
                ("/v1/heartbeat", serde_json::to_value(&hb).expect("json"), decodes::<Heartbeat>)
            }
        };
        let body = body_bytes(&c.body, &valid);
        let url = format!("{}{path}", master.url);
        let builder = insider.http.post(&url).header("content-type", "application/json").body(body.clone());
        let (req, signed_ok) = match &c.auth {
            AuthCase::None => (builder.build().map_err(|e| TestCaseError::fail(e.to_string()))?, false),
            AuthCase::Signed { unsigned_body: false } => (insider.signed(builder), true),
            AuthCase::Signed { unsigned_body: true } => {
                let mut r = insider.signed(insider.http.post(&url).header("content-type", "application/json").body(reqwest::Body::wrap_stream(futures::stream::iter([Ok::<_, std::io::Error>(body.clone())]))));
                *r.body_mut() = Some(body.clone().into());
                (r, false)
            }
            AuthCase::Edited(input) => {
                let mut r = insider.signed(builder);
                let value = r.headers().get(HEADER_AUTH).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let edited = header_value(input, &value);
                let same = edited.split_ascii_whitespace().eq(value.split_ascii_whitespace());
                match reqwest::header::HeaderValue::from_str(&edited) {
                    Ok(v) => {
                        r.headers_mut().insert(HEADER_AUTH, v);
                    }
                    Err(_) => return Ok(()),
                }
                (r, same)
            }
            AuthCase::Stranger => (stranger.signed(builder), false),
        };
        let request_auth = req.headers().get(HEADER_AUTH).and_then(|v| v.to_str().ok()).map(str::to_string);
        let what = format!("POST {path} {:?} ({c:?})", String::from_utf8_lossy(&body[..body.len().min(200)]));
        let resp = rt.block_on(insider::execute(&insider.http, req)).map_err(|e| TestCaseError::fail(format!("{what}: no answer: {e:?}")))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let answer = rt.block_on(resp.bytes()).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        tally.note(status);
        // Unsigned bad-replica reports are a client's: they need a token (none here).
        let malformed = !decodes(&body) || !signed_ok;
        judge(&what, path, status, &answer, malformed, false)?;
        if signed_ok && (200..300).contains(&status) && !c.bad_report {
            if let Err(e) = insider.auth.verify_answer(request_auth.as_deref().unwrap_or(""), status, &headers, &answer) {
                return fail(format!("{what}: the answer to a signed heartbeat is not signed: {e}"));
            }
        }
        Ok(())
    });
    tally.print("master signed routes");
    let alive = rt.block_on(async { insider.http.get(format!("{}/v1/fs", master.url)).send().await });
    assert!(alive.is_ok_and(|r| r.status().is_success()), "the master after the fuzz");
}
