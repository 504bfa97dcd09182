//! Helpers of the fault-injection suite (`tests/tests/fault_tolerance.rs`):
//! a client tuned for failing servers, the invariants every test checks
//! (versions never go down, one primary per lease), a model of what was
//! acknowledged with a seeded mixed workload that keeps it, bounded waits,
//! on-disk corruption, and the final "settle and verify" of a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_client::{Client, ClientError, CreateOptions, DataConfig};
use dfs_proto::wire::chunks::{ChunkLocations, WriteLease};
use dfs_proto::{ErrorKind, InodeId, NodeId};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::shell::dfs;

pub const MIB: u64 = 1 << 20;

/// Master flags of the fault tests (on top of the harness's fast
/// heartbeats, 1 s failure detection and 2 s leases): background passes
/// every 250 ms, a short garbage grace and no start-up deletion delay
/// (replicas of unknown chunks go after the grace alone), a short safe
/// mode, 1 MiB chunks by default.
pub const FAULT_MASTER: &[&str] = &[
    "--replication-interval-ms",
    "250",
    "--gc-grace-ms",
    "2000",
    "--startup-delete-delay-ms",
    "0",
    "--safe-mode-extension-ms",
    "500",
    "--safe-mode-timeout-ms",
    "20000",
    "--default-chunk-size-bytes",
    "1048576",
];

/// [`FAULT_MASTER`] with `extra` (pairs of flag and value) in place of the
/// same flags' values (a flag may be given only once).
pub fn master_args(extra: &[&str]) -> Vec<String> {
    let mut pairs: Vec<(String, String)> = FAULT_MASTER.chunks(2).map(|p| (p[0].to_string(), p[1].to_string())).collect();
    for p in extra.chunks(2) {
        match pairs.iter_mut().find(|(f, _)| f == p[0]) {
            Some(existing) => existing.1 = p[1].to_string(),
            None => pairs.push((p[0].to_string(), p[1].to_string())),
        }
    }
    pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()
}

/// The seed of a fault schedule: `DFS_FAULT_SEED` when set (to replay a
/// failure), else `DFS_TEST_SEED`, else a fresh one. Always printed.
pub fn fault_seed() -> u64 {
    let from_env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seed = from_env("DFS_FAULT_SEED").or_else(|| from_env("DFS_TEST_SEED")).unwrap_or_else(rand::random::<u64>);
    eprintln!("fault seed: {seed} (replay with DFS_FAULT_SEED={seed})");
    seed
}

/// Prints `seed` again if the test fails (panics) while this is alive, so
/// the replay line is the last thing a failure shows, next to the panic.
pub struct SeedOnFailure {
    pub seed: u64,
    /// The variable that replays the schedule (`DFS_FAULT_SEED`).
    pub var: &'static str,
}

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("FAILED with seed {0}: replay with {1}={0}", self.seed, self.var);
        }
    }
}

/// A client for clusters with failing servers: a stalled (SIGSTOPped)
/// server fails a request after a few seconds instead of a minute, and
/// locations are not trusted for long.
pub fn client(master: &str) -> Client {
    let config = DataConfig {
        request_timeout: Duration::from_secs(4),
        retry_for: Duration::from_secs(60),
        master_wait: Duration::from_secs(30),
        location_ttl: Duration::from_secs(2),
        ..DataConfig::default()
    };
    crate::client_with(master, config)
}

