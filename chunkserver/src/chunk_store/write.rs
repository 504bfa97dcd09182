//! Writing a byte range into a replica: merging it with the stored bytes in
//! aligned pages, computing the touched blocks' CRCs, and updating the
//! metadata in place.
//!
//! The write goes out in segments of at most `SEGMENT_BLOCKS` blocks, one
//! aligned pwrite each. Per touched block, three cases (see `BlockCase`):
//! covered whole by the new bytes (CRC from the body's CRCs when they line
//! up, else hashed), an append behind the block's stored bytes (CRC extended
//! from the stored one, so only the partial 4 KiB page is read back), or a
//! merge with stored bytes (the block's stored bytes are read and checked
//! against their CRC first, so damage is reported rather than blessed with a
//! fresh CRC).
//!
//! Bytes at or past the old length that the write does not cover are zeros:
//! a gap between the old length and the write reads as zeros. Whole blocks
//! inside such a gap are not written (the file reads zeros there, as a hole
//! or as the zeros a previous partial page carried); only their CRCs are set.
//! (After a crash that kept bytes written past the length it kept, such a
//! gap fails its CRC: reported as damage, never served as zeros.)

use std::os::unix::fs::FileExt;

use dfs_proto::ChunkHandle;

use super::aligned::{align_down, align_up, is_multiple};
use super::body::Body;
use super::checksum::{extend, extend_with_zeros};
use super::error::ChunkError;
use super::meta::{crc_slot_offset, ChunkMeta};
use super::replica::ReplicaFiles;
use super::{BLOCK_BYTES, SEGMENT_BLOCKS};

/// A write that passed the version, range and body checks; `data` is not
/// empty.
pub(crate) struct WriteRequest<'a> {
    pub offset: u64,
    pub data: Body<'a>,
    pub body_crcs: Option<&'a [u32]>,
}

/// Positions of one write, in chunk bytes.
struct Span {
    offset: u64,
    end: u64,
    old_len: u64,
    new_len: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BlockCase {
    /// The new bytes cover all of the block's valid bytes after the write.
    Covered,
    /// The write starts inside the block at or past the old length.
    Append,
    /// Stored bytes of the block remain on both or either side of the write.
    Merge,
}

impl Span {
    fn block_start(b: u64) -> u64 {
        b * BLOCK_BYTES
    }

    /// End of block `b`'s valid bytes after the write.
    fn valid_end(&self, b: u64) -> u64 {
        (Self::block_start(b) + BLOCK_BYTES).min(self.new_len)
    }

