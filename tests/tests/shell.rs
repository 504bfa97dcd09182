//! The `dfs` shell against a real cluster: round trips, listings and
//! counts, and the exit status and message of each kind of mistake.

use std::path::Path;
use std::time::Duration;

use dfs_tests::shell::{dfs, dfs_with, Run};
use dfs_tests::{seed, Cluster};
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;

const MIB: usize = 1 << 20;

/// 1 MiB chunks, so files of a few MiB span many chunks.
fn cluster() -> Cluster {
    Cluster::start_with(3, &["--default-chunk-size-bytes", "1048576"]).expect("cluster")
}

async fn ready(c: &Cluster) -> String {
    c.wait_live(3, Duration::from_secs(15)).await.expect("3 live chunkservers");
    c.master.url.clone()
}

fn random_bytes(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout))
}

#[tokio::test]
async fn put_get_cat_and_tail_of_100_mib_round_trip() {
    let c = cluster();
    let m = ready(&c).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big");
    let data = random_bytes(&mut rng, 100 * MIB + 12345);
    std::fs::write(&src, &data).unwrap();

    dfs(&m, &["mkdir", "-p", "/in/here"]).await.unwrap().ok();
    dfs(&m, &["put", "--replication", "3", src.to_str().unwrap(), "/in/here/"]).await.unwrap().ok();
    let back = local.path().join("back");
    dfs(&m, &["get", "/in/here/big", back.to_str().unwrap()]).await.unwrap().ok();
    assert!(std::fs::read(&back).unwrap() == data, "get returned different bytes");
    assert!(!Path::new(&format!("{}._COPYING_", back.display())).exists());

    // cat streams all 101 chunks in order.
    let cat = dfs(&m, &["cat", "/in/here/big"]).await.unwrap();
    assert_eq!(cat.code, 0, "{}", cat.stderr);
    // stdout is lossy text; compare the bytes through a file instead.
    let dst = local.path().join("cat");
    let status = dfs_tests::shell::command(&m).unwrap().args(["cat", "/in/here/big"]).stdout(std::fs::File::create(&dst).unwrap()).status().unwrap();
    assert!(status.success());
    assert!(std::fs::read(&dst).unwrap() == data, "cat returned different bytes");

    let stat = json(&dfs(&m, &["stat", "--json", "/in/here/big"]).await.unwrap().ok());
    assert_eq!(stat[0]["size"], data.len() as u64);
    assert_eq!(stat[0]["chunk_size_bytes"], MIB as u64);
    assert_eq!(stat[0]["kind"], "file");

    // Text from stdin, then tail: the last KiB.
    let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    dfs_with(&m, &["put", "-", "/in/log"], Some(text.clone().into_bytes()), Duration::from_secs(60)).await.unwrap().ok();
    let tail = dfs(&m, &["tail", "/in/log"]).await.unwrap().ok();
    assert_eq!(tail.stdout, text[text.len() - 1024..]);

    let fsck = dfs(&m, &["fsck", "/in"]).await.unwrap();
    assert_eq!(fsck.code, 0, "{}", fsck.stdout);
    assert!(fsck.stdout.contains("is HEALTHY"), "{}", fsck.stdout);
}

/// Writes a local tree: `dirs` directories of `files` files of 0..8 KiB.
fn local_tree(root: &Path, rng: &mut rand::rngs::StdRng, dirs: usize, files: usize) -> u64 {
    let mut bytes = 0;
    for d in 0..dirs {
        let dir = root.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..files {
            let n = rng.random_range(0..8192);
            bytes += n as u64;
            std::fs::write(dir.join(format!("f{f:03}")), random_bytes(rng, n)).unwrap();
        }
    }
    bytes
}

fn assert_same_tree(a: &Path, b: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(a).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    let mut other: Vec<_> = std::fs::read_dir(b).unwrap().map(|e| e.unwrap().file_name()).collect();
    other.sort();
    assert_eq!(names, other, "entries differ in {}", a.display());
    for n in names {
        let (x, y) = (a.join(&n), b.join(&n));
        if x.is_dir() {
            assert_same_tree(&x, &y);
        } else {
            assert!(std::fs::read(&x).unwrap() == std::fs::read(&y).unwrap(), "{} differs", x.display());
        }
    }
}

