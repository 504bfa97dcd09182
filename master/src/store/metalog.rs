//! The metadata log: every namespace batch is appended here, and a group of
//! them is made durable with one `O_DIRECT | O_DSYNC` write before any of
//! its requests is answered. RocksDB gets the same batches with its own WAL
//! off. Why: RocksDB 7.8's WAL syncs by appending and `fdatasync` (~165 µs
//! here, since the file's size changes and so the file system's journal
//! commits too), while a synchronous direct overwrite of a zero-filled
//! stretch of the file takes ~115 µs (both measured where mutations are applied).
//!
//! Layout: a file of about [`CAPACITY`] bytes, grown in zero-filled
//! segments ahead of the records (so a record's write never changes the
//! file's size). Records lie back to back from offset 0, each a header
//! (magic, payload length, epoch, sequence number, the sequence number of
//! the first record of its group, CRC32 of epoch, both numbers and payload)
//! and the payload (a RocksDB write batch).
//!
//! Reading takes the epoch's records from offset 0 up to the first that
//! does not check out, then looks at the rest of the file for records of
//! the same epoch that do ([`Damage`]): none means the records simply end;
//! only ones of the same group mean a torn last group (a crash during its
//! write; none of it was answered), dropped; one of a later group means a
//! record that was acknowledged is damaged, and the caller must not go on
//! as if the log ended there.
//!
//! Epochs: the store flushes RocksDB's memtables to its (synced) tables and
//! then records a new epoch in RocksDB before the log starts over at offset
//! 0. That happens when the log is full and at every open, after the
//! replay, so the records of a torn group (some blocks written, some not)
//! can never be taken for new ones.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The log file's name in the metadata directory.
pub const LOG_FILE: &str = "dfs-metalog";
/// The log's size; when a record would not fit, the log starts over.
pub const CAPACITY: u64 = 64 << 20;
/// How much the file grows at a time, ahead of the records.
const SEGMENT: u64 = 4 << 20;
/// Alignment and unit of direct writes.
const BLOCK: u64 = 4096;
/// Format 2: magic, length, epoch, sequence number, group, CRC.
const MAGIC: u32 = 0x6466_7332;
const HEADER: usize = 4 + 4 + 8 + 8 + 8 + 4;
/// Format 1 (no group), still read so that a log an older build left is
/// replayed.
const MAGIC_V1: u32 = 0x6466_736c;
const HEADER_V1: usize = 4 + 4 + 8 + 8 + 4;

/// The log's tail as the writer sees it.
pub struct MetaLog {
    file: File,
    epoch: u64,
    next_seq: u64,
    /// Sequence number of the first record not yet written: the group the
    /// next `sync` writes.
    group: u64,
    /// File offset of `pending[0]`, a block boundary.
    at: u64,
    /// From `at`: the tail's partial block (already on disk), then records
    /// not yet written.
    pending: Vec<u8>,
    /// Bytes of `pending` already on disk.
    on_disk: usize,
    /// The file's zero-filled length (records overwrite it, never extend).
    filled: u64,
    /// Bytes of records an epoch holds before the log starts over.
    capacity: u64,
    /// Reused for direct writes, which need an aligned buffer.
    scratch: Vec<u8>,
}

impl MetaLog {
    /// Opens (making, if needed) the log in `dir` and reads `epoch`'s
    /// records. The log then waits for `start_over`: its old records are
    /// not to be appended to.
    pub fn open(dir: &Path, epoch: u64, capacity: u64) -> io::Result<(MetaLog, LogScan)> {
        let path = dir.join(LOG_FILE);
        if !path.exists() {
            File::create(&path)?.sync_all()?;
            File::open(dir)?.sync_all()?;
        }
        let file = open_for_writes(&path)?;
        // A partly written segment (a crash while growing) is grown again.
        let filled = file.metadata()?.len() / SEGMENT * SEGMENT;
        let scan = scan_file(&path, epoch, filled)?;
        let log = MetaLog { file, epoch, next_seq: 1, group: 1, at: 0, pending: Vec::new(), on_disk: 0, filled, capacity, scratch: Vec::new() };
        Ok((log, scan))
    }

    /// Starts the log over at offset 0 with a new epoch: everything logged
    /// so far must be in RocksDB's tables, and `epoch` recorded there.
    pub fn start_over(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.next_seq = 1;
        self.group = 1;
        self.at = 0;
        self.pending.clear();
        self.on_disk = 0;
    }

