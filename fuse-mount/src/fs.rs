//! The FUSE file system: each kernel request becomes a task on the tokio
//! runtime that calls the client library and replies when done, so slow
//! calls (a write waiting out a lease, a restarting master) never hold up
//! the others. Inode numbers are the master's.

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use dfs_client::auth::{acting_as, acting_as_async};
use dfs_client::master::MasterClient;
use dfs_client::{Client, ClientError};
use dfs_proto::wire::namespace::*;
use dfs_proto::wire::xattrs::{RemoveXattrRequest, SetXattrRequest, XattrBytes, XattrSetMode};
use dfs_proto::InodeId;
use fuser::*;

use crate::attr::{errno, file_attr, name, time_or_now};
use crate::callers::Callers;
use crate::dir_attrs::DirAttrs;
use crate::dirs::OpenDirs;
use crate::files::OpenFiles;
use crate::here;
use crate::names::KnownDirs;
use crate::xattrs::{name_list, reply_bytes, XattrHints};

/// How long the kernel may trust what it was told.
#[derive(Clone, Copy, Debug)]
pub struct CacheTtls {
    pub entry: Duration,
    pub attr: Duration,
}

/// The mount's state, shared by the tasks serving requests.
pub struct Inner {
    client: Client,
    ttl: CacheTtls,
    files: OpenFiles,
    dirs: OpenDirs,
    known: KnownDirs,
    dir_attrs: DirAttrs,
    xattrs: XattrHints,
    /// Set once the session is up: how to tell the kernel to drop caches.
    pub notifier: OnceLock<Notifier>,
    /// Whom each request acts for.
    callers: Callers,
    /// The shared runtime, where requests that need more than one master
    /// call (or any chunkserver) are served.
    rt: tokio::runtime::Handle,
}

/// How often the master hears which files this mount holds open (its
/// sessions lapse after 30 s of silence).
const KEEP_OPEN_EVERY: Duration = Duration::from_secs(5);

pub struct DfsFs {
    inner: Arc<Inner>,
}

type Res<T> = Result<T, Errno>;

fn fail(e: ClientError) -> Errno {
    tracing::debug!(error = %e, "request failed");
    errno(&e)
}

fn at(parent: INodeNo, n: &OsStr) -> Res<EntryRef> {
    Ok(EntryRef { path: None, parent: Some(InodeId(parent.0)), name: Some(name(n)?.to_string()) })
}

/// The directory and name of an entry made by `at`.
fn parts(at: &EntryRef) -> (InodeId, &str) {
    (at.parent.unwrap_or(InodeId::ROOT), at.name.as_deref().unwrap_or_default())
}

/// Replies to a call with nothing to return but success or an errno.
fn done<T>(reply: ReplyEmpty, r: Result<T, ClientError>) {
    match r {
        Ok(_) => reply.ok(),
        Err(e) => reply.error(fail(e)),
    }
}

fn node(ino: INodeNo) -> NodeRef {
    NodeRef { path: None, inode: Some(InodeId(ino.0)) }
}

impl DfsFs {
    pub fn new(client: Client, ttl: CacheTtls, rt: tokio::runtime::Handle) -> Self {
        let inner = Inner {
            files: OpenFiles::new(client.clone()),
            client,
            ttl,
            dirs: OpenDirs::default(),
            known: KnownDirs::new(ttl.entry),
            dir_attrs: DirAttrs::new(ttl.attr),
            xattrs: XattrHints::new(ttl.attr),
            notifier: OnceLock::new(),
            callers: Callers::default(),
            rt,
        };
        DfsFs { inner: Arc::new(inner) }
    }

    pub fn inner(&self) -> Arc<Inner> {
        self.inner.clone()
    }

