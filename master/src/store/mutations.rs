//! The namespace rules: what each mutation checks and changes. Each runs on a
//! [`Txn`], so a refused request changes nothing.

use dfs_proto::names::{split_path, PATH_MAX_BYTES};
use dfs_proto::wire::namespace::*;
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, InodeId, NodeId};

use super::delegation;
use super::error::{fail, NsError};
use super::keys::{CF_PENDING_DELETE, META_DECOMMISSIONED, META_HAD_OPEN_SESSIONS, META_RESTORED};
use super::perms::{self, Who, EXEC, READ, WRITE};
use super::records::{ChunkRecord, InodeRecord};
use super::txn::Txn;
use super::users::{self, UserRecord};
use super::xattrs;
use dfs_proto::wire::users::AddUserRequest;
use dfs_proto::wire::xattrs::{RemoveXattrRequest, SetXattrRequest};

/// Most replicas a file may ask for.
pub const MAX_REPLICATION: u16 = 16;
/// Chunk sizes are whole checksum blocks: a multiple of 64 KiB, up to 1 GiB.
pub const CHUNK_SIZE_UNIT_BYTES: u64 = 64 * 1024;
pub const CHUNK_SIZE_MAX_BYTES: u64 = 1 << 30;

/// A namespace change, as the writer receives it.
#[derive(Clone, Debug)]
pub enum Mutation {
    Mkdir(MkdirRequest),
    Create(CreateRequest),
    /// A create whose file the client session (principal, id) holds open
    /// from the moment it exists (`open_seq` numbers the open).
    CreateHeld(CreateRequest, super::held::SessionKey),
    Symlink(SymlinkRequest),
    Link(LinkRequest),
    Mknod(MknodRequest),
    Rename(RenameRequest),
    Unlink(RemoveRequest),
    Rmdir(RemoveRequest),
    Delete(DeleteRequest),
    Setattr(SetattrRequest),
    SetXattr(SetXattrRequest),
    RemoveXattr(RemoveXattrRequest),
    /// The chunk at (inode, index), allocated if missing.
    AddChunk {
        inode: InodeId,
        index: u64,
    },
    /// A new lease's version for a chunk and the nodes that took it (empty:
    /// not known); versions never go down.
    SetChunkVersion {
        inode: InodeId,
        index: u64,
        version: ChunkVersion,
        members: Vec<NodeId>,
    },
    /// A finished copy holds the chunk at `version`: `node` joins its members.
    AddChunkMember {
        inode: InodeId,
        index: u64,
        version: ChunkVersion,
        node: NodeId,
    },
    /// The file is at least `length` bytes long (written data was committed);
    /// `chunks` are the (index, handle) pairs written, which must still be
    /// the file's chunks (a truncate may have dropped them meanwhile).
    CommitLength {
        inode: InodeId,
        length: u64,
        chunks: Vec<WrittenRange>,
    },
    /// A writer is about to get a lease on the file: its capabilities go,
    /// and (a writer other than the superuser) its setuid/setgid bits.
    DropPrivileges(InodeId),
    /// Reserves room for one appended record at the end of the file.
    ReserveAppend(AppendRequest),
    /// Records that client sessions hold files open here (once per store).
    NoteOpenSessions,
    /// Frees orphans (files whose last name went while they were open)
    /// no client holds any more.
    FreeOrphans(Vec<InodeId>),
    /// Garbage collection has taken these removed chunks in hand.
    ForgetDeletedChunks(Vec<ChunkHandle>),
    /// Chunk management has seen every replica since a restore: newer
    /// versions are no longer adopted (`backup.rs`).
    EndRestore,
    /// Starts (`on`) or ends draining a chunkserver.
    SetDecommissioned {
        node: NodeId,
        on: bool,
    },
    AddUser(AddUserRequest),
    /// A new stored key for the user named.
    RotateUser {
        name: String,
        stored_key: String,
    },
    RemoveUser(String),
    /// The key delegation tokens are made with (kept if one is stored).
    SetDelegationKey([u8; 32]),
    IssueToken(super::delegation::TokenRecord),
    RenewToken {
        id: u64,
        by: String,
        now_ms: u64,
        expires_ms: u64,
    },
    CancelToken {
        id: u64,
        by: String,
        now_ms: u64,
    },
    /// HDFS's CONCAT: the chunks of `sources`, in order, moved to the end
    /// of `target`, and the sources removed (see [`concat`]).
    Concat {
        target: String,
        sources: Vec<String>,
    },
}

/// What a successful mutation answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Attr(Attr),
    Chunk(ChunkRecord),
    Reserved(AppendReservation),
    User(UserRecord),
    Token(super::delegation::TokenRecord),
    /// A concat: the target's attributes, and each moved chunk's new index.
    Concat {
        attr: Attr,
        moved: Vec<(ChunkHandle, u64)>,
    },
    Done,
}

/// Values a request may leave out.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub replication: u16,
    pub chunk_size_bytes: u64,
}