pub fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Polls `probe` (every 100 ms) until it answers `Ok`, for at most
/// `timeout`; panics naming `what` and the last answer otherwise.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(v) => {
                eprintln!("[{:>6.1}s] {what}: reached after {:.1}s", crate::faults::uptime(), start.elapsed().as_secs_f64());
                return v;
            }
            Err(e) => e,
        };
        if start.elapsed() > timeout {
            panic!("{what}: not reached within {timeout:?}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds since the first call in this process (for log lines).
pub fn uptime() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Prints a timestamped line tagged with the test's name.
#[macro_export]
macro_rules! say {
    ($tag:expr, $($arg:tt)*) => {
        eprintln!("[{:>6.1}s] {}: {}", $crate::faults::uptime(), $tag, format!($($arg)*))
    };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A lease as recorded: primary, its address, and when it ends at the
/// earliest (estimated from when the request was sent).
type SeenLease = (NodeId, String, Instant);

/// What a test saw of versions and leases; panics on a violation.
#[derive(Default)]
pub struct Invariants {
    /// handle → highest version seen (from locations and leases).
    versions: Mutex<HashMap<u64, u64>>,
    /// (handle, version) → (primary, address, lease end as estimated from
    /// when the request was sent: never later than the real end).
    primaries: Mutex<HashMap<(u64, u64), SeenLease>>,
    /// Things worth telling that are not violations.
    pub notes: Mutex<Vec<String>>,
    pub observations: AtomicU64,
    /// path → the acknowledged operations on it, for a failure's report.
    history: Mutex<HashMap<String, Vec<String>>>,
}

impl Invariants {
    pub fn new() -> Arc<Invariants> {
        Arc::new(Invariants::default())
    }

    /// Records a version of a chunk; panics if it is below one seen before.
    pub fn version(&self, handle: u64, version: u64, source: &str) {
        self.observations.fetch_add(1, Ordering::Relaxed);
        let mut v = lock(&self.versions);
        let seen = v.entry(handle).or_insert(version);
        assert!(version >= *seen, "chunk {handle:#x}: version went down from {} to {version} (seen in {source})", *seen);
        *seen = version;
    }

    pub fn highest(&self, handle: u64) -> Option<u64> {
        lock(&self.versions).get(&handle).copied()
    }

    pub fn locations(&self, locs: &ChunkLocations, source: &str) {
        for c in &locs.chunks {
            self.version(c.handle.0, c.version.0, source);
        }
    }

    /// Records a lease answer; `asked` is when the request was sent and
    /// `answered` when the answer came. Panics when two different primaries
    /// hold the same chunk at the same version at once: the second was
    /// certainly granted (before `answered`) while the first certainly ran
    /// (until at least `asked` + its remaining time).
    pub fn lease(&self, l: &WriteLease, asked: Instant, answered: Instant) {
        self.version(l.handle.0, l.version.0, "a lease");
        let key = (l.handle.0, l.version.0);
        let end = asked + Duration::from_millis(l.lease_remaining_ms);
        let mut p = lock(&self.primaries);
        match p.get_mut(&key) {
            Some((node, address, old_end)) if *node != l.primary.node_id => {
                assert!(
                    answered >= *old_end,
                    "split brain: chunk {:#x} at version {} has primary {} while the lease of {} still runs ({:?} left)",
                    l.handle.0,
                    l.version.0,
                    l.primary.address,
                    address,
                    old_end.saturating_duration_since(answered)
                );
                let note = format!(
                    "chunk {:#x} v{}: primary changed from {address} to {} after its lease ended, without a version bump",
                    l.handle.0, l.version.0, l.primary.address
                );
                lock(&self.notes).push(note);
                *node = l.primary.node_id;
                *address = l.primary.address.clone();
                *old_end = end;
            }
            Some((_, _, old_end)) => *old_end = (*old_end).max(end),
            None => {
                p.insert(key, (l.primary.node_id, l.primary.address.clone(), end));
            }
        }
    }

    /// Asks the master for a write lease on a chunk (as a writer would,
    /// so it extends or grants the lease the writer then uses) and records it.
    pub async fn probe_lease(&self, client: &Client, inode: InodeId, index: u64) -> Option<WriteLease> {
        let asked = Instant::now();
        let l = client.master().lease(inode, index).await.ok()?;
        self.lease(&l, asked, Instant::now());
        Some(l)
    }

    /// Records the versions of every chunk of a file.
    pub async fn observe_file(&self, client: &Client, inode: InodeId) -> Option<ChunkLocations> {
        let locs = client.master().locate(inode, 0, 1024).await.ok()?;
        self.locations(&locs, "/v1/chunks");
        Some(locs)
    }

    /// Notes an acknowledged operation on `path` (with what the master
    /// then listed for its chunks, when given).
    pub fn record(&self, path: &str, op: String, locs: Option<&ChunkLocations>) {
        let chunks = locs.map(|l| l.chunks.iter().map(|c| format!(" [{}: {:#x} v{}]", c.index, c.handle.0, c.version.0)).collect::<String>());
        let line = format!("{:.1}s {op}{}", uptime(), chunks.unwrap_or_default());
        lock(&self.history).entry(path.to_string()).or_default().push(line);
    }

    /// Moves `src`'s history to `dst` (a rename).
    pub fn renamed(&self, src: &str, dst: &str) {
        let mut h = lock(&self.history);
        let mut lines = h.remove(src).unwrap_or_default();
        lines.push(format!("{:.1}s renamed from {src}", uptime()));
        h.insert(dst.to_string(), lines);
    }

    pub fn history(&self, path: &str) -> String {
        lock(&self.history).get(path).map(|l| l.join("\n  ")).unwrap_or_else(|| "(none recorded)".into())
    }

    pub fn print_notes(&self, tag: &str) {
        let notes = lock(&self.notes);
        crate::say!(tag, "{} version/lease observations, {} notes", self.observations.load(Ordering::Relaxed), notes.len());
        for n in notes.iter().take(20) {
            crate::say!(tag, "note: {n}");
        }
    }
}

/// What was acknowledged: path → its bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The first index where two byte strings differ (or the shorter length).
pub fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or(if a.len() == b.len() { None } else { Some(a.len().min(b.len())) })
}

/// Reads every file through the client; the first difference, if any.
pub async fn check_files(client: &Client, files: &Files) -> Result<(), String> {
    for (path, want) in files {
        let attr = client.stat(path).await.map_err(|e| format!("stat {path}: {e}"))?;
        if attr.size != want.len() as u64 {
            return Err(format!("{path}: size {} but {} bytes were acknowledged", attr.size, want.len()));
        }
        let got = client.read_at(&attr, 0, attr.size).await.map_err(|e| format!("read {path}: {e}"))?;
        if let Some(i) = first_diff(&got, want) {
            return Err(format!("{path}: WRONG BYTES read back at offset {i} (of {})", want.len()));
        }
    }
    Ok(())
}

/// Panics unless every file reads back exact; read errors are retried
/// for `timeout` (wrong bytes are never retried: they fail at once, with
/// every replica of the file compared and the file's history).
pub async fn verify_files(client: &Client, files: &Files, inv: &Invariants, timeout: Duration) {
    wait_for(&format!("{} acknowledged files read back exact", files.len()), timeout, || async {
        match check_files(client, files).await {
            Err(e) if e.contains("WRONG BYTES") || e.contains("acknowledged") => {
                let path = e.split(':').next().unwrap_or_default();
                let replicas = match files.get(path) {
                    Some(want) => diagnose(client, path, want).await,
                    None => String::new(),
                };
                panic!("{e}\nreplicas:{replicas}\nhistory of {path}:\n  {}", inv.history(path))
            }
            other => other,
        }
    })
    .await
}

/// Every replica of every chunk of `path` against the acknowledged bytes:
/// one line each, for a failure's report.
pub async fn diagnose(client: &Client, path: &str, want: &[u8]) -> String {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    let Ok(attr) = client.stat(path).await else { return " (stat failed)".into() };
    let Ok(locs) = client.master().locate(attr.inode, 0, 1024).await else { return " (locate failed)".into() };
    let cs = locs.chunk_size_bytes as usize;
    let mut out = String::new();
    for c in &locs.chunks {
        let (start, end) = (c.index as usize * cs, ((c.index as usize + 1) * cs).min(want.len()));
        for r in &c.replicas {
            let info = replica_info(&http, &r.address, c.handle.0).await;
            let line = match read_replica(&http, &r.address, c.handle.0, c.version.0, 0, end.saturating_sub(start) as u64).await {
                Ok((200, body)) if start < end => {
                    let differ = body.iter().zip(&want[start..end]).filter(|(a, b)| a != b).count();
                    format!("{} of {} bytes, {differ} differ, first at {:?}", body.len(), end - start, first_diff(&body, &want[start..end]))
                }
                Ok((status, body)) => format!("HTTP {status} {}", String::from_utf8_lossy(&body)),
                Err(e) => e,
            };
            out += &format!("\n  chunk {} {:#x} v{} on {} (replica says {info:?}): {line}", c.index, c.handle.0, c.version.0, r.address);
        }
    }
    out
}

/// Sends a request to the chunkserver at `address` signed with its
/// cluster key, as a peer (or the master) would: the harness reads
/// replicas without chunk tokens and asks for replica info, an internal
/// route. Unsigned if this process did not start that chunkserver.
pub async fn send_as_peer(http: &reqwest::Client, address: &str, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    let mut req = builder.build().map_err(|e| format!("{address}: {e}"))?;
    if let Some(file) = crate::process::key_file_of(address) {
        let keys = dfs_proto::auth::KeySource::open(&file).map_err(|e| e.to_string())?;
        dfs_server_kit::http::internal::ClusterAuth::new(std::sync::Arc::new(keys)).sign(&mut req);
    }
    http.execute(req).await.map_err(|e| format!("{address}: {e}"))
}

/// Reads `len` bytes at `offset` of one replica straight from its
/// chunkserver, at `version`: (status, body).
pub async fn read_replica(http: &reqwest::Client, address: &str, handle: u64, version: u64, offset: u64, len: u64) -> Result<(u16, Bytes), String> {
    let url = format!("{address}/v1/chunks/{handle}/data?version={version}&offset={offset}&length={len}");
    let r = send_as_peer(http, address, http.get(url)).await?;
    let status = r.status().as_u16();
    Ok((status, r.bytes().await.map_err(|e| format!("{address}: {e}"))?))
}

/// `GET {cs}/v1/chunks/{handle}`: Some((version, length)), or None (404).
pub async fn replica_info(http: &reqwest::Client, address: &str, handle: u64) -> Result<Option<(u64, u64)>, String> {
    let r = send_as_peer(http, address, http.get(format!("{address}/v1/chunks/{handle}"))).await?;
    if r.status().as_u16() == 404 {
        return Ok(None);
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    match (v["version"].as_u64(), v["length"].as_u64()) {
        (Some(ver), Some(len)) => Ok(Some((ver, len))),
        _ => Err(format!("{address}: unexpected chunk info {v}")),
    }
}

/// Checks every current replica the master lists, byte for byte, straight
/// from its chunkserver: none may hold other bytes than were acknowledged.
/// With `replication`, each chunk must also have exactly that many
/// replicas, on distinct nodes.
pub async fn check_replicas(client: &Client, files: &Files, inv: &Invariants, replication: Option<usize>) -> Result<u64, String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    let mut checked = 0;
    for (path, want) in files {
        let attr = client.stat(path).await.map_err(|e| format!("stat {path}: {e}"))?;
        let locs = client.master().locate(attr.inode, 0, 1024).await.map_err(|e| format!("locate {path}: {e}"))?;
        inv.locations(&locs, "/v1/chunks");
        let cs = locs.chunk_size_bytes;
        let chunks_wanted = (want.len() as u64).div_ceil(cs);
        for c in &locs.chunks {
            if c.index >= chunks_wanted {
                continue; // past the end (a truncate's leftovers wait for collection)
            }
            let nodes: BTreeSet<_> = c.replicas.iter().map(|r| r.node_id).collect();
            if let Some(n) = replication {
                if c.replicas.len() != n || nodes.len() != n {
                    return Err(format!("{path} chunk {} ({:#x}): {} replicas, want {n}: {:?}", c.index, c.handle.0, c.replicas.len(), c.replicas));
                }
            }
            if c.replicas.is_empty() {
                return Err(format!("{path} chunk {}: no current replica", c.index));
            }
            let start = (c.index * cs) as usize;
            let end = (start + cs as usize).min(want.len());
            for r in &c.replicas {
                let (status, body) = read_replica(&http, &r.address, c.handle.0, c.version.0, 0, (end - start) as u64).await?;
                if status != 200 {
                    return Err(format!("{path} chunk {} v{} on {}: HTTP {status} {}", c.index, c.version.0, r.address, String::from_utf8_lossy(&body)));
                }
                let mut got = body.to_vec();
                let held = got.len();
                got.resize(end - start, 0); // a replica shorter than the file reads as zeros there
                if let Some(i) = first_diff(&got, &want[start..end]) {
                    panic!(
                        "{path} chunk {} ({:#x} v{}) on {}: the replica holds WRONG BYTES at chunk offset {i} (it holds {held} of the {} bytes expected; replicas listed: {:?})",
                        c.index, c.handle.0, c.version.0, r.address, end - start, c.replicas
                    );
                }
                checked += 1;
            }
        }
    }
    Ok(checked)
}

/// `dfs fsck PATH --json`: exit code and the report.
pub async fn fsck(master: &str, path: &str) -> (i32, Value) {
    let run = dfs(master, &["fsck", path, "--json"]).await.expect("run dfs fsck");
    let v = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run.code, v)
}

/// Waits until `dfs fsck /` exits 0 (and, with `no_surplus`, reports no
/// over-replicated chunk either); returns the report.
pub async fn wait_healthy(master: &str, timeout: Duration, no_surplus: bool) -> Value {
    wait_for("`dfs fsck /` healthy", timeout, || async {
        let (code, v) = fsck(master, "/").await;
        let over = v["totals"]["over_replicated"].as_u64().unwrap_or(u64::MAX);
        if code == 0 && (!no_surplus || over == 0) {
            Ok(v)
        } else {
            let mut short = v.clone();
            if let Some(files) = short["files"].as_array_mut() {
                files.truncate(3);
            }
            Err(format!("exit {code}: {short}"))
        }
    })
    .await
}

/// Every file under `dir` (recursively), with its size.
pub async fn walk(client: &Client, dir: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_string()];
    while let Some(d) = todo.pop() {
        let entries: Vec<_> = client.list(&d).try_collect().await.map_err(|e| format!("list {d}: {e}"))?;
        for e in entries {
            let path = format!("{}/{}", d.trim_end_matches('/'), e.name);
            match e.attr.kind {
                dfs_proto::wire::namespace::FileKind::Dir => todo.push(path),
                _ => {
                    out.insert(path, e.attr.size);
                }
            }
        }
    }
    Ok(out)
}

