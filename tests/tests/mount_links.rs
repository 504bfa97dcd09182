//! Hard links and special files (FIFOs, Unix sockets, device nodes)
//! through the kernel's FUSE client: system calls, two mounts of one
//! cluster, the shell's view of them, and the tools that rely on hard
//! links (`cp -al`, `rsync -H`, `git clone --local`).
//! Needs root and /dev/fuse, as `fuse_mount.rs`.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dfs_tests::tools::*;

/// A name made in one mount is seen in the other with the same inode and
/// link count; data written through one name reads back through every
/// other; unlinking one name keeps the data; refused links change nothing.
#[test]
fn hard_links_are_one_file_under_several_names_in_every_mount() {
    let c = cluster(&[]);
    let a = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let b = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
    within(Duration::from_secs(120), move || {
        fs::create_dir(pa.join("d")).unwrap();
        fs::write(pa.join("f"), "first").unwrap();
        let before = fs::metadata(pa.join("f")).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fs::hard_link(pa.join("f"), pa.join("d/g")).unwrap();
        let (f, g) = (fs::metadata(pa.join("f")).unwrap(), fs::metadata(pa.join("d/g")).unwrap());
        assert_eq!((f.ino(), f.nlink()), (g.ino(), 2), "both names, one inode with 2 links");
        assert!(f.ctime_nsec() != before.ctime_nsec() || f.ctime() > before.ctime(), "link changes the inode's ctime");
        let gb = fs::metadata(pb.join("d/g")).unwrap();
        assert_eq!((gb.ino(), gb.nlink()), (f.ino(), 2), "the other mount sees the same inode and count");

        fs::write(pb.join("d/g"), "written through g on B").unwrap();
        assert_eq!(fs::read_to_string(pa.join("f")).unwrap(), "written through g on B");

        // Refused: a directory, a taken name, a missing directory.
        assert_eq!(errno(fs::hard_link(pa.join("d"), pa.join("d2"))), libc::EPERM);
        assert_eq!(errno(fs::hard_link(pa.join("f"), pa.join("d/g"))), libc::EEXIST);
        assert_eq!(errno(fs::hard_link(pa.join("f"), pa.join("nowhere/x"))), libc::ENOENT);
        assert_eq!(errno(fs::hard_link(pa.join("missing"), pa.join("x"))), libc::ENOENT);
        assert!(fs::symlink_metadata(pa.join("d2")).is_err() && fs::symlink_metadata(pa.join("x")).is_err());
        assert_eq!(fs::metadata(pa.join("f")).unwrap().nlink(), 2, "refusals left the count alone");

        // Unlinking one name keeps the other, with one link, in both mounts.
        fs::remove_file(pa.join("f")).unwrap();
        assert_eq!(fs::metadata(pa.join("d/g")).unwrap().nlink(), 1);
        poll(Duration::from_secs(5), "B to see one link left", || fs::metadata(pb.join("d/g")).map(|m| m.nlink() == 1).unwrap_or(false));
        assert_eq!(fs::read_to_string(pb.join("d/g")).unwrap(), "written through g on B");

        // A rename onto another name of the same file does nothing (POSIX).
        fs::hard_link(pa.join("d/g"), pa.join("h")).unwrap();
        fs::rename(pa.join("h"), pa.join("d/g")).unwrap();
        assert!(fs::metadata(pa.join("h")).is_ok() && fs::metadata(pa.join("d/g")).is_ok());
        // Rename over one name drops just that link.
        fs::write(pa.join("other"), "other").unwrap();
        fs::rename(pa.join("other"), pa.join("h")).unwrap();
        assert_eq!(fs::metadata(pa.join("d/g")).unwrap().nlink(), 1);
        assert_eq!(fs::read_to_string(pa.join("d/g")).unwrap(), "written through g on B");

        // A file open here with another name left is unlinked for real.
        let mut open = OpenOptions::new().read(true).write(true).open(pa.join("d/g")).unwrap();
        fs::hard_link(pa.join("d/g"), pa.join("keep")).unwrap();
        fs::remove_file(pa.join("d/g")).unwrap();
        assert_eq!(names(&pa.join("d")), Vec::<String>::new(), "no hidden name for a file with another link");
        open.write_all(b"!").unwrap();
        drop(open);
        assert_eq!(fs::read_to_string(pb.join("keep")).unwrap(), "!ritten through g on B");
    });
    assert_namespace_consistent(&c);
}

