//! Short-circuit reads (protocol in `dfs_proto::local_reads`): when a
//! replica lives on a chunkserver of this host, the client asks it once for
//! a read-only descriptor of the replica's file and the block CRCs of that
//! moment, then serves reads with `pread` (on the caller's thread for
//! `read_now`, on the blocking pool for the async path), without an HTTP
//! request, a chunkserver thread or two copies through a socket in between.
//!
//! Every block read is checked against the snapshot's CRCs. A block written
//! since (or being written) fails the check, and so does a read past the
//! snapshot's length: the replica is forgotten and the read returns `None`,
//! and goes the usual way, which asks the chunkserver for its current
//! bytes. The next read takes a fresh snapshot. Replicas are keyed by the
//! version the location cache lists, so a location refreshed at open (or
//! after an error) never reads through a descriptor taken for another
//! version.
//!
//! A descriptor is passed for the chunk token of the location held, and is
//! read through only as long as that token would be sent (`tokens.rs`):
//! then the next read asks again with the token of the location held then.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_proto::auth::unix_ms;
use dfs_proto::local_reads::{recv_replica, LocalEndpoint, LocalError, LocalRequest, ReplicaSnapshot};
use dfs_proto::wire::chunks::{ChunkLocation, BLOCK_BYTES};
use dfs_proto::{ChunkHandle, ChunkVersion};

use crate::tokens::{still_usable, usable_until};

/// How long a chunkserver found not to be on this host (or not serving
/// short-circuit reads) is read over HTTP before it is asked again.
const RECHECK_AFTER: Duration = Duration::from_secs(30);
/// Most replica descriptors kept open (each holds a descriptor and up to
/// 4 KiB of CRCs per 64 MiB of chunk); all are dropped when it is reached.
const MAX_REPLICAS: usize = 256;
/// Longest wait on the socket: the chunkserver answers from memory.
const SOCKET_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
enum Endpoint {
    Local {
        socket: String,
        token: u128,
    },
    /// Not on this host, or not serving short-circuit reads, as of then.
    Remote(Instant),
}

/// One replica's descriptor and what it held when passed.
struct LocalReplica {
    file: File,
    snapshot: ReplicaSnapshot,
    /// Until when the chunk token it was passed for may be sent.
    token_until: Option<Instant>,
}

type ReplicaKey = (ChunkHandle, ChunkVersion, String);

#[derive(Default)]
pub(crate) struct LocalReads {
    endpoints: Mutex<HashMap<String, Endpoint>>,
    replicas: Mutex<HashMap<ReplicaKey, Arc<LocalReplica>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalReads {
    /// `n` bytes at `at` in the chunk at `loc`, read from a replica on this
    /// host (`preferred` first, as the other paths would pick it), every
    /// block checked; `None` when no replica here serves them as they are.
    pub fn read(&self, http: &ureq::Agent, loc: &ChunkLocation, preferred: usize, at: u64, n: u64) -> Option<Bytes> {
        let others = (0..loc.replicas.len()).filter(|&i| i != preferred);
        for i in std::iter::once(preferred).chain(others) {
            let address = &loc.replicas.get(i)?.address;
            let Some((socket, token)) = self.endpoint(http, address) else { continue };
            let key = (loc.handle, loc.version, address.clone());
            let Some(replica) = self.replica(&key, &socket, token, &loc.token) else { continue };
            let read = replica.read(at, n);
            if read.is_none() {
                lock(&self.replicas).remove(&key);
            }
            return read;
        }
        None
    }

    /// The socket and token of the chunkserver at `address` if it is on
    /// this host, asking it over HTTP when not known.
    fn endpoint(&self, http: &ureq::Agent, address: &str) -> Option<(String, u128)> {
        match lock(&self.endpoints).get(address) {
            Some(Endpoint::Local { socket, token }) => return Some((socket.clone(), *token)),
            Some(Endpoint::Remote(asked)) if asked.elapsed() < RECHECK_AFTER => return None,
            _ => {}
        }
        let found = discover(http, address);
        let entry = match &found {
            Some((socket, token)) => Endpoint::Local { socket: socket.clone(), token: *token },
            None => Endpoint::Remote(Instant::now()),
        };
        lock(&self.endpoints).insert(address.to_string(), entry);
        found
    }

    /// The replica's descriptor, asked for with the location's read token
    /// (`chunk_token`) when not held already.
    fn replica(&self, key: &ReplicaKey, socket: &str, token: u128, chunk_token: &str) -> Option<Arc<LocalReplica>> {
        if let Some(r) = lock(&self.replicas).get(key).filter(|r| still_usable(r.token_until, Instant::now())) {
            return Some(Arc::clone(r));
        }
        match fetch(socket, token, chunk_token, key.0, key.1) {
            Ok(replica) => {
                let replica = Arc::new(replica);
                let mut replicas = lock(&self.replicas);
                if replicas.len() >= MAX_REPLICAS {
                    replicas.clear();
                }
                replicas.insert(key.clone(), Arc::clone(&replica));
                Some(replica)
            }
            Err(LocalError::Refused(reason)) => {
                // This replica only (moved on to another version, removed,
                // the token refused: the read over HTTP renews it).
                tracing::debug!(%reason, chunk = %key.0, "no short-circuit read of this replica");
                lock(&self.replicas).remove(key);
                None
            }
            Err(e) => {
                // The socket is gone or is another process's: read over
                // HTTP until the chunkserver is asked again.
                tracing::debug!(error = %e, address = %key.2, "short-circuit reads unavailable");
                lock(&self.endpoints).insert(key.2.clone(), Endpoint::Remote(Instant::now()));
                None
            }
        }
    }
}

fn discover(http: &ureq::Agent, address: &str) -> Option<(String, u128)> {
    let url = dfs_proto::endpoint::url_no_query::<dfs_proto::endpoint::chunkserver::Local>(address, &());
    let body = http.get(&url).call().ok()?.into_string().ok()?;
    let endpoint: LocalEndpoint = serde_json::from_str(&body).ok()?;
    let token = u128::from_str_radix(&endpoint.token, 16).ok()?;
    // A socket path that does not exist here means another host.
    std::path::Path::new(&endpoint.socket).exists().then_some((endpoint.socket, token))
}

fn fetch(socket: &str, token: u128, chunk_token: &str, handle: ChunkHandle, version: ChunkVersion) -> Result<LocalReplica, LocalError> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    (&stream).write_all(&LocalRequest { token, handle, version, chunk_token: chunk_token.to_string() }.encode())?;
    let asked = (Instant::now(), unix_ms());
    let (fd, snapshot) = recv_replica(&stream)?;
    Ok(LocalReplica { file: File::from(fd), snapshot, token_until: usable_until(chunk_token, asked.0, asked.1) })
}