    /// Adds a record (written at the next `sync`).
    pub fn append(&mut self, payload: &[u8]) {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.epoch.to_le_bytes());
        crc.update(&self.next_seq.to_le_bytes());
        crc.update(&self.group.to_le_bytes());
        crc.update(payload);
        self.pending.extend_from_slice(&MAGIC.to_le_bytes());
        self.pending.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(&self.epoch.to_le_bytes());
        self.pending.extend_from_slice(&self.next_seq.to_le_bytes());
        self.pending.extend_from_slice(&self.group.to_le_bytes());
        self.pending.extend_from_slice(&crc.finalize().to_le_bytes());
        self.pending.extend_from_slice(payload);
        self.next_seq += 1;
    }

    /// Whether a record of `len` payload bytes fits after those appended
    /// so far; if not, the log must start over (after a checkpoint) before
    /// it is appended. An empty log takes any record: one larger than the
    /// capacity grows the file past it.
    pub fn fits(&self, len: usize) -> bool {
        let empty = self.at == 0 && self.pending.is_empty();
        empty || self.at + (self.pending.len() + HEADER + len) as u64 <= self.capacity
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
        self.group = self.next_seq;
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

/// Reads `epoch`'s records from the log in `dir` without opening it for
/// writes (to show what a recovery would do).
pub fn inspect(dir: &Path, epoch: u64) -> io::Result<LogScan> {
    let path = dir.join(LOG_FILE);
    let filled = std::fs::metadata(&path)?.len() / SEGMENT * SEGMENT;
    scan_file(&path, epoch, filled)
}

/// What reading an epoch's records found.
pub struct LogScan {
    /// The file's bytes up to its last whole segment.
    data: Vec<u8>,
    /// Payloads in `data` of the epoch's records that check out, in order,
    /// from offset 0 up to the first that does not.
    records: Vec<Range<usize>>,
    /// What lies past them.
    pub damage: Damage,
}

impl LogScan {
    /// The payloads of the records read, in order.
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        self.records.iter().map(|r| &self.data[r.clone()])
    }

    /// How many records were read.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes read: every record of the epoch lies within them.
    pub fn file_len(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Where an epoch's readable records stop, and what that means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The records simply end: past them lie zeros or an earlier epoch's.
    None,
    /// The last group is torn (a crash during its one write, so none of it
    /// was acknowledged): it is dropped.
    TornTail(Loss),
    /// A record that does not check out is followed by a record of a later
    /// group, which was written only after the damaged one's write had
    /// returned: acknowledged records are damaged.
    Middle(Loss),
}

/// The records past the point where reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    /// Offset in the file of the first byte that is not a good record.
    pub offset: u64,
    /// Sequence number of the record expected there.
    pub first_seq: u64,
    /// Highest sequence number of the epoch found past it (at least `first_seq`).
    pub last_seq: u64,
    /// How many of the records past `offset` still check out.
    pub readable: u64,
    /// Bytes from `offset` to the end of the last of them.
    pub bytes: u64,
}

impl Loss {
    /// How many records are lost, readable or not.
    pub fn records(&self) -> u64 {
        self.last_seq - self.first_seq + 1
    }
}

/// Where reading stopped: the offset, the sequence number expected there,
/// and, if a header of this epoch with that number is there but its record
/// does not check out (torn or damaged), where that record claims to end.
#[derive(Debug, Clone, Copy)]
struct Stop {
    offset: u64,
    expected_seq: u64,
    torn_end: Option<u64>,
}

/// A record of the epoch that checks out, found past the stop.
#[derive(Debug, Clone, Copy)]
struct Found {
    seq: u64,
    group: u64,
    end: u64,
}

/// Tells a clean end, a torn last group and damage in the middle apart.
fn classify(stop: Stop, found: &[Found]) -> Damage {
    let later: Vec<&Found> = found.iter().filter(|f| f.seq >= stop.expected_seq).collect();
    if later.is_empty() && stop.torn_end.is_none() {
        return Damage::None;
    }
    // A damaged header's length is not to be trusted when records follow.
    let end = later.iter().map(|f| f.end).max().or(stop.torn_end).unwrap_or(stop.offset);
    let loss = Loss {
        offset: stop.offset,
        first_seq: stop.expected_seq,
        last_seq: later.iter().map(|f| f.seq).max().unwrap_or(stop.expected_seq),
        readable: later.len() as u64,
        bytes: end.saturating_sub(stop.offset),
    };
    // Groups are written one after another, each write waiting for the
    // one before: a record whose group began past the expected number was
    // written after the write holding the expected record had returned.
    if later.iter().any(|f| f.group > stop.expected_seq) {
        Damage::Middle(loss)
    } else {
        Damage::TornTail(loss)
    }
}