    fn case(&self, b: u64) -> BlockCase {
        if self.offset <= Self::block_start(b) && self.end >= self.valid_end(b) {
            BlockCase::Covered
        } else if self.offset >= self.old_len {
            BlockCase::Append
        } else {
            BlockCase::Merge
        }
    }
}

/// Writes `req` into the replica and updates `meta` (in memory and on disk).
/// An I/O error part-way leaves the touched blocks unspecified; their CRCs
/// then fail, so a later read reports `Corrupt` instead of wrong bytes.
pub(crate) fn write_range(handle: ChunkHandle, files: &ReplicaFiles, meta: &mut ChunkMeta, req: &WriteRequest<'_>, buf: &mut [u8]) -> Result<(), ChunkError> {
    let end = req.offset + req.data.len() as u64;
    let old_len = meta.length_bytes;
    let span = Span { offset: req.offset, end, old_len, new_len: old_len.max(end) };
    let (first, last) = (req.offset / BLOCK_BYTES, (end - 1) / BLOCK_BYTES);
    // A segment checks a block it merges before writing anything, but a
    // merged last block in a later segment must be checked before the first
    // segment is written, or a refused write would leave half its bytes.
    let segment = Segment { handle, files, old_crcs: &meta.crcs, span: &span, req };
    if last - first >= SEGMENT_BLOCKS && span.case(last) == BlockCase::Merge {
        segment.check_stored_alone(last, buf)?;
    }
    let mut new_crcs = Vec::with_capacity((last - first + 1) as usize);
    let mut seg_first = first;
    while seg_first <= last {
        let seg_last = (seg_first + SEGMENT_BLOCKS - 1).min(last);
        segment.write(seg_first, seg_last, buf, &mut new_crcs)?;
        seg_first = seg_last + 1;
    }

    // The data is with the OS; now the metadata, first in memory.
    let gap_first = if req.offset > old_len { old_len / BLOCK_BYTES } else { first };
    for b in gap_first..first {
        let from = Span::block_start(b).max(old_len);
        meta.crcs[b as usize] = extend_with_zeros(meta.crcs[b as usize], Span::block_start(b) + BLOCK_BYTES - from);
    }
    meta.crcs[first as usize..=last as usize].copy_from_slice(&new_crcs);
    meta.length_bytes = span.new_len;

    // Then in place, with pwrite: the CRC slots, then (if the length grew)
    // the header. This is not atomic: a crash can persist any mix of old and
    // new data, CRCs and length. Every such mix either is a consistent state
    // or fails a block CRC (or the header CRC) and is reported as damage;
    // bytes are never served against a CRC that does not cover them. Going
    // through temp + rename for every write would cost an fsync per write;
    // `sync` makes a write durable when the caller needs it.
    let meta_file = &files.meta;
    let slots = meta.encode_crcs(gap_first as usize, last as usize + 1);
    meta_file.write_all_at(&slots, crc_slot_offset(gap_first as usize)).map_err(|e| meta_io_error(handle, e))?;
    if span.new_len != old_len {
        meta_file.write_all_at(&meta.encode_header(handle), 0).map_err(|e| meta_io_error(handle, e))?;
    }
    Ok(())
}

fn meta_io_error(handle: ChunkHandle, source: std::io::Error) -> ChunkError {
    ChunkError::io_context(format_args!("update metadata of chunk {handle}"), source)
}

/// What one segment's write needs to see.
struct Segment<'a> {
    handle: ChunkHandle,
    files: &'a ReplicaFiles,
    old_crcs: &'a [u32],
    span: &'a Span,
    req: &'a WriteRequest<'a>,
}