#[tokio::test]
async fn a_tree_of_1000_files_round_trips_and_lists() {
    let c = cluster();
    let m = ready(&c).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("tree");
    let bytes = local_tree(&tree, &mut rng, 10, 100);

    dfs(&m, &["put", tree.to_str().unwrap(), "/tree"]).await.unwrap().ok();
    let back = local.path().join("back");
    dfs(&m, &["get", "/tree", back.to_str().unwrap()]).await.unwrap().ok();
    assert_same_tree(&tree, &back);

    // ls -R: every directory and file once, in pre-order.
    let ls = dfs(&m, &["ls", "-R", "/tree"]).await.unwrap().ok();
    let lines: Vec<&str> = ls.stdout.lines().collect();
    assert_eq!(lines.len(), 1010, "{}", ls.stdout);
    assert!(lines[0].starts_with('d') && lines[0].ends_with(" /tree/d00"), "{}", lines[0]);
    assert!(lines[1].starts_with("-rw-r--r--") && lines[1].ends_with(" /tree/d00/f000"), "{}", lines[1]);
    assert!(lines[101].ends_with(" /tree/d01"), "{}", lines[101]);
    let listed = json(&dfs(&m, &["ls", "-R", "--json", "/tree"]).await.unwrap().ok());
    let sizes: u64 = listed.as_array().unwrap().iter().filter(|e| e["kind"] == "file").map(|e| e["size"].as_u64().unwrap()).sum();
    assert_eq!(sizes, bytes);
    let top = dfs(&m, &["ls", "/tree"]).await.unwrap().ok();
    assert!(top.stdout.starts_with("Found 10 items\n"), "{}", top.stdout);

    let count = dfs(&m, &["count", "/tree"]).await.unwrap().ok();
    let fields: Vec<&str> = count.stdout.split_whitespace().collect();
    assert_eq!(fields, ["11", "1000", &bytes.to_string(), "/tree"]);
    let du = dfs(&m, &["du", "-s", "/tree"]).await.unwrap().ok();
    let fields: Vec<&str> = du.stdout.split_whitespace().collect();
    assert_eq!(fields, [bytes.to_string(), (bytes * 3).to_string(), "/tree".into()]);
    let du_each = dfs(&m, &["du", "--json", "/tree"]).await.unwrap().ok();
    assert_eq!(json(&du_each).as_array().unwrap().len(), 10);
    let human = dfs(&m, &["du", "-s", "-h", "/tree"]).await.unwrap().ok();
    assert!(human.stdout.contains(" K") || human.stdout.contains(" M"), "{}", human.stdout);

    let df = json(&dfs(&m, &["df", "--json"]).await.unwrap().ok());
    assert_eq!(df["live_chunkservers"], 3);
    assert!(df["capacity_bytes"].as_u64().unwrap() > 0);
    let report = json(&dfs(&m, &["admin", "report", "--json"]).await.unwrap().ok());
    assert_eq!(report["chunkservers"].as_array().unwrap().len(), 3);
    assert_eq!(report["namespace"]["files"], 1000);
}

#[tokio::test]
async fn attributes_moves_and_copies() {
    let c = cluster();
    let m = ready(&c).await;
    dfs_with(&m, &["put", "-", "/f"], Some(b"hello\n".to_vec()), Duration::from_secs(30)).await.unwrap().ok();
    dfs(&m, &["setrep", "2", "/f"]).await.unwrap().ok();
    dfs(&m, &["chmod", "u+x,go-r", "/f"]).await.unwrap().ok();
    dfs(&m, &["chown", "7:8", "/f"]).await.unwrap().ok();
    let a = json(&dfs(&m, &["stat", "--json", "/f"]).await.unwrap().ok());
    assert_eq!((a[0]["replication"].as_u64(), a[0]["mode"].as_u64(), a[0]["uid"].as_u64(), a[0]["gid"].as_u64()), (Some(2), Some(0o700), Some(7), Some(8)));
    let fmt = dfs(&m, &["stat", "-c", "%n %b %r %a", "/f"]).await.unwrap().ok();
    assert_eq!(fmt.stdout.trim(), "f 6 2 700");

    dfs(&m, &["mkdir", "/d"]).await.unwrap().ok();
    dfs(&m, &["cp", "/f", "/d/g"]).await.unwrap().ok();
    dfs(&m, &["mv", "/f", "/d"]).await.unwrap().ok();
    assert_eq!(dfs(&m, &["cat", "/d/f"]).await.unwrap().ok().stdout, "hello\n");
    assert_eq!(dfs(&m, &["cat", "/d/g"]).await.unwrap().ok().stdout, "hello\n");
    dfs_with(&m, &["appendToFile", "-", "/d/g"], Some(b"again\n".to_vec()), Duration::from_secs(30)).await.unwrap().ok();
    assert_eq!(dfs(&m, &["cat", "/d/g"]).await.unwrap().ok().stdout, "hello\nagain\n");
    dfs(&m, &["touchz", "/d/empty"]).await.unwrap().ok();
    assert_eq!(dfs(&m, &["test", "-z", "/d/empty"]).await.unwrap().code, 0);
    assert_eq!(dfs(&m, &["test", "-s", "/d/empty"]).await.unwrap().code, 1);
    assert_eq!(dfs(&m, &["test", "-d", "/d"]).await.unwrap().code, 0);
    assert_eq!(dfs(&m, &["test", "-f", "/d"]).await.unwrap().code, 1);
    assert_eq!(dfs(&m, &["test", "-e", "/nothing"]).await.unwrap().code, 1);
    dfs(&m, &["chmod", "-R", "700", "/d"]).await.unwrap().ok();
    let listed = json(&dfs(&m, &["ls", "-R", "--json", "/d"]).await.unwrap().ok());
    assert!(listed.as_array().unwrap().iter().all(|e| e["mode"] == 0o700), "{listed}");
    dfs(&m, &["rm", "-r", "/d"]).await.unwrap().ok();
    assert_eq!(dfs(&m, &["test", "-e", "/d"]).await.unwrap().code, 1);
}

