//! Start-up recovery of replicas that were written after their last sync.
//!
//! A crash (a power cut above all) can tear the writes made since a
//! replica's last sync: the in-place metadata update (new length, new CRC
//! slots) may reach the disk while some of the data it describes does not,
//! or the reverse. What it leaves is a replica whose last blocks fail their
//! CRCs. Those bytes were never promised to anyone (a writer that needs
//! them durable syncs), so, as HDFS does when it recovers a replica being
//! written, the replica is cut back to its first failing block and kept;
//! the master sees the shorter length in the next chunk report.
//!
//! Which failures are tears: any in blocks holding bytes written since the
//! last sync, in whatever order (pieces are written several at a time, and
//! the disk keeps them in any order), and a failing suffix of the replica.
//! A failing block wholly below the synced length with a sound block after
//! it is damage of bytes a sync made durable, not a tear: the replica is
//! quarantined, as before. The synced bytes of a partly filled block are
//! checked against the CRC saved at that sync (see `meta`).
//!
//! Only replicas whose length is past their synced length (or whose data
//! file is shorter than their length) are scanned: a replica synced since
//! its last write cannot be torn, so start-up reads no more than what was
//! written since the last syncs, not every replica.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use dfs_proto::ChunkHandle;

use super::aligned::{align_up, is_multiple};
use super::disk_layout::DiskLayout;
use super::error::ChunkError;
use super::meta::ChunkMeta;
use super::BLOCK_BYTES;

/// What a scan of a replica's blocks says about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every block with data matches its CRC.
    Sound,
    /// Torn writes: keep the first `keep_bytes`.
    Torn { keep_bytes: u64 },
    /// `block`, wholly synced, fails and a later block checks out: damage.
    Corrupt { block: u64 },
}

/// The decision, from the failing blocks (ascending, each below
/// `blocks_with_data`), the synced length and whether the bytes of its
/// last block below it still match the CRC saved at that sync.
pub(crate) fn judge(bad: &[u64], blocks_with_data: u64, synced_length: u64, synced_tail_ok: bool) -> Verdict {
    let Some(&first) = bad.first() else { return Verdict::Sound };
    // The first block holding bytes not covered by the last sync.
    let unsynced_from = synced_length / BLOCK_BYTES;
    // Ascending and distinct, so a bad suffix has exactly this many blocks.
    let suffix = bad.len() as u64 == blocks_with_data - first;
    if first < unsynced_from && !suffix {
        return Verdict::Corrupt { block: first };
    }
    let first_start = first * BLOCK_BYTES;
    // The synced bytes of a partly filled block survive an append torn
    // after them, though the block's slot now describes the torn bytes.
    let rescued = synced_length > first_start && synced_length <= first_start + BLOCK_BYTES && synced_tail_ok;
    Verdict::Torn { keep_bytes: if rescued { synced_length } else { first_start } }
}

/// Whether a replica may hold torn writes and must be scanned at start-up.
pub(crate) fn needs_scan(meta: &ChunkMeta, data_file_bytes: u64) -> bool {
    meta.length_bytes > meta.synced_length_bytes || data_file_bytes < meta.length_bytes
}

/// Reads every block with data (bytes past the end of the file read as
/// zeros) and judges the replica.
pub(crate) fn scan(data: &File, meta: &ChunkMeta) -> std::io::Result<Verdict> {
    let blocks = meta.length_bytes.div_ceil(BLOCK_BYTES);
    let mut buf = vec![0u8; BLOCK_BYTES as usize];
    let mut bad = Vec::new();
    let synced = meta.synced_length_bytes;
    let tail_block = (synced > 0).then(|| (synced - 1) / BLOCK_BYTES);
    let mut synced_tail_ok = false;
    for b in 0..blocks {
        let start = b * BLOCK_BYTES;
        let valid = ((start + BLOCK_BYTES).min(meta.length_bytes) - start) as usize;
        read_padded(data, &mut buf[..valid], start)?;
        if crc32fast::hash(&buf[..valid]) != meta.crcs[b as usize] {
            bad.push(b);
            if tail_block == Some(b) {
                synced_tail_ok = crc32fast::hash(&buf[..(synced - start) as usize]) == meta.synced_tail_crc;
            }
        }
    }
    Ok(judge(&bad, blocks, synced, synced_tail_ok))
}

