//! The shared cluster of `running` and `heartbeats`, and what the attacks
//! need: its files, clients, insiders, the trap URL, the victim chunk.

use std::time::Instant;

use dfs_client::Client;
use dfs_proto::wire::chunks::{ChunkLocation, WriteLease};
use dfs_proto::InodeId;
use dfs_tests::faults::{self, Files};
use dfs_tests::insider::{self, lease, locations, master_key_file, Insider, Trap};
use dfs_tests::Cluster;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::*;

/// The shared cluster and what the attacks need.
pub struct World {
    pub c: Cluster,
    pub files: Files,
    pub client: Client,
    pub http: reqwest::Client,
    pub insider: Insider,
    pub stranger: Insider,
    /// Where attackers point chunkservers: it must never be contacted.
    pub trap: Trap,
    /// The attacker's own file, written through raw data requests.
    pub scratch: (String, InodeId),
    /// A lease on the scratch file taken at the start: its token expires.
    pub early: (WriteLease, Instant),
    /// The first chunk of a file the attacker does not write: (location, its read token).
    pub victim: ChunkLocation,
    pub before: Vec<(String, u64, u64, Vec<String>)>,
}

impl World {
    /// The victim chunk's location again, with a fresh read token (they
    /// live 2 s here); its chunk, version and replicas must not change.
    pub async fn victim(&self) -> ChunkLocation {
        let inode = self.client.stat("/h/two-chunks").await.expect("stat").inode;
        let now = locations(&self.http, &self.c.master.url, inode).await.expect("locate").chunks.remove(0);
        assert_eq!((now.handle, now.version, &now.replicas), (self.victim.handle, self.victim.version, &self.victim.replicas), "the victim chunk changed");
        now
    }
}

pub async fn world() -> World {
    let seed = dfs_tests::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let lifetime = TOKEN_LIFETIME.as_millis().to_string();
    let c = cluster(&["--token-lifetime-ms", &lifetime, "--token-key-roll-ms", "4000"], &[]).await;
    let client = faults::client(&c.master.url);
    let mut files = write_files(&client, "/h", &mut rng).await;
    let scratch_path = "/h/scratch".to_string();
    let scratch_data = faults::random_bytes(&mut rng, 64 * KIB);
    write_file(&client, &scratch_path, &scratch_data).await;
    files.insert(scratch_path.clone(), scratch_data);
    let http = insider::http();
    let scratch_inode = client.stat(&scratch_path).await.expect("stat").inode;
    let early = (lease(&http, &c.master.url, scratch_inode, 0).await.expect("lease"), Instant::now());
    let insider = Insider::from_key_file(&master_key_file(&c.master.data_dir)).expect("the master's key file");
    let victim_inode = client.stat("/h/two-chunks").await.expect("stat").inode;
    let victim = locations(&http, &c.master.url, victim_inode).await.expect("locate").chunks.remove(0);
    assert_eq!(victim.replicas.len(), 3, "{victim:?}");
    assert!(!victim.token.is_empty(), "locations carry no read token: {victim:?}");
    let before = shape(&all_locations(&http, &c, &client, &files).await);
    World {
        c,
        files,
        client,
        http,
        insider,
        stranger: Insider::stranger(),
        trap: Trap::start().await,
        scratch: (scratch_path, scratch_inode),
        early,
        victim,
        before,
    }
}

/// Every daemon of the shared cluster answers.
pub async fn alive(w: &World) {
    for url in std::iter::once(&w.c.master.url).chain(w.c.chunkservers.iter().map(|c| &c.url)) {
        let path = if *url == w.c.master.url { "/v1/fs" } else { "/v1/status" };
        let r = insider::send(w.http.get(format!("{url}{path}"))).await.unwrap_or_else(|e| panic!("{url} does not answer: {e}"));
        assert_eq!(r.status().as_u16(), 200, "{url}{path}");
    }
}