/// Asserts a failed command: exit status 1, one line on stderr naming the
/// path and the reason.
fn assert_fails(run: &Run, path: &str, reason: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {run:?}");
    assert!(lines[0].contains(path) && lines[0].contains(reason), "{run:?}");
}

#[tokio::test]
async fn mistakes_get_one_line_and_a_non_zero_exit() {
    let c = cluster();
    let m = ready(&c).await;
    assert_fails(&dfs(&m, &["ls", "/missing"]).await.unwrap(), "/missing", "No such file or directory");
    assert_fails(&dfs(&m, &["cat", "/missing"]).await.unwrap(), "/missing", "No such file or directory");
    assert_fails(&dfs(&m, &["get", "/missing", "/tmp/never"]).await.unwrap(), "/missing", "No such file or directory");

    dfs(&m, &["mkdir", "-p", "/full/sub"]).await.unwrap().ok();
    assert_fails(&dfs(&m, &["rm", "/full"]).await.unwrap(), "/full", "Is a directory");
    assert_fails(&dfs(&m, &["rmdir", "/full"]).await.unwrap(), "/full", "Directory not empty");
    assert_eq!(dfs(&m, &["test", "-d", "/full/sub"]).await.unwrap().code, 0, "nothing was removed");

    dfs_with(&m, &["put", "-", "/file"], Some(b"first".to_vec()), Duration::from_secs(30)).await.unwrap().ok();
    let again = dfs_with(&m, &["put", "-", "/file"], Some(b"second".to_vec()), Duration::from_secs(30)).await.unwrap();
    assert_fails(&again, "/file", "File exists");
    assert_eq!(dfs(&m, &["cat", "/file"]).await.unwrap().ok().stdout, "first", "the old file is untouched");
    dfs_with(&m, &["put", "-f", "-", "/file"], Some(b"second".to_vec()), Duration::from_secs(30)).await.unwrap().ok();
    assert_eq!(dfs(&m, &["cat", "/file"]).await.unwrap().ok().stdout, "second");

    assert_fails(&dfs(&m, &["mkdir", "/file/sub"]).await.unwrap(), "/file/sub", "Not a directory");
    assert_fails(&dfs(&m, &["mkdir", "-p", "/file/sub"]).await.unwrap(), "/file/sub", "Not a directory");
    assert_fails(&dfs(&m, &["setrep", "0", "/file"]).await.unwrap(), "/file", "Invalid argument");
    assert_fails(&dfs(&m, &["chown", "no-such-user-here", "/file"]).await.unwrap(), "no-such-user-here", "unknown user");
    assert_fails(&dfs(&m, &["chmod", "u*x", "/file"]).await.unwrap(), "/file", "bad mode");
    assert_eq!(dfs(&m, &["rm", "-f", "/missing"]).await.unwrap().code, 0, "rm -f ignores missing paths");

    // One bad path among good ones: the others are still done.
    let mixed = dfs(&m, &["mkdir", "/ok1", "/missing/x", "/ok2"]).await.unwrap();
    assert_fails(&mixed, "/missing/x", "No such file or directory");
    assert_eq!(dfs(&m, &["test", "-d", "/ok2"]).await.unwrap().code, 0);

    // Usage errors come from the argument parser (status 2).
    assert_eq!(dfs(&m, &["put", "/only-one"]).await.unwrap().code, 2);
    // A master that is not there: one line, status 1.
    let gone = dfs_with("http://127.0.0.1:1", &["--master-wait-secs", "1", "ls", "/"], None, Duration::from_secs(60)).await.unwrap();
    assert_eq!(gone.code, 1, "{gone:?}");
    assert_eq!(gone.stderr.lines().count(), 1, "{gone:?}");
}

