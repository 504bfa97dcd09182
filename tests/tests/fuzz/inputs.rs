//! Inputs: text edits, odd numbers and strings, JSON values and their
//! mutations, query strings, path parameters, signature and token headers.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// One edit of a text: delete, insert, replace a byte, or cut the rest.
#[derive(Clone, Debug)]
pub struct Edit {
    pub at: usize,
    pub op: u8,
    pub byte: u8,
}

pub fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((any::<usize>(), 0u8..4, any::<u8>()).prop_map(|(at, op, byte)| Edit { at, op, byte }), 1..=max)
}

pub fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
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
pub fn apply_text_edits(text: &str, edits: &[Edit]) -> String {
    let edits: Vec<Edit> = edits.iter().map(|e| Edit { byte: 0x20 + e.byte % 0x5f, ..e.clone() }).collect();
    String::from_utf8_lossy(&apply_edits(text.as_bytes().to_vec(), &edits)).into_owned()
}

/// Numbers as text, as they may appear in a query or a path.
pub fn number_text() -> BoxedStrategy<String> {
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
pub fn path_text() -> BoxedStrategy<String> {
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
pub fn weird_json() -> BoxedStrategy<Value> {
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
pub const KEYS: &[&str] = &[
    "version",
    "chunk_size_bytes",
    "handle",
    "node_id",
    "address",
    "inode",
    "index",
    "length",
    "path",
    "at",
    "src",
    "dst",
    "source",
    "report",
    "capacity_bytes",
    "used_bytes",
    "chunk_count",
    "load",
    "registering",
    "cluster_id",
    "peers_epoch",
    "corrupt",
    "token",
    "leave",
    "node",
    "parents",
    "recursive",
    "size",
    "mode",
    "replication",
    "target",
    "chunks",
    "end",
    "offset",
    "parent",
    "name",
    "overwrite",
    "exclusive",
    "dirty",
    "scrub",
    "reporter_version",
];

pub fn json_key() -> BoxedStrategy<String> {
    prop_oneof![prop::sample::select(KEYS).prop_map(str::to_string), "[a-z_]{1,10}"].boxed()
}

pub fn random_json() -> BoxedStrategy<Value> {
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
pub enum Mutation {
    Set {
        at: usize,
        to: Value,
    },
    Remove {
        at: usize,
    },
    Add {
        at: usize,
        key: String,
        value: Value,
    },
    /// Wrapped in this many arrays (deep nesting).
    Nest(usize),
    Text(Vec<Edit>),
}

pub fn mutations() -> BoxedStrategy<Vec<Mutation>> {
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

pub fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Calls `f` on the `at`-th node (pre-order); true once done.
pub fn visit_node(v: &mut Value, at: &mut usize, f: &mut dyn FnMut(&mut Value)) -> bool {
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

pub fn mutate(valid: &Value, muts: &[Mutation]) -> Vec<u8> {
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
pub enum BodyCase {
    Empty,
    Valid,
    Mutated(Vec<Mutation>),
    Json(Value),
    Bytes(Vec<u8>),
}

pub fn body_case() -> BoxedStrategy<BodyCase> {
    prop_oneof![
        1 => Just(BodyCase::Empty),
        3 => Just(BodyCase::Valid),
        6 => mutations().prop_map(BodyCase::Mutated),
        2 => random_json().prop_map(BodyCase::Json),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(BodyCase::Bytes),
    ]
    .boxed()
}

pub fn body_bytes(case: &BodyCase, valid: &Value) -> Vec<u8> {
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
pub enum QueryCase {
    Pairs(Vec<(usize, String)>),
    Raw(String),
}

pub fn query_case() -> BoxedStrategy<QueryCase> {
    let value = prop_oneof![number_text(), path_text()];
    prop_oneof![
        4 => prop::collection::vec((any::<usize>(), value), 0..5).prop_map(QueryCase::Pairs),
        1 => "[ -~]{0,40}".prop_map(QueryCase::Raw),
    ]
    .boxed()
}

/// The query text for a route whose keys are `keys` (an index past them is
/// a key the route does not know).
pub fn query_text(q: &QueryCase, keys: &[&str], valid: &[(String, String)]) -> String {
    match q {
        QueryCase::Pairs(pairs) if pairs.is_empty() => serde_urlencoded::to_string(valid).unwrap_or_default(),
        QueryCase::Pairs(pairs) => {
            let named: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (keys.get(k % (keys.len() + 1)).map_or("x".to_string(), |k| k.to_string()), v.clone())).collect();
            serde_urlencoded::to_string(named).unwrap_or_default()
        }
        QueryCase::Raw(raw) => raw.replace([' ', '#'], "+"),
    }
}

/// A path parameter: the valid one, a number, or text.
#[derive(Clone, Debug)]
pub enum Part {
    Valid,
    Number(u64),
    Text(String),
}

pub fn part() -> BoxedStrategy<Part> {
    prop_oneof![
        4 => Just(Part::Valid),
        2 => any::<u64>().prop_map(Part::Number),
        2 => number_text().prop_map(|t| Part::Text(t.replace(['/', '?', '#', ' '], "%2F"))),
    ]
    .boxed()
}

pub fn part_text(p: &Part, valid: u64) -> String {
    match p {
        Part::Valid => valid.to_string(),
        Part::Number(n) => n.to_string(),
        Part::Text(t) => t.clone(),
    }
}

pub fn part_is_u64(p: &Part) -> bool {
    match p {
        Part::Text(t) => t.parse::<u64>().is_ok(),
        _ => true,
    }
}

pub fn decodes<T: DeserializeOwned>(body: &[u8]) -> bool {
    serde_json::from_slice::<T>(body).is_ok()
}

pub fn query_decodes<T: DeserializeOwned>(query: &str) -> bool {
    serde_urlencoded::from_str::<T>(query).is_ok()
}

#[derive(Clone, Debug)]
pub enum HeaderInput {
    Random(String),
    Edited(Vec<Edit>),
    /// The valid value with one field's value replaced.
    Field(usize, String),
}

pub fn header_input() -> BoxedStrategy<HeaderInput> {
    prop_oneof![
        1 => "[ -~]{0,120}".prop_map(HeaderInput::Random),
        3 => edits(6).prop_map(HeaderInput::Edited),
        2 => (0usize..6, prop_oneof![number_text(), "[0-9a-f]{0,70}", Just("UNSIGNED".to_string())]).prop_map(|(i, v)| HeaderInput::Field(i, v)),
    ]
    .boxed()
}

pub fn header_value(input: &HeaderInput, valid: &str) -> String {
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

#[derive(Clone, Debug)]
pub enum TokenInput {
    Random(String),
    /// The valid token's text edited.
    Text(Vec<Edit>),
    /// Its bytes edited, then encoded again (reaching the payload decoder).
    Bytes(Vec<Edit>),
}

pub fn token_input() -> BoxedStrategy<TokenInput> {
    prop_oneof![
        1 => "[A-Za-z0-9_=+/-]{0,80}".prop_map(TokenInput::Random),
        1 => "[ -~]{0,40}".prop_map(TokenInput::Random),
        2 => edits(4).prop_map(TokenInput::Text),
        4 => edits(4).prop_map(TokenInput::Bytes),
    ]
    .boxed()
}

pub fn token_text(input: &TokenInput, valid: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    match input {
        TokenInput::Random(s) => s.clone(),
        TokenInput::Text(e) => apply_text_edits(valid, e),
        TokenInput::Bytes(e) => b64.encode(apply_edits(b64.decode(valid).expect("base64"), e)),
    }
}

#[derive(Clone, Debug)]
pub enum AuthCase {
    None,
    /// Signed correctly (the body digested, or UNSIGNED as a forwarding peer).
    Signed {
        unsigned_body: bool,
    },
    /// Signed correctly, then the value edited.
    Edited(HeaderInput),
    /// Signed with another cluster's key.
    Stranger,
}