/// FIFOs and sockets work for local processes (each kernel does their
/// I/O); device nodes keep their numbers; only root makes devices; the
/// shell lists the types with ls's letters.
#[test]
fn fifos_sockets_and_device_nodes_are_real_special_files() {
    let c = cluster(&[]);
    let a = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let b = mount(&c, &["-o", "dev"]);
    let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
    within(Duration::from_secs(120), move || {
        // A FIFO: a writer and a reader meet through it.
        mknod(&pa.join("pipe"), libc::S_IFIFO | 0o640, 0).unwrap();
        let md = fs::symlink_metadata(pa.join("pipe")).unwrap();
        assert!(md.file_type().is_fifo(), "{md:?}");
        assert_eq!(md.mode() & 0o7777, 0o640);
        let writer_path = pa.join("pipe");
        let writer = std::thread::spawn(move || fs::write(writer_path, "through the fifo").unwrap());
        let mut got = String::new();
        fs::File::open(pa.join("pipe")).unwrap().read_to_string(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, "through the fifo");
        assert_eq!(errno(mknod(&pa.join("pipe"), libc::S_IFIFO | 0o600, 0)), libc::EEXIST);

        // A Unix socket: bind leaves a socket entry; a client connects by it.
        let listener = UnixListener::bind(pa.join("sock")).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"hello over a socket in dfs").unwrap();
        });
        let mut s = UnixStream::connect(pa.join("sock")).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        server.join().unwrap();
        assert_eq!(got, "hello over a socket in dfs");
        assert!(fs::symlink_metadata(pb.join("sock")).unwrap().file_type().is_socket(), "the other mount sees a socket");

        // Device nodes: numbers kept, made by root only.
        let null = libc::makedev(1, 3);
        mknod(&pa.join("null"), libc::S_IFCHR | 0o666, null).unwrap();
        mknod(&pa.join("loop"), libc::S_IFBLK | 0o600, libc::makedev(7, 0)).unwrap();
        let (cd, bd) = (fs::symlink_metadata(pb.join("null")).unwrap(), fs::symlink_metadata(pb.join("loop")).unwrap());
        assert!(cd.file_type().is_char_device() && bd.file_type().is_block_device());
        assert_eq!((cd.rdev(), bd.rdev()), (null, libc::makedev(7, 0)));
        assert_eq!(errno(fs::File::open(pa.join("null"))), libc::EACCES, "the mount is nodev unless told -o dev");
        fs::write(pb.join("null"), "into the null device").expect("a device node opens on a mount with -o dev");
        fs::set_permissions(&pa, fs::Permissions::from_mode(0o777)).unwrap();
        let as_nobody_mknod = |kind: &str, name: &str| as_nobody(&["mknod", pa.join(name).to_str().unwrap(), kind, "1", "3"]);
        let out = as_nobody_mknod("c", "nobody-dev");
        assert!(!out.status.success() && text(&out.stderr).contains("not permitted"), "{out:?}");
        let out = as_nobody(&["mkfifo", pa.join("nobody-fifo").to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(fs::symlink_metadata(pa.join("nobody-fifo")).unwrap().uid(), 65534);
        assert!(fs::symlink_metadata(pa.join("nobody-dev")).is_err());

        // Renamed, linked and removed like any entry.
        fs::hard_link(pa.join("pipe"), pa.join("pipe2")).unwrap();
        fs::rename(pa.join("pipe2"), pa.join("pipe3")).unwrap();
        assert_eq!(fs::symlink_metadata(pa.join("pipe3")).unwrap().nlink(), 2);
        fs::remove_file(pa.join("pipe")).unwrap();
        assert_eq!(fs::symlink_metadata(pa.join("pipe3")).unwrap().nlink(), 1);
    });
    let ls = run_ok(shell(&c).args(["ls", "/"]));
    for (letter, name) in [('p', "pipe3"), ('s', "sock"), ('c', "null"), ('b', "loop")] {
        let line = ls.lines().find(|l| l.ends_with(&format!("/{name}"))).unwrap_or_else(|| panic!("{name} not listed:\n{ls}"));
        assert!(line.starts_with(letter), "{name} listed as {line:?}");
    }
    let stat = run_ok(shell(&c).args(["stat", "-c", "%F", "/pipe3", "/sock", "/null"]));
    assert_eq!(stat.lines().collect::<Vec<_>>(), ["fifo", "socket", "character special file"]);
    assert_namespace_consistent(&c);
}