/// The end of every test: the cluster heals (fsck healthy within
/// `timeout`), every acknowledged file reads back exact and is the only
/// file under `root`, every current replica holds exactly the
/// acknowledged bytes, and the namespace is consistent.
pub async fn settle_and_verify(c: &Cluster, files: &Files, root: &str, inv: &Invariants, timeout: Duration, exact: Option<usize>) {
    let client = client(&c.master.url);
    let no_surplus = exact.is_some();
    wait_healthy(&c.master.url, timeout, no_surplus).await;
    verify_files(&client, files, inv, Duration::from_secs(30)).await;
    let listed = walk(&client, root).await.expect("walk the namespace");
    let want: BTreeMap<String, u64> = files.iter().map(|(p, d)| (p.clone(), d.len() as u64)).collect();
    assert_eq!(listed, want, "the files under {root} are not exactly the acknowledged ones");
    // Replica counts may still move (a surplus being trimmed): retry a while.
    let checked = wait_for("every current replica holds the acknowledged bytes", Duration::from_secs(30), || check_replicas(&client, files, inv, exact)).await;
    // A fresh connection pool: the master may have restarted since `c.api` was made.
    let check = crate::Api::new(&c.master.url).get("/v1/admin/check").await.expect("admin check");
    assert_eq!(check.body["ok"], Value::Bool(true), "namespace check: {}", check.body);
    eprintln!("verified {} files, {checked} replicas byte for byte", files.len());
}

