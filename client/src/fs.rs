//! The file-system view of the client: paths in, attributes and open files
//! out. Each call is one request to the master unless it says otherwise.

use bytes::Bytes;
use dfs_proto::wire::namespace::*;
use dfs_proto::wire::xattrs::{RemoveXattrRequest, SetXattrRequest, XattrBytes, XattrSetMode};
use dfs_proto::ErrorKind;
use futures::{stream, Stream};

use crate::client::Client;
use crate::error::ClientError;
use crate::file::{FileReader, FileWriter};
use crate::request_id;

/// How to create a file; absent fields take the master's defaults.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Replace an existing file instead of failing with EEXIST.
    pub overwrite: bool,
    pub replication: Option<u16>,
    pub chunk_size_bytes: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Entries per page when streaming a listing.
const LIST_PAGE: u32 = 1000;

impl Client {
    pub async fn stat(&self, path: &str) -> Result<Attr, ClientError> {
        self.master().stat(path).await
    }

    /// The attributes, or `None` when nothing is at `path`.
    pub async fn try_stat(&self, path: &str) -> Result<Option<Attr>, ClientError> {
        match self.master().stat(path).await {
            Ok(a) => Ok(Some(a)),
            Err(e) if e.kind == ErrorKind::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a directory; with `parents`, also the missing ones above it,
    /// and an existing directory is fine (`mkdir -p`).
    pub async fn mkdir(&self, path: &str, parents: bool, mode: Option<u32>) -> Result<Attr, ClientError> {
        let owner = NewOwner { mode, ..Default::default() };
        self.master().mkdir(&MkdirRequest { at: EntryRef::path(path), owner, parents }).await.map(|m| m.attr)
    }

    /// Creates a file and opens it for writing from its start.
    /// The create and the writer's requests are one operation (one id).
    pub async fn create(&self, path: &str, o: &CreateOptions) -> Result<FileWriter, ClientError> {
        let req = CreateRequest {
            at: EntryRef::path(path),
            owner: NewOwner { mode: o.mode, uid: o.uid, gid: o.gid },
            replication: o.replication,
            chunk_size_bytes: o.chunk_size_bytes,
            exclusive: true,
            overwrite: o.overwrite,
            open_session: None,
            open_seq: 0,
        };
        request_id::operation(async {
            let attr = self.master().create(&req).await?.attr;
            Ok(FileWriter::new(self.clone(), attr, 0))
        })
        .await
    }

    /// A writer for a file whose attributes the caller has (the FUSE mount
    /// works by inode), positioned at `pos`.
    pub fn writer(&self, attr: Attr, pos: u64) -> FileWriter {
        FileWriter::new(self.clone(), attr, pos)
    }

    /// A reader for a file whose attributes the caller has; nothing cached
    /// about the file is kept (close-to-open).
    pub fn reader(&self, attr: Attr) -> FileReader {
        self.forget_file(attr.inode);
        FileReader::new(self.clone(), attr)
    }

    /// Opens an existing file for writing at `pos` (its end with `append`).
    pub async fn open_write(&self, path: &str, append: bool) -> Result<FileWriter, ClientError> {
        request_id::operation(async {
            let attr = self.regular_file(path).await?;
            let pos = if append { attr.size } else { 0 };
            Ok(FileWriter::new(self.clone(), attr, pos))
        })
        .await
    }

    /// Opens a file for reading. What was cached about it is dropped first,
    /// so every write closed before this open is seen (close-to-open).
    pub async fn open(&self, path: &str) -> Result<FileReader, ClientError> {
        request_id::operation(async {
            let attr = self.regular_file(path).await?;
            self.forget_file(attr.inode);
            Ok(FileReader::new(self.clone(), attr))
        })
        .await
    }

    async fn regular_file(&self, path: &str) -> Result<Attr, ClientError> {
        let attr = self.stat(path).await?;
        match attr.kind {
            FileKind::File => Ok(attr),
            FileKind::Dir => Err(ClientError::new(ErrorKind::EISDIR, format!("{path} is a directory"))),
            kind => Err(ClientError::new(ErrorKind::EINVAL, format!("{path} is a {}, not a regular file", kind.describe()))),
        }
    }

    /// Appends one record to the file at `path` (see [`Client::append`]).
    pub async fn append_record(&self, path: &str, record: Bytes) -> Result<u64, ClientError> {
        let attr = self.regular_file(path).await?;
        self.append(attr.inode, record).await
    }

    /// The entries of a directory in name order, fetched a page at a time
    /// as the stream is consumed.
    pub fn list<'a>(&'a self, path: &str) -> impl Stream<Item = Result<DirEntry, ClientError>> + 'a {
        let query = ListQuery { path: Some(path.to_string()), limit: Some(LIST_PAGE), ..Default::default() };
        let pages = stream::try_unfold(Some(query), move |next| async move {
            let Some(query) = next else { return Ok(None) };
            let page = self.master().list(&query).await?;
            let next = page.next_start_after.map(|after| ListQuery { start_after: Some(after), ..query });
            Ok::<_, ClientError>(Some((stream::iter(page.entries.into_iter().map(Ok)), next)))
        });
        futures::TryStreamExt::try_flatten(pages)
    }