/// The shell's `ln` makes hard and symbolic links.
#[test]
fn the_shell_makes_hard_and_symbolic_links() {
    let c = cluster(&[]);
    run_ok(shell(&c).args(["mkdir", "/d"]));
    run_ok(shell(&c).args(["touchz", "/f"]));
    run_ok(shell(&c).args(["ln", "/f", "/g"]));
    run_ok(shell(&c).args(["ln", "/f", "/d"]));
    run_ok(shell(&c).args(["ln", "-s", "../f", "/d/sym"]));
    let stat = run_ok(shell(&c).args(["stat", "-c", "%i %h %F", "/f", "/g", "/d/f", "/d/sym"]));
    let lines: Vec<&str> = stat.lines().collect();
    let inode = lines[0].split(' ').next().unwrap();
    assert_eq!(lines[..3], [format!("{inode} 3 regular file"), format!("{inode} 3 regular file"), format!("{inode} 3 regular file")]);
    assert!(lines[3].ends_with(" 1 symbolic link"), "{lines:?}");
    let out = run(shell(&c).args(["ln", "/d", "/d3"]));
    assert!(!out.status.success() && text(&out.stderr).contains("ln: /d3"), "{out:?}");
    assert_namespace_consistent(&c);
}

/// `rsync -aH` into the mount keeps hard links, `cp -al` makes a tree of
/// links, `git clone --local` links the objects, and all of it reads back.
#[test]
fn cp_al_rsync_h_and_git_clone_local_keep_hard_links() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let mnt = m.path().to_path_buf();
    let local = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (src, back) = (local.path().join("src"), local.path().join("back"));
    let home_path = home.path().to_path_buf();
    within(Duration::from_secs(300), move || {
        fs::create_dir_all(src.join("sub")).unwrap();
        for i in 0..20 {
            fs::write(src.join(format!("file{i}")), format!("contents {i}\n").repeat(100 * i + 1)).unwrap();
        }
        fs::hard_link(src.join("file3"), src.join("sub/file3-link")).unwrap();
        fs::hard_link(src.join("file3"), src.join("file3-again")).unwrap();

        run_ok(Command::new("rsync").arg("-aH").arg(format!("{}/", src.display())).arg(mnt.join("tree")));
        let t = |p: &str| fs::metadata(mnt.join("tree").join(p)).unwrap();
        assert_eq!((t("sub/file3-link").ino(), t("file3-again").ino(), t("file3").nlink()), (t("file3").ino(), t("file3").ino(), 3));
        assert_eq!(run(Command::new("rsync").arg("-aHn").arg("--itemize-changes").arg(format!("{}/", src.display())).arg(mnt.join("tree"))).stdout, b"");

        run_ok(Command::new("cp").arg("-al").arg(mnt.join("tree")).arg(mnt.join("copy")));
        assert_eq!(fs::metadata(mnt.join("copy/file7")).unwrap().ino(), t("file7").ino());
        assert_eq!(t("file3").nlink(), 6);
        assert_eq!(t("file7").nlink(), 2);

        run_ok(Command::new("rsync").arg("-aH").arg(format!("{}/", mnt.join("copy").display())).arg(&back));
        run_ok(Command::new("diff").arg("-r").arg(&src).arg(&back));
        let b = |p: &str| fs::metadata(back.join(p)).unwrap();
        assert_eq!((b("sub/file3-link").ino(), b("file3").nlink()), (b("file3").ino(), 3), "hard links came back out");

        let repo = mnt.join("repo");
        fs::create_dir(&repo).unwrap();
        run_ok(git_cmd(&home_path, &repo).arg("init"));
        for i in 0..5 {
            fs::write(repo.join(format!("f{i}")), format!("version {i}\n")).unwrap();
            run_ok(git_cmd(&home_path, &repo).args(["add", "-A"]));
            run_ok(git_cmd(&home_path, &repo).args(["commit", "-qm", &format!("commit {i}")]));
        }
        run_ok(git_cmd(&home_path, &mnt).args(["clone", "-q", "--local", "repo", "clone"]));
        let clone = mnt.join("clone");
        run_ok(git_cmd(&home_path, &clone).args(["fsck", "--strict"]));
        assert_eq!(run_ok(git_cmd(&home_path, &clone).args(["rev-list", "--count", "HEAD"])).trim(), "5");
        let linked = objects(&clone).into_iter().filter(|p| fs::metadata(p).unwrap().nlink() >= 2).count();
        assert!(linked > 0, "git clone --local linked no objects");
    });
    assert_namespace_consistent(&c);
}

