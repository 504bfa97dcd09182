//! A randomized differential test: one seeded sequence of namespace
//! operations (create, write, truncate, link, unlink, rename, mkdir, rmdir,
//! mkfifo, symlink, chmod, chown, setxattr, removexattr) applied to a directory on
//! the local disk and to the mount; every result and errno must match, and
//! so must the final trees (types, modes, link counts and which names share
//! an inode, sizes, contents, symlink targets, user.* attributes).
//! The seed is printed; `DFS_TEST_SEED=N` replays it, `DFS_DIFF_OPS=N`
//! makes the run longer. Needs root and /dev/fuse, as `fuse_mount.rs`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dfs_tests::tools::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Paths the operations pick from: few enough that they collide often.
const PATHS: [&str; 10] = ["a", "b", "c", "d1", "d2", "d1/a", "d1/e", "d2/a", "d1/d3", "d1/d3/f"];
const XATTRS: [&str; 3] = ["user.one", "user.two", "user.three"];

#[derive(Debug, Clone)]
enum Op {
    Create { path: &'static str, exclusive: bool },
    Write { path: &'static str, offset: u64, len: usize, byte: u8 },
    Truncate { path: &'static str, len: u64 },
    Link { from: &'static str, to: &'static str },
    Unlink { path: &'static str },
    Rename { from: &'static str, to: &'static str },
    Mkdir { path: &'static str },
    Rmdir { path: &'static str },
    Mkfifo { path: &'static str },
    Symlink { target: &'static str, path: &'static str },
    Chmod { path: &'static str, mode: u32 },
    Chown { path: &'static str, uid: u32, gid: u32 },
    SetXattr { path: &'static str, name: &'static str, len: usize, flags: i32 },
    RemoveXattr { path: &'static str, name: &'static str },
    Read { path: &'static str },
}

fn pick(rng: &mut StdRng) -> &'static str {
    PATHS[rng.random_range(0..PATHS.len())]
}

/// Mostly a name meant for a file (any name now and then, so that kinds clash).
fn file(rng: &mut StdRng) -> &'static str {
    const FILES: [&str; 7] = ["a", "b", "c", "d1/a", "d1/e", "d2/a", "d1/d3/f"];
    if rng.random_bool(0.8) {
        FILES[rng.random_range(0..FILES.len())]
    } else {
        pick(rng)
    }
}

/// Mostly a name meant for a directory.
fn dir(rng: &mut StdRng) -> &'static str {
    const DIRS: [&str; 3] = ["d1", "d2", "d1/d3"];
    if rng.random_bool(0.8) {
        DIRS[rng.random_range(0..DIRS.len())]
    } else {
        pick(rng)
    }
}

fn random_op(rng: &mut StdRng) -> Op {
    match rng.random_range(0..100) {
        0..=13 => Op::Create { path: file(rng), exclusive: rng.random_bool(0.5) },
        14..=25 => Op::Write { path: file(rng), offset: rng.random_range(0..200_000), len: rng.random_range(0..70_000), byte: rng.random() },
        26..=29 => Op::Truncate { path: file(rng), len: rng.random_range(0..150_000) },
        30..=39 => Op::Link { from: file(rng), to: pick(rng) },
        40..=45 => Op::Unlink { path: file(rng) },
        46..=54 => Op::Rename { from: pick(rng), to: pick(rng) },
        55..=63 => Op::Mkdir { path: dir(rng) },
        64..=66 => Op::Rmdir { path: dir(rng) },
        67..=70 => Op::Mkfifo { path: file(rng) },
        71..=74 => Op::Symlink { target: pick(rng), path: file(rng) },
        75..=78 => Op::Chmod { path: pick(rng), mode: [0o644, 0o600, 0o755, 0o4755, 0o2711, 0o1777][rng.random_range(0..6)] },
        79..=80 => {
            let (uid, gid) = [(0, 0), (1000, 1000), (65534, 100)][rng.random_range(0..3)];
            Op::Chown { path: pick(rng), uid, gid }
        }
        81..=90 => {
            let flags = [0, libc::XATTR_CREATE, libc::XATTR_REPLACE][rng.random_range(0..3)];
            Op::SetXattr { path: pick(rng), name: XATTRS[rng.random_range(0..3)], len: rng.random_range(0..300), flags }
        }
        91..=95 => Op::RemoveXattr { path: pick(rng), name: XATTRS[rng.random_range(0..3)] },
        _ => Op::Read { path: file(rng) },
    }
}

/// What an operation gave: a value to compare, or the errno.
type Outcome = Result<String, i32>;

fn errno_of(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn apply(root: &Path, op: &Op) -> Outcome {
    let p = |rel: &str| root.join(rel);
    let unit = |r: io::Result<()>| r.map(|_| String::new()).map_err(errno_of);
    match *op {
        Op::Create { path, exclusive } => {
            let mut o = writing();
            o.mode(0o644);
            if exclusive {
                o.create_new(true);
            } else {
                o.create(true);
            }
            unit(o.open(p(path)).map(drop))
        }
        Op::Write { path, offset, len, byte } => unit(writing().open(p(path)).and_then(|f| f.write_all_at(&vec![byte; len], offset))),
        Op::Truncate { path, len } => unit(writing().open(p(path)).and_then(|f| f.set_len(len))),
        Op::Link { from, to } => unit(fs::hard_link(p(from), p(to))),
        Op::Unlink { path } => unit(fs::remove_file(p(path))),
        Op::Rename { from, to } => unit(fs::rename(p(from), p(to))),
        Op::Mkdir { path } => unit(fs::create_dir(p(path))),
        Op::Rmdir { path } => unit(fs::remove_dir(p(path))),
        Op::Mkfifo { path } => unit(syscall(&p(path), mkfifo)),
        Op::Symlink { target, path } => unit(std::os::unix::fs::symlink(target, p(path))),
        Op::Chmod { path, mode } => unit(fs::set_permissions(p(path), fs::Permissions::from_mode(mode))),
        Op::Chown { path, uid, gid } => unit(std::os::unix::fs::lchown(p(path), Some(uid), Some(gid))),
        Op::SetXattr { path, name, len, flags } => unit(set_xattr(&p(path), name, &value_of(len), flags)),
        Op::RemoveXattr { path, name } => unit(remove_xattr(&p(path), name)),
        Op::Read { path } => read_all(&p(path)).map(|d| format!("{} bytes, sum {}", d.len(), d.iter().map(|b| *b as u64).sum::<u64>())).map_err(errno_of),
    }
}

/// Opens never wait: a FIFO with no reader is ENXIO for a writer (on both
/// sides alike), and reads as empty.
fn writing() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).custom_flags(libc::O_NONBLOCK);
    o
}

fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?.read_to_end(&mut data)?;
    Ok(data)
}

fn value_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_random_sequence_of_operations_gives_the_same_results_as_a_local_disk() {
    let seed = dfs_tests::seed();
    let ops: usize = std::env::var("DFS_DIFF_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    // A second mount, fresh at the end: what reached the cluster, not
    // only the first mount's caches.
    let other = mount(&c, &[]);
    let local = tempfile::tempdir().unwrap();
    let (mnt, disk, fresh) = (m.path().join("diff"), local.path().join("diff"), other.path().join("diff"));
    within(Duration::from_secs(600), move || {
        fs::create_dir(&mnt).unwrap();
        fs::create_dir(&disk).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut done = 0;
        for step in 0..ops {
            let op = random_op(&mut rng);
            let (on_disk, on_dfs) = (apply(&disk, &op), apply(&mnt, &op));
            assert_eq!(on_dfs, on_disk, "step {step}: {op:?} (seed {seed}): dfs, then the local disk");
            done += usize::from(on_disk.is_ok());
            if step % 50 == 49 {
                assert_same_trees(&disk, &mnt, &format!("after step {step} (seed {seed})"));
            }
        }
        assert_same_trees(&disk, &mnt, &format!("at the end (seed {seed})"));
        assert_same_trees(&disk, &fresh, &format!("at the end, through another mount (seed {seed})"));
        eprintln!("{done} of {ops} operations succeeded (the rest failed alike)");
        assert!(done * 7 >= ops, "only {done} of {ops} operations succeeded: the sequence tests little");
    });
    assert_namespace_consistent(&c);
}

/// Everything about one name that should be the same on both sides.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    nlink: u64,
    size: Option<u64>,
    content_sum: Option<(usize, u64)>,
    target: Option<PathBuf>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn assert_same_trees(disk: &Path, mnt: &Path, when: &str) {
    let (a, a_groups) = scan(disk);
    let (b, b_groups) = scan(mnt);
    assert_eq!(b.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>(), "names {when}: dfs, then the local disk");
    for (name, seen) in &a {
        assert_eq!(&b[name], seen, "{name} {when}: dfs, then the local disk");
    }
    assert_eq!(b_groups, a_groups, "names sharing an inode {when}: dfs, then the local disk");
}

/// Every name under `root` (relative) and what is seen of it, and the
/// groups of names that share an inode.
fn scan(root: &Path) -> (BTreeMap<String, Seen>, Vec<Vec<String>>) {
    let mut seen = BTreeMap::new();
    let mut by_inode: HashMap<u64, Vec<String>> = HashMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = fs::symlink_metadata(&path).unwrap();
            let t = md.file_type();
            let kind = if t.is_dir() {
                "dir"
            } else if t.is_file() {
                "file"
            } else if t.is_symlink() {
                "symlink"
            } else if t.is_fifo() {
                "fifo"
            } else {
                "other"
            };
            if t.is_dir() {
                dirs.push(path.clone());
            }
            by_inode.entry(md.ino()).or_default().push(rel.clone());
            let data = t.is_file().then(|| read_all(&path).unwrap());
            seen.insert(
                rel,
                Seen {
                    kind,
                    mode: if t.is_symlink() { 0 } else { md.mode() & 0o7777 },
                    owner: (md.uid(), md.gid()),
                    nlink: md.nlink(),
                    size: (!t.is_dir()).then_some(md.len()),
                    content_sum: data.map(|d| (d.len(), d.iter().map(|b| *b as u64).sum())),
                    target: t.is_symlink().then(|| fs::read_link(&path).unwrap()),
                    xattrs: if t.is_symlink() { BTreeMap::new() } else { user_xattrs(&path) },
                },
            );
        }
    }
    let mut groups: Vec<Vec<String>> = by_inode
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    (seen, groups)
}

fn user_xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = cstr(path);
    let mut buf = vec![0u8; 65536];
    // SAFETY: a NUL-terminated path and a buffer of its true length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "listxattr {}: {}", path.display(), io::Error::last_os_error());
    let names: Vec<String> = buf[..n as usize].split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
    let mut out = BTreeMap::new();
    for name in names.into_iter().filter(|n| n.starts_with("user.")) {
        let cname = CString::new(name.clone()).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: NUL-terminated path and name, a buffer of its true length.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        assert!(len >= 0, "getxattr {} {name}: {}", path.display(), io::Error::last_os_error());
        value.truncate(len as usize);
        out.insert(name, value);
    }
    out
}

/// Runs a libc call on a NUL-terminated path; its errno when it fails.
fn syscall(path: &Path, call: impl FnOnce(&CString) -> i32) -> io::Result<()> {
    let c = cstr(path);
    if call(&c) < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn mkfifo(c: &CString) -> i32 {
    // SAFETY: a NUL-terminated path, live for the call.
    unsafe { libc::mkfifo(c.as_ptr(), 0o644) }
}

fn set_xattr(path: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: NUL-terminated path and name, a value of its true length.
    syscall(path, |c| unsafe { libc::setxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) })
}

fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: NUL-terminated path and name.
    syscall(path, |c| unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) })
}