fn scan_file(path: &Path, epoch: u64, len: u64) -> io::Result<LogScan> {
    let mut data = Vec::with_capacity(len as usize);
    File::open(path)?.take(len).read_to_end(&mut data)?;
    Ok(scan(data, epoch))
}

/// Reads `epoch`'s records from offset 0 on, then classifies what follows.
fn scan(data: Vec<u8>, epoch: u64) -> LogScan {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(r) = record_at(&data, at, epoch).filter(|r| r.seq == records.len() as u64 + 1) {
        records.push(r.payload);
        at = r.end;
    }
    let expected_seq = records.len() as u64 + 1;
    let torn_end = header_at(&data, at).filter(|h| h.epoch == epoch && h.seq == expected_seq).map(|h| (at + h.size + h.len).min(data.len()) as u64);
    let stop = Stop { offset: at as u64, expected_seq, torn_end };
    let damage = classify(stop, &records_past(&data, at, epoch));
    LogScan { data, records, damage }
}

/// Every record of `epoch` that checks out from `from` on, wherever it
/// starts (a damaged record's length cannot be trusted to find the next).
fn records_past(data: &[u8], from: usize, epoch: u64) -> Vec<Found> {
    let mut found = Vec::new();
    let mut p = from;
    while let Some(at) = next_magic(data, p) {
        match record_at(data, at, epoch) {
            Some(r) => {
                found.push(Found { seq: r.seq, group: r.group, end: r.end as u64 });
                p = r.end;
            }
            None => p = at + 1,
        }
    }
    found
}

/// The first offset from `from` on where a header's magic starts.
fn next_magic(data: &[u8], from: usize) -> Option<usize> {
    let (v2, v1) = (MAGIC.to_le_bytes(), MAGIC_V1.to_le_bytes());
    data.get(from..)?.windows(4).position(|w| w == v2 || w == v1).map(|i| from + i)
}

/// A record's header, either format.
struct Header {
    epoch: u64,
    seq: u64,
    /// Format 1 records did not say: each counts as its own group.
    group: u64,
    crc: u32,
    size: usize,
    len: usize,
}

fn header_at(data: &[u8], at: usize) -> Option<Header> {
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(at + o..at + o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(at + o..at + o + 8)?.try_into().ok()?));
    let (epoch, seq, len) = (u64_at(8)?, u64_at(16)?, u32_at(4)? as usize);
    match u32_at(0)? {
        MAGIC => Some(Header { epoch, seq, group: u64_at(24)?, crc: u32_at(32)?, size: HEADER, len }),
        MAGIC_V1 => Some(Header { epoch, seq, group: seq, crc: u32_at(24)?, size: HEADER_V1, len }),
        _ => None,
    }
}

/// A record that checks out.
struct Record {
    seq: u64,
    group: u64,
    payload: Range<usize>,
    end: usize,
}

