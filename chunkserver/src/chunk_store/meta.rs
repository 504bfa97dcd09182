//! The metadata file of a replica: its format (encoding and decoding) and the
//! in-memory copy kept for every replica.
//!
//! Format 2, all integers little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `DFSM` |
//! | 4 | format version, 2 |
//! | 5 | flags: bit 0 "dirty", written since the last completed sync |
//! | 6..8 | zero |
//! | 8..16 | chunk handle (must match the file name) |
//! | 16..24 | chunk version |
//! | 24..32 | chunk size in bytes (a multiple of 64 KiB, at most 1 GiB) |
//! | 32..40 | length in bytes (at most the chunk size) |
//! | 40..48 | synced length: the length at the last completed sync (at most the length) |
//! | 48..52 | CRC32 of the synced length's last block, as it was at that sync |
//! | 52..56 | CRC32 of bytes 0..52 |
//! | 56..64 | zero |
//! | 64.. | one u32 CRC32 per 64 KiB block of the chunk size |
//!
//! The file always has every block's slot, so its size never changes after
//! creation; the header fits in one sector, so an in-place update of the
//! length rewrites it whole.
//!
//! The synced fields let start-up recovery (`load`) tell bytes that were
//! made durable from bytes that may be torn: an append into a partly
//! filled block rewrites that block's CRC slot in place, so after a power
//! cut that kept the new slot but lost the new bytes, the synced bytes of
//! the block are checked against the CRC saved at the sync instead.
//!
//! The dirty flag is set, and made durable, before the first write after a
//! sync is taken, and cleared by the next sync: after a crash it says that
//! writes acknowledged since the last sync may be gone (a power cut drops
//! them from the page cache), even where the length did not change (an
//! overwrite). The master then prefers a copy that never crashed.
//!
//! Format 1 (a 48-byte header without the synced fields, header CRC at
//! 40..44) is still read, as synced length 0; `load` rewrites it as format 2.

use dfs_proto::{ChunkHandle, ChunkVersion};

use super::aligned::is_multiple;
use super::BLOCK_BYTES;

/// The largest chunk size a replica may have.
pub const MAX_CHUNK_BYTES: u64 = 1 << 30;

const MAGIC: [u8; 4] = *b"DFSM";
const FORMAT_V1: u8 = 1;
/// The format written.
pub(crate) const FORMAT_V2: u8 = 2;
/// Bytes before the first CRC slot (format 2).
pub(crate) const HEADER_BYTES: usize = 64;
const HEADER_CRC_AT: usize = 52;
const V1_HEADER_BYTES: usize = 48;
const V1_HEADER_CRC_AT: usize = 40;

/// Why a metadata file could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MetaDecodeError {
    #[error("{0} bytes is too short for a header")]
    Truncated(usize),
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedFormat(u8),
    #[error("header checksum mismatch")]
    HeaderChecksum,
    #[error("reserved bytes are not zero")]
    Reserved,
    #[error("names chunk {0:016x}, not the file's")]
    WrongHandle(u64),
    #[error("{0}")]
    BadChunkSize(String),
    #[error("length {length} exceeds chunk size {chunk_size}")]
    LengthPastSize { length: u64, chunk_size: u64 },
    #[error("synced length {synced} exceeds length {length}")]
    SyncedPastLength { synced: u64, length: u64 },
    #[error("file has {actual} bytes, expected {expected}")]
    WrongFileSize { actual: usize, expected: usize },
}

/// What the store knows of one replica, kept in memory after `open`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub version: ChunkVersion,
    pub chunk_size_bytes: u64,
    pub length_bytes: u64,
    /// One CRC per block of the chunk size; each covers the block's bytes
    /// below `length_bytes`, so a block with none of them holds 0 (the CRC32
    /// of nothing).
    pub crcs: Vec<u32>,
    /// The length at the last completed sync (see the module doc).
    pub synced_length_bytes: u64,
    /// The CRC of the block holding the synced length's last byte, as it
    /// was at that sync (0 when the synced length is 0).
    pub synced_tail_crc: u32,
    /// Written since the last completed sync (see the module doc).
    pub dirty: bool,
}

