//! The master's namespace API (`/v1/...`): one request/response pair per call.

use crate::error::ErrorKind;
use crate::ids::InodeId;
use crate::names::NameError;
use serde::{Deserialize, Serialize};

/// The largest file: 1 EiB, so offsets and byte counters never overflow.
pub const FILE_SIZE_MAX_BYTES: u64 = 1 << 60;

/// The type of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// A named pipe: an entry only, the kernel of each client does its I/O.
    Fifo,
    /// A Unix socket's name, as `bind(2)` leaves it.
    Socket,
    /// A character device node (`rdev` names the device).
    CharDevice,
    /// A block device node (`rdev` names the device).
    BlockDevice,
}

impl FileKind {
    /// FIFOs, sockets and device nodes: entries with no data of their own.
    pub fn is_special(self) -> bool {
        matches!(self, FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice)
    }

    /// The letter `ls -l` shows for the type.
    pub fn type_letter(self) -> char {
        match self {
            FileKind::File => '-',
            FileKind::Dir => 'd',
            FileKind::Symlink => 'l',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
            FileKind::CharDevice => 'c',
            FileKind::BlockDevice => 'b',
        }
    }

    /// What `stat(1)` calls the type.
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::File => "regular file",
            FileKind::Dir => "directory",
            FileKind::Symlink => "symbolic link",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character special file",
            FileKind::BlockDevice => "block special file",
        }
    }
}

/// Everything `stat` tells about an inode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub inode: InodeId,
    pub kind: FileKind,
    /// Permission bits only (`0o7777`); the type is in `kind`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Length in bytes (for a symlink, the length of its target).
    pub size: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub nlink: u32,
    /// How many replicas each chunk of this file gets (0 for directories).
    pub replication: u16,
    /// Size of this file's chunks in bytes (0 for directories).
    pub chunk_size_bytes: u64,
    /// The directory holding this inode (the root is its own parent); for
    /// a file with several links, the directory of the first.
    pub parent: InodeId,
    /// The device a device node names (Linux's encoding, as `makedev`); 0
    /// for other kinds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Whether the inode has extended attributes: a client may answer
    /// "none" without asking (the kernel asks before writes and `ls -l`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_xattrs: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Names a directory entry either by absolute `path` or by `parent` inode and
/// `name` (the form the FUSE mount uses). Exactly one form must be given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<InodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The two forms of [`EntryRef`], once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    Path(&'a str),
    Child(InodeId, &'a str),
}

impl EntryRef {
    pub fn path(path: impl Into<String>) -> Self {
        EntryRef { path: Some(path.into()), ..Default::default() }
    }

    pub fn child(parent: InodeId, name: impl Into<String>) -> Self {
        EntryRef { parent: Some(parent), name: Some(name.into()), path: None }
    }

    /// Which form this is; an error if both or neither were given.
    pub fn form(&self) -> Result<Entry<'_>, NameError> {
        match (&self.path, self.parent, &self.name) {
            (Some(p), None, None) => Ok(Entry::Path(p)),
            (None, Some(parent), Some(name)) => Ok(Entry::Child(parent, name)),
            _ => Err(NameError { kind: ErrorKind::EINVAL, message: "give either \"path\", or \"parent\" and \"name\"".into() }),
        }
    }
}

/// Names an inode either by absolute `path` or by `inode` number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<InodeId>,
}

/// Owner and permission bits for a new inode; absent fields take defaults
/// (uid/gid 0, mode 0o755 for directories, 0o644 for files).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOwner {
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

/// `POST /v1/mkdir`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkdirRequest {
    #[serde(flatten)]
    pub at: EntryRef,
    #[serde(flatten)]
    pub owner: NewOwner,
    /// Create missing parents too, and succeed if the directory exists (`mkdir -p`).
    #[serde(default)]
    pub parents: bool,
}

