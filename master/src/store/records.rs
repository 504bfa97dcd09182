//! Value encodings. Every value starts with a format byte so that a later
//! format can read (and migrate) this one; decoding checks lengths and never
//! panics on a damaged value.

use dfs_proto::wire::namespace::{Attr, FileKind, FsStats};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, InodeId, NodeId};

use super::error::NsError;

/// The on-disk format of the whole store, kept in the meta family.
pub const FORMAT_VERSION: u32 = 1;
const RECORD_V1: u8 = 1;

fn corrupt(what: &str) -> NsError {
    NsError::new(ErrorKind::EIO, format!("corrupt {what} record in the metadata store"))
}

/// Appends fixed-width big-endian fields.
struct Enc(Vec<u8>);

impl Enc {
    fn new(cap: usize) -> Self {
        let mut v = Vec::with_capacity(cap + 1);
        v.push(RECORD_V1);
        Enc(v)
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(self, v: i64) -> Self {
        self.u64(v as u64)
    }
}

/// Reads fixed-width big-endian fields, failing on a short value.
struct Dec<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Dec<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Result<Self, NsError> {
        match bytes.split_first() {
            Some((&RECORD_V1, rest)) => Ok(Dec { rest, what }),
            _ => Err(corrupt(what)),
        }
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], NsError> {
        if self.rest.len() < N {
            return Err(corrupt(self.what));
        }
        let (head, tail) = self.rest.split_at(N);
        self.rest = tail;
        head.try_into().map_err(|_| corrupt(self.what))
    }
    fn u8(&mut self) -> Result<u8, NsError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, NsError> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, NsError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, NsError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, NsError> {
        Ok(self.u64()? as i64)
    }
}

fn kind_code(kind: FileKind) -> u8 {
    match kind {
        FileKind::File => 1,
        FileKind::Dir => 2,
        FileKind::Symlink => 3,
        FileKind::Fifo => 4,
        FileKind::Socket => 5,
        FileKind::CharDevice => 6,
        FileKind::BlockDevice => 7,
    }
}

fn kind_from_code(code: u8, what: &str) -> Result<FileKind, NsError> {
    match code {
        1 => Ok(FileKind::File),
        2 => Ok(FileKind::Dir),
        3 => Ok(FileKind::Symlink),
        4 => Ok(FileKind::Fifo),
        5 => Ok(FileKind::Socket),
        6 => Ok(FileKind::CharDevice),
        7 => Ok(FileKind::BlockDevice),
        _ => Err(corrupt(what)),
    }
}

/// The kind byte's flag for an inode with extended attributes (older
/// records never set it).
const HAS_XATTRS: u8 = 0x80;

/// An inode as stored: its attributes, and a symlink's target. The value
/// ends with what only some kinds have: a symlink's target, a device's
/// `rdev` (8 bytes), nothing for the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InodeRecord {
    pub attr: Attr,
    /// The target of a symlink; empty for other kinds.
    pub symlink_target: String,
}

impl InodeRecord {
    pub fn is_dir(&self) -> bool {
        self.attr.kind == FileKind::Dir
    }

    pub fn encode(&self) -> Vec<u8> {
        let a = &self.attr;
        let mut e = Enc::new(80 + self.symlink_target.len())
            .u8(kind_code(a.kind) | if a.has_xattrs { HAS_XATTRS } else { 0 })
            .u32(a.mode)
            .u32(a.uid)
            .u32(a.gid)
            .u64(a.size)
            .i64(a.atime_ns)
            .i64(a.mtime_ns)
            .i64(a.ctime_ns)
            .u32(a.nlink)
            .u16(a.replication)
            .u64(a.chunk_size_bytes)
            .u64(a.parent.0);
        match a.kind {
            FileKind::CharDevice | FileKind::BlockDevice => e = e.u64(a.rdev),
            _ => e.0.extend_from_slice(self.symlink_target.as_bytes()),
        }
        e.0
    }

