//! A whole cluster over TLS (master and three chunkservers with their own
//! certificates from one cluster CA): the shell puts and gets, a mount
//! writes and reads, and the data goes to chunkservers over TLS too. A
//! plaintext client is refused with a reason, on the master's port and a
//! chunkserver's; a client trusting another CA is refused at once;
//! certificates made by `dfs admin certs` work; a master's certificate is
//! replaced under it and taken up without a restart. The dashboard over
//! TLS is in browser.rs (it needs Chromium).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use dfs_tests::mount::Mount;
use dfs_tests::shell::{self, Run};
use dfs_tests::{tls, Cluster};

/// A master and `n` chunkservers, each with its own certificate.
fn tls_cluster(n: usize) -> Cluster {
    let master = tls::node_args("master");
    let master: Vec<&str> = master.iter().map(String::as_str).collect();
    Cluster::start_custom(n, &master, |i, dir| (dir.join(format!("cs{i}")), tls::node_args(&format!("cs{i}")))).expect("a TLS cluster starts")
}

/// `dfs ARGS` against `master`, trusting `ca`.
async fn dfs_trusting(master: &str, ca: &Path, args: &[&str]) -> Run {
    let mut cmd = shell::tokio_command(master).expect("dfs");
    cmd.arg("--tls-ca").arg(ca).args(args).kill_on_drop(true).stdin(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("dfs in time").expect("dfs runs");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_over_tls_end_to_end() {
    let c = tls_cluster(3);
    let m = c.master.url.clone();
    assert!(m.starts_with("https://") && c.chunkservers.iter().all(|cs| cs.url.starts_with("https://")), "{m}");
    c.wait_live(3, Duration::from_secs(10)).await.expect("3 live chunkservers over TLS");
    let ca = tls::ca_file();
    let dir = c.dir.path();

    // The shell: put and get through the master and the chunkservers.
    let data = bytes(5 << 20, 7);
    std::fs::write(dir.join("in"), &data).unwrap();
    let put = dfs_trusting(&m, &ca, &["put", &dir.join("in").display().to_string(), "/big"]).await;
    assert_eq!(put.code, 0, "{put:?}");
    let get = dfs_trusting(&m, &ca, &["get", "/big", &dir.join("out").display().to_string()]).await;
    assert_eq!(get.code, 0, "{get:?}");
    assert!(std::fs::read(dir.join("out")).unwrap() == data, "the file read back over TLS differs");

    // The mount: write a file through it, read both back.
    let ca_arg = format!("--tls-ca={}", ca.display());
    let mut mount = Mount::start(&m, &[&ca_arg]).expect("a mount over TLS");
    let small: Vec<u8> = (0..300_000).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(mount.path().join("from-mount"), &small).expect("write through the mount");
    assert!(std::fs::read(mount.path().join("from-mount")).unwrap() == small);
    assert!(std::fs::read(mount.path().join("big")).unwrap() == data, "the shell's file read through the mount");
    let cat = dfs_trusting(&m, &ca, &["cat", "/from-mount"]).await;
    assert!(cat.code == 0 && cat.stdout.as_bytes() == small, "{}", cat.stderr);
    mount.terminate().expect("unmount");

    // Plaintext is refused, with the reason, on every listener.
    for url in [&m, &c.chunkservers[0].url] {
        let plain = url.replacen("https://", "http://", 1);
        let answer = reqwest::get(format!("{plain}/v1/cluster")).await.expect("an answer in plaintext");
        assert_eq!(answer.status(), 400);
        assert!(answer.text().await.unwrap().contains("TLS only"));
    }
    let plain = dfs_trusting(&m.replacen("https://", "http://", 1), &ca, &["ls", "/"]).await;
    assert!(plain.code != 0 && plain.stderr.contains("TLS only"), "{plain:?}");

    // A client trusting another CA (made by `dfs admin certs`) is refused
    // at once, saying why; so is one with no CA at all.
    let other = dir.join("other-ca");
    let made = shell::dfs(&m, &["admin", "certs", "ca", &other.display().to_string()]).await.unwrap();
    assert_eq!(made.code, 0, "{made:?}");
    let started = std::time::Instant::now();
    let refused = dfs_trusting(&m, &other.join("ca.pem"), &["ls", "/"]).await;
    assert!(refused.code != 0 && refused.stderr.contains("invalid peer certificate"), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "refused after {:?}: not retried as if unreachable", started.elapsed());
    let mut bare = shell::tokio_command(&m).unwrap();
    bare.env("HOME", dir).env_remove("DFS_TLS_CA").args(["ls", "/"]).stdin(Stdio::null());
    let bare = bare.output().await.unwrap();
    assert!(!bare.status.success() && String::from_utf8_lossy(&bare.stderr).contains("certificate"), "{bare:?}");
    // Nothing the refused clients did changed anything.
    let ls = dfs_trusting(&m, &ca, &["ls", "/"]).await;
    assert_eq!(ls.stdout.lines().filter(|l| l.contains('/')).count(), 2, "{ls:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_made_by_the_shell_serve_and_are_replaced_without_a_restart() {
    // A cluster CA and master certificate made with `dfs admin certs`.
    let dir = tempfile::tempdir().unwrap();
    let (ca1, ca2) = (dir.path().join("ca1"), dir.path().join("ca2"));
    for (ca, args) in [(&ca1, vec!["ca"]), (&ca2, vec!["ca"])] {
        let ca = ca.display().to_string();
        let made = shell::dfs("http://127.0.0.1:1", &[&["admin", "certs"], &args[..], &[&ca]].concat()).await.unwrap();
        assert_eq!(made.code, 0, "{made:?}");
    }
    for ca in [&ca1, &ca2] {
        let ca = ca.display().to_string();
        let made = shell::dfs("http://127.0.0.1:1", &["admin", "certs", "node", &ca, "master", "--hosts", "127.0.0.1,localhost"]).await.unwrap();
        assert_eq!(made.code, 0, "{made:?}");
    }
    // The master serves ca1's certificate from files of its own.
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    for f in ["master.pem", "master.key"] {
        std::fs::copy(ca1.join(f), served.join(f)).unwrap();
    }
    let (cert, key, trust) = (served.join("master.pem"), served.join("master.key"), ca1.join("ca.pem"));
    let args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--tls-ca", trust.to_str().unwrap()];
    let master = dfs_tests::MasterProcess::start(&dir.path().join("m"), &args).expect("master with certificates from dfs admin certs");
    let m = master.url.clone();
    assert_eq!(dfs_trusting(&m, &ca1.join("ca.pem"), &["mkdir", "/one"]).await.code, 0);
    assert_ne!(dfs_trusting(&m, &ca2.join("ca.pem"), &["ls", "/"]).await.code, 0, "ca2 does not vouch for it yet");

    // ca2's certificate and key take their place (each file replaced at
    // once, as a deployment tool would): after a SIGHUP the master serves
    // it, without a restart, and clients trusting ca2 get in.
    let tmp = served.join("new");
    for f in ["master.pem", "master.key"] {
        std::fs::copy(ca2.join(f), &tmp).unwrap();
        std::fs::rename(&tmp, served.join(f)).unwrap();
    }
    master.sighup();
    let ca2_file = ca2.join("ca.pem");
    dfs_tests::faults::wait_for("the replaced certificate served", Duration::from_secs(10), || async {
        let r = dfs_trusting(&m, &ca2_file, &["ls", "/"]).await;
        if r.code == 0 {
            Ok(())
        } else {
            Err(r.stderr)
        }
    })
    .await;
    assert_ne!(dfs_trusting(&m, &ca1.join("ca.pem"), &["ls", "/"]).await.code, 0, "the old certificate is no longer served");
    assert!(dfs_trusting(&m, &ca2.join("ca.pem"), &["ls", "/"]).await.stdout.contains("/one"), "the same master, state and all");
}
