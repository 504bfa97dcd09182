//! Read-only namespace queries. They read RocksDB directly from any thread;
//! callers on the async runtime run them in `spawn_blocking`.

use dfs_proto::names::{split_path, validate_name};
use dfs_proto::wire::namespace::{Attr, DirEntry, Entry, EntryRef, FileKind, ListResponse, NodeRef};
use dfs_proto::{ChunkHandle, ErrorKind, InodeId, NodeId};

use super::db::Store;
use super::error::{fail, NsError};
use super::keys::*;
use super::perms::{self, Who, EXEC, READ};
use super::records::{ChunkRecord, EntryRecord, InodeRecord};

/// Longest page a listing returns, whatever the caller asks.
pub const LIST_LIMIT_MAX: u32 = 10_000;
/// Page length when the caller names none.
pub const LIST_LIMIT_DEFAULT: u32 = 1_000;

impl Store {
    pub fn get_inode(&self, id: InodeId) -> Result<Option<InodeRecord>, NsError> {
        match self.read(CF_INODES, &inode_key(id))? {
            Some(v) => Ok(Some(InodeRecord::decode(id, &v)?)),
            None => Ok(None),
        }
    }

    /// The inode, or ENOENT.
    pub fn inode(&self, id: InodeId) -> Result<InodeRecord, NsError> {
        match self.get_inode(id)? {
            Some(r) => Ok(r),
            None => fail(ErrorKind::ENOENT, format!("no inode {id}")),
        }
    }

