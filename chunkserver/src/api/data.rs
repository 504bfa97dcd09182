//! The data path. A write arrives with its length, its checksums (CRC32 per
//! 64 KiB piece of the body) and the chain of replicas still to reach; each
//! node forwards every received frame downstream at once, verifies the whole
//! body against its checksums, writes it, and answers only when its
//! downstream has answered too. A read verifies the stored checksums of every
//! block it touches; a replica that fails is moved aside and reported.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::endpoint::chunkserver::WriteData;
use dfs_proto::endpoint::url;
use dfs_proto::wire::chunks::{checksum_header, parse_checksum_header, BadReplica, DataQuery, HEADER_CHECKSUMS, HEADER_FORWARD};
use dfs_proto::wire::namespace::Done;
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind};
use dfs_server_kit::http::{request_id, ApiError, ApiPath, ApiQuery};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::caller::Caller;
use super::error::chunk_error;
use crate::chunk_store::{self, ChunkError};
use crate::node::{blocking, quarantine_and_report, report_bad, InFlight, Node};
use crate::peers::{NotPeer, REFRESH_WAIT};

type Frames = mpsc::Sender<Result<Bytes, std::io::Error>>;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::EINVAL, message)
}

fn parse_checksums(headers: &HeaderMap, len: u64) -> Result<Vec<u32>, ApiError> {
    let raw = headers.get(HEADER_CHECKSUMS).and_then(|v| v.to_str().ok()).unwrap_or("");
    parse_checksum_header(raw, len).map_err(invalid)
}

/// Longest replica chain a write may name (replication is at most 16).
const CHAIN_MAX: usize = 16;

fn parse_forward(headers: &HeaderMap) -> Result<Vec<String>, ApiError> {
    let raw = headers.get(HEADER_FORWARD).and_then(|v| v.to_str().ok()).unwrap_or("");
    let chain: Vec<String> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if chain.iter().any(|u| !dfs_server_kit::tls::fits(u)) {
        return Err(invalid(format!("{HEADER_FORWARD} must list {}:// URLs", dfs_server_kit::tls::scheme())));
    }
    let distinct: std::collections::HashSet<&String> = chain.iter().collect();
    if chain.len() > CHAIN_MAX || distinct.len() != chain.len() {
        return Err(invalid(format!("{HEADER_FORWARD} must name at most {CHAIN_MAX} distinct chunkservers")));
    }
    Ok(chain)
}

fn content_length(headers: &HeaderMap) -> Result<u64, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::new(ErrorKind::EINVAL, "a write needs a Content-Length"))
}

/// Starts the write on the next replica; its body is fed frame by frame.
/// The request carries the client's token and is signed by this node (the
/// streamed body as UNSIGNED: its length and CRCs are covered headers).
fn forward(
    n: &Node,
    chain: &[String],
    handle: ChunkHandle,
    q: DataQuery,
    len: u64,
    crcs: &str,
    token: &str,
) -> (Frames, tokio::task::JoinHandle<Result<(), Downstream>>) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let next = chain[0].clone();
    // The same write at the same offset; `length` is for reads.
    let query = DataQuery { length: None, ..q };
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let request = url::<WriteData>(&next, &handle, &query).map(|url| {
        n.http
            .put(url)
            .header(HEADER_FORWARD, chain[1..].join(","))
            .header(HEADER_CHECKSUMS, crcs)
            .header(header::CONTENT_LENGTH, len)
            .header(HEADER_TOKEN, token)
            .body(reqwest::Body::wrap_stream(stream))
    });
    let (auth, http) = (n.auth.clone(), n.http.clone());
    // Under the client's request id and span: the next replica logs the
    // write under the same id, and so do failures logged here.
    let task = request_id::spawn(async move {
        let failed = |m: String| ApiError::new(ErrorKind::EIO, format!("replica {next}: {m}"));
        // A query that does not encode is this node's bug, not the next replica's fault.
        let request = request.map_err(|e| Downstream { error: failed(e.to_string()), blame: Blame::Nobody })?;
        let resp = auth.send(&http, request).await.map_err(|e| Downstream { error: failed(e.to_string()), blame: Blame::Next })?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status();
        let reported = resp.headers().contains_key(HEADER_REPLICA_REPORTED);
        let body = resp.json::<dfs_proto::ErrorBody>().await.ok();
        let why = body.as_ref().map_or(status.to_string(), |b| format!("{}: {}", b.error, b.message));
        let blame = match body.map(|b| b.error) {
            // A failure further down, already reported by the node above it.
            _ if reported => Blame::Further,
            // The next replica is at another version: if it is ahead, this
            // write is late (our lease is gone) and nobody is at fault.
            Some(ErrorKind::ESTALE) => {
                return Err(Downstream { error: ApiError::new(ErrorKind::ESTALE, format!("replica {next}: {why}")), blame: Blame::Nobody })
            }
            // The body passed our own checks, so any other refusal is that
            // replica's failure (quarantined, disk full...), not the client's.
            _ => Blame::Next,
        };
        Err(Downstream { error: failed(why), blame })
    });
    (tx, task)
}

