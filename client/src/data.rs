//! The data path as a client sees it. Writes are cut at chunk boundaries
//! and into pieces; each piece goes to the chunk's primary with its
//! checksums and the chain of secondaries, several pieces in flight. Reads
//! take each piece from a current replica, check the checksums that come
//! with it, and fail over to the next replica on any error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_common::wire::chunks::{checksum_header, ChunkLocation, ReplicaAddr, WriteLease, WrittenChunk, HEADER_CHECKSUMS, HEADER_FORWARD};
use dfs_common::wire::namespace::Attr;
use dfs_common::{ChunkHandle, ChunkVersion, ErrorKind, InodeId};
use futures::{stream, StreamExt, TryStreamExt};

use crate::error::{from_response, ClientError};
use crate::master::MasterClient;

/// Tuning of the data path.
#[derive(Clone, Copy, Debug)]
pub struct DataConfig {
    /// Largest piece of one write request (bytes).
    pub write_piece_bytes: u64,
    /// Largest piece of one read request (bytes).
    pub read_piece_bytes: u64,
    /// Pieces in flight at once, for writes and for reads.
    pub pieces_in_flight: usize,
    /// Attempts per piece before an error is returned.
    pub attempts: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { write_piece_bytes: 8 << 20, read_piece_bytes: 8 << 20, pieces_in_flight: 4, attempts: 6 }
    }
}

/// A lease as cached by the client, with when it was obtained.
#[derive(Clone)]
struct CachedLease {
    lease: WriteLease,
    obtained: Instant,
}

impl CachedLease {
    /// Leases are renewed at half their remaining time, well before expiry.
    fn fresh(&self) -> bool {
        self.obtained.elapsed() < Duration::from_millis(self.lease.lease_remaining_ms / 2)
    }
}

pub struct Client {
    pub master: MasterClient,
    http: reqwest::Client,
    config: DataConfig,
    leases: Mutex<HashMap<(InodeId, u64), CachedLease>>,
}

/// A write piece: chunk index, offset inside the chunk, bytes (cheap to clone).
#[derive(Clone)]
struct Piece {
    index: u64,
    offset: u64,
    data: Bytes,
}

impl Client {
    pub fn new(master_url: &str) -> Self {
        Self::with_config(master_url, DataConfig::default())
    }

    pub fn with_config(master_url: &str, config: DataConfig) -> Self {
        let http = reqwest::Client::builder().pool_max_idle_per_host(32).build().unwrap_or_default();
        Client { master: MasterClient::new(master_url, http.clone()), http, config, leases: Mutex::new(HashMap::new()) }
    }

    fn cached_lease(&self, key: (InodeId, u64)) -> Option<WriteLease> {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases.get(&key).filter(|c| c.fresh()).map(|c| c.lease.clone())
    }

    fn forget_lease(&self, key: (InodeId, u64)) {
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
    }

