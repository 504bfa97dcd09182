//! Extended attributes through the kernel's FUSE client, the shell and the
//! API: Linux's errnos and limits, namespaces by user, what writes and
//! chowns drop, tools that copy attributes (`cp -a`, `rsync -aX`), and the
//! kernel not asking for `security.capability` before every write.
//! Needs root and /dev/fuse, as `fuse_mount.rs`.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dfs_tests::tools::*;

const E2BIG: i32 = libc::E2BIG;

/// The errnos and rules of getxattr, setxattr, listxattr and removexattr.
#[test]
fn xattr_calls_give_linux_results_and_errnos() {
    let c = cluster(&[]);
    let m = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let other = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let (mnt, mnt2) = (m.path().to_path_buf(), other.path().to_path_buf());
    within(Duration::from_secs(120), move || {
        let f = mnt.join("f");
        fs::write(&f, "data").unwrap();
        fs::create_dir(mnt.join("d")).unwrap();
        assert_eq!(list(&f), Ok(vec![]));
        assert_eq!(get(&f, "user.a"), Err(libc::ENODATA));
        let ctime = fs::metadata(&f).unwrap().ctime_nsec();
        set(&f, "user.a", b"one", 0).unwrap();
        assert!(fs::metadata(&f).unwrap().ctime_nsec() != ctime, "setxattr changes ctime");
        assert_eq!(get(&f, "user.a"), Ok(b"one".to_vec()));
        assert_eq!(set(&f, "user.a", b"two", libc::XATTR_CREATE), Err(libc::EEXIST));
        assert_eq!(set(&f, "user.b", b"two", libc::XATTR_REPLACE), Err(libc::ENODATA));
        set(&f, "user.a", b"\0binary\xff", libc::XATTR_REPLACE).unwrap();
        assert_eq!(get(&f, "user.a"), Ok(b"\0binary\xff".to_vec()));
        set(&f, "user.empty", b"", 0).unwrap();
        assert_eq!(get(&f, "user.empty"), Ok(vec![]));
        set(&mnt.join("d"), "user.on-a-dir", b"yes", 0).unwrap();
        assert_eq!(list(&mnt.join("d")), Ok(vec!["user.on-a-dir".to_string()]));

        // Sizes: a length query, a short buffer, Linux's limits.
        assert_eq!(get_len(&f, "user.a", 0), Ok(8));
        assert_eq!(get_len(&f, "user.a", 3), Err(libc::ERANGE));
        let largest = vec![b'x'; 65536];
        set(&f, "user.large", &largest, 0).unwrap();
        assert_eq!(get(&f, "user.large"), Ok(largest));
        assert_eq!(set(&f, "user.huge", &vec![0; 65537], 0), Err(E2BIG));
        assert_eq!(set(&f, &format!("user.{}", "n".repeat(251)), b"v", 0), Err(libc::ERANGE));
        assert_eq!(set(&f, "other.x", b"v", 0), Err(libc::EOPNOTSUPP));
        assert_eq!(list(&f), Ok(vec!["user.a".into(), "user.empty".into(), "user.large".into()]));

        // The other mount sees them (once its own "none" has expired).
        poll(Duration::from_secs(5), "the other mount to see the attributes", || get(&mnt2.join("f"), "user.a") == Ok(b"\0binary\xff".to_vec()));

        assert_eq!(remove(&f, "user.missing"), Err(libc::ENODATA));
        remove(&f, "user.large").unwrap();
        remove(&f, "user.empty").unwrap();
        assert_eq!(get(&f, "user.large"), Err(libc::ENODATA));
        remove(&f, "user.a").unwrap();
        assert_eq!(list(&f), Ok(vec![]));

        // trusted.* is root's, and hidden from others; security.* others read.
        set(&f, "trusted.t", b"root only", 0).unwrap();
        set(&f, "security.s", b"labels", 0).unwrap();
        set(&f, "user.u", b"for all", 0).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let script = format!(
            r#"import os, errno
p = {f:?}
print(sorted(os.listxattr(p)))
for n in ["user.u", "security.s", "trusted.t"]:
    try: print(n, os.getxattr(p, n))
    except OSError as e: print(n, errno.errorcode[e.errno])
for n in ["user.u", "trusted.t", "security.s"]:
    try: os.setxattr(p, n, b"x"); print(n, "set")
    except OSError as e: print(n, errno.errorcode[e.errno])
"#,
            f = f.display().to_string()
        );
        let out = as_nobody(&["/usr/bin/python3", "-c", &script]);
        let got = text(&out.stdout);
        assert_eq!(
            got.lines().collect::<Vec<_>>(),
            [
                "['security.s', 'user.u']",
                "user.u b'for all'",
                "security.s b'labels'",
                "trusted.t ENODATA",
                "user.u EACCES",
                "trusted.t EPERM",
                "security.s EPERM",
            ],
            "as nobody: {}",
            text(&out.stderr)
        );
        assert_eq!(get(&f, "user.u"), Ok(b"for all".to_vec()), "refused sets changed nothing");
        // FIFOs and symlinks take no user.* attributes.
        assert_eq!(lset(&mnt.join("d"), "user.x", b"v").map(|_| ()), Ok(()));
        std::os::unix::fs::symlink("f", mnt.join("link")).unwrap();
        assert_eq!(lset(&mnt.join("link"), "user.x", b"v"), Err(libc::EPERM));
    });
}