/// Flips the bits of `mask` in the byte at `offset` of a file; returns the
/// old byte.
pub fn flip_byte(path: &Path, offset: u64, mask: u8) -> std::io::Result<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset)?;
    f.write_all_at(&[b[0] ^ mask], offset)?;
    f.sync_all()?;
    Ok(b[0])
}

pub fn data_path(dir: &Path, handle: u64) -> PathBuf {
    dir.join("chunks").join(format!("{handle:016x}.data"))
}

pub fn meta_path(dir: &Path, handle: u64) -> PathBuf {
    dir.join("chunks").join(format!("{handle:016x}.meta"))
}

/// Names in `dir/quarantine/` of the data file of `handle`.
pub fn quarantined(dir: &Path, handle: u64) -> Vec<String> {
    let prefix = format!("{handle:016x}.data");
    std::fs::read_dir(dir.join("quarantine"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(&prefix)).collect())
        .unwrap_or_default()
}

/// A tmpfs mounted for a test, unmounted when dropped (even on panic).
/// Declare it before the cluster that uses it, so the processes die first.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`) in a fresh directory.
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { path, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// A small ext4 filesystem on a loop device (an image file in a temp
/// dir), unmounted and detached when dropped, even on panic. Declare it
/// before the cluster that uses it, so the processes die first.
/// [`LoopExt4::shut_down`] makes it fail like a dying disk.
pub struct LoopExt4 {
    pub path: PathBuf,
    device: String,
    /// The image file behind `device`.
    image: PathBuf,
    /// How many times [`LoopExt4::remount`] has mounted a fresh copy.
    boots: u32,
    _dir: tempfile::TempDir,
}

/// `EXT4_IOC_SHUTDOWN`, `_IOR('X', 125, __u32)`.
const EXT4_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
/// Shut down without flushing the journal: what is not on disk is lost.
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;

fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = std::process::Command::new(cmd).args(args).output().map_err(|e| format!("running {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl LoopExt4 {
    /// Makes an ext4 of `mib` MiB in an image file and mounts it through a
    /// free loop device (needs root, `losetup` and `mkfs.ext4`).
    pub fn mount(mib: u64) -> Result<LoopExt4, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (image, path) = (dir.path().join("ext4.img"), dir.path().join("mnt"));
        let file = std::fs::File::create(&image).map_err(|e| format!("{}: {e}", image.display()))?;
        file.set_len(mib * MIB).map_err(|e| format!("{}: {e}", image.display()))?;
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), image.as_os_str()])?;
        let device = run("losetup", &["-f".as_ref(), "--show".as_ref(), image.as_os_str()])?;
        let fs = LoopExt4 { path, device, image, boots: 0, _dir: dir };
        // From here on, a failure detaches the device (the guard's drop).
        run("mount", &["-t".as_ref(), "ext4".as_ref(), fs.device.as_ref(), fs.path.as_os_str()])?;
        Ok(fs)
    }

    /// Shuts the filesystem down as a failing disk would leave it: from
    /// now on every write, fsync, read and rename on it is EIO (pages
    /// written before and not yet on disk are lost).
    pub fn shut_down(&self) -> Result<(), String> {
        let root = std::fs::File::open(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
        // SAFETY: a valid descriptor and a pointer to a live u32, which is
        // what this ioctl reads.
        let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&root), EXT4_IOC_SHUTDOWN as _, &flags as *const u32) };
        if rc != 0 {
            return Err(format!("EXT4_IOC_SHUTDOWN on {}: {}", self.path.display(), std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Mounts again what reached the disk, as a machine's next boot
    /// would: ext4 replays its journal, so what was written to the image
    /// is there and nothing else. After [`LoopExt4::shut_down`] and the
    /// death of the process using it, this is the filesystem a power cut
    /// leaves.
    ///
    /// The image is copied and the copy mounted through a new loop device,
    /// the old one unmounted lazily and detached when free: another process
    /// may still hold descriptors on the old filesystem (a client's
    /// short-circuit reads), which keeps that instance alive, and mounting
    /// its device again would find that same shut-down instance. On the
    /// copy the old instance can write nothing, whenever it goes away.
    pub fn remount(&mut self) -> Result<(), String> {
        if run("umount", &[self.path.as_os_str()]).is_err() {
            run("umount", &["-l".as_ref(), self.path.as_os_str()])?;
        }
        // Detached as soon as nothing holds it (the kernel's autoclear).
        if let Err(e) = run("losetup", &["-d".as_ref(), self.device.as_ref()]) {
            eprintln!("could not detach {}: {e}", self.device);
        }
        self.boots += 1;
        let (old, image) = (self.image.clone(), self._dir.path().join(format!("ext4-{}.img", self.boots)));
        run("cp", &["--sparse=always".as_ref(), old.as_os_str(), image.as_os_str()])?;
        let _ = std::fs::remove_file(&old);
        self.image = image;
        self.device = run("losetup", &["-f".as_ref(), "--show".as_ref(), self.image.as_os_str()])?;
        run("mount", &["-t".as_ref(), "ext4".as_ref(), self.device.as_ref(), self.path.as_os_str()]).map(|_| ())
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        // Not mounted (a failed mount), busy (a process still in it: lazy),
        // or unmounted: then the device is free to detach.
        if run("umount", &[self.path.as_os_str()]).is_err() {
            let _ = run("umount", &["-l".as_ref(), self.path.as_os_str()]);
        }
        if let Err(e) = run("losetup", &["-d".as_ref(), self.device.as_ref()]) {
            eprintln!("could not detach {}: {e}", self.device);
        }
    }
}

/// Weights of the operations of a [`Workload`].
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub create: u32,
    pub overwrite: u32,
    pub read: u32,
    pub delete: u32,
    pub rename: u32,
    pub truncate: u32,
    pub mkdir: u32,
    /// Record appends (`Client::append_record`) to one of the worker's files.
    pub append: u32,
}

impl Mix {
    pub const WRITES: Mix = Mix { create: 6, overwrite: 2, read: 2, delete: 0, rename: 0, truncate: 0, mkdir: 0, append: 0 };
    pub const MIXED: Mix = Mix { create: 4, overwrite: 3, read: 3, delete: 1, rename: 1, truncate: 1, mkdir: 1, append: 0 };
    /// The soak's: every kind, deletes as often as creates so the live set
    /// stays near `max_files` however long it runs.
    pub const SOAK: Mix = Mix { create: 3, overwrite: 3, read: 3, delete: 2, rename: 2, truncate: 1, mkdir: 1, append: 3 };
}

#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub workers: usize,
    pub mix: Mix,
    /// Files are 1 byte to this size.
    pub max_file_bytes: usize,
    pub chunk_size: u64,
    pub replication: u16,
    /// How long one operation may keep failing (and be retried) before the
    /// workload gives up and the test fails.
    pub op_deadline: Duration,
    /// The directory the workers work under (worker i in ROOT/wI).
    pub root: String,
    /// A pause between operations.
    pub think: Duration,
    /// A worker holding this many files deletes one instead of creating
    /// (0: no limit), so a long run's data stays bounded.
    pub max_files: usize,
}