/// Applies `m` to `t` with the permissions of `who` (the API's caller;
/// chunk management's own mutations run as [`Who::root`]).
pub fn apply(t: &mut Txn, m: &Mutation, d: &Defaults, who: &Who) -> Result<Outcome, NsError> {
    match m {
        Mutation::Mkdir(r) => mkdir(t, r, who).map(Outcome::Attr),
        Mutation::Create(r) => create(t, r, d, who).map(Outcome::Attr),
        Mutation::CreateHeld(r, key) => {
            let attr = create(t, r, d, who)?;
            t.hold(key, attr.inode, r.open_seq)?;
            Ok(Outcome::Attr(attr))
        }
        Mutation::Symlink(r) => symlink(t, r, who).map(Outcome::Attr),
        Mutation::Link(r) => link(t, r, who).map(Outcome::Attr),
        Mutation::Mknod(r) => mknod(t, r, who).map(Outcome::Attr),
        Mutation::Rename(r) => rename(t, r, who).map(|_| Outcome::Done),
        Mutation::Unlink(r) => unlink(t, &r.at, who).map(|_| Outcome::Done),
        Mutation::Rmdir(r) => rmdir(t, &r.at, who).map(|_| Outcome::Done),
        Mutation::Delete(r) => delete(t, r, who).map(|_| Outcome::Done),
        Mutation::Setattr(r) => setattr(t, r, who).map(Outcome::Attr),
        Mutation::SetXattr(r) => xattrs::set_xattr(t, r, who).map(Outcome::Attr),
        Mutation::RemoveXattr(r) => xattrs::remove_xattr(t, r, who).map(Outcome::Attr),
        Mutation::AddChunk { inode, index } => add_chunk(t, *inode, *index).map(Outcome::Chunk),
        Mutation::SetChunkVersion { inode, index, version, members } => set_chunk_version(t, *inode, *index, *version, members).map(Outcome::Chunk),
        Mutation::AddChunkMember { inode, index, version, node } => add_chunk_member(t, *inode, *index, *version, *node).map(|_| Outcome::Done),
        Mutation::CommitLength { inode, length, chunks } => commit_length(t, *inode, *length, chunks, who).map(Outcome::Attr),
        Mutation::DropPrivileges(inode) => drop_privileges_for(t, *inode, who).map(Outcome::Attr),
        Mutation::ReserveAppend(r) => reserve_append(t, r, who).map(Outcome::Reserved),
        Mutation::NoteOpenSessions => t.put_meta(META_HAD_OPEN_SESSIONS, &[1]).map(|_| Outcome::Done),
        Mutation::EndRestore => t.delete_meta(META_RESTORED).map(|_| Outcome::Done),
        Mutation::FreeOrphans(inodes) => inodes.iter().try_for_each(|i| free_orphan(t, *i)).map(|_| Outcome::Done),
        Mutation::ForgetDeletedChunks(handles) => handles.iter().try_for_each(|h| t.forget_deleted_chunk(*h)).map(|_| Outcome::Done),
        Mutation::SetDecommissioned { node, on } => set_decommissioned(t, *node, *on).map(|_| Outcome::Done),
        Mutation::AddUser(r) => users::add_user(t, r).map(Outcome::User),
        Mutation::RotateUser { name, stored_key } => users::rotate_user(t, name, stored_key).map(Outcome::User),
        Mutation::RemoveUser(name) => users::remove_user(t, name).map(|_| Outcome::Done),
        Mutation::SetDelegationKey(key) => delegation::set_key(t, key).map(|_| Outcome::Done),
        Mutation::IssueToken(r) => delegation::issue(t, r).map(|_| Outcome::Done),
        Mutation::RenewToken { id, by, now_ms, expires_ms } => delegation::renew(t, *id, by, *now_ms, *expires_ms).map(Outcome::Token),
        Mutation::CancelToken { id, by, now_ms } => delegation::cancel(t, *id, by, *now_ms).map(|_| Outcome::Done),
        Mutation::Concat { target, sources } => concat(t, target, sources, who),
    }
}

fn set_decommissioned(t: &mut Txn, node: NodeId, on: bool) -> Result<(), NsError> {
    let mut nodes = t.store.decommissioned()?;
    nodes.retain(|n| *n != node);
    if on {
        nodes.push(node);
    }
    let bytes: Vec<u8> = nodes.iter().flat_map(|n| *n.0.as_bytes()).collect();
    t.put_meta(META_DECOMMISSIONED, &bytes)
}

pub fn check_replication(r: u16) -> Result<(), NsError> {
    if r == 0 || r > MAX_REPLICATION {
        return fail(ErrorKind::EINVAL, format!("replication {r} is outside 1..={MAX_REPLICATION}"));
    }
    Ok(())
}

pub fn check_chunk_size(bytes: u64) -> Result<(), NsError> {
    if bytes == 0 || bytes % CHUNK_SIZE_UNIT_BYTES != 0 || bytes > CHUNK_SIZE_MAX_BYTES {
        return fail(ErrorKind::EINVAL, format!("chunk size {bytes} is not a multiple of 64 KiB up to 1 GiB"));
    }
    Ok(())
}

fn check_mode(mode: u32) -> Result<u32, NsError> {
    if mode > 0o7777 {
        return fail(ErrorKind::EINVAL, format!("mode {mode:o} has bits beyond 7777"));
    }
    Ok(mode)
}

/// A new inode made by `who` in `parent` (owner and group by [`perms::new_owner`]).
fn new_record(t: &Txn, kind: FileKind, owner: &NewOwner, default_mode: u32, parent: &Attr, who: &Who) -> Result<InodeRecord, NsError> {
    let mode = check_mode(owner.mode.unwrap_or(default_mode))?;
    let (uid, gid, mode) = perms::new_owner(who, parent, kind, mode, owner.uid, owner.gid);
    let attr = Attr {
        inode: InodeId(0),
        kind,
        mode,
        uid,
        gid,
        size: 0,
        atime_ns: t.now_ns,
        mtime_ns: t.now_ns,
        ctime_ns: t.now_ns,
        nlink: if kind == FileKind::Dir { 2 } else { 1 },
        replication: 0,
        chunk_size_bytes: 0,
        parent: parent.inode,
        rdev: 0,
        has_xattrs: false,
    };
    Ok(InodeRecord { attr, symlink_target: String::new() })
}

/// Adds `record` as `name` in directory `parent`.
fn add_child(t: &mut Txn, parent: InodeId, name: &str, record: InodeRecord) -> Result<Attr, NsError> {
    let is_dir = record.is_dir();
    let attr = t.add_inode(record);
    t.put_entry(parent, name, &attr)?;
    let mut dir = t.inode(parent)?;
    t.touch_dir(&mut dir);
    if is_dir {
        dir.attr.nlink += 1;
    }
    t.put_inode(dir);
    Ok(attr)
}

