//! Token renewal in the client, against a fake master and chunkserver in
//! this process (real HTTP over loopback): the master signs real chunk
//! tokens (READ in locations, READ_WRITE in leases) with its current token
//! key; the chunkserver checks them as a real one does and knows only the
//! current key, so a key roll retires every token handed out before it.
//! The end-to-end version, with real daemons, is tests/tests/token_renewal.rs.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use dfs_client::{Client, DataConfig};
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::auth::{unix_ms, ChunkToken, ClusterKey, KeyRing, Ops, TokenError, TokenKey, TokenVerifier};
use dfs_proto::wire::chunks::{checksum_header, ChunkLocation, ChunkLocations, CommitLength, DataQuery, ReplicaAddr, WriteLease, HEADER_CHECKSUMS};
use dfs_proto::wire::namespace::{Attr, FileKind};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorBody, ErrorKind, InodeId, NodeId};

const CHUNK: u64 = 1 << 20;
const HANDLE: ChunkHandle = ChunkHandle(7);
const VERSION: ChunkVersion = ChunkVersion(3);

/// One file of one chunk, its master and its one chunkserver.
struct Fake {
    ring: KeyRing,
    /// The master's signing key; the only one the chunkserver knows.
    key: Mutex<TokenKey>,
    next_key_id: AtomicU32,
    verifier: TokenVerifier,
    /// Tokens issued from now on expire this long after.
    lifetime_ms: u64,
    /// The chunkserver refuses every token as from an unknown key.
    refuse_all: AtomicBool,
    cs_url: Mutex<String>,
    data: Mutex<Vec<u8>>,
    locates: AtomicUsize,
    leases: AtomicUsize,
    refused: AtomicUsize,
    served: AtomicUsize,
}

impl Fake {
    fn new(lifetime_ms: u64) -> Arc<Fake> {
        let ring = KeyRing::single(ClusterKey::generate());
        let key = TokenKey::generate(&ring, 1, u64::MAX);
        let verifier = TokenVerifier::default();
        verifier.install(&ring, std::slice::from_ref(&key.info));
        Arc::new(Fake {
            ring,
            key: Mutex::new(key),
            next_key_id: AtomicU32::new(2),
            verifier,
            lifetime_ms,
            refuse_all: AtomicBool::new(false),
            cs_url: Mutex::new(String::new()),
            data: Mutex::new(Vec::new()),
            locates: AtomicUsize::new(0),
            leases: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
        })
    }

    /// A new signing key, and the chunkserver forgets the old one at once:
    /// every token handed out so far is refused (EKEYEXPIRED).
    fn roll(&self) {
        let key = TokenKey::generate(&self.ring, self.next_key_id.fetch_add(1, Ordering::SeqCst), u64::MAX);
        self.verifier.install(&self.ring, std::slice::from_ref(&key.info));
        *self.key.lock().unwrap() = key;
    }

    fn token(&self, ops: Ops) -> String {
        let t = ChunkToken { key_id: 0, expires_unix_ms: unix_ms() + self.lifetime_ms, handle: HANDLE, version: VERSION, ops, identity: "anonymous".into() };
        self.key.lock().unwrap().sign(&t)
    }

    fn replica(&self) -> ReplicaAddr {
        ReplicaAddr { node_id: NodeId(Default::default()), address: self.cs_url.lock().unwrap().clone() }
    }

    /// Checks the request's token as a chunkserver does: the refusal, if any.
    fn refusal(&self, headers: &HeaderMap, op: Ops) -> Option<Response> {
        let text = headers.get(HEADER_TOKEN).and_then(|v| v.to_str().ok());
        let verified = match self.refuse_all.load(Ordering::SeqCst) {
            true => Err(TokenError::UnknownKey(0)),
            false => self.verifier.verify(text, unix_ms(), HANDLE, VERSION, op).map(|_| ()),
        };
        verified.err().map(|e| {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let kind = match e {
                TokenError::UnknownKey(_) | TokenError::Expired => ErrorKind::EKEYEXPIRED,
                TokenError::WrongChunk { .. } | TokenError::WrongOp => ErrorKind::EACCES,
                _ => ErrorKind::EKEYREJECTED,
            };
            let status = StatusCode::from_u16(kind.http_status()).unwrap();
            (status, Json(ErrorBody { error: kind, message: e.to_string() })).into_response()
        })
    }

    fn counts(&self) -> (usize, usize, usize, usize) {
        let get = |a: &AtomicUsize| a.load(Ordering::SeqCst);
        (get(&self.locates), get(&self.leases), get(&self.refused), get(&self.served))
    }
}

