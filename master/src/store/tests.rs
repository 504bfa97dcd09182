//! The namespace rules, exercised on a real RocksDB in a temp directory.

use dfs_proto::wire::namespace::*;
use dfs_proto::{ErrorKind, InodeId};

use super::mutations::Defaults;
use super::perms::Who;
use super::*;

struct Ns {
    _dir: tempfile::TempDir,
    store: Store,
    writer: Writer,
}

impl Drop for Ns {
    /// Stops the writer (a reaper step may be under way) before the test
    /// ends: RocksDB aborts if a database is still in use while the process
    /// runs its exit handlers.
    fn drop(&mut self) {
        self.writer.close();
    }
}

fn open() -> Ns {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let config = WriterConfig::for_tests();
    let writer = Writer::start(store.clone(), config).expect("writer");
    Ns { _dir: dir, store, writer }
}

fn at(path: &str) -> EntryRef {
    EntryRef::path(path)
}

impl Ns {
    async fn run(&self, m: Mutation) -> Result<Outcome, NsError> {
        self.writer.submit(m).await
    }
    async fn mkdir(&self, path: &str) -> Result<Outcome, NsError> {
        self.run(Mutation::Mkdir(MkdirRequest { at: at(path), ..Default::default() })).await
    }
    async fn create(&self, path: &str) -> Result<Outcome, NsError> {
        self.run(Mutation::Create(CreateRequest { at: at(path), exclusive: true, ..Default::default() })).await
    }
    async fn rename(&self, src: &str, dst: &str) -> Result<Outcome, NsError> {
        self.run(Mutation::Rename(RenameRequest { src: at(src), dst: at(dst), noreplace: false })).await
    }
    fn stat(&self, path: &str) -> Result<Attr, NsError> {
        self.store.resolve_path(path, &Who::root()).map(|r| r.attr)
    }
    fn kind_of(&self, path: &str) -> Option<FileKind> {
        self.stat(path).ok().map(|a| a.kind)
    }
    fn assert_consistent(&self) {
        let report = self.store.check().expect("check");
        assert!(report.ok, "{:?}", report.problems);
    }
}

fn err_kind(r: Result<Outcome, NsError>) -> ErrorKind {
    r.expect_err("expected an error").kind
}

#[tokio::test]
async fn create_stat_and_list() {
    let ns = open();
    ns.mkdir("/a").await.unwrap();
    ns.create("/a/f").await.unwrap();
    let f = ns.stat("/a/f").unwrap();
    assert_eq!((f.kind, f.mode, f.replication, f.chunk_size_bytes), (FileKind::File, 0o644, 3, 64 << 20));
    assert_eq!(f.parent, ns.stat("/a").unwrap().inode);
    assert_eq!(ns.stat("/a").unwrap().nlink, 2);
    assert_eq!(ns.stat("/").unwrap().nlink, 3);
    let page = ns.store.list(&NodeRef { path: Some("/a".into()), inode: None }, None, None, &Who::root()).unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].name, "f");
    assert_eq!(ns.store.lookup(ns.stat("/a").unwrap().inode, "f", &Who::root()).unwrap(), f);
    let c = ns.store.counters().unwrap();
    assert_eq!((c.files, c.directories), (1, 2));
    ns.assert_consistent();
}

#[tokio::test]
async fn wrong_types_and_missing_parents_are_refused() {
    let ns = open();
    ns.mkdir("/d").await.unwrap();
    ns.create("/d/f").await.unwrap();
    assert_eq!(err_kind(ns.mkdir("/d").await), ErrorKind::EEXIST);
    assert_eq!(err_kind(ns.mkdir("/d/f").await), ErrorKind::EEXIST);
    assert_eq!(err_kind(ns.create("/d/f/x").await), ErrorKind::ENOTDIR);
    assert_eq!(err_kind(ns.create("/nope/x").await), ErrorKind::ENOENT);
    assert_eq!(err_kind(ns.create("/d/f").await), ErrorKind::EEXIST);
    assert_eq!(err_kind(ns.run(Mutation::Rmdir(RemoveRequest { at: at("/d") })).await), ErrorKind::ENOTEMPTY);
    assert_eq!(err_kind(ns.run(Mutation::Rmdir(RemoveRequest { at: at("/d/f") })).await), ErrorKind::ENOTDIR);
    assert_eq!(err_kind(ns.run(Mutation::Unlink(RemoveRequest { at: at("/d") })).await), ErrorKind::EISDIR);
    assert_eq!(err_kind(ns.run(Mutation::Rmdir(RemoveRequest { at: at("/") })).await), ErrorKind::EPERM);
    let bad_name = CreateRequest { at: EntryRef::child(InodeId::ROOT, ".."), exclusive: true, ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Create(bad_name)).await), ErrorKind::EINVAL);
    assert_eq!(err_kind(ns.create(&format!("/{}", "n".repeat(256))).await), ErrorKind::ENAMETOOLONG);
    let bad_repl = CreateRequest { at: at("/r"), replication: Some(0), exclusive: true, ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Create(bad_repl)).await), ErrorKind::EINVAL);
    let bad_chunk = CreateRequest { at: at("/r"), chunk_size_bytes: Some(1000), exclusive: true, ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Create(bad_chunk)).await), ErrorKind::EINVAL);
    // Nothing a refused request touched has changed.
    let c = ns.store.counters().unwrap();
    assert_eq!((c.files, c.directories), (1, 2));
    ns.assert_consistent();
}

#[tokio::test]
async fn mkdir_with_parents_creates_the_chain_once() {
    let ns = open();
    ns.run(Mutation::Mkdir(MkdirRequest { at: at("/x/y/z"), parents: true, ..Default::default() })).await.unwrap();
    ns.run(Mutation::Mkdir(MkdirRequest { at: at("/x/y/z"), parents: true, ..Default::default() })).await.unwrap();
    assert_eq!(ns.kind_of("/x/y/z"), Some(FileKind::Dir));
    assert_eq!(ns.stat("/x/y").unwrap().nlink, 3);
    // The (parent, name) form honours `parents` too.
    let again = MkdirRequest { at: EntryRef::child(InodeId::ROOT, "x"), parents: true, ..Default::default() };
    ns.run(Mutation::Mkdir(again)).await.unwrap();
    ns.create("/x/f").await.unwrap();
    let through_file = MkdirRequest { at: at("/x/f/g"), parents: true, ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Mkdir(through_file)).await), ErrorKind::ENOTDIR);
    assert_eq!(ns.store.counters().unwrap().directories, 4);
    ns.assert_consistent();
}

