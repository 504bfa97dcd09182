//! TLS for every dfs connection (docs/SECURITY.md): a listener's
//! certificate and key, the cluster CA that clients and peers verify
//! servers against, both re-read when their files change so certificates
//! rotate without a restart.
//!
//! Trust is the cluster CA's alone: no system or web roots, so a
//! certificate from any other authority is refused. Files are checked at
//! most every [`RELOAD_CHECK`] (three stats), on the next handshake after
//! that time; a daemon's SIGHUP asks for the check at once
//! ([`Reloadable::reload_now`]). A file that cannot be used (half written,
//! a key that does not match) keeps the old material and is logged once
//! per change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::auth::keys::stamp;

pub mod certs;

/// Least time between two looks at the files.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// A TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {why}", path.display())]
    Bad { path: PathBuf, why: String },
}

/// ring's suites, AES-128-GCM first (rustls puts AES-256 first). Data is
/// what dfs encrypts, several times per byte on a write (each hop of the
/// replica chain decrypts and encrypts again): AES-128 is as safe for it,
/// with 10 rounds against 14.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        TLS13_AES_128_GCM_SHA256 => 0,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
        _ => 2,
    });
    Arc::new(provider)
}

type Stamp = Vec<(i128, u64, u64)>;

struct Seen {
    stamp: Stamp,
    checked: Instant,
    error: Option<String>,
}

fn stamps(paths: &[&Path]) -> Result<Stamp, TlsError> {
    paths.iter().map(|p| stamp(p).map_err(|source| TlsError::Io { path: p.to_path_buf(), source })).collect()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::Bad { path: path.to_path_buf(), why };
    let text = std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })?;
    let certs = CertificateDer::pem_slice_iter(&text).collect::<Result<Vec<_>, _>>().map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(certs)
}

/// A listener's certificate chain and key, from two PEM files.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert)?;
    let text = std::fs::read(key).map_err(|source| TlsError::Io { path: key.to_path_buf(), source })?;
    let der = PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::Bad { path: key.to_path_buf(), why: format!("not a PEM private key: {e}") })?;
    CertifiedKey::from_der(chain, der, &provider())
        .map_err(|e| TlsError::Bad { path: key.to_path_buf(), why: format!("does not go with {}: {e}", cert.display()) })
}

/// The cluster CA's certificates as a verifier of servers.
fn load_verifier(ca: &Path) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let bad = |why: String| TlsError::Bad { path: ca.to_path_buf(), why };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert).map_err(|e| bad(format!("not a CA certificate: {e}")))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build().map_err(|e| bad(e.to_string()))
}

/// Material loaded from files, re-read when they change.
struct Watched<T> {
    paths: Vec<PathBuf>,
    current: RwLock<Arc<T>>,
    /// The files' stamps when last read (used or not), when checked, and
    /// the last error reported (each is logged once).
    seen: Mutex<Seen>,
    load: fn(&[PathBuf]) -> Result<Arc<T>, TlsError>,
}

impl<T> Watched<T> {
    fn open(paths: Vec<PathBuf>, load: fn(&[PathBuf]) -> Result<Arc<T>, TlsError>) -> Result<Self, TlsError> {
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let seen = stamps(&refs)?;
        let current = RwLock::new(load(&paths)?);
        Ok(Watched { paths, current, seen: Mutex::new(Seen { stamp: seen, checked: Instant::now(), error: None }), load })
    }

