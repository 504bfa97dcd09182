//! A daemon's TLS (docs/SECURITY.md): its listener's certificate and key,
//! the cluster CA that its calls to other nodes verify against, and
//! SIGHUP, which re-reads both at once (they are also re-read within
//! seconds of a change, see `dfs_proto::tls`).
//!
//! A daemon runs with TLS when `tls_cert`, `tls_key` and `tls_ca` are all
//! set, and then speaks and accepts nothing else: its listener refuses
//! plaintext and it takes and uses only `https://` addresses of peers.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use dfs_proto::tls::{Reloadable, ServerCert, TrustedCa};
use serde::{Deserialize, Serialize};
use tokio_rustls::rustls;

/// The client side of this process's TLS, set once at start.
static PEERS: OnceLock<rustls::ClientConfig> = OnceLock::new();

/// A daemon's TLS settings (flattened into its config: `tls_cert`,
/// `tls_key`, `tls_ca`, as flags, `DFS_*` variables and file keys).
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, Default)]
pub struct TlsFlags {
    /// This node's TLS certificate (PEM, the chain from the node up; see
    /// `dfs admin certs`). With tls_key and tls_ca, the listener speaks TLS
    /// only and every call to other nodes verifies them against tls_ca.
    /// Re-read when it changes or on SIGHUP.
    #[arg(long, env = "DFS_TLS_CERT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of tls_cert (PEM, mode 0600).
    #[arg(long, env = "DFS_TLS_KEY")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,

    /// The cluster CA's certificate (PEM): the only authority this node
    /// trusts for the certificates of other nodes.
    #[arg(long, env = "DFS_TLS_CA")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
}

impl TlsFlags {
    /// Names what is wrong with the three settings: all or none.
    pub fn check(&self) -> Result<(), String> {
        match (self.tls_cert.is_some(), self.tls_key.is_some(), self.tls_ca.is_some()) {
            (true, true, true) | (false, false, false) => Ok(()),
            _ => Err("tls_cert, tls_key and tls_ca go together: set all three for TLS, or none".into()),
        }
    }

    /// Whether these settings turn TLS on.
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Reads the TLS files (`None` when TLS is off), makes this process's
    /// calls to peers verify against the CA, and re-reads both on SIGHUP.
    pub fn setup(&self) -> anyhow::Result<Option<DaemonTls>> {
        let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca) else {
            return Ok(None);
        };
        let served = ServerCert::open(cert, key).context("the TLS certificate")?;
        let trusted = TrustedCa::open(ca).context("the TLS CA")?;
        if PEERS.set(trusted.client_config()).is_err() {
            anyhow::bail!("TLS was set up twice in one process");
        }
        let reloadable: Vec<(&'static str, Arc<dyn Reloadable>)> = vec![("certificate", served.clone()), ("CA", trusted)];
        Ok(Some(DaemonTls { server: served.server_config(), _sighup: tokio::spawn(reload_on_sighup(reloadable)) }))
    }
}

/// A daemon's TLS, once its files are read.
pub struct DaemonTls {
    pub server: Arc<rustls::ServerConfig>,
    _sighup: tokio::task::JoinHandle<()>,
}

async fn reload_on_sighup(files: Vec<(&'static str, Arc<dyn Reloadable>)>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: TLS files are re-read when they change only");
        return;
    };
    while hup.recv().await.is_some() {
        for (what, f) in &files {
            match f.reload_now() {
                Ok(true) => tracing::info!(what, "SIGHUP: TLS {what} reloaded"),
                Ok(false) => {}
                Err(e) => tracing::error!(what, error = %e, "SIGHUP: TLS {what} cannot be used; keeping the old one"),
            }
        }
    }
}

/// Whether this process runs with TLS.
pub fn enabled() -> bool {
    PEERS.get().is_some()
}

/// A builder of HTTP clients for calls to other nodes: with TLS on, they
/// trust the cluster CA alone.
pub fn peer_client() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match PEERS.get() {
        // No redirect or URL can lead a TLS node's call to plaintext.
        Some(config) => builder.use_preconfigured_tls(config.clone()).https_only(true),
        None => builder,
    }
}

/// Whether a peer's `url` has the scheme this process speaks.
pub fn fits(url: &str) -> bool {
    dfs_proto::tls::scheme_fits(url, enabled())
}

/// The scheme this process's listener serves.
pub fn scheme() -> &'static str {
    dfs_proto::tls::scheme(enabled())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::TlsFlags;

    #[test]
    fn the_three_settings_go_together() {
        let p = || Some(PathBuf::from("x"));
        let flags = |tls_cert, tls_key, tls_ca| TlsFlags { tls_cert, tls_key, tls_ca };
        assert!(flags(None, None, None).check().is_ok());
        assert!(flags(p(), p(), p()).check().is_ok());
        assert!(flags(p(), p(), None).check().is_err());
        assert!(flags(None, None, p()).check().is_err());
        assert!(flags(p(), None, p()).check().is_err());
    }
}