#[tokio::test]
async fn rename_follows_posix() {
    let ns = open();
    for d in ["/a", "/a/sub", "/b", "/full"] {
        ns.mkdir(d).await.unwrap();
    }
    for f in ["/f1", "/f2", "/full/x"] {
        ns.create(f).await.unwrap();
    }
    let f2 = ns.stat("/f2").unwrap().inode;
    // A file replaces a file; the replaced inode is gone.
    ns.rename("/f2", "/f1").await.unwrap();
    assert_eq!(ns.stat("/f1").unwrap().inode, f2);
    assert_eq!(ns.kind_of("/f2"), None);
    assert_eq!(ns.store.counters().unwrap().files, 2);
    // Refusals.
    assert_eq!(err_kind(ns.rename("/a", "/a/sub/in").await), ErrorKind::EINVAL);
    ns.rename("/a", "/a").await.unwrap(); // the same entry: nothing to do
    assert_eq!(err_kind(ns.rename("/a", "/full").await), ErrorKind::ENOTEMPTY);
    assert_eq!(err_kind(ns.rename("/a", "/f1").await), ErrorKind::ENOTDIR);
    assert_eq!(err_kind(ns.rename("/f1", "/b").await), ErrorKind::EISDIR);
    assert_eq!(err_kind(ns.rename("/nope", "/x").await), ErrorKind::ENOENT);
    let noreplace = RenameRequest { src: at("/f1"), dst: at("/full/x"), noreplace: true };
    assert_eq!(err_kind(ns.run(Mutation::Rename(noreplace)).await), ErrorKind::EEXIST);
    // A directory replaces an empty directory and moves between parents.
    ns.rename("/a", "/b").await.unwrap();
    assert_eq!(ns.kind_of("/b/sub"), Some(FileKind::Dir));
    ns.rename("/b", "/full/moved").await.unwrap();
    assert_eq!(ns.stat("/full").unwrap().nlink, 3);
    assert_eq!(ns.stat("/").unwrap().nlink, 3);
    assert_eq!(ns.stat("/full/moved").unwrap().parent, ns.stat("/full").unwrap().inode);
    // Renaming onto itself (a hard link to the same inode) does nothing.
    ns.rename("/f1", "/f1").await.unwrap();
    assert_eq!(ns.stat("/f1").unwrap().inode, f2);
    ns.assert_consistent();
}

// On worker threads: each request leads its own group in place, and the
// reaper runs in the background between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_delete_detaches_then_reaps() {
    let ns = open();
    ns.run(Mutation::Mkdir(MkdirRequest { at: at("/t/u/v"), parents: true, ..Default::default() })).await.unwrap();
    for i in 0..40 {
        ns.create(&format!("/t/u/f{i}")).await.unwrap();
        ns.create(&format!("/t/u/v/g{i}")).await.unwrap();
    }
    let delete = |recursive| Mutation::Delete(DeleteRequest { at: at("/t"), recursive });
    assert_eq!(err_kind(ns.run(delete(false)).await), ErrorKind::ENOTEMPTY);
    ns.run(delete(true)).await.unwrap();
    assert_eq!(ns.kind_of("/t"), None);
    ns.assert_consistent();
    // The reaper frees the subtree in steps of 7 entries while the writer is idle.
    for _ in 0..500 {
        if ns.store.counters().unwrap().pending_delete == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let c = ns.store.counters().unwrap();
    assert_eq!((c.files, c.directories, c.pending_delete), (0, 1, 0));
    ns.assert_consistent();
}

#[tokio::test]
async fn setattr_sets_fields_and_counts_bytes() {
    let ns = open();
    ns.create("/f").await.unwrap();
    let set = SetattrRequest {
        node: NodeRef { path: Some("/f".into()), inode: None },
        mode: Some(0o600),
        uid: Some(7),
        gid: Some(8),
        size: Some(1000),
        atime_ns: Some(5),
        mtime_ns: Some(6),
        times_now: false,
        replication: None,
    };
    ns.run(Mutation::Setattr(set.clone())).await.unwrap();
    let a = ns.stat("/f").unwrap();
    assert_eq!((a.mode, a.uid, a.gid, a.size, a.atime_ns, a.mtime_ns), (0o600, 7, 8, 1000, 5, 6));
    assert_eq!(ns.store.counters().unwrap().bytes, 1000);
    let shrink = SetattrRequest { size: Some(10), ..SetattrRequest { node: set.node.clone(), ..Default::default() } };
    ns.run(Mutation::Setattr(shrink)).await.unwrap();
    assert_eq!(ns.store.counters().unwrap().bytes, 10);
    let bad_mode = SetattrRequest { mode: Some(0o10000), node: set.node.clone(), ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Setattr(bad_mode)).await), ErrorKind::EINVAL);
    let dir_size = SetattrRequest { size: Some(1), node: NodeRef { path: Some("/".into()), inode: None }, ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Setattr(dir_size)).await), ErrorKind::EISDIR);
    ns.run(Mutation::Unlink(RemoveRequest { at: at("/f") })).await.unwrap();
    assert_eq!(ns.store.counters().unwrap().bytes, 0);
    ns.assert_consistent();
}

#[tokio::test]
async fn symlinks_keep_their_target() {
    let ns = open();
    let link = SymlinkRequest { at: at("/l"), target: "../some/where".into(), uid: None, gid: None };
    ns.run(Mutation::Symlink(link.clone())).await.unwrap();
    let node = NodeRef { path: Some("/l".into()), inode: None };
    assert_eq!(ns.store.readlink(&node, &Who::root()).unwrap(), "../some/where");
    assert_eq!(ns.stat("/l").unwrap().size, 13);
    assert_eq!(err_kind(ns.run(Mutation::Symlink(link)).await), ErrorKind::EEXIST);
    let empty = SymlinkRequest { at: at("/m"), target: String::new(), uid: None, gid: None };
    assert_eq!(err_kind(ns.run(Mutation::Symlink(empty)).await), ErrorKind::EINVAL);
    assert_eq!(ns.store.readlink(&NodeRef { path: Some("/".into()), inode: None }, &Who::root()).unwrap_err().kind, ErrorKind::EINVAL);
    ns.assert_consistent();
}

// Many concurrent requests on worker threads: groups form behind a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_cover_every_entry_once() {
    let ns = open();
    ns.mkdir("/big").await.unwrap();
    let mut jobs = Vec::new();
    for i in 0..2500 {
        let w = ns.writer.clone();
        let req = CreateRequest { at: at(&format!("/big/{i:05}")), exclusive: true, ..Default::default() };
        jobs.push(tokio::spawn(async move { w.submit(Mutation::Create(req)).await }));
    }
    for j in jobs {
        j.await.unwrap().unwrap();
    }
    let dir = NodeRef { path: Some("/big".into()), inode: None };
    let (mut names, mut after) = (Vec::new(), None::<String>);
    loop {
        let page = ns.store.list(&dir, after.as_deref(), Some(1000), &Who::root()).unwrap();
        assert!(page.entries.len() <= 1000);
        names.extend(page.entries.into_iter().map(|e| e.name));
        match page.next_start_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let expected: Vec<String> = (0..2500).map(|i| format!("{i:05}")).collect();
    assert_eq!(names, expected);
    ns.assert_consistent();
}