/// A write drops `security.capability` (and, by another user, setuid); a
/// file with attributes costs the master one `security.capability`
/// question for its first write, not one per write(2).
#[test]
fn writes_drop_capabilities_and_the_kernel_asks_once() {
    let c = cluster(&[]);
    let m = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let mnt = m.path().to_path_buf();
    let url = c.master.url.clone();
    within(Duration::from_secs(120), move || {
        let f = mnt.join("tool");
        fs::write(&f, "#!/bin/sh\n").unwrap();
        run_ok(Command::new("setcap").arg("cap_net_raw+ep").arg(&f));
        assert_eq!(get(&f, "security.capability").map(|v| v.len()), Ok(20));
        OpenOptions::new().append(true).open(&f).unwrap().write_all(b"echo changed\n").unwrap();
        assert_eq!(get(&f, "security.capability"), Err(libc::ENODATA), "a write keeps no capabilities");

        let g = mnt.join("setuid");
        fs::write(&g, "x").unwrap();
        fs::set_permissions(&g, fs::Permissions::from_mode(0o4777)).unwrap();
        let out = as_nobody(&["sh", "-c", &format!("echo more >> {}", g.display())]);
        assert!(out.status.success(), "{out:?}");
        poll(Duration::from_secs(5), "setuid to be cleared by another user's write", || fs::metadata(&g).unwrap().mode() & 0o7777 == 0o777);

        // 300 writes to a file with attributes: the master hears at most a
        // couple of getxattr calls (the kernel marks the inode S_NOSEC).
        let h = mnt.join("appended");
        fs::write(&h, "").unwrap();
        set(&h, "user.kept", b"v", 0).unwrap();
        let before = xattr_gets(&url);
        let mut file = OpenOptions::new().append(true).open(&h).unwrap();
        for i in 0..300 {
            file.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(file);
        let asked = xattr_gets(&url) - before;
        assert!(asked <= 2, "the master was asked {asked} times for an attribute during 300 writes");
        assert_eq!(get(&h, "user.kept"), Ok(b"v".to_vec()), "a write keeps other attributes");
    });
}

/// Setuid and setgid go at another user's `write(2)`, as Linux does: the
/// writer's `fstat` before its close shows them gone, and so does a stat
/// right after it, with the default attribute TTL (the kernel's cached
/// attributes go with them). Setgid without group execute (a mandatory
/// locking mark) stays, and root's writes keep both, as on Linux.
#[test]
fn setuid_and_setgid_go_at_another_users_write() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let mnt = m.path().to_path_buf();
    within(Duration::from_secs(120), move || {
        for (mode, after) in [(0o4777, 0o777), (0o2777, 0o777), (0o6777, 0o777), (0o2767, 0o2767)] {
            let f = mnt.join(format!("m{mode:o}"));
            fs::write(&f, "x").unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, mode, "cached by the kernel before the write");
            let fstat = "import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.write(fd, b'y'); print(oct(os.fstat(fd).st_mode & 0o7777)); os.close(fd)";
            let out = as_nobody(&["/usr/bin/python3", "-c", fstat, f.to_str().unwrap()]);
            assert!(out.status.success(), "{out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{after:#o}"), "fstat after a write of a {mode:o} file, before close");
            assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, after, "stat after the writer closed a {mode:o} file");
        }
        let f = mnt.join("root-writes");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
        OpenOptions::new().append(true).open(&f).unwrap().write_all(b"more").unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o6755, "root's write keeps setuid and setgid");
    });
}

