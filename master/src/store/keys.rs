//! Column families and key layout. Keys are big-endian so that RocksDB's byte
//! order is numeric order: a directory listing is one prefix scan, and a
//! file's chunks come out by index.

use dfs_proto::InodeId;

/// inode id (8 bytes) → [`super::records::InodeRecord`]
pub const CF_INODES: &str = "inodes";
/// parent inode (8) ++ name bytes → [`super::records::EntryRecord`]
pub const CF_ENTRIES: &str = "entries";
/// inode (8) ++ chunk index (8) → [`super::records::ChunkRecord`]
pub const CF_CHUNKS: &str = "chunks";
/// inode (8) → empty: roots of removed subtrees the reaper still has to free.
pub const CF_PENDING_DELETE: &str = "pending_delete";
/// chunk handle (8) → when it was removed (i64 ns, BE; empty in older
/// databases): chunks of removed data, for chunk garbage collection.
pub const CF_DELETED_CHUNKS: &str = "deleted_chunks";
/// fixed names → cluster id, format version, counters.
pub const CF_META: &str = "meta";

/// `u/NAME` → a user's record, `g/NAME` → a group's gid (`users.rs`).
pub const CF_USERS: &str = "users";

/// inode (8) ++ attribute name → value: extended attributes (`xattrs.rs`).
pub const CF_XATTRS: &str = "xattrs";

/// inode (8) → since when (i64 ns, BE): files whose last name went while
/// they were open; freed once no client holds them (`held.rs`).
pub const CF_ORPHANS: &str = "orphans";

/// The retry cache (`retries.rs`): `k` ++ user ++ 0 ++ call id → when
/// (i64 ns, BE) ++ the answer; dropped by compactions once expired
/// (`expiry.rs`).
pub const CF_RETRIES: &str = "retries";

pub const ALL_CFS: [&str; 10] = [CF_INODES, CF_ENTRIES, CF_CHUNKS, CF_PENDING_DELETE, CF_DELETED_CHUNKS, CF_META, CF_USERS, CF_XATTRS, CF_ORPHANS, CF_RETRIES];

pub const META_FORMAT_VERSION: &[u8] = b"format_version";
pub const META_CLUSTER_ID: &[u8] = b"cluster_id";
pub const META_COUNTERS: &[u8] = b"counters";
/// The metadata log's current epoch (see `metalog`), a big-endian u64.
pub const META_LOG_EPOCH: &[u8] = b"log_epoch";
/// Node ids (16 bytes each) of chunkservers being drained by decommission.
pub const META_DECOMMISSIONED: &[u8] = b"decommissioned";
/// Present once a client session held files open here: a restart then
/// waits for mounts to restate what they hold (`held.rs`).
pub const META_HAD_OPEN_SESSIONS: &[u8] = b"had_open_sessions";
/// Present (the backup's time, big-endian Unix ms) from a restore until
/// chunk management has seen every replica since (`backup.rs`).
pub const META_RESTORED: &[u8] = b"restored";
/// On a master of a Raft group: the group's state the store holds up to
/// (the last applied log id and the membership; `raft::machine` encodes
/// it), written in the same batch as each applied entry.
pub const META_RAFT_STATE: &[u8] = b"raft_state";

pub fn inode_key(id: InodeId) -> [u8; 8] {
    id.0.to_be_bytes()
}

pub fn entry_key(parent: InodeId, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + name.len());
    k.extend_from_slice(&parent.0.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

/// The prefix every entry of directory `parent` starts with.
pub fn entry_prefix(parent: InodeId) -> [u8; 8] {
    parent.0.to_be_bytes()
}

pub fn xattr_key(inode: InodeId, name: &str) -> Vec<u8> {
    entry_key(inode, name)
}

pub fn chunk_key(inode: InodeId, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&inode.0.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Reads the big-endian u64 at the start of a key; None if it is too short.
pub fn leading_u64(key: &[u8]) -> Option<u64> {
    key.get(..8).map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_by_parent_then_name() {
        let a = entry_key(InodeId(2), "zz");
        let b = entry_key(InodeId(3), "a");
        assert!(a < b);
        assert!(entry_key(InodeId(2), "a") < entry_key(InodeId(2), "b"));
        assert!(a.starts_with(&entry_prefix(InodeId(2))));
        assert_eq!(leading_u64(&chunk_key(InodeId(9), 4)), Some(9));
    }
}