/// Fills `buf` from `pos`; what lies past the end of the file is zeros.
fn read_padded(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

/// Cuts a torn replica back to `keep_bytes`, durably: the data file first
/// (zeros from `keep_bytes` on, whole pages, synced), then the metadata by
/// temp + fsync + rename. A crash in between leaves the old metadata over
/// the cut data, which the next start judges the same way.
pub(crate) fn truncate(layout: &DiskLayout, handle: ChunkHandle, meta: &mut ChunkMeta, keep_bytes: u64) -> Result<(), ChunkError> {
    let path = layout.data_path(handle);
    let cut = || -> std::io::Result<()> {
        let f = OpenOptions::new().write(true).open(&path)?;
        // Down to the byte (the kernel zeroes the rest of its page), then up
        // to whole pages again, as the store keeps its data files.
        f.set_len(keep_bytes)?;
        f.set_len(align_up(keep_bytes))?;
        f.sync_data()
    };
    cut().map_err(|e| ChunkError::io("truncate", &path, e))?;
    let kept_blocks = keep_bytes.div_ceil(BLOCK_BYTES) as usize;
    if keep_bytes == meta.synced_length_bytes && !is_multiple(keep_bytes, BLOCK_BYTES) {
        // Kept up to the synced length inside a block: its CRC is the one
        // saved at that sync (the slot describes the torn bytes).
        meta.crcs[kept_blocks - 1] = meta.synced_tail_crc;
    }
    meta.crcs[kept_blocks..].fill(0);
    meta.length_bytes = keep_bytes;
    // Every kept byte is on disk now (synced above), and so is what
    // describes it once the metadata is replaced. A dirty replica stays
    // dirty: writes it acknowledged may be gone, and the master must hear so.
    meta.mark_synced_keeping_dirty();
    layout.replace_meta(handle, &meta.encode(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u64 = BLOCK_BYTES;

    #[test]
    fn judge_tells_a_torn_tail_from_damage() {
        assert_eq!(judge(&[], 4, 0, false), Verdict::Sound);
        assert_eq!(judge(&[3], 4, 0, false), Verdict::Torn { keep_bytes: 3 * B });
        assert_eq!(judge(&[1, 2, 3], 4, 0, false), Verdict::Torn { keep_bytes: B });
        assert_eq!(judge(&[0, 1, 2, 3], 4, 0, false), Verdict::Torn { keep_bytes: 0 });
        // Synced up to 3 blocks: a bad block 1 with a sound block 2 is damage.
        assert_eq!(judge(&[1], 4, 3 * B, false), Verdict::Corrupt { block: 1 });
        assert_eq!(judge(&[1, 3], 4, 3 * B, false), Verdict::Corrupt { block: 1 });
        // Never synced, or bad only past the synced length: torn in any order.
        assert_eq!(judge(&[1], 4, 0, false), Verdict::Torn { keep_bytes: B });
        assert_eq!(judge(&[1, 3], 4, B, false), Verdict::Torn { keep_bytes: B });
        assert_eq!(judge(&[2], 5, 2 * B + 10, true), Verdict::Torn { keep_bytes: 2 * B + 10 });
    }

    #[test]
    fn judge_keeps_the_synced_bytes_of_a_torn_block() {
        // Synced at 2.5 blocks; block 2 was then appended to and torn.
        let synced = 2 * B + B / 2;
        assert_eq!(judge(&[2, 3], 4, synced, true), Verdict::Torn { keep_bytes: synced });
        // Unless those bytes no longer match what the sync saved.
        assert_eq!(judge(&[2, 3], 4, synced, false), Verdict::Torn { keep_bytes: 2 * B });
        // A synced length at a block's end: that block is whole and sound.
        assert_eq!(judge(&[3], 4, 3 * B, true), Verdict::Torn { keep_bytes: 3 * B });
        // A tear below the synced length (bytes a sync promised) keeps what checks out.
        assert_eq!(judge(&[1, 2, 3], 4, synced, false), Verdict::Torn { keep_bytes: B });
    }

    #[test]
    fn only_replicas_written_since_their_sync_or_short_are_scanned() {
        let mut m = ChunkMeta::new(dfs_proto::ChunkVersion(1), 4 * B);
        m.length_bytes = B + 5;
        assert!(needs_scan(&m, align_up(B + 5)));
        m.mark_synced();
        assert!(!needs_scan(&m, align_up(B + 5)));
        assert!(needs_scan(&m, B), "a data file shorter than the length");
    }
}