/// The entry `name` of `parent` with its inode, or ENOENT.
fn existing(t: &Txn, parent: InodeId, name: &str) -> Result<InodeRecord, NsError> {
    match t.store.get_entry(parent, name)? {
        Some(e) => t.inode(e.child),
        None => fail(ErrorKind::ENOENT, format!("{name:?}: no such file or directory")),
    }
}

/// The directory an [`EntryRef`] adds an entry to, which must be live: a
/// directory detached by a recursive delete (or below one, not yet reaped)
/// is ENOENT, as a removed directory is on Linux, instead of taking a new
/// entry the reaper would then free. Only a parent named by inode can be
/// detached (a path is walked from the root through live entries), and
/// only while a removed subtree waits (`pending_delete`), so a create pays
/// no extra read otherwise.
fn live_parent<'a>(t: &Txn, at: &'a EntryRef, who: &Who) -> Result<(InodeRecord, &'a str), NsError> {
    let (parent, name) = t.store.resolve_parent(at, who)?;
    if matches!(at.form()?, Entry::Child(..)) && t.counters.pending_delete > 0 && is_detached(t, &parent)? {
        return fail(ErrorKind::ENOENT, format!("parent of {name:?} was removed"));
    }
    Ok((parent, name))
}

/// True when `dir` is a detached directory or lies below one: walking up
/// its parents meets a directory marked removed (nlink 0, see
/// [`mark_detached`]) or one whose inode is already freed.
fn is_detached(t: &Txn, dir: &InodeRecord) -> Result<bool, NsError> {
    let mut current = dir.clone();
    // Depth is bounded by the path length limit; the cap guards a damaged store.
    for _ in 0..PATH_MAX_BYTES {
        if current.attr.nlink == 0 {
            return Ok(true);
        }
        if current.attr.inode == InodeId::ROOT {
            return Ok(false);
        }
        current = match t.inode(current.attr.parent) {
            Ok(parent) => parent,
            Err(e) if e.kind == ErrorKind::ENOENT => return Ok(true),
            Err(e) => return Err(e),
        };
    }
    fail(ErrorKind::EIO, "parent chain does not reach the root")
}

/// Marks a directory as removed while it waits for the reaper: nlink 0, as
/// fstat shows for a removed directory on Linux, and what [`is_detached`]
/// looks for. A live directory always has nlink 2 or more.
fn mark_detached(t: &mut Txn, mut dir: InodeRecord) {
    dir.attr.nlink = 0;
    dir.attr.ctime_ns = t.now_ns;
    t.put_inode(dir);
}

fn mkdir(t: &mut Txn, r: &MkdirRequest, who: &Who) -> Result<Attr, NsError> {
    if let (true, Entry::Path(path)) = (r.parents, r.at.form()?) {
        return mkdir_parents(t, path, &r.owner, who);
    }
    let (parent, name) = live_parent(t, &r.at, who)?;
    if let Some(e) = t.store.get_entry(parent.attr.inode, name)? {
        let found = t.inode(e.child)?;
        if r.parents && found.is_dir() {
            return Ok(found.attr);
        }
        return fail(ErrorKind::EEXIST, format!("{name:?} exists"));
    }
    perms::check(who, &parent.attr, WRITE | EXEC, name)?;
    let record = new_record(t, FileKind::Dir, &r.owner, 0o755, &parent.attr, who)?;
    add_child(t, parent.attr.inode, name, record)
}

/// `mkdir -p`: creates each missing directory of `path`; an existing
/// directory at the end is success.
fn mkdir_parents(t: &mut Txn, path: &str, owner: &NewOwner, who: &Who) -> Result<Attr, NsError> {
    let parts = split_path(path)?;
    let mut current = t.inode(InodeId::ROOT)?;
    for (i, part) in parts.iter().enumerate() {
        perms::check(who, &current.attr, EXEC, part)?;
        current = match t.store.get_entry(current.attr.inode, part)? {
            Some(e) => {
                let found = t.inode(e.child)?;
                if !found.is_dir() {
                    let kind = if i + 1 == parts.len() { ErrorKind::EEXIST } else { ErrorKind::ENOTDIR };
                    return fail(kind, format!("{part:?} exists and is not a directory"));
                }
                found
            }
            None => {
                perms::check(who, &current.attr, WRITE | EXEC, part)?;
                let record = new_record(t, FileKind::Dir, owner, 0o755, &current.attr, who)?;
                let attr = add_child(t, current.attr.inode, part, record)?;
                t.inode(attr.inode)?
            }
        };
    }
    Ok(current.attr)
}

/// Makes a file; an existing one is opened for writing (non-exclusive:
/// write permission on it) or replaced (overwrite: as removing it).
fn create(t: &mut Txn, r: &CreateRequest, d: &Defaults, who: &Who) -> Result<Attr, NsError> {
    let replication = r.replication.unwrap_or(d.replication);
    check_replication(replication)?;
    let chunk_size = r.chunk_size_bytes.unwrap_or(d.chunk_size_bytes);
    check_chunk_size(chunk_size)?;
    let (parent, name) = live_parent(t, &r.at, who)?;
    if let Some(e) = t.store.get_entry(parent.attr.inode, name)? {
        let found = t.inode(e.child)?;
        match (r.overwrite, r.exclusive, found.attr.kind) {
            (_, _, FileKind::Dir) if r.overwrite || !r.exclusive => {
                return fail(ErrorKind::EISDIR, format!("{name:?} is a directory"));
            }
            // The old file goes (its chunks to garbage collection) in the
            // same batch that creates the new one: no moment without a file.
            (true, _, _) => {
                perms::check_remove(who, &parent.attr, &found.attr, name)?;
                remove_child(t, parent.attr.inode, name, &found)?
            }
            (false, false, FileKind::File) => {
                perms::check(who, &found.attr, WRITE, name)?;
                return Ok(found.attr);
            }
            _ => return fail(ErrorKind::EEXIST, format!("{name:?} exists")),
        }
    } else {
        perms::check(who, &parent.attr, WRITE | EXEC, name)?;
    }
    let mut record = new_record(t, FileKind::File, &r.owner, 0o644, &parent.attr, who)?;
    record.attr.replication = replication;
    record.attr.chunk_size_bytes = chunk_size;
    add_child(t, parent.attr.inode, name, record)
}