#[tokio::test]
async fn fsck_reports_lost_replicas_and_fails() {
    let mut c = cluster();
    let m = ready(&c).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 3 * MIB);
    dfs_with(&m, &["put", "-", "/data"], Some(data), Duration::from_secs(60)).await.unwrap().ok();
    assert_eq!(dfs(&m, &["fsck"]).await.unwrap().code, 0);
    c.chunkservers[0].kill9();
    c.wait_live(2, Duration::from_secs(15)).await.unwrap();
    let fsck = dfs(&m, &["fsck", "--json"]).await.unwrap();
    assert_eq!(fsck.code, 1, "{fsck:?}");
    let v = json(&fsck);
    assert_eq!(v["healthy"], false);
    assert_eq!(v["totals"]["under_replicated"], 3, "{v}");
    assert_eq!(v["totals"]["missing"], 0, "{v}");
    assert_eq!(v["files"][0]["path"], "/data");
    let text = dfs(&m, &["fsck", "/data"]).await.unwrap();
    assert!(text.stdout.contains("3 under-replicated") && text.stdout.contains("is CORRUPT"), "{}", text.stdout);
    let report = dfs(&m, &["admin", "report"]).await.unwrap().ok();
    assert!(report.stdout.contains("2 live, 1 dead"), "{}", report.stdout);
    let cookie = dfs_tests::api::dashboard_cookie(&m).await.expect("a dashboard login");
    let page = reqwest::Client::new().get(format!("{m}/")).header("cookie", cookie).send().await.unwrap();
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = page.text().await.unwrap();
    assert!(page.contains("2 live / 3 chunkservers") && page.contains("class=\"dead\""), "{page}");
}

/// `put`, `cp` and `appendToFile` end with the file durable: each
/// chunkserver synced every replica it holds of the chunks written (its
/// fsync count in /metrics went up by exactly that many); `--no-sync`
/// syncs nothing.
#[tokio::test]
async fn put_cp_and_append_sync_every_replica_unless_no_sync() {
    use dfs_tests::syncs::{deltas, replica_fsyncs, replicas_held};
    let c = cluster();
    let m = ready(&c).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::write(&src, random_bytes(&mut rand::rngs::StdRng::seed_from_u64(seed()), 3 * MIB + 100)).unwrap();
    let src = src.to_str().unwrap();
    let steps: [(&[&str], &str, u64); 6] = [
        (&["put", "--replication", "3", src, "/p"], "/p", 0),
        (&["put", "--replication", "3", "--no-sync", src, "/p-lazy"], "/p-lazy", 0),
        (&["cp", "/p", "/c"], "/c", 0),
        (&["cp", "--no-sync", "/p", "/c-lazy"], "/c-lazy", 0),
        (&["appendToFile", src, "/p"], "/p", 3), // chunks 3..=6 of the grown file
        (&["appendToFile", "--no-sync", src, "/p"], "/p", 6),
    ];
    for (args, path, first) in steps {
        let before = replica_fsyncs(&c).await.unwrap();
        dfs(&m, args).await.unwrap().ok();
        let synced = deltas(&before, &replica_fsyncs(&c).await.unwrap());
        let want = if args.contains(&"--no-sync") { vec![0; 3] } else { replicas_held(&c, path, first).await.unwrap() };
        assert_eq!(synced, want, "fsyncs per chunkserver after dfs {args:?}");
        assert!(synced.iter().sum::<u64>() > 0 || args.contains(&"--no-sync"), "dfs {args:?} synced nothing");
    }
    let sizes = dfs(&m, &["stat", "-c", "%b", "/p", "/c"]).await.unwrap().ok().stdout;
    assert_eq!(sizes.split_whitespace().collect::<Vec<_>>(), [(3 * (3 * MIB + 100)).to_string(), (3 * MIB + 100).to_string()]);
}

