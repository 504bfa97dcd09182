//! The short-circuit read socket (its requests are binary), in process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::auth::{unix_ms, ChunkToken, ClusterKey, KeyRing, Ops, TokenKey, TokenVerifier};
use dfs_proto::{ChunkHandle, ChunkVersion};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::inputs::*;
use crate::{fail, fuzz, Tally, CS_CHUNK, H0, V0};

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
    use dfs_proto::local_reads::{recv_replica, LocalRequest, REQUEST_HEAD_BYTES};
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
    let grant = |ops| {
        key.sign(&ChunkToken {
            key_id: 3,
            expires_unix_ms: unix_ms() + 3_600_000,
            handle: ChunkHandle(H0),
            version: ChunkVersion(V0),
            ops,
            identity: "fuzz".into(),
        })
    };
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
            Err(dfs_proto::local_reads::LocalError::Refused(_)) => 403,
            Err(dfs_proto::local_reads::LocalError::WrongToken) => 409,
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
