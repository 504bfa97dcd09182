use std::collections::HashSet;

use super::*;
use crate::wire::chunks::DataQuery;
use crate::ChunkVersion;

fn all() -> impl Iterator<Item = &'static Declared> {
    master::ALL.iter().chain(chunkserver::ALL).chain(raft::ALL)
}

#[test]
fn every_route_is_absolute_and_names_its_parameter_once() {
    for e in all() {
        assert!(e.route.starts_with('/'), "{e}");
        let segments = e.route.matches('{').count();
        match e.param {
            None => assert_eq!(segments, 0, "{e}: a route segment without a path parameter"),
            Some(name) => {
                assert_eq!(segments, 1, "{e}: one parameter, one segment");
                assert!(e.route.contains(&format!("/{{{name}}}")), "{e}: the segment is not {{{name}}}");
            }
        }
    }
}

#[test]
fn no_two_endpoints_of_one_server_share_method_and_route() {
    // The Raft endpoints are served by the master, beside its own.
    let masters: Vec<Declared> = master::ALL.iter().chain(raft::ALL).copied().collect();
    for api in [&masters[..], chunkserver::ALL] {
        let mut seen = HashSet::new();
        for e in api {
            assert!(seen.insert((e.method, e.route)), "{e} is declared twice");
        }
    }
}

#[test]
fn urls_fill_the_parameter_and_encode_the_query() {
    let q = DataQuery { version: ChunkVersion(3), offset: 65536, length: Some(10) };
    let u = url::<chunkserver::ReadData>("http://cs:1/", &ChunkHandle(42), &q).unwrap();
    assert_eq!(u, "http://cs:1/v1/chunks/42/data?version=3&offset=65536&length=10");
    let q = DataQuery { version: ChunkVersion(3), offset: 0, length: None };
    assert_eq!(path_and_query::<chunkserver::Fsync>(&ChunkHandle(7), &q).unwrap(), "/v1/chunks/7/fsync?version=3&offset=0");
    assert_eq!(url::<master::Fs>("http://m:2", &(), &()).unwrap(), "http://m:2/v1/fs");
    assert_eq!(path::<master::StatInode>(&InodeId(9)), "/v1/inodes/9");
    assert_eq!(url_no_query::<chunkserver::CreateReplica>("http://cs:1", &ChunkHandle(5)), "http://cs:1/v1/chunks/5/create");
}

#[test]
fn query_strings_escape_what_they_carry() {
    let q = crate::wire::namespace::NodeRef { path: Some("/a b/&c=d".into()), inode: None };
    let u = url::<master::Stat>("http://m", &(), &q).unwrap();
    assert_eq!(u, "http://m/v1/stat?path=/a%20b/%26c%3Dd");
    // Every byte decodes back, whatever it is.
    let text: String = (1u8..=127).map(char::from).chain("ü+%2F*~".chars()).collect();
    let q = crate::wire::namespace::NodeRef { path: Some(text.clone()), inode: None };
    let pq = path_and_query::<master::Stat>(&(), &q).unwrap();
    let back: crate::wire::namespace::NodeRef = serde_urlencoded::from_str(pq.split_once('?').unwrap().1).unwrap();
    assert_eq!(back.path.as_deref(), Some(text.as_str()), "{pq}");
}

#[test]
fn gets_are_the_only_idempotent_methods() {
    assert!(Method::Get.idempotent());
    assert!(!Method::Post.idempotent() && !Method::Put.idempotent());
    assert_eq!(<master::Heartbeat as Endpoint>::ACCESS, Access::Internal);
    assert!(chunkserver::ALL.iter().filter(|e| e.access == Access::Internal).all(|e| e.method == Method::Post || e.route == "/v1/chunks/{handle}"));
}
