//! A full consistency scan: every entry points at an existing inode (a
//! directory's parent being that directory), every inode is reachable from
//! the root or from a subtree awaiting the reaper, a directory by one entry
//! and anything else by as many as its link count, chunk records belong to
//! files, ids are below their allocator, and the stored counters match a
//! recount.

use std::collections::{HashMap, HashSet};

use dfs_proto::wire::namespace::{CheckReport, FileKind, FsStats};
use dfs_proto::InodeId;
use rocksdb::IteratorMode;

use super::db::Store;
use super::error::NsError;
use super::keys::*;
use super::records::{ChunkRecord, Counters, EntryRecord, InodeRecord};

impl Store {
    /// Scans the whole namespace. Meant for tests and operators: it reads
    /// every record, so it is O(size of the namespace).
    pub fn check(&self) -> Result<CheckReport, NsError> {
        // One snapshot for every read: each mutation (and reaper step) is one
        // batch, so the snapshot is a consistent namespace even while the
        // writer goes on.
        let snap = self.db.snapshot();
        let mut problems = Vec::new();
        let mut inodes: HashMap<InodeId, InodeRecord> = HashMap::new();
        for item in snap.iterator_cf(self.cf(CF_INODES)?, IteratorMode::Start) {
            let (key, value) = item?;
            let id = InodeId(leading_u64(&key).unwrap_or(0));
            match InodeRecord::decode(id, &value) {
                Ok(r) => {
                    inodes.insert(id, r);
                }
                Err(e) => problems.push(format!("inode {id}: {e}")),
            }
        }
        let mut children: HashMap<InodeId, Vec<InodeId>> = HashMap::new();
        let mut entries = 0u64;
        for item in snap.iterator_cf(self.cf(CF_ENTRIES)?, IteratorMode::Start) {
            let (key, value) = item?;
            entries += 1;
            let parent = InodeId(leading_u64(&key).unwrap_or(0));
            let name = String::from_utf8_lossy(&key[8.min(key.len())..]).into_owned();
            let Ok(entry) = EntryRecord::decode(&value) else {
                problems.push(format!("entry {parent}/{name}: undecodable"));
                continue;
            };
            match (inodes.get(&parent), inodes.get(&entry.child)) {
                (Some(p), _) if p.attr.kind != FileKind::Dir => problems.push(format!("entry {parent}/{name}: parent is not a directory")),
                (None, _) => problems.push(format!("entry {parent}/{name}: parent inode missing")),
                (_, None) => problems.push(format!("entry {parent}/{name}: child inode {} missing", entry.child)),
                (_, Some(c)) if c.attr.kind != entry.kind => problems.push(format!("entry {parent}/{name}: kind differs from inode")),
                (_, Some(c)) if c.is_dir() && c.attr.parent != parent => problems.push(format!("entry {parent}/{name}: inode's parent is {}", c.attr.parent)),
                _ => {}
            }
            children.entry(parent).or_default().push(entry.child);
        }
        let mut max_handle = 0;
        for item in snap.iterator_cf(self.cf(CF_CHUNKS)?, IteratorMode::Start) {
            let (key, value) = item?;
            let owner = InodeId(leading_u64(&key).unwrap_or(0));
            if !inodes.get(&owner).is_some_and(|r| r.attr.kind == FileKind::File) {
                problems.push(format!("chunk record of inode {owner}, which is not a file"));
            }
            match ChunkRecord::decode(&value) {
                Ok(c) => max_handle = max_handle.max(c.handle.0),
                Err(e) => problems.push(format!("chunk record of inode {owner}: {e}")),
            }
        }
        let mut roots = vec![InodeId::ROOT];
        for item in snap.iterator_cf(self.cf(CF_PENDING_DELETE)?, IteratorMode::Start) {
            roots.push(InodeId(leading_u64(&item?.0).unwrap_or(0)));
        }
        let pending_roots = roots.len() as u64 - 1;
        let mut seen = HashSet::new();
        for item in snap.iterator_cf(self.cf(CF_ORPHANS)?, IteratorMode::Start) {
            let id = InodeId(leading_u64(&item?.0).unwrap_or(0));
            match inodes.get(&id) {
                Some(r) if r.attr.nlink == 0 && r.attr.kind == FileKind::File => {
                    seen.insert(id);
                }
                Some(r) => problems.push(format!("orphan {id} is a {} with {} links", r.attr.kind.describe(), r.attr.nlink)),
                None => problems.push(format!("orphan {id} has no inode")),
            }
        }
        let mut links: HashMap<InodeId, u32> = HashMap::new();
        while let Some(id) = roots.pop() {
            let is_dir = inodes.get(&id).is_none_or(|r| r.is_dir());
            if !is_dir {
                *links.entry(id).or_default() += 1;
                seen.insert(id);
                continue;
            }
            if !seen.insert(id) {
                problems.push(format!("directory {id} is reachable twice"));
                continue;
            }
            roots.extend(children.get(&id).into_iter().flatten());
        }
        for (id, count) in &links {
            let nlink = inodes.get(id).map_or(0, |r| r.attr.nlink);
            if nlink != *count {
                problems.push(format!("inode {id} has {count} entries but a link count of {nlink}"));
            }
        }
        let mut counted = Counters { pending_delete: pending_roots, ..Default::default() };
        for (id, r) in &inodes {
            if !seen.contains(id) {
                problems.push(format!("inode {id} is an orphan"));
            }
            counted.count(&r.attr, 1);
        }
        let stored = match snap.get_cf(self.cf(CF_META)?, META_COUNTERS)? {
            Some(v) => Counters::decode(&v)?,
            None => return Err(NsError::new(dfs_proto::ErrorKind::EIO, "counters missing")),
        };
        if let Some(max) = inodes.keys().max().filter(|m| m.0 >= stored.next_inode) {
            problems.push(format!("inode {max} is not below the next id {}", stored.next_inode));
        }
        if max_handle >= stored.next_chunk {
            problems.push(format!("chunk handle {max_handle} is not below the next handle {}", stored.next_chunk));
        }
        let recorded: FsStats = stored.stats();
        let counted = counted.stats();
        if counted != recorded {
            problems.push(format!("counters differ: recorded {recorded:?}, counted {counted:?}"));
        }
        Ok(CheckReport { ok: problems.is_empty(), problems, inodes: inodes.len() as u64, entries, counted, recorded })
    }
}