/// Counts of a workload's operations.
#[derive(Default, Debug)]
pub struct Stats {
    pub acked: AtomicU64,
    pub bytes_written: AtomicU64,
    pub reads_checked: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub read_errors: AtomicU64,
}

impl Stats {
    pub fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{} ops acknowledged, {} MiB written, {} reads checked, {} failed attempts (retried), {} read errors",
            g(&self.acked),
            g(&self.bytes_written) >> 20,
            g(&self.reads_checked),
            g(&self.failed_attempts),
            g(&self.read_errors)
        )
    }
}

/// Seeded workers doing mixed operations; each operation is retried until
/// acknowledged (they are written to be idempotent), and the model holds
/// exactly the acknowledged state. Reads are checked against the model
/// as they happen: wrong bytes fail the test at once.
pub struct Workload {
    pub files: Arc<Mutex<Files>>,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    pub fn start(master: &str, inv: Arc<Invariants>, seed: u64, cfg: WorkloadConfig) -> Workload {
        let files = Arc::new(Mutex::new(Files::new()));
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..cfg.workers)
            .map(|id| {
                let w = Worker {
                    id,
                    client: client(master),
                    inv: inv.clone(),
                    rng: StdRng::seed_from_u64(seed.wrapping_add((id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))),
                    cfg: cfg.clone(),
                    files: files.clone(),
                    stats: stats.clone(),
                    stop: stop.clone(),
                    mine: Vec::new(),
                    n: 0,
                };
                tokio::spawn(w.run())
            })
            .collect();
        Workload { files, stats, stop, tasks }
    }

    /// Stops the workers after their current operation (which is finished
    /// or given up on) and returns the acknowledged files; a worker's panic
    /// is passed on.
    pub async fn stop(self) -> Files {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            if let Err(e) = t.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        lock(&self.files).clone()
    }

    pub fn snapshot(&self) -> Files {
        lock(&self.files).clone()
    }

    /// True once a worker has ended before being stopped (it panicked).
    pub fn a_worker_ended(&self) -> bool {
        self.tasks.iter().any(|t| t.is_finished())
    }
}

