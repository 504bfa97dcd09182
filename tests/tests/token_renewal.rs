//! Chunk tokens renewed transparently (#19), end to end. The master here
//! hands out tokens that live 3 s and rolls its token key every 2 s
//! (`--token-lifetime-ms 3000 --token-key-roll-ms 2000`; chunkservers hear
//! of keys with their 100 ms heartbeats, and refuse a token once expired or
//! once its key is retired). Readers and writers that outlast two key rolls
//! and a token's lifetime keep working, through the client library, the
//! shell and the FUSE mount, and every byte reads back as written.
//!
//! A client renews a token before it expires by its own clock, so with one
//! clock on the host the tests above rarely meet a refusal; the last test
//! makes chunkservers refuse tokens that have not expired (the master
//! restarts with new keys) and checks that the client renews them.
//!
//! The mount test needs root and /dev/fuse, as tests/tests/fuse_mount.rs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dfs_client::{Client, CreateOptions, DataConfig};
use dfs_tests::{seed, Cluster, Mount};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::io::AsyncReadExt;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const LIFETIME_MS: u64 = 3_000;
const ROLL_MS: u64 = 2_000;
/// Short tokens and key rolls, 1 MiB chunks (files span many).
const MASTER_ARGS: &[&str] = &["--token-lifetime-ms", "3000", "--token-key-roll-ms", "2000", "--default-chunk-size-bytes", "1048576"];
/// Past a token's lifetime and two key rolls: every token and key in use
/// before this long is refused after it.
const PAST_TOKENS: Duration = Duration::from_millis(LIFETIME_MS + 2 * ROLL_MS);

async fn cluster() -> Cluster {
    let c = Cluster::start_with(3, MASTER_ARGS).expect("cluster");
    c.wait_live(3, Duration::from_secs(15)).await.expect("3 live chunkservers");
    c
}

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// Where two byte strings first differ (or the shorter one's end), if they do.
fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Client data requests (reads, writes, syncs) the chunkservers refused
/// for their tokens (401), from their `/metrics`.
async fn tokens_refused(c: &Cluster) -> u64 {
    let mut n = 0;
    for cs in &c.chunkservers {
        let text = reqwest::get(format!("{}/metrics", cs.url)).await.expect("metrics").text().await.expect("metrics text");
        let data_route = |l: &str| l.contains("route=\"/v1/chunks/{handle}/data\"") || l.contains("route=\"/v1/chunks/{handle}/fsync\"");
        for line in text.lines().filter(|l| l.contains("_http_requests_total{") && l.contains("status=\"401\"") && data_route(l)) {
            n += line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        }
    }
    n
}

/// Writes a file (chunks of `chunk_mib` MiB, or the cluster's 1 MiB).
async fn put(client: &Client, path: &str, data: &[u8], replication: u16, chunk_mib: Option<u64>) {
    let opts = CreateOptions { replication: Some(replication), chunk_size_bytes: chunk_mib.map(|m| m << 20), ..Default::default() };
    let mut w = client.create(path, &opts).await.unwrap_or_else(|e| panic!("create {path}: {e}"));
    w.write(data).await.unwrap_or_else(|e| panic!("write {path}: {e}"));
    w.close().await.unwrap_or_else(|e| panic!("close {path}: {e}"));
}

async fn read_all(client: &Client, path: &str) -> Vec<u8> {
    let attr = client.stat(path).await.unwrap_or_else(|e| panic!("stat {path}: {e}"));
    client.read_at(&attr, 0, attr.size).await.unwrap_or_else(|e| panic!("read {path}: {e}")).to_vec()
}

/// A reader of the client library that takes 256 KiB every 250 ms, with
/// little read-ahead, reads a file of one 8 MiB chunk over about 8 s (four
/// key rolls, two token lifetimes): the chunk's location is renewed for
/// its token, and the pieces after the first seconds are read with tokens
/// the master handed out after the first ones were retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_outlasts_several_key_rolls() {
    let c = cluster().await;
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 8 * MIB);
    put(&dfs_tests::client(&c.master.url), "/slow", &data, 3, Some(8)).await;

    // Over HTTP, where every piece is a request with a token (the mount's
    // test below reads replicas on this host too).
    let config = DataConfig { read_piece_bytes: 256 * KIB as u64, readahead_pieces: 2, local_reads: false, ..Default::default() };
    let client = dfs_tests::client_with(&c.master.url, config);
    let mut reader = client.open("/slow").await.expect("open");
    let (start, mut got) = (Instant::now(), Vec::with_capacity(data.len()));
    loop {
        let piece = reader.read(256 * KIB as u64).await.unwrap_or_else(|e| panic!("read at {} after {:?}: {e}", got.len(), start.elapsed()));
        if piece.is_empty() {
            break;
        }
        got.extend_from_slice(&piece);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(start.elapsed() > PAST_TOKENS, "the read must outlast the tokens: {:?}", start.elapsed());
    assert_eq!(first_diff(&got, &data), None, "the slow read differs");
    eprintln!("tokens refused: {}", tokens_refused(&c).await);
}

