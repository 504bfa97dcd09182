//! The master's retry cache on real processes: a mutation sent again with
//! the same call id (`x-dfs-call`, signed) gets its first answer, applied
//! once, also after the master restarts (the answer is durable with the
//! mutation); and the client library, whose create's answer is lost (a
//! proxy drops it), sends it again after its timeout and succeeds, where
//! without the cache the retry would fail with EEXIST.

use std::time::Duration;

use dfs_tests::faults;
use dfs_tests::{Api, Cluster, MasterProcess};
use serde_json::json;

#[tokio::test]
async fn a_call_sent_again_gets_its_first_answer_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = MasterProcess::start(dir.path(), &[]).unwrap();
    let api = Api::new(&master.url);
    let create = json!({"path": "/f"});
    let first = api.post_with("/v1/create", &create, &[("x-dfs-call", "call-1")]).await.unwrap();
    assert!(first.ok(), "{first:?}");
    let again = api.post_with("/v1/create", &create, &[("x-dfs-call", "call-1")]).await.unwrap();
    assert!(again.ok(), "the retry is answered, not refused: {again:?}");
    assert_eq!(again.body["attr"]["inode"], first.body["attr"]["inode"]);
    // Another call is another create.
    let other = api.post_with("/v1/create", &create, &[("x-dfs-call", "call-2")]).await.unwrap();
    assert_eq!(other.kind(), "EEXIST", "{other:?}");
    // A rename retried after it happened is not refused with ENOENT.
    let rename = json!({"src": {"path": "/f"}, "dst": {"path": "/g"}});
    assert!(api.post_with("/v1/rename", &rename, &[("x-dfs-call", "ren")]).await.unwrap().ok());
    assert!(api.post_with("/v1/rename", &rename, &[("x-dfs-call", "ren")]).await.unwrap().ok());

    // The answers are durable with their mutations.
    master.restart().unwrap();
    let api = Api::new(&master.url);
    let after = api.post_with("/v1/create", &create, &[("x-dfs-call", "call-1")]).await.unwrap();
    assert!(after.ok(), "answered after a restart: {after:?}");
    assert_eq!(after.body["attr"]["inode"], first.body["attr"]["inode"]);
    assert!(api.post_with("/v1/rename", &rename, &[("x-dfs-call", "ren")]).await.unwrap().ok());
    let fs = api.get("/v1/fs").await.unwrap();
    assert_eq!(fs.body["files"], 1, "one file made, whatever the retries: {fs:?}");

    // A malformed call id is refused before anything is applied.
    for bad in ["has space", "", &"x".repeat(65), "semi;colon"] {
        let r = api.post_with("/v1/create", &json!({"path": "/bad"}), &[("x-dfs-call", bad)]).await.unwrap();
        assert_eq!((r.status, r.kind()), (400, "EINVAL"), "{bad:?}: {r:?}");
    }
    assert_eq!(api.get("/v1/stat?path=/bad").await.unwrap().kind(), "ENOENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_sent_again_and_succeeds_once() {
    let c = Cluster::start(1).unwrap();
    c.wait_live(1, Duration::from_secs(10)).await.unwrap();
    faults::client(&c.master.url).mkdir("/d", true, None).await.unwrap();
    let proxy = answer_losing_proxy(c.master.url.trim_start_matches("http://").to_string()).await;
    // Times out after 4 s, then sends again (with the same call id).
    let config = dfs_client::DataConfig { request_timeout: Duration::from_secs(4), master_wait: Duration::from_secs(30), ..Default::default() };
    let client = dfs_client::Client::with_login(&proxy, config, dfs_tests::login(&c.master.url));
    client.create("/d/f", &Default::default()).await.expect("the create, whose first answer was lost, succeeds");
    let list: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(client.list("/d")).await.unwrap();
    assert_eq!(list.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["f"], "made once");
}

/// A proxy to `master` that passes everything, except that the master's
/// answers on the connection of the first create are never passed on:
/// the create is applied, its client waits in vain.
async fn answer_losing_proxy(master: String) -> String {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let lost_one = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (master, lost_one) = (tokio::net::TcpStream::connect(&master).await.unwrap(), lost_one.clone());
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_master, mut to_master) = master.into_split();
            let swallow = Arc::new(AtomicBool::new(false));
            let s = swallow.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                    if buf[..n].windows(15).any(|w| w == b"POST /v1/create") && !lost_one.swap(true, Ordering::SeqCst) {
                        s.store(true, Ordering::SeqCst);
                    }
                    if to_master.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = from_master.read(&mut buf).await {
                    if !swallow.load(Ordering::SeqCst) && to_client.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}