#[test]
fn records_never_cross_a_chunk_boundary() {
    use super::mutations::append_offset;
    assert_eq!(append_offset(0, 25, 100).unwrap(), 0);
    assert_eq!(append_offset(75, 25, 100).unwrap(), 75); // fits exactly
    assert_eq!(append_offset(80, 25, 100).unwrap(), 100); // padded to the next chunk
    assert_eq!(append_offset(200, 1, 100).unwrap(), 200);
    assert_eq!(append_offset(0, 26, 100).unwrap_err().kind, ErrorKind::EINVAL); // over a quarter chunk
    assert_eq!(append_offset(0, 0, 100).unwrap_err().kind, ErrorKind::EINVAL);
}

#[tokio::test]
async fn appends_reserve_disjoint_ranges_and_setrep_changes_files_only() {
    let ns = open();
    ns.create("/log").await.unwrap();
    let inode = ns.stat("/log").unwrap().inode;
    let mut ends = Vec::new();
    for _ in 0..3 {
        match ns.run(Mutation::ReserveAppend(AppendRequest { inode, length: 10 << 20 })).await.unwrap() {
            Outcome::Reserved(r) => ends.push((r.offset, r.attr.size)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ends, [(0, 10 << 20), (10 << 20, 20 << 20), (20 << 20, 30 << 20)]);
    assert_eq!(ns.stat("/log").unwrap().size, 30 << 20);
    let setrep = |path: &str, r: u16| {
        Mutation::Setattr(SetattrRequest { node: NodeRef { path: Some(path.into()), inode: None }, replication: Some(r), ..Default::default() })
    };
    ns.run(setrep("/log", 2)).await.unwrap();
    assert_eq!(ns.stat("/log").unwrap().replication, 2);
    assert_eq!(err_kind(ns.run(setrep("/log", 0)).await), ErrorKind::EINVAL);
    assert_eq!(err_kind(ns.run(setrep("/", 2)).await), ErrorKind::EISDIR);
    ns.assert_consistent();
}

#[tokio::test]
async fn overwrite_replaces_a_file_in_one_step() {
    let ns = open();
    ns.create("/f").await.unwrap();
    let old = ns.stat("/f").unwrap().inode;
    let req = |overwrite| CreateRequest { at: at("/f"), exclusive: true, overwrite, replication: Some(2), ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Create(req(false))).await), ErrorKind::EEXIST);
    ns.run(Mutation::Create(req(true))).await.unwrap();
    let new = ns.stat("/f").unwrap();
    assert_ne!(new.inode, old);
    assert_eq!(new.replication, 2);
    ns.mkdir("/d").await.unwrap();
    let onto_dir = CreateRequest { at: at("/d"), overwrite: true, ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Create(onto_dir)).await), ErrorKind::EISDIR);
    assert_eq!(ns.store.counters().unwrap().files, 1);
    ns.assert_consistent();
}

/// Applies `m` in one transaction, as the writer does, but on this thread
/// and without a writer: no background reaper runs, so a test can hold a
/// detached subtree still and free it one step at a time.
fn apply_now(store: &Store, m: Mutation) -> Result<Outcome, NsError> {
    apply_at(store, m, 1)
}

/// Applies `m` as the writer would at time `now_ns`.
fn apply_at(store: &Store, m: Mutation, now_ns: i64) -> Result<Outcome, NsError> {
    let defaults = Defaults { replication: 3, chunk_size_bytes: 64 << 20 };
    let mut txn = super::txn::Txn::new(store, store.counters()?, now_ns);
    let outcome = super::mutations::apply(&mut txn, &m, &defaults, &Who::root())?;
    txn.commit()?;
    Ok(outcome)
}

/// A create, mkdir, symlink or rename (either end) by parent inode into a
/// directory detached by a recursive delete, or below one, is ENOENT at
/// every stage of the reaping, as in a removed directory on Linux; live
/// directories still take entries meanwhile.
#[test]
fn nothing_is_added_under_a_directory_being_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let mkdir_p = |path: &str| Mutation::Mkdir(MkdirRequest { at: at(path), parents: true, ..Default::default() });
    apply_now(&store, mkdir_p("/t/u/v")).unwrap();
    apply_now(&store, mkdir_p("/live")).unwrap();
    for f in ["/t/a", "/t/u/b", "/t/u/v/c", "/live/f"] {
        apply_now(&store, Mutation::Create(CreateRequest { at: at(f), exclusive: true, ..Default::default() })).unwrap();
    }
    let id = |path: &str| store.resolve_path(path, &Who::root()).unwrap().attr.inode;
    let (t, u, v, live) = (id("/t"), id("/t/u"), id("/t/u/v"), id("/live"));
    apply_now(&store, Mutation::Delete(DeleteRequest { at: at("/t"), recursive: true })).unwrap();
    assert_eq!(store.inode(t).unwrap().attr.nlink, 0, "a detached directory shows nlink 0");

    let additions = |n: u32| {
        let (name, moved) = (format!("new{n}"), format!("moved{n}"));
        let create = |dir| Mutation::Create(CreateRequest { at: EntryRef::child(dir, &name), exclusive: true, ..Default::default() });
        vec![
            ("create in the root", create(t)),
            ("create one below", create(u)),
            ("create two below", create(v)),
            ("mkdir", Mutation::Mkdir(MkdirRequest { at: EntryRef::child(u, &name), ..Default::default() })),
            ("symlink", Mutation::Symlink(SymlinkRequest { at: EntryRef::child(v, &name), target: "x".into(), uid: None, gid: None })),
            ("rename into", Mutation::Rename(RenameRequest { src: at("/live/f"), dst: EntryRef::child(v, &moved), noreplace: false })),
            ("rename out of", Mutation::Rename(RenameRequest { src: EntryRef::child(u, "b"), dst: at(&format!("/live/{moved}")), noreplace: false })),
        ]
    };
    for step in 0..20 {
        for (what, m) in additions(step) {
            let got = apply_now(&store, m).map(|_| ());
            assert_eq!(got.map_err(|e| e.kind), Err(ErrorKind::ENOENT), "{what} at reaper step {step}");
        }
        let fresh = CreateRequest { at: EntryRef::child(live, format!("g{step}")), exclusive: true, ..Default::default() };
        apply_now(&store, Mutation::Create(fresh)).expect("a live directory takes entries while a subtree is reaped");
        let report = store.check().unwrap();
        assert!(report.ok, "step {step}: {:?}", report.problems);
        let mut txn = super::txn::Txn::new(&store, store.counters().unwrap(), 1);
        let more = super::mutations::reap_step(&mut txn, 1).unwrap();
        txn.commit().unwrap();
        if !more {
            assert_eq!(store.counters().unwrap().pending_delete, 0);
            assert!(step > 3, "the subtree was freed in {step} steps: too few to test the stages between");
            return;
        }
    }
    panic!("the reaper did not free the subtree in 20 steps");
}