/// Checks a chunk size given to `create` or read from disk.
pub fn check_chunk_size(chunk_size_bytes: u64) -> Result<(), String> {
    if chunk_size_bytes == 0 || !is_multiple(chunk_size_bytes, BLOCK_BYTES) {
        return Err(format!("chunk size {chunk_size_bytes} is not a positive multiple of {BLOCK_BYTES}"));
    }
    if chunk_size_bytes > MAX_CHUNK_BYTES {
        return Err(format!("chunk size {chunk_size_bytes} exceeds {MAX_CHUNK_BYTES}"));
    }
    Ok(())
}

/// Where block `block`'s CRC slot is in the metadata file.
pub(crate) fn crc_slot_offset(block: usize) -> u64 {
    (HEADER_BYTES + 4 * block) as u64
}

impl ChunkMeta {
    /// An empty replica. The chunk size must have passed `check_chunk_size`.
    pub fn new(version: ChunkVersion, chunk_size_bytes: u64) -> ChunkMeta {
        let blocks = (chunk_size_bytes / BLOCK_BYTES) as usize;
        ChunkMeta { version, chunk_size_bytes, length_bytes: 0, crcs: vec![0; blocks], synced_length_bytes: 0, synced_tail_crc: 0, dirty: false }
    }

    /// Records that every byte below the length, and its CRC, is durable.
    pub fn mark_synced(&mut self) {
        self.synced_length_bytes = self.length_bytes;
        self.synced_tail_crc = self.tail_crc();
        self.dirty = false;
    }

    /// `mark_synced` at start-up: the bytes on disk now are durable, but a
    /// dirty replica may have lost writes it acknowledged before the crash,
    /// so it stays dirty until the master moves it to a new version (see
    /// `ReplicaState::lost_writes`).
    pub fn mark_synced_keeping_dirty(&mut self) {
        let dirty = self.dirty;
        self.mark_synced();
        self.dirty = dirty;
    }

    /// The CRC of the block holding the last byte below the length.
    pub fn tail_crc(&self) -> u32 {
        match self.length_bytes {
            0 => 0,
            len => self.crcs[((len - 1) / BLOCK_BYTES) as usize],
        }
    }

