//! `Client`: the I/O core that the async data path (`data.rs`) and the
//! blocking fast path (`blocking.rs`) share: the tuning, the connections
//! (async and blocking, to the master and to chunkservers), the caches of
//! leases and chunk locations, the short-circuit reads, and the check of a
//! replica's answer. Both drivers build on it; neither imports the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_proto::auth::unix_ms;
use dfs_proto::wire::chunks::WriteLease;
use dfs_proto::InodeId;

use crate::auth::Login;
use crate::error::ClientError;
use crate::local::LocalReads;
use crate::locations::LocationCache;
use crate::master::MasterClient;
use crate::tokens::{still_usable, usable_until};

/// Tuning of the client.
#[derive(Clone, Copy, Debug)]
pub struct DataConfig {
    /// Largest piece of one write request (bytes).
    pub write_piece_bytes: u64,
    /// Largest piece of one read request (bytes).
    pub read_piece_bytes: u64,
    /// Pieces in flight at once, for writes and for reads.
    pub pieces_in_flight: usize,
    /// Pieces a sequential reader fetches ahead of the reads.
    pub readahead_pieces: usize,
    /// How long a write keeps retrying through the master: long enough for
    /// a lost primary's lease to run out and a new one to be granted. A read
    /// that no replica serves asks the master again for as long.
    pub retry_for: Duration,
    /// How long an unreachable master (restarting) is waited for.
    pub master_wait: Duration,
    /// How long a chunk location is trusted without asking the master.
    pub location_ttl: Duration,
    /// Longest wait for one request (to the master or a chunkserver), so
    /// that a stalled server fails the call instead of hanging it.
    pub request_timeout: Duration,
    /// Read replicas on this host through descriptors their chunkservers
    /// pass (`local.rs`) rather than over HTTP.
    pub local_reads: bool,
    /// `FileWriter::close` makes the chunks it wrote durable on every
    /// replica before it commits the length (as NFS's COMMIT at close and
    /// HDFS's hsync); off, a close returns once every replica has the
    /// bytes in its OS (a power cut may then lose them).
    pub sync_on_close: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            write_piece_bytes: 8 << 20,
            read_piece_bytes: 8 << 20,
            pieces_in_flight: 8,
            readahead_pieces: 8,
            retry_for: Duration::from_secs(90),
            master_wait: Duration::from_secs(30),
            location_ttl: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            local_reads: true,
            sync_on_close: true,
        }
    }
}

/// Most chunk locations the cache holds.
const LOCATION_CACHE_ENTRIES: usize = 1 << 16;
/// Leases kept past their time before only fresh ones are kept.
const LEASE_CACHE_ENTRIES: usize = 1 << 14;

/// A lease as cached by the client, with when it was obtained.
#[derive(Clone)]
struct CachedLease {
    lease: WriteLease,
    obtained: Instant,
    /// Until when its token is sent (`tokens.rs`).
    token_until: Option<Instant>,
}

impl CachedLease {
    fn new(lease: WriteLease) -> CachedLease {
        let obtained = Instant::now();
        let token_until = usable_until(&lease.token, obtained, unix_ms());
        CachedLease { lease, obtained, token_until }
    }

    /// Leases are renewed at half their remaining time, well before
    /// expiry, or when their token is about to expire.
    fn fresh(&self) -> bool {
        self.obtained.elapsed() < Duration::from_millis(self.lease.lease_remaining_ms / 2) && self.token_usable()
    }

    fn token_usable(&self) -> bool {
        still_usable(self.token_until, Instant::now())
    }
}

/// A handle on a dfs cluster; cheap to clone, shared by open files.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    master: MasterClient,
    /// Credentials and session, shared with every master client made from this one.
    login: Arc<Login>,
    http: reqwest::Client,
    /// For reads served on the caller's thread (`blocking.rs`).
    blocking: ureq::Agent,
    /// Replicas on this host read through descriptors (`local.rs`).
    local: LocalReads,
    config: DataConfig,
    leases: Mutex<HashMap<(InodeId, u64), CachedLease>>,
    locations: LocationCache,
}

fn http_client(config: &DataConfig) -> reqwest::Client {
    crate::tls::reqwest_builder()
        .pool_max_idle_per_host(32)
        // Below the servers' keep-alive limit (their header read timeout,
        // 10 s by default): a connection is never reused as a server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
        .timeout(config.request_timeout)
        .build()
        .unwrap_or_default()
}

/// A replica's answer for `len` bytes at `offset` of a chunk whose first
/// `committed` bytes were written: what it sent, followed by zeros up to
/// `len` for the part past `committed` (a hole: never written). `None` when
/// it sent fewer of the committed bytes than asked: it lost writes (a power
/// cut), and another replica must answer; those bytes never read as zeros.
pub(crate) fn complete(data: Bytes, committed: u64, offset: u64, len: u64) -> Option<Bytes> {
    let required = committed.saturating_sub(offset).min(len);
    if (data.len() as u64) < required {
        return None;
    }
    Some(pad_to(data, len))
}

/// `data` followed by zeros up to `len` bytes.
fn pad_to(data: Bytes, len: u64) -> Bytes {
    if data.len() as u64 >= len {
        return data;
    }
    let mut padded = Vec::with_capacity(len as usize);
    padded.extend_from_slice(&data);
    padded.resize(len as usize, 0);
    Bytes::from(padded)
}