fn attr(size: u64) -> Attr {
    Attr {
        inode: InodeId(42),
        kind: FileKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        atime_ns: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        nlink: 1,
        replication: 1,
        chunk_size_bytes: CHUNK,
        parent: InodeId(1),
        rdev: 0,
        has_xattrs: false,
    }
}

async fn locate(State(f): State<Arc<Fake>>) -> Json<ChunkLocations> {
    f.locates.fetch_add(1, Ordering::SeqCst);
    let length = f.data.lock().unwrap().len() as u64;
    let loc = ChunkLocation { index: 0, handle: HANDLE, version: VERSION, replicas: vec![f.replica()], length, token: f.token(Ops::READ) };
    Json(ChunkLocations { chunk_size_bytes: CHUNK, chunks: vec![loc] })
}

async fn lease(State(f): State<Arc<Fake>>) -> Json<WriteLease> {
    f.leases.fetch_add(1, Ordering::SeqCst);
    let token = f.token(Ops::READ_WRITE);
    Json(WriteLease { handle: HANDLE, version: VERSION, chunk_size_bytes: CHUNK, primary: f.replica(), secondaries: vec![], lease_remaining_ms: 60_000, token })
}

async fn commit(State(f): State<Arc<Fake>>, Json(c): Json<CommitLength>) -> Json<Attr> {
    let _ = f;
    Json(attr(c.length))
}

async fn read(State(f): State<Arc<Fake>>, Path(_h): Path<u64>, Query(q): Query<DataQuery>, headers: HeaderMap) -> Response {
    if let Some(refusal) = f.refusal(&headers, Ops::READ) {
        return refusal;
    }
    f.served.fetch_add(1, Ordering::SeqCst);
    let data = f.data.lock().unwrap();
    let from = (q.offset as usize).min(data.len());
    let to = (from + q.length.unwrap_or(u64::MAX).min(data.len() as u64) as usize).min(data.len());
    let bytes = data[from..to].to_vec();
    ([(HEADER_CHECKSUMS, checksum_header(&bytes))], bytes).into_response()
}

async fn write(State(f): State<Arc<Fake>>, Path(_h): Path<u64>, Query(q): Query<DataQuery>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = f.refusal(&headers, Ops::WRITE) {
        return refusal;
    }
    f.served.fetch_add(1, Ordering::SeqCst);
    let mut data = f.data.lock().unwrap();
    let end = q.offset as usize + body.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[q.offset as usize..end].copy_from_slice(&body);
    Json(serde_json::json!({})).into_response()
}

async fn fsync(State(f): State<Arc<Fake>>, Path(_h): Path<u64>, headers: HeaderMap) -> Response {
    // Any token for the chunk syncs, as on a real chunkserver.
    if let Some(refusal) = f.refusal(&headers, Ops::READ) {
        return refusal;
    }
    f.served.fetch_add(1, Ordering::SeqCst);
    Json(serde_json::json!({})).into_response()
}

/// Starts the fake (master and chunkserver on one listener) and a client of it.
async fn start(lifetime_ms: u64) -> (Arc<Fake>, Client) {
    let fake = Fake::new(lifetime_ms);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    *fake.cs_url.lock().unwrap() = url.clone();
    let app = Router::new()
        .route("/v1/chunks", get(locate))
        .route("/v1/chunks/lease", post(lease))
        .route("/v1/commit_length", post(commit))
        .route("/v1/chunks/{h}/data", get(read).put(write))
        .route("/v1/chunks/{h}/fsync", post(fsync))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = DataConfig { local_reads: false, retry_for: Duration::from_secs(5), ..Default::default() };
    // No credentials: the user's own (`~/.config/dfs/credentials`, which
    // `make run` writes) must not make the client log in to the fake.
    (fake, Client::with_login(&url, config, dfs_client::auth::Login::new(None)))
}