    /// The whole file.
    pub fn encode(&self, handle: ChunkHandle) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + 4 * self.crcs.len());
        out.extend_from_slice(&self.encode_header(handle));
        out.extend_from_slice(&self.encode_crcs(0, self.crcs.len()));
        out
    }

    /// The header alone, for an in-place update of the length.
    pub fn encode_header(&self, handle: ChunkHandle) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = FORMAT_V2;
        h[5] = self.dirty as u8;
        h[8..16].copy_from_slice(&handle.0.to_le_bytes());
        h[16..24].copy_from_slice(&self.version.0.to_le_bytes());
        h[24..32].copy_from_slice(&self.chunk_size_bytes.to_le_bytes());
        h[32..40].copy_from_slice(&self.length_bytes.to_le_bytes());
        h[40..48].copy_from_slice(&self.synced_length_bytes.to_le_bytes());
        h[48..52].copy_from_slice(&self.synced_tail_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..HEADER_CRC_AT]);
        h[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The CRC slots of blocks `first..end`, to be written at
    /// `crc_slot_offset(first)`.
    pub fn encode_crcs(&self, first: usize, end: usize) -> Vec<u8> {
        self.crcs[first..end].iter().flat_map(|c| c.to_le_bytes()).collect()
    }

    /// Decodes a whole metadata file named after `handle` (format 1 or 2);
    /// also returns the format it was in.
    pub fn decode(handle: ChunkHandle, bytes: &[u8]) -> Result<(ChunkMeta, u8), MetaDecodeError> {
        let format = *bytes.get(4).ok_or(MetaDecodeError::Truncated(bytes.len()))?;
        let (header_bytes, crc_at) = match format {
            FORMAT_V1 => (V1_HEADER_BYTES, V1_HEADER_CRC_AT),
            FORMAT_V2 => (HEADER_BYTES, HEADER_CRC_AT),
            _ if bytes[0..4] != MAGIC => return Err(MetaDecodeError::BadMagic),
            other => return Err(MetaDecodeError::UnsupportedFormat(other)),
        };
        let header = bytes.get(..header_bytes).ok_or(MetaDecodeError::Truncated(bytes.len()))?;
        if header[0..4] != MAGIC {
            return Err(MetaDecodeError::BadMagic);
        }
        if u32_at(header, crc_at) != crc32fast::hash(&header[..crc_at]) {
            return Err(MetaDecodeError::HeaderChecksum);
        }
        let flags = if format == FORMAT_V2 { header[5] } else { 0 };
        if flags > 1 || header[6..8] != [0; 2] || (format != FORMAT_V2 && header[5] != 0) || header[crc_at + 4..].iter().any(|&b| b != 0) {
            return Err(MetaDecodeError::Reserved);
        }
        let stored_handle = u64_at(header, 8);
        if stored_handle != handle.0 {
            return Err(MetaDecodeError::WrongHandle(stored_handle));
        }
        let version = ChunkVersion(u64_at(header, 16));
        let chunk_size_bytes = u64_at(header, 24);
        let length_bytes = u64_at(header, 32);
        let (synced_length_bytes, synced_tail_crc) = if format == FORMAT_V2 { (u64_at(header, 40), u32_at(header, 48)) } else { (0, 0) };
        check_chunk_size(chunk_size_bytes).map_err(MetaDecodeError::BadChunkSize)?;
        if length_bytes > chunk_size_bytes {
            return Err(MetaDecodeError::LengthPastSize { length: length_bytes, chunk_size: chunk_size_bytes });
        }
        if synced_length_bytes > length_bytes {
            return Err(MetaDecodeError::SyncedPastLength { synced: synced_length_bytes, length: length_bytes });
        }
        let blocks = (chunk_size_bytes / BLOCK_BYTES) as usize;
        let expected = header_bytes + 4 * blocks;
        if bytes.len() != expected {
            return Err(MetaDecodeError::WrongFileSize { actual: bytes.len(), expected });
        }
        // A slot past the length can hold a CRC written in place just before a
        // crash that lost the new length; the length is what counts.
        let valid_blocks = length_bytes.div_ceil(BLOCK_BYTES) as usize;
        let crcs = (0..blocks).map(|b| if b < valid_blocks { u32_at(bytes, header_bytes + 4 * b) } else { 0 }).collect();
        let meta = ChunkMeta { version, chunk_size_bytes, length_bytes, crcs, synced_length_bytes, synced_tail_crc, dirty: flags == 1 };
        Ok((meta, format))
    }
}