/// Set on a write's error answer when a failed replica in the chain has
/// been reported to the master, so the nodes above do not report theirs.
const HEADER_REPLICA_REPORTED: &str = "x-dfs-replica-reported";

/// How a forwarded write failed, and whose fault it was.
struct Downstream {
    error: ApiError,
    blame: Blame,
}

enum Blame {
    /// The next replica failed: report it.
    Next,
    /// A replica further down failed; it is reported already.
    Further,
    /// The replicas disagree on the version: nobody is reported.
    Nobody,
}

/// Frames shorter than this are gathered into parts of at least this
/// size: a body trickled in tiny frames must not cost a part per frame.
const SMALL_FRAME_BYTES: usize = 16 * 1024;

/// A received body's parts: its frames as they came (see `Body`), small
/// ones gathered.
#[derive(Default)]
struct Parts {
    parts: Vec<Bytes>,
    small: bytes::BytesMut,
}

impl Parts {
    fn push(&mut self, frame: &Bytes) {
        if frame.len() >= SMALL_FRAME_BYTES {
            self.end_small();
            self.parts.push(frame.clone());
        } else {
            self.small.extend_from_slice(frame);
            if self.small.len() >= SMALL_FRAME_BYTES {
                self.end_small();
            }
        }
    }

    fn end_small(&mut self) {
        if !self.small.is_empty() {
            self.parts.push(self.small.split().freeze());
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        self.end_small();
        self.parts
    }
}

/// Receives the body, passing each frame downstream as it arrives.
async fn receive(body: Body, len: u64, mut downstream: Option<Frames>) -> Result<Vec<Bytes>, ApiError> {
    async fn abort(downstream: &Option<Frames>, e: ApiError) -> Result<Vec<Bytes>, ApiError> {
        if let Some(tx) = downstream {
            let _ = tx.send(Err(std::io::Error::other("upstream aborted the write"))).await;
        }
        Err(e)
    }
    let mut data = Parts::default();
    let mut received = 0u64;
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return abort(&downstream, invalid(format!("reading the body: {e}"))).await,
        };
        received += frame.len() as u64;
        if received > len {
            return abort(&downstream, invalid("body longer than its Content-Length")).await;
        }
        data.push(&frame);
        if let Some(tx) = &downstream {
            if tx.send(Ok(frame)).await.is_err() {
                downstream = None; // it failed; its task carries the error
            }
        }
    }
    if received != len {
        return abort(&downstream, invalid("body shorter than its Content-Length")).await;
    }
    Ok(data.finish())
}

/// Slowest average pace a write body may arrive at, after [`BODY_GRACE`].
const BODY_MIN_BYTES_PER_SEC: u64 = 2 << 20;
/// Time every write body gets on top of its length at the slowest pace.
const BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a write body of `len` bytes may take to arrive: 42 s for 64 MiB.
fn body_deadline(len: u64) -> std::time::Duration {
    BODY_GRACE + std::time::Duration::from_millis(len.saturating_mul(1000) / BODY_MIN_BYTES_PER_SEC)
}

/// [`receive`], failed (temporarily: the client may retry) if the body
/// takes longer than `deadline`; dropping the downstream feed aborts the
/// forwarded copy too.
async fn receive_within(deadline: std::time::Duration, body: Body, len: u64, downstream: Option<Frames>) -> Result<Vec<Bytes>, ApiError> {
    match tokio::time::timeout(deadline, receive(body, len, downstream)).await {
        Ok(received) => received,
        Err(_) => {
            let min_kib = BODY_MIN_BYTES_PER_SEC >> 10;
            let why = format!("a body of {len} bytes did not arrive within {} ms (the slowest pace taken is {min_kib} KiB/s)", deadline.as_millis());
            Err(ApiError::new(ErrorKind::EAGAIN, why))
        }
    }
}