    fn current(&self) -> Arc<T> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the files if [`RELOAD_CHECK`] has passed and they changed
    /// since the last read, or at once and changed or not when `force`
    /// (SIGHUP: a fix that leaves the stamps alone, a chmod, is taken up).
    /// `Ok(true)` when new material is in use.
    fn refresh(&self, force: bool) -> Result<bool, TlsError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh_locked(&mut seen, force)
    }

    fn refresh_locked(&self, seen: &mut Seen, force: bool) -> Result<bool, TlsError> {
        if !force && seen.checked.elapsed() < RELOAD_CHECK {
            return Ok(false);
        }
        seen.checked = Instant::now();
        let refs: Vec<&Path> = self.paths.iter().map(PathBuf::as_path).collect();
        let now = stamps(&refs)?;
        if now == seen.stamp && !force {
            return Ok(false);
        }
        // A file that cannot be read is looked at again at the next check;
        // one that was read but cannot be used waits for the next change.
        let fresh = (self.load)(&self.paths).inspect_err(|e| {
            if !matches!(e, TlsError::Io { .. }) {
                seen.stamp = now.clone();
            }
        })?;
        seen.stamp = now;
        seen.error = None;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(true)
    }

    /// [`Watched::refresh`] on a handshake's path: never waits for another
    /// thread's look at the files (a slow filesystem must not stall every
    /// handshake), and logs each distinct outcome once.
    fn refresh_logged(&self) {
        let Ok(mut seen) = self.seen.try_lock() else {
            return;
        };
        match self.refresh_locked(&mut seen, false) {
            Ok(true) => tracing::info!(files = %self.describe(), "TLS files changed; reloaded"),
            Ok(false) => {}
            Err(e) => {
                let text = e.to_string();
                if seen.error.as_deref() != Some(text.as_str()) {
                    tracing::error!(error = %text, "TLS files changed but cannot be used; keeping the old ones");
                    seen.error = Some(text);
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// Something whose files a daemon may ask to re-read (SIGHUP).
pub trait Reloadable: Send + Sync {
    /// Looks at the files now; `Ok(true)` if new material is in use.
    fn reload_now(&self) -> Result<bool, TlsError>;
}

/// A listener's certificate and key, re-read when either file changes.
pub struct ServerCert {
    watched: Watched<CertifiedKey>,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerCert({})", self.watched.describe())
    }
}

impl ServerCert {
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let load = |p: &[PathBuf]| load_certified_key(&p[0], &p[1]).map(Arc::new);
        Ok(Arc::new(ServerCert { watched: Watched::open(vec![cert.to_path_buf(), key.to_path_buf()], load)? }))
    }

    /// The server configuration of a listener using this certificate
    /// (HTTP/1.1, no client certificates: callers prove who they are with
    /// signatures, docs/SECURITY.md).
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let builder =
            rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().expect("ring supports the default TLS versions");
        let mut config = builder.with_no_client_auth().with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.watched.refresh_logged();
        Some(self.watched.current())
    }
}

impl Reloadable for ServerCert {
    fn reload_now(&self) -> Result<bool, TlsError> {
        self.watched.refresh(true)
    }
}

/// The cluster CA a client or peer trusts, re-read when its file changes.
pub struct TrustedCa {
    watched: Watched<WebPkiServerVerifier>,
    schemes: Vec<SignatureScheme>,
}

impl std::fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedCa({})", self.watched.describe())
    }
}

impl TrustedCa {
    pub fn open(ca: &Path) -> Result<Arc<Self>, TlsError> {
        let load = |p: &[PathBuf]| load_verifier(&p[0]);
        let watched = Watched::open(vec![ca.to_path_buf()], load)?;
        let schemes = watched.current().supported_verify_schemes();
        Ok(Arc::new(TrustedCa { watched, schemes }))
    }

    /// A client configuration that trusts this CA only (reqwest's
    /// `use_preconfigured_tls`, ureq's `tls_config`).
    pub fn client_config(self: &Arc<Self>) -> rustls::ClientConfig {
        let builder =
            rustls::ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().expect("ring supports the default TLS versions");
        builder.dangerous().with_custom_certificate_verifier(self.clone()).with_no_client_auth()
    }
}

impl ServerCertVerifier for TrustedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.watched.refresh_logged();
        self.watched.current().verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.watched.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.watched.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

impl Reloadable for TrustedCa {
    fn reload_now(&self) -> Result<bool, TlsError> {
        self.watched.refresh(true)
    }
}

/// Whether `url` may be used by a node or client whose TLS setting is
/// `tls`: with TLS on, only `https://`; without, only `http://`.
pub fn scheme_fits(url: &str, tls: bool) -> bool {
    url.starts_with(if tls { "https://" } else { "http://" })
}

/// The scheme a listener with or without TLS serves.
pub fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

#[cfg(test)]
mod tests;
