//! What the dashboard and browser tests share: a 3-chunkserver cluster with
//! a few files (one with a name shaped like an injection), plain HTTP
//! fetches, and bounded waits.

#![allow(dead_code, reason = "shared by two test binaries, each of which uses only some of it")]

use std::future::Future;
use std::time::{Duration, Instant};

use dfs_client::{Client, CreateOptions};
use dfs_tests::Cluster;

/// A file name shaped like script and markup injection, with quotes,
/// spaces and unicode (a name cannot hold '/', so there is no end tag: an
/// unescaped page would still open a script element).
pub const XSS_NAME: &str = "<script>alert(1)<img src=x onerror=alert(2)> \"q\" 'x' ü.txt";
/// Its text as the server writes it (escaped).
pub const XSS_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;img src=x onerror=alert(2)&gt; &quot;q&quot; &#39;x&#39; ü.txt";
/// Its text as a browser serialises the DOM (text nodes escape only `&<>`).
pub const XSS_IN_DOM: &str = "&lt;script&gt;alert(1)&lt;img src=x onerror=alert(2)&gt; \"q\" 'x' ü.txt";
/// A normal file of four 64 KiB chunks, three replicas each.
pub const FILE: &str = "/data/report 1.txt";
pub const CHUNK: u64 = 64 * 1024;

pub fn file_bytes() -> Vec<u8> {
    (0..4 * CHUNK as usize - 100).map(|i| (i % 251) as u8).collect()
}

pub fn xss_path() -> String {
    format!("/data/{XSS_NAME}")
}

/// A cluster of 3 live chunkservers holding [`FILE`] and the XSS-named file.
pub async fn cluster_with_files() -> (Cluster, Client) {
    cluster_with_files_and(&[]).await
}

/// [`cluster_with_files`] with more master flags.
pub async fn cluster_with_files_and(master_args: &[&str]) -> (Cluster, Client) {
    let c = Cluster::start_with(3, master_args).expect("start cluster");
    c.wait_live(3, Duration::from_secs(15)).await.expect("3 live chunkservers");
    let client = dfs_tests::client(&c.master.url);
    client.mkdir("/data", true, None).await.expect("mkdir");
    put(&client, FILE, &file_bytes()).await;
    put(&client, &xss_path(), b"not a script").await;
    (c, client)
}

pub async fn put(client: &Client, path: &str, data: &[u8]) {
    let o = CreateOptions { replication: Some(3), chunk_size_bytes: Some(CHUNK), ..Default::default() };
    let mut w = client.create(path, &o).await.expect("create");
    w.write(data).await.expect("write");
    w.close().await.expect("close");
}

/// An answer: status, content type and body text.
pub struct Page {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

/// A GET as the master's first admin, logged in to the dashboard (when
/// the URL is of a master this process started).
pub async fn fetch(url: &str) -> Page {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut req = http.get(url);
    if let Some(cookie) = admin_cookie(url).await {
        req = req.header("cookie", cookie);
    }
    page(req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))).await
}

/// A GET with no login.
pub async fn fetch_anonymous(url: &str) -> Page {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    page(http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))).await
}

#[allow(unused_imports, reason = "each test binary uses some")]
pub use dfs_tests::api::{dashboard_cookie as admin_cookie, dashboard_login};

async fn page(r: reqwest::Response) -> Page {
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Page { status, content_type, text: r.text().await.expect("body") }
}

/// A URL's query value, percent-encoded.
pub fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Waits until `check` gives Some (polling every 100 ms), at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
