//! The client's TLS: which CA it trusts for `https://` masters and
//! chunkservers. Like the credentials, the CA file is `--tls-ca FILE`,
//! else `DFS_TLS_CA`, else `~/.config/dfs/ca.pem` when it exists; without
//! one, `https://` URLs cannot be verified and fail (dfs never falls back
//! to the web's roots: a cluster's certificates come from its own CA).
//!
//! One trust per process, set by [`init`] before the first client is made
//! (the shell and the mount do, from their flags) or else from the
//! environment at the first use. The file is re-read when it changes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dfs_proto::tls::{TlsError, TrustedCa};

static TRUST: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();

/// The default CA file, if one is named or exists.
pub fn default_ca_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DFS_TLS_CA").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = PathBuf::from(std::env::var_os("HOME")?).join(".config/dfs/ca.pem");
    path.exists().then_some(path)
}

fn load(path: Option<&Path>) -> Result<Option<rustls::ClientConfig>, TlsError> {
    match path.map(PathBuf::from).or_else(default_ca_path) {
        Some(p) => Ok(Some(TrustedCa::open(&p)?.client_config())),
        None => Ok(None),
    }
}

/// Sets this process's trust from `path` or the defaults; an unusable
/// file is an error, and so is a call after the trust was fixed (by an
/// earlier call, or by a client made before): a CA named too late would
/// silently not be the one in use.
pub fn init(path: Option<&Path>) -> Result<(), TlsError> {
    let config = load(path)?;
    TRUST.set(config).map_err(|_| TlsError::Bad {
        path: path.map(PathBuf::from).or_else(default_ca_path).unwrap_or_default(),
        why: "the process's TLS trust was already fixed (dfs_client::tls::init must come before the first client)".into(),
    })
}

/// The trust in use: [`init`]'s, or the defaults' at the first use (an
/// unusable default file is logged and left out).
fn trust() -> Option<&'static rustls::ClientConfig> {
    TRUST
        .get_or_init(|| {
            load(None).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the default TLS CA cannot be used; https:// URLs will fail");
                None
            })
        })
        .as_ref()
}

/// A builder of async HTTP clients that trust the cluster CA.
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match trust() {
        Some(config) => builder.use_preconfigured_tls(config.clone()),
        // No CA: nothing to trust. An empty root store makes every
        // https:// URL fail, where reqwest alone would fail with a less
        // clear "no roots" setup error.
        None => builder.tls_built_in_root_certs(false),
    }
}

/// A builder of blocking HTTP agents that trust the cluster CA.
pub fn ureq_builder() -> ureq::AgentBuilder {
    let builder = ureq::AgentBuilder::new();
    match trust() {
        Some(config) => builder.tls_config(std::sync::Arc::new(config.clone())),
        None => builder.tls_config(std::sync::Arc::new(no_trust())),
    }
}

/// A client configuration that trusts nothing (no CA configured).
fn no_trust() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(dfs_proto::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}
