//! `dfs-mount` end to end: real tools (cp, tar, rsync, git, sqlite3) and
//! raw system calls through the kernel's FUSE client against a real cluster.
//!
//! Every test starts its own cluster (3 chunkservers) and its own mounts;
//! a `Mount` unmounts when dropped, also when the test fails. Test bodies
//! run on a watchdog thread ([`within`]) and commands are killed after a
//! limit, so a hang in the mount fails the test instead of stalling the run.
//! Needs root and /dev/fuse (see deploy/install-deps.sh for the tools).

use std::ffi::CString;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::IntoRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use dfs_tests::mount::is_mounted;
use dfs_tests::seed;
use dfs_tests::tools::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// cp of a 200 MiB file into the mount and back out gives the same bytes
/// (cmp) and stat shows the exact size; a second, fresh mount reads the same
/// bytes, so they are in the cluster and not only in this mount's caches.
#[test]
fn cp_of_200_mib_in_and_out_round_trips() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big");
    let size = 200 * MIB + 12345;
    fs::write(&src, random_bytes(&mut StdRng::seed_from_u64(seed()), size)).unwrap();

    let (mnt, back) = (m.path().to_path_buf(), local.path().join("back"));
    let src2 = src.clone();
    within(Duration::from_secs(300), move || {
        run_ok(Command::new("cp").arg(&src2).arg(mnt.join("big")));
        assert_eq!(fs::metadata(mnt.join("big")).unwrap().len(), size as u64, "size seen by stat");
        run_ok(Command::new("cp").arg(mnt.join("big")).arg(&back));
        run_ok(Command::new("cmp").arg(&src2).arg(&back));
    });
    let fresh = mount(&c, &[]);
    let other = fresh.path().join("big");
    within(Duration::from_secs(180), move || run_ok(Command::new("cmp").arg(&src).arg(&other)));
}

/// 2,000 small files in nested directories (some empty, varied modes and
/// nanosecond mtimes) extracted from a tar into the mount match the archive
/// (tar --compare: contents, modes, owners, mtimes), and a tar made from the
/// mount extracts to a tree identical to the original (diff -r).
#[test]
fn tar_of_2000_files_round_trips_through_the_mount() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let local = tempfile::tempdir().unwrap();
    let l = local.path().to_path_buf();
    let mut rng = StdRng::seed_from_u64(seed());
    let files = small_file_tree(&l.join("tree"), &mut rng, 2000);
    assert_eq!(files, 2000);
    run_ok(Command::new("tar").args(["--format=posix", "-cf"]).arg(l.join("src.tar")).arg("-C").arg(&l).arg("tree"));

    let mnt = m.path().to_path_buf();
    within(Duration::from_secs(600), move || {
        run_ok(Command::new("tar").arg("-xf").arg(l.join("src.tar")).arg("-C").arg(&mnt));
        // Contents, sizes, modes, owners and mtimes as stored in the archive.
        let cmp = run_ok(Command::new("tar").arg("-df").arg(l.join("src.tar")).arg("-C").arg(&mnt));
        assert_eq!(cmp, "", "tar --compare against the mount");
        run_ok(Command::new("tar").args(["--format=posix", "-cf"]).arg(l.join("back.tar")).arg("-C").arg(&mnt).arg("tree"));
        fs::create_dir(l.join("back")).unwrap();
        run_ok(Command::new("tar").arg("-xf").arg(l.join("back.tar")).arg("-C").arg(l.join("back")));
        run_ok(Command::new("diff").arg("-r").arg(l.join("tree")).arg(l.join("back/tree")));
        // The mount's archive carried the same modes and mtimes.
        let cmp = run_ok(Command::new("tar").arg("-df").arg(l.join("src.tar")).arg("-C").arg(l.join("back")));
        assert_eq!(cmp, "", "tar --compare against the tree that went through the mount");
    });
}

/// rsync -a copies files, subdirectories, symlinks, modes and mtimes into
/// the mount so faithfully that a checksumming dry run finds nothing to do.
#[test]
fn rsync_into_the_mount_leaves_nothing_to_do() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    rsync_tree(&src, &mut StdRng::seed_from_u64(seed()));

    let dst = m.path().join("dst");
    within(Duration::from_secs(180), move || {
        let (from, to) = (format!("{}/", src.display()), format!("{}/", dst.display()));
        run_ok(Command::new("rsync").args(["-a", &from, &to]));
        let changes = run_ok(Command::new("rsync").args(["-a", "-c", "--dry-run", "--itemize-changes", &from, &to]));
        assert_eq!(changes, "", "rsync would still change these");
        assert_eq!(fs::read_link(dst.join("link")).unwrap(), Path::new("data/blob"));
        assert_eq!(fs::metadata(dst.join("bin/run.sh")).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(fs::metadata(dst.join("secret")).unwrap().mode() & 0o7777, 0o600);
    });
}

/// git works in the mount: init, add, two commits, gc; fsck --full finds no
/// damage, the log shows both commits and the work tree is clean.
#[test]
fn git_repository_in_the_mount_is_consistent() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let home = tempfile::tempdir().unwrap();
    let repo = m.path().join("repo");
    let mut rng = StdRng::seed_from_u64(seed());
    let blob = random_bytes(&mut rng, 300 * KIB);
    let home_dir = home.path().to_path_buf();
    within(Duration::from_secs(180), move || {
        let git = |args: &[&str]| run_ok(git_cmd(&home_dir, &repo).args(args));
        fs::create_dir(&repo).unwrap();
        git(&["init", "-q"]);
        fs::write(repo.join("README"), "hello from dfs\n").unwrap();
        fs::create_dir_all(repo.join("src/deep")).unwrap();
        fs::write(repo.join("src/main.rs"), "fn main() {}\n").unwrap();
        fs::write(repo.join("src/deep/blob.bin"), &blob).unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "first"]);
        fs::write(repo.join("README"), "hello again\n").unwrap();
        fs::remove_file(repo.join("src/main.rs")).unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "second"]);
        git(&["fsck", "--full", "--strict"]);
        assert_eq!(git(&["log", "--format=%s"]), "second\nfirst\n");
        assert_eq!(git(&["status", "--porcelain"]), "");
        git(&["gc", "-q"]);
        git(&["fsck", "--full", "--strict"]);
        assert_eq!(git(&["status", "--porcelain"]), "");
        assert_eq!(git(&["show", "HEAD~1:src/main.rs"]), "fn main() {}\n");
    });
}

