//! Open files: a writer that buffers and streams pieces through their
//! chunks' pipelines, several in flight, and a reader with read-ahead for
//! sequential reads. Both keep their memory bounded by the client's config.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use dfs_proto::wire::chunks::WrittenChunk;
use dfs_proto::wire::namespace::Attr;
use dfs_proto::ErrorKind;
use tokio::task::JoinSet;

use crate::client::Client;
use crate::data::split_write;
use crate::error::ClientError;
use crate::request_id::{self, with_request_id, RequestId};

/// Writes to one file. Bytes are buffered up to a piece, then sent while
/// the caller goes on; `flush` waits for all of them and commits the new
/// length at the master, `fsync` also makes every replica sync to disk.
/// Nothing is visible to readers before `flush` (or `close`). `close` (and
/// `flush_durable`) first syncs, on every replica, the chunks written since
/// the last sync, unless the client's `sync_on_close` is off.
pub struct FileWriter {
    client: Client,
    attr: Attr,
    /// Where the next `write` goes.
    pos: u64,
    /// Buffered bytes, which start at `buf_at`.
    buf: BytesMut,
    buf_at: u64,
    inflight: JoinSet<Result<WrittenChunk, ClientError>>,
    /// Byte ranges in flight, so an overlapping write waits for them.
    inflight_ranges: Vec<(u64, u64)>,
    written: Vec<WrittenChunk>,
    /// End of the furthest byte written since the last commit.
    end: u64,
    failed: Option<ClientError>,
    /// Indices of the chunks written since the last sync: only these are
    /// synced at close (a file appended to syncs just its tail).
    unsynced: BTreeSet<u64>,
    sync_on_close: bool,
    /// The id on every request of this writer: its writes are one operation.
    request_id: RequestId,
}

impl FileWriter {
    pub(crate) fn new(client: Client, attr: Attr, pos: u64) -> Self {
        FileWriter {
            attr,
            pos,
            buf: BytesMut::new(),
            buf_at: pos,
            inflight: JoinSet::new(),
            inflight_ranges: Vec::new(),
            written: Vec::new(),
            end: 0,
            failed: None,
            unsynced: BTreeSet::new(),
            sync_on_close: client.config().sync_on_close,
            client,
            request_id: request_id::for_operation(),
        }
    }

    /// Whether `close` makes the written chunks durable (the client's
    /// `sync_on_close` unless set here).
    pub fn set_sync_on_close(&mut self, on: bool) {
        self.sync_on_close = on;
    }