fn link(src: &str, dst: &str) -> Mutation {
    Mutation::Link(LinkRequest { src: NodeRef { path: Some(src.into()), inode: None }, dst: at(dst) })
}

fn unlink(path: &str) -> Mutation {
    Mutation::Unlink(RemoveRequest { at: at(path) })
}

#[tokio::test]
async fn hard_links_share_one_inode_until_the_last_name_goes() {
    let ns = open();
    ns.mkdir("/a").await.unwrap();
    ns.mkdir("/b").await.unwrap();
    ns.create("/a/f").await.unwrap();
    let f = ns.stat("/a/f").unwrap();
    ns.run(Mutation::AddChunk { inode: f.inode, index: 0 }).await.unwrap();
    let Outcome::Attr(linked) = ns.run(link("/a/f", "/b/g")).await.unwrap() else { panic!("no attributes") };
    assert_eq!((linked.inode, linked.nlink), (f.inode, 2));
    assert!(linked.ctime_ns >= f.ctime_ns);
    assert_eq!(ns.stat("/b/g").unwrap().inode, f.inode);
    assert_eq!(ns.store.counters().unwrap().files, 1, "one inode, two names");
    ns.assert_consistent();
    // Refusals change nothing.
    assert_eq!(err_kind(ns.run(link("/a/f", "/b/g")).await), ErrorKind::EEXIST);
    assert_eq!(err_kind(ns.run(link("/a", "/b/dir")).await), ErrorKind::EPERM);
    assert_eq!(err_kind(ns.run(link("/a/missing", "/b/x")).await), ErrorKind::ENOENT);
    assert_eq!(err_kind(ns.run(link("/a/f", "/nowhere/x")).await), ErrorKind::ENOENT);
    assert_eq!(err_kind(ns.run(link("/a/f", "/a/f/x")).await), ErrorKind::ENOTDIR);
    assert_eq!(ns.stat("/a/f").unwrap().nlink, 2);
    // A rename onto another name of the same inode does nothing (POSIX).
    ns.rename("/a/f", "/b/g").await.unwrap();
    assert_eq!((ns.stat("/a/f").unwrap().nlink, ns.kind_of("/b/g")), (2, Some(FileKind::File)));
    // Unlinking one name keeps the data; the last one frees the chunks.
    ns.run(unlink("/a/f")).await.unwrap();
    let g = ns.stat("/b/g").unwrap();
    assert_eq!((g.inode, g.nlink), (f.inode, 1));
    assert!(ns.store.chunk(f.inode, 0).unwrap().is_some(), "chunks stay while a name is left");
    ns.assert_consistent();
    ns.run(unlink("/b/g")).await.unwrap();
    assert!(ns.store.chunk(f.inode, 0).unwrap().is_none());
    assert_eq!(ns.store.counters().unwrap().files, 0);
    ns.assert_consistent();
}

#[tokio::test]
async fn replacing_or_deleting_one_link_leaves_the_others() {
    let ns = open();
    ns.mkdir("/d").await.unwrap();
    ns.create("/d/f").await.unwrap();
    ns.run(link("/d/f", "/outside")).await.unwrap();
    ns.run(link("/d/f", "/d/again")).await.unwrap();
    assert_eq!(ns.stat("/outside").unwrap().nlink, 3);
    // Rename over a name drops that one link.
    ns.create("/other").await.unwrap();
    ns.rename("/other", "/d/again").await.unwrap();
    assert_eq!(ns.stat("/outside").unwrap().nlink, 2);
    ns.assert_consistent();
    // A recursive delete takes the names inside; the one outside survives.
    ns.run(Mutation::Delete(DeleteRequest { at: at("/d"), recursive: true })).await.unwrap();
    for _ in 0..500 {
        if ns.store.counters().unwrap().pending_delete == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let left = ns.stat("/outside").unwrap();
    assert_eq!((left.nlink, ns.store.counters().unwrap().files), (1, 1));
    ns.assert_consistent();
}

#[tokio::test]
async fn links_follow_protected_hardlinks() {
    let ns = open();
    ns.run(Mutation::Mkdir(MkdirRequest { at: at("/pub"), owner: NewOwner { mode: Some(0o777), ..Default::default() }, parents: false })).await.unwrap();
    ns.create("/pub/root-file").await.unwrap();
    let alice = Who { uid: 100, gids: vec![100], superuser: false };
    let as_alice = |m| ns.writer.submit_as(alice.clone(), m);
    assert_eq!(as_alice(link("/pub/root-file", "/pub/mine")).await.unwrap_err().kind, ErrorKind::EPERM, "mode 644, not hers");
    let open_up = SetattrRequest { node: NodeRef { path: Some("/pub/root-file".into()), inode: None }, mode: Some(0o666), ..Default::default() };
    ns.run(Mutation::Setattr(open_up)).await.unwrap();
    as_alice(link("/pub/root-file", "/pub/mine")).await.unwrap();
    assert_eq!(as_alice(link("/pub/root-file", "/mine")).await.unwrap_err().kind, ErrorKind::EACCES, "no write on /");
    ns.assert_consistent();
}

#[tokio::test]
async fn fifos_sockets_and_devices_are_entries_with_a_type() {
    let ns = open();
    let mknod =
        |path: &str, kind, rdev| Mutation::Mknod(MknodRequest { at: at(path), owner: NewOwner { mode: Some(0o640), ..Default::default() }, kind, rdev });
    for (path, kind, rdev) in
        [("/p", FileKind::Fifo, 0), ("/s", FileKind::Socket, 0), ("/c", FileKind::CharDevice, (1 << 8) | 3), ("/b", FileKind::BlockDevice, 7 << 8)]
    {
        ns.run(mknod(path, kind, rdev)).await.unwrap();
        let a = ns.stat(path).unwrap();
        assert_eq!((a.kind, a.mode, a.rdev, a.size, a.nlink), (kind, 0o640, rdev, 0, 1), "{path}");
    }
    assert_eq!(ns.store.counters().unwrap().specials, 4);
    assert_eq!(err_kind(ns.run(mknod("/p", FileKind::Fifo, 0)).await), ErrorKind::EEXIST);
    assert_eq!(err_kind(ns.run(mknod("/f", FileKind::File, 0)).await), ErrorKind::EINVAL);
    assert_eq!(err_kind(ns.run(mknod("/q", FileKind::Fifo, 5)).await), ErrorKind::EINVAL, "a FIFO has no device number");
    let alice = Who { uid: 100, gids: vec![100], superuser: false };
    ns.run(Mutation::Setattr(SetattrRequest { node: NodeRef { path: Some("/".into()), inode: None }, mode: Some(0o777), ..Default::default() })).await.unwrap();
    assert_eq!(ns.writer.submit_as(alice.clone(), mknod("/dev", FileKind::CharDevice, 1)).await.unwrap_err().kind, ErrorKind::EPERM);
    ns.writer.submit_as(alice, mknod("/her-fifo", FileKind::Fifo, 0)).await.unwrap();
    // No data: no size to set, no chunks, opened for create as EEXIST.
    let truncate = SetattrRequest { node: NodeRef { path: Some("/p".into()), inode: None }, size: Some(0), ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Setattr(truncate)).await), ErrorKind::EINVAL);
    let p = ns.stat("/p").unwrap();
    assert_eq!(err_kind(ns.run(Mutation::AddChunk { inode: p.inode, index: 0 }).await), ErrorKind::EINVAL);
    let open_create = CreateRequest { at: at("/p"), exclusive: false, ..Default::default() };
    assert_eq!(err_kind(ns.run(Mutation::Create(open_create)).await), ErrorKind::EEXIST);
    // Links, renames and removal as for any entry.
    ns.run(link("/p", "/p2")).await.unwrap();
    ns.rename("/p2", "/p3").await.unwrap();
    ns.run(unlink("/p")).await.unwrap();
    assert_eq!(ns.stat("/p3").unwrap().nlink, 1);
    ns.run(unlink("/p3")).await.unwrap();
    ns.assert_consistent();
    assert_eq!(ns.store.counters().unwrap().specials, 4);
}

