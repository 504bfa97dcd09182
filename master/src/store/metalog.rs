//! The metadata log: every namespace batch is appended here, and a group of
//! them is made durable with one `O_DIRECT | O_DSYNC` write before any of
//! its requests is answered. RocksDB gets the same batches with its own WAL
//! off. Why: RocksDB 7.8's WAL syncs by appending and `fdatasync` (~165 µs
//! here, since the file's size changes and so the file system's journal
//! commits too), while a synchronous direct overwrite of a zero-filled
//! stretch of the file takes ~115 µs (both measured where mutations are applied).
//!
//! Layout: a file of at most [`CAPACITY`] bytes, grown in zero-filled
//! segments ahead of the records (so a record's write never changes the
//! file's size). Records lie back to back from offset 0, each a header
//! (magic, payload length, epoch, sequence number, CRC32 of epoch, sequence
//! and payload) and the payload (a RocksDB write batch). Reading stops at the first record that does not
//! check out: a torn or never-written tail, or a record left from an
//! earlier epoch.
//!
//! Epochs: the store flushes RocksDB's memtables to its (synced) tables and
//! then records a new epoch in RocksDB before the log starts over at offset
//! 0. That happens when the log is full and at every open, after the
//! replay, so the records of a torn group (some blocks written, some not)
//! can never be taken for new ones.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The log file's name in the metadata directory.
pub const LOG_FILE: &str = "dfs-metalog";
/// The log's largest size; when a group would not fit, the log starts over.
pub const CAPACITY: u64 = 64 << 20;
/// How much the file grows at a time, ahead of the records.
const SEGMENT: u64 = 4 << 20;
/// Alignment and unit of direct writes.
const BLOCK: u64 = 4096;
const MAGIC: u32 = 0x6466_736c;
/// magic, length, epoch, sequence number, CRC.
const HEADER: usize = 4 + 4 + 8 + 8 + 4;

/// The log's tail as the writer sees it.
pub struct MetaLog {
    file: File,
    epoch: u64,
    next_seq: u64,
    /// File offset of `pending[0]`, a block boundary.
    at: u64,
    /// From `at`: the tail's partial block (already on disk), then records
    /// not yet written.
    pending: Vec<u8>,
    /// Bytes of `pending` already on disk.
    on_disk: usize,
    /// The file's zero-filled length (records overwrite it, never extend).
    filled: u64,
    /// Reused for direct writes, which need an aligned buffer.
    scratch: Vec<u8>,
}

impl MetaLog {
    /// Opens (making, if needed) the log in `dir` and returns the payloads
    /// of `epoch`'s records in order. The log then waits for `start_over`:
    /// its old records are not to be appended to.
    pub fn open(dir: &Path, epoch: u64) -> io::Result<(MetaLog, Vec<Vec<u8>>)> {
        let path = dir.join(LOG_FILE);
        if !path.exists() {
            File::create(&path)?.sync_all()?;
            File::open(dir)?.sync_all()?;
        }
        let file = open_for_writes(&path)?;
        // A partly written segment (a crash while growing) is grown again.
        let filled = file.metadata()?.len() / SEGMENT * SEGMENT;
        let records = read_records(&File::open(&path)?, epoch, filled)?;
        let log = MetaLog { file, epoch, next_seq: 1, at: 0, pending: Vec::new(), on_disk: 0, filled, scratch: Vec::new() };
        Ok((log, records))
    }

    /// Starts the log over at offset 0 with a new epoch: everything logged
    /// so far must be in RocksDB's tables, and `epoch` recorded there.
    pub fn start_over(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.next_seq = 1;
        self.at = 0;
        self.pending.clear();
        self.on_disk = 0;
    }

    /// Adds a record (written at the next `sync`).
    pub fn append(&mut self, payload: &[u8]) {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.epoch.to_le_bytes());
        crc.update(&self.next_seq.to_le_bytes());
        crc.update(payload);
        self.pending.extend_from_slice(&MAGIC.to_le_bytes());
        self.pending.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(&self.epoch.to_le_bytes());
        self.pending.extend_from_slice(&self.next_seq.to_le_bytes());
        self.pending.extend_from_slice(&crc.finalize().to_le_bytes());
        self.pending.extend_from_slice(payload);
        self.next_seq += 1;
    }

    /// Whether the records not yet written would not fit: the log must
    /// start over (after RocksDB's memtables are flushed) instead.
    pub fn is_full(&self) -> bool {
        self.at + self.pending.len() as u64 > CAPACITY
    }

    /// Writes the records appended since the last call, durably: one
    /// synchronous write from the tail's block to the end of the last one.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.on_disk == self.pending.len() {
            return Ok(());
        }
        let len = (self.pending.len() as u64).div_ceil(BLOCK) * BLOCK;
        while self.at + len > self.filled {
            self.grow()?;
        }
        let buf = aligned(&mut self.scratch, len as usize);
        buf[..self.pending.len()].copy_from_slice(&self.pending);
        buf[self.pending.len()..].fill(0);
        self.file.write_all_at(buf, self.at)?;
        // Keep only the last, partial block: the next write starts there.
        let full = self.pending.len() as u64 / BLOCK * BLOCK;
        self.pending.drain(..full as usize);
        self.at += full;
        self.on_disk = self.pending.len();
        Ok(())
    }
}