/// sqlite3 in the mount (rollback journal, locks, fsync): 10 transactions
/// of 1,000 inserts all land, and the database passes integrity_check.
#[test]
fn sqlite_database_in_the_mount_stays_intact() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let local = tempfile::tempdir().unwrap();
    let script = local.path().join("load.sql");
    let mut sql = String::from("CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER NOT NULL, s TEXT NOT NULL);\n");
    for tx in 0..10 {
        sql.push_str("BEGIN;\n");
        for i in tx * 1000..(tx + 1) * 1000 {
            sql.push_str(&format!("INSERT INTO t(n, s) VALUES ({i}, 'row {i} {}');\n", "x".repeat(i % 97)));
        }
        sql.push_str("COMMIT;\n");
    }
    fs::write(&script, sql).unwrap();

    let db = m.path().join("db.sqlite");
    within(Duration::from_secs(300), move || {
        let sqlite = |arg: &str| run_ok(Command::new("sqlite3").arg("-bail").arg(&db).arg(arg));
        sqlite(&format!(".read {}", script.display()));
        assert_eq!(sqlite("SELECT count(*) FROM t;"), "10000\n");
        assert_eq!(sqlite("SELECT sum(n) FROM t;"), "49995000\n");
        assert_eq!(sqlite("PRAGMA integrity_check;"), "ok\n");
        assert!(!db.with_file_name("db.sqlite-journal").exists(), "journal left behind");
    });
}

/// ~300 random writes (some far past EOF, leaving holes), truncations up and
/// down to unaligned sizes, reads, fsyncs and reopens on one file agree with
/// the same operations on a local file, read by the writing handle, by fresh
/// handles, and finally by a fresh mount. Replay with the printed seed.
#[test]
fn random_writes_truncates_and_reads_match_a_local_file() {
    let c = cluster(&["--default-chunk-size-bytes", "1048576"]);
    let m = mount(&c, &[]);
    let local = tempfile::tempdir().unwrap();
    let seed = seed();
    let (mnt, lpath) = (m.path().join("random"), local.path().join("random"));
    let lpath2 = lpath.clone();
    within(Duration::from_secs(300), move || random_ops(&mnt, &lpath2, seed, 300));
    let fresh = mount(&c, &[]);
    let other = fresh.path().join("random");
    within(Duration::from_secs(60), move || {
        assert!(fs::read(&other).unwrap() == fs::read(&lpath).unwrap(), "a fresh mount reads different bytes");
    });
}

/// Two mounts of one cluster: a file closed on A is read whole on B; after A
/// rewrites it (same size, then larger, then smaller) and closes, B's next
/// open sees exactly the new bytes even though B had just cached the old
/// attributes (close-to-open; B trusts attributes for 60 s, so they are
/// certainly cached). A file created on B shows up on A, which had cached
/// its absence, within a few of A's (200 ms) entry TTLs.
#[test]
fn two_mounts_see_each_others_changes_close_to_open() {
    let c = cluster(&[]);
    let a = mount(&c, &["--attr-ttl-ms", "200", "--entry-ttl-ms", "200"]);
    let b = mount(&c, &["--attr-ttl-ms", "60000", "--entry-ttl-ms", "200"]);
    let mut rng = StdRng::seed_from_u64(seed());
    let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
    within(Duration::from_secs(120), move || {
        let v1 = random_bytes(&mut rng, MIB + 17);
        fs::write(pa.join("shared"), &v1).unwrap();
        assert_eq!(fs::metadata(pb.join("shared")).unwrap().len(), v1.len() as u64);
        assert!(fs::read(pb.join("shared")).unwrap() == v1, "B read other bytes than A wrote");

        // Same size: only the data changes under B's cached attributes and pages.
        let v2 = random_bytes(&mut rng, v1.len());
        assert_eq!(fs::metadata(pb.join("shared")).unwrap().len(), v1.len() as u64);
        let f = OpenOptions::new().write(true).open(pa.join("shared")).unwrap();
        f.write_all_at(&v2, 0).unwrap();
        drop(f);
        assert_same_bytes(&fs::read(pb.join("shared")).unwrap(), &v2, "B after A rewrote it at the same size");

        let v3 = random_bytes(&mut rng, 2 * MIB + 5);
        assert_eq!(fs::metadata(pb.join("shared")).unwrap().len(), v2.len() as u64);
        fs::write(pa.join("shared"), &v3).unwrap();
        assert_same_bytes(&fs::read(pb.join("shared")).unwrap(), &v3, "B after A grew it");

        let v4 = random_bytes(&mut rng, 3000);
        assert_eq!(fs::metadata(pb.join("shared")).unwrap().len(), v3.len() as u64);
        fs::write(pa.join("shared"), &v4).unwrap();
        assert_same_bytes(&fs::read(pb.join("shared")).unwrap(), &v4, "B after A shrank it");

        // A caches that the name does not exist; B creates it.
        assert_eq!(errno(fs::metadata(pa.join("from-b"))), libc::ENOENT);
        fs::write(pb.join("from-b"), "made on B").unwrap();
        let start = Instant::now();
        poll(Duration::from_secs(5), "A to list the file B created", || {
            let listed = fs::read_dir(&pa).unwrap().any(|e| e.unwrap().file_name() == "from-b");
            listed && fs::read(pa.join("from-b")).map(|d| d == b"made on B").unwrap_or(false)
        });
        eprintln!("A saw B's new file after {:?}", start.elapsed());
    });
}

