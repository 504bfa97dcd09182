//! The data path as a client sees it. Writes are cut at chunk boundaries
//! and into pieces; each piece goes to the chunk's primary with its
//! checksums and the chain of secondaries, several pieces in flight. Reads
//! take each piece from a current replica, check the checksums that come
//! with it, and fail over to the next replica on any error; locations come
//! from a cache that is dropped on errors. Every request to a chunkserver
//! carries the chunk token of its location or lease (`x-dfs-token`); one
//! refused is renewed through the master (`tokens.rs`, `retry.rs`), and
//! the id of the operation it is part of (`x-dfs-request-id`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::auth::unix_ms;
use dfs_proto::endpoint::chunkserver::{Fsync, ReadData, WriteData};
use dfs_proto::endpoint::{self, Endpoint};
use dfs_proto::wire::chunks::{checksum_header, ChunkLocation, DataQuery, ReplicaAddr, WriteLease, WrittenChunk, HEADER_CHECKSUMS, HEADER_FORWARD};
use dfs_proto::wire::namespace::{Attr, NodeRef, SetattrRequest};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, InodeId};
use futures::{stream, StreamExt, TryStreamExt};

use crate::client::complete;
pub use crate::client::{Client, DataConfig};
use crate::error::{from_response, ClientError};
use crate::locations::Known;
use crate::request_id::{self, with_request_id, HEADER_REQUEST_ID};
use crate::retry::{combine, Retry};

/// A write piece: chunk index, offset inside the chunk, bytes (cheap to clone).
#[derive(Clone)]
pub(crate) struct Piece {
    pub index: u64,
    pub offset: u64,
    pub data: Bytes,
}

impl Client {
    /// Writes `data` at `offset` of the file, then commits the new length.
    /// Returns once every replica has the bytes in its OS.
    pub async fn write_at(&self, attr: &Attr, offset: u64, data: Bytes) -> Result<(), ClientError> {
        request_id::operation(self.write_then_commit(attr, offset, data)).await
    }

    async fn write_then_commit(&self, attr: &Attr, offset: u64, data: Bytes) -> Result<(), ClientError> {
        let end = offset.checked_add(data.len() as u64).ok_or_else(|| ClientError::new(ErrorKind::EFBIG, "write past the largest offset"))?;
        if data.is_empty() {
            return Ok(());
        }
        let pieces = split_write(attr.chunk_size_bytes, self.config().write_piece_bytes, offset, data)?;
        // A truncate racing with the write can drop a chunk we wrote to; the
        // master then refuses the commit (ESTALE) and we write once more.
        for attempt in 0..2 {
            let chunks = self.write_pieces(attr.inode, pieces.iter().cloned()).await?;
            match self.master().commit_length(attr.inode, end, chunks).await {
                Err(e) if e.kind == ErrorKind::ESTALE && attempt == 0 => self.forget_file(attr.inode),
                other => return other.map(|_| ()),
            }
        }
        Err(ClientError::new(ErrorKind::ESTALE, "the file's chunks changed under the write twice"))
    }

    /// Sets the file's length. When it shrinks to the middle of a chunk, the
    /// rest of that chunk is zeroed on its replicas, so that bytes cut off
    /// never come back if the file grows again. The length is set first: a
    /// crash in between can leave old bytes past the end, never lose data
    /// the caller kept.
    pub async fn truncate(&self, attr: &Attr, size: u64) -> Result<Attr, ClientError> {
        request_id::operation(self.truncate_and_zero(attr, size)).await
    }

    async fn truncate_and_zero(&self, attr: &Attr, size: u64) -> Result<Attr, ClientError> {
        let req = SetattrRequest { node: NodeRef { path: None, inode: Some(attr.inode) }, size: Some(size), ..Default::default() };
        let new = self.master().setattr(&req).await?;
        let cs = attr.chunk_size_bytes.max(1);
        let tail_end = attr.size.min(size.div_ceil(cs) * cs);
        if size < tail_end && size % cs != 0 {
            let zeros = Bytes::from(vec![0u8; (tail_end - size) as usize]);
            let pieces = split_write(cs, self.config().write_piece_bytes, size, zeros)?;
            self.write_pieces(attr.inode, pieces.into_iter()).await?;
        }
        self.forget_file(attr.inode);
        Ok(new)
    }

    /// Writes pieces, several at once; returns the chunks written, in order.
    async fn write_pieces(&self, inode: InodeId, pieces: impl Iterator<Item = Piece>) -> Result<Vec<WrittenChunk>, ClientError> {
        let mut chunks: Vec<WrittenChunk> =
            stream::iter(pieces.map(|p| self.write_piece(inode, p))).buffer_unordered(self.config().pieces_in_flight).try_collect().await?;
        chunks.sort_by_key(|c| (c.index, std::cmp::Reverse(c.end)));
        chunks.dedup_by_key(|c| (c.index, c.handle));
        Ok(chunks)
    }