/// The live directory and name of `at` for a new entry: the name must be
/// free (EEXIST) and `who` may write and search the directory.
fn free_name<'a>(t: &Txn, at: &'a EntryRef, who: &Who) -> Result<(InodeRecord, &'a str), NsError> {
    let (parent, name) = live_parent(t, at, who)?;
    if t.store.get_entry(parent.attr.inode, name)?.is_some() {
        return fail(ErrorKind::EEXIST, format!("{name:?} exists"));
    }
    perms::check(who, &parent.attr, WRITE | EXEC, name)?;
    Ok((parent, name))
}

fn symlink(t: &mut Txn, r: &SymlinkRequest, who: &Who) -> Result<Attr, NsError> {
    if r.target.is_empty() || r.target.contains('\0') || r.target.len() > PATH_MAX_BYTES {
        return fail(ErrorKind::EINVAL, "symlink target must be 1 to 4096 bytes without NUL");
    }
    let (parent, name) = free_name(t, &r.at, who)?;
    let owner = NewOwner { mode: Some(0o777), uid: r.uid, gid: r.gid };
    let mut record = new_record(t, FileKind::Symlink, &owner, 0o777, &parent.attr, who)?;
    record.attr.size = r.target.len() as u64;
    record.symlink_target = r.target.clone();
    add_child(t, parent.attr.inode, name, record)
}

/// Most names one inode may have (ext4's limit; Linux's EMLINK past it).
pub const LINK_MAX: u32 = 65_000;

/// A hard link: `r.dst` becomes one more name of the inode `r.src`, which
/// must not be a directory ([`perms::check_link`] says who may).
fn link(t: &mut Txn, r: &LinkRequest, who: &Who) -> Result<Attr, NsError> {
    let id = t.store.resolve_node(&r.src, who)?.attr.inode;
    let mut target = t.inode(id)?;
    let (parent, name) = free_name(t, &r.dst, who)?;
    perms::check_link(who, &target.attr, name)?;
    if target.attr.nlink == 0 {
        return fail(ErrorKind::ENOENT, format!("inode {id} has no name left to link to"));
    }
    if target.attr.nlink >= LINK_MAX {
        return fail(ErrorKind::EMLINK, format!("inode {id} has {LINK_MAX} links already"));
    }
    target.attr.nlink += 1;
    target.attr.ctime_ns = t.now_ns;
    let attr = target.attr.clone();
    t.put_inode(target);
    t.put_entry(parent.attr.inode, name, &attr)?;
    let mut dir = t.inode(parent.attr.inode)?;
    t.touch_dir(&mut dir);
    t.put_inode(dir);
    Ok(attr)
}

/// A FIFO, socket or device node: an entry with a type, a mode and, for a
/// device, its number; each client's kernel does the I/O.
fn mknod(t: &mut Txn, r: &MknodRequest, who: &Who) -> Result<Attr, NsError> {
    if !r.kind.is_special() {
        return fail(ErrorKind::EINVAL, format!("mknod makes FIFOs, sockets and devices, not a {}", r.kind.describe()));
    }
    let device = matches!(r.kind, FileKind::CharDevice | FileKind::BlockDevice);
    if !device && r.rdev != 0 {
        return fail(ErrorKind::EINVAL, format!("a {} has no device number", r.kind.describe()));
    }
    let (parent, name) = free_name(t, &r.at, who)?;
    perms::check_mknod(who, r.kind, name)?;
    let mut record = new_record(t, r.kind, &r.owner, 0o644, &parent.attr, who)?;
    record.attr.rdev = r.rdev;
    add_child(t, parent.attr.inode, name, record)
}

/// Frees the orphan `inode` unless a client holds it again or it is gone.
fn free_orphan(t: &mut Txn, inode: InodeId) -> Result<(), NsError> {
    if t.is_held(inode) || !t.store.is_orphan(inode)? {
        return Ok(());
    }
    match t.store.get_inode(inode)? {
        Some(record) if record.attr.nlink == 0 && record.attr.kind == FileKind::File => t.free_orphan(&record),
        // Not an orphan after all (a damaged record): only the mark goes.
        _ => t.forget_orphan(inode),
    }
}

/// Removes entry `name` of `parent`, and with it one link of `child`.
fn remove_child(t: &mut Txn, parent: InodeId, name: &str, child: &InodeRecord) -> Result<(), NsError> {
    t.delete_entry(parent, name)?;
    t.drop_link(child)?;
    let mut dir = t.inode(parent)?;
    t.touch_dir(&mut dir);
    if child.is_dir() {
        dir.attr.nlink = dir.attr.nlink.saturating_sub(1);
    }
    t.put_inode(dir);
    Ok(())
}

fn unlink(t: &mut Txn, at: &EntryRef, who: &Who) -> Result<(), NsError> {
    let (parent, name) = t.store.resolve_parent(at, who)?;
    let child = existing(t, parent.attr.inode, name)?;
    if child.is_dir() {
        return fail(ErrorKind::EISDIR, format!("{name:?} is a directory"));
    }
    perms::check_remove(who, &parent.attr, &child.attr, name)?;
    remove_child(t, parent.attr.inode, name, &child)
}