/// The errno of each refused call is the POSIX one, and the accepted calls
/// (rename over a file, unlink, symlink, chmod, chown, nanosecond times,
/// statfs) do what they say.
#[test]
fn system_calls_give_posix_results_and_errnos() {
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let mnt = m.path().to_path_buf();
    let changed = within(Duration::from_secs(120), move || {
        let p = |name: &str| mnt.join(name);
        fs::create_dir(p("dir")).unwrap();
        fs::write(p("dir/inside"), "x").unwrap();
        fs::write(p("file"), "file data").unwrap();

        // Names: 255 bytes are fine, 256 are too long.
        let long = "n".repeat(256);
        assert_eq!(errno(File::create(p(&long))), libc::ENAMETOOLONG, "create with a 256-byte name");
        assert_eq!(errno(fs::create_dir(p(&long))), libc::ENAMETOOLONG, "mkdir with a 256-byte name");
        fs::write(p(&long[..255]), "ok").unwrap();
        assert_eq!(fs::read(p(&long[..255])).unwrap(), b"ok");
        fs::remove_file(p(&long[..255])).unwrap();

        assert_eq!(errno(fs::remove_dir(p("dir"))), libc::ENOTEMPTY, "rmdir of a non-empty dir");
        assert_eq!(errno(File::open(p("missing"))), libc::ENOENT, "open of a missing file");
        assert_eq!(errno(fs::create_dir(p("dir"))), libc::EEXIST, "mkdir of an existing dir");
        assert_eq!(errno(OpenOptions::new().write(true).create_new(true).open(p("file"))), libc::EEXIST, "O_CREAT|O_EXCL");
        assert_eq!(errno(OpenOptions::new().write(true).open(p("dir"))), libc::EISDIR, "open of a dir for writing");
        assert_eq!(errno(fs::metadata(p("file/x"))), libc::ENOTDIR, "stat through a file");
        assert_eq!(errno(File::create(p("file/x"))), libc::ENOTDIR, "create through a file");
        assert_eq!(errno(fs::hard_link(p("dir"), p("hard"))), libc::EPERM, "link of a directory");
        assert!(fs::symlink_metadata(p("hard")).is_err(), "a refused link left a name behind");

        // renameat2: NOREPLACE refuses an existing target, EXCHANGE is not offered.
        fs::write(p("a"), "contents of a").unwrap();
        fs::write(p("b"), "contents of b").unwrap();
        assert_eq!(rename2(&p("a"), &p("b"), libc::RENAME_NOREPLACE), Err(libc::EEXIST), "RENAME_NOREPLACE onto a file");
        assert_eq!(rename2(&p("a"), &p("b"), libc::RENAME_EXCHANGE), Err(libc::EINVAL), "RENAME_EXCHANGE");
        assert_eq!(fs::read(p("a")).unwrap(), b"contents of a");
        assert_eq!(fs::read(p("b")).unwrap(), b"contents of b");
        assert_eq!(rename2(&p("a"), &p("c"), libc::RENAME_NOREPLACE), Ok(()), "RENAME_NOREPLACE onto a free name");
        // A plain rename replaces the target.
        fs::rename(p("c"), p("b")).unwrap();
        assert_eq!(fs::read(p("b")).unwrap(), b"contents of a");
        assert_eq!(errno(fs::metadata(p("c"))), libc::ENOENT);
        fs::remove_file(p("b")).unwrap();
        assert_eq!(errno(fs::metadata(p("b"))), libc::ENOENT, "stat after unlink");
        assert!(!names(&mnt).contains(&"b".to_string()), "unlinked name still listed");
        assert_eq!(errno(fs::remove_file(p("b"))), libc::ENOENT, "unlink of a missing file");

        std::os::unix::fs::symlink("dir/inside", p("link")).unwrap();
        assert_eq!(fs::read_link(p("link")).unwrap(), Path::new("dir/inside"));
        assert!(fs::symlink_metadata(p("link")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(p("link")).unwrap(), b"x", "reading through the symlink");
        assert_eq!(errno(std::os::unix::fs::symlink("elsewhere", p("link"))), libc::EEXIST);

        fs::set_permissions(p("file"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(p("file"), Some(1234), Some(5678)).unwrap();
        let md = fs::metadata(p("file")).unwrap();
        assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o640, 1234, 5678), "mode, uid, gid after chmod/chown");
        fs::set_permissions(p("dir"), fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(fs::metadata(p("dir")).unwrap().mode() & 0o7777, 0o711);

        // Nanosecond times round-trip, through a file handle and by path.
        let (at, mt) = (time(1_500_000_000, 123_456_789), time(1_600_000_000, 987_654_321));
        File::options().write(true).open(p("file")).unwrap().set_times(FileTimes::new().set_accessed(at).set_modified(mt)).unwrap();
        assert_times(&p("file"), (1_500_000_000, 123_456_789), (1_600_000_000, 987_654_321));
        utimensat(&p("dir"), (1_400_000_000, 1), (1_700_000_000, 999_999_999));
        assert_times(&p("dir"), (1_400_000_000, 1), (1_700_000_000, 999_999_999));
        // Times set through a handle whose writes are not yet flushed (as tar
        // and cp -p do) outlast the flush at close.
        let mut f = File::create(p("stamped")).unwrap();
        f.write_all(b"stamped data").unwrap();
        f.set_times(FileTimes::new().set_accessed(at).set_modified(mt)).unwrap();
        drop(f);

        let st = statvfs(&mnt);
        assert!(st.f_blocks > 0 && st.f_bsize > 0, "statvfs: {} blocks of {} bytes", st.f_blocks, st.f_bsize);
        assert_eq!(st.f_namemax, 255, "statvfs namemax");

        // A directory changed here: the mount answers its attributes from
        // what each change returned; they must be the master's own.
        fs::create_dir(p("d2")).unwrap();
        fs::create_dir(p("d2/sub")).unwrap();
        fs::write(p("d2/f"), "f").unwrap();
        fs::rename(p("d2/f"), p("d2/g")).unwrap();
        fs::remove_dir(p("d2/sub")).unwrap();
        fs::create_dir(p("d2/sub2")).unwrap();
        let d = fs::metadata(p("d2")).unwrap();
        (d.mode(), d.nlink(), d.mtime(), d.mtime_nsec(), d.ctime(), d.ctime_nsec())
    });
    let client = dfs_tests::client(&c.master.url);
    let d2 = block_on(client.stat("/d2")).expect("stat /d2 at the master");
    assert_eq!(
        changed,
        (
            0o40000 | d2.mode,
            d2.nlink as u64,
            d2.mtime_ns.div_euclid(1_000_000_000),
            d2.mtime_ns.rem_euclid(1_000_000_000),
            d2.ctime_ns.div_euclid(1_000_000_000),
            d2.ctime_ns.rem_euclid(1_000_000_000)
        ),
        "a changed directory's attributes through the mount (mode, nlink, mtime, ctime) against the master's"
    );
    // A fresh mount has no cached attributes: it shows what the cluster kept.
    let fresh = mount(&c, &[]);
    let stamped = fresh.path().join("stamped");
    within(Duration::from_secs(30), move || {
        assert_times(&stamped, (1_500_000_000, 123_456_789), (1_600_000_000, 987_654_321));
        assert_eq!(fs::read(&stamped).unwrap(), b"stamped data");
    });
}

/// Kernel permission checks are on (default_permissions) and other users
/// reach the mount (allow_other): uid 65534 cannot read a 0600 file, enter a
/// 0700 dir or create in a 0755 root dir, but reads a 0644 file, and a file
/// it creates in a 0777 dir is its own.
#[test]
fn permissions_are_enforced_for_other_users() {
    let c = cluster(&[]);
    let m = mount(&c, &["-o", "allow_other"]);
    let mnt = m.path().to_path_buf();
    within(Duration::from_secs(120), move || {
        let p = |name: &str| mnt.join(name);
        let mode = |path: PathBuf, mode| fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        fs::write(p("secret"), "for root only\n").unwrap();
        mode(p("secret"), 0o600);
        fs::write(p("public"), "for everyone\n").unwrap();
        mode(p("public"), 0o644);
        fs::create_dir(p("private")).unwrap();
        fs::write(p("private/inner"), "hidden\n").unwrap();
        mode(p("private/inner"), 0o644);
        mode(p("private"), 0o700);
        fs::create_dir(p("rootdir")).unwrap();
        mode(p("rootdir"), 0o755);
        fs::create_dir(p("shared")).unwrap();
        mode(p("shared"), 0o777);
        mode(mnt.clone(), 0o755);

        let out = as_nobody(&["cat", p("public").to_str().unwrap()]);
        assert!(out.status.success(), "nobody could not read a 0644 file: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "for everyone\n");
        for (args, what) in [
            (vec!["cat", p("secret").to_str().unwrap()], "read a 0600 file of root"),
            (vec!["cat", p("private/inner").to_str().unwrap()], "read a file in a 0700 dir of root"),
            (vec!["ls", p("private").to_str().unwrap()], "list a 0700 dir of root"),
            (vec!["touch", p("rootdir/new").to_str().unwrap()], "create in a 0755 dir of root"),
            (vec!["touch", p("public").to_str().unwrap()], "write a 0644 file of root"),
        ] {
            let out = as_nobody(&args);
            assert!(!out.status.success() && text(&out.stderr).contains("Permission denied"), "nobody could {what}: {out:?}");
        }
        assert!(fs::symlink_metadata(p("rootdir/new")).is_err(), "a refused create left a file");
        assert_eq!(fs::read(p("secret")).unwrap(), b"for root only\n", "root reads its 0600 file");

        let out = as_nobody(&["touch", p("shared/mine").to_str().unwrap()]);
        assert!(out.status.success(), "nobody could not create in a 0777 dir: {}", text(&out.stderr));
        let md = fs::metadata(p("shared/mine")).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 65534), "owner of a file nobody created");
    });
}

/// The master checks each local user's permissions through a mount whose
/// principal acts for them: two uids (and a supplementary group) see their
/// own rights, and with root squashed, root is `nobody` to the master even
/// where the kernel would let root through.
#[test]
fn the_master_checks_each_local_user_and_squashes_root() {
    let c = cluster(&[]);
    let principal = dfs_client::auth::Credentials::generate("mnt");
    let stored = principal.stored_key_hex();
    let team = block_on(async {
        let r = c.api.post("/v1/admin/users/add", &serde_json::json!({"name": "mnt", "proxy": true, "squash_root": true, "stored_key": stored})).await.unwrap();
        assert!(r.ok(), "{r:?}");
        let r = c.api.post("/v1/admin/users/add", &serde_json::json!({"name": "teamer", "groups": ["team"], "stored_key": stored})).await.unwrap();
        let team = r.body["gids"][0].as_u64().unwrap();
        for (path, mode, uid, gid) in [("/u1", 0o755, 2001, 2001), ("/u2", 0o700, 2002, 2002), ("/shared", 0o1777, 0, 0), ("/team", 0o770, 0, team)] {
            let r = c.api.post("/v1/mkdir", &serde_json::json!({"path": path, "mode": mode, "uid": uid, "gid": gid})).await.unwrap();
            assert!(r.ok(), "{r:?}");
        }
        team
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mnt.credentials");
    principal.create_file(&file).unwrap();
    let m = mount(&c, &[&format!("--credentials={}", file.display()), "--attr-ttl-ms", "100", "--entry-ttl-ms", "100"]);
    let mnt = m.path().to_path_buf();
    within(Duration::from_secs(120), move || {
        let p = |name: &str| mnt.join(name).to_str().unwrap().to_string();
        let ok = |out: Output, what: &str| assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        let refused = |out: Output, what: &str| assert!(!out.status.success() && text(&out.stderr).contains("ermi"), "{what} was allowed: {out:?}");
        ok(as_uid(2001, &[], &["touch", &p("u1/a")]), "2001 creates in its directory");
        refused(as_uid(2001, &[], &["touch", &p("u2/b")]), "2001 creates in 2002's 0700 directory");
        refused(as_uid(2001, &[], &["ls", &p("u2")]), "2001 lists 2002's 0700 directory");
        ok(as_uid(2002, &[], &["touch", &p("u2/b")]), "2002 creates in its directory");
        ok(as_uid(2002, &[], &["cat", &p("u1/a")]), "2002 reads a 0644 file of 2001");
        refused(as_uid(2002, &[], &["rm", "-f", &p("u1/a")]), "2002 removes 2001's file");
        // The sticky bit.
        ok(as_uid(2001, &[], &["touch", &p("shared/s1")]), "2001 creates in /shared");
        refused(as_uid(2002, &[], &["rm", "-f", &p("shared/s1")]), "2002 removes 2001's file in a sticky directory");
        // Supplementary groups reach the master.
        ok(as_uid(2003, &[team as u32], &["touch", &p("team/t")]), "a member of team creates in /team");
        refused(as_uid(2003, &[], &["touch", &p("team/u")]), "a non-member creates in /team");
        assert_eq!(fs::metadata(p("team/t")).unwrap().gid(), 2003, "a new file takes its maker's gid");
        // Root is squashed: the kernel lets root through, the master does
        // not (once the kernel's cached names and attributes have expired).
        std::thread::sleep(Duration::from_millis(300));
        refused(run(Command::new("touch").arg(p("u1/rootfile"))), "squashed root creates in 2001's 0755 directory");
        refused(run(Command::new("cat").arg(p("u2/b"))), "squashed root reads inside 2002's 0700 directory");
        assert!(fs::symlink_metadata(p("u1/rootfile")).is_err(), "a refused create left a file");
        assert_eq!(fs::metadata(p("u1/a")).unwrap().uid(), 2001, "files belong to their makers");
    });
}

/// While the master is down (kill -9), a listing and a mkdir in the mount
/// wait for it instead of failing; after it restarts both complete, and new
/// files are written and read back.
#[test]
fn operations_wait_through_a_master_restart() {
    let mut c = cluster(&[]);
    let m = mount(&c, &["--master-wait-secs", "30", "--attr-ttl-ms", "100", "--entry-ttl-ms", "100"]);
    let mnt = m.path().to_path_buf();
    let dir = mnt.join("dir");
    let d = dir.clone();
    within(Duration::from_secs(30), move || {
        fs::create_dir(&d).unwrap();
        for i in 0..5 {
            fs::write(d.join(format!("f{i}")), format!("file {i}")).unwrap();
        }
    });

    c.master.kill9();
    let (tx, rx) = mpsc::channel();
    let d = dir.clone();
    std::thread::spawn(move || {
        let listed = names(&d);
        let made = fs::create_dir(d.join("made-while-down"));
        let _ = tx.send((listed, made));
    });
    // The master stays down for 2 s; the operation must not fail meanwhile.
    match rx.recv_timeout(Duration::from_secs(2)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        Ok(r) => panic!("the operations finished while the master was down: {r:?}"),
        Err(e) => panic!("the operations panicked: {e}"),
    }
    c.master.restart().expect("restart the master");
    let restarted = Instant::now();
    let (listed, made) = rx.recv_timeout(Duration::from_secs(40)).expect("the listing and mkdir did not complete after the master came back");
    eprintln!("operations completed {:?} after the restart", restarted.elapsed());
    made.expect("mkdir while the master was down");
    assert_eq!(listed, ["f0", "f1", "f2", "f3", "f4"]);

    block_on(c.wait_live(3, Duration::from_secs(15))).expect("chunkservers back with the new master");
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 3 * MIB + 1);
    within(Duration::from_secs(60), move || {
        fs::write(dir.join("after"), &data).unwrap();
        assert!(fs::read(dir.join("after")).unwrap() == data, "a file written after the restart reads back differently");
        assert_eq!(names(&dir), ["after", "f0", "f1", "f2", "f3", "f4", "made-while-down"]);
    });
}

/// Right after a master restart, before any chunkserver has reported its
/// replicas (they are frozen here), a read waits for the reports instead of
/// failing, then returns the file's bytes.
#[test]
fn a_read_right_after_a_master_restart_waits_for_the_replica_reports() {
    let mut c = cluster(&[]);
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 2 * MIB + 17);
    {
        // Written through another mount: the reader's page cache is empty.
        let writer = mount(&c, &[]);
        let (path, data) = (writer.path().join("f"), data.clone());
        within(Duration::from_secs(60), move || fs::write(path, data).unwrap());
    }
    let m = mount(&c, &["--master-wait-secs", "30", "--retry-secs", "30"]);
    let path = m.path().join("f");
    let p = path.clone();
    let size = data.len() as u64;
    within(Duration::from_secs(30), move || assert_eq!(fs::metadata(p).unwrap().len(), size));
    c.master.kill9();
    for cs in &c.chunkservers {
        cs.sigstop();
    }
    c.master.restart().expect("restart the master");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(fs::read(path));
    });
    // No replica is known to the new master while the chunkservers are frozen.
    match rx.recv_timeout(Duration::from_secs(3)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        Ok(r) => panic!("the read finished before any replica was reported: {:?}", r.map(|d| d.len())),
        Err(e) => panic!("the reading thread died: {e}"),
    }
    for cs in &c.chunkservers {
        cs.sigcont();
    }
    let got = rx.recv_timeout(Duration::from_secs(40)).expect("the read did not complete after the reports").expect("read");
    assert_same_bytes(&got, &data, "a read waiting through a master restart");
}

