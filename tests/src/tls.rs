//! A cluster CA for the tests that run dfs over TLS: made once per test
//! process (a client process trusts one CA, `dfs_client::tls`), with a
//! certificate for 127.0.0.1 and localhost for each node name asked.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use dfs_proto::tls::certs;

/// The CA directory of this process, made at the first call, trusted by
/// this process's clients from then on: the harness's clients call it
/// before they are made (a process's trust is fixed by its first client).
/// A static is never dropped, so the directory is removed when the process
/// exits instead (else every test process left a CA key in /tmp).
pub fn ca_dir() -> &'static Path {
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("dfs-tls-").tempdir().expect("temp dir").keep();
        // SAFETY: registers a plain function with no arguments to run at exit.
        unsafe { libc::atexit(remove_ca_dir) };
        certs::create_ca(&dir, "tests").expect("a CA");
        dfs_client::tls::init(Some(&dir.join("ca.pem"))).expect("trust the CA");
        dir
    })
}

static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_ca_dir() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The CA certificate clients are given (`--tls-ca`).
pub fn ca_file() -> PathBuf {
    ca_dir().join("ca.pem")
}

/// `--tls-cert`, `--tls-key` and `--tls-ca` for node `name` (its
/// certificate made on first use).
pub fn node_args(name: &str) -> Vec<String> {
    static MADE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let dir = ca_dir();
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if !made.iter().any(|n| n == name) {
        certs::issue(dir, name, &["127.0.0.1".to_string(), "localhost".to_string()], 30).expect("a node certificate");
        made.push(name.to_string());
    }
    let (cert, key) = certs::node_files(dir, name);
    ["--tls-cert", &cert.display().to_string(), "--tls-key", &key.display().to_string(), "--tls-ca", &ca_file().display().to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