fn rmdir(t: &mut Txn, at: &EntryRef, who: &Who) -> Result<(), NsError> {
    let (parent, name) = t.store.resolve_parent(at, who)?;
    let child = existing(t, parent.attr.inode, name)?;
    if !child.is_dir() {
        return fail(ErrorKind::ENOTDIR, format!("{name:?} is not a directory"));
    }
    perms::check_remove(who, &parent.attr, &child.attr, name)?;
    if !t.store.is_empty_dir(child.attr.inode)? {
        return fail(ErrorKind::ENOTEMPTY, format!("{name:?} is not empty"));
    }
    remove_child(t, parent.attr.inode, name, &child)
}

/// Removes a file, or a directory with everything under it. A non-empty
/// directory is detached in this one batch and freed later by the reaper,
/// so the reply does not wait on the size of the subtree.
fn delete(t: &mut Txn, r: &DeleteRequest, who: &Who) -> Result<(), NsError> {
    let (parent, name) = t.store.resolve_parent(&r.at, who)?;
    let child = existing(t, parent.attr.inode, name)?;
    perms::check_remove(who, &parent.attr, &child.attr, name)?;
    if !child.is_dir() || t.store.is_empty_dir(child.attr.inode)? {
        return remove_child(t, parent.attr.inode, name, &child);
    }
    if !r.recursive {
        return fail(ErrorKind::ENOTEMPTY, format!("{name:?} is not empty"));
    }
    if !who.superuser {
        may_remove_subtree(t, &child, who)?;
    }
    t.delete_entry(parent.attr.inode, name)?;
    t.add_pending_delete(child.attr.inode)?;
    mark_detached(t, child);
    let mut dir = t.inode(parent.attr.inode)?;
    t.touch_dir(&mut dir);
    dir.attr.nlink = dir.attr.nlink.saturating_sub(1);
    t.put_inode(dir);
    Ok(())
}

/// `rm -r` as `who` would succeed: read, write and search on every
/// directory of the subtree, and the sticky rule for every entry in them.
/// It reads the whole subtree (in the writer: a user's large recursive
/// delete delays other mutations by its size; the superuser's skips it).
fn may_remove_subtree(t: &Txn, top: &InodeRecord, who: &Who) -> Result<(), NsError> {
    let mut dirs = vec![top.clone()];
    while let Some(dir) = dirs.pop() {
        perms::check(who, &dir.attr, READ | WRITE | EXEC, &format!("directory {}", dir.attr.inode))?;
        let mut after: Option<String> = None;
        loop {
            let page = t.store.entries_after(dir.attr.inode, after.as_deref(), 1024)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (name, entry) in &page {
                let child = t.inode(entry.child)?;
                perms::check_sticky(who, &dir.attr, &child.attr, name)?;
                if child.is_dir() {
                    dirs.push(child);
                }
            }
        }
    }
    Ok(())
}

/// True when `dir` is `ancestor` or lies below it.
fn is_within(t: &Txn, dir: InodeId, ancestor: InodeId) -> Result<bool, NsError> {
    let mut current = dir;
    // Depth is bounded by the path length limit; the cap guards a damaged store.
    for _ in 0..PATH_MAX_BYTES {
        if current == ancestor {
            return Ok(true);
        }
        if current == InodeId::ROOT {
            return Ok(false);
        }
        current = t.inode(current)?.attr.parent;
    }
    fail(ErrorKind::EIO, "parent chain does not reach the root")
}

/// POSIX rename, as `who`: write and search on both directories, the
/// sticky rule for the entry moved and the one replaced, and write on a
/// directory moved to another parent (its `..` changes).
fn rename(t: &mut Txn, r: &RenameRequest, who: &Who) -> Result<(), NsError> {
    // Both ends must be live: a name moved out of a detached subtree would
    // be freed under its new entry by the reaper, one moved in lost.
    let (src_parent, src_name) = live_parent(t, &r.src, who)?;
    let (dst_parent, dst_name) = live_parent(t, &r.dst, who)?;
    let (sp, dp) = (src_parent.attr.inode, dst_parent.attr.inode);
    let mut moving = existing(t, sp, src_name)?;
    perms::check_remove(who, &src_parent.attr, &moving.attr, src_name)?;
    perms::check(who, &dst_parent.attr, WRITE | EXEC, dst_name)?;
    if moving.is_dir() && sp != dp {
        perms::check(who, &moving.attr, WRITE, src_name)?;
    }
    if moving.is_dir() && is_within(t, dp, moving.attr.inode)? {
        return fail(ErrorKind::EINVAL, "cannot move a directory into itself");
    }
    if let Some(e) = t.store.get_entry(dp, dst_name)? {
        if e.child == moving.attr.inode {
            return Ok(()); // the same file: POSIX says do nothing
        }
        if r.noreplace {
            return fail(ErrorKind::EEXIST, format!("{dst_name:?} exists"));
        }
        let victim = t.inode(e.child)?;
        perms::check_sticky(who, &dst_parent.attr, &victim.attr, dst_name)?;
        match (moving.is_dir(), victim.is_dir()) {
            (true, false) => return fail(ErrorKind::ENOTDIR, format!("{dst_name:?} is not a directory")),
            (false, true) => return fail(ErrorKind::EISDIR, format!("{dst_name:?} is a directory")),
            (true, true) if !t.store.is_empty_dir(victim.attr.inode)? => return fail(ErrorKind::ENOTEMPTY, format!("{dst_name:?} is not empty")),
            _ => remove_child(t, dp, dst_name, &victim)?,
        }
    }
    t.delete_entry(sp, src_name)?;
    t.put_entry(dp, dst_name, &moving.attr)?;
    let is_dir = moving.is_dir();
    moving.attr.parent = dp;
    moving.attr.ctime_ns = t.now_ns;
    t.put_inode(moving);
    for (dir_id, delta) in [(sp, -1i64), (dp, 1)] {
        let mut dir = t.inode(dir_id)?;
        t.touch_dir(&mut dir);
        if is_dir && sp != dp {
            dir.attr.nlink = (dir.attr.nlink as i64 + delta).max(2) as u32;
        }
        t.put_inode(dir);
    }
    Ok(())
}