/// `PUT /v1/chunks/{handle}/data?version=V&offset=O`
pub async fn write(
    State(n): State<Arc<Node>>,
    ApiPath(h): ApiPath<u64>,
    ApiQuery(q): ApiQuery<DataQuery>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    n.serving()?;
    let _load = InFlight::new(&n.in_flight);
    let handle = ChunkHandle(h);
    // Who may write, and where to: before the body is read or the disk touched.
    caller.may_write(&n, handle, q.version)?;
    let chain = parse_forward(&headers)?;
    if let Err(refused) = n.peers.check(&chain, REFRESH_WAIT).await {
        return refused_chain(&n, handle, q.version, refused).await;
    }
    let len = content_length(&headers)?;
    if len > n.max_write_bytes {
        return Err(ApiError::new(ErrorKind::EMSGSIZE, format!("a write of {len} bytes is over the limit of {}", n.max_write_bytes)));
    }
    // Refuse before receiving anything: unknown chunk, old version, out of range.
    let Some(info) = n.store.info(handle) else {
        return Err(ApiError::new(ErrorKind::ENOENT, format!("no replica of chunk {handle}")));
    };
    if info.version != q.version {
        return Err(ApiError::new(ErrorKind::ESTALE, format!("replica is at version {}, the write names {}", info.version, q.version)));
    }
    if q.offset.checked_add(len).is_none_or(|end| end > info.chunk_size) {
        return Err(invalid(format!("{len} bytes at offset {} do not fit a chunk of {}", q.offset, info.chunk_size)));
    }
    let crcs = parse_checksums(&headers, len)?;
    let _budget = n.write_budget.acquire_many(len.div_ceil(1 << 20).max(1) as u32).await.map_err(|_| ApiError::new(ErrorKind::EIO, "shutting down"))?;
    let crc_text = headers.get(HEADER_CHECKSUMS).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (tx, remote) = match chain.is_empty() {
        true => (None, None),
        false => {
            let (tx, task) = forward(&n, &chain, handle, q, len, &crc_text, caller.token.as_deref().unwrap_or(""));
            (Some(tx), Some(task))
        }
    };
    // Whoever holds the write budget must send at a useful pace: a client
    // trickling a large body would otherwise keep others' writes waiting
    // for as long as it likes (the idle timeout only catches near-silence).
    let data = receive_within(body_deadline(len), body, len, tx).await?;
    let store = n.store.clone();
    let local = blocking(move || {
        let parts: Vec<&[u8]> = data.iter().map(|f| &f[..]).collect();
        store.write_body(handle, q.version, q.offset, chunk_store::Body::new(&parts), Some(&crcs))
    });
    let (local, remote) = match remote {
        Some(task) => {
            let (l, r) = tokio::join!(local, task);
            let crashed = |e: tokio::task::JoinError| Err(Downstream { error: ApiError::new(ErrorKind::EIO, e.to_string()), blame: Blame::Next });
            (l, r.unwrap_or_else(crashed))
        }
        None => (local.await, Ok(())),
    };
    if let Err(e) = local {
        if matches!(e, ChunkError::Corrupt { .. }) {
            // A partial block merged with damaged bytes: this replica is bad,
            // not the write; set it aside so the retry gets a lease without it.
            quarantine_and_report(&n, handle).await;
        }
        return Err(chunk_error(e));
    }
    if let Err(Downstream { error, blame }) = remote {
        let reported = match blame {
            // The replicas now differ: have the master drop the failed one, so
            // the client's retry gets a new lease (and version) without it.
            Blame::Next => {
                report_downstream(&n, handle, q.version, &chain[0]).await;
                true
            }
            Blame::Further => true,
            Blame::Nobody => false,
        };
        let mut answer = error.into_response();
        if reported {
            answer.headers_mut().insert(HEADER_REPLICA_REPORTED, HeaderValue::from_static("1"));
        }
        return Ok(answer);
    }
    n.bytes_written.fetch_add(len, Ordering::Relaxed);
    Ok(Json(Done {}).into_response())
}