fn set_xattr(path: &str, name: &str, value: &[u8], mode: dfs_proto::wire::xattrs::XattrSetMode) -> Mutation {
    let node = NodeRef { path: Some(path.into()), inode: None };
    Mutation::SetXattr(dfs_proto::wire::xattrs::SetXattrRequest { node, name: name.into(), value: dfs_proto::wire::xattrs::XattrBytes(value.to_vec()), mode })
}

#[tokio::test]
async fn extended_attributes_follow_linux_rules_and_limits() {
    use dfs_proto::wire::xattrs::{RemoveXattrRequest, XattrSetMode::*, XATTR_SIZE_MAX};
    let ns = open();
    ns.create("/f").await.unwrap();
    let node = NodeRef { path: Some("/f".into()), inode: None };
    let root = Who::root();
    assert!(!ns.stat("/f").unwrap().has_xattrs);
    assert_eq!(ns.store.get_xattr(&node, "user.a", &root).unwrap_err().kind, ErrorKind::ENODATA);
    let before = ns.stat("/f").unwrap();
    ns.run(set_xattr("/f", "user.a", b"one", Either)).await.unwrap();
    let after = ns.stat("/f").unwrap();
    assert!(after.has_xattrs && after.ctime_ns >= before.ctime_ns);
    assert_eq!(ns.store.get_xattr(&node, "user.a", &root).unwrap(), b"one");
    assert_eq!(err_kind(ns.run(set_xattr("/f", "user.a", b"two", Create)).await), ErrorKind::EEXIST);
    assert_eq!(err_kind(ns.run(set_xattr("/f", "user.b", b"two", Replace)).await), ErrorKind::ENODATA);
    ns.run(set_xattr("/f", "user.a", b"", Replace)).await.unwrap();
    assert_eq!(ns.store.get_xattr(&node, "user.a", &root).unwrap(), b"", "an empty value is a value");
    ns.run(set_xattr("/f", "trusted.t", &vec![9; XATTR_SIZE_MAX], Create)).await.unwrap();
    ns.run(set_xattr("/f", "security.capability", b"caps", Create)).await.unwrap();
    assert_eq!(err_kind(ns.run(set_xattr("/f", "system.posix_acl_access", b"x", Either)).await), ErrorKind::ENOTSUP);
    assert_eq!(err_kind(ns.run(set_xattr("/f", "", b"x", Either)).await), ErrorKind::ERANGE);
    assert_eq!(ns.store.list_xattrs(&node, &root).unwrap(), ["security.capability", "trusted.t", "user.a"]);
    let alice = Who { uid: 100, gids: vec![100], superuser: false };
    assert_eq!(ns.store.list_xattrs(&node, &alice).unwrap(), ["security.capability", "user.a"], "trusted.* hidden");
    assert_eq!(ns.store.get_xattr(&node, "trusted.t", &alice).unwrap_err().kind, ErrorKind::ENODATA);
    assert_eq!(ns.writer.submit_as(alice.clone(), set_xattr("/f", "user.x", b"x", Either)).await.unwrap_err().kind, ErrorKind::EACCES);

    // A write drops security.capability, and nothing else.
    let f = ns.stat("/f").unwrap();
    ns.run(Mutation::CommitLength { inode: f.inode, length: 10, chunks: Vec::new() }).await.unwrap();
    assert_eq!(ns.store.list_xattrs(&node, &root).unwrap(), ["trusted.t", "user.a"]);
    let remove = |name: &str| Mutation::RemoveXattr(RemoveXattrRequest { node: node.clone(), name: name.into() });
    ns.run(remove("user.a")).await.unwrap();
    assert_eq!(err_kind(ns.run(remove("user.a")).await), ErrorKind::ENODATA);
    assert!(ns.stat("/f").unwrap().has_xattrs);
    ns.run(remove("trusted.t")).await.unwrap();
    assert!(!ns.stat("/f").unwrap().has_xattrs, "the flag goes with the last attribute");

    // Room: 64 KiB of names per inode; the inode's attributes go with it.
    let mut i = 0;
    let full = loop {
        match ns.run(set_xattr("/f", &format!("user.{i:0>240}"), b"v", Create)).await {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
    };
    assert_eq!((full.kind, i), (ErrorKind::ENOSPC, 65536 / 246));
    ns.run(Mutation::Unlink(RemoveRequest { at: at("/f") })).await.unwrap();
    assert!(ns.store.xattr_names(f.inode).unwrap().is_empty(), "attributes outlived their inode");
    ns.assert_consistent();
}

#[tokio::test]
async fn writes_and_truncates_by_others_clear_setuid() {
    let ns = open();
    ns.create("/f").await.unwrap();
    let node = NodeRef { path: Some("/f".into()), inode: None };
    ns.run(Mutation::Setattr(SetattrRequest { node: node.clone(), mode: Some(0o6777), ..Default::default() })).await.unwrap();
    let f = ns.stat("/f").unwrap();
    ns.run(Mutation::CommitLength { inode: f.inode, length: 1, chunks: Vec::new() }).await.unwrap();
    assert_eq!(ns.stat("/f").unwrap().mode, 0o6777, "the superuser keeps the bits");
    let bob = Who { uid: 200, gids: vec![200], superuser: false };
    ns.writer.submit_as(bob.clone(), Mutation::CommitLength { inode: f.inode, length: 2, chunks: Vec::new() }).await.unwrap();
    assert_eq!(ns.stat("/f").unwrap().mode, 0o777);
    ns.run(Mutation::Setattr(SetattrRequest { node: node.clone(), mode: Some(0o4777), ..Default::default() })).await.unwrap();
    ns.writer.submit_as(bob, Mutation::Setattr(SetattrRequest { node, size: Some(0), ..Default::default() })).await.unwrap();
    assert_eq!(ns.stat("/f").unwrap().mode, 0o777, "truncate by another user");
}

#[tokio::test]
async fn a_file_held_open_outlives_its_last_name_until_let_go() {
    use std::time::Instant;
    let ns = open();
    ns.create("/f").await.unwrap();
    ns.create("/g").await.unwrap();
    let f = ns.stat("/f").unwrap();
    ns.run(Mutation::AddChunk { inode: f.inode, index: 0 }).await.unwrap();
    let held = ns.writer.held();
    let session = ("mnt".to_string(), "s1".to_string());
    held.open(&session, f.inode, 1, Instant::now()).unwrap();
    // Replaced by a rename: kept, nameless, with its chunk.
    ns.rename("/g", "/f").await.unwrap();
    let kept = ns.store.inode(f.inode).unwrap();
    assert_eq!((kept.attr.nlink, ns.store.orphans(10).unwrap()), (0, vec![f.inode]));
    assert!(ns.store.chunk(f.inode, 0).unwrap().is_some());
    ns.assert_consistent();
    assert_eq!(err_kind(ns.run(link_inode(f.inode, "/again")).await), ErrorKind::ENOENT, "no new name for an orphan");
    // Still held: nothing is freed.
    ns.run(Mutation::FreeOrphans(vec![f.inode])).await.unwrap();
    assert!(ns.store.get_inode(f.inode).unwrap().is_some());
    // Let go: freed with its chunks.
    held.renew(&session, &[], 1, Instant::now()).unwrap();
    ns.run(Mutation::FreeOrphans(vec![f.inode])).await.unwrap();
    assert!(ns.store.get_inode(f.inode).unwrap().is_none() && ns.store.chunk(f.inode, 0).unwrap().is_none());
    assert!(ns.store.orphans(10).unwrap().is_empty());
    // A file not held goes at once; a held one in a deleted tree is kept too.
    let g = ns.stat("/f").unwrap();
    ns.run(Mutation::Unlink(RemoveRequest { at: at("/f") })).await.unwrap();
    assert!(ns.store.get_inode(g.inode).unwrap().is_none());
    ns.mkdir("/d").await.unwrap();
    ns.create("/d/h").await.unwrap();
    let h = ns.stat("/d/h").unwrap();
    held.open(&session, h.inode, 2, Instant::now()).unwrap();
    ns.run(Mutation::Delete(DeleteRequest { at: at("/d"), recursive: false })).await.unwrap_err();
    ns.run(Mutation::Unlink(RemoveRequest { at: at("/d/h") })).await.unwrap();
    ns.run(Mutation::Rmdir(RemoveRequest { at: at("/d") })).await.unwrap();
    assert_eq!(ns.store.orphans(10).unwrap(), vec![h.inode]);
    ns.assert_consistent();
}

fn link_inode(inode: InodeId, dst: &str) -> Mutation {
    Mutation::Link(LinkRequest { src: NodeRef { path: None, inode: Some(inode) }, dst: at(dst) })
}

#[tokio::test]
async fn a_create_for_a_session_is_held_from_its_first_moment_and_writers_drop_privileges_first() {
    use std::time::Instant;
    let ns = open();
    let key = ("mnt".to_string(), "s".to_string());
    let req = CreateRequest { at: at("/f"), exclusive: true, open_seq: 7, ..Default::default() };
    let Outcome::Attr(f) = ns.run(Mutation::CreateHeld(req, key.clone())).await.unwrap() else { panic!("no attributes") };
    ns.run(Mutation::Unlink(RemoveRequest { at: at("/f") })).await.unwrap();
    assert_eq!(ns.store.orphans(10).unwrap(), vec![f.inode], "the new file was not held");
    // A restatement taken before open 7 does not let it go; one after does.
    ns.writer.held().renew(&key, &[], 6, Instant::now()).unwrap();
    assert!(ns.writer.held().holds(f.inode));
    ns.writer.held().renew(&key, &[], 7, Instant::now()).unwrap();
    ns.run(Mutation::FreeOrphans(vec![f.inode])).await.unwrap();
    assert!(ns.store.get_inode(f.inode).unwrap().is_none());

    // A lease for a writer other than the superuser drops setuid and capabilities.
    ns.create("/tool").await.unwrap();
    let node = NodeRef { path: Some("/tool".into()), inode: None };
    ns.run(Mutation::Setattr(SetattrRequest { node: node.clone(), mode: Some(0o4777), ..Default::default() })).await.unwrap();
    ns.run(set_xattr("/tool", "security.capability", b"caps", dfs_proto::wire::xattrs::XattrSetMode::Either)).await.unwrap();
    let tool = ns.stat("/tool").unwrap();
    let bob = Who { uid: 200, gids: vec![200], superuser: false };
    assert!(super::mutations::write_drops_privileges(&bob, &tool));
    ns.writer.submit_as(bob.clone(), Mutation::DropPrivileges(tool.inode)).await.unwrap();
    let after = ns.stat("/tool").unwrap();
    assert_eq!((after.mode, after.has_xattrs), (0o777, false));
    assert!(!super::mutations::write_drops_privileges(&bob, &after), "nothing left to drop: no mutation per lease");
}

#[test]
fn a_file_at_the_link_limit_takes_no_more_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    apply_now(&store, Mutation::Create(CreateRequest { at: at("/f"), exclusive: true, ..Default::default() })).unwrap();
    let mut f = store.resolve_path("/f", &Who::root()).unwrap();
    f.attr.nlink = super::mutations::LINK_MAX;
    let mut txn = super::txn::Txn::new(&store, store.counters().unwrap(), 1);
    txn.put_inode(f);
    txn.commit().unwrap();
    let refused = apply_now(&store, link("/f", "/g")).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::EMLINK);
    assert!(store.get_entry(InodeId::ROOT, "g").unwrap().is_none());
}

