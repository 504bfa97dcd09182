//! The dashboard in a real browser: headless Chromium (Debian's `chromium`,
//! installed by `make test` through deploy/install-deps.sh) loads the pages
//! of a running 3-chunkserver cluster, lets their scripts run (virtual
//! time), and the test reads the resulting DOM: 3 live chunkservers, a
//! file's chunk replicas, and hostile names (a file's, and a chunkserver
//! address sent in a forged heartbeat, which reaches the page through the
//! script) shown as text, never as markup. A screenshot of the overview is
//! saved and copied to `target/dashboard.png`.

mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dfs_proto::NodeId;
use dfs_tests::insider::{fake_heartbeat, master_key_file, Insider};
use web::*;

/// Longest a Chromium run may take.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("chromium is not installed: run `bash deploy/install-deps.sh` (or `make test`, which does)");
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or
/// `--screenshot=PATH`) after 5 s of virtual time; returns stdout.
fn run_chromium(profile: &Path, mode: &str, url: &str) -> String {
    run_chromium_with(profile, &[], mode, url)
}

/// [`run_chromium`] with more flags.
fn run_chromium_with(profile: &Path, flags: &[String], mode: &str, url: &str) -> String {
    let mut child = Command::new(chromium())
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1400,1000", "--virtual-time-budget=5000", mode, url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).ok();
        out
    });
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {url} within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("reader")
}

async fn dump(profile: &Path, url: String) -> String {
    let profile = profile.to_path_buf();
    tokio::task::spawn_blocking(move || run_chromium(&profile, "--dump-dom", &url)).await.expect("chromium task")
}

/// A chunkserver address shaped like markup, sent in one forged heartbeat
/// (signed: only a holder of the cluster key can register a node): it
/// reaches the overview through the script's table rebuild.
const HOSTILE_ADDRESS: &str = "http://<img src=x onerror=alert(1)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_headless_chromium() {
    // The explicit read-only public dashboard: a browser without a login.
    let (c, _client) = cluster_with_files_and(&["--dashboard", "public"]).await;
    let m = c.master.url.clone();
    let profile = c.dir.path().join("chromium-profile");
    let forged = fake_heartbeat(NodeId(uuid::Uuid::from_u128(0xbeef)), HOSTILE_ADDRESS);
    let insider = Insider::from_key_file(&master_key_file(&c.master.data_dir)).expect("the cluster key");
    let answer = insider.heartbeat(&m, &forged).await.expect("heartbeat");
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    // The overview after its scripts ran: 3 live chunkservers (the forged one dies).
    let home = wait_for("the forged node to be dead", Duration::from_secs(15), || {
        let (profile, url) = (profile.clone(), format!("{m}/"));
        async move {
            let dom = dump(&profile, url).await;
            dom.contains("3 live / 4 chunkservers").then_some(dom)
        }
    })
    .await;
    assert_eq!(home.matches(r#"<td class="live">live</td>"#).count(), 3, "{home}");
    assert_eq!(home.matches(r#"<td class="dead">dead</td>"#).count(), 1, "{home}");
    for cs in &c.chunkservers {
        assert!(home.contains(&cs.url), "{} missing from {home}", cs.url);
    }
    assert!(home.contains("&lt;img src=x onerror=alert(1)&gt;"), "the hostile address is text: {home}");
    assert!(!home.contains("<img"), "no element made from data: {home}");
    assert_eq!(home.matches("<script").count(), 1, "only the page's own script: {home}");
    assert!(home.contains("<polyline"), "charts drawn: {home}");

    // A file's page lists each chunk's replicas: node and version.
    let file = dump(&profile, format!("{m}/file?path={}", enc(FILE))).await;
    assert_eq!(file.matches(r#"<tr class="chunk">"#).count(), 4, "{file}");
    assert_eq!(file.matches(r#"<div class="replica">"#).count(), 12, "{file}");
    assert_eq!(file.matches(r#"version <span class="version">1</span>"#).count(), 12, "{file}");
    for cs in &c.chunkservers {
        assert!(file.contains(&cs.url), "{file}");
    }

    // The hostile file name renders as text in the listing and on its page.
    let text = XSS_IN_DOM;
    let listing = dump(&profile, format!("{m}/browse?path=/data")).await;
    assert!(listing.contains(text), "{listing}");
    assert!(!listing.contains("<script") && !listing.contains("<img"), "no element made from the name: {listing}");
    let page = dump(&profile, format!("{m}/file?path={}", enc(&xss_path()))).await;
    assert!(page.contains(&format!(r#"<b id="file-name">{text}</b>"#)), "{page}");
    assert!(!page.contains("<script") && !page.contains("<img"), "{page}");

    // A screenshot for people.
    let shot = c.dir.path().join("dashboard.png");
    let (p, url, s) = (profile.clone(), format!("{m}/"), shot.clone());
    tokio::task::spawn_blocking(move || run_chromium(&p, &format!("--screenshot={}", s.display()), &url)).await.expect("shot");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    let target = dfs_tests::process::bin_dir().expect("bin dir").parent().map(|t| t.join("dashboard.png"));
    if let Some(target) = target {
        std::fs::copy(&shot, &target).expect("copy screenshot");
        eprintln!("dashboard screenshot: {}", target.display());
    }
}

/// The dashboard over TLS in Chromium. Chromium has no flag to trust a CA
/// (that takes an NSS database); it is told to accept the master's key by
/// its SPKI pin (`--ignore-certificate-errors-spki-list`), the nearest a
/// test gets to a browser trusting the cluster CA. Without the pin it
/// refuses the page; with it the public overview shows the live nodes, and
/// every data fetch of its script goes over https.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_over_tls_in_headless_chromium() {
    use base64::Engine;
    use sha2::Digest;
    let mut master = dfs_tests::tls::node_args("master");
    master.extend(["--dashboard".to_string(), "public".to_string()]);
    let master: Vec<&str> = master.iter().map(String::as_str).collect();
    let c = dfs_tests::Cluster::start_custom(3, &master, |i, dir| (dir.join(format!("cs{i}")), dfs_tests::tls::node_args(&format!("cs{i}"))))
        .expect("a TLS cluster");
    c.wait_live(3, Duration::from_secs(10)).await.expect("3 live");
    let m = c.master.url.clone();
    assert!(m.starts_with("https://"), "{m}");
    let key = std::fs::read_to_string(dfs_proto::tls::certs::node_files(dfs_tests::tls::ca_dir(), "master").1).unwrap();
    let spki = rcgen::KeyPair::from_pem(&key).unwrap().public_key_der();
    let pin = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&spki));
    let profile = c.dir.path().join("chromium-profile");

    let dom = |flags: Vec<String>| {
        let (profile, url) = (profile.clone(), format!("{m}/"));
        async move { tokio::task::spawn_blocking(move || run_chromium_with(&profile, &flags, "--dump-dom", &url)).await.expect("chromium task") }
    };
    let refused = dom(vec![]).await;
    assert!(!refused.contains("live /"), "Chromium showed the dashboard of an unknown issuer: {refused}");
    let home = wait_for("3 live chunkservers over TLS", Duration::from_secs(15), || {
        let dom = dom(vec![format!("--ignore-certificate-errors-spki-list={pin}")]);
        async move {
            let home = dom.await;
            home.contains("3 live / 3 chunkservers").then_some(home)
        }
    })
    .await;
    for cs in &c.chunkservers {
        assert!(cs.url.starts_with("https://") && home.contains(&cs.url), "{} missing from {home}", cs.url);
    }
    assert!(home.contains("<polyline"), "the script fetched its data over TLS and drew: {home}");
}
