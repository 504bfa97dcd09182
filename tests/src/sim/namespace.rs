//! The namespace as the master's store holds it: files with their
//! replication and chunk size, each chunk's handle, recorded version,
//! committed length and the members of its version, and the removal records
//! of deleted files' chunks. Store writes the engine asks for are applied
//! here with the real store's rules (a version never goes below the
//! recorded one; a member joins only the version it names).

use std::collections::BTreeMap;

use dfs_master::chunks::chunk_map::FileMeta;
use dfs_master::store::{Mutation, NsError};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, InodeId, NodeId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    /// Committed length in bytes.
    pub length: u64,
    pub members: Vec<NodeId>,
}

#[derive(Clone, Debug)]
pub struct File {
    pub meta: FileMeta,
    pub chunks: BTreeMap<u64, Record>,
}

#[derive(Default)]
pub struct Namespace {
    pub files: BTreeMap<InodeId, File>,
    /// Where each live chunk is: (inode, index).
    pub by_handle: BTreeMap<ChunkHandle, (InodeId, u64)>,
    /// Removal records of deleted chunks, until forgotten.
    pub removed: BTreeMap<ChunkHandle, ()>,
    next_inode: u64,
    next_handle: u64,
}

fn fail(kind: ErrorKind, message: String) -> Result<(), NsError> {
    Err(NsError::new(kind, message))
}

impl Namespace {
    pub fn create_file(&mut self, meta: FileMeta) -> InodeId {
        self.next_inode += 1;
        let inode = InodeId(100 + self.next_inode);
        self.files.insert(inode, File { meta, chunks: BTreeMap::new() });
        inode
    }

    /// The chunk at (inode, index), allocated at version 1 if missing.
    pub fn chunk_for_write(&mut self, inode: InodeId, index: u64) -> Result<(Record, FileMeta), NsError> {
        let Some(file) = self.files.get_mut(&inode) else {
            return Err(NsError::new(ErrorKind::ENOENT, format!("no inode {inode}")));
        };
        if let Some(r) = file.chunks.get(&index) {
            return Ok((r.clone(), file.meta));
        }
        self.next_handle += 1;
        let record = Record { handle: ChunkHandle(self.next_handle), version: ChunkVersion(1), length: 0, members: Vec::new() };
        file.chunks.insert(index, record.clone());
        self.by_handle.insert(record.handle, (inode, index));
        Ok((record, file.meta))
    }

    pub fn record(&self, handle: ChunkHandle) -> Option<&Record> {
        let (inode, index) = self.by_handle.get(&handle)?;
        self.files.get(inode)?.chunks.get(index)
    }

    fn record_at(&mut self, inode: InodeId, index: u64) -> Option<&mut Record> {
        self.files.get_mut(&inode)?.chunks.get_mut(&index)
    }

    pub fn is_live(&self, handle: ChunkHandle) -> bool {
        self.by_handle.contains_key(&handle)
    }

    pub fn file_of(&self, handle: ChunkHandle) -> Option<FileMeta> {
        let (inode, _) = self.by_handle.get(&handle)?;
        self.files.get(inode).map(|f| f.meta)
    }

    /// Deletes a file: its chunks become removal records; the handles.
    pub fn delete_file(&mut self, inode: InodeId) -> Vec<ChunkHandle> {
        let Some(file) = self.files.remove(&inode) else { return Vec::new() };
        let handles: Vec<ChunkHandle> = file.chunks.values().map(|r| r.handle).collect();
        for h in &handles {
            self.by_handle.remove(h);
            self.removed.insert(*h, ());
        }
        handles
    }

    /// A commit raised a chunk's committed length.
    pub fn commit_length(&mut self, handle: ChunkHandle, end: u64) -> bool {
        let Some((inode, index)) = self.by_handle.get(&handle).copied() else { return false };
        let Some(r) = self.record_at(inode, index) else { return false };
        r.length = r.length.max(end);
        true
    }

    pub fn set_replication(&mut self, inode: InodeId, replication: u16) -> Option<FileMeta> {
        let file = self.files.get_mut(&inode)?;
        file.meta.replication = replication;
        Some(file.meta)
    }

    /// Applies one of the engine's store writes, as the real store does.
    pub fn apply(&mut self, m: &Mutation) -> Result<(), NsError> {
        match m {
            Mutation::SetChunkVersion { inode, index, version, members } => {
                let Some(r) = self.record_at(*inode, *index) else {
                    return fail(ErrorKind::ENOENT, format!("inode {inode} has no chunk {index}"));
                };
                if *version < r.version {
                    return fail(ErrorKind::EINVAL, format!("chunk version {version} is below the current {}", r.version));
                }
                r.version = *version;
                r.members = members.clone();
                Ok(())
            }
            Mutation::AddChunkMember { inode, index, version, node } => {
                let Some(r) = self.record_at(*inode, *index) else {
                    return fail(ErrorKind::ENOENT, format!("inode {inode} has no chunk {index}"));
                };
                if r.version == *version && !r.members.is_empty() && !r.members.contains(node) {
                    r.members.push(*node);
                }
                Ok(())
            }
            Mutation::ForgetDeletedChunks(handles) => {
                for h in handles {
                    self.removed.remove(h);
                }
                Ok(())
            }
            other => fail(ErrorKind::EINVAL, format!("the simulator's store does not take {other:?}")),
        }
    }
}