/// Reads a little-endian u32; `at + 4` must be in bounds (checked by callers).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: ChunkHandle = ChunkHandle(0x1234);

    fn sample() -> ChunkMeta {
        let mut m = ChunkMeta::new(ChunkVersion(7), 4 * BLOCK_BYTES);
        m.length_bytes = BLOCK_BYTES + 10;
        m.crcs[0] = 0xdead_beef;
        m.crcs[1] = 0x0102_0304;
        m.synced_length_bytes = BLOCK_BYTES + 3;
        m.synced_tail_crc = 0x0a0b_0c0d;
        m
    }

    /// Format 1 as it was written before the synced fields existed.
    fn encode_v1(m: &ChunkMeta) -> Vec<u8> {
        let mut h = [0u8; V1_HEADER_BYTES];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = FORMAT_V1;
        h[8..16].copy_from_slice(&H.0.to_le_bytes());
        h[16..24].copy_from_slice(&m.version.0.to_le_bytes());
        h[24..32].copy_from_slice(&m.chunk_size_bytes.to_le_bytes());
        h[32..40].copy_from_slice(&m.length_bytes.to_le_bytes());
        let crc = crc32fast::hash(&h[..V1_HEADER_CRC_AT]);
        h[V1_HEADER_CRC_AT..V1_HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(&m.encode_crcs(0, m.crcs.len()));
        out
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.encode(H);
        assert_eq!(bytes.len(), HEADER_BYTES + 16);
        assert_eq!(ChunkMeta::decode(H, &bytes), Ok((m, FORMAT_V2)));
    }

    #[test]
    fn format_1_reads_as_never_synced() {
        let mut m = sample();
        let bytes = encode_v1(&m);
        (m.synced_length_bytes, m.synced_tail_crc) = (0, 0);
        assert_eq!(ChunkMeta::decode(H, &bytes), Ok((m, FORMAT_V1)));
        for len in 0..bytes.len() {
            assert!(ChunkMeta::decode(H, &bytes[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let bytes = sample().encode(H);
        for len in 0..bytes.len() {
            assert!(ChunkMeta::decode(H, &bytes[..len]).is_err(), "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ChunkMeta::decode(H, &longer).is_err());
    }

    #[test]
    fn every_header_bit_flip_is_an_error() {
        for bytes in [sample().encode(H), encode_v1(&sample())] {
            let header = if bytes[4] == FORMAT_V1 { V1_HEADER_BYTES } else { HEADER_BYTES };
            for i in 0..header * 8 {
                let mut b = bytes.clone();
                b[i / 8] ^= 1 << (i % 8);
                assert!(ChunkMeta::decode(H, &b).is_err(), "format {} bit {i}", bytes[4]);
            }
        }
    }

    #[test]
    fn wrong_handle_and_format_are_named() {
        let bytes = sample().encode(H);
        assert_eq!(ChunkMeta::decode(ChunkHandle(1), &bytes), Err(MetaDecodeError::WrongHandle(0x1234)));
        let mut b = bytes.clone();
        b[4] = 3;
        assert_eq!(ChunkMeta::decode(H, &b), Err(MetaDecodeError::UnsupportedFormat(3)));
    }

    #[test]
    fn a_synced_length_past_the_length_is_an_error() {
        let mut m = sample();
        m.synced_length_bytes = m.length_bytes + 1;
        assert!(matches!(ChunkMeta::decode(H, &m.encode(H)), Err(MetaDecodeError::SyncedPastLength { .. })));
    }

    #[test]
    fn mark_synced_keeps_the_tail_blocks_crc() {
        let mut m = sample();
        m.mark_synced();
        assert_eq!((m.synced_length_bytes, m.synced_tail_crc), (BLOCK_BYTES + 10, 0x0102_0304));
        m.length_bytes = BLOCK_BYTES;
        m.mark_synced();
        assert_eq!(m.synced_tail_crc, 0xdead_beef, "a full last block");
        m.length_bytes = 0;
        m.mark_synced();
        assert_eq!(m.synced_tail_crc, 0);
    }

    #[test]
    fn slots_past_the_length_read_as_zero() {
        let mut m = sample();
        m.crcs[3] = 99; // a torn in-place update past the length
        let (decoded, _) = ChunkMeta::decode(H, &m.encode(H)).unwrap();
        assert_eq!(decoded.crcs, vec![0xdead_beef, 0x0102_0304, 0, 0]);
    }

    #[test]
    fn chunk_size_rules() {
        assert!(check_chunk_size(0).is_err());
        assert!(check_chunk_size(BLOCK_BYTES + 1).is_err());
        assert!(check_chunk_size(2 * MAX_CHUNK_BYTES).is_err());
        assert!(check_chunk_size(BLOCK_BYTES).is_ok());
        assert!(check_chunk_size(MAX_CHUNK_BYTES).is_ok());
    }
}