/// Delegation tokens in the store: renewed by their renewer only, ended by
/// owner or renewer, kept across a reopen, gone with their owner (a user
/// made again under the name inherits none, nor its generation).
#[test]
fn delegation_tokens_follow_their_rules_and_go_with_their_owner() {
    use super::delegation::TokenRecord;
    use dfs_proto::wire::users::AddUserRequest;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let add = |name: &str| Mutation::AddUser(AddUserRequest { name: name.into(), stored_key: "ab".repeat(32), ..Default::default() });
    let first = match apply_now(&store, add("ann")).unwrap() {
        Outcome::User(u) => u.generation,
        _ => panic!("a user"),
    };
    apply_now(&store, add("rex")).unwrap();
    let token = |id, owner: &str| TokenRecord { format: 1, id, owner: owner.into(), renewer: "rex".into(), issued_ms: 1_000, expires_ms: 5_000, max_ms: 9_000 };
    apply_now(&store, Mutation::IssueToken(token(1, "ann"))).unwrap();
    apply_now(&store, Mutation::IssueToken(token(2, "rex"))).unwrap();
    let renew = |by: &str| Mutation::RenewToken { id: 1, by: by.into(), now_ms: 2_000, expires_ms: 99_000 };
    assert_eq!(apply_now(&store, renew("ann")).unwrap_err().kind, ErrorKind::EACCES, "the owner is not the renewer");
    match apply_now(&store, renew("rex")).unwrap() {
        Outcome::Token(r) => assert_eq!(r.expires_ms, 9_000, "never past its max date"),
        _ => panic!("a token"),
    }
    let cancel = |id, by: &str| Mutation::CancelToken { id, by: by.into(), now_ms: 2_000 };
    assert_eq!(apply_now(&store, cancel(1, "eve")).unwrap_err().kind, ErrorKind::EACCES);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.token(1).unwrap().map(|t| t.expires_ms), Some(9_000), "kept across a reopen");

    apply_now(&store, Mutation::RemoveUser("ann".into())).unwrap();
    assert!(store.token(1).unwrap().is_none(), "gone with its owner");
    assert!(store.token(2).unwrap().is_some(), "another user's stays");
    let again = match apply_at(&store, add("ann"), 5_000_000_000).unwrap() {
        Outcome::User(u) => u.generation,
        _ => panic!("a user"),
    };
    assert!(again > first, "a user made again starts past the removed one's generation: its grants stay dead");
    apply_now(&store, cancel(2, "rex")).unwrap();
    assert!(store.token(2).unwrap().is_none());
    assert_eq!(apply_now(&store, cancel(2, "rex")).unwrap_err().kind, ErrorKind::EKEYEXPIRED);
}

