//! The chunkserver's end of short-circuit reads (protocol in
//! `dfs_proto::local_reads`): a Unix socket in the data directory where a
//! client on this host gets a read-only descriptor of a replica and the
//! CRCs to check it with, if the request's chunk token allows reading that
//! replica at that version (nothing is passed without one). Requests are
//! rare (one per replica version a client reads) and tiny, so plain threads
//! serve them: one accepts, and each connection gets a thread of its own,
//! one request, and a timeout.

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dfs_proto::auth::{unix_ms, Ops, TokenVerifier};
use dfs_proto::local_reads::{send_refusal, send_replica, send_wrong_token, LocalEndpoint, LocalRequest};

use crate::chunk_store::ChunkStore;

/// The socket's name in the data directory.
const SOCKET_NAME: &str = "local-reads.sock";
/// `sun_path` holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// A connection that sends nothing, or reads nothing, is dropped after this.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed at once (the client then
/// reads over HTTP).
const MAX_CONNECTIONS: usize = 32;

/// Starts serving short-circuit reads of `store` on a socket in `data_dir`,
/// to requests whose chunk token `tokens` accepts. `None` (with a warning)
/// where that cannot be done: clients then read over HTTP, as from any
/// remote chunkserver.
pub fn start(data_dir: &Path, store: Arc<ChunkStore>, tokens: Arc<TokenVerifier>) -> Option<LocalEndpoint> {
    match bind(data_dir) {
        Ok((listener, path)) => {
            let token = uuid::Uuid::new_v4().as_u128();
            let endpoint = LocalEndpoint { socket: path.to_string_lossy().into_owned(), token: format!("{token:032x}") };
            let spawned = std::thread::Builder::new().name("local-reads".into()).spawn(move || accept_loop(listener, token, Served { store, tokens }));
            match spawned {
                Ok(_) => Some(endpoint),
                Err(e) => {
                    tracing::warn!(error = %e, "short-circuit reads are off: cannot start their thread");
                    None
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "short-circuit reads are off");
            None
        }
    }
}

/// Removes the socket file (at a clean stop).
pub fn remove_socket(endpoint: &LocalEndpoint) {
    let _ = std::fs::remove_file(&endpoint.socket); // already gone is fine
}

fn bind(data_dir: &Path) -> std::io::Result<(UnixListener, PathBuf)> {
    let path = std::fs::canonicalize(data_dir)?.join(SOCKET_NAME);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        let msg = format!("socket path {} is longer than {MAX_SOCKET_PATH} bytes", path.display());
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
    }
    // A socket left by an earlier process of this data directory (which
    // holds its lock, so none is running) is stale.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    Ok((UnixListener::bind(&path)?, path))
}

/// What the socket serves, and the keys of the tokens it takes.
struct Served {
    store: Arc<ChunkStore>,
    tokens: Arc<TokenVerifier>,
}