/// `POST /v1/create`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub at: EntryRef,
    #[serde(flatten)]
    pub owner: NewOwner,
    /// Replicas per chunk; the master's default when absent.
    #[serde(default)]
    pub replication: Option<u16>,
    /// Chunk size in bytes; the master's default when absent.
    #[serde(default)]
    pub chunk_size_bytes: Option<u64>,
    /// When false, an existing file is returned instead of EEXIST (open with
    /// O_CREAT but without O_EXCL). Defaults to true.
    #[serde(default = "yes")]
    pub exclusive: bool,
    /// Replace an existing file (or symlink) with a new empty one, atomically.
    #[serde(default)]
    pub overwrite: bool,
    /// The client session (see [`OpenFilesRequest`]) that holds the new
    /// file open from now on, and the number of this open in the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_session: Option<String>,
    #[serde(default)]
    pub open_seq: u64,
}

/// Most files one client session may hold open (a keepalive names them
/// all in one body).
pub const SESSION_FILES_MAX: usize = 32_768;

/// `POST /v1/open`: the file's attributes, fresh (close-to-open), and from
/// now on held open by `session`: if its last name goes, it lives on
/// without one until the session lets go. `seq` numbers the session's
/// opens in order; `write` says the open is for writing (the caller must
/// be allowed to read, or to write, the file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub inode: InodeId,
    pub session: String,
    pub seq: u64,
    #[serde(default)]
    pub write: bool,
}

/// `POST /v1/drop_privileges`: a write to file `inode` is about to change
/// its data, so what a write takes away goes now (Linux's
/// `file_remove_privs`: `security.capability`, and setuid/setgid unless
/// the caller is the superuser). The caller must be allowed to write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropPrivilegesRequest {
    pub inode: InodeId,
}

/// `POST /v1/open_files`: every file the client session holds open now,
/// as it stood after its open numbered `upto`; sent every few seconds (a
/// session silent for the master's timeout holds nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFilesRequest {
    pub session: String,
    pub inodes: Vec<InodeId>,
    pub upto: u64,
}

/// A session id: 1 to 64 letters, digits and dashes (a UUID).
pub fn check_session(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("a session id is 1 to 64 letters, digits and dashes, not {id:?}"));
    }
    Ok(())
}

fn yes() -> bool {
    true
}

/// `POST /v1/symlink`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymlinkRequest {
    #[serde(flatten)]
    pub at: EntryRef,
    pub target: String,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

/// `POST /v1/link`: a new name `dst` for the file `src` (a hard link).
/// Directories cannot be linked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequest {
    pub src: NodeRef,
    pub dst: EntryRef,
}

/// `POST /v1/mknod`: a FIFO, socket or device node (files are made by
/// create, directories by mkdir).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MknodRequest {
    #[serde(flatten)]
    pub at: EntryRef,
    #[serde(flatten)]
    pub owner: NewOwner,
    pub kind: FileKind,
    /// The device of a device node; must be 0 for FIFOs and sockets.
    #[serde(default)]
    pub rdev: u64,
}

/// `POST /v1/rename`: POSIX rename; with `noreplace`, an existing target is EEXIST.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameRequest {
    pub src: EntryRef,
    pub dst: EntryRef,
    #[serde(default)]
    pub noreplace: bool,
}

/// `POST /v1/unlink` (files and symlinks) and `POST /v1/rmdir` (empty directories).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveRequest {
    #[serde(flatten)]
    pub at: EntryRef,
}

/// `POST /v1/delete`: removes anything; a non-empty directory only with `recursive`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    #[serde(flatten)]
    pub at: EntryRef,
    #[serde(default)]
    pub recursive: bool,
}

/// `POST /v1/setattr`: each present field is set; the answer is the new [`Attr`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetattrRequest {
    #[serde(flatten)]
    pub node: NodeRef,
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    /// New length of a file (truncate or extend with zeros).
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub atime_ns: Option<i64>,
    #[serde(default)]
    pub mtime_ns: Option<i64>,
    /// The times given are set to the master's clock instead (`touch`,
    /// `UTIME_NOW`): allowed to whoever may write the file, where other
    /// times are the owner's to set.
    #[serde(default)]
    pub times_now: bool,
    /// Replicas per chunk of a file (`setrep`); re-replication or trimming follows.
    #[serde(default)]
    pub replication: Option<u16>,
}

/// `POST /v1/append`: reserves `length` bytes at the end of a file for one
/// record (GFS's record append). A record never crosses a chunk boundary:
/// when it would, the rest of the last chunk is left as padding (a hole
/// that reads as zeros) and the record starts the next chunk. The writer
/// then writes the record at `offset`, and may rewrite it there until it
/// succeeds (at least once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    pub inode: InodeId,
    pub length: u64,
}