/// Sets what `r` names, each change under its rule ([`perms`]): all or nothing.
fn setattr(t: &mut Txn, r: &SetattrRequest, who: &Who) -> Result<Attr, NsError> {
    let id = t.store.resolve_node(&r.node, who)?.attr.inode;
    let mut record = t.inode(id)?;
    let name = r.node.path.clone().unwrap_or_else(|| format!("inode {id}"));
    let a = &mut record.attr;
    if let Some(mode) = r.mode {
        a.mode = perms::chmod(who, a, check_mode(mode)?, &name)?;
    }
    let owner_changes = r.uid.is_some_and(|u| u != a.uid) || r.gid.is_some_and(|g| g != a.gid);
    if r.uid.is_some() || r.gid.is_some() {
        a.mode = perms::chown(who, a, r.uid, r.gid, &name)?;
        a.uid = r.uid.unwrap_or(a.uid);
        a.gid = r.gid.unwrap_or(a.gid);
    }
    if r.size.is_some() {
        perms::check_io(who, a, WRITE, &name)?;
    }
    if r.replication.is_some() {
        perms::check(who, a, WRITE, &name)?;
    }
    if r.atime_ns.is_some() || r.mtime_ns.is_some() {
        perms::set_times(who, a, r.times_now, &name)?;
    }
    if let Some(size) = r.size {
        match a.kind {
            FileKind::File => {}
            FileKind::Dir => return fail(ErrorKind::EISDIR, "cannot set the size of a directory"),
            kind => return fail(ErrorKind::EINVAL, format!("cannot set the size of a {}", kind.describe())),
        }
        if size > FILE_SIZE_MAX_BYTES {
            return fail(ErrorKind::EINVAL, format!("size {size} is past the largest file size"));
        }
        a.mode = perms::mode_after_write(who, a);
        if size != a.size {
            t.counters.bytes = t.counters.bytes.saturating_sub(a.size).saturating_add(size);
            if size < a.size {
                // Whole chunks past the new end go to chunk garbage collection.
                t.drop_chunks(id, size.div_ceil(a.chunk_size_bytes.max(1)))?;
            }
            a.size = size;
            a.mtime_ns = t.now_ns;
        }
    }
    if let Some(replication) = r.replication {
        match a.kind {
            FileKind::File => {}
            FileKind::Dir => return fail(ErrorKind::EISDIR, "replication is set on files, not directories"),
            kind => return fail(ErrorKind::EINVAL, format!("cannot set the replication of a {}", kind.describe())),
        }
        check_replication(replication)?;
        a.replication = replication;
    }
    let now = t.now_ns;
    if let Some(atime) = r.atime_ns {
        a.atime_ns = if r.times_now { now } else { atime };
    }
    if let Some(mtime) = r.mtime_ns {
        a.mtime_ns = if r.times_now { now } else { mtime };
    }
    a.ctime_ns = t.now_ns;
    if r.size.is_some() || owner_changes {
        xattrs::drop_capability(t, a)?;
    }
    let attr = a.clone();
    t.put_inode(record);
    Ok(attr)
}

/// Most sources one concat takes.
pub const CONCAT_MAX_SOURCES: usize = 1_000;

/// HDFS's CONCAT, by moving chunk records (no byte is copied): the chunks
/// of each source, in order, go to the end of `target`, and the sources
/// go. So that every chunk keeps its place within a chunk-sized slot, the
/// target (unless empty) and each source before the last must end on a
/// chunk boundary, and all share one chunk size; as HDFS, the sources
/// are files in the target's directory, distinct from it and each other.
/// A source must have no other name and be open nowhere (its data moves).
/// The caller needs write on the target, read on each source, and the
/// right to remove it from the directory.
fn concat(t: &mut Txn, target: &str, sources: &[String], who: &Who) -> Result<Outcome, NsError> {
    if sources.is_empty() || sources.len() > CONCAT_MAX_SOURCES {
        return fail(ErrorKind::EINVAL, format!("a concat takes 1 to {CONCAT_MAX_SOURCES} sources"));
    }
    let target_at = EntryRef::path(target);
    let (dir, name) = t.store.resolve_parent(&target_at, who)?;
    let mut file = existing(t, dir.attr.inode, name)?;
    if file.attr.kind != FileKind::File {
        return fail(ErrorKind::EINVAL, format!("the concat target {target} is not a file"));
    }
    perms::check_io(who, &file.attr, WRITE, target)?;
    let chunk = file.attr.chunk_size_bytes.max(1);
    let mut parts: Vec<(InodeRecord, &str)> = Vec::with_capacity(sources.len());
    for path in sources {
        let at = EntryRef::path(path);
        let (src_dir, src_name) = t.store.resolve_parent(&at, who)?;
        let src = existing(t, src_dir.attr.inode, src_name)?;
        concat_source_allowed(t, who, &dir, &file, &src, path, &parts)?;
        parts.push((src, path.as_str()));
    }
    let mut end = file.attr.size;
    let mut moved = Vec::new();
    // Chunks left past the target's end by writes that never committed
    // go first: the moved ones take their indexes.
    t.drop_chunks(file.attr.inode, end.div_ceil(chunk))?;
    for (src, path) in &parts {
        let size = src.attr.size;
        if size > 0 && end % chunk != 0 {
            return fail(ErrorKind::EINVAL, format!("cannot concat {path}: the file before it does not end on a chunk boundary ({chunk} bytes)"));
        }
        let base = end / chunk;
        for index in 0..size.div_ceil(chunk) {
            if let Some(record) = t.store.chunk(src.attr.inode, index)? {
                t.move_chunk(src.attr.inode, index, file.attr.inode, base + index, &record)?;
                moved.push((record.handle, base + index));
            }
        }
        // Past its size a source holds only chunks of writes that never committed.
        t.drop_chunks(src.attr.inode, size.div_ceil(chunk))?;
        t.delete_entry(dir.attr.inode, src_name(path))?;
        t.forget_inode(src)?;
        end = end
            .checked_add(size)
            .filter(|e| *e <= FILE_SIZE_MAX_BYTES)
            .ok_or_else(|| NsError::new(ErrorKind::EFBIG, "the concat would pass the largest file size"))?;
    }
    t.counters.bytes = t.counters.bytes.saturating_add(end - file.attr.size);
    let a = &mut file.attr;
    a.mode = perms::mode_after_write(who, a);
    a.size = end;
    (a.mtime_ns, a.ctime_ns) = (t.now_ns, t.now_ns);
    xattrs::drop_capability(t, a)?;
    let attr = a.clone();
    t.put_inode(file);
    let mut parent = t.inode(dir.attr.inode)?;
    t.touch_dir(&mut parent);
    t.put_inode(parent);
    Ok(Outcome::Concat { attr, moved })
}

