//! A daemon's TLS (docs/SECURITY.md): its listener's certificate and key,
//! the cluster CA that its calls to other nodes verify against, and
//! SIGHUP, which re-reads both at once (they are also re-read within
//! seconds of a change, see `dfs_proto::tls`).
//!
//! A daemon runs with TLS when `tls_cert`, `tls_key` and `tls_ca` are all
//! set, and then speaks and accepts nothing else: its listener refuses
//! plaintext and it takes and uses only `https://` addresses of peers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use dfs_proto::tls::{Reloadable, ServerCert, TrustedCa};
use tokio_rustls::rustls;

/// The client side of this process's TLS, set once at start.
static PEERS: OnceLock<rustls::ClientConfig> = OnceLock::new();

/// Names what is wrong with a daemon's three TLS settings: all or none.
pub fn check(cert: Option<&Path>, key: Option<&Path>, ca: Option<&Path>) -> Result<(), String> {
    match (cert.is_some(), key.is_some(), ca.is_some()) {
        (true, true, true) | (false, false, false) => Ok(()),
        _ => Err("tls_cert, tls_key and tls_ca go together: set all three for TLS, or none".into()),
    }
}

/// A daemon's TLS, once its files are read.
pub struct DaemonTls {
    pub server: Arc<rustls::ServerConfig>,
    _sighup: tokio::task::JoinHandle<()>,
}

/// Reads the TLS files (`None` when TLS is off), makes this process's
/// calls to peers verify against the CA, and re-reads both on SIGHUP.
pub fn setup(cert: Option<&PathBuf>, key: Option<&PathBuf>, ca: Option<&PathBuf>) -> anyhow::Result<Option<DaemonTls>> {
    let (Some(cert), Some(key), Some(ca)) = (cert, key, ca) else {
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
                Ok(false) => tracing::info!(what, "SIGHUP: TLS {what} unchanged"),
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
        Some(config) => builder.use_preconfigured_tls(config.clone()),
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
    use std::path::Path;

    #[test]
    fn the_three_settings_go_together() {
        let p = Some(Path::new("x"));
        assert!(super::check(None, None, None).is_ok());
        assert!(super::check(p, p, p).is_ok());
        assert!(super::check(p, p, None).is_err());
        assert!(super::check(None, None, p).is_err());
        assert!(super::check(p, None, p).is_err());
    }
}