/// The answer to [`AppendRequest`]: where the record goes, and the file
/// with its new length (which already covers the record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReservation {
    pub offset: u64,
    pub attr: Attr,
}

/// Query of `GET /v1/stat`, `GET /v1/readlink`: `?path=/a/b` or `?inode=7`.
pub type StatQuery = NodeRef;

/// Query of `GET /v1/lookup?parent=N&name=x`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupQuery {
    pub parent: InodeId,
    pub name: String,
}

/// Query of `GET /v1/list`: the directory (`path` or `inode`), and the page:
/// entries strictly after `start_after` in byte order of names, at most `limit`.
/// (Flat rather than flattened: URL-encoded queries cannot carry numbers
/// through serde's `flatten`.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<InodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl ListQuery {
    pub fn dir(&self) -> NodeRef {
        NodeRef { path: self.path.clone(), inode: self.inode }
    }
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
}

/// A page of a listing; `next_start_after` is set when more entries follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    pub entries: Vec<DirEntry>,
    pub next_start_after: Option<String>,
}

/// `GET /v1/readlink`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadlinkResponse {
    pub target: String,
}

/// An answer with nothing to say beyond success.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// The answer to `create`, `mkdir` and `symlink`: the new entry's
/// attributes, plus `dirs`, the attributes of every directory the change
/// touched, as of the change (the parent's new mtime and link count), so
/// that a client can cache them instead of asking again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Made {
    #[serde(flatten)]
    pub attr: Attr,
    #[serde(default)]
    pub dirs: Vec<Attr>,
}

/// The answer to `rename`, `unlink`, `rmdir` and `delete`: the attributes
/// of every directory the change touched, as of the change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    #[serde(default)]
    pub dirs: Vec<Attr>,
}

/// `GET /v1/fs`: file-system counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// FIFOs, sockets and device nodes.
    #[serde(default)]
    pub specials: u64,
    /// Sum of the lengths of all files.
    pub bytes: u64,
    /// Inodes of removed subtrees not yet reclaimed by the background reaper.
    pub pending_delete: u64,
}

/// `GET /v1/cluster`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_id: String,
    pub format_version: u32,
    pub version: String,
}

/// `GET /v1/admin/check`: a full consistency scan of the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub ok: bool,
    pub problems: Vec<String>,
    pub inodes: u64,
    pub entries: u64,
    pub counted: FsStats,
    pub recorded: FsStats,
}

/// Query of `GET /v1/admin/fsck`: a file, or one page of a directory's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckQuery {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One page of `GET /v1/admin/fsck`: the health of the files on it, and the
/// subdirectories for the caller to walk into.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckPage {
    pub files: Vec<FileHealth>,
    pub dirs: Vec<String>,
    pub next_start_after: Option<String>,
}

/// A file's chunks as the master sees them now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHealth {
    pub path: String,
    pub inode: InodeId,
    pub size: u64,
    pub replication: u16,
    pub chunks: u64,
    /// Chunks with no live replica at the current version: unreadable.
    pub missing: u64,
    /// Chunks with fewer current replicas than the file's replication.
    pub under_replicated: u64,
    /// Chunks with more current replicas than asked for.
    pub over_replicated: u64,
    /// Chunks with replicas at an old version on live chunkservers.
    pub stale: u64,
    /// Chunks with a replica that failed checksum verification.
    pub corrupt: u64,
    /// The chunks with any problem, one by one.
    pub problems: Vec<ChunkHealth>,
}

impl FileHealth {
    /// Healthy: every chunk readable, fully replicated, nothing stale or corrupt.
    /// (Extra replicas are trimmed in the background and are not a fault.)
    pub fn healthy(&self) -> bool {
        self.missing == 0 && self.under_replicated == 0 && self.stale == 0 && self.corrupt == 0
    }
}

/// The replicas of one chunk, counted by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkHealth {
    pub index: u64,
    pub handle: crate::ids::ChunkHandle,
    pub version: crate::ids::ChunkVersion,
    pub live: u32,
    pub stale: u32,
    pub corrupt: u32,
}