    /// POSIX rename; with `noreplace` an existing target is EEXIST.
    pub async fn rename(&self, src: &str, dst: &str, noreplace: bool) -> Result<(), ClientError> {
        let req = RenameRequest { src: EntryRef::path(src), dst: EntryRef::path(dst), noreplace };
        self.master().rename(&req).await.map(|_| ())
    }

    /// Removes a file, symlink or empty directory; a non-empty directory
    /// only with `recursive` (its subtree is freed in the background).
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<(), ClientError> {
        self.master().delete(EntryRef::path(path), recursive).await.map(|_| ())
    }

    async fn setattr(&self, path: &str, f: impl FnOnce(&mut SetattrRequest)) -> Result<Attr, ClientError> {
        let mut req = SetattrRequest { node: NodeRef { path: Some(path.into()), inode: None }, ..Default::default() };
        f(&mut req);
        self.master().setattr(&req).await
    }

    /// Sets how many replicas each chunk of the file gets.
    pub async fn set_replication(&self, path: &str, replication: u16) -> Result<Attr, ClientError> {
        self.setattr(path, |r| r.replication = Some(replication)).await
    }

    pub async fn chmod(&self, path: &str, mode: u32) -> Result<Attr, ClientError> {
        self.setattr(path, |r| r.mode = Some(mode)).await
    }

    pub async fn chown(&self, path: &str, uid: Option<u32>, gid: Option<u32>) -> Result<Attr, ClientError> {
        self.setattr(path, |r| (r.uid, r.gid) = (uid, gid)).await
    }

    /// Sets access and modification times (ns since the epoch).
    pub async fn set_times(&self, path: &str, atime_ns: Option<i64>, mtime_ns: Option<i64>) -> Result<Attr, ClientError> {
        self.setattr(path, |r| (r.atime_ns, r.mtime_ns) = (atime_ns, mtime_ns)).await
    }

    pub async fn symlink(&self, path: &str, target: &str) -> Result<Attr, ClientError> {
        let req = SymlinkRequest { at: EntryRef::path(path), target: target.into(), uid: None, gid: None };
        self.master().symlink(&req).await.map(|m| m.attr)
    }

    /// A hard link: `path` becomes another name of the file at `existing`.
    pub async fn link(&self, existing: &str, path: &str) -> Result<Attr, ClientError> {
        let req = LinkRequest { src: NodeRef { path: Some(existing.into()), inode: None }, dst: EntryRef::path(path) };
        self.master().link(&req).await.map(|m| m.attr)
    }

    /// A FIFO, socket or device node at `path`.
    pub async fn mknod(&self, path: &str, kind: FileKind, mode: u32, rdev: u64) -> Result<Attr, ClientError> {
        let owner = NewOwner { mode: Some(mode), uid: None, gid: None };
        let req = MknodRequest { at: EntryRef::path(path), owner, kind, rdev };
        self.master().mknod(&req).await.map(|m| m.attr)
    }

    /// The value of the extended attribute `name` of `path`.
    pub async fn get_xattr(&self, path: &str, name: &str) -> Result<Vec<u8>, ClientError> {
        self.master().get_xattr(&NodeRef { path: Some(path.into()), inode: None }, name).await
    }

    /// The names of the extended attributes of `path` the caller may see.
    pub async fn list_xattrs(&self, path: &str) -> Result<Vec<String>, ClientError> {
        self.master().list_xattrs(&NodeRef { path: Some(path.into()), inode: None }).await
    }

    /// Sets (or with `value` None removes) the extended attribute `name`.
    pub async fn set_xattr(&self, path: &str, name: &str, value: Option<Vec<u8>>) -> Result<Attr, ClientError> {
        let node = NodeRef { path: Some(path.into()), inode: None };
        match value {
            Some(v) => {
                let req = SetXattrRequest { node, name: name.into(), value: XattrBytes(v), mode: XattrSetMode::Either };
                self.master().set_xattr(&req).await
            }
            None => self.master().remove_xattr(&RemoveXattrRequest { node, name: name.into() }).await,
        }
    }

    pub async fn readlink(&self, path: &str) -> Result<String, ClientError> {
        self.master().readlink(&NodeRef { path: Some(path.into()), inode: None }).await
    }
}
