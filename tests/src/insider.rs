//! Acting on a cluster from the inside (holding its key file) or the
//! outside (anyone who can reach a port), for the hostile-client suite
//! (`tests/tests/hostile.rs`) and the fuzz target (`tests/tests/fuzz.rs`).
//!
//! - [`Insider`]: sends requests signed with a cluster key file (or with
//!   a stranger's key), and builds signed requests to replay.
//! - Tokens got the legitimate way: [`locations`] (READ tokens) and
//!   [`lease`] (a READ_WRITE token).
//! - [`put_data`]/[`get_data`]: raw data requests with or without a token.
//! - Raw sockets: [`raw_request`] (an answer to a request whose body is
//!   never sent in full), [`Slowloris`] (half-open connections and trickled
//!   bodies), [`Trap`] (a listener that must never be contacted).
//! - [`Daemon`]: a master or chunkserver started with exactly the flags
//!   given (another cluster's master on a chosen port, a chunkserver
//!   pointed at it), killed when dropped.
//! - [`replica_files`]: what a chunkserver holds on disk, to prove that
//!   nothing was deleted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::auth::{ClusterKey, KeyRing, KeySource};
use dfs_proto::wire::chunks::{checksum_header, ChunkLocations, Heartbeat, WriteLease, HEADER_CHECKSUMS, HEADER_FORWARD};
use dfs_proto::{InodeId, NodeId};
use dfs_server_kit::http::internal::ClusterAuth;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api::Reply;
use crate::process::bin_dir;

/// The key file a master creates in its data directory.
pub fn master_key_file(master_data_dir: &Path) -> PathBuf {
    master_data_dir.join("cluster.key")
}

/// An HTTP client for attacks: no pooling surprises, bounded waits.
pub fn http() -> reqwest::Client {
    crate::tls::ca_dir();
    dfs_client::tls::reqwest_builder().timeout(Duration::from_secs(20)).pool_max_idle_per_host(8).build().expect("http client")
}

/// Requests whose answer was lost and that were sent again (see [`execute`]).
pub static LOST_ANSWERS: AtomicU64 = AtomicU64::new(0);