    /// Appends one record (at most a quarter chunk) to the file, atomically
    /// and at least once: the master reserves a range that no other record
    /// shares, and the record is written there, retried in place until every
    /// replica has it. Returns the record's offset. If this fails, the range
    /// stays padding (zeros) and the caller may append again.
    pub async fn append(&self, inode: InodeId, record: Bytes) -> Result<u64, ClientError> {
        request_id::operation(self.reserve_and_write(inode, record)).await
    }

    async fn reserve_and_write(&self, inode: InodeId, record: Bytes) -> Result<u64, ClientError> {
        let len = record.len() as u64;
        let reserved = self.master().append(inode, len).await?;
        let pieces = split_write(reserved.attr.chunk_size_bytes, self.config().write_piece_bytes, reserved.offset, record)?;
        // The reservation already counts the record in the file's length;
        // the commit records how far the chunk now holds written bytes.
        let chunks = self.write_pieces(inode, pieces.into_iter()).await?;
        self.master().commit_length(inode, reserved.offset + len, chunks).await?;
        Ok(reserved.offset)
    }

    /// Writes one piece, going back to the master for a new lease while a
    /// retry can help (a replica died: the master drops it and bumps the
    /// version on the others; a primary died: its lease must run out).
    pub(crate) async fn write_piece(&self, inode: InodeId, p: Piece) -> Result<WrittenChunk, ClientError> {
        let crcs = checksum_header(&p.data);
        let mut retry = Retry::new(Instant::now() + self.config().retry_for, Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let attempt = match self.lease(inode, p.index).await {
                Ok(lease) => match self.put_piece(&lease, &p, &crcs).await {
                    Ok(()) => Ok(lease.handle),
                    Err(e) => {
                        self.forget_lease(inode, p.index);
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            };
            match attempt {
                Ok(handle) => {
                    self.locations().forget(inode, p.index);
                    return Ok(WrittenChunk { index: p.index, handle, end: p.offset + p.data.len() as u64 });
                }
                Err(e) => {
                    let retryable = e.is_temporary() || e.kind == ErrorKind::ESTALE;
                    let Some(pause) = retry.after(&e, retryable, Instant::now()) else { return Err(e) };
                    tracing::debug!(inode = %inode, index = p.index, error = %e, "write piece failed; retrying with a new lease");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    async fn put_piece(&self, lease: &WriteLease, p: &Piece, crcs: &str) -> Result<(), ClientError> {
        let chain: Vec<&str> = lease.secondaries.iter().map(|r| r.address.as_str()).collect();
        let query = DataQuery { version: lease.version, offset: p.offset, length: None };
        let url = chunk_url::<WriteData>(&lease.primary.address, lease.handle, &query)?;
        let resp = self
            .http()
            .put(url)
            .header(HEADER_FORWARD, chain.join(","))
            .header(HEADER_CHECKSUMS, crcs)
            .header(HEADER_TOKEN, &lease.token)
            .header(HEADER_REQUEST_ID, request_id::for_operation().as_str())
            .body(p.data.clone())
            .send()
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(from_response(&format!("write to chunk {}", lease.handle), resp).await)
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    pub async fn read_at(&self, attr: &Attr, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        request_id::operation(self.read_range(attr, offset, len)).await
    }

    async fn read_range(&self, attr: &Attr, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        let (cs, end) = (attr.chunk_size_bytes.max(1), offset.saturating_add(len).min(attr.size));
        if offset < end && offset / cs == (end - 1) / cs && end - offset <= self.config().read_piece_bytes {
            // One piece (a small random read): no task of its own, less latency.
            return self.read_piece(attr.inode, offset / cs, offset % cs, end - offset).await;
        }
        let parts: Vec<Bytes> = self.read_stream(attr, offset, len).await?.try_collect().await?;
        if parts.len() <= 1 {
            return Ok(parts.into_iter().next().unwrap_or_default());
        }
        let mut out = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
        parts.iter().for_each(|p| out.extend_from_slice(p));
        Ok(Bytes::from(out))
    }

    /// The bytes `offset..offset+len` (clipped at the end of the file) as a
    /// stream of pieces in order, several fetched at once: for copying large
    /// ranges without holding them whole.
    pub async fn read_stream<'a>(
        &'a self,
        attr: &Attr,
        offset: u64,
        len: u64,
    ) -> Result<impl futures::Stream<Item = Result<Bytes, ClientError>> + 'a, ClientError> {
        let end = offset.saturating_add(len).min(attr.size);
        let cs = attr.chunk_size_bytes.max(1);
        let inode = attr.inode;
        // The stream is read later, maybe outside the operation under way.
        let id = request_id::for_operation();
        let pieces = if offset < end {
            // One call to the master for the whole range fills the cache.
            with_request_id(id.clone(), self.locate(inode, offset / cs, (end - 1) / cs)).await?;
            split_read(cs, self.config().read_piece_bytes, offset, end)
        } else {
            Vec::new()
        };
        let reads = pieces.into_iter().map(move |(index, off, n)| {
            let client = self.clone();
            on_own_task(with_request_id(id.clone(), async move { client.read_piece(inode, index, off, n).await }))
        });
        Ok(stream::iter(reads).buffered(self.config().pieces_in_flight))
    }

    /// What is known of chunks `first..=last`: from the cache when all are
    /// there, else from the master (absent chunks are holes).
    async fn locate(&self, inode: InodeId, first: u64, last: u64) -> Result<HashMap<u64, Known>, ClientError> {
        if let Some(known) = self.locations().get_range(inode, first, last, Instant::now()) {
            return Ok(known);
        }
        let mut found: HashMap<u64, Known> = (first..=last).map(|i| (i, Known::Hole)).collect();
        let mut next = first;
        while next <= last {
            let page = self.master().locate(inode, next, last - next + 1).await?;
            if page.chunks.is_empty() {
                break;
            }
            next = page.chunks.iter().map(|c| c.index + 1).max().unwrap_or(last + 1);
            found.extend(page.chunks.into_iter().filter(|c| c.index <= last).map(|c| (c.index, Known::At(c))));
        }
        self.locations().put(inode, &found, Instant::now(), unix_ms());
        Ok(found)
    }

    /// Reads one piece of one chunk. When no replica serves it, the cached
    /// location is dropped and the master asked again, with growing pauses,
    /// for up to `retry_for`: the chunk may have moved to a new version or
    /// new replicas, its chunkservers may be restarting, or the master may
    /// have just restarted and not yet heard from them (no replica listed).
    /// A refused token is renewed the same way, a few times (`retry.rs`).
    async fn read_piece(&self, inode: InodeId, index: u64, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        let mut retry = None;
        loop {
            let known = self.locate(inode, index, index).await?.remove(&index).unwrap_or(Known::Hole);
            let Known::At(loc) = known else {
                return Ok(Bytes::from(vec![0u8; len as usize])); // a hole: never written
            };
            match self.read_from_replicas(&loc, offset, len).await {
                Ok(data) => return Ok(data),
                Err(e) => {
                    self.locations().forget(inode, index);
                    let retry =
                        retry.get_or_insert_with(|| Retry::new(Instant::now() + self.config().retry_for, Duration::from_millis(20), Duration::from_secs(1)));
                    let Some(pause) = retry.after(&e, true, Instant::now()) else { return Err(e) };
                    tracing::debug!(chunk = %loc.handle, error = %e, "no replica served a read; asking the master again");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Reads from the first replica that serves the range whole and
    /// verified; bytes past the chunk's written length read as zeros.
    async fn read_from_replicas(&self, loc: &ChunkLocation, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        if self.config().local_reads {
            if let Some(data) = self.read_local(loc, offset, len).await {
                return Ok(data);
            }
        }
        let mut last = None;
        let start = self.replica_for(offset, loc.replicas.len());
        for i in 0..loc.replicas.len() {
            let replica = &loc.replicas[(start + i) % loc.replicas.len()];
            let failure = match self.read_replica(replica, loc, offset, len).await {
                Ok(data) => match complete(data, loc.length, offset, len) {
                    Some(whole) => return Ok(whole),
                    None => short_replica(loc, replica, offset, len),
                },
                Err(e) => e,
            };
            last = Some(combine(last, failure));
        }
        Err(last.unwrap_or_else(|| ClientError::new(ErrorKind::EIO, format!("chunk {} has no current replica", loc.handle))))
    }
}

/// The error of a replica that answered fewer committed bytes than asked.
fn short_replica(loc: &ChunkLocation, replica: &ReplicaAddr, offset: u64, len: u64) -> ClientError {
    let what = format!("chunk {} on {} is shorter than its committed {} bytes (asked {len} at {offset})", loc.handle, replica.address, loc.length);
    tracing::warn!("{what}");
    ClientError::new(ErrorKind::EIO, what)
}

impl Client {
    /// Reads a replica on this host through its passed descriptor (see
    /// `local.rs`), on the blocking pool; `None` when none serves the range
    /// as it is, and the read goes to the chunkservers.
    async fn read_local(&self, loc: &ChunkLocation, offset: u64, len: u64) -> Option<Bytes> {
        let (client, loc) = (self.clone(), loc.clone());
        let preferred = self.replica_for(offset, loc.replicas.len());
        let read = move || client.local_reads().read(client.blocking_http(), &loc, preferred, offset, len);
        tokio::task::spawn_blocking(read).await.ok().flatten()
    }

    /// Reads from one given replica of the chunk at `loc` (its handle,
    /// version and token) and checks the bytes against the checksums sent
    /// with them (end to end: the chunkserver verified its disk, this
    /// verifies the transfer).
    pub async fn read_replica(&self, replica: &ReplicaAddr, loc: &ChunkLocation, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        let (handle, version) = (loc.handle, loc.version);
        let url = chunk_url::<ReadData>(&replica.address, handle, &DataQuery { version, offset, length: Some(len) })?;
        let resp = self.http().get(url).header(HEADER_TOKEN, &loc.token).header(HEADER_REQUEST_ID, request_id::for_operation().as_str()).send().await?;
        if !resp.status().is_success() {
            return Err(from_response(&format!("read of chunk {handle} from {}", replica.address), resp).await);
        }
        let sent = resp.headers().get(HEADER_CHECKSUMS).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let data = resp.bytes().await?;
        if checksum_header(&data) != sent {
            return Err(ClientError::new(ErrorKind::EIO, format!("chunk {handle} from {}: checksum mismatch in transit", replica.address)));
        }
        Ok(data)
    }

    async fn fsync_replica(&self, r: &ReplicaAddr, handle: ChunkHandle, version: ChunkVersion, token: &str) -> Result<(), ClientError> {
        let url = chunk_url::<Fsync>(&r.address, handle, &DataQuery { version, offset: 0, length: None })?;
        let resp = self.http().post(url).header(HEADER_TOKEN, token).header(HEADER_REQUEST_ID, request_id::for_operation().as_str()).send().await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(from_response(&format!("fsync of chunk {handle} on {}", r.address), resp).await)
    }
}

/// Runs a piece's transfer as its own task (under the caller's request
/// id), so that pieces in flight check their CRCs on every core; the task
/// is aborted if the caller stops waiting.
async fn on_own_task<T, F>(f: F) -> Result<T, ClientError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, ClientError>> + Send + 'static,
{
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(request_id::carry(f)));
    (&mut task.0).await.map_err(|e| ClientError::new(ErrorKind::EIO, format!("transfer task failed: {e}")))?
}

/// Cuts a write at chunk boundaries and into pieces of at most `piece` bytes.
pub(crate) fn split_write(chunk_size: u64, piece: u64, offset: u64, data: Bytes) -> Result<Vec<Piece>, ClientError> {
    if chunk_size == 0 || piece == 0 {
        return Err(ClientError::new(ErrorKind::EINVAL, "chunk and piece sizes must be positive"));
    }
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < data.len() as u64 {
        let pos = offset + done;
        let in_chunk = pos % chunk_size;
        let n = (chunk_size - in_chunk).min(piece).min(data.len() as u64 - done);
        out.push(Piece { index: pos / chunk_size, offset: in_chunk, data: data.slice(done as usize..(done + n) as usize) });
        done += n;
    }
    Ok(out)
}

/// Cuts the byte range `offset..end` into (chunk index, offset in chunk, length).
fn split_read(chunk_size: u64, piece: u64, offset: u64, end: u64) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut pos = offset;
    while pos < end {
        let in_chunk = pos % chunk_size;
        let n = (chunk_size - in_chunk).min(piece).min(end - pos);
        out.push((pos / chunk_size, in_chunk, n));
        pos += n;
    }
    out
}

impl Client {
    /// Makes one replica of a chunk sync to disk, with a write token
    /// (`sync.rs` uses it for durable closes and fsyncs).
    pub(crate) async fn sync_replica(&self, r: &ReplicaAddr, handle: ChunkHandle, version: ChunkVersion, token: &str) -> Result<(), ClientError> {
        self.fsync_replica(r, handle, version, token).await
    }
}

/// The URL of a chunk endpoint on the chunkserver at `base`.
pub(crate) fn chunk_url<E: Endpoint<Path = ChunkHandle, Query = DataQuery>>(base: &str, handle: ChunkHandle, query: &DataQuery) -> Result<String, ClientError> {
    endpoint::url::<E>(base, &handle, query).map_err(|e| ClientError::new(ErrorKind::EINVAL, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_cut_at_chunks_and_pieces() {
        let data = Bytes::from(vec![1u8; 25]);
        let pieces = split_write(10, 4, 7, data).unwrap();
        let shape: Vec<(u64, u64, usize)> = pieces.iter().map(|p| (p.index, p.offset, p.data.len())).collect();
        assert_eq!(shape, [(0, 7, 3), (1, 0, 4), (1, 4, 4), (1, 8, 2), (2, 0, 4), (2, 4, 4), (2, 8, 2), (3, 0, 2)]);
        assert_eq!(split_read(10, 4, 7, 32), [(0, 7, 3), (1, 0, 4), (1, 4, 4), (1, 8, 2), (2, 0, 4), (2, 4, 4), (2, 8, 2), (3, 0, 2)]);
    }
}