/// `dfs cat` of an 80 MiB file (one chunk) into a pipe that its reader
/// stops draining for 7 s after the first MiB: the shell's read-ahead
/// (64 MiB) fills and waits; the rest of the chunk is then read with a new
/// token, and the bytes match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dfs_cat_into_a_paused_pipe_completes() {
    let c = cluster().await;
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 80 * MIB + 4321);
    put(&dfs_tests::client(&c.master.url), "/big", &data, 2, Some(128)).await;

    let mut child = dfs_tests::shell::tokio_command(&c.master.url)
        .unwrap()
        .args(["cat", "/big"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start dfs cat");
    let mut out = child.stdout.take().expect("stdout");
    let mut got = vec![0u8; MIB];
    tokio::time::timeout(Duration::from_secs(30), out.read_exact(&mut got)).await.expect("the first MiB in time").expect("read the first MiB");
    tokio::time::sleep(PAST_TOKENS).await;
    let rest = tokio::time::timeout(Duration::from_secs(60), out.read_to_end(&mut got)).await.expect("the rest in time");
    rest.expect("read the rest");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("dfs cat exits").expect("wait");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).await.ok();
    assert!(status.success(), "dfs cat failed ({status}): {stderr}");
    assert_eq!(first_diff(&got, &data), None, "dfs cat returned other bytes");
    eprintln!("tokens refused: {}", tokens_refused(&c).await);
}

/// A writer of the client library writes and flushes 1.5 MiB, waits past
/// the tokens of its leases and two key rolls, writes 1.5 MiB more and
/// closes (durable: every chunk it wrote is synced, the first ones with
/// tokens from new leases); the file reads back exact, also after another
/// wait, through a fresh client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_across_key_rolls_closes_with_every_byte() {
    let c = cluster().await;
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 3 * MIB);
    let (first, second) = data.split_at(3 * MIB / 2);
    let config = DataConfig { write_piece_bytes: 256 * KIB as u64, ..Default::default() };
    let client = dfs_tests::client_with(&c.master.url, config);
    let mut w = client.create("/w", &CreateOptions { replication: Some(3), ..Default::default() }).await.expect("create");
    w.write(first).await.expect("first write");
    w.flush().await.expect("flush");
    tokio::time::sleep(PAST_TOKENS).await;
    w.write(second).await.expect("write after the tokens expired");
    let attr = w.close().await.expect("durable close after the tokens expired");
    assert_eq!(attr.size, data.len() as u64);
    assert_eq!(first_diff(&read_all(&dfs_tests::client(&c.master.url), "/w").await, &data), None, "read back differs");

    // The same client appends after another wait (its cached leases and
    // locations all expired), and fsyncs.
    tokio::time::sleep(PAST_TOKENS).await;
    let mut w = client.open_write("/w", true).await.expect("open for append");
    w.write(b"tail").await.expect("append");
    w.fsync().await.expect("fsync with renewed tokens");
    w.close().await.expect("close");
    let mut want = data.clone();
    want.extend_from_slice(b"tail");
    assert_eq!(first_diff(&read_all(&client, "/w").await, &want), None, "read back after the append differs");
    eprintln!("tokens refused: {}", tokens_refused(&c).await);
}