fn src_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `src` may join `target` in a concat, after those in `earlier`.
fn concat_source_allowed(
    t: &Txn,
    who: &Who,
    dir: &InodeRecord,
    target: &InodeRecord,
    src: &InodeRecord,
    path: &str,
    earlier: &[(InodeRecord, &str)],
) -> Result<(), NsError> {
    let a = &src.attr;
    if a.kind != FileKind::File {
        return fail(ErrorKind::EINVAL, format!("the concat source {path} is not a file"));
    }
    if a.parent != dir.attr.inode {
        return fail(ErrorKind::EINVAL, format!("the concat source {path} is not in the target's directory"));
    }
    if a.inode == target.attr.inode || earlier.iter().any(|(e, _)| e.attr.inode == a.inode) {
        return fail(ErrorKind::EINVAL, format!("{path} is named twice in the concat (or is its target)"));
    }
    if a.chunk_size_bytes != target.attr.chunk_size_bytes {
        return fail(ErrorKind::EINVAL, format!("{path} has another chunk size than the target ({} and {})", a.chunk_size_bytes, target.attr.chunk_size_bytes));
    }
    if a.nlink != 1 || t.is_held(a.inode) {
        return fail(ErrorKind::EINVAL, format!("{path} has other names or is open: its data cannot move"));
    }
    perms::check_io(who, a, READ, path)?;
    perms::check_remove(who, &dir.attr, a, src_name(path))
}

/// Where the next record of `r.length` bytes goes: at the end of the file,
/// or at the start of the next chunk when it would cross a chunk boundary
/// (so each record lives whole in one chunk). The file grows to cover it.
fn reserve_append(t: &mut Txn, r: &AppendRequest, who: &Who) -> Result<AppendReservation, NsError> {
    let mut file = file_inode(t, r.inode)?;
    perms::check_io(who, &file.attr, WRITE, &format!("inode {}", r.inode))?;
    drop_privileges(t, &mut file, who)?;
    let chunk = file.attr.chunk_size_bytes.max(1);
    let offset = append_offset(file.attr.size, r.length, chunk)?;
    let end = offset + r.length;
    if end > FILE_SIZE_MAX_BYTES {
        return fail(ErrorKind::EFBIG, "the record would go past the largest file size");
    }
    Ok(AppendReservation { offset, attr: written_up_to(t, file, end) })
}

/// A write reached `end`: the file grows to it (never shrinks) and counts
/// as modified.
fn written_up_to(t: &mut Txn, mut file: InodeRecord, end: u64) -> Attr {
    if end > file.attr.size {
        t.counters.bytes = t.counters.bytes.saturating_sub(file.attr.size).saturating_add(end);
        file.attr.size = end;
    }
    file.attr.mtime_ns = t.now_ns;
    file.attr.ctime_ns = t.now_ns;
    let attr = file.attr.clone();
    t.put_inode(file);
    attr
}

/// The offset of a record appended to a file of `size` bytes; records are at
/// most a quarter chunk, so padding wastes less than a quarter of a chunk.
pub fn append_offset(size: u64, length: u64, chunk: u64) -> Result<u64, NsError> {
    if length == 0 || length > chunk / 4 {
        return fail(ErrorKind::EINVAL, format!("a record is 1 to {} bytes (a quarter chunk), not {length}", chunk / 4));
    }
    let room = chunk - size % chunk;
    Ok(if length <= room { size } else { size + room })
}

/// Frees up to `limit` entries of one removed subtree. Returns false when
/// there was nothing left to free.
pub fn reap_step(t: &mut Txn, limit: usize) -> Result<bool, NsError> {
    let first = t.store.scan(CF_PENDING_DELETE, b"", None)?.next();
    let Some(item) = first else { return Ok(false) };
    let (key, _) = item?;
    let root = InodeId(super::keys::leading_u64(&key).ok_or_else(|| NsError::new(ErrorKind::EIO, "bad pending key"))?);
    let entries = t.store.entries_after(root, None, limit)?;
    for (name, entry) in &entries {
        t.delete_entry(root, name)?;
        let child = t.inode(entry.child)?;
        if child.is_dir() {
            t.add_pending_delete(child.attr.inode)?;
            // Its parent's inode may be freed in this very step: the mark
            // keeps it detached for creates by inode until it is reaped.
            mark_detached(t, child);
        } else {
            t.drop_link(&child)?;
        }
    }
    if entries.len() < limit {
        if let Some(record) = t.store.get_inode(root)? {
            t.remove_inode(&record)?;
        }
        t.remove_pending_delete(root)?;
    }
    Ok(true)
}