/// With every chunkserver dead, reading a file and writing a new one fail
/// with EIO once the (short) retry time is over, instead of hanging.
#[test]
fn no_reachable_replica_gives_eio_not_a_hang() {
    let mut c = cluster(&[]);
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 4 * MIB);
    // Written through another mount, so this one holds nothing of it in its caches.
    {
        let writer = mount(&c, &[]);
        let path = writer.path().join("existing");
        within(Duration::from_secs(60), move || fs::write(path, data).unwrap());
    }
    let m = mount(&c, &["--retry-secs", "5", "--io-timeout-secs", "5"]);
    let mnt = m.path().to_path_buf();
    let existing = mnt.join("existing");
    within(Duration::from_secs(30), move || assert_eq!(fs::metadata(existing).unwrap().len(), 4 * MIB as u64));
    for cs in &mut c.chunkservers {
        cs.kill9();
    }
    let bound = Duration::from_secs(30);
    within(Duration::from_secs(120), move || {
        let start = Instant::now();
        let read = fs::read(mnt.join("existing"));
        eprintln!("read failed after {:?}", start.elapsed());
        assert_eq!(errno(read), libc::EIO, "read with no replica reachable");
        assert!(start.elapsed() < bound, "the read took {:?}", start.elapsed());

        let start = Instant::now();
        let written = write_fsync_close(&mnt.join("new"), &random_bytes(&mut rng, 2 * MIB));
        eprintln!("write failed after {:?}", start.elapsed());
        assert_eq!(errno(written), libc::EIO, "write + fsync + close with no chunkserver");
        assert!(start.elapsed() < bound, "the write took {:?}", start.elapsed());
    });
}