/// A concat moves chunk records (handles kept, indexes shifted), removes
/// the sources, and keeps the counters; a source with another name, or an
/// unaligned one before another, is refused with nothing changed.
#[test]
fn concat_moves_chunk_records_and_removes_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let chunk = 64 * 1024;
    let file = |path: &str, size: u64| {
        let r = CreateRequest { at: at(path), exclusive: true, chunk_size_bytes: Some(chunk), ..Default::default() };
        let Outcome::Attr(a) = apply_now(&store, Mutation::Create(r)).unwrap() else { panic!("attributes") };
        let mut handles = Vec::new();
        for index in 0..size.div_ceil(chunk) {
            let Outcome::Chunk(c) = apply_now(&store, Mutation::AddChunk { inode: a.inode, index }).unwrap() else { panic!("a chunk") };
            handles.push(c.handle);
        }
        let node = NodeRef { path: Some(path.into()), inode: None };
        apply_now(&store, Mutation::Setattr(SetattrRequest { node, size: Some(size), ..Default::default() })).unwrap();
        (a.inode, handles)
    };
    let (t, _) = file("/t", chunk);
    let (_, s1) = file("/s1", 2 * chunk);
    let (_, s2) = file("/s2", 100);
    file("/short", 10);
    file("/linked", chunk);
    apply_now(&store, link("/linked", "/other-name")).unwrap();
    let concat = |sources: &[&str]| Mutation::Concat { target: "/t".into(), sources: sources.iter().map(|s| s.to_string()).collect() };
    let counters = store.counters().unwrap();
    for refused in [&["/short", "/s1"][..], &["/linked"], &["/t"], &["/s1", "/s1"], &[]] {
        assert_eq!(apply_now(&store, concat(refused)).unwrap_err().kind, ErrorKind::EINVAL, "{refused:?}");
    }
    assert_eq!(store.counters().unwrap(), counters, "refusals change nothing");

    let Outcome::Concat { attr, moved } = apply_now(&store, concat(&["/s1", "/s2"])).unwrap() else { panic!("a concat") };
    assert_eq!(attr.size, 3 * chunk + 100);
    assert_eq!(moved, vec![(s1[0], 1), (s1[1], 2), (s2[0], 3)]);
    for (handle, index) in &moved {
        assert_eq!(store.chunk(t, *index).unwrap().map(|c| c.handle), Some(*handle));
    }
    assert!(store.resolve_path("/s1", &Who::root()).is_err() && store.resolve_path("/s2", &Who::root()).is_err());
    let after = store.counters().unwrap();
    assert_eq!((after.files, after.bytes), (counters.files - 2, counters.bytes), "the bytes moved, two files went");
    let report = store.check().unwrap();
    assert!(report.ok, "the namespace checks out: {:?}", report.problems);
}

fn call(user: &str, id: &str) -> retries::CallKey {
    retries::CallKey { user: user.into(), id: id.into() }
}