/// The file inode `inode`, or the errno for what it is instead.
fn file_inode(t: &Txn, inode: InodeId) -> Result<InodeRecord, NsError> {
    let record = t.inode(inode)?;
    match record.attr.kind {
        FileKind::File => Ok(record),
        FileKind::Dir => fail(ErrorKind::EISDIR, format!("inode {inode} is a directory")),
        kind => fail(ErrorKind::EINVAL, format!("inode {inode} is a {}", kind.describe())),
    }
}

/// Largest file: indexes stay far from u64 overflow for every chunk size.
pub use dfs_proto::wire::namespace::FILE_SIZE_MAX_BYTES;

fn add_chunk(t: &mut Txn, inode: InodeId, index: u64) -> Result<ChunkRecord, NsError> {
    let file = file_inode(t, inode)?;
    if index.saturating_mul(file.attr.chunk_size_bytes) >= FILE_SIZE_MAX_BYTES {
        return fail(ErrorKind::EINVAL, format!("chunk index {index} is past the largest file size"));
    }
    if let Some(existing) = t.store.chunk(inode, index)? {
        return Ok(existing);
    }
    let record = ChunkRecord { handle: ChunkHandle(t.counters.next_chunk), version: ChunkVersion(1), length: 0, members: Vec::new() };
    t.counters.next_chunk += 1;
    t.put_chunk(inode, index, &record)?;
    Ok(record)
}

fn set_chunk_version(t: &mut Txn, inode: InodeId, index: u64, version: ChunkVersion, members: &[NodeId]) -> Result<ChunkRecord, NsError> {
    let Some(mut record) = t.store.chunk(inode, index)? else {
        return fail(ErrorKind::ENOENT, format!("inode {inode} has no chunk {index}"));
    };
    if version < record.version {
        return fail(ErrorKind::EINVAL, format!("chunk version {version} is below the current {}", record.version));
    }
    record.version = version;
    record.members = members.to_vec();
    t.put_chunk(inode, index, &record)?;
    Ok(record)
}

/// Adds `node` to the members of the chunk's version, if still `version`.
fn add_chunk_member(t: &mut Txn, inode: InodeId, index: u64, version: ChunkVersion, node: NodeId) -> Result<(), NsError> {
    let Some(mut record) = t.store.chunk(inode, index)? else {
        return fail(ErrorKind::ENOENT, format!("inode {inode} has no chunk {index}"));
    };
    if record.version != version || record.members.is_empty() || record.members.contains(&node) {
        return Ok(()); // moved on, members not known, or already in
    }
    record.members.push(node);
    t.put_chunk(inode, index, &record)
}

fn commit_length(t: &mut Txn, inode: InodeId, length: u64, chunks: &[WrittenRange], who: &Who) -> Result<Attr, NsError> {
    let file = file_inode(t, inode)?;
    perms::check_io(who, &file.attr, WRITE, &format!("inode {inode}"))?;
    if length > FILE_SIZE_MAX_BYTES {
        return fail(ErrorKind::EINVAL, format!("length {length} is past the largest file size"));
    }
    for w in chunks {
        let Some(mut record) = t.store.chunk(inode, w.index)?.filter(|c| c.handle == w.handle) else {
            return fail(ErrorKind::ESTALE, format!("chunk {} of inode {inode} is no longer {} (truncated?)", w.index, w.handle));
        };
        if w.end > file.attr.chunk_size_bytes {
            return fail(ErrorKind::EINVAL, format!("chunk {} written up to {}, past its size {}", w.index, w.end, file.attr.chunk_size_bytes));
        }
        if w.end > record.length {
            record.length = w.end;
            t.put_chunk(inode, w.index, &record)?;
        }
    }
    let mut file = file;
    drop_privileges(t, &mut file, who)?;
    Ok(written_up_to(t, file, length))
}

/// What a write does to a file before its data changes (Linux's
/// `file_remove_privs`): capabilities go, and setuid/setgid for a writer
/// other than the superuser. Writers reach it by their lease, their
/// append reservation and their commit, whichever comes first.
fn drop_privileges(t: &mut Txn, file: &mut InodeRecord, who: &Who) -> Result<(), NsError> {
    xattrs::drop_capability(t, &mut file.attr)?;
    file.attr.mode = perms::mode_after_write(who, &file.attr);
    Ok(())
}

/// True when a write by `who` would change something of `a` besides its
/// data (so a lease grant must drop privileges first).
pub fn write_drops_privileges(who: &Who, a: &Attr) -> bool {
    a.has_xattrs || perms::mode_after_write(who, a) != a.mode
}

/// Drops the file's privileges for a writer about to be given a lease.
fn drop_privileges_for(t: &mut Txn, inode: InodeId, who: &Who) -> Result<Attr, NsError> {
    let mut file = file_inode(t, inode)?;
    perms::check_io(who, &file.attr, WRITE, &format!("inode {inode}"))?;
    let before = file.attr.clone();
    drop_privileges(t, &mut file, who)?;
    if file.attr != before {
        file.attr.ctime_ns = t.now_ns;
    }
    let attr = file.attr.clone();
    t.put_inode(file);
    Ok(attr)
}

/// Bytes written to one chunk of a file, from its start up to `end`, as a
/// commit names them (the chunk's committed length rises to `end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenRange {
    pub index: u64,
    pub handle: ChunkHandle,
    pub end: u64,
}

/// One range per chunk, the furthest end of each (a writer names a chunk
/// once per piece it sent).
pub fn furthest_per_chunk(mut ranges: Vec<WrittenRange>) -> Vec<WrittenRange> {
    ranges.sort_by_key(|r| (r.index, r.handle, std::cmp::Reverse(r.end)));
    ranges.dedup_by_key(|r| (r.index, r.handle));
    ranges
}