/// The record of `epoch` at `at`, if one is there whole and checks out.
fn record_at(data: &[u8], at: usize, epoch: u64) -> Option<Record> {
    let h = header_at(data, at)?;
    if h.epoch != epoch {
        return None;
    }
    let payload = at + h.size..at + h.size + h.len;
    let bytes = data.get(payload.clone())?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h.epoch.to_le_bytes());
    crc.update(&h.seq.to_le_bytes());
    if h.size == HEADER {
        crc.update(&h.group.to_le_bytes());
    }
    crc.update(bytes);
    (crc.finalize() == h.crc).then_some(Record { seq: h.seq, group: h.group, end: payload.end, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn payloads(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|i| (0..rng.random_range(0..9000)).map(|j| (i + j) as u8).collect()).collect()
    }

    /// `epoch`'s records as read at open, and what lies past them.
    fn read(dir: &Path, epoch: u64) -> (Vec<Vec<u8>>, Damage) {
        let (_, scan) = MetaLog::open(dir, epoch, CAPACITY).unwrap();
        (scan.payloads().map(|p| p.to_vec()).collect(), scan.damage)
    }

    /// A new log with `groups` written one sync each; returns each
    /// record's offset.
    fn log_of(dir: &Path, groups: &[&[&[u8]]]) -> Vec<u64> {
        let (mut log, _) = MetaLog::open(dir, 1, CAPACITY).unwrap();
        log.start_over(1);
        let mut offsets = Vec::new();
        let mut at = 0;
        for group in groups {
            for p in *group {
                offsets.push(at);
                at += (HEADER + p.len()) as u64;
                log.append(p);
            }
            log.sync().unwrap();
        }
        offsets
    }

    fn flip(dir: &Path, offset: u64) {
        let f = OpenOptions::new().read(true).write(true).open(dir.join(LOG_FILE)).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, offset).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], offset).unwrap();
    }

    fn zero(dir: &Path, range: Range<u64>) {
        let f = OpenOptions::new().write(true).open(dir.join(LOG_FILE)).unwrap();
        f.write_all_at(&vec![0u8; (range.end - range.start) as usize], range.start).unwrap();
    }

    fn owned(records: &[&[u8]]) -> Vec<Vec<u8>> {
        records.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn records_come_back_in_order_across_blocks_and_syncs() {
        let seed = rand::random::<u64>();
        println!("seed {seed}");
        let dir = tempfile::tempdir().unwrap();
        let (mut log, old) = MetaLog::open(dir.path(), 1, CAPACITY).unwrap();
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
        assert!(size.is_multiple_of(SEGMENT) && size < CAPACITY, "grown in segments as needed: {size}");
        assert_eq!(read(dir.path(), 1), (want, Damage::None), "seed {seed}");
        assert_eq!(read(dir.path(), 2), (vec![], Damage::None), "another epoch's records are not read");
    }

    #[test]
    fn reading_stops_at_a_torn_record_and_at_an_earlier_epochs_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetaLog::open(dir.path(), 1, CAPACITY).unwrap();
        for p in [b"one".as_slice(), b"two", b"three", b"four"] {
            log.append(p);
        }
        log.sync().unwrap();
        // A new epoch writes fewer, shorter records over the old ones.
        log.start_over(2);
        log.append(b"new");
        log.sync().unwrap();
        assert_eq!(read(dir.path(), 2), (vec![b"new".to_vec()], Damage::None));
        assert!(read(dir.path(), 1).0.is_empty(), "epoch 1's first record was overwritten");

        // Flip a payload byte of the second record, the last group: a torn tail.
        log.append(b"second");
        log.sync().unwrap();
        flip(dir.path(), (HEADER + 3 + HEADER) as u64);
        let (records, damage) = read(dir.path(), 2);
        assert_eq!(records, vec![b"new".to_vec()]);
        let at = (HEADER + 3) as u64;
        let loss = Loss { offset: at, first_seq: 2, last_seq: 2, readable: 0, bytes: (HEADER + 6) as u64 };
        assert_eq!(damage, Damage::TornTail(loss));
    }

    #[test]
    fn a_torn_last_group_is_dropped_whatever_part_of_it_landed() {
        let dir = tempfile::tempdir().unwrap();
        let groups: [&[&[u8]]; 2] = [&[b"a", b"b"], &[b"c", b"dd", b"e"]];
        let at = log_of(dir.path(), &groups);
        let end = at[4] + (HEADER + 1) as u64;
        // The record in the middle of the last group does not check out:
        // the group's write did not return, so the ones after it are
        // dropped with it.
        flip(dir.path(), at[3] + HEADER as u64);
        let (records, damage) = read(dir.path(), 1);
        assert_eq!(records, owned(&[b"a", b"b", b"c"]));
        assert_eq!(damage, Damage::TornTail(Loss { offset: at[3], first_seq: 4, last_seq: 5, readable: 1, bytes: end - at[3] }));
        // The group's first record never landed, the others did (a power
        // cut may write a request's blocks in any order).
        flip(dir.path(), at[3] + HEADER as u64);
        zero(dir.path(), at[2]..at[3]);
        let (records, damage) = read(dir.path(), 1);
        assert_eq!(records, owned(&[b"a", b"b"]));
        assert_eq!(damage, Damage::TornTail(Loss { offset: at[2], first_seq: 3, last_seq: 5, readable: 2, bytes: end - at[2] }));
    }

    #[test]
    fn a_damaged_record_before_a_later_group_is_damage_in_the_middle() {
        let groups: [&[&[u8]]; 4] = [&[b"one"], &[b"two", b"three"], &[b"four"], &[b"five", b"six"]];
        // Wherever the flip lands in record 2 (magic, length, epoch,
        // number, group, CRC or payload), the records of groups 3 and 4
        // are found past it.
        for byte in [0, 5, 9, 17, 25, 33, HEADER] {
            let dir = tempfile::tempdir().unwrap();
            let at = log_of(dir.path(), &groups);
            let end = at[5] + (HEADER + 3) as u64;
            flip(dir.path(), at[1] + byte as u64);
            let (records, damage) = read(dir.path(), 1);
            assert_eq!(records, owned(&[b"one"]), "flip at byte {byte}");
            let loss = Loss { offset: at[1], first_seq: 2, last_seq: 6, readable: 4, bytes: end - at[1] };
            assert_eq!(damage, Damage::Middle(loss), "flip at byte {byte}");
        }
    }

    #[test]
    fn only_a_later_group_makes_damage_middle_damage() {
        let stop = Stop { offset: 100, expected_seq: 5, torn_end: None };
        let found = |seq, group| Found { seq, group, end: 200 + seq };
        assert_eq!(classify(stop, &[]), Damage::None, "zeros or an earlier epoch past the records");
        assert!(matches!(classify(stop, &[found(6, 4)]), Damage::TornTail(_)), "same group as record 5");
        assert!(matches!(classify(stop, &[found(6, 5), found(7, 5)]), Damage::TornTail(_)));
        assert!(matches!(classify(stop, &[found(6, 5), found(7, 7)]), Damage::Middle(_)), "group 7 began after 5's write");
        assert!(matches!(classify(stop, &[found(6, 6)]), Damage::Middle(_)));
        assert_eq!(classify(stop, &[found(3, 3)]), Damage::None, "older numbers are not past the stop");
        let torn = Stop { torn_end: Some(150), ..stop };
        assert_eq!(classify(torn, &[]), Damage::TornTail(Loss { offset: 100, first_seq: 5, last_seq: 5, readable: 0, bytes: 50 }));
    }

    #[test]
    fn format_1_records_are_read_each_as_its_own_group() {
        let mut data = Vec::new();
        for (seq, p) in [(1u64, b"old".as_slice()), (2, b"older"), (3, b"oldest")] {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&7u64.to_le_bytes());
            crc.update(&seq.to_le_bytes());
            crc.update(p);
            data.extend_from_slice(&MAGIC_V1.to_le_bytes());
            data.extend_from_slice(&(p.len() as u32).to_le_bytes());
            data.extend_from_slice(&7u64.to_le_bytes());
            data.extend_from_slice(&seq.to_le_bytes());
            data.extend_from_slice(&crc.finalize().to_le_bytes());
            data.extend_from_slice(p);
        }
        data.resize(4096, 0);
        let s = scan(data.clone(), 7);
        assert_eq!((s.payloads().count(), s.damage), (3, Damage::None));
        data[HEADER_V1 + 3 + HEADER_V1] ^= 1;
        assert!(matches!(scan(data, 7).damage, Damage::Middle(l) if l.first_seq == 2 && l.readable == 1));
    }

    /// A format 2 record as `append` writes it.
    fn record(epoch: u64, seq: u64, group: u64, payload: &[u8]) -> Vec<u8> {
        let mut crc = crc32fast::Hasher::new();
        for n in [epoch, seq, group] {
            crc.update(&n.to_le_bytes());
        }
        crc.update(payload);
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        for n in [epoch, seq, group] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_missing_record_is_damage_when_a_later_group_follows_it() {
        // Record 2 is gone entirely: record 3, whole, stands where it was.
        let mut data = record(4, 1, 1, b"one");
        let at = data.len() as u64;
        data.extend(record(4, 3, 3, b"three"));
        data.resize(4096, 0);
        let s = scan(data, 4);
        assert_eq!(s.len(), 1);
        let bytes = (HEADER + 5) as u64;
        assert_eq!(s.damage, Damage::Middle(Loss { offset: at, first_seq: 2, last_seq: 3, readable: 1, bytes }));
    }

    #[test]
    fn a_log_that_cannot_take_a_record_says_so_before_it_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetaLog::open(dir.path(), 1, CAPACITY).unwrap();
        let big = vec![7u8; 1 << 20];
        let mut n = 0;
        while log.fits(big.len()) {
            log.append(&big);
            log.sync().unwrap();
            n += 1;
        }
        assert_eq!(n, 63, "63 records of 1 MiB and their headers fit, the 64th does not");
        log.start_over(2);
        assert!(log.fits(big.len()));
        assert!(log.fits(2 * CAPACITY as usize), "an empty log takes any record");
    }
}