/// `GET /v1/chunks/{handle}/data?version=V&offset=O&length=L`: the bytes,
/// with their checksums in a header for the client to check on arrival.
pub async fn read(State(n): State<Arc<Node>>, ApiPath(h): ApiPath<u64>, ApiQuery(q): ApiQuery<DataQuery>, caller: Caller) -> Result<Response, ApiError> {
    n.serving()?;
    let _load = InFlight::new(&n.in_flight);
    let handle = ChunkHandle(h);
    caller.may_read(&n, handle, q.version)?;
    let length = q.length.unwrap_or(n.max_write_bytes);
    if length > n.max_write_bytes {
        return Err(invalid(format!("a read of {length} bytes is over the limit of {}", n.max_write_bytes)));
    }
    let permit = super::read_budget::reserve(&n.read_budget, length).await?;
    let store = n.store.clone();
    let read = match store.read_cached(handle, q.version, q.offset, length) {
        Some(done) => done,
        None => blocking(move || store.read(handle, q.version, q.offset, length)).await,
    };
    match read {
        Ok(data) => {
            n.bytes_read.fetch_add(data.len() as u64, Ordering::Relaxed);
            let crcs = HeaderValue::from_str(&checksum_header(&data)).unwrap_or(HeaderValue::from_static(""));
            let headers =
                [(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")), (header::HeaderName::from_static(HEADER_CHECKSUMS), crcs)];
            Ok((headers, super::read_budget::hold(data, permit)).into_response())
        }
        Err(e @ ChunkError::Corrupt { .. }) => {
            quarantine_and_report(&n, handle).await;
            Err(chunk_error(e))
        }
        Err(e) => Err(chunk_error(e)),
    }
}

/// A chain naming a node that is not a registered chunkserver: a stranger
/// is refused (403); a node gone since the writer's lease was granted has
/// failed, as if unreachable: it is reported, so the retry gets a lease
/// without it. Nothing is sent to either.
async fn refused_chain(n: &Arc<Node>, handle: ChunkHandle, version: ChunkVersion, refused: NotPeer) -> Result<Response, ApiError> {
    let NotPeer::Gone(address) = refused else { return Err(refused.into_error()) };
    report_downstream(n, handle, version, &address).await;
    let mut answer = NotPeer::Gone(address).into_error().into_response();
    answer.headers_mut().insert(HEADER_REPLICA_REPORTED, HeaderValue::from_static("1"));
    Ok(answer)
}

/// Tells the master that the next replica of a write failed.
async fn report_downstream(n: &Arc<Node>, handle: ChunkHandle, version: ChunkVersion, address: &str) {
    tracing::warn!(chunk = %handle, replica = address, "forwarding a write failed; reporting the replica");
    let address = Some(address.to_string());
    let bad = BadReplica { handle, node_id: None, address, corrupt: false, reporter_version: Some(version), token: None };
    if let Err(e) = report_bad(n, &bad).await {
        tracing::warn!(chunk = %handle, error = %e, "could not report a failed replica");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_body_gets_its_grace_plus_its_length_at_the_slowest_pace() {
        assert_eq!(body_deadline(0), BODY_GRACE);
        assert_eq!(body_deadline(64 << 20), std::time::Duration::from_secs(42));
        assert!(body_deadline(u64::MAX) > body_deadline(64 << 20), "no overflow");
    }

    #[tokio::test]
    async fn a_body_trickled_past_its_deadline_fails_and_stops_the_forwarded_copy() {
        // 64 KiB in 1 KiB frames every 20 ms: steady (never idle), but slow.
        let frames = futures::stream::unfold(0, |i| async move {
            (i < 64).then_some(())?;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 1024])), i + 1))
        });
        let (tx, mut rx) = mpsc::channel(256);
        let deadline = std::time::Duration::from_millis(200);
        let e = receive_within(deadline, Body::from_stream(frames), 64 << 10, Some(tx)).await.unwrap_err();
        assert_eq!(e.0.error, ErrorKind::EAGAIN, "{}", e.0.message);
        let mut forwarded = 0;
        while let Some(frame) = rx.recv().await {
            forwarded += frame.map(|f| f.len()).unwrap_or(0);
        }
        assert!(forwarded < 64 << 10, "the downstream feed ended early ({forwarded} bytes)");
        // The same body at full speed passes.
        let whole = futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 1024]))));
        assert_eq!(receive_within(deadline, Body::from_stream(whole), 64 << 10, None).await.unwrap().concat().len(), 64 << 10);
    }

    #[test]
    fn small_frames_are_gathered_and_order_is_kept() {
        let whole: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        // One-byte frames, then a large one, then mid-sized ones.
        let mut cuts: Vec<usize> = (1..=5000).collect();
        cuts.extend([100_000, 110_000, 120_000, 200_000]);
        let mut parts = Parts::default();
        let mut from = 0;
        for cut in cuts {
            parts.push(&Bytes::copy_from_slice(&whole[from..cut]));
            from = cut;
        }
        let parts = parts.finish();
        assert_eq!(parts.concat(), whole);
        assert!(parts.len() <= 2 * whole.len() / SMALL_FRAME_BYTES + 1, "{} parts", parts.len());
    }
}