    async fn lease(&self, inode: InodeId, index: u64) -> Result<WriteLease, ClientError> {
        if let Some(l) = self.cached_lease((inode, index)) {
            return Ok(l);
        }
        let lease = self.master.lease(inode, index).await?;
        let cached = CachedLease { lease: lease.clone(), obtained: Instant::now() };
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).insert((inode, index), cached);
        Ok(lease)
    }

    /// Writes `data` at `offset` of the file, then commits the new length.
    /// Returns once every replica has the bytes in its OS.
    pub async fn write_at(&self, attr: &Attr, offset: u64, data: Bytes) -> Result<(), ClientError> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| ClientError::new(ErrorKind::EINVAL, "write past the largest offset"))?;
        if data.is_empty() {
            return Ok(());
        }
        let pieces = split_write(attr.chunk_size_bytes, self.config.write_piece_bytes, offset, data)?;
        // A truncate racing with the write can drop a chunk we wrote to; the
        // master then refuses the commit (ESTALE) and we write once more.
        for attempt in 0..2 {
            let written: Vec<(u64, ChunkHandle)> = stream::iter(pieces.iter().cloned().map(|p| self.write_piece(attr.inode, p)))
                .buffer_unordered(self.config.pieces_in_flight)
                .try_collect()
                .await?;
            let mut chunks: Vec<WrittenChunk> = written.into_iter().map(|(index, handle)| WrittenChunk { index, handle }).collect();
            chunks.sort_by_key(|c| c.index);
            chunks.dedup();
            match self.master.commit_length(attr.inode, end, chunks).await {
                Err(e) if e.kind == ErrorKind::ESTALE && attempt == 0 => self.forget_leases(attr.inode),
                other => return other.map(|_| ()),
            }
        }
        Err(ClientError::new(ErrorKind::ESTALE, "the file's chunks changed under the write twice"))
    }

    fn forget_leases(&self, inode: InodeId) {
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).retain(|(i, _), _| *i != inode);
    }

    /// Writes one piece; returns the chunk (index, handle) it went to.
    async fn write_piece(&self, inode: InodeId, p: Piece) -> Result<(u64, ChunkHandle), ClientError> {
        let crcs = checksum_header(&p.data);
        let mut last = ClientError::new(ErrorKind::EIO, "no attempt made");
        for attempt in 0..self.config.attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
            }
            let lease = match self.lease(inode, p.index).await {
                Ok(l) => l,
                Err(e) if e.is_temporary() => {
                    last = e;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match self.put_piece(&lease, &p, &crcs).await {
                Ok(()) => return Ok((p.index, lease.handle)),
                // A new lease (and version) may fix it; anything else will not.
                Err(e) if e.is_temporary() || e.kind == ErrorKind::ESTALE => {
                    self.forget_lease((inode, p.index));
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn put_piece(&self, lease: &WriteLease, p: &Piece, crcs: &str) -> Result<(), ClientError> {
        let chain: Vec<&str> = lease.secondaries.iter().map(|r| r.address.as_str()).collect();
        let url = format!("{}/v1/chunks/{}/data?version={}&offset={}", lease.primary.address, lease.handle, lease.version, p.offset);
        let resp = self
            .http
            .put(url)
            .header(HEADER_FORWARD, chain.join(","))
            .header(HEADER_CHECKSUMS, crcs)
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
        let located = if offset < end { self.locate_range(attr.inode, offset / cs, (end - 1) / cs).await? } else { HashMap::new() };
        let pieces = if offset < end { split_read(cs, self.config.read_piece_bytes, offset, end) } else { Vec::new() };
        Ok(stream::iter(pieces.into_iter().map(move |(index, off, n)| {
            let loc = located.get(&index).cloned();
            async move {
                match loc {
                    Some(loc) => self.read_piece(&loc, off, n).await,
                    None => Ok(Bytes::from(vec![0u8; n as usize])), // a hole: never written
                }
            }
        }))
        .buffered(self.config.pieces_in_flight))
    }

    /// Locations of chunks `first..=last` of a file, by index.
    async fn locate_range(&self, inode: InodeId, first: u64, last: u64) -> Result<HashMap<u64, ChunkLocation>, ClientError> {
        let mut located = HashMap::new();
        let mut next = first;
        while next <= last {
            let page = self.master.locate(inode, next, last - next + 1).await?;
            if page.chunks.is_empty() {
                break;
            }
            next = page.chunks.iter().map(|c| c.index + 1).max().unwrap_or(last + 1);
            located.extend(page.chunks.into_iter().map(|c| (c.index, c)));
        }
        Ok(located)
    }

    /// Reads one piece from the first replica that serves it whole and
    /// verified; bytes past the chunk's written length read as zeros.
    async fn read_piece(&self, loc: &ChunkLocation, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        let mut last = ClientError::new(ErrorKind::EIO, format!("chunk {} has no current replica", loc.handle));
        let start = (offset / self.config.read_piece_bytes.max(1)) as usize;
        for i in 0..loc.replicas.len() {
            let replica = &loc.replicas[(start + i) % loc.replicas.len()];
            match self.read_replica(replica, loc.handle, loc.version, offset, len).await {
                Ok(mut data) if (data.len() as u64) < len => {
                    let mut padded = Vec::with_capacity(len as usize);
                    padded.extend_from_slice(&data);
                    padded.resize(len as usize, 0);
                    data = Bytes::from(padded);
                    return Ok(data);
                }
                Ok(data) => return Ok(data),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Reads from one given replica and checks the bytes against the
    /// checksums sent with them.
    pub async fn read_replica(
        &self,
        replica: &ReplicaAddr,
        handle: ChunkHandle,
        version: ChunkVersion,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, ClientError> {
        let url = format!("{}/v1/chunks/{handle}/data?version={version}&offset={offset}&length={len}", replica.address);
        let resp = self.http.get(url).send().await?;
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

    /// Makes every replica of every chunk of the file sync to disk.
    pub async fn fsync(&self, attr: &Attr) -> Result<(), ClientError> {
        let chunks = attr.size.div_ceil(attr.chunk_size_bytes.max(1));
        let mut first = 0;
        while first < chunks {
            let page = self.master.locate(attr.inode, first, chunks - first).await?;
            if page.chunks.is_empty() {
                break;
            }
            first = page.chunks.iter().map(|c| c.index + 1).max().unwrap_or(chunks);
            let calls = page.chunks.iter().flat_map(|c| c.replicas.iter().map(move |r| self.fsync_replica(r, c.handle, c.version)));
            stream::iter(calls).buffer_unordered(8).try_collect::<Vec<()>>().await?;
        }
        Ok(())
    }

    async fn fsync_replica(&self, r: &ReplicaAddr, handle: ChunkHandle, version: ChunkVersion) -> Result<(), ClientError> {
        let url = format!("{}/v1/chunks/{handle}/fsync?version={version}", r.address);
        let resp = self.http.post(url).send().await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(from_response(&format!("fsync of chunk {handle} on {}", r.address), resp).await)
    }
}

/// Cuts a write at chunk boundaries and into pieces of at most `piece` bytes.
fn split_write(chunk_size: u64, piece: u64, offset: u64, data: Bytes) -> Result<Vec<Piece>, ClientError> {
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
