//! Making a cluster's certificates (`dfs admin certs`): a CA of its own
//! and, signed by it, one certificate per node naming the hosts and
//! addresses clients reach it by. Private keys are written as secrets
//! (mode 0600, synced with their directory) and never replaced; a
//! certificate file may be (that is how a node's certificate is renewed,
//! and listeners pick the new one up without a restart).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber};

use super::TlsError;
use crate::auth::secret_file;

/// How long a CA is valid: ten years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The files of a CA in `dir`: (certificate, key).
pub fn ca_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("ca.key"))
}

/// The files of node `name` in `dir`: (certificate, key).
pub fn node_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")))
}

fn bad(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::Bad { path: path.to_path_buf(), why: why.to_string() }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

/// From an hour ago (clocks of a cluster's machines differ a little) for
/// `days`, and a random serial: a renewal keeps the key, and an issuer
/// must never give two certificates one serial (RFC 5280; browsers refuse it).
fn validity(params: &mut CertificateParams, days: u32) {
    let now = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(crate::auth::unix_ms() / 1000);
    params.not_before = now - Duration::from_secs(3600);
    params.not_after = now + Duration::from_secs(u64::from(days) * 24 * 3600);
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f; // a positive integer
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

/// Makes a new CA in `dir` (ca.pem, ca.key); refuses to replace one.
pub fn create_ca(dir: &Path, cluster: &str) -> Result<PathBuf, TlsError> {
    let (cert_path, key_path) = ca_files(dir);
    if cert_path.exists() || key_path.exists() {
        return Err(bad(&cert_path, "a CA is already there (remove ca.pem and ca.key to make another)"));
    }
    let key = KeyPair::generate().map_err(|e| bad(&key_path, e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| bad(&cert_path, e))?;
    // A random part: two clusters' CAs never share a name, so a
    // certificate of one is refused by the other as of an unknown issuer.
    let id = crate::auth::keys::hex(&rand::random::<[u8; 4]>());
    params.distinguished_name.push(DnType::CommonName, format!("dfs cluster CA {cluster} {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, (CA_VALIDITY.as_secs() / 86400) as u32);
    let cert = params.self_signed(&key).map_err(|e| bad(&cert_path, e))?;
    secret_file::create(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
    write_public(&cert_path, &cert.pem())?;
    Ok(cert_path)
}

/// Makes (or renews) node `name`'s certificate in `dir`, valid `days`,
/// for `hosts` (DNS names and IP addresses), signed by the CA in `dir`.
/// Its key is made once and kept: a renewal reuses it.
pub fn issue(dir: &Path, name: &str, hosts: &[String], days: u32) -> Result<(PathBuf, PathBuf), TlsError> {
    crate::auth::user::check_name(name).map_err(|e| bad(dir, format!("node name {name:?}: {e}")))?;
    if name == "ca" {
        return Err(bad(dir, "\"ca\" names the CA's own files: give the node another name"));
    }
    if hosts.is_empty() {
        return Err(bad(dir, "name at least one host or address the node is reached by"));
    }
    if days == 0 || days > 3650 {
        return Err(bad(dir, format!("days must be 1 to 3650, not {days}")));
    }
    let (ca_cert, ca_key) = ca_files(dir);
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&ca_key).map_err(io(&ca_key))?).map_err(|e| bad(&ca_key, e))?;
    let ca_params = CertificateParams::from_ca_cert_pem(&std::fs::read_to_string(&ca_cert).map_err(io(&ca_cert))?).map_err(|e| bad(&ca_cert, e))?;
    // Signing needs the CA as an rcgen certificate: the same name and key
    // as the file's, which is all an issuer is to a verifier.
    if !matches!(ca_params.is_ca, IsCa::Ca(_)) {
        return Err(bad(&ca_cert, "is not a CA certificate"));
    }
    let ca_until = ca_params.not_after;
    let ca = ca_params.self_signed(&ca_key).map_err(|e| bad(&ca_cert, e))?;
    check_ca_key(&ca_cert, &ca_key)?;

    let (cert_path, key_path) = node_files(dir, name);
    let sans = hosts.iter().map(|h| san(h)).collect::<Result<_, _>>().map_err(|e| bad(&cert_path, e))?;
    let key = node_key(&key_path)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| bad(&cert_path, e))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    // Never valid past its issuer.
    params.not_after = params.not_after.min(ca_until);
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(|e| bad(&cert_path, e))?;
    write_public(&cert_path, &cert.pem())?;
    Ok((cert_path, key_path))
}

/// Refuses a `ca.key` that is not the key of `ca.pem` (its public key
/// must be the certificate's): certificates it signed would verify
/// against nothing.
fn check_ca_key(ca_cert: &Path, ca_key: &KeyPair) -> Result<(), TlsError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_file(ca_cert).map_err(|e| bad(ca_cert, e))?;
    let spki = ca_key.public_key_der();
    // The DER of the certificate holds its SubjectPublicKeyInfo verbatim.
    match der.windows(spki.len()).any(|w| w == spki.as_slice()) {
        true => Ok(()),
        false => Err(bad(ca_cert, "ca.key is not the key of ca.pem")),
    }
}

/// The node's key: the one in `path`, or a new one written there.
fn node_key(path: &Path) -> Result<KeyPair, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => KeyPair::from_pem(&pem).map_err(|e| bad(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate().map_err(|e| bad(path, e))?;
            secret_file::create(path, key.serialize_pem().as_bytes()).map_err(io(path))?;
            Ok(key)
        }
        Err(e) => Err(io(path)(e)),
    }
}

fn san(host: &str) -> Result<SanType, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !ok {
        return Err(format!("{host:?} is neither an IP address nor a DNS name"));
    }
    host.to_string().try_into().map(SanType::DnsName).map_err(|e| format!("{host:?}: {e}"))
}

/// Writes a certificate (public) by replacing the file atomically: a
/// listener re-reading it never sees half of one.
fn write_public(path: &Path, pem: &str) -> Result<(), TlsError> {
    let tmp = path.with_extension("pem.new");
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(pem.as_bytes()).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    secret_file::sync_parent(path).map_err(io(path))
}