    /// Serves a request on the runtime, acting for its caller.
    fn spawn<F, Fut>(&self, fr: &Request, f: F)
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let who = self.inner.callers.of(fr);
        self.inner.rt.spawn(acting_as_async(who, f(self.inner.clone())));
    }

    /// Serves a request that is one call to the master: made from this
    /// FUSE thread (see `here.rs`), or on the runtime when the other FUSE
    /// threads must stay free; `then` replies with its result.
    fn master_call<T, F, Fut>(&self, fr: &Request, call: F, then: impl FnOnce(&Arc<Inner>, Result<T, ClientError>) + Send + 'static)
    where
        F: FnOnce(MasterClient) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ClientError>> + Send,
        T: Send + 'static,
    {
        let who = self.inner.callers.of(fr);
        match acting_as(who, || here::on_this_thread(&self.inner.client, call)) {
            Ok(r) => then(&self.inner, r),
            Err(call) => self.spawn(fr, move |s| async move {
                let r = call(s.client.master().clone()).await;
                then(&s, r)
            }),
        }
    }
}

impl Inner {
    /// The attributes to give the kernel, with this mount's pending writes
    /// counted in the size; remembered for the next open's cache decision.
    fn to_kernel(&self, mut a: Attr) -> FileAttr {
        self.xattrs.learn(&a, std::time::Instant::now());
        if a.kind == FileKind::File {
            a.size = self.files.visible_size(a.inode, a.size);
            self.files.cached.told(a.inode, (a.size, a.mtime_ns));
        }
        file_attr(&a)
    }

    /// Notes what the master says a change did to directories; after a
    /// failure, what is held of `dir` may be wrong.
    fn changed(&self, dir: InodeId, r: Result<&[Attr], &ClientError>) {
        match r {
            Ok(dirs) => self.dir_attrs.learn(dirs, std::time::Instant::now()),
            Err(_) => {
                self.known.forget(dir);
                self.dir_attrs.forget(dir);
            }
        }
    }

    /// Notes the outcome of making the entry `at`: the new entry's
    /// attributes, or the error.
    fn note_made(&self, at: &EntryRef, r: Result<Made, ClientError>) -> Result<Attr, ClientError> {
        let (parent, name) = parts(at);
        self.changed(parent, r.as_ref().map(|m| m.dirs.as_slice()));
        let m = r?;
        if m.attr.kind == FileKind::Dir {
            self.known.learn(m.attr.inode, Default::default(), std::time::Instant::now());
        }
        self.known.added(parent, name);
        Ok(m.attr)
    }

    /// Replies to a call that made the entry `at`.
    fn made(&self, reply: ReplyEntry, at: &EntryRef, r: Result<Made, ClientError>) {
        let r = self.note_made(at, r);
        self.entry(reply, r)
    }

    /// Notes the outcome of removing the entry `at`.
    fn removed(&self, at: &EntryRef, r: &Result<Changed, ClientError>) {
        let (parent, name) = parts(at);
        self.changed(parent, r.as_ref().map(|c| c.dirs.as_slice()));
        if r.is_ok() {
            self.known.removed(parent, name);
        }
    }

    fn entry(&self, reply: ReplyEntry, r: Result<Attr, ClientError>) {
        match r {
            Ok(a) => reply.entry_with_ttls(&self.ttl.attr, &self.ttl.entry, &self.to_kernel(a), Generation(0)),
            Err(e) => reply.error(fail(e)),
        }
    }

    /// Replies to a set or remove of an extended attribute; what the
    /// master answered is the inode's new state of having some.
    fn xattr_changed(&self, ino: INodeNo, reply: ReplyEmpty, r: Result<Attr, ClientError>) {
        match r {
            Ok(a) => {
                self.xattrs.learn(&a, std::time::Instant::now());
                reply.ok()
            }
            Err(e) => {
                self.xattrs.forget(InodeId(ino.0));
                reply.error(fail(e))
            }
        }
    }

    fn attr(&self, reply: ReplyAttr, r: Result<Attr, ClientError>) {
        match r {
            Ok(a) => reply.attr(&self.ttl.attr, &self.to_kernel(a)),
            Err(e) => reply.error(fail(e)),
        }
    }