/// A mount that made a directory answers lookups of new names in it
/// itself (no master round trip); when another mount has meanwhile created
/// such a name, open(O_CREAT) without O_EXCL still opens that file (and
/// O_TRUNC truncates it), while O_EXCL is refused with EEXIST.
#[test]
fn creating_a_name_another_mount_made_opens_it_unless_exclusive() {
    use std::io::Write;
    let c = cluster(&[]);
    let (a, b) = (mount(&c, &[]), mount(&c, &[]));
    let (da, db) = (a.path().join("d"), b.path().join("d"));
    within(Duration::from_secs(60), move || {
        fs::create_dir(&da).unwrap();
        // Through B, which never saw the directory empty.
        fs::write(db.join("x"), "from b;").unwrap();
        fs::write(db.join("y"), "from b").unwrap();
        let mut f = fs::OpenOptions::new().create(true).append(true).open(da.join("x")).unwrap();
        f.write_all(b"from a").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(db.join("x")).unwrap(), "from b;from a");
        let excl = fs::OpenOptions::new().write(true).create_new(true).open(da.join("y"));
        assert_eq!(errno(excl), libc::EEXIST);
        fs::write(da.join("y"), "a").unwrap();
        assert_eq!(fs::read_to_string(db.join("y")).unwrap(), "a", "O_TRUNC through create truncates");
    });
}