    pub fn decode(id: InodeId, bytes: &[u8]) -> Result<Self, NsError> {
        let mut d = Dec::new(bytes, "inode")?;
        let kind_byte = d.u8()?;
        let attr = Attr {
            inode: id,
            kind: kind_from_code(kind_byte & !HAS_XATTRS, "inode")?,
            mode: d.u32()?,
            uid: d.u32()?,
            gid: d.u32()?,
            size: d.u64()?,
            atime_ns: d.i64()?,
            mtime_ns: d.i64()?,
            ctime_ns: d.i64()?,
            nlink: d.u32()?,
            replication: d.u16()?,
            chunk_size_bytes: d.u64()?,
            parent: InodeId(d.u64()?),
            rdev: 0,
            has_xattrs: kind_byte & HAS_XATTRS != 0,
        };
        let mut record = InodeRecord { attr, symlink_target: String::new() };
        match record.attr.kind {
            FileKind::Symlink => {
                record.symlink_target = String::from_utf8(std::mem::take(&mut d.rest).to_vec()).map_err(|_| corrupt("inode"))?;
            }
            FileKind::CharDevice | FileKind::BlockDevice => record.attr.rdev = d.u64()?,
            _ => {}
        }
        if !d.rest.is_empty() {
            return Err(corrupt("inode"));
        }
        Ok(record)
    }
}

/// A directory entry's value: the child and its kind (for readdir's d_type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    pub child: InodeId,
    pub kind: FileKind,
}

impl EntryRecord {
    pub fn encode(&self) -> Vec<u8> {
        Enc::new(9).u64(self.child.0).u8(kind_code(self.kind)).0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, NsError> {
        let mut d = Dec::new(bytes, "directory entry")?;
        Ok(EntryRecord { child: InodeId(d.u64()?), kind: kind_from_code(d.u8()?, "directory entry")? })
    }
}

/// One chunk of a file: its handle, current version, the bytes committed
/// as written from its start, and the nodes that took the current version
/// (empty: not known, as in records written before members were kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub length: u64,
    pub members: Vec<NodeId>,
}

/// Most members a chunk record keeps (replication is at most this).
const MEMBERS_MAX: usize = 64;

impl ChunkRecord {
    pub fn encode(&self) -> Vec<u8> {
        let members = &self.members[..self.members.len().min(MEMBERS_MAX)];
        let mut e = Enc::new(26 + 16 * members.len()).u64(self.handle.0).u64(self.version.0).u64(self.length).u16(members.len() as u16);
        members.iter().for_each(|n| e.0.extend_from_slice(n.0.as_bytes()));
        e.0
    }

    /// Records of the first format end after the length: no members.
    pub fn decode(bytes: &[u8]) -> Result<Self, NsError> {
        let mut d = Dec::new(bytes, "chunk")?;
        let (handle, version, length) = (ChunkHandle(d.u64()?), ChunkVersion(d.u64()?), d.u64()?);
        let count = if d.rest.is_empty() { 0 } else { d.u16()? as usize };
        if count > MEMBERS_MAX || d.rest.len() != 16 * count {
            return Err(corrupt("chunk"));
        }
        let members = d.rest.chunks_exact(16).map(|b| NodeId(uuid::Uuid::from_bytes(b.try_into().unwrap_or_default()))).collect();
        Ok(ChunkRecord { handle, version, length, members })
    }
}

/// Counters and id allocators, rewritten by every mutation in its own batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub specials: u64,
    pub bytes: u64,
    pub pending_delete: u64,
    /// The next inode id to hand out.
    pub next_inode: u64,
    /// The next chunk handle to hand out.
    pub next_chunk: u64,
}

impl Counters {
    /// Moves the inode and chunk allocators `n` ids ahead: past ids handed
    /// out by history this store no longer holds (a truncated log, a
    /// restored backup), which clients and chunkservers may hold.
    pub fn skip_ids(&mut self, n: u64) {
        self.next_inode = self.next_inode.saturating_add(n);
        self.next_chunk = self.next_chunk.saturating_add(n);
    }