/// `cp -a` and `rsync -aX` carry attributes into the mount and back out;
/// the shell's getfattr/setfattr read and write the same ones.
#[test]
fn cp_a_rsync_x_and_the_shell_round_trip_attributes() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let mnt = m.path().to_path_buf();
    let local = tempfile::tempdir().unwrap();
    let (src, back) = (local.path().join("src"), local.path().join("back"));
    within(Duration::from_secs(120), move || {
        fs::create_dir_all(src.join("sub")).unwrap();
        for (i, name) in ["a", "b", "sub/c"].iter().enumerate() {
            let p = src.join(name);
            fs::write(&p, format!("file {name}")).unwrap();
            set(&p, "user.index", i.to_string().as_bytes(), 0).unwrap();
            set(&p, "user.binary", &[0, 1, 2, 255], 0).unwrap();
        }
        set(&src.join("sub"), "user.dir", b"a directory's", 0).unwrap();

        run_ok(Command::new("cp").arg("-a").arg(&src).arg(mnt.join("by-cp")));
        run_ok(Command::new("rsync").arg("-aHX").arg(format!("{}/", src.display())).arg(mnt.join("by-rsync")));
        for top in ["by-cp", "by-rsync"] {
            for name in ["a", "b", "sub/c"] {
                let p = mnt.join(top).join(name);
                assert_eq!(list(&p), Ok(vec!["user.binary".into(), "user.index".into()]), "{}", p.display());
                assert_eq!(get(&p, "user.binary"), Ok(vec![0, 1, 2, 255]));
            }
            assert_eq!(get(&mnt.join(top).join("sub"), "user.dir"), Ok(b"a directory's".to_vec()));
        }
        let itemized = run(Command::new("rsync").arg("-aHXn").arg("--itemize-changes").arg(format!("{}/", src.display())).arg(mnt.join("by-rsync")));
        assert_eq!(text(&itemized.stdout), "", "rsync -X finds nothing to do");
        run_ok(Command::new("rsync").arg("-aHX").arg(format!("{}/", mnt.join("by-rsync").display())).arg(&back));
        assert_eq!(get(&back.join("sub/c"), "user.index"), Ok(b"2".to_vec()), "attributes came back out");
    });
    let dfs = |args: &[&str]| run_ok(dfs_tests::shell::command(&c.master.url).unwrap().args(args));
    assert_eq!(dfs(&["getfattr", "-n", "user.index", "/by-cp/a"]), "# file: /by-cp/a\nuser.index=\"0\"\n\n");
    assert_eq!(dfs(&["getfattr", "-d", "-e", "hex", "/by-cp/b"]), "# file: /by-cp/b\nuser.binary=0x000102ff\nuser.index=0x31\n\n");
    dfs(&["setfattr", "-n", "user.note", "-v", "0sAP8=", "/by-cp/a"]);
    assert_eq!(get(&m.path().join("by-cp/a"), "user.note"), Ok(vec![0, 255]));
    dfs(&["setfattr", "-x", "user.note", "/by-cp/a"]);
    let out = run(dfs_tests::shell::command(&c.master.url).unwrap().args(["getfattr", "-n", "user.note", "/by-cp/a"]));
    assert!(!out.status.success() && text(&out.stderr).contains("No data available"), "{out:?}");
    let recursive = dfs(&["getfattr", "-R", "-d", "/by-cp/sub"]);
    assert_eq!(recursive, "# file: /by-cp/sub\nuser.dir=\"a directory's\"\n\n# file: /by-cp/sub/c\nuser.binary=\"\\000\\001\\002\\377\"\nuser.index=\"2\"\n\n");
}

/// GET /v1/xattr requests the master answered so far.
fn xattr_gets(url: &str) -> u64 {
    let text = block_on(async { reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap() });
    let wanted = r#"dfs_master_http_requests_total{route="/v1/xattr",method="GET""#;
    text.lines().filter(|l| l.starts_with(wanted)).filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum::<f64>() as u64
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// getxattr(2) with a buffer of `size` bytes: the length, or the errno.
fn get_len(path: &Path, name: &str, size: usize) -> Result<usize, i32> {
    let (p, n) = (cstr(path), c(name));
    let mut buf = vec![0u8; size];
    // SAFETY: NUL-terminated path and name, a buffer of its true length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as usize)
    }
}

/// The whole value, or the errno.
fn get(path: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let (p, n) = (cstr(path), c(name));
    let mut buf = vec![0u8; 70_000];
    // SAFETY: NUL-terminated path and name, a buffer of its true length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(last_errno());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

fn set(path: &Path, name: &str, value: &[u8], flags: i32) -> Result<(), i32> {
    let (p, n) = (cstr(path), c(name));
    // SAFETY: NUL-terminated path and name, a value of its true length.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// lsetxattr(2): on a symlink itself.
fn lset(path: &Path, name: &str, value: &[u8]) -> Result<(), i32> {
    let (p, n) = (cstr(path), c(name));
    // SAFETY: NUL-terminated path and name, a value of its true length.
    let r = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

fn remove(path: &Path, name: &str) -> Result<(), i32> {
    let (p, n) = (cstr(path), c(name));
    // SAFETY: NUL-terminated path and name.
    let r = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// The names, sorted.
fn list(path: &Path) -> Result<Vec<String>, i32> {
    let p = cstr(path);
    let mut buf = vec![0u8; 70_000];
    // SAFETY: a NUL-terminated path, a buffer of its true length.
    let r = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(last_errno());
    }
    let mut names: Vec<String> = buf[..r as usize].split(|b| *b == 0).filter(|n| !n.is_empty()).map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    names.sort();
    Ok(names)
}