/// A file unlinked while open stays readable and writable through its
/// descriptor (POSIX), its name is gone at once, and nothing of it is left
/// in the directory soon after the last close (RELEASE is asynchronous).
#[test]
fn an_unlinked_open_file_lives_until_its_last_close() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let dir = m.path().join("d");
    within(Duration::from_secs(60), move || {
        fs::create_dir(&dir).unwrap();
        let path = dir.join("tmp");
        let mut f = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all(b"before unlink").unwrap();
        fs::remove_file(&path).unwrap();
        assert!(!path.exists(), "the name is gone after unlink");
        f.write_all(b", after").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "before unlink, after");
        drop(f);
        // The kernel sends RELEASE after close(2) returns, asynchronously,
        // so the hidden name goes shortly after, as with NFS.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
            if left.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "left in the directory after the last close: {left:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        fs::remove_dir(&dir).unwrap();
    });
}

/// A directory removed recursively by another client while this process
/// holds it open (as a descriptor, like a cwd) takes no new entries: a
/// create, mkdir or symlink through the descriptor is ENOENT, as in a removed
/// directory on Linux, instead of a file the master acknowledges and its
/// reaper then frees. The held directory is the deepest of a 1,000-deep
/// chain, which the reaper frees one level per step, so it is still waiting
/// to be freed when the create arrives.
#[test]
fn creating_in_a_directory_removed_by_another_client_is_enoent() {
    const DEPTH: usize = 1000;
    let c = cluster(&[]);
    let m = mount(&c, &[]);
    let deep = format!("/gone{}", "/d".repeat(DEPTH));
    block_on(dfs_tests::shell::dfs(&c.master.url, &["mkdir", "-p", &deep])).unwrap().ok();
    let (held, master) = (m.path().join(deep.trim_start_matches('/')), c.master.url.clone());
    within(Duration::from_secs(120), move || {
        let dir = File::open(&held).expect("open the deepest directory through the mount");
        let fd = dir.into_raw_fd();
        block_on(dfs_tests::shell::dfs(&master, &["rm", "-r", "/gone"])).unwrap().ok();
        let name = |n: &str| CString::new(n).unwrap();
        let last = || io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: `fd` is the directory taken from `dir`, closed once, last;
        // each name is NUL-terminated and lives for its call; `created` is
        // closed once, if it was opened.
        let (create_errno, mkdir_errno, symlink_errno) = unsafe {
            let created = libc::openat(fd, name("new").as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 0o644);
            let create_errno = if created < 0 { last() } else { 0 };
            let made = libc::mkdirat(fd, name("sub").as_ptr(), 0o755);
            let mkdir_errno = if made < 0 { last() } else { 0 };
            let linked = libc::symlinkat(name("x").as_ptr(), fd, name("link").as_ptr());
            let symlink_errno = if linked < 0 { last() } else { 0 };
            if created >= 0 {
                libc::close(created);
            }
            libc::close(fd);
            (create_errno, mkdir_errno, symlink_errno)
        };
        assert_eq!(create_errno, libc::ENOENT, "openat(O_CREAT) in the removed directory (0: it was acknowledged)");
        assert_eq!(mkdir_errno, libc::ENOENT, "mkdirat in the removed directory (0: it was acknowledged)");
        assert_eq!(symlink_errno, libc::ENOENT, "symlinkat in the removed directory (0: it was acknowledged)");
    });
    // Nothing of the removed tree is left once the reaper is done.
    assert_namespace_consistent(&c);
}

/// SIGTERM makes dfs-mount unmount and exit 0; `umount` of the mountpoint
/// makes it exit 0 on its own. Data written before survives both.
#[test]
fn sigterm_and_umount_end_the_daemon_cleanly() {
    let c = cluster(&[]);
    let mut m = mount(&c, &[]);
    let kept = m.path().join("kept");
    within(Duration::from_secs(30), move || fs::write(kept, "still here").unwrap());
    let status = m.terminate().expect("dfs-mount exits after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(!is_mounted(m.path()), "still mounted after SIGTERM");

    let mut m = mount(&c, &[]);
    let kept = m.path().join("kept");
    within(Duration::from_secs(30), move || assert_eq!(fs::read(kept).unwrap(), b"still here"));
    run_ok(Command::new("umount").arg(m.path()));
    let status = m.wait_exit(Duration::from_secs(15)).expect("dfs-mount exits after umount");
    assert!(status.success(), "exit status after umount: {status}");
    assert!(!is_mounted(m.path()), "still mounted after umount");
}

// ---------------------------------------------------------------------------
// Helpers

/// A cluster of 3 live chunkservers; `master_args` are added master flags.
/// Namespace calls waiting for a master that is down never take every FUSE
/// thread: reads of an open file go on meanwhile.
#[test]
fn a_down_master_does_not_hold_up_reads_of_an_open_file() {
    let mut c = cluster(&[]);
    let m = mount(&c, &["--master-wait-secs", "30"]);
    let mnt = m.path().to_path_buf();
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 4 * MIB);
    fs::write(mnt.join("f"), &data).unwrap();
    // O_DIRECT: every read goes to the mount, none to the kernel's cache.
    let f = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(mnt.join("f")).unwrap();
    let mut buf = vec![0u8; 4 * KIB];
    f.read_exact_at(&mut buf, 0).unwrap(); // the chunk's location is now known
                                           // One parent each: the kernel runs one mkdir at a time per directory.
    for i in 0..8 {
        fs::create_dir(mnt.join(format!("p{i}"))).unwrap();
    }

    c.master.kill9();
    let makers: Vec<_> = (0..8)
        .map(|i| {
            let dir = mnt.join(format!("p{i}/d"));
            std::thread::spawn(move || fs::create_dir(dir))
        })
        .collect();
    let (data, offsets): (Vec<u8>, Vec<usize>) = (data, (0..200).map(|_| rng.random_range(0..1024) * 4 * KIB).collect());
    let checked = within(Duration::from_secs(10), move || {
        let started = Instant::now();
        let mut n = 0;
        // Keep reading for a second while the mkdirs wait for the master.
        for off in offsets.iter().cycle() {
            f.read_exact_at(&mut buf, *off as u64).unwrap();
            assert!(buf[..] == data[*off..*off + 4 * KIB], "read at {off} differs");
            n += 1;
            if started.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        n
    });
    assert!(checked > 10, "only {checked} reads in a second");
    assert!(makers.iter().all(|t| !t.is_finished()), "the mkdirs must still be waiting for the master");
    c.master.restart().expect("restart the master");
    for t in makers {
        t.join().unwrap().expect("mkdir once the master is back");
    }
}

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

fn time(secs: u64, nanos: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

fn random_time(rng: &mut StdRng) -> SystemTime {
    time(rng.random_range(1_000_000_000..1_700_000_000), rng.random_range(0..1_000_000_000))
}

/// Sets a path's mtime (and atime), not following a symlink.
fn set_mtime(path: &Path, t: SystemTime) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let ts = (d.as_secs() as i64, d.subsec_nanos() as i64);
    let c = cstr(path);
    let times = [libc::timespec { tv_sec: ts.0, tv_nsec: ts.1 }, libc::timespec { tv_sec: ts.0, tv_nsec: ts.1 }];
    // SAFETY: a NUL-terminated path and an array of the two timespecs
    // utimensat reads, both live for the call.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(r, 0, "utimensat {}: {}", path.display(), io::Error::last_os_error());
}

/// utimensat(path, atime, mtime) with (seconds, nanoseconds) pairs.
fn utimensat(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let c = cstr(path);
    let times = [libc::timespec { tv_sec: atime.0, tv_nsec: atime.1 }, libc::timespec { tv_sec: mtime.0, tv_nsec: mtime.1 }];
    // SAFETY: a NUL-terminated path and an array of the two timespecs
    // utimensat reads, both live for the call.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
    assert_eq!(r, 0, "utimensat {}: {}", path.display(), io::Error::last_os_error());
}

#[track_caller]
fn assert_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let md = fs::metadata(path).unwrap();
    assert_eq!(((md.atime(), md.atime_nsec()), (md.mtime(), md.mtime_nsec())), (atime, mtime), "atime, mtime of {}", path.display());
}