fn bytes(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

#[tokio::test]
async fn a_read_whose_token_was_retired_gets_a_new_location_once() {
    let (fake, client) = start(600_000).await;
    let data = bytes(100_000, 1);
    *fake.data.lock().unwrap() = data.clone();
    let a = attr(data.len() as u64);
    assert!(client.read_at(&a, 0, 5_000).await.unwrap()[..] == data[..5_000]);
    assert_eq!(fake.counts(), (1, 0, 0, 1));
    assert!(client.read_at(&a, 5_000, 5_000).await.unwrap()[..] == data[5_000..10_000], "from the cached location");
    assert_eq!(fake.counts(), (1, 0, 0, 2));

    fake.roll();
    assert!(client.read_at(&a, 10_000, 5_000).await.unwrap()[..] == data[10_000..15_000]);
    assert_eq!(fake.counts(), (2, 0, 1, 3), "one refusal, one new location, one read served");
}

#[tokio::test]
async fn a_location_is_renewed_before_its_token_expires() {
    let (fake, client) = start(1_000).await;
    let data = bytes(10_000, 2);
    *fake.data.lock().unwrap() = data.clone();
    let a = attr(data.len() as u64);
    client.read_at(&a, 0, 100).await.unwrap();
    client.read_at(&a, 100, 100).await.unwrap();
    assert_eq!(fake.counts(), (1, 0, 0, 2));
    // Past three quarters of the token's life (still valid at the chunkserver).
    tokio::time::sleep(Duration::from_millis(850)).await;
    assert!(client.read_at(&a, 200, 100).await.unwrap()[..] == data[200..300]);
    assert_eq!(fake.counts(), (2, 0, 0, 3), "asked the master first: nothing refused");
}

#[tokio::test]
async fn renewals_are_bounded_when_every_token_is_refused() {
    let (fake, client) = start(600_000).await;
    *fake.data.lock().unwrap() = bytes(1000, 3);
    fake.refuse_all.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let err = client.read_at(&attr(1000), 0, 1000).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind, ErrorKind::EKEYEXPIRED, "{err}");
    let (locates, _, refused, served) = fake.counts();
    assert_eq!((locates, refused, served), (7, 7, 0), "the first try and six renewals");
    assert!(took >= Duration::from_millis(6_500) && took < Duration::from_secs(20), "the renewals' pauses: {took:?}");
}

#[tokio::test]
async fn a_writer_across_a_key_roll_gets_a_new_lease_and_its_close_syncs() {
    let (fake, client) = start(600_000).await;
    let (first, second) = (bytes(300_000, 4), bytes(200_000, 5));
    let mut w = client.writer(attr(0), 0);
    w.write(&first).await.unwrap();
    w.flush().await.unwrap();
    assert_eq!(fake.counts(), (0, 1, 0, 1));

    fake.roll();
    w.write(&second).await.unwrap();
    w.flush().await.unwrap();
    assert_eq!(fake.counts(), (0, 2, 1, 2), "the cached lease's token refused once, a new lease");

    fake.roll();
    let closed = w.close().await.unwrap();
    // The sync at close: refused with the lease's token, which is dropped;
    // the master lists the chunk, and its location's token syncs it.
    assert_eq!(fake.counts(), (1, 2, 2, 3));
    assert_eq!(closed.size, 500_000);
    let want: Vec<u8> = first.iter().chain(&second).copied().collect();
    assert!(*fake.data.lock().unwrap() == want);
}

#[tokio::test]
async fn an_fsync_takes_the_token_of_the_lease_held_else_the_locations() {
    let (fake, client) = start(600_000).await;
    let data = bytes(1000, 6);
    let a = attr(data.len() as u64);
    client.write_at(&attr(0), 0, Bytes::from(data)).await.unwrap();
    assert_eq!(fake.counts(), (0, 1, 0, 1));
    // The master lists the chunk at the version of the lease this client
    // holds: its token syncs, no new lease.
    client.fsync(&a).await.unwrap();
    assert_eq!(fake.counts(), (1, 1, 0, 2));
    // Another client holds no lease: the location's read token syncs, and
    // no lease is asked for (a lease would move the chunk to a new version).
    let other = Client::with_login(&client.master().url(), *client.config(), dfs_client::auth::Login::new(None));
    other.fsync(&a).await.unwrap();
    assert_eq!(fake.counts(), (2, 1, 0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_read_on_the_callers_thread_drops_the_location() {
    let (fake, client) = start(600_000).await;
    let data = bytes(10_000, 7);
    *fake.data.lock().unwrap() = data.clone();
    let a = attr(data.len() as u64);
    client.read_at(&a, 0, 10).await.unwrap();
    let (c, a2) = (client.clone(), a.clone());
    let got = tokio::task::spawn_blocking(move || c.read_now(&a2, 100, 100)).await.unwrap();
    assert!(got.unwrap()[..] == data[100..200], "the cached location serves on this thread");
    fake.roll();
    let (c, a2) = (client.clone(), a.clone());
    assert!(tokio::task::spawn_blocking(move || c.read_now(&a2, 200, 100)).await.unwrap().is_none(), "refused: the async way goes");
    assert_eq!(fake.counts(), (1, 0, 1, 2));
    assert!(client.read_at(&a, 200, 100).await.unwrap()[..] == data[200..300]);
    assert_eq!(fake.counts(), (2, 0, 1, 3), "no second refusal: the location was dropped");
}