    pub fn get_entry(&self, parent: InodeId, name: &str) -> Result<Option<EntryRecord>, NsError> {
        match self.read(CF_ENTRIES, &entry_key(parent, name))? {
            Some(v) => Ok(Some(EntryRecord::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Walks `path` from the root, as `who`: search permission on every
    /// directory passed through. Symlinks are not followed: the API works on
    /// canonical paths, and a symlink in the middle of one is ENOTDIR.
    pub fn resolve_path(&self, path: &str, who: &Who) -> Result<InodeRecord, NsError> {
        self.walk(path, &split_path(path)?, who)
    }

    /// Walks the components `parts` of `path` from the root.
    fn walk(&self, path: &str, parts: &[&str], who: &Who) -> Result<InodeRecord, NsError> {
        let mut current = self.inode(InodeId::ROOT)?;
        for (depth, part) in parts.iter().enumerate() {
            if !current.is_dir() {
                return fail(ErrorKind::ENOTDIR, format!("{}: a parent is not a directory", prefix(path, depth)));
            }
            perms::check(who, &current.attr, EXEC, &prefix(path, depth))?;
            let Some(entry) = self.get_entry(current.attr.inode, part)? else {
                return fail(ErrorKind::ENOENT, format!("{}: no such file or directory", prefix(path, depth + 1)));
            };
            current = self.inode(entry.child)?;
        }
        Ok(current)
    }

    /// The inode a [`NodeRef`] names. One named by number is reached with
    /// no check on its ancestors (as an NFS file handle): the check is on
    /// the inode itself.
    pub fn resolve_node(&self, node: &NodeRef, who: &Who) -> Result<InodeRecord, NsError> {
        match (&node.path, node.inode) {
            (Some(path), None) => self.resolve_path(path, who),
            (None, Some(id)) => self.inode(id),
            _ => fail(ErrorKind::EINVAL, "give either \"path\" or \"inode\""),
        }
    }

    /// The directory an [`EntryRef`] lives in, and its validated name; `who`
    /// may search it and every directory on the way.
    pub fn resolve_parent<'a>(&self, at: &'a EntryRef, who: &Who) -> Result<(InodeRecord, &'a str), NsError> {
        let (parent, name) = match at.form()? {
            Entry::Path(path) => {
                let parts = split_path(path)?;
                let Some((name, dirs)) = parts.split_last() else {
                    return fail(ErrorKind::EPERM, "the root directory has no name in a parent");
                };
                (self.walk(path, dirs, who)?, *name)
            }
            Entry::Child(parent, name) => {
                validate_name(name)?;
                (self.inode(parent)?, name)
            }
        };
        if !parent.is_dir() {
            return fail(ErrorKind::ENOTDIR, format!("parent of {name:?} is not a directory"));
        }
        perms::check(who, &parent.attr, EXEC, name)?;
        Ok((parent, name))
    }

    pub fn lookup(&self, parent: InodeId, name: &str, who: &Who) -> Result<Attr, NsError> {
        validate_name(name)?;
        let dir = self.inode(parent)?;
        if !dir.is_dir() {
            return fail(ErrorKind::ENOTDIR, format!("inode {parent} is not a directory"));
        }
        perms::check(who, &dir.attr, EXEC, name)?;
        match self.get_entry(parent, name)? {
            Some(e) => Ok(self.inode(e.child)?.attr),
            None => fail(ErrorKind::ENOENT, format!("{name:?}: no such file or directory")),
        }
    }

    /// True when directory `dir` has no entries.
    pub fn is_empty_dir(&self, dir: InodeId) -> Result<bool, NsError> {
        let prefix = entry_prefix(dir);
        match self.scan(CF_ENTRIES, &prefix, None)?.next() {
            Some(item) => Ok(!item?.0.starts_with(&prefix)),
            None => Ok(true),
        }
    }

    /// Up to `limit` entries of directory `dir` with names after `start_after`,
    /// in byte order of names: (name, entry) pairs.
    pub fn entries_after(&self, dir: InodeId, start_after: Option<&str>, limit: usize) -> Result<Vec<(String, EntryRecord)>, NsError> {
        let prefix = entry_prefix(dir);
        let start = entry_key(dir, start_after.unwrap_or(""));
        let mut below = prefix.to_vec();
        below.extend_from_slice(&[0xff; 256]);
        let mut out = Vec::new();
        for item in self.scan(CF_ENTRIES, &start, Some(below))? {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            if start_after.is_some() && *key == *start {
                continue;
            }
            let name = String::from_utf8(key[8..].to_vec()).map_err(|_| NsError::new(ErrorKind::EIO, "corrupt entry name"))?;
            out.push((name, EntryRecord::decode(&value)?));
        }
        Ok(out)
    }

    /// How many entries directory `dir` has after `start_after` (all of
    /// them with `None`), counting no further than `cap`: keys only.
    pub fn count_entries(&self, dir: InodeId, start_after: Option<&str>, cap: usize) -> Result<usize, NsError> {
        if self.has_pending() {
            return Ok(self.entries_after(dir, start_after, cap)?.len());
        }
        let prefix = entry_prefix(dir);
        let start = entry_key(dir, start_after.unwrap_or(""));
        let mut it = self.db.raw_iterator_cf(self.cf(CF_ENTRIES)?);
        it.seek(&start);
        let mut n = 0;
        while it.valid() && n < cap {
            let Some(key) = it.key() else { break };
            if !key.starts_with(&prefix) {
                break;
            }
            if start_after.is_none() || *key != *start {
                n += 1;
            }
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// One page of a directory listing, with each entry's attributes; `who`
    /// needs read permission on the directory (as `readdir` on Linux).
    pub fn list(&self, dir: &NodeRef, start_after: Option<&str>, limit: Option<u32>, who: &Who) -> Result<ListResponse, NsError> {
        let dir = self.resolve_node(dir, who)?;
        if !dir.is_dir() {
            return fail(ErrorKind::ENOTDIR, format!("inode {} is not a directory", dir.attr.inode));
        }
        perms::check(who, &dir.attr, READ, &format!("directory {}", dir.attr.inode))?;
        let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT).clamp(1, LIST_LIMIT_MAX) as usize;
        // One extra entry tells whether another page follows.
        let mut found = self.entries_after(dir.attr.inode, start_after, limit + 1)?;
        let more = found.len() > limit;
        found.truncate(limit);
        let last_scanned = found.last().map(|(name, _)| name.clone());
        let mut entries = Vec::with_capacity(found.len());
        let values = self.inodes_of(&found)?;
        for ((name, entry), value) in found.into_iter().zip(values) {
            match value {
                Some(v) => entries.push(DirEntry { name, attr: InodeRecord::decode(entry.child, &v)?.attr }),
                // Removed between the scan and the read: leave it out.
                None => continue,
            }
        }
        let next_start_after = if more { last_scanned } else { None };
        Ok(ListResponse { entries, next_start_after })
    }

    /// The stored inode records of the entries' children, in order: one
    /// multi-get, unless pending writes stand in front of the store.
    fn inodes_of(&self, found: &[(String, EntryRecord)]) -> Result<Vec<Option<Vec<u8>>>, NsError> {
        if self.has_pending() {
            return found.iter().map(|(_, e)| Ok(self.read(CF_INODES, &inode_key(e.child))?.map(|v| v.to_vec()))).collect();
        }
        let cf = self.cf(CF_INODES)?;
        let keys: Vec<_> = found.iter().map(|(_, e)| (cf, inode_key(e.child))).collect();
        self.db.multi_get_cf(keys).into_iter().map(|v| Ok(v?)).collect()
    }

    pub fn chunk(&self, inode: InodeId, index: u64) -> Result<Option<ChunkRecord>, NsError> {
        match self.read(CF_CHUNKS, &chunk_key(inode, index))? {
            Some(v) => Ok(Some(ChunkRecord::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Up to `count` chunk records of `inode` from index `first` on, by index.
    pub fn chunks_of(&self, inode: InodeId, first: u64, count: usize) -> Result<Vec<(u64, ChunkRecord)>, NsError> {
        let start = chunk_key(inode, first);
        let prefix = inode_key(inode);
        let mut out = Vec::new();
        for item in self.scan(CF_CHUNKS, &start, None)? {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= count {
                break;
            }
            let index = key.get(8..).and_then(leading_u64).ok_or_else(|| NsError::new(ErrorKind::EIO, "bad chunk key"))?;
            out.push((index, ChunkRecord::decode(&value)?));
        }
        Ok(out)
    }

    /// Every chunk record: (inode, index, record). Read once at start-up to
    /// rebuild the in-memory chunk map.
    pub fn all_chunks(&self) -> Result<Vec<(InodeId, u64, ChunkRecord)>, NsError> {
        let mut out = Vec::new();
        for item in self.scan(CF_CHUNKS, b"", None)? {
            let (key, value) = item?;
            let (Some(inode), Some(index)) = (leading_u64(&key), key.get(8..).and_then(leading_u64)) else {
                return fail(ErrorKind::EIO, "bad chunk key");
            };
            out.push((InodeId(inode), index, ChunkRecord::decode(&value)?));
        }
        Ok(out)
    }

    /// Chunks of removed data awaiting garbage collection, by handle, up to
    /// `limit`: (handle, when it was removed in ns; 0 if not recorded).
    pub fn deleted_chunks(&self, limit: usize) -> Result<Vec<(ChunkHandle, i64)>, NsError> {
        let mut out = Vec::new();
        for item in self.scan(CF_DELETED_CHUNKS, b"", None)?.take(limit) {
            let (key, value) = item?;
            let Some(handle) = leading_u64(&key) else { return fail(ErrorKind::EIO, "bad deleted-chunk key") };
            let at = value.get(..8).map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
            out.push((ChunkHandle(handle), at));
        }
        Ok(out)
    }

    /// The chunkservers being decommissioned (drained).
    pub fn decommissioned(&self) -> Result<Vec<NodeId>, NsError> {
        let Some(v) = self.read(CF_META, META_DECOMMISSIONED)? else { return Ok(Vec::new()) };
        if v.len() % 16 != 0 {
            return fail(ErrorKind::EIO, "bad decommissioned-nodes record");
        }
        Ok(v.chunks(16).map(|b| NodeId(uuid::Uuid::from_bytes(b.try_into().unwrap_or([0; 16])))).collect())
    }

    /// Whether client sessions (mounts) ever held files open here.
    pub fn had_open_sessions(&self) -> Result<bool, NsError> {
        Ok(self.read(CF_META, META_HAD_OPEN_SESSIONS)?.is_some())
    }

    /// Up to `limit` of the files kept after their last name went,
    /// because they were open.
    pub fn orphans(&self, limit: usize) -> Result<Vec<InodeId>, NsError> {
        let mut out = Vec::new();
        for item in self.scan(CF_ORPHANS, b"", None)?.take(limit) {
            out.extend(leading_u64(&item?.0).map(InodeId));
        }
        Ok(out)
    }

    pub fn is_orphan(&self, inode: InodeId) -> Result<bool, NsError> {
        Ok(self.read(CF_ORPHANS, &inode_key(inode))?.is_some())
    }

    pub fn readlink(&self, node: &NodeRef, who: &Who) -> Result<String, NsError> {
        let r = self.resolve_node(node, who)?;
        if r.attr.kind != FileKind::Symlink {
            return fail(ErrorKind::EINVAL, format!("inode {} is not a symlink", r.attr.inode));
        }
        Ok(r.symlink_target)
    }
}

/// The first `depth` components of `path`, for error messages.
fn prefix(path: &str, depth: usize) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).take(depth).collect();
    format!("/{}", parts.join("/"))
}