/// renameat2(2); the errno when refused.
fn rename2(from: &Path, to: &Path, flags: u32) -> Result<(), i32> {
    let (f, t) = (cstr(from), cstr(to));
    // SAFETY: two NUL-terminated paths, live for the call.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

fn statvfs(path: &Path) -> libc::statvfs {
    dfs_tests::sys::statvfs(path).unwrap_or_else(|e| panic!("statvfs: {e}"))
}

/// Creates `path`, writes `data`, fsyncs and closes it; the first error,
/// with the step that returned it.
fn write_fsync_close(path: &Path, data: &[u8]) -> io::Result<()> {
    let step = |what: &str, e: io::Error| io::Error::from_raw_os_error(e.raw_os_error().inspect(|n| eprintln!("{what} failed: errno {n}")).unwrap_or(0));
    let mut f = File::create(path).map_err(|e| step("create", e))?;
    f.write_all(data).map_err(|e| step("write", e))?;
    f.sync_all().map_err(|e| step("fsync", e))?;
    dfs_tests::sys::close(f).map_err(|e| step("close", e))
}

/// Asserts equal bytes, reporting the sizes and the first difference.
#[track_caller]
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!("{what}: got {} bytes, want {}; first differing byte at {first:?}", got.len(), want.len());
    }
}

/// `count` files of 0..16 KiB (every tenth empty, a few of 100+ KiB) in
/// nested directories, with varied modes and nanosecond mtimes; the count.
fn small_file_tree(root: &Path, rng: &mut StdRng, count: usize) -> usize {
    let mut dirs = Vec::new();
    for d in 0..10 {
        for s in ["", "/s0", "/s1", "/s1/deeper"] {
            let dir = root.join(format!("d{d}{s}"));
            fs::create_dir_all(&dir).unwrap();
            dirs.push(dir);
        }
    }
    for i in 0..count {
        let n = match i {
            _ if i % 10 == 0 => 0,
            _ if i % 97 == 0 => rng.random_range(100 * KIB..300 * KIB),
            _ => rng.random_range(1..16 * KIB),
        };
        let path = dirs[i % dirs.len()].join(format!("file-{i:04}.dat"));
        fs::write(&path, random_bytes(rng, n)).unwrap();
        let mode = [0o644, 0o600, 0o755, 0o640, 0o444][i % 5];
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&path, random_time(rng));
    }
    fs::set_permissions(root.join("d3/s1"), fs::Permissions::from_mode(0o700)).unwrap();
    // Directory mtimes last: creating files changes them.
    for dir in dirs.iter().rev() {
        set_mtime(dir, random_time(rng));
    }
    count
}