/// Starts `dfs --master M ARGS...` with a pipe as its stdin, killed on drop.
fn dfs_fed(m: &str, args: &[&str]) -> tokio::process::Child {
    dfs_tests::shell::tokio_command(m)
        .unwrap()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Bytes of client writes the chunkservers have taken, all together.
async fn written_bytes(c: &Cluster) -> u64 {
    let mut sum = 0;
    for cs in &c.chunkservers {
        sum += dfs_tests::syncs::node_metric(&cs.url, "dfs_chunkserver_written_bytes_total").await.unwrap();
    }
    sum
}

/// Feeds `data` to a `dfs put` without ending its input, waits until at
/// least `progress` bytes reached the chunkservers, then SIGKILLs it.
async fn kill_put_midway(c: &Cluster, args: &[&str], data: Vec<u8>, progress: u64) {
    let m = c.master.url.clone();
    let start = written_bytes(c).await;
    let mut child = dfs_fed(&m, args);
    let mut stdin = child.stdin.take().unwrap();
    let feeder = tokio::spawn(async move {
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stdin, &data).await;
        stdin // kept open: the put waits for more
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while written_bytes(c).await < start + progress {
        assert!(std::time::Instant::now() < deadline, "the put made no progress in 60 s");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("dfs {args:?} ended before it was killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    feeder.abort();
}

/// A `dfs put -f` killed (SIGKILL) in the middle of a 64 MiB upload leaves
/// the file it was replacing whole and byte-identical; whatever partial copy
/// is left is under `._COPYING_`, another file. A `put` without -f killed
/// midway leaves nothing under the final name.
#[tokio::test]
async fn an_interrupted_put_never_destroys_or_fakes_the_destination() {
    let c = cluster();
    let m = ready(&c).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let old = random_bytes(&mut rng, 5 * MIB + 7);
    dfs_with(&m, &["put", "-", "/keep"], Some(old.clone()), Duration::from_secs(60)).await.unwrap().ok();
    let old_inode = dfs(&m, &["stat", "-c", "%i", "/keep"]).await.unwrap().ok().stdout;

    // 40 MiB of the 64 fed, at least 24 MiB of them on the chunkservers (x3 replicas).
    kill_put_midway(&c, &["put", "-f", "--replication", "3", "-", "/keep"], random_bytes(&mut rng, 40 * MIB), 3 * 24 * MIB as u64).await;
    let back = local_copy(&m, "/keep").await;
    assert!(back == old, "the old file changed: {} bytes, want {}", back.len(), old.len());
    assert_eq!(dfs(&m, &["stat", "-c", "%i", "/keep"]).await.unwrap().ok().stdout, old_inode, "the same file");
    let leftover = dfs(&m, &["stat", "-c", "%i", "/keep._COPYING_"]).await.unwrap();
    assert!(leftover.code != 0 || leftover.stdout != old_inode, "the leftover is not the destination");

    kill_put_midway(&c, &["put", "--replication", "3", "-", "/new"], random_bytes(&mut rng, 40 * MIB), 3 * 24 * MIB as u64).await;
    assert_eq!(dfs(&m, &["test", "-e", "/new"]).await.unwrap().code, 1, "no partial file under the final name");

    // And the put -f that is not interrupted replaces the file (reusing the leftover name).
    let new = random_bytes(&mut rng, 3 * MIB);
    dfs_with(&m, &["put", "-f", "-", "/keep"], Some(new.clone()), Duration::from_secs(60)).await.unwrap().ok();
    assert!(local_copy(&m, "/keep").await == new);
    assert_eq!(dfs(&m, &["test", "-e", "/keep._COPYING_"]).await.unwrap().code, 1, "the temporary was renamed");
}

/// A put without -f whose destination appears while it uploads fails with
/// EEXIST at the end, leaves the file that appeared alone, and removes its
/// temporary copy.
#[tokio::test]
async fn a_put_does_not_replace_a_file_made_meanwhile_and_cleans_up() {
    let c = cluster();
    let m = ready(&c).await;
    let mut child = dfs_fed(&m, &["put", "-", "/race"]);
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"uploaded bytes").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while dfs(&m, &["test", "-e", "/race._COPYING_"]).await.unwrap().code != 0 {
        assert!(std::time::Instant::now() < deadline, "no /race._COPYING_ while the put runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dfs(&m, &["touchz", "/race"]).await.unwrap().ok();
    drop(stdin); // the first put's input ends: it closes and renames
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    let run = Run { code: out.status.code().unwrap_or(-1), stdout: String::new(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() };
    assert_fails(&run, "/race", "File exists");
    assert_eq!(dfs(&m, &["stat", "-c", "%b", "/race"]).await.unwrap().ok().stdout.trim(), "0", "the file made meanwhile is untouched");
    assert_eq!(dfs(&m, &["test", "-e", "/race._COPYING_"]).await.unwrap().code, 1, "the temporary was removed");
}

/// The bytes of a dfs file, through `dfs get` (stdout would be lossy text).
async fn local_copy(m: &str, path: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy");
    dfs(m, &["get", path, to.to_str().unwrap()]).await.unwrap().ok();
    std::fs::read(&to).unwrap()
}