fn accept_loop(listener: UnixListener, token: u128, served: Served) {
    let served = Arc::new(served);
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a short-circuit connection failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            continue; // dropping the stream closes it
        }
        let (served, done) = (Arc::clone(&served), Arc::clone(&active));
        let spawned = std::thread::Builder::new().name("local-read".into()).spawn(move || {
            if let Err(e) = serve(&stream, token, &served) {
                tracing::debug!(error = %e, "a short-circuit request failed");
            }
            done.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Answers one request.
fn serve(stream: &UnixStream, token: u128, served: &Served) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let req = LocalRequest::read_from(&mut &*stream)?;
    if req.token != token {
        return send_wrong_token(stream);
    }
    // The same check as an HTTP read's: a read token for this chunk and version.
    if let Err(e) = served.tokens.verify(Some(&req.chunk_token), unix_ms(), req.handle, req.version, Ops::READ) {
        return send_refusal(stream, &e.to_string());
    }
    match served.store.open_for_local_read(req.handle, req.version) {
        Ok((file, snapshot)) => send_replica(stream, file.as_raw_fd(), &snapshot),
        Err(e) => send_refusal(stream, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::auth::{ChunkToken, ClusterKey, KeyRing, TokenKey};
    use dfs_proto::local_reads::{recv_replica, LocalError};
    use dfs_proto::{ChunkHandle, ChunkVersion};
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn request(endpoint: &LocalEndpoint, token: u128, chunk_token: &str, handle: u64, version: u64) -> Result<(std::fs::File, u64, Vec<u32>), LocalError> {
        let stream = UnixStream::connect(&endpoint.socket)?;
        let req = LocalRequest { token, handle: ChunkHandle(handle), version: ChunkVersion(version), chunk_token: chunk_token.into() };
        (&stream).write_all(&req.encode())?;
        let (fd, snap) = recv_replica(&stream)?;
        Ok((std::fs::File::from(fd), snap.length_bytes, snap.crcs))
    }

    /// A token key installed in a verifier, and a grant function.
    fn keys() -> (Arc<TokenVerifier>, impl Fn(u64, u64, Ops, u64) -> String) {
        let ring = KeyRing::single(ClusterKey::generate());
        let key = TokenKey::generate(&ring, 1, u64::MAX);
        let tokens = Arc::new(TokenVerifier::default());
        tokens.install(&ring, std::slice::from_ref(&key.info));
        let grant = move |h: u64, v: u64, ops: Ops, expires_unix_ms: u64| {
            key.sign(&ChunkToken { key_id: 1, expires_unix_ms, handle: ChunkHandle(h), version: ChunkVersion(v), ops, identity: "t".into() })
        };
        (tokens, grant)
    }

    #[test]
    fn a_replica_is_passed_with_its_crcs_and_refused_at_a_wrong_version_or_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ChunkStore::open(dir.path()).unwrap());
        let (h, v) = (ChunkHandle(7), ChunkVersion(3));
        store.create(h, v, 1 << 20).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        store.write(h, v, 0, &data, None).unwrap();
        let (tokens, grant) = keys();
        let endpoint = start(dir.path(), Arc::clone(&store), tokens).expect("socket");
        let token = u128::from_str_radix(&endpoint.token, 16).unwrap();
        let read = grant(7, 3, Ops::READ, u64::MAX);

        let (file, length, crcs) = request(&endpoint, token, &read, 7, 3).unwrap();
        assert_eq!(length, data.len() as u64);
        assert_eq!(crcs[0], crc32fast::hash(&data[..65536]));
        assert_eq!(crcs[1], crc32fast::hash(&data[65536..]));
        let mut back = vec![0u8; 1000];
        file.read_exact_at(&mut back, 70_000).unwrap();
        assert_eq!(back, data[70_000..71_000]);
        // The descriptor cannot write.
        assert!(file.write_at(b"x", 0).is_err());

        assert!(matches!(request(&endpoint, token, &grant(7, 2, Ops::READ, u64::MAX), 7, 2), Err(LocalError::Refused(m)) if m.contains("version")));
        assert!(matches!(request(&endpoint, token, &grant(8, 3, Ops::READ, u64::MAX), 8, 3), Err(LocalError::Refused(_))));
        assert!(matches!(request(&endpoint, token ^ 1, &read, 7, 3), Err(LocalError::WrongToken)));
        remove_socket(&endpoint);
        assert!(!Path::new(&endpoint.socket).exists());
    }

    #[test]
    fn nothing_is_passed_without_a_read_token_for_that_replica() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ChunkStore::open(dir.path()).unwrap());
        store.create(ChunkHandle(7), ChunkVersion(3), 1 << 20).unwrap();
        store.create(ChunkHandle(8), ChunkVersion(3), 1 << 20).unwrap();
        let (tokens, grant) = keys();
        let endpoint = start(dir.path(), store, tokens).expect("socket");
        let token = u128::from_str_radix(&endpoint.token, 16).unwrap();
        let refused = |chunk_token: &str| match request(&endpoint, token, chunk_token, 7, 3) {
            Err(LocalError::Refused(m)) => m,
            other => panic!("{chunk_token:?} was not refused: {:?}", other.map(|r| r.1)),
        };
        assert!(refused("").contains("malformed"));
        assert!(refused(&grant(8, 3, Ops::READ, u64::MAX)).contains("chunk 8"), "another chunk's token");
        assert!(refused(&grant(7, 3, Ops::READ, 1)).contains("expired"));
        assert!(refused(&grant(7, 3, Ops::WRITE, u64::MAX)).contains("operation"), "a write-only token");
        let forged = TokenKey::generate(&KeyRing::single(ClusterKey::generate()), 1, u64::MAX);
        let forged = forged.sign(&ChunkToken {
            key_id: 1,
            expires_unix_ms: u64::MAX,
            handle: ChunkHandle(7),
            version: ChunkVersion(3),
            ops: Ops::READ,
            identity: "x".into(),
        });
        assert!(refused(&forged).contains("signature"));
        request(&endpoint, token, &grant(7, 3, Ops::READ_WRITE, u64::MAX), 7, 3).expect("a read-write token reads");
    }
}
