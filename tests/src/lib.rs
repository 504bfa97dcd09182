//! Harness for end-to-end tests and benchmarks: real dfs processes on
//! loopback ports, temp directories, and a small JSON client for the API.
//!
//! Every process is killed when its handle drops, so a failing test leaves
//! nothing running.

pub mod api;
pub mod cluster;
pub mod faults;
pub mod ha;
pub mod insider;
pub mod mount;
pub mod netns;
pub mod process;
pub mod shell;
pub mod sim;
pub mod syncs;
pub mod sys;
pub mod tls;
pub mod tools;

pub use api::Api;
pub use cluster::Cluster;
pub use mount::Mount;
pub use process::{ChunkserverProcess, MasterProcess};

/// A client of the master at `url` that logs in as its first admin (when
/// this process started that master).
pub fn client(url: &str) -> dfs_client::Client {
    client_with(url, dfs_client::DataConfig::default())
}

/// [`client`] with tuning.
pub fn client_with(url: &str, config: dfs_client::DataConfig) -> dfs_client::Client {
    // Every test process trusts the tests' CA from its first client on.
    tls::ca_dir();
    dfs_client::Client::with_login(url, config, login(url))
}

/// The login of the first admin of the master at `url`, if known.
pub fn login(url: &str) -> std::sync::Arc<dfs_client::auth::Login> {
    let credentials = process::credentials_of(url).and_then(|p| dfs_client::auth::Credentials::load(&p).ok());
    dfs_client::auth::Login::new(credentials)
}

/// A seed for randomised tests: `DFS_TEST_SEED` when set (to replay a
/// failure), else a fresh one. Always printed, so a failing run can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("DFS_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("test seed: {seed} (replay with DFS_TEST_SEED={seed})");
    seed
}

/// The median of some measurements (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A benchmark's source file: `size_mib` MiB of seeded random bytes in a
/// temporary directory in /dev/shm (memory: the local disk is not what is
/// measured), with the bytes, to compare what comes back.
pub fn bench_source(size_mib: u64) -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf, Vec<u8>)> {
    use rand::{RngCore, SeedableRng};
    let shm = std::path::PathBuf::from("/dev/shm");
    let local = tempfile::tempdir_in(if shm.is_dir() { shm } else { std::env::temp_dir() })?;
    let src = local.path().join("src");
    let mut data = vec![0u8; (size_mib << 20) as usize];
    rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut data);
    std::fs::write(&src, &data)?;
    Ok((local, src, data))
}

/// Writes dirty pages back and drops the page cache, so a benchmark reads
/// from disk; false when not permitted (not root).
pub fn drop_caches() -> bool {
    sys::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}