/// Sends `req`; a transport failure (no answer at all) is retried twice,
/// counted in [`LOST_ANSWERS`] and logged. A server that refuses a request
/// before reading its body and closes the connection at once makes the
/// client's body write fail (EPIPE) or resets the connection, and the
/// refusal it sent is lost on the way; the same request again gets it.
///
/// A request to a master this process started is signed as its first
/// admin (afresh for each attempt: a signature is accepted once), so an
/// attack reaches the handlers, as a user's would.
pub async fn execute(http: &reqwest::Client, mut req: reqwest::Request) -> reqwest::Result<reqwest::Response> {
    let mut attempt = 0;
    loop {
        let again = req.try_clone();
        if !req.headers().contains_key(dfs_proto::auth::user::HEADER_SESSION) {
            sign_as_admin(&mut req).await;
        }
        let (method, url) = (req.method().clone(), req.url().clone());
        match http.execute(req).await {
            Err(e) if attempt < 2 && !e.is_timeout() && again.is_some() => {
                LOST_ANSWERS.fetch_add(1, Ordering::Relaxed);
                eprintln!("insider: no answer to {method} {url} ({e:?}); sending it again");
                req = again.expect("checked");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// The first admin's login at each master this process started, by URL.
/// (A URL is reused by masters on other directories: keyed by both.)
static LOGINS: std::sync::Mutex<Vec<(String, Arc<dfs_client::auth::Login>, dfs_client::Client)>> = std::sync::Mutex::new(Vec::new());

/// Adds the user headers of the first admin of the master `req` goes to
/// (nothing for other servers).
async fn sign_as_admin(req: &mut reqwest::Request) {
    let base = req.url().origin().ascii_serialization();
    let Some(file) = crate::process::credentials_of(&base) else { return };
    let key = format!("{base} {} {:?}", file.display(), crate::process::master_start_of(&base));
    let found = LOGINS.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|(k, ..)| *k == key).map(|(_, l, c)| (l.clone(), c.clone()));
    let (login, client) = match found {
        Some(x) => x,
        None => {
            let login = crate::login(&base);
            crate::tls::ca_dir();
            let client = dfs_client::Client::with_login(&base, dfs_client::DataConfig::default(), login.clone());
            LOGINS.lock().unwrap_or_else(|p| p.into_inner()).push((key, login.clone(), client.clone()));
            (login, client)
        }
    };
    crate::api::sign_as(&login, &client, req).await;
}

/// Builds and sends with [`execute`].
pub async fn send(builder: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let (client, req) = builder.build_split();
    execute(&client, req?).await
}

/// Sends with [`execute`]; the answer as a [`Reply`].
pub async fn send_reply(builder: reqwest::RequestBuilder) -> reqwest::Result<Reply> {
    reply(send(builder).await?).await
}

/// An answer as a [`Reply`] (JSON body, or Null).
pub async fn reply(resp: reqwest::Response) -> reqwest::Result<Reply> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok(Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
}

/// Someone who signs requests with a cluster key: the real one (an
/// insider) or a key of their own (a stranger).
pub struct Insider {
    pub auth: Arc<ClusterAuth>,
    pub http: reqwest::Client,
}

impl Insider {
    /// Signs with the keys of `path` (a cluster key file).
    pub fn from_key_file(path: &Path) -> anyhow::Result<Insider> {
        let keys = KeySource::open(path).with_context(|| format!("key file {}", path.display()))?;
        Ok(Insider { auth: ClusterAuth::new(Arc::new(keys)), http: http() })
    }

    /// Signs with a fresh random key: well-formed signatures nobody accepts.
    pub fn stranger() -> Insider {
        Insider { auth: ClusterAuth::fixed(KeyRing::single(ClusterKey::generate())), http: http() }
    }

    /// Builds and signs a request (send it with [`Insider::execute`]; a
    /// clone of it is a replay).
    pub fn signed(&self, builder: reqwest::RequestBuilder) -> reqwest::Request {
        let mut req = builder.build().expect("a valid request");
        self.auth.sign(&mut req);
        req
    }

    pub async fn execute(&self, req: reqwest::Request) -> reqwest::Result<Reply> {
        reply(execute(&self.http, req).await?).await
    }

    /// Signs and sends.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> reqwest::Result<Reply> {
        self.execute(self.signed(builder)).await
    }

    /// A signed `POST url` of `body` as JSON.
    pub async fn post_json<T: Serialize + ?Sized>(&self, url: &str, body: &T) -> reqwest::Result<Reply> {
        let bytes = serde_json::to_vec(body).expect("serialisable");
        self.send(self.http.post(url).header("content-type", "application/json").body(bytes)).await
    }

    /// A signed heartbeat to `master`.
    pub async fn heartbeat(&self, master: &str, hb: &Heartbeat) -> reqwest::Result<Reply> {
        self.post_json(&format!("{master}/v1/heartbeat"), hb).await
    }
}

/// A heartbeat of a chunkserver that does not exist (node id `node`,
/// reachable at `address`), reporting nothing.
pub fn fake_heartbeat(node: NodeId, address: &str) -> Heartbeat {
    Heartbeat {
        node_id: node,
        address: address.to_string(),
        capacity_bytes: 100 << 30,
        used_bytes: 0,
        chunk_count: 0,
        load: 0,
        report: Some(Vec::new()),
        bytes_read: 0,
        bytes_written: 0,
        scrub: None,
        registering: true,
        cluster_id: None,
        peers_epoch: 0,
    }
}

/// The address of a loopback port nothing listens on (bound, then let go).
pub async fn closed_port_url() -> String {
    // The kernel hands a freed port out again at once: two calls must not
    // name the same address (a second fake node there would be refused as
    // taking a live node's address).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    // Ports given before stay bound while we look, so the next is another.
    let mut held = Vec::new();
    loop {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("local addr");
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return format!("http://{addr}");
        }
        drop(given);
        held.push(l);
    }
}

/// `GET /v1/chunks?inode=N`: every chunk's locations, each with a READ
/// token, as any client gets them.
pub async fn locations(http: &reqwest::Client, master: &str, inode: InodeId) -> anyhow::Result<ChunkLocations> {
    let resp = send(http.get(format!("{master}/v1/chunks?inode={}&first=0&count=1024", inode.0))).await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("locate inode {inode}: HTTP {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// `POST /v1/chunks/lease`: a write lease (with its READ_WRITE token) on
/// chunk `index` of `inode`, as a writer gets it.
pub async fn lease(http: &reqwest::Client, master: &str, inode: InodeId, index: u64) -> anyhow::Result<WriteLease> {
    let resp = send(http.post(format!("{master}/v1/chunks/lease")).json(&serde_json::json!({"inode": inode.0, "index": index}))).await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("lease on inode {inode} chunk {index}: HTTP {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// `PUT {address}/v1/chunks/{handle}/data?version=V&offset=O` of `body`
/// with correct checksums, the token given (if any) and the forward list.
#[allow(clippy::too_many_arguments, reason = "one argument per part of the request, which each test sets its own way")]
pub async fn put_data(
    http: &reqwest::Client,
    address: &str,
    handle: u64,
    version: u64,
    offset: u64,
    body: &[u8],
    token: Option<&str>,
    forward: &[&str],
) -> reqwest::Result<Reply> {
    let url = format!("{address}/v1/chunks/{handle}/data?version={version}&offset={offset}");
    let mut req = http.put(url).header(HEADER_CHECKSUMS, checksum_header(body)).header(HEADER_FORWARD, forward.join(","));
    if let Some(t) = token {
        req = req.header(HEADER_TOKEN, t);
    }
    send_reply(req.body(body.to_vec())).await
}

/// `GET {address}/v1/chunks/{handle}/data?version=V&offset=O&length=L`
/// with the token given: (status, body).
pub async fn get_data(
    http: &reqwest::Client,
    address: &str,
    handle: u64,
    version: u64,
    offset: u64,
    length: u64,
    token: Option<&str>,
) -> reqwest::Result<(u16, Bytes)> {
    let url = format!("{address}/v1/chunks/{handle}/data?version={version}&offset={offset}&length={length}");
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.header(HEADER_TOKEN, t);
    }
    let resp = send(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.bytes().await?))
}

/// `host:port` of a base URL.
pub fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// What a raw exchange got: the status of the answer, its text, how long
/// it took and how many body bytes had been sent by then.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub text: String,
    pub elapsed: Duration,
    pub body_bytes_sent: u64,
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body_prefix` bytes of the body it announces, then waits for an
/// answer: a server that wants the whole body (say 256 MiB) before
/// answering never answers, and the call fails after `timeout`. Send no
/// body (0) to see the answer for sure: a server that refuses and closes
/// with body bytes unread resets the connection, which may discard its
/// answer on the way.
pub async fn raw_request(addr: &str, head: &str, body_prefix: u64, timeout: Duration) -> anyhow::Result<RawAnswer> {
    let started = Instant::now();
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr)).await.context("connect timed out")??;
    let head = format!("{}\r\nHost: {addr}\r\n\r\n", head.trim_end());
    stream.write_all(head.as_bytes()).await?;
    let piece = vec![b' '; 64 * 1024];
    let mut sent = 0u64;
    while sent < body_prefix {
        let n = (body_prefix - sent).min(piece.len() as u64) as usize;
        if stream.write_all(&piece[..n]).await.is_err() {
            break;
        }
        sent += n as u64;
    }
    let mut got = Vec::new();
    let read = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&got, b"\r\n\r\n") {
                // The head is in; take what of the body is there a moment later.
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    while got.len() < end + 4 + 64 {
                        let n = stream.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                return Ok(());
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&got).into_owned();
    match read {
        Err(_) => bail!("no answer within {timeout:?} ({sent} body bytes sent); got {text:?}"),
        Ok(Err(e)) if got.is_empty() => bail!("reading the answer: {e}"),
        _ => {}
    }
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("no status line in {text:?}"))?;
    Ok(RawAnswer { status, text, elapsed, body_bytes_sent: sent })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A listener that must never be contacted: counts the connections made
/// to it (a chunkserver tricked into forwarding or copying would be one).
pub struct Trap {
    pub url: String,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    pub async fn start() -> Trap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                // Read what comes (so a sender is not stuck), answer nothing.
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        Trap { url, accepted, task }
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a [`Slowloris`] attack did.
#[derive(Debug, Default)]
pub struct SlowStats {
    /// Connections opened.
    pub connections: AtomicU64,
    /// Connections the server closed (or reset) on us.
    pub cut_off: AtomicU64,
    /// Bytes trickled.
    pub bytes: AtomicU64,
}

/// Half-open connections (a request head sent a byte at a time, never
/// finished) and trickled bodies (a full head announcing a large body,
/// then a byte at a time), each reopened as soon as the server drops it.
pub struct Slowloris {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<SlowStats>,
}

impl Slowloris {
    /// `half_open` connections trickling request heads and `trickled`
    /// connections trickling a body after `body_head` (a full request head
    /// announcing a large Content-Length, without the blank line), one byte
    /// every `every`.
    pub fn start(addr: &str, half_open: usize, trickled: usize, body_head: &str, every: Duration) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SlowStats::default());
        let mut tasks = Vec::new();
        for i in 0..half_open + trickled {
            let (addr, stop, stats) = (addr.to_string(), stop.clone(), stats.clone());
            let head = match i < half_open {
                true => format!("PUT /v1/chunks/{i}/data?version=1&offset=0 HTTP/1.1\r\nHost: {addr}\r\n"),
                false => format!("{}\r\nHost: {addr}\r\n\r\n", body_head.trim_end()),
            };
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr)).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    if s.write_all(head.as_bytes()).await.is_err() {
                        stats.cut_off.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // One byte at a time: a header line that never ends, or body bytes.
                    let byte: &[u8] = if i < half_open { b"x" } else { b"0" };
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        tokio::time::sleep(every).await;
                        // A closed connection shows as a failed write or a readable EOF.
                        let mut probe = [0u8; 512];
                        let closed = match tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => true,
                            Ok(Ok(_)) => true, // the server answered (an error): it is done with us
                            Err(_) => false,
                        };
                        if closed || s.write_all(byte).await.is_err() {
                            stats.cut_off.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        stats.bytes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Slowloris { stop, tasks, stats }
    }

    pub async fn stop(self) -> Arc<SlowStats> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        self.stats
    }
}

/// A daemon started with exactly the arguments given (unlike the harness,
/// nothing is added), killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    pub url: String,
}

impl Daemon {
    /// `binary ARGS`, waiting (bounded) for its "listening on URL" line.
    pub fn spawn(binary: &str, args: &[String]) -> anyhow::Result<Daemon> {
        let marker = format!("{binary} listening on ");
        let bin = bin_dir()?.join(binary);
        let mut child = Command::new(&bin)
            .args(args)
            .env("DFS_LOG", std::env::var("DFS_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = line.strip_prefix(&marker) {
                        let _ = tx.send(url.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok(Daemon { child, url }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                bail!("{binary} {args:?} did not announce its address within 30 s (exit: {status:?})")
            }
        }
    }

    /// A master on `listen` with its data in `data_dir`, plus `extra` flags.
    pub fn master(listen: &str, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Daemon> {
        let mut args = vec!["--listen".to_string(), listen.to_string(), "--data-dir".to_string(), data_dir.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let daemon = Daemon::spawn("dfs-master", &args)?;
        crate::process::note_credentials(&daemon.url, data_dir);
        Ok(daemon)
    }

    /// A chunkserver on `listen` reporting to `master`, plus `extra` flags
    /// (give `--cluster-key-file`: nothing is added).
    pub fn chunkserver(listen: &str, master: &str, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Daemon> {
        let mut args = vec![
            "--listen".to_string(),
            listen.to_string(),
            "--master".to_string(),
            master.to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Daemon::spawn("dfs-chunkserver", &args)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The replica data files a chunkserver holds (name → SHA-256 of the
/// contents, hex), to show that nothing was deleted or changed.
pub fn replica_files(data_dir: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(data_dir.join("chunks")) else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".data") {
            continue;
        }
        let digest = std::fs::read(e.path()).map(|b| sha2::Sha256::digest(&b).iter().map(|x| format!("{x:02x}")).collect()).unwrap_or_default();
        out.insert(name, digest);
    }
    out
}