/// Through the FUSE mount: a file held open reads correctly (random reads
/// away from what the mount read before, then all of it) after sleeping
/// past its tokens, in a mount reading replicas on this host directly
/// (descriptors passed for a chunk token) and in one reading over HTTP; a
/// file held open for writing takes more writes after the same sleep, and
/// its fsync and close make it whole. Read-ahead is 1 MiB, so that the
/// reads after the sleep are not served from what was fetched before it.
#[test]
fn files_held_open_in_the_mount_outlast_their_tokens() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let c = rt.block_on(cluster());
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 24 * MIB + 99);
    rt.block_on(put(&dfs_tests::client(&c.master.url), "/held", &data, 3, None));
    let mount = |extra: &[&str]| {
        let args: Vec<&str> = ["--readahead-mib", "1"].iter().chain(extra).copied().collect();
        Mount::start(&c.master.url, &args).unwrap_or_else(|e| panic!("mount: {e:#}"))
    };
    let (local, remote) = (mount(&[]), mount(&["--local-reads", "false"]));

    let mut readers = Vec::new();
    for m in [&local, &remote] {
        let f = File::open(m.path().join("held")).expect("open for reading in the mount");
        let mut head = vec![0u8; 64 * KIB];
        f.read_exact_at(&mut head, 0).expect("read the head");
        assert!(head[..] == data[..head.len()]);
        readers.push(f);
    }
    let mut writer = OpenOptions::new().create(true).write(true).truncate(true).open(remote.path().join("new")).expect("create in the mount");
    let written = random_bytes(&mut rng, 3 * MIB / 2);
    writer.write_all(&written[..MIB]).expect("first write in the mount");
    writer.flush().expect("flush");

    std::thread::sleep(PAST_TOKENS);

    for (name, reader) in ["local reads", "HTTP reads"].iter().zip(&mut readers) {
        for _ in 0..12 {
            let len = rng.random_range(1..300 * KIB);
            let at = rng.random_range(6 * MIB..data.len() - len);
            let mut got = vec![0u8; len];
            reader.read_exact_at(&mut got, at as u64).unwrap_or_else(|e| panic!("{name}: read {len} at {at} after the tokens expired: {e}"));
            assert!(got[..] == data[at..at + len], "{name}: read {len} at {at} differs");
        }
        let mut whole = Vec::new();
        reader.seek(SeekFrom::Start(0)).unwrap();
        reader.read_to_end(&mut whole).unwrap_or_else(|e| panic!("{name}: read all through the open file: {e}"));
        assert_eq!(first_diff(&whole, &data), None, "{name}: the whole file differs");
    }

    writer.write_all(&written[MIB..]).expect("write after the tokens expired");
    writer.sync_all().expect("fsync after the tokens expired");
    drop(writer);
    let back = std::fs::read(remote.path().join("new")).expect("read the written file back");
    assert_eq!(first_diff(&back, &written), None, "the file written across the sleep differs");
    assert_eq!(first_diff(&rt.block_on(read_all(&dfs_tests::client(&c.master.url), "/new")), &written), None, "the cluster holds other bytes");
    eprintln!("tokens refused: {}", rt.block_on(tokens_refused(&c)));
}

/// Tokens refused before they expire: the master restarts, with token keys
/// of its own (keys live in its memory only), and the chunkservers retire
/// the old ones at their next heartbeat. A client holding locations of the
/// whole file and a lease with tokens good for minutes gets EKEYEXPIRED
/// from the chunkservers, renews them from the restarted master, and goes
/// on: reads, the durable close of a writer whose bytes were sent before
/// the restart, and an append after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_before_a_master_restart_are_renewed() {
    let mut c = Cluster::start_with(3, &["--default-chunk-size-bytes", "1048576"]).expect("cluster");
    c.wait_live(3, Duration::from_secs(15)).await.expect("3 live chunkservers");
    let mut rng = StdRng::seed_from_u64(seed());
    let data = random_bytes(&mut rng, 4 * MIB);
    // Over HTTP: a descriptor passed for a read (local reads) stays good
    // for as long as its token would have been, key retired or not.
    let client = dfs_tests::client_with(&c.master.url, DataConfig { local_reads: false, ..Default::default() });
    put(&client, "/r", &data, 3, None).await;
    let attr = client.stat("/r").await.expect("stat");
    assert_eq!(first_diff(&client.read_at(&attr, 0, attr.size).await.expect("read before the restart"), &data), None);
    let mut w = client.open_write("/r", true).await.expect("open for append");
    w.write(b"before").await.expect("append before the restart");
    w.flush().await.expect("flush before the restart: sent and committed, not synced");

    c.master.restart().expect("restart the master");
    c.wait_live(3, Duration::from_secs(20)).await.expect("chunkservers back with the restarted master");
    // The chunkservers hear of the new keys (and drop the old) with their
    // next heartbeats, 100 ms apart.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tokens_refused(&c).await, 0, "nothing refused yet");

    for at in [MIB as u64 + 5, 3 * MIB as u64] {
        let got = client.read_at(&attr, at, 1000).await.unwrap_or_else(|e| panic!("read at {at} after the master restarted: {e}"));
        assert!(got[..] == data[at as usize..at as usize + 1000], "read at {at} differs");
    }
    w.close().await.expect("durable close after the restart");
    let mut w = client.open_write("/r", true).await.expect("open for append after the restart");
    w.write(b" after").await.expect("append after the restart");
    w.close().await.expect("close after the restart");
    let mut want = data.clone();
    want.extend_from_slice(b"before after");
    assert_eq!(first_diff(&read_all(&dfs_tests::client(&c.master.url), "/r").await, &want), None, "read back differs");
    // Two reads through cached locations and the sync of three replicas.
    let refused = tokens_refused(&c).await;
    assert!(refused >= 5, "the chunkservers refused {refused} tokens from before the restart, not the 5 or more expected");
    eprintln!("tokens refused: {refused}");
}