/// A small tree for rsync: text and binary files, an empty file, nested
/// dirs, a symlink to a file and one to a dir, modes 0755/0600/0640,
/// nanosecond mtimes everywhere (symlinks included).
fn rsync_tree(root: &Path, rng: &mut StdRng) {
    for d in ["bin", "data", "deep/er/still", "empty-dir"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let files: [(&str, usize, u32); 7] = [
        ("README", 200, 0o644),
        ("bin/run.sh", 1000, 0o755),
        ("secret", 64, 0o600),
        ("data/blob", 3 * MIB / 2 + 7, 0o640),
        ("data/empty", 0, 0o644),
        ("deep/er/still/leaf", 5000, 0o644),
        ("deep/er/mid", 70 * KIB, 0o644),
    ];
    for (name, size, mode) in files {
        let path = root.join(name);
        fs::write(&path, random_bytes(rng, size)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&path, random_time(rng));
    }
    std::os::unix::fs::symlink("data/blob", root.join("link")).unwrap();
    std::os::unix::fs::symlink("deep/er", root.join("dirlink")).unwrap();
    set_mtime(&root.join("link"), random_time(rng));
    set_mtime(&root.join("dirlink"), random_time(rng));
    fs::set_permissions(root.join("deep/er"), fs::Permissions::from_mode(0o750)).unwrap();
    for d in ["bin", "data", "deep/er/still", "deep/er", "deep", "empty-dir", ""] {
        set_mtime(&root.join(d), random_time(rng));
    }
}

/// One random operation applied to the mount's file and the local one.
#[derive(Debug)]
enum Op {
    Write { at: u64, len: usize },
    SetLen(u64),
    Read { at: u64, len: usize },
    FreshRead { at: u64, len: usize },
    Fsync,
    Reopen,
}

/// Applies `count` random operations to `mnt` and `local`, checking reads
/// and sizes as it goes and the whole file at the end.
fn random_ops(mnt: &Path, local: &Path, seed: u64, count: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let open = |p: &Path| OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(p).unwrap();
    let (mut f, l) = (open(mnt), open(local));
    let mut done: Vec<Op> = Vec::new();
    for step in 0..count {
        let len = l.metadata().unwrap().len();
        let op = match rng.random_range(0..100) {
            0..40 => Op::Write { at: rng.random_range(0..8 * MIB as u64), len: rng.random_range(1..=256 * KIB) },
            40..47 => Op::Write { at: len + rng.random_range(MIB as u64..4 * MIB as u64), len: rng.random_range(1..=64 * KIB) },
            47..52 => Op::SetLen(rng.random_range(0..=len)),
            52..56 => Op::SetLen(len + rng.random_range(1..3 * MIB as u64)),
            56..58 => Op::SetLen(rng.random_range(0..64u64) * 4096),
            58..80 => Op::Read { at: rng.random_range(0..len + 64 * KIB as u64), len: rng.random_range(1..=512 * KIB) },
            80..90 => Op::FreshRead { at: rng.random_range(0..len + 64 * KIB as u64), len: rng.random_range(1..=512 * KIB) },
            90..95 => Op::Fsync,
            _ => Op::Reopen,
        };
        let context = |done: &Vec<Op>| format!("step {step} (seed {seed}), last ops: {:?}", &done[done.len().saturating_sub(8)..]);
        match &op {
            Op::Write { at, len } => {
                let data = random_bytes(&mut rng, *len);
                f.write_all_at(&data, *at).unwrap_or_else(|e| panic!("pwrite {op:?}: {e}; {}", context(&done)));
                l.write_all_at(&data, *at).unwrap();
            }
            Op::SetLen(n) => {
                f.set_len(*n).unwrap_or_else(|e| panic!("{op:?}: {e}; {}", context(&done)));
                l.set_len(*n).unwrap();
            }
            Op::Read { at, len } => {
                let got = read_at(&f, *at, *len).unwrap_or_else(|e| panic!("{op:?}: {e}; {}", context(&done)));
                assert_same_bytes(&got, &read_at(&l, *at, *len).unwrap(), &format!("{op:?} on the writing handle; {}", context(&done)));
            }
            Op::FreshRead { at, len } => {
                let fresh = File::open(mnt).unwrap();
                let got = read_at(&fresh, *at, *len).unwrap_or_else(|e| panic!("{op:?}: {e}; {}", context(&done)));
                assert_same_bytes(&got, &read_at(&l, *at, *len).unwrap(), &format!("{op:?} on a fresh handle; {}", context(&done)));
            }
            Op::Fsync => f.sync_all().unwrap_or_else(|e| panic!("fsync: {e}; {}", context(&done))),
            Op::Reopen => {
                drop(f);
                f = open(mnt);
            }
        }
        done.push(op);
        let (got, want) = (f.metadata().unwrap().len(), l.metadata().unwrap().len());
        assert_eq!(got, want, "size after {:?}; {}", done.last().unwrap(), context(&done));
    }
    f.sync_all().unwrap();
    let whole = |p: &Path| {
        let mut v = Vec::new();
        File::open(p).unwrap().read_to_end(&mut v).unwrap();
        v
    };
    assert_same_bytes(&whole(mnt), &whole(local), &format!("whole file with the writer open (seed {seed})"));
    drop(f);
    assert_same_bytes(&whole(mnt), &whole(local), &format!("whole file after close (seed {seed})"));
    eprintln!("{count} random operations, final size {}", l.metadata().unwrap().len());
}

/// Reads up to `len` bytes at `at`, stopping early only at end of file.
fn read_at(f: &File, at: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut n = 0;
    while n < len {
        match f.read_at(&mut buf[n..], at + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// close(2) of a file written through the mount returns only once every
/// replica of the chunks written has synced (each chunkserver's fsync count
/// in /metrics went up by the replicas of the file it holds). The close of
/// a dup'ed descriptor after that, and of a descriptor only read, sync
/// nothing more; through a mount with `-o nosync_close` a close syncs nothing.
#[test]
fn close_of_a_written_file_syncs_every_replica_unless_nosync_close() {
    use dfs_tests::syncs::{deltas, node_fsyncs, replicas_held};
    let c = cluster(&["--default-chunk-size-bytes", "1048576"]);
    let m = mount(&c, &[]);
    let lazy = mount(&c, &["-o", "nosync_close"]);
    let urls: Vec<String> = c.chunkservers.iter().map(|cs| cs.url.clone()).collect();
    let fsyncs = move || urls.iter().map(|u| block_on(node_fsyncs(u)).unwrap()).collect::<Vec<u64>>();
    let data = random_bytes(&mut StdRng::seed_from_u64(seed()), 3 * MIB + 5); // four 1 MiB chunks
    let (durable, relaxed) = (m.path().join("durable"), lazy.path().join("relaxed"));

    let (counts, data2, f2) = (fsyncs.clone(), data.clone(), durable);
    let [before, closed, dup_closed, read_closed] = within(Duration::from_secs(120), move || {
        let before = counts();
        let mut f = File::create(&f2).unwrap();
        f.write_all(&data2).unwrap();
        let dup = f.try_clone().unwrap();
        drop(f);
        let closed = counts();
        drop(dup);
        let dup_closed = counts();
        let mut back = Vec::new();
        File::open(&f2).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data2, "read back through the mount");
        [before, closed, dup_closed, counts()]
    });
    let held = block_on(replicas_held(&c, "/durable", 0)).unwrap();
    assert_eq!(held.iter().sum::<u64>(), 12, "4 chunks x 3 replicas");
    assert_eq!(deltas(&before, &closed), held, "fsyncs per chunkserver by the close");
    assert_eq!(dup_closed, closed, "the dup'ed descriptor's close had nothing left to sync");
    assert_eq!(read_closed, closed, "a read-only open and close syncs nothing");

    let (counts, data2) = (fsyncs.clone(), data.clone());
    let [before, after] = within(Duration::from_secs(120), move || {
        let before = counts();
        fs::write(&relaxed, &data2).unwrap();
        [before, counts()]
    });
    assert_eq!(deltas(&before, &after), [0, 0, 0], "-o nosync_close: no sync at close");
    let durable2 = m.path().join("relaxed");
    assert!(within(Duration::from_secs(60), move || fs::read(durable2).unwrap()) == data, "the other mount reads the bytes");
}