    /// Tells the master every few seconds which files this mount holds
    /// open, so that a file unlinked or replaced anywhere while open here
    /// lives until its last close here (or until this mount is gone 30 s).
    pub async fn keep_open_files(self: Arc<Self>) {
        let mut tick = tokio::time::interval(KEEP_OPEN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut told_some = false;
        loop {
            tick.tick().await;
            let (open, upto) = self.files.open_inodes();
            if open.is_empty() && !told_some {
                continue;
            }
            told_some = !open.is_empty();
            if let Err(e) = self.client.master().open_files(self.files.session(), open, upto).await {
                tracing::warn!(error = %e, "could not tell the master which files are open here");
            }
        }
    }

    /// Commits what open files hold, waiting at most `limit`.
    pub async fn flush_all(&self, limit: Duration) {
        if tokio::time::timeout(limit, self.files.flush_all()).await.is_err() {
            tracing::error!("open files' writes could not be committed in time");
        }
    }

    fn owner(req: &Request, mode: u32, umask: u32) -> NewOwner {
        NewOwner { mode: Some(mode & !umask & 0o7777), uid: Some(req.uid()), gid: Some(req.gid()) }
    }

    /// Replies to a create that found the name taken, made elsewhere since
    /// this mount last saw the directory: without O_EXCL, open(O_CREAT)
    /// opens what is there.
    async fn open_found(&self, reply: ReplyCreate, parent: INodeNo, name: &str, flags: i32) {
        let ticket = self.files.begin_open();
        let r = self.open_existing(parent, name, flags, ticket.seq).await;
        self.opened_new(reply, r);
        drop(ticket); // registered here (or failed)
    }

    /// Replies to a create with the file opened, or the error.
    fn opened_new(&self, reply: ReplyCreate, r: Result<Attr, ClientError>) {
        match r {
            Ok(a) => {
                let fh = self.files.open(a.clone());
                let attr = self.to_kernel(a);
                reply.created(&self.ttl.entry, &attr, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(fail(e)),
        }
    }

    /// Has the master take from the file what a write takes away, as the
    /// write happens (Linux clears setuid at `write(2)`, and `fstat` shows
    /// it); the kernel's cached attributes and xattr hints go with it.
    async fn drop_privileges(&self, inode: InodeId) -> Result<(), ClientError> {
        self.client.master().drop_privileges(inode).await?;
        self.xattrs.forget(inode);
        if let Some(n) = self.notifier.get() {
            if let Err(e) = n.inval_inode(INodeNo(inode.0), -1, 0) {
                tracing::debug!(inode = inode.0, error = %e, "attribute invalidation failed");
            }
        }
        Ok(())
    }

    /// Opens a file given its fresh attributes from the master
    /// (close-to-open). The kernel keeps its cached pages only when the file
    /// is unchanged since it last heard of it; otherwise its attributes are
    /// dropped too.
    fn open(&self, ino: INodeNo, attr: Attr) -> Result<(u64, FopenFlags), ClientError> {
        if attr.kind != FileKind::File {
            return Err(ClientError::new(dfs_proto::ErrorKind::EISDIR, "not a regular file"));
        }
        let unchanged = self.files.cached.holds(attr.inode, (attr.size, attr.mtime_ns));
        let mut flags = FopenFlags::empty();
        if unchanged {
            flags |= FopenFlags::FOPEN_KEEP_CACHE;
        } else if let Some(n) = self.notifier.get() {
            // Only the attributes: the pages go anyway without KEEP_CACHE.
            if let Err(e) = n.inval_inode(ino, -1, 0) {
                tracing::debug!(inode = ino.0, error = %e, "attribute invalidation failed");
            }
            self.files.cached.dropped(attr.inode);
        }
        Ok((self.files.open(attr), flags))
    }

    /// The file at `parent`/`name` for a create that found it there,
    /// truncated when the open asks for it.
    async fn open_existing(&self, parent: INodeNo, name: &str, flags: i32, seq: u64) -> Result<Attr, ClientError> {
        let found = self.client.master().lookup(InodeId(parent.0), name).await?;
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let a = self.client.master().open(found.inode, self.files.session(), seq, write).await?;
        match a.kind {
            FileKind::File if flags & libc::O_TRUNC != 0 => self.files.truncate(a.inode, 0).await,
            FileKind::File => Ok(a),
            _ => Err(ClientError::new(dfs_proto::ErrorKind::EISDIR, format!("{name} is not a regular file"))),
        }
    }

    /// Applies a setattr: a size through the open files (which commit
    /// pending writes and zero a cut tail), the rest at the master.
    async fn setattr(&self, ino: InodeId, change: SetattrRequest) -> Result<Attr, ClientError> {
        if change.atime_ns.is_some() || change.mtime_ns.is_some() {
            // Writes still buffered would stamp the file when committed,
            // after these times (tar and rsync set mtime before close).
            self.files.flush_inode(ino).await?;
        }
        let truncated = match change.size {
            Some(size) => Some(self.files.truncate(ino, size).await?),
            None => None,
        };
        let rest = SetattrRequest { size: None, ..change };
        if rest != (SetattrRequest { node: rest.node.clone(), ..Default::default() }) {
            let r = self.client.master().setattr(&rest).await;
            match &r {
                Ok(a) if a.kind == FileKind::Dir => self.dir_attrs.learn(std::slice::from_ref(a), std::time::Instant::now()),
                _ => self.dir_attrs.forget(ino),
            }
            return r;
        }
        match truncated {
            Some(attr) => Ok(attr),
            None => self.client.master().stat_inode(ino).await,
        }
    }

    async fn statfs(&self) -> Result<(u64, u64, u64), ClientError> {
        let nodes = self.client.master().chunkservers().await?;
        let live = nodes.iter().filter(|n| n.state == "live");
        let (total, used) = live.fold((0u64, 0u64), |(t, u), n| (t + n.capacity_bytes, u + n.used_bytes));
        let fs = self.client.master().fs_stats().await?;
        Ok((total, total.saturating_sub(used), fs.files + fs.directories + fs.symlinks + fs.specials))
    }

    async fn readdir(&self, fh: FileHandle, offset: u64, mut add: impl FnMut(u64, &str, &Attr) -> bool) -> Result<(), ClientError> {
        let listing = self.dirs.get(fh.0).ok_or_else(|| ClientError::new(dfs_proto::ErrorKind::EINVAL, "unknown directory handle"))?;
        let mut listing = listing.lock().await;
        let mut i = offset as usize;
        loop {
            let Some((name, attr)) = listing.entry(&self.client, i).await? else {
                if let Some((names, since)) = listing.complete_names() {
                    self.known.learn(listing.dir.inode, names, since);
                }
                return Ok(());
            };
            i += 1;
            if add(i as u64, &name, &attr) {
                return Ok(());
            }
        }
    }
}

/// Whether `uid`/`gid` may access a node with `attr` as `mask` asks.
pub fn permitted(attr: &Attr, uid: u32, gid: u32, mask: i32) -> bool {
    let want = (mask & 7) as u32;
    if uid == 0 {
        // Root may do anything, except execute what nobody may execute.
        return want & 1 == 0 || attr.kind == FileKind::Dir || attr.mode & 0o111 != 0;
    }
    let bits = if uid == attr.uid {
        attr.mode >> 6
    } else if gid == attr.gid {
        attr.mode >> 3
    } else {
        attr.mode
    } & 7;
    bits & want == want
}

impl Filesystem for DfsFs {
    fn init(&mut self, _fr: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // 1 MiB requests each way; the kernel's own read-ahead as large.
        let _ = config.set_max_write(crate::attr::BLOCK_SIZE);
        let _ = config.set_max_readahead(crate::attr::BLOCK_SIZE);
        let _ = config.set_max_background(64);
        // HANDLE_KILLPRIV_V2: the master clears setuid/setgid and
        // security.capability on writes, truncates and chowns, so the kernel
        // need not ask for security.capability before every write(2) (it
        // marks the inode S_NOSEC after the first).
        let wanted = InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO | InitFlags::FUSE_PARALLEL_DIROPS | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        let _ = config.add_capabilities(wanted & config.capabilities());
        Ok(())
    }

    fn lookup(&self, fr: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        let Ok(n) = name(n).map(str::to_string) else { return reply.error(Errno::ENOENT) };
        if self.inner.known.absent(InodeId(parent.0), &n, std::time::Instant::now()) {
            return reply.error(Errno::ENOENT);
        }
        self.master_call(fr, move |m| async move { m.lookup(InodeId(parent.0), &n).await }, move |s, r| s.entry(reply, r));
    }

    fn forget(&self, _fr: &Request, ino: INodeNo, _nlookup: u64) {
        // Forgetting early only costs the kernel's page cache at next open.
        self.inner.files.cached.dropped(InodeId(ino.0));
        self.inner.xattrs.forget(InodeId(ino.0));
    }

    fn getattr(&self, fr: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some((a, left)) = self.inner.dir_attrs.fresh(InodeId(ino.0), std::time::Instant::now()) {
            return reply.attr(&left, &file_attr(&a));
        }
        self.master_call(fr, move |m| async move { m.stat_inode(InodeId(ino.0)).await }, move |s, r| s.attr(reply, r));
    }

    fn setattr(
        &self,
        fr: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = SetattrRequest {
            node: node(ino),
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            // `touch` (UTIME_NOW) is allowed to whoever may write; other times to the owner.
            times_now: [atime, mtime].iter().flatten().all(|t| matches!(t, TimeOrNow::Now)) && (atime.is_some() || mtime.is_some()),
            atime_ns: atime.map(time_or_now),
            mtime_ns: mtime.map(time_or_now),
            ..Default::default()
        };
        self.spawn(fr, move |s| async move {
            let r = s.setattr(InodeId(ino.0), change).await;
            s.attr(reply, r)
        });
    }

    fn readlink(&self, fr: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn(fr, move |s| async move {
            match s.client.master().readlink(&node(ino)).await {
                Ok(target) => reply.data(target.as_bytes()),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn mknod(&self, fr: &Request, parent: INodeNo, n: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let (at, owner) = match at(parent, n) {
            Ok(at) => (at, Inner::owner(fr, mode, umask)),
            Err(e) => return reply.error(e),
        };
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG => {
                let req = create_request(at.clone(), owner, None);
                return self.master_call(fr, move |m| async move { m.create(&req).await }, move |s, r| s.made(reply, &at, r));
            }
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            _ => return reply.error(Errno::EINVAL),
        };
        let rdev = if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) { u64::from(rdev) } else { 0 };
        let req = MknodRequest { at: at.clone(), owner, kind, rdev };
        self.master_call(fr, move |m| async move { m.mknod(&req).await }, move |s, r| s.made(reply, &at, r));
    }

    fn mkdir(&self, fr: &Request, parent: INodeNo, n: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let (at, owner) = match at(parent, n) {
            Ok(at) => (at, Inner::owner(fr, mode, umask)),
            Err(e) => return reply.error(e),
        };
        let req = MkdirRequest { at: at.clone(), owner, parents: false };
        self.master_call(fr, move |m| async move { m.mkdir(&req).await }, move |s, r| s.made(reply, &at, r));
    }

    fn unlink(&self, fr: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let at = match at(parent, n) {
            Ok(at) => at,
            Err(e) => return reply.error(e),
        };
        let target = at.clone();
        self.master_call(
            fr,
            move |m| async move { m.unlink(target).await },
            move |s, r| {
                s.removed(&at, &r);
                done(reply, r)
            },
        );
    }

    fn rmdir(&self, fr: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let at = match at(parent, n) {
            Ok(at) => at,
            Err(e) => return reply.error(e),
        };
        let target = at.clone();
        self.master_call(
            fr,
            move |m| async move { m.rmdir(target).await },
            move |s, r| {
                s.removed(&at, &r);
                done(reply, r)
            },
        );
    }

    fn symlink(&self, fr: &Request, parent: INodeNo, link: &OsStr, target: &Path, reply: ReplyEntry) {
        let (Ok(at), Some(target)) = (at(parent, link), target.to_str()) else { return reply.error(Errno::EINVAL) };
        let req = SymlinkRequest { at, target: target.to_string(), uid: Some(fr.uid()), gid: Some(fr.gid()) };
        self.spawn(fr, move |s| async move {
            let r = s.client.master().symlink(&req).await;
            s.made(reply, &req.at, r)
        });
    }

    fn rename(&self, fr: &Request, parent: INodeNo, n: &OsStr, newparent: INodeNo, newname: &OsStr, flags: RenameFlags, reply: ReplyEmpty) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL); // exchange and whiteout are not supported
        }
        let (src, dst) = match (at(parent, n), at(newparent, newname)) {
            (Ok(src), Ok(dst)) => (src, dst),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let req = RenameRequest { src, dst, noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE) };
        let (src, dst) = (req.src.clone(), req.dst.clone());
        self.master_call(
            fr,
            move |m| async move { m.rename(&req).await },
            move |s, r| {
                s.removed(&src, &r);
                let (dir, name) = parts(&dst);
                s.changed(dir, r.as_ref().map(|c| c.dirs.as_slice()));
                if r.is_ok() {
                    s.known.added(dir, name);
                }
                done(reply, r)
            },
        );
    }

    fn link(&self, fr: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let dst = match at(newparent, newname) {
            Ok(at) => at,
            Err(e) => return reply.error(e),
        };
        let req = LinkRequest { src: node(ino), dst: dst.clone() };
        self.master_call(fr, move |m| async move { m.link(&req).await }, move |s, r| s.made(reply, &dst, r));
    }

    fn open(&self, fr: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // Fresh attributes at every open: close-to-open consistency.
        // The master also notes that this mount holds it open (see `keep_open_files`).
        let session = self.inner.files.session().to_string();
        let ticket = self.inner.files.begin_open();
        let (seq, write) = (ticket.seq, flags.acc_mode() != OpenAccMode::O_RDONLY);
        let stat = move |m: MasterClient| async move { m.open(InodeId(ino.0), &session, seq, write).await };
        self.master_call(fr, stat, move |s, r| {
            let opened = r.and_then(|attr| s.open(ino, attr));
            drop(ticket); // the file is registered here (or the open failed)
            match opened {
                Ok((fh, flags)) => reply.opened(FileHandle(fh), flags),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn read(&self, fr: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, size: u32, _flags: OpenFlags, _lock_owner: Option<LockOwner>, reply: ReplyData) {
        let Some(file) = self.inner.files.get(fh.0) else { return reply.error(Errno::EBADF) };
        // A small random read is answered from this FUSE thread: handing it
        // to the runtime would cost as much as the chunkserver's work.
        if let Some(data) = self.inner.files.read_now(&file, offset, size as u64) {
            return reply.data(&data);
        }
        self.spawn(fr, move |s| async move {
            match s.files.read(&file, offset, size as u64).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn write(
        &self,
        fr: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(file) = self.inner.files.get(fh.0) else { return reply.error(Errno::EBADF) };
        let data = data.to_vec();
        let drop_privileges = file.first_write_drops_privileges(write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID));
        self.spawn(fr, move |s| async move {
            let written = async {
                if drop_privileges {
                    s.drop_privileges(file.inode).await?;
                }
                s.files.write(&file, offset, &data).await
            };
            match written.await {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn flush(&self, fr: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        let Some(file) = self.inner.files.get(fh.0) else { return reply.error(Errno::EBADF) };
        // The kernel sends a close's flush after the writes' replies: with
        // none pending (nor, for a handle that wrote, unsynced) there is
        // nothing to do, and no reason to wait.
        if !self.inner.files.close_needs_commit(&file) {
            return reply.ok();
        }
        self.spawn(fr, move |s| async move { done(reply, s.files.close_flush(&file).await) });
    }

    fn release(&self, fr: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, _lock_owner: Option<LockOwner>, _flush: bool, reply: ReplyEmpty) {
        // The usual close of a file only read, or made and left empty:
        // nothing to commit, and no reason to wait.
        let file = self.inner.files.get(fh.0);
        if file.is_none_or(|f| !self.inner.files.release_needs_commit(f.inode)) {
            self.inner.files.close(fh.0);
            return reply.ok();
        }
        self.spawn(fr, move |s| async move {
            match s.files.release(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => {
                    tracing::warn!(error = %e, "writes were lost at the last close of a file");
                    reply.error(fail(e))
                }
            }
        });
    }

    fn fsync(&self, fr: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let Some(file) = self.inner.files.get(fh.0) else { return reply.error(Errno::EBADF) };
        self.spawn(fr, move |s| async move { done(reply, s.files.fsync(&file).await) });
    }

    fn opendir(&self, fr: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.spawn(fr, move |s| async move {
            let opened = async {
                let dir = s.client.master().stat_inode(InodeId(ino.0)).await?;
                let parent = if dir.parent == dir.inode { dir.clone() } else { s.client.master().stat_inode(dir.parent).await? };
                Ok::<_, ClientError>(s.dirs.open(dir, parent))
            };
            match opened.await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn readdir(&self, fr: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.spawn(fr, move |s| async move {
            let r = s.readdir(fh, offset, |next, name, a| reply.add(INodeNo(a.inode.0), next, file_attr(a).kind, name)).await;
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn readdirplus(&self, fr: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        self.spawn(fr, move |s| async move {
            let ttl = s.ttl.attr.min(s.ttl.entry);
            let r = s
                .readdir(fh, offset, |next, name, a| {
                    let attr = s.to_kernel(a.clone());
                    reply.add(INodeNo(a.inode.0), next, name, &ttl, &attr, Generation(0))
                })
                .await;
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn releasedir(&self, _fr: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.inner.dirs.release(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _fr: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Every namespace change is on the master's disk before it replies.
        reply.ok();
    }

    fn statfs(&self, fr: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.spawn(fr, move |s| async move {
            const B: u64 = 4096;
            match s.statfs().await {
                Ok((total, free, inodes)) => reply.statfs(total / B, free / B, free / B, inodes + (1 << 32), 1 << 32, B as u32, 255, B as u32),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn getxattr(&self, fr: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(name) = name.to_str().map(str::to_string) else { return reply.error(Errno::ENOTSUP) };
        if self.inner.xattrs.surely_none(InodeId(ino.0), std::time::Instant::now()) {
            return reply.error(Errno::ENODATA);
        }
        self.master_call(
            fr,
            move |m| async move { m.get_xattr(&node(ino), &name).await },
            move |_, r| match r {
                Ok(value) => reply_bytes(reply, size, &value),
                Err(e) => reply.error(fail(e)),
            },
        );
    }

    fn listxattr(&self, fr: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if self.inner.xattrs.surely_none(InodeId(ino.0), std::time::Instant::now()) {
            return reply_bytes(reply, size, &[]);
        }
        self.master_call(
            fr,
            move |m| async move { m.list_xattrs(&node(ino)).await },
            move |_, r| match r {
                Ok(names) => reply_bytes(reply, size, &name_list(&names)),
                Err(e) => reply.error(fail(e)),
            },
        );
    }

    fn setxattr(&self, fr: &Request, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32, position: u32, reply: ReplyEmpty) {
        let Some(name) = name.to_str().map(str::to_string) else { return reply.error(Errno::ENOTSUP) };
        let mode = match flags {
            0 => XattrSetMode::Either,
            libc::XATTR_CREATE => XattrSetMode::Create,
            libc::XATTR_REPLACE => XattrSetMode::Replace,
            _ => return reply.error(Errno::EINVAL),
        };
        if position != 0 {
            return reply.error(Errno::EINVAL); // a resource fork offset: macOS only
        }
        let req = SetXattrRequest { node: node(ino), name, value: XattrBytes(value.to_vec()), mode };
        self.master_call(fr, move |m| async move { m.set_xattr(&req).await }, move |s, r| s.xattr_changed(ino, reply, r));
    }

    fn removexattr(&self, fr: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name.to_str().map(str::to_string) else { return reply.error(Errno::ENOTSUP) };
        let req = RemoveXattrRequest { node: node(ino), name };
        self.master_call(fr, move |m| async move { m.remove_xattr(&req).await }, move |s, r| s.xattr_changed(ino, reply, r));
    }

    fn access(&self, fr: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (uid, gid) = (fr.uid(), fr.gid());
        self.spawn(fr, move |s| async move {
            match s.client.master().stat_inode(InodeId(ino.0)).await {
                Ok(a) if permitted(&a, uid, gid, mask.bits()) => reply.ok(),
                Ok(_) => reply.error(Errno::EACCES),
                Err(e) => reply.error(fail(e)),
            }
        });
    }

    fn create(&self, fr: &Request, parent: INodeNo, n: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        let (at, owner) = match at(parent, n) {
            Ok(at) => (at, Inner::owner(fr, mode, umask)),
            Err(e) => return reply.error(e),
        };
        let ticket = self.inner.files.begin_open();
        let mut req = create_request(at.clone(), owner, Some(self.inner.files.session()));
        req.open_seq = ticket.seq;
        let who = self.inner.callers.of(fr);
        self.master_call(
            fr,
            move |m| async move { m.create(&req).await },
            move |s, r| match s.note_made(&at, r) {
                Err(e) if opens_existing(&e, flags) => {
                    let (s, name) = (s.clone(), parts(&at).1.to_string());
                    s.rt.clone().spawn(acting_as_async(who, async move { s.open_found(reply, parent, &name, flags).await }));
                }
                r => {
                    s.opened_new(reply, r);
                    drop(ticket); // registered here (or failed)
                }
            },
        );
    }
}

/// What a FUSE create or mknod asks of the master: a new file, which must
/// not exist yet.
/// (mknod makes a file without opening it: no session holds it).
fn create_request(at: EntryRef, owner: NewOwner, open_session: Option<&str>) -> CreateRequest {
    let open_session = open_session.map(str::to_string);
    CreateRequest { at, owner, replication: None, chunk_size_bytes: None, exclusive: true, overwrite: false, open_session, open_seq: 0 }
}

/// Whether a create that found the name taken opens what is there
/// (without O_EXCL, as open(O_CREAT) does).
fn opens_existing(e: &ClientError, flags: i32) -> bool {
    e.kind == dfs_proto::ErrorKind::EEXIST && flags & libc::O_EXCL == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::test_attr as attr;

    #[test]
    fn permissions_follow_owner_group_and_other_bits() {
        let f = attr(FileKind::File, 0o640);
        assert!(permitted(&f, 1000, 1, libc::R_OK | libc::W_OK));
        assert!(permitted(&f, 2000, 100, libc::R_OK));
        assert!(!permitted(&f, 2000, 100, libc::W_OK));
        assert!(!permitted(&f, 2000, 200, libc::R_OK));
        assert!(permitted(&f, 2000, 200, libc::F_OK));
        // Root reads and writes anything, but executes only what is executable.
        assert!(permitted(&f, 0, 0, libc::R_OK | libc::W_OK));
        assert!(!permitted(&f, 0, 0, libc::X_OK));
        assert!(permitted(&attr(FileKind::Dir, 0o700), 0, 0, libc::X_OK));
    }
}