#[tokio::test]
async fn a_retried_call_gets_its_first_answer_and_runs_once() {
    let ns = open();
    let create = || Mutation::Create(CreateRequest { at: at("/f"), exclusive: true, ..Default::default() });
    let first = ns.writer.submit_call(Who::root(), create(), Some(call("alice", "c1"))).await.expect("create");
    let again = ns.writer.submit_call(Who::root(), create(), Some(call("alice", "c1"))).await.expect("the retry is answered");
    let (Outcome::Attr(a), Outcome::Attr(b)) = (&first.0, &again.0) else { panic!("no attributes: {first:?} {again:?}") };
    assert_eq!((a.inode, &first.1), (b.inode, &again.1), "the first answer, dirs included");
    assert_eq!(ns.store.counters().unwrap().files, 1, "created once");
    // Another call, or the same id from another user, is a new create.
    let other = ns.writer.submit_call(Who::root(), create(), Some(call("alice", "c2"))).await;
    assert_eq!(other.unwrap_err().kind, ErrorKind::EEXIST);
    let bob = ns.writer.submit_call(Who::root(), create(), Some(call("bob", "c1"))).await;
    assert_eq!(bob.unwrap_err().kind, ErrorKind::EEXIST);
    // A failed call is not kept: sent again, it runs again.
    let rename = || Mutation::Rename(RenameRequest { src: at("/g"), dst: at("/h"), noreplace: false });
    assert_eq!(ns.writer.submit_call(Who::root(), rename(), Some(call("alice", "r"))).await.unwrap_err().kind, ErrorKind::ENOENT);
    ns.create("/g").await.unwrap();
    ns.writer.submit_call(Who::root(), rename(), Some(call("alice", "r"))).await.expect("now it renames");
    ns.writer.submit_call(Who::root(), rename(), Some(call("alice", "r"))).await.expect("and its retry is not refused with ENOENT");
    assert!(ns.stat("/h").is_ok() && ns.stat("/g").is_err());
    ns.assert_consistent();
}

#[test]
fn the_retry_cache_survives_a_reopen_and_expires_after_its_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let window = retries::RETRY_WINDOW.as_nanos() as i64;
    let now = db::now_ns();
    let applied = || (Outcome::Done, Vec::new());
    {
        let store = Store::open(dir.path()).unwrap();
        // c1 was made more than a window ago, c2 just now.
        for (id, at_ns) in [("c1", now - window - 1_000_000_000), ("c2", now)] {
            let mut t = txn::Txn::new(&store, store.counters().unwrap(), at_ns);
            retries::remember(&mut t, &call("u", id), &applied()).unwrap();
            t.commit().unwrap();
        }
        store.sync().unwrap();
        assert!(store.retried(&call("u", "c1"), now - window).unwrap().is_some(), "within its window");
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.retried(&call("u", "c2"), now).unwrap().is_some(), "kept across a reopen (replayed with the log)");
    assert!(store.retried(&call("u", "c1"), now).unwrap().is_none(), "not answered past the window");
    // A compaction drops the expired entry, keeps the live one.
    let cf = store.cf(keys::CF_RETRIES).unwrap();
    store.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
    let left: Vec<_> = store.db.iterator_cf(cf, rocksdb::IteratorMode::Start).map(|kv| kv.unwrap().0.to_vec()).collect();
    assert_eq!(left, vec![b"ku\0c2".to_vec()]);
}

/// Every key of the store, by column family, but those that differ
/// between any two stores (cluster id, log epoch) and the Raft group's
/// state.
pub(crate) fn keys(store: &Store) -> std::collections::BTreeMap<(String, Vec<u8>), Vec<u8>> {
    use super::keys::{ALL_CFS, CF_META, META_CLUSTER_ID, META_LOG_EPOCH, META_RAFT_STATE};
    let own = [META_CLUSTER_ID, META_LOG_EPOCH, META_RAFT_STATE];
    let mut all = std::collections::BTreeMap::new();
    for name in ALL_CFS {
        for item in store.db.iterator_cf(store.cf(name).unwrap(), rocksdb::IteratorMode::Start) {
            let (k, v) = item.unwrap();
            if name == CF_META && own.contains(&&*k) {
                continue;
            }
            all.insert((name.to_string(), k.to_vec()), v.to_vec());
        }
    }
    all
}

/// One reaper step at time 1; whether more is left.
fn reap_now(store: &Store) -> bool {
    let mut txn = super::txn::Txn::new(store, store.counters().unwrap(), 1);
    let more = super::mutations::reap_step(&mut txn, 3).unwrap();
    txn.commit().unwrap();
    more
}

/// A Raft leader's writer decides through pending writes: each mutation
/// sees the writes decided before it (reads, scans, listings, counters),
/// RocksDB gets none of them, and their one batch, written, leaves the
/// store key for key as deciding them on the store itself does.
#[test]
fn deciding_through_pending_writes_equals_writing_directly() {
    use dfs_proto::wire::xattrs::XattrSetMode::Either;
    // Two copies of one new store: the root's times are the same.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    drop(Store::open(a.path()).unwrap());
    for file in std::fs::read_dir(a.path()).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), b.path().join(file.file_name())).unwrap();
    }
    let direct = Store::open(a.path()).unwrap();
    let base = Store::open(b.path()).unwrap();
    let decided = base.with_pending(Default::default());
    let before = keys(&base);
    let file = |path: &str| Mutation::Create(CreateRequest { at: at(path), exclusive: true, ..Default::default() });
    let mut steps = vec![
        Mutation::Mkdir(MkdirRequest { at: at("/d/e"), parents: true, ..Default::default() }),
        file("/d/f"),
        file("/d/g"),
        Mutation::Symlink(SymlinkRequest { at: at("/d/s"), target: "f".into(), uid: None, gid: None }),
        link("/d/f", "/h"),
        set_xattr("/d/f", "user.a", b"1", Either),
        Mutation::Rename(RenameRequest { src: at("/d/g"), dst: at("/d/e/g"), noreplace: false }),
        Mutation::Mkdir(MkdirRequest { at: at("/t/u"), parents: true, ..Default::default() }),
    ];
    steps.extend((0..8).map(|i| file(&format!("/t/u/x{i}"))));
    steps.extend([Mutation::Delete(DeleteRequest { at: at("/t"), recursive: true }), unlink("/h")]);
    for (i, m) in steps.into_iter().enumerate() {
        let t = 1_000 + i as i64;
        let (want, got) = (apply_at(&direct, m.clone(), t), apply_at(&decided, m.clone(), t));
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{m:?}");
    }
    let f = decided.resolve_path("/d/f", &Who::root()).unwrap().attr.inode;
    for store in [&direct, &decided] {
        apply_now(store, Mutation::AddChunk { inode: f, index: 0 }).unwrap();
    }
    let freed = |s: &Store| std::iter::from_fn(|| Some(reap_now(s))).take_while(|more| *more).count();
    assert_eq!(freed(&decided), freed(&direct));
    let list = |s: &Store| s.list(&NodeRef { path: Some("/d".into()), inode: None }, None, None, &Who::root()).unwrap();
    assert_eq!(list(&decided), list(&direct));
    assert_eq!(decided.count_entries(InodeId::ROOT, None, 100).unwrap(), direct.count_entries(InodeId::ROOT, None, 100).unwrap());
    assert_eq!(keys(&base), before, "a pending write reached RocksDB");
    base.write(decided.take_pending().unwrap()).unwrap();
    assert_eq!(keys(&base), keys(&direct));
    assert!(decided.take_pending().unwrap().is_empty(), "the pending writes were not emptied");
    assert!(base.check().unwrap().ok);
}