impl Segment<'_> {
    /// Writes the part of the request in blocks `b0..=b1` and appends their
    /// new CRCs to `crcs`. `buf` must hold `SEGMENT_BLOCKS` blocks.
    fn write(&self, b0: u64, b1: u64, buf: &mut [u8], crcs: &mut Vec<u32>) -> Result<(), ChunkError> {
        let span = self.span;
        let so = span.offset.max(Span::block_start(b0));
        let sd = span.end.min(Span::block_start(b1) + BLOCK_BYTES);
        let (first_case, last_case) = (span.case(b0), span.case(b1));
        // The buffer's window [r0, r1): the pages written, widened to whole
        // stored blocks that must be merged.
        let old_end_b1 = (Span::block_start(b1) + BLOCK_BYTES).min(span.old_len);
        let r0 = if first_case == BlockCase::Merge { Span::block_start(b0) } else { align_down(so) };
        let r1 = if last_case == BlockCase::Merge { align_up(sd.max(old_end_b1)) } else { align_up(sd) };
        let buf = &mut buf[..(r1 - r0) as usize];

        self.load_stored(buf, r0, r1, (so, sd), (first_case, last_case), (b0, b1))?;
        for b in [b0, b1] {
            if span.case(b) == BlockCase::Merge {
                self.check_stored_block(buf, r0, b)?;
            }
        }
        self.req.data.copy_to((so - span.offset) as usize, &mut buf[(so - r0) as usize..(sd - r0) as usize]);
        for b in b0..=b1 {
            crcs.push(self.block_crc(buf, r0, b));
        }
        let (w0, w1) = (align_down(so), align_up(sd));
        self.files
            .data
            .write_at(&buf[(w0 - r0) as usize..(w1 - r0) as usize], w0)
            .map_err(|e| ChunkError::io_context(format_args!("write chunk {}", self.handle), e))
    }

    /// Fills the window's positions outside the new bytes: stored bytes
    /// below the old length (all of a merged block's, to check its CRC),
    /// zeros from the old length on.
    fn load_stored(
        &self,
        buf: &mut [u8],
        r0: u64,
        r1: u64,
        (so, sd): (u64, u64),
        (first_case, last_case): (BlockCase, BlockCase),
        (b0, b1): (u64, u64),
    ) -> Result<(), ChunkError> {
        let old_len = self.span.old_len;
        let block_old = |b: u64| (Span::block_start(b), (Span::block_start(b) + BLOCK_BYTES).min(old_len));
        let head = if first_case == BlockCase::Merge { block_old(b0) } else { (r0, so.min(old_len)) };
        let tail = if last_case == BlockCase::Merge { block_old(b1) } else { (sd, r1.min(old_len)) };
        let mut reads: Vec<(u64, u64)> = [head, tail].into_iter().filter(|(a, b)| a < b).map(|(a, b)| (align_down(a), align_up(b))).collect();
        if let [(x0, x1), (y0, y1)] = reads[..] {
            if y0 <= x1 {
                reads = vec![(x0, x1.max(y1))];
            }
        }
        for (a, b) in reads {
            self.files
                .data
                .read_at(&mut buf[(a - r0) as usize..(b - r0) as usize], a)
                .map_err(|e| ChunkError::io_context(format_args!("read chunk {}", self.handle), e))?;
        }
        for (a, b) in [(r0.max(old_len), so), (sd.max(old_len), r1)] {
            if a < b {
                buf[(a - r0) as usize..(b - r0) as usize].fill(0);
            }
        }
        Ok(())
    }

    /// Reads block `b`'s stored bytes into `buf` and checks them.
    fn check_stored_alone(&self, b: u64, buf: &mut [u8]) -> Result<(), ChunkError> {
        let start = Span::block_start(b);
        let end = align_up((start + BLOCK_BYTES).min(self.span.old_len));
        let window = &mut buf[..(end - start) as usize];
        self.files.data.read_at(window, start).map_err(|e| ChunkError::io_context(format_args!("read chunk {}", self.handle), e))?;
        self.check_stored_block(window, start, b)
    }

    /// Checks a block that is about to be merged against its stored CRC.
    fn check_stored_block(&self, buf: &[u8], r0: u64, b: u64) -> Result<(), ChunkError> {
        let start = Span::block_start(b);
        let end = (start + BLOCK_BYTES).min(self.span.old_len);
        let stored = &buf[(start - r0) as usize..(end - r0) as usize];
        if crc32fast::hash(stored) != self.old_crcs[b as usize] {
            return Err(ChunkError::Corrupt { handle: self.handle, block: b });
        }
        Ok(())
    }

    /// Block `b`'s CRC after the write; the buffer holds its new bytes.
    fn block_crc(&self, buf: &[u8], r0: u64, b: u64) -> u32 {
        let span = self.span;
        let (start, valid_end) = (Span::block_start(b), span.valid_end(b));
        let new_bytes = |from: u64| &buf[(from - r0) as usize..(valid_end - r0) as usize];
        match span.case(b) {
            BlockCase::Covered => match self.req.body_crcs {
                // The body's pieces line up with blocks: piece i is exactly
                // this block's valid bytes (see `Covered`), already checked.
                Some(body) if is_multiple(span.offset, BLOCK_BYTES) => body[((start - span.offset) / BLOCK_BYTES) as usize],
                _ => crc32fast::hash(new_bytes(start)),
            },
            BlockCase::Append => {
                let stored = self.old_crcs[b as usize];
                let gap = span.offset - start.max(span.old_len);
                extend(extend_with_zeros(stored, gap), new_bytes(span.offset))
            }
            BlockCase::Merge => crc32fast::hash(new_bytes(start)),
        }
    }
}