    /// The fields of the first format, then the count of special files
    /// (stores made before there were any end without it).
    pub fn encode(&self) -> Vec<u8> {
        Enc::new(64)
            .u64(self.files)
            .u64(self.directories)
            .u64(self.symlinks)
            .u64(self.bytes)
            .u64(self.pending_delete)
            .u64(self.next_inode)
            .u64(self.next_chunk)
            .u64(self.specials)
            .0
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, NsError> {
        let mut d = Dec::new(bytes, "counters")?;
        let mut c = Counters {
            files: d.u64()?,
            directories: d.u64()?,
            symlinks: d.u64()?,
            bytes: d.u64()?,
            pending_delete: d.u64()?,
            next_inode: d.u64()?,
            next_chunk: d.u64()?,
            specials: 0,
        };
        if !d.rest.is_empty() {
            c.specials = d.u64()?;
        }
        if !d.rest.is_empty() {
            return Err(corrupt("counters"));
        }
        Ok(c)
    }

    pub fn stats(&self) -> FsStats {
        FsStats {
            files: self.files,
            directories: self.directories,
            symlinks: self.symlinks,
            specials: self.specials,
            bytes: self.bytes,
            pending_delete: self.pending_delete,
        }
    }

    /// Counts an inode coming (`sign` = 1) or going (`sign` = -1).
    pub fn count(&mut self, attr: &Attr, sign: i8) {
        let slot = match attr.kind {
            FileKind::File => &mut self.files,
            FileKind::Dir => &mut self.directories,
            FileKind::Symlink => &mut self.symlinks,
            FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice => &mut self.specials,
        };
        if sign > 0 {
            *slot += 1;
            if attr.kind == FileKind::File {
                self.bytes = self.bytes.saturating_add(attr.size);
            }
        } else {
            *slot = slot.saturating_sub(1);
            if attr.kind == FileKind::File {
                self.bytes = self.bytes.saturating_sub(attr.size);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InodeRecord {
        InodeRecord {
            attr: Attr {
                inode: InodeId(42),
                kind: FileKind::Symlink,
                mode: 0o777,
                uid: 1000,
                gid: 100,
                size: 6,
                atime_ns: -5,
                mtime_ns: 1_700_000_000_123_456_789,
                ctime_ns: 3,
                nlink: 1,
                replication: 0,
                chunk_size_bytes: 0,
                parent: InodeId(1),
                rdev: 0,
                has_xattrs: false,
            },
            symlink_target: "/ünï/x".into(),
        }
    }

    #[test]
    fn records_round_trip() {
        let r = sample();
        assert_eq!(InodeRecord::decode(InodeId(42), &r.encode()).unwrap(), r);
        let e = EntryRecord { child: InodeId(7), kind: FileKind::Dir };
        assert_eq!(EntryRecord::decode(&e.encode()).unwrap(), e);
        let c = ChunkRecord { handle: ChunkHandle(9), version: ChunkVersion(2), length: 4096, members: Vec::new() };
        assert_eq!(ChunkRecord::decode(&c.encode()).unwrap(), c);
        let members = vec![NodeId(uuid::Uuid::from_u128(1)), NodeId(uuid::Uuid::from_u128(u128::MAX))];
        let c = ChunkRecord { members, ..c };
        assert_eq!(ChunkRecord::decode(&c.encode()).unwrap(), c);
        let n = Counters { files: 1, directories: 2, symlinks: 3, specials: 8, bytes: 4, pending_delete: 5, next_inode: 6, next_chunk: 7 };
        assert_eq!(Counters::decode(&n.encode()).unwrap(), n);
        let first_format = &n.encode()[..57];
        assert_eq!(Counters::decode(first_format).unwrap(), Counters { specials: 0, ..n });
        let mut device = sample();
        device.attr.kind = FileKind::CharDevice;
        device.attr.rdev = (1 << 8) | 3;
        device.symlink_target.clear();
        assert_eq!(InodeRecord::decode(InodeId(42), &device.encode()).unwrap(), device);
        let mut fifo = device.clone();
        fifo.attr.kind = FileKind::Fifo;
        fifo.attr.rdev = 0;
        assert_eq!(InodeRecord::decode(InodeId(42), &fifo.encode()).unwrap(), fifo);
        fifo.attr.has_xattrs = true;
        assert_eq!(InodeRecord::decode(InodeId(42), &fifo.encode()).unwrap(), fifo);
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let bytes = sample().encode();
        for cut in 0..60 {
            assert!(InodeRecord::decode(InodeId(1), &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(InodeRecord::decode(InodeId(1), &wrong_version).is_err());
        assert!(EntryRecord::decode(&[1, 0, 0]).is_err());
        assert!(Counters::decode(&[]).is_err());
    }

    #[test]
    fn chunk_records_of_the_first_format_have_no_members_and_bad_member_lists_are_errors() {
        let first = Enc::new(24).u64(9).u64(2).u64(4096).0;
        assert_eq!(ChunkRecord::decode(&first).unwrap().members, Vec::<NodeId>::new());
        let c = ChunkRecord { handle: ChunkHandle(9), version: ChunkVersion(2), length: 1, members: vec![NodeId(uuid::Uuid::from_u128(3))] };
        let bytes = c.encode();
        for cut in 26..bytes.len() {
            assert!(ChunkRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut too_many = bytes.clone();
        too_many[25] = 200;
        assert!(ChunkRecord::decode(&too_many).is_err());
    }
}
