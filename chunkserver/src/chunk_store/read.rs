//! Reading a replica's blocks, each checked against its CRC before any of
//! its bytes leave this module.

use dfs_proto::ChunkHandle;

use super::aligned::{align_up, DataFile};
use super::error::ChunkError;
use super::meta::ChunkMeta;
use super::{BLOCK_BYTES, SEGMENT_BLOCKS};

/// Reads every block holding bytes of `start..end` (within the length, not
/// empty) in segments of `SEGMENT_BLOCKS` blocks, checks each block's valid
/// bytes against its CRC, and passes them to `visit(block_start, bytes)`.
/// Stops at the first block that fails. `buf` must hold a segment. With
/// `cached_only`, stops (returning false) where the page cache lacks data.
pub(crate) fn scan_verified(
    handle: ChunkHandle,
    data: &DataFile,
    meta: &ChunkMeta,
    (start, end): (u64, u64),
    buf: &mut [u8],
    cached_only: bool,
    mut visit: impl FnMut(u64, &[u8]),
) -> Result<bool, ChunkError> {
    debug_assert!(start < end && end <= meta.length_bytes);
    let (first, last) = (start / BLOCK_BYTES, (end - 1) / BLOCK_BYTES);
    let mut seg_first = first;
    while seg_first <= last {
        let seg_last = (seg_first + SEGMENT_BLOCKS - 1).min(last);
        let r0 = seg_first * BLOCK_BYTES;
        let r1 = align_up(((seg_last + 1) * BLOCK_BYTES).min(meta.length_bytes));
        let window = &mut buf[..(r1 - r0) as usize];
        let io = |e| ChunkError::io_context(format_args!("read chunk {handle}"), e);
        if cached_only {
            if !data.read_cached_at(window, r0).map_err(io)? {
                return Ok(false);
            }
        } else {
            data.read_at(window, r0).map_err(io)?;
        }
        for b in seg_first..=seg_last {
            let block_start = b * BLOCK_BYTES;
            let valid_end = (block_start + BLOCK_BYTES).min(meta.length_bytes);
            let bytes = &window[(block_start - r0) as usize..(valid_end - r0) as usize];
            if crc32fast::hash(bytes) != meta.crcs[b as usize] {
                return Err(ChunkError::Corrupt { handle, block: b });
            }
            visit(block_start, bytes);
        }
        seg_first = seg_last + 1;
    }
    Ok(true)
}

/// The bytes `offset..end` (within the length, not empty), every block they
/// touch verified; `None` if `cached_only` and the page cache lacks some.
pub(crate) fn read_range(
    handle: ChunkHandle,
    data: &DataFile,
    meta: &ChunkMeta,
    (offset, end): (u64, u64),
    buf: &mut [u8],
    cached_only: bool,
) -> Result<Option<Vec<u8>>, ChunkError> {
    let mut out = Vec::with_capacity((end - offset) as usize);
    let whole = scan_verified(handle, data, meta, (offset, end), buf, cached_only, |block_start, bytes| {
        let from = offset.max(block_start);
        let to = end.min(block_start + bytes.len() as u64);
        out.extend_from_slice(&bytes[(from - block_start) as usize..(to - block_start) as usize]);
    })?;
    Ok(whole.then_some(out))
}
