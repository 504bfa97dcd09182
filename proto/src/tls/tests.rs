use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::certs::{create_ca, issue, node_files};
use super::*;

fn hosts(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| s.to_string()).collect()
}

fn cert_of(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn verify(ca: &TrustedCa, cert: &CertificateDer<'_>, name: &str) -> Result<ServerCertVerified, rustls::Error> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    ca.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
}

#[test]
fn a_node_certificate_verifies_against_its_ca_only() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca_a = create_ca(a.path(), "a").unwrap();
    let ca_b = create_ca(b.path(), "b").unwrap();
    let (cert, key) = issue(a.path(), "master", &hosts(&["127.0.0.1", "localhost"]), 30).unwrap();
    load_certified_key(&cert, &key).expect("the node's key goes with its certificate");

    let trust_a = TrustedCa::open(&ca_a).unwrap();
    verify(&trust_a, &cert_of(&cert), "127.0.0.1").expect("an address it names");
    verify(&trust_a, &cert_of(&cert), "localhost").expect("a host it names");
    assert!(verify(&trust_a, &cert_of(&cert), "10.9.9.9").is_err(), "an address it does not name");
    assert!(verify(&TrustedCa::open(&ca_b).unwrap(), &cert_of(&cert), "127.0.0.1").is_err(), "another CA's client refuses it");
}

#[test]
fn making_certificates_refuses_what_would_break_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    assert!(issue(dir.path(), "n", &hosts(&["127.0.0.1"]), 30).is_err(), "no CA yet");
    create_ca(dir.path(), "c").unwrap();
    assert!(create_ca(dir.path(), "c").is_err(), "a CA is never replaced");
    assert!(issue(dir.path(), "n", &[], 30).is_err(), "no hosts");
    assert!(issue(dir.path(), "n", &hosts(&["bad host"]), 30).is_err());
    assert!(issue(dir.path(), "n", &hosts(&["h"]), 0).is_err());
    assert!(issue(dir.path(), "../n", &hosts(&["h"]), 30).is_err(), "a name that leaves the directory");
    let ca_before = std::fs::read(dir.path().join("ca.pem")).unwrap();
    assert!(issue(dir.path(), "ca", &hosts(&["h"]), 30).is_err(), "a node named after the CA's files");
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca_before, "the CA is untouched");
    // A ca.key that is not ca.pem's key.
    let other = tempfile::tempdir().unwrap();
    create_ca(other.path(), "o").unwrap();
    std::fs::copy(other.path().join("ca.key"), dir.path().join("ca.key")).unwrap();
    assert!(issue(dir.path(), "n", &hosts(&["h"]), 30).is_err(), "a CA key of another CA");
    let key = dir.path().join("ca.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_renewed_certificate_keeps_its_key_and_is_picked_up_by_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    create_ca(dir.path(), "c").unwrap();
    let (cert, key) = issue(dir.path(), "cs", &hosts(&["127.0.0.1"]), 30).unwrap();
    let key_before = std::fs::read(&key).unwrap();
    let served = ServerCert::open(&cert, &key).unwrap();
    let first = served.watched.current().cert[0].clone();

    assert!(!served.watched.refresh(false).unwrap(), "nothing changed, and not yet time to look");
    assert!(served.reload_now().unwrap(), "a SIGHUP re-reads the files, changed or not");
    assert_eq!(served.watched.current().cert[0], first);
    issue(dir.path(), "cs", &hosts(&["127.0.0.1", "cs.example"]), 60).unwrap();
    assert_eq!(std::fs::read(&key).unwrap(), key_before, "a renewal keeps the key");
    assert!(served.reload_now().unwrap(), "the renewed certificate is read");
    let renewed = served.watched.current().cert[0].clone();
    assert_ne!(renewed, first);
    // One issuer never gives two certificates the same serial (the key,
    // from which rcgen would derive it, is the same).
    let serial = |der: &CertificateDer<'_>| rcgen::CertificateParams::from_ca_cert_der(der).unwrap().serial_number;
    assert_ne!(serial(&first), serial(&renewed));
}

#[test]
fn a_broken_new_file_keeps_the_old_material() {
    let dir = tempfile::tempdir().unwrap();
    let ca = create_ca(dir.path(), "c").unwrap();
    let (cert, key) = issue(dir.path(), "cs", &hosts(&["127.0.0.1"]), 30).unwrap();
    let served = ServerCert::open(&cert, &key).unwrap();
    let trust = TrustedCa::open(&ca).unwrap();
    let good = served.watched.current().cert[0].clone();
    let (other, _) = issue(dir.path(), "other", &hosts(&["127.0.0.1"]), 30).unwrap();

    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\nhalf").unwrap();
    assert!(served.reload_now().is_err());
    assert_eq!(served.watched.current().cert[0], good, "the old certificate is still served");
    std::fs::write(&ca, b"not pem at all").unwrap();
    assert!(trust.reload_now().is_err());
    verify(&trust, &good, "127.0.0.1").expect("the old CA still verifies");

    // Another node's certificate with this node's key: refused as a pair.
    assert!(load_certified_key(&other, &node_files(dir.path(), "cs").1).is_err());
}

#[test]
fn a_listener_and_a_client_agree_over_a_real_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = create_ca(dir.path(), "c").unwrap();
    let (cert, key) = issue(dir.path(), "m", &hosts(&["127.0.0.1"]), 30).unwrap();
    let server = ServerCert::open(&cert, &key).unwrap().server_config();
    let client = Arc::new(TrustedCa::open(&ca).unwrap().client_config());
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut c = rustls::ClientConnection::new(client, name).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    // Shuttle records between the two in memory until both are done.
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut buf.as_slice()).unwrap();
        s.process_new_packets().unwrap();
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut buf.as_slice()).unwrap();
        c.process_new_packets().unwrap();
        if !c.is_handshaking() && !s.is_handshaking() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn urls_must_fit_the_tls_setting() {
    assert!(scheme_fits("https://a:1", true));
    assert!(!scheme_fits("http://a:1", true));
    assert!(scheme_fits("http://a:1", false));
    assert!(!scheme_fits("https://a:1", false));
}

use std::os::unix::fs::PermissionsExt;