impl LocalReplica {
    /// `n` bytes at `at`, every block they touch checked against the
    /// snapshot; `None` on a mismatch, an I/O error, or a range reaching
    /// past the snapshot's length (the replica may have grown since).
    fn read(&self, at: u64, n: u64) -> Option<Bytes> {
        let (end, length) = (at.checked_add(n)?, self.snapshot.length_bytes);
        if end > length {
            return None;
        }
        if n == 0 {
            return Some(Bytes::new());
        }
        let (first, last) = (at / BLOCK_BYTES, (end - 1) / BLOCK_BYTES);
        let (r0, r1) = (first * BLOCK_BYTES, ((last + 1) * BLOCK_BYTES).min(length));
        let mut buf = vec![0u8; (r1 - r0) as usize];
        self.file.read_exact_at(&mut buf, r0).ok()?;
        for (i, block) in buf.chunks(BLOCK_BYTES as usize).enumerate() {
            if crc32fast::hash(block) != *self.snapshot.crcs.get(first as usize + i)? {
                return None;
            }
        }
        Some(Bytes::from(buf).slice((at - r0) as usize..(end - r0) as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica_of(data: &[u8]) -> LocalReplica {
        let path = std::env::temp_dir().join(format!("dfs-local-replica-{}-{}", std::process::id(), data.len()));
        std::fs::write(&path, data).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let crcs = data.chunks(BLOCK_BYTES as usize).map(crc32fast::hash).collect();
        LocalReplica { file, snapshot: ReplicaSnapshot { length_bytes: data.len() as u64, crcs }, token_until: None }
    }

    /// A chunkserver's socket that passes `file` for every request, and
    /// counts the requests and the chunk tokens they carried.
    fn serve_socket(file: File) -> (String, Arc<Mutex<Vec<String>>>) {
        use dfs_proto::local_reads::send_replica;
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("dfs-local-test-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&asked);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Ok(req) = LocalRequest::read_from(&mut stream) else { continue };
                lock(&seen).push(req.chunk_token);
                let snap = ReplicaSnapshot { length_bytes: 4, crcs: vec![crc32fast::hash(b"data")] };
                let _ = send_replica(&stream, file.as_raw_fd(), &snap);
            }
        });
        (path.display().to_string(), asked)
    }

    #[test]
    fn a_descriptor_is_read_through_only_while_its_token_may_be_sent() {
        use dfs_proto::auth::{ChunkToken, ClusterKey, KeyRing, Ops, TokenKey};
        let path = std::env::temp_dir().join(format!("dfs-local-token-{}", std::process::id()));
        std::fs::write(&path, b"data").unwrap();
        let (socket, asked) = serve_socket(File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let key = TokenKey::generate(&KeyRing::single(ClusterKey::generate()), 1, u64::MAX);
        let token = |life_ms: u64| {
            let t = ChunkToken {
                key_id: 1,
                expires_unix_ms: unix_ms() + life_ms,
                handle: ChunkHandle(5),
                version: ChunkVersion(2),
                ops: Ops::READ,
                identity: "anonymous".into(),
            };
            key.sign(&t)
        };
        let reads = LocalReads::default();
        let k: ReplicaKey = (ChunkHandle(5), ChunkVersion(2), "http://cs".into());
        // Used for three quarters of its 400 ms.
        let short = token(400);
        assert_eq!(reads.replica(&k, &socket, 0, &short).unwrap().read(0, 4).unwrap(), &b"data"[..]);
        assert!(reads.replica(&k, &socket, 0, &token(400)).is_some());
        assert_eq!(lock(&asked).as_slice(), std::slice::from_ref(&short), "the descriptor held is used");
        std::thread::sleep(Duration::from_millis(350));
        let fresh = token(60_000);
        assert_eq!(reads.replica(&k, &socket, 0, &fresh).unwrap().read(0, 4).unwrap(), &b"data"[..]);
        assert_eq!(*lock(&asked), [short, fresh], "asked again, with the token of the location held now");
        let _ = std::fs::remove_file(&socket);
    }

    #[test]
    fn reads_are_checked_against_the_snapshot() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut r = replica_of(&data);
        // Across a block boundary, and the short last block.
        assert_eq!(r.read(65_000, 2_000).unwrap(), data[65_000..67_000]);
        assert_eq!(r.read(199_000, 1_000).unwrap(), data[199_000..]);
        // Past the snapshot's length: maybe grown since, so not answered here.
        assert!(r.read(199_500, 1_000).is_none());
        // A block that no longer matches its CRC is not served.
        r.snapshot.crcs[1] ^= 1;
        assert!(r.read(70_000, 10).is_none());
        assert_eq!(r.read(10, 10).unwrap(), data[10..20]);
    }
}
