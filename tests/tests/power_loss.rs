//! A correlated power cut: every replica of a chunk being written loses
//! what it had not synced, at once, and every synced byte must survive.
//!
//! The loss is emulated on real processes: a prefix is written and synced
//! (the client's fsync, HDFS's hsync), more is written and acknowledged
//! without a sync, then all three chunkservers are frozen (SIGSTOP) and
//! each data directory is given what a disk that lost unsynced writes
//! leaves: the in-place metadata update (new length, new CRCs) reached the
//! disk, but some of the data it describes did not: the rest of the block
//! the sync ended in and other blocks after it hold zeros (never written)
//! or other bytes (torn), chosen per replica by a printed seed. Then every
//! chunkserver is killed (-9) and restarted.
//!
//! Before start-up recovery, each replica came back at its full length
//! with failing blocks; the first read of the synced prefix met the torn
//! block the sync ended in, quarantined every replica, and lost the data.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use dfs_client::CreateOptions;
use dfs_tests::faults::{self, data_path, quarantined, replica_info};
use dfs_tests::{seed, Cluster};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const BLOCK: u64 = 64 * 1024;
const CHUNK: u64 = 8 << 20;
/// Synced: ends inside a block, so the append after it tears that block.
const SYNCED: u64 = (3 << 20) + 1000;
/// Written after the sync and acknowledged, never synced.
const UNSYNCED: u64 = (2 << 20) + 500;

/// Damages the unsynced part of one replica's data file as a lost or torn
/// write would: always the rest of the block holding the synced length's
/// end, and a random set of the later blocks, each zeroed or garbled.
fn lose_unsynced_writes(data_file: &Path, rng: &mut StdRng) -> Vec<String> {
    let f = std::fs::OpenOptions::new().write(true).open(data_file).expect("open the replica's data file");
    let end = SYNCED + UNSYNCED;
    let first = SYNCED / BLOCK;
    let last = (end - 1) / BLOCK;
    let mut done = Vec::new();
    for b in first..=last {
        if b != first && b != last && !rng.random_bool(0.3) {
            continue; // this block's write reached the disk
        }
        let from = (b * BLOCK).max(SYNCED);
        let to = ((b + 1) * BLOCK).min(end);
        let mut bytes = vec![0u8; (to - from) as usize];
        let garbled = rng.random_bool(0.5);
        if garbled {
            rng.fill_bytes(&mut bytes);
        }
        f.write_all_at(&bytes, from).expect("damage the replica");
        done.push(format!("block {b} {}", if garbled { "garbled" } else { "zeroed" }));
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_correlated_power_loss_every_synced_byte_survives() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Cluster::start(3).expect("cluster");
    c.wait_live(3, Duration::from_secs(20)).await.expect("chunkservers live");
    let client = faults::client(&c.master.url);

    let mut data = vec![0u8; (SYNCED + UNSYNCED) as usize];
    rng.fill_bytes(&mut data);
    let opts = CreateOptions { replication: Some(3), chunk_size_bytes: Some(CHUNK), ..Default::default() };
    let mut w = client.create("/f", &opts).await.expect("create");
    w.set_sync_on_close(false);
    w.write(&data[..SYNCED as usize]).await.expect("write the synced part");
    w.fsync().await.expect("fsync");
    w.write(&data[SYNCED as usize..]).await.expect("write the unsynced part");
    w.flush().await.expect("flush: acknowledged by every replica, not synced");

    let attr = client.stat("/f").await.expect("stat");
    let chunk = client.master().locate(attr.inode, 0, 1).await.expect("locate").chunks.remove(0);
    let handle = chunk.handle.0;
    assert_eq!(chunk.replicas.len(), 3, "{chunk:?}");

    for cs in &c.chunkservers {
        cs.sigstop();
    }
    for cs in &c.chunkservers {
        let lost = lose_unsynced_writes(&data_path(&cs.data_dir, handle), &mut rng);
        eprintln!("{}: lost {lost:?}", cs.url);
    }
    for cs in &mut c.chunkservers {
        cs.restart(true).expect("restart after the power cut");
    }
    c.wait_live(3, Duration::from_secs(20)).await.expect("chunkservers back");

    // Every synced byte reads back, through a fresh client.
    let reader = faults::client(&c.master.url);
    let attr = reader.stat("/f").await.expect("stat after the cut");
    let got = reader.read_at(&attr, 0, SYNCED).await.expect("read the synced bytes");
    assert!(got[..] == data[..SYNCED as usize], "synced bytes differ from {:?} on (seed {seed})", faults::first_diff(&got, &data));

    // No replica was thrown away, and none lost a synced byte.
    let http = reqwest::Client::new();
    for cs in &c.chunkservers {
        assert!(quarantined(&cs.data_dir, handle).is_empty(), "{}: replica quarantined (seed {seed})", cs.url);
        let (_, length) = replica_info(&http, &cs.url, handle).await.expect("replica info").expect("replica kept");
        assert!(length >= SYNCED, "{}: replica cut to {length}, below the synced {SYNCED} (seed {seed})", cs.url);
        assert!(length <= SYNCED + UNSYNCED, "{}: length {length}", cs.url);
    }
}