impl MetaLog {
    /// Adds a zero-filled segment at the end of the file, synchronously (it
    /// changes the file's size, once per segment rather than per write).
    fn grow(&mut self) -> io::Result<()> {
        let zeros = aligned(&mut self.scratch, SEGMENT as usize);
        zeros.fill(0);
        self.file.write_all_at(zeros, self.filled)?;
        self.filled += SEGMENT;
        Ok(())
    }
}

/// A `len`-byte slice of `scratch` that starts at a block-aligned address.
fn aligned(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len + BLOCK as usize {
        scratch.resize(len + BLOCK as usize, 0);
    }
    let offset = scratch.as_ptr().align_offset(BLOCK as usize);
    &mut scratch[offset..offset + len]
}

/// The log opened for synchronous writes: direct where the file system
/// allows it (tmpfs does not).
fn open_for_writes(path: &Path) -> io::Result<File> {
    let direct = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT | libc::O_DSYNC).open(path);
    match direct {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => OpenOptions::new().write(true).custom_flags(libc::O_DSYNC).open(path),
        r => r,
    }
}

/// The payloads of `epoch`'s records in the first `len` bytes, from offset
/// 0 up to the first record that does not check out.
fn read_records(file: &File, epoch: u64, len: u64) -> io::Result<Vec<Vec<u8>>> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut records = Vec::new();
    let mut read = 0u64;
    let mut header = [0u8; HEADER];
    while read + HEADER as u64 <= len {
        r.read_exact(&mut header)?;
        let field = |at: usize, n: usize| &header[at..at + n];
        let magic = u32::from_le_bytes(field(0, 4).try_into().unwrap_or_default());
        let size = u32::from_le_bytes(field(4, 4).try_into().unwrap_or_default()) as u64;
        let rec_epoch = u64::from_le_bytes(field(8, 8).try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(field(16, 8).try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(field(24, 4).try_into().unwrap_or_default());
        let expected_seq = records.len() as u64 + 1;
        if magic != MAGIC || rec_epoch != epoch || seq != expected_seq || read + HEADER as u64 + size > len {
            break;
        }
        let mut payload = vec![0u8; size as usize];
        r.read_exact(&mut payload)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&rec_epoch.to_le_bytes());
        h.update(&seq.to_le_bytes());
        h.update(&payload);
        if h.finalize() != crc {
            break;
        }
        records.push(payload);
        read += HEADER as u64 + size;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn payloads(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|i| (0..rng.random_range(0..9000)).map(|j| (i + j) as u8).collect()).collect()
    }

    #[test]
    fn records_come_back_in_order_across_blocks_and_syncs() {
        let seed = rand::random::<u64>();
        println!("seed {seed}");
        let dir = tempfile::tempdir().unwrap();
        let (mut log, old) = MetaLog::open(dir.path(), 1).unwrap();
        assert!(old.is_empty());
        log.start_over(1);
        let want = payloads(seed, 300);
        for (i, p) in want.iter().enumerate() {
            log.append(p);
            if i % 7 == 0 {
                log.sync().unwrap();
            }
        }
        log.sync().unwrap();
        let size = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert!(size % SEGMENT == 0 && size < CAPACITY, "grown in segments as needed: {size}");
        let (_, got) = MetaLog::open(dir.path(), 1).unwrap();
        assert!(got == want, "seed {seed}");
        assert!(MetaLog::open(dir.path(), 2).unwrap().1.is_empty(), "another epoch's records are not read");
    }

    #[test]
    fn reading_stops_at_a_torn_record_and_at_an_earlier_epochs_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetaLog::open(dir.path(), 1).unwrap();
        for p in [b"one".as_slice(), b"two", b"three", b"four"] {
            log.append(p);
        }
        log.sync().unwrap();
        // A new epoch writes fewer, shorter records over the old ones.
        log.start_over(2);
        log.append(b"new");
        log.sync().unwrap();
        assert_eq!(MetaLog::open(dir.path(), 2).unwrap().1, vec![b"new".to_vec()]);
        assert!(MetaLog::open(dir.path(), 1).unwrap().1.is_empty(), "epoch 1's first record was overwritten");

        // Flip a payload byte of the second record: only the first is read.
        log.append(b"second");
        log.sync().unwrap();
        let path = dir.path().join(LOG_FILE);
        let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let at = (HEADER + 3 + HEADER) as u64;
        f.write_all_at(b"X", at).unwrap();
        assert_eq!(MetaLog::open(dir.path(), 2).unwrap().1, vec![b"new".to_vec()]);
    }

    #[test]
    fn a_full_log_says_so_before_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetaLog::open(dir.path(), 1).unwrap();
        let big = vec![7u8; 1 << 20];
        let mut n = 0;
        while !log.is_full() {
            log.sync().unwrap();
            log.append(&big);
            n += 1;
        }
        assert_eq!(n, 64, "63 records of 1 MiB and their headers fit, the 64th does not");
        log.start_over(2);
        assert!(!log.is_full());
    }
}