/// The loose objects of a repository.
fn objects(repo: &Path) -> Vec<std::path::PathBuf> {
    let dir = repo.join(".git/objects");
    let fan = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().is_some_and(|n| n.len() == 2));
    fan.flat_map(|d| fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>()).collect()
}

/// mknod(2); the error when refused.
fn mknod(path: &Path, mode: u32, dev: u64) -> std::io::Result<()> {
    let c = cstr(path);
    // SAFETY: a NUL-terminated path, live for the call.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn shell(c: &dfs_tests::Cluster) -> Command {
    let mut cmd = dfs_tests::shell::command(&c.master.url).expect("dfs shell");
    cmd.env("LC_ALL", "C");
    cmd
}

/// The errnos of the calls around links and special files, as root and as
/// another user, are Linux's.
#[test]
fn errnos_around_links_and_special_files_are_linux_ones() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let mnt = m.path().to_path_buf();
    let elsewhere = tempfile::tempdir().unwrap();
    let other_fs = elsewhere.path().to_path_buf();
    within(Duration::from_secs(60), move || {
        let p = |n: &str| mnt.join(n);
        fs::set_permissions(&mnt, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(p("roots"), "root's").unwrap();
        fs::set_permissions(p("roots"), fs::Permissions::from_mode(0o644)).unwrap();
        let out = as_nobody(&["ln", p("roots").to_str().unwrap(), p("mine").to_str().unwrap()]);
        assert!(!out.status.success() && text(&out.stderr).contains("not permitted"), "a link to a file nobody may not write: {out:?}");
        assert!(fs::symlink_metadata(p("mine")).is_err());

        mknod(&p("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
        fs::create_dir(p("dir")).unwrap();
        std::os::unix::fs::symlink("nowhere", p("dangling")).unwrap();
        for name in ["fifo", "dir", "dangling", "roots"] {
            assert_eq!(errno(OpenOptions::new().write(true).create_new(true).open(p(name))), libc::EEXIST, "O_CREAT|O_EXCL on {name}");
        }
        std::os::unix::fs::symlink("loop-b", p("loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", p("loop-b")).unwrap();
        assert_eq!(errno(fs::File::open(p("loop-a"))), libc::ELOOP);
        assert_eq!(errno(fs::rename(p("roots"), other_fs.join("roots"))), libc::EXDEV);
        assert_eq!(errno(fs::hard_link(p("roots"), other_fs.join("roots"))), libc::EXDEV);
        assert_eq!(errno(fs::hard_link(p("roots"), p("roots/x"))), libc::ENOTDIR);
        assert_eq!(errno(fs::hard_link(p("roots"), p(&"n".repeat(256)))), libc::ENAMETOOLONG);
        assert_eq!(errno(fs::remove_dir(p("fifo"))), libc::ENOTDIR);
        assert_eq!(errno(fs::remove_file(p("dir"))), libc::EISDIR);
        assert_eq!(fs::metadata(p("roots")).unwrap().nlink(), 1, "refusals left the count alone");
    });
    assert_namespace_consistent(&c);
}