    pub fn attr(&self) -> &Attr {
        &self.attr
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves where the next `write` goes.
    pub async fn seek(&mut self, pos: u64) -> Result<(), ClientError> {
        if pos != self.buf_at + self.buf.len() as u64 {
            self.send_buffer().await?;
            self.buf_at = pos;
        }
        self.pos = pos;
        Ok(())
    }

    /// Writes at the current position and moves past the bytes.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.write_at(self.pos, data).await?;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Like `write`, without copying when `data` starts a piece of its own.
    pub async fn write_bytes(&mut self, data: Bytes) -> Result<(), ClientError> {
        let piece = self.client.config().write_piece_bytes as usize;
        let sequential = self.pos == self.buf_at + self.buf.len() as u64;
        if !(self.buf.is_empty() && sequential && data.len() >= piece) {
            return self.write(&data).await;
        }
        self.check_end(self.pos, data.len())?;
        let whole = data.len() / piece * piece;
        self.end = self.end.max(self.pos + whole as u64);
        self.send_data(self.pos, data.slice(..whole)).await?;
        self.pos += whole as u64;
        self.buf_at = self.pos;
        self.write(&data[whole..]).await
    }

    fn check_end(&self, offset: u64, len: usize) -> Result<u64, ClientError> {
        offset
            .checked_add(len as u64)
            .filter(|e| *e <= dfs_proto::wire::namespace::FILE_SIZE_MAX_BYTES)
            .ok_or_else(|| ClientError::new(ErrorKind::EFBIG, "write past the largest file size"))
    }

    /// Writes at `offset`; sequential writes are gathered into pieces.
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), ClientError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let end = self.check_end(offset, data.len())?;
        if offset != self.buf_at + self.buf.len() as u64 {
            self.send_buffer().await?;
            self.buf_at = offset;
        }
        self.buf.extend_from_slice(data);
        self.end = self.end.max(end);
        let piece = self.client.config().write_piece_bytes;
        while self.buf.len() as u64 >= piece {
            self.send_pieces(piece).await?;
        }
        Ok(())
    }

    /// Sends whole pieces from the front of the buffer (cut at chunk
    /// boundaries), keeping at most `pieces_in_flight` in flight.
    async fn send_pieces(&mut self, upto: u64) -> Result<(), ClientError> {
        let n = (upto as usize).min(self.buf.len());
        if n == 0 {
            return Ok(());
        }
        let data = self.buf.split_to(n).freeze();
        let at = self.buf_at;
        self.buf_at += n as u64;
        self.send_data(at, data).await
    }

    /// Sends `data` (at file offset `at`) as pieces.
    async fn send_data(&mut self, at: u64, data: Bytes) -> Result<(), ClientError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pieces = split_write(self.attr.chunk_size_bytes, self.client.config().write_piece_bytes, at, data)?;
        for p in pieces {
            let range = (self.attr.chunk_size_bytes * p.index + p.offset, p.data.len() as u64);
            let overlaps = self.inflight_ranges.iter().any(|(s, l)| range.0 < s + l && *s < range.0 + range.1);
            if overlaps {
                // Two writes to the same bytes must land in order.
                self.drain().await?;
            }
            while self.inflight.len() >= self.client.config().pieces_in_flight.max(1) {
                self.join_one().await?;
            }
            self.inflight_ranges.push(range);
            let (client, inode) = (self.client.clone(), self.attr.inode);
            // The piece acts for the user the write does (a mount's caller).
            let piece = crate::auth::carry(async move { client.write_piece(inode, p).await });
            self.inflight.spawn(with_request_id(self.request_id.clone(), piece));
        }
        Ok(())
    }

    async fn send_buffer(&mut self) -> Result<(), ClientError> {
        self.send_pieces(self.buf.len() as u64).await
    }

    async fn join_one(&mut self) -> Result<(), ClientError> {
        let Some(joined) = self.inflight.join_next().await else { return Ok(()) };
        let result = joined.map_err(|e| ClientError::new(ErrorKind::EIO, format!("write task failed: {e}"))).and_then(|r| r);
        match result {
            Ok(c) => {
                self.unsynced.insert(c.index);
                self.written.push(c);
                if self.inflight.is_empty() {
                    self.inflight_ranges.clear();
                }
                Ok(())
            }
            Err(e) => {
                // Later writes must not look successful after a lost one.
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn drain(&mut self) -> Result<(), ClientError> {
        while !self.inflight.is_empty() {
            self.join_one().await?;
        }
        self.inflight_ranges.clear();
        Ok(())
    }

    /// Sends everything buffered, waits until every replica has it, and
    /// commits the file's new length: then other clients see the bytes.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.send_all().await?;
        self.commit().await
    }

    /// `flush`, with the chunks written since the last sync made durable on
    /// every replica before the length is committed: a reader who sees
    /// the new length sees bytes that survive a power cut.
    pub async fn flush_durable(&mut self) -> Result<(), ClientError> {
        self.send_all().await?;
        self.sync_written().await?;
        self.commit().await
    }

    /// Sends everything buffered and waits until every replica has it.
    async fn send_all(&mut self) -> Result<(), ClientError> {
        self.send_buffer().await?;
        self.drain().await?;
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Syncs the chunks written since the last sync on their replicas.
    async fn sync_written(&mut self) -> Result<(), ClientError> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        with_request_id(self.request_id.clone(), self.client.sync_chunks(self.attr.inode, &self.unsynced)).await?;
        self.unsynced.clear();
        Ok(())
    }

    /// Commits the new length, if anything was written since the last commit.
    async fn commit(&mut self) -> Result<(), ClientError> {
        if self.written.is_empty() {
            return Ok(());
        }
        let mut chunks = std::mem::take(&mut self.written);
        chunks.sort_by_key(|c| c.index);
        chunks.dedup();
        self.attr = with_request_id(self.request_id.clone(), self.client.master().commit_length(self.attr.inode, self.end, chunks)).await?;
        // The next commit covers only what is written after this one (a
        // truncate in between must not be undone by an old end).
        self.end = 0;
        Ok(())
    }

    /// `flush`, then every replica of the file syncs to disk.
    pub async fn fsync(&mut self) -> Result<(), ClientError> {
        self.flush().await?;
        with_request_id(self.request_id.clone(), self.client.fsync(&self.attr)).await?;
        self.unsynced.clear();
        Ok(())
    }

    /// Flushes (durably unless `sync_on_close` is off) and returns the
    /// file's attributes after the writes.
    pub async fn close(mut self) -> Result<Attr, ClientError> {
        if self.sync_on_close {
            self.flush_durable().await?;
        } else {
            self.flush().await?;
        }
        Ok(self.attr.clone())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() || !self.inflight.is_empty() {
            tracing::warn!(inode = %self.attr.inode, "a file writer was dropped without flush: its last writes are lost");
        }
    }
}

/// A piece of read-ahead: fetching, or fetched.
enum Tile {
    Pending(tokio::task::JoinHandle<Result<Bytes, ClientError>>),
    Ready(Bytes),
}

/// Reads one file. Sequential reads are served from pieces fetched ahead
/// (`readahead_pieces` of `read_piece_bytes`); a read elsewhere drops the
/// read-ahead and fetches just what was asked.
pub struct FileReader {
    client: Client,
    attr: Attr,
    pos: u64,
    /// Where a read continuing the last one starts.
    seq_next: u64,
    /// Read-ahead pieces by their start offset in the file.
    tiles: BTreeMap<u64, Tile>,
    /// The id on every request of this reader: its reads are one operation.
    request_id: RequestId,
    /// No read-ahead at or past this offset (the end of the file unless
    /// [`FileReader::read_until`] says less).
    ahead_limit: u64,
}

impl FileReader {
    pub(crate) fn new(client: Client, attr: Attr) -> Self {
        FileReader { client, attr, pos: 0, seq_next: 0, tiles: BTreeMap::new(), request_id: request_id::for_operation(), ahead_limit: u64::MAX }
    }

    /// Nothing at or past `end` will be read: read-ahead stops there (a
    /// ranged read, such as a WebHDFS OPEN with a length, fetches no more
    /// than its range).
    pub fn read_until(&mut self, end: u64) {
        self.ahead_limit = end;
    }

    pub fn attr(&self) -> &Attr {
        &self.attr
    }

    /// Takes newer attributes (the file grew); read-ahead is dropped.
    pub fn refresh(&mut self, attr: Attr) {
        self.drop_tiles();
        self.client.forget_file(attr.inode);
        self.attr = attr;
    }

    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads up to `len` bytes at the position and moves past them; an
    /// empty answer means the end of the file.
    pub async fn read(&mut self, len: u64) -> Result<Bytes, ClientError> {
        let data = self.read_at(self.pos, len).await?;
        self.pos += data.len() as u64;
        Ok(data)
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    pub async fn read_at(&mut self, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        let end = offset.saturating_add(len).min(self.attr.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        if offset != self.seq_next && !self.in_window(offset) {
            self.drop_tiles();
            self.seq_next = end;
            return with_request_id(self.request_id.clone(), self.client.read_at(&self.attr, offset, end - offset)).await;
        }
        self.seq_next = end;
        let result = self.read_tiles(offset, end).await;
        if result.is_err() {
            self.drop_tiles();
        }
        result
    }

    /// Serves a read that does not continue this stream on the calling
    /// thread, when [`Client::read_now`] can; `None` means: use `read_at`.
    /// Must not be called from a runtime thread (it blocks).
    pub fn read_now(&mut self, offset: u64, len: u64) -> Option<Bytes> {
        let end = offset.saturating_add(len).min(self.attr.size);
        if offset >= end {
            return Some(Bytes::new());
        }
        if offset == self.seq_next || self.in_window(offset) {
            return None;
        }
        let data = request_id::sync_scope(self.request_id.clone(), || self.client.read_now(&self.attr, offset, end - offset))?;
        self.drop_tiles();
        self.seq_next = end;
        Some(data)
    }

    /// Serves `offset..end` from read-ahead pieces, starting the ones
    /// missing and the next few after `end`.
    async fn read_tiles(&mut self, offset: u64, end: u64) -> Result<Bytes, ClientError> {
        // Pieces before the one ahead of this read are done with (one is
        // kept, for reads that arrive slightly out of order).
        let first = self.tile_at(offset).0;
        let keep_from = self.tile_at(first.saturating_sub(1)).0.min(first);
        self.tiles.retain(|start, _| *start >= keep_from);
        let mut at = first;
        let mut ahead = 0;
        let limit = self.attr.size.min(self.ahead_limit.max(end));
        while at < limit && (at < end || ahead < self.client.config().readahead_pieces) {
            let (start, len) = self.tile_at(at);
            if !self.tiles.contains_key(&start) {
                let (client, attr) = (self.client.clone(), self.attr.clone());
                let read = crate::auth::carry(async move { client.read_at(&attr, start, len).await });
                let task = tokio::spawn(with_request_id(self.request_id.clone(), read));
                self.tiles.insert(start, Tile::Pending(task));
            }
            ahead += (start >= end) as usize;
            at = start + len;
        }
        let (start, len) = self.tile_at(offset);
        if end <= start + len {
            // Within one piece (the usual case for piece-sized reads): no copy.
            let bytes = self.tile_bytes(start).await?;
            let (from, to) = ((offset - start) as usize, ((end - start) as usize).min(bytes.len()));
            return Ok(bytes.slice(from.min(to)..to));
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        let mut at = offset;
        while at < end {
            let (start, len) = self.tile_at(at);
            let bytes = self.tile_bytes(start).await?;
            let from = (at - start) as usize;
            let to = ((end - start).min(len) as usize).min(bytes.len());
            if from >= to {
                return Err(ClientError::new(ErrorKind::EIO, "short read-ahead piece"));
            }
            out.extend_from_slice(&bytes[from..to]);
            at = start + to as u64;
        }
        Ok(out.freeze())
    }

    async fn tile_bytes(&mut self, start: u64) -> Result<Bytes, ClientError> {
        let tile = self.tiles.remove(&start).ok_or_else(|| ClientError::new(ErrorKind::EIO, "read-ahead piece missing"))?;
        let bytes = match tile {
            Tile::Ready(b) => b,
            Tile::Pending(task) => task.await.map_err(|e| ClientError::new(ErrorKind::EIO, format!("read task failed: {e}")))??,
        };
        self.tiles.insert(start, Tile::Ready(bytes.clone()));
        Ok(bytes)
    }

    /// The read-ahead piece holding file offset `at`: pieces tile each
    /// chunk from its start, so none crosses a chunk boundary.
    fn tile_at(&self, at: u64) -> (u64, u64) {
        let cs = self.attr.chunk_size_bytes.max(1);
        let p = self.client.config().read_piece_bytes.clamp(1, cs);
        let chunk_start = at - at % cs;
        let start = chunk_start + (at - chunk_start) / p * p;
        let len = p.min(chunk_start + cs - start).min(self.attr.size.saturating_sub(start));
        (start, len)
    }

    /// Whether `offset` falls in the read-ahead window: concurrent reads
    /// of one stream (the kernel's read-ahead) may arrive out of order.
    fn in_window(&self, offset: u64) -> bool {
        match (self.tiles.first_key_value(), self.tiles.last_key_value()) {
            (Some((first, _)), Some((last, _))) => *first <= offset && offset < last + self.client.config().read_piece_bytes,
            _ => false,
        }
    }

    fn drop_tiles(&mut self) {
        for (_, tile) in std::mem::take(&mut self.tiles) {
            if let Tile::Pending(task) = tile {
                task.abort();
            }
        }
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        self.drop_tiles();
    }
}