impl Client {
    /// A client with the default credentials (`auth::load_credentials`);
    /// a default file that cannot be used is logged and left out.
    pub fn new(master_url: &str) -> Self {
        Self::with_config(master_url, DataConfig::default())
    }

    pub fn with_config(master_url: &str, config: DataConfig) -> Self {
        let credentials = crate::auth::load_credentials(None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the default credentials cannot be used; calling without");
            None
        });
        Self::with_login(master_url, config, Login::new(credentials))
    }

    /// A client that logs in with `login`'s credentials.
    pub fn with_login(master_url: &str, config: DataConfig, login: Arc<Login>) -> Self {
        Self::assemble(master_url, config, login, http_client(&config), blocking_agent())
    }

    /// A client that logs in with `login` over this one's connections
    /// (its HTTP pools), with caches of its own: for a server acting for
    /// many callers (a chunkserver's WebHDFS), without a new pool, and new
    /// connections, per request.
    pub fn with_login_sharing(&self, login: Arc<Login>) -> Self {
        Self::assemble(&self.master().url(), self.inner.config, login, self.inner.http.clone(), self.inner.blocking.clone())
    }

    /// A client over these connections, with empty caches.
    fn assemble(master_url: &str, config: DataConfig, login: Arc<Login>, http: reqwest::Client, blocking: ureq::Agent) -> Self {
        let inner = Inner {
            master: MasterClient::new(master_url, http.clone(), config.master_wait, login.clone()),
            login,
            http,
            blocking,
            local: Default::default(),
            config,
            leases: Mutex::new(HashMap::new()),
            locations: LocationCache::new(config.location_ttl, LOCATION_CACHE_ENTRIES),
        };
        Client { inner: Arc::new(inner) }
    }

    /// The master's API, call by call.
    pub fn master(&self) -> &MasterClient {
        &self.inner.master
    }

    /// A master client whose calls block the calling thread, over
    /// connections of its own (see `MasterClient::blocking`). Never to be
    /// used on a runtime thread.
    pub fn blocking_master(&self) -> MasterClient {
        MasterClient::blocking(&self.master().url(), self.inner.config.request_timeout, self.inner.config.master_wait, self.inner.login.clone())
    }

    pub fn config(&self) -> &DataConfig {
        &self.inner.config
    }

    pub(crate) fn locations(&self) -> &LocationCache {
        &self.inner.locations
    }

    pub(crate) fn blocking_http(&self) -> &ureq::Agent {
        &self.inner.blocking
    }

    pub(crate) fn local_reads(&self) -> &LocalReads {
        &self.inner.local
    }

    /// Which of a chunk's replicas serves a read at `offset` in it: pieces
    /// of one chunk are spread over its replicas.
    pub(crate) fn replica_for(&self, offset: u64, replicas: usize) -> usize {
        (offset / self.config().read_piece_bytes.max(1)) as usize % replicas.max(1)
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<(InodeId, u64), CachedLease>> {
        self.inner.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached_lease(&self, key: (InodeId, u64)) -> Option<WriteLease> {
        self.leases().get(&key).filter(|c| c.fresh()).map(|c| c.lease.clone())
    }

    /// A lease on chunk `index` of the file: the one cached while fresh,
    /// else a new one from the master.
    pub(crate) async fn lease(&self, inode: InodeId, index: u64) -> Result<WriteLease, ClientError> {
        if let Some(l) = self.cached_lease((inode, index)) {
            return Ok(l);
        }
        let lease = self.master().lease(inode, index).await?;
        let mut leases = self.leases();
        // Leases are dropped as new ones come in once their tokens may no
        // longer be sent (until then a sync at close still uses them), or
        // once expired when many are held: the map stays small.
        leases.retain(|_, c| c.token_usable());
        if leases.len() >= LEASE_CACHE_ENTRIES {
            leases.retain(|_, c| c.fresh());
        }
        leases.insert((inode, index), CachedLease::new(lease.clone()));
        Ok(lease)
    }

    /// Forgets what is cached about a file (leases and chunk locations), so
    /// the next call sees the master's current state: done at open.
    pub fn forget_file(&self, inode: InodeId) {
        self.leases().retain(|(i, _), _| *i != inode);
        self.inner.locations.forget_file(inode);
    }

    /// The lease cached for chunk `index` of the file, fresh or not, while
    /// its token may be sent: the chain this client's last write of the
    /// chunk went through (`sync.rs` syncs it without asking the master).
    pub(crate) fn last_lease(&self, inode: InodeId, index: u64) -> Option<WriteLease> {
        self.leases().get(&(inode, index)).filter(|c| c.token_usable()).map(|c| c.lease.clone())
    }

    /// Drops the lease cached for chunk `index` of the file.
    pub(crate) fn forget_lease(&self, inode: InodeId, index: u64) {
        self.leases().remove(&(inode, index));
    }

    /// The async connections to chunkservers (the master's are its own).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }
}

/// How long the blocking fast path waits for a replica before it gives the
/// read to the async path: it blocks a FUSE thread, so it must be short.
const FAST_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// Idle connections kept per chunkserver (one per thread that reads).
const IDLE_PER_HOST: usize = 8;

/// The blocking connections of reads served on the caller's thread
/// (`blocking.rs`) and of short-circuit reads' socket discovery (`local.rs`).
fn blocking_agent() -> ureq::Agent {
    crate::tls::ureq_builder().timeout(FAST_READ_TIMEOUT).max_idle_connections_per_host(IDLE_PER_HOST).build()
}