struct Worker {
    id: usize,
    client: Client,
    inv: Arc<Invariants>,
    rng: StdRng,
    cfg: WorkloadConfig,
    files: Arc<Mutex<Files>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    /// This worker's files (paths), a view of `files`.
    mine: Vec<String>,
    n: u64,
}

enum Op {
    Create,
    Overwrite,
    Read,
    Delete,
    Rename,
    Truncate,
    Mkdir,
    Append,
}

impl Worker {
    fn dir(&self) -> String {
        format!("{}/w{}", self.cfg.root.trim_end_matches('/'), self.id)
    }

    fn pick(&mut self) -> Op {
        let m = self.cfg.mix;
        if self.mine.is_empty() {
            return Op::Create;
        }
        let weights = [m.create, m.overwrite, m.read, m.delete, m.rename, m.truncate, m.mkdir, m.append];
        let total: u32 = weights.iter().sum();
        let mut x = self.rng.random_range(0..total.max(1));
        let mut which = 0;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                which = i;
                break;
            }
            x -= w;
        }
        match which {
            0 if self.cfg.max_files > 0 && self.mine.len() >= self.cfg.max_files => Op::Delete,
            0 => Op::Create,
            1 => Op::Overwrite,
            2 => Op::Read,
            3 => Op::Delete,
            4 => Op::Rename,
            5 => Op::Truncate,
            6 => Op::Mkdir,
            _ => Op::Append,
        }
    }

    fn expected(&self, path: &str) -> Vec<u8> {
        lock(&self.files).get(path).cloned().unwrap_or_default()
    }

    fn set(&self, path: &str, data: Vec<u8>) {
        lock(&self.files).insert(path.to_string(), data);
    }

    fn acked(&self) {
        self.stats.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// Retries `f` until it succeeds; panics after the op deadline.
    async fn until_ok<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match f(attempt).await {
                Ok(v) => return v,
                Err(e) => {
                    self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    if start.elapsed() > self.cfg.op_deadline {
                        panic!("worker {}: {what} still fails after {:?} of retries: {e}", self.id, self.cfg.op_deadline);
                    }
                    if attempt < 3 || attempt % 10 == 0 {
                        eprintln!("[{:>6.1}s] worker {}: {what} failed (attempt {attempt}, retrying): {e}", uptime(), self.id);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn run(mut self) {
        let dir = self.dir();
        let client = self.client.clone();
        self.until_ok("mkdir", |_| client.mkdir(&dir, true, None)).await;
        while !self.stop.load(Ordering::Relaxed) {
            self.n += 1;
            match self.pick() {
                Op::Create => self.create().await,
                Op::Overwrite => self.overwrite().await,
                Op::Read => self.read().await,
                Op::Delete => self.delete().await,
                Op::Rename => self.rename().await,
                Op::Truncate => self.truncate().await,
                Op::Mkdir => self.mkdir().await,
                Op::Append => self.append().await,
            }
            if !self.cfg.think.is_zero() {
                tokio::time::sleep(self.cfg.think).await;
            }
        }
    }

    fn any_mine(&mut self) -> String {
        let i = self.rng.random_range(0..self.mine.len());
        self.mine[i].clone()
    }

    /// Probes the leases of the chunks a write will touch, and afterwards
    /// records the file's versions.
    async fn probe(&self, inode: InodeId, offset: u64, len: u64) {
        let cs = self.cfg.chunk_size;
        if len == 0 {
            return;
        }
        for index in offset / cs..=(offset + len - 1) / cs {
            self.inv.probe_lease(&self.client, inode, index).await;
        }
    }

    async fn create(&mut self) {
        let path = format!("{}/f{}", self.dir(), self.n);
        let len = self.rng.random_range(1..=self.cfg.max_file_bytes);
        let data = random_bytes(&mut self.rng, len);
        let piece = self.rng.random_range(16 * 1024..=512 * 1024);
        let (client, cfg, inv) = (self.client.clone(), self.cfg.clone(), self.inv.clone());
        let attr = self
            .until_ok(&format!("create {path} ({len} bytes)"), |attempt| {
                let (client, cfg, inv, path, data) = (client.clone(), cfg.clone(), inv.clone(), path.clone(), data.clone());
                async move {
                    // A retry replaces whatever a failed attempt left (the name is ours alone).
                    let opts = CreateOptions {
                        overwrite: attempt > 0,
                        replication: Some(cfg.replication),
                        chunk_size_bytes: Some(cfg.chunk_size),
                        ..Default::default()
                    };
                    let mut w = client.create(&path, &opts).await?;
                    let inode = w.attr().inode;
                    for index in 0..(data.len() as u64).div_ceil(cfg.chunk_size) {
                        inv.probe_lease(&client, inode, index).await;
                    }
                    for p in data.chunks(piece) {
                        w.write(p).await?;
                    }
                    w.close().await
                }
            })
            .await;
        self.set(&path, data);
        self.stats.bytes_written.fetch_add(len as u64, Ordering::Relaxed);
        self.acked();
        let locs = self.inv.observe_file(&self.client, attr.inode).await;
        self.inv.record(&path, format!("worker {}: created, {len} bytes, inode {}", self.id, attr.inode), locs.as_ref());
        self.mine.push(path);
    }

    async fn overwrite(&mut self) {
        let path = self.any_mine();
        let mut want = self.expected(&path);
        let offset = self.rng.random_range(0..=want.len());
        let len = self.rng.random_range(1..=(self.cfg.max_file_bytes / 4).max(1));
        let data = random_bytes(&mut self.rng, len);
        let client = self.client.clone();
        let me: &Worker = self;
        let inode = me
            .until_ok(&format!("write {len} bytes at {offset} of {path}"), |_| {
                let (client, path, data) = (client.clone(), path.clone(), Bytes::from(data.clone()));
                async move {
                    let attr = client.stat(&path).await?;
                    me.probe(attr.inode, offset as u64, data.len() as u64).await;
                    client.write_at(&attr, offset as u64, data).await?;
                    Ok(attr.inode)
                }
            })
            .await;
        if want.len() < offset + len {
            want.resize(offset + len, 0);
        }
        want[offset..offset + len].copy_from_slice(&data);
        self.set(&path, want);
        self.stats.bytes_written.fetch_add(len as u64, Ordering::Relaxed);
        self.acked();
        let locs = self.inv.observe_file(&self.client, inode).await;
        self.inv.record(&path, format!("wrote {len} bytes at {offset}"), locs.as_ref());
    }

    async fn read(&mut self) {
        let path = self.any_mine();
        let want = self.expected(&path);
        let offset = self.rng.random_range(0..=want.len()) as u64;
        let len = self.rng.random_range(1..=self.cfg.max_file_bytes) as u64;
        let attr = match self.client.stat(&path).await {
            Ok(a) => a,
            Err(_) => {
                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        assert_eq!(attr.size, want.len() as u64, "worker {}: {path} has size {} but {} bytes were acknowledged", self.id, attr.size, want.len());
        match self.client.read_at(&attr, offset, len).await {
            Ok(got) => {
                let end = (offset + len).min(want.len() as u64) as usize;
                let expect = &want[offset as usize..end];
                if let Some(i) = first_diff(&got, expect) {
                    panic!(
                        "worker {}: read of {path} at {offset}+{len} returned WRONG BYTES at {} (got {} bytes, want {})",
                        self.id,
                        offset as usize + i,
                        got.len(),
                        expect.len()
                    );
                }
                self.stats.reads_checked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("[{:>6.1}s] worker {}: read of {path} failed: {e}", uptime(), self.id);
            }
        }
        self.inv.observe_file(&self.client, attr.inode).await;
    }

    async fn delete(&mut self) {
        let path = self.any_mine();
        let client = self.client.clone();
        self.until_ok(&format!("delete {path}"), |attempt| {
            let (client, path) = (client.clone(), path.clone());
            async move {
                match client.delete(&path, false).await {
                    Err(e) if e.kind == ErrorKind::ENOENT && attempt > 0 => Ok(()), // an earlier attempt did it
                    other => other,
                }
            }
        })
        .await;
        lock(&self.files).remove(&path);
        self.inv.record(&path, "deleted".into(), None);
        self.mine.retain(|p| *p != path);
        self.acked();
    }

    async fn rename(&mut self) {
        let src = self.any_mine();
        let dst = format!("{}/r{}", self.dir(), self.n);
        let client = self.client.clone();
        self.until_ok(&format!("rename {src} to {dst}"), |attempt| {
            let (client, src, dst) = (client.clone(), src.clone(), dst.clone());
            async move {
                match client.rename(&src, &dst, true).await {
                    Err(e) if e.kind == ErrorKind::ENOENT && attempt > 0 && client.try_stat(&dst).await?.is_some() => Ok(()),
                    other => other,
                }
            }
        })
        .await;
        let data = lock(&self.files).remove(&src).unwrap_or_default();
        self.set(&dst, data);
        self.inv.renamed(&src, &dst);
        self.mine.retain(|p| *p != src);
        self.mine.push(dst);
        self.acked();
    }

    async fn truncate(&mut self) {
        let path = self.any_mine();
        let mut want = self.expected(&path);
        let size = self.rng.random_range(0..=want.len());
        let client = self.client.clone();
        // Retries use the attributes from before the first attempt, so the
        // cut part of the last chunk is zeroed even if the length was set.
        let before = self.until_ok(&format!("stat {path}"), |_| client.stat(&path)).await;
        self.until_ok(&format!("truncate {path} to {size}"), |_| {
            let (client, before) = (client.clone(), before.clone());
            async move { client.truncate(&before, size as u64).await }
        })
        .await;
        want.truncate(size);
        self.set(&path, want);
        self.acked();
        let locs = self.inv.observe_file(&self.client, before.inode).await;
        self.inv.record(&path, format!("truncated from {} to {size}", before.size), locs.as_ref());
    }

    /// Appends one record (at most a quarter chunk). A failed attempt may
    /// have reserved a range and written part of it on some replicas, so
    /// before the next attempt the file is cut back to its acknowledged
    /// length, with the rest of that last chunk zeroed: the model stays
    /// exact (a record at the offset the successful attempt reports, zeros
    /// before it when it went to the next chunk).
    async fn append(&mut self) {
        let path = self.any_mine();
        let mut want = self.expected(&path);
        let max = (self.cfg.chunk_size as usize / 4).min(self.cfg.max_file_bytes / 4).max(1);
        let len = self.rng.random_range(1..=max);
        let data = Bytes::from(random_bytes(&mut self.rng, len));
        let acked_end = want.len() as u64;
        let client = self.client.clone();
        let before = self.until_ok(&format!("stat {path}"), |_| client.stat(&path)).await;
        let offset = self
            .until_ok(&format!("append {len} bytes to {path}"), |attempt| {
                let (client, path, data, before) = (client.clone(), path.clone(), data.clone(), before.clone());
                async move {
                    if attempt > 0 {
                        // As if the file had been a whole chunk longer: the
                        // truncate then zeroes the cut part of the last chunk.
                        let mut wide = before;
                        wide.size = (acked_end / wide.chunk_size_bytes.max(1) + 1) * wide.chunk_size_bytes.max(1);
                        client.truncate(&wide, acked_end).await?;
                    }
                    client.append_record(&path, data).await
                }
            })
            .await;
        want.resize(offset as usize, 0);
        want.extend_from_slice(&data);
        self.set(&path, want);
        self.stats.bytes_written.fetch_add(len as u64, Ordering::Relaxed);
        self.acked();
        let locs = self.inv.observe_file(&self.client, before.inode).await;
        self.inv.record(&path, format!("appended {len} bytes at {offset}"), locs.as_ref());
    }

    async fn mkdir(&mut self) {
        let path = format!("{}/d{}", self.dir(), self.n);
        let client = self.client.clone();
        self.until_ok(&format!("mkdir {path}"), |_| client.mkdir(&path, true, None)).await;
        self.acked();
    }
}
