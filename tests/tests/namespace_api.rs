//! The master's namespace API, end to end against a real `dfs-master`
//! process on a loopback port with RocksDB in a temp directory.

use dfs_tests::api::Reply;
use dfs_tests::{Api, MasterProcess};
use serde_json::{json, Value};
use std::time::Duration;

struct Cluster {
    _dir: tempfile::TempDir,
    master: MasterProcess,
    api: Api,
}

fn start(extra: &[&str]) -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let master = MasterProcess::start(&dir.path().join("master"), extra).expect("start master");
    let api = Api::new(&master.url);
    Cluster { _dir: dir, master, api }
}

impl Cluster {
    async fn post(&self, path: &str, body: Value) -> Reply {
        self.api.post(path, &body).await.expect("request")
    }
    async fn stat(&self, path: &str) -> Reply {
        self.api.get_query("/v1/stat", &[("path", path)]).await.expect("request")
    }
    async fn fs(&self) -> Value {
        self.api.get("/v1/fs").await.expect("request").body
    }
    async fn assert_consistent(&self) {
        let report = self.api.get("/v1/admin/check").await.expect("request");
        assert_eq!(report.body["ok"], json!(true), "{}", report.body);
    }
}

fn ok(r: &Reply) -> &Value {
    assert!(r.ok(), "expected success, got {} {}", r.status, r.body);
    &r.body
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_lifecycle() {
    let c = start(&[]);
    let d = ok(&c.post("/v1/mkdir", json!({"path": "/a/b/c", "parents": true, "mode": 0o700, "uid": 5})).await).clone();
    assert_eq!((d["kind"].as_str(), d["mode"].as_u64(), d["uid"].as_u64()), (Some("dir"), Some(0o700), Some(5)));
    let f = ok(&c.post("/v1/create", json!({"path": "/a/b/c/file", "replication": 2})).await).clone();
    assert_eq!(f["replication"], json!(2));
    assert_eq!(f["parent"], d["inode"]);
    // The answer carries the parent as the change left it: what stat says.
    let dirs = f["dirs"].as_array().expect("dirs").clone();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert_eq!(&dirs[0], ok(&c.stat("/a/b/c").await));
    assert_eq!(dirs[0]["mtime_ns"], f["ctime_ns"], "the parent's mtime is the change's time");
    let moved = ok(&c.post("/v1/rename", json!({"src": {"path": "/a/b/c/file"}, "dst": {"path": "/a/file2"}})).await).clone();
    let mut got: Vec<Value> = moved["dirs"].as_array().expect("dirs").clone();
    got.sort_by_key(|a| a["inode"].as_u64());
    let mut want = vec![ok(&c.stat("/a").await).clone(), ok(&c.stat("/a/b/c").await).clone()];
    want.sort_by_key(|a| a["inode"].as_u64());
    assert_eq!(got, want, "a rename answers both parents as it left them");
    ok(&c.post("/v1/rename", json!({"src": {"path": "/a/file2"}, "dst": {"path": "/a/b/c/file"}})).await);

    // stat by path, by inode, and lookup by (parent, name) agree.
    let by_path = ok(&c.stat("/a/b/c/file").await).clone();
    let by_inode = c.api.get(&format!("/v1/inodes/{}", f["inode"])).await.unwrap();
    assert_eq!(ok(&by_inode), &by_path);
    let parent = d["inode"].to_string();
    let looked = c.api.get_query("/v1/lookup", &[("parent", &parent), ("name", "file")]).await.unwrap();
    assert_eq!(ok(&looked), &by_path);

    // Listing in pages of 2 over 5 entries.
    for name in ["e1", "e2", "e3", "e4"] {
        ok(&c.post("/v1/create", json!({"parent": d["inode"], "name": name})).await);
    }
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![("path", "/a/b/c".to_string()), ("limit", "2".to_string())];
        if let Some(a) = &after {
            q.push(("start_after", a.clone()));
        }
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = c.api.get_query("/v1/list", &q).await.unwrap();
        let body = ok(&page);
        assert!(body["entries"].as_array().unwrap().len() <= 2);
        names.extend(body["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()));
        match body["next_start_after"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["e1", "e2", "e3", "e4", "file"]);

    // setattr, symlink, readlink, rename.
    let set = json!({"path": "/a/b/c/file", "mode": 0o640, "uid": 1, "gid": 2, "size": 4096, "mtime_ns": 123456789});
    let attr = ok(&c.post("/v1/setattr", set).await).clone();
    assert_eq!((attr["mode"].as_u64(), attr["size"].as_u64(), attr["mtime_ns"].as_i64()), (Some(0o640), Some(4096), Some(123456789)));
    ok(&c.post("/v1/symlink", json!({"path": "/link", "target": "/a/b/c/file"})).await);
    let link = c.api.get_query("/v1/readlink", &[("path", "/link")]).await.unwrap();
    assert_eq!(ok(&link)["target"], json!("/a/b/c/file"));
    ok(&c.post("/v1/rename", json!({"src": {"path": "/a/b/c/file"}, "dst": {"path": "/a/moved"}})).await);
    assert_eq!(c.stat("/a/moved").await.body["inode"], f["inode"]);
    assert_eq!(c.stat("/a/b/c/file").await.kind(), "ENOENT");

    let fs = c.fs().await;
    assert_eq!((fs["files"].as_u64(), fs["directories"].as_u64(), fs["symlinks"].as_u64()), (Some(5), Some(4), Some(1)));
    assert_eq!(fs["bytes"], json!(4096));

    // unlink, rmdir, and a recursive delete.
    ok(&c.post("/v1/unlink", json!({"path": "/link"})).await);
    ok(&c.post("/v1/unlink", json!({"path": "/a/moved"})).await);
    assert_eq!(c.post("/v1/rmdir", json!({"path": "/a/b/c"})).await.kind(), "ENOTEMPTY");
    ok(&c.post("/v1/delete", json!({"path": "/a", "recursive": true})).await);
    assert_eq!(c.stat("/a").await.kind(), "ENOENT");
    c.assert_consistent().await;
    // The reaper frees the detached subtree in the background.
    let mut fs = c.fs().await;
    for _ in 0..100 {
        if fs["pending_delete"] == json!(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        fs = c.fs().await;
    }
    assert_eq!((fs["files"].as_u64(), fs["directories"].as_u64(), fs["bytes"].as_u64()), (Some(0), Some(1), Some(0)));
    c.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_4xx_and_changes_nothing() {
    let c = start(&[]);
    ok(&c.post("/v1/mkdir", json!({"path": "/d"})).await);
    ok(&c.post("/v1/create", json!({"path": "/d/f"})).await);
    ok(&c.post("/v1/mkdir", json!({"path": "/full/sub", "parents": true})).await);
    let before = c.fs().await;
    let long = format!("/{}", "n".repeat(256));
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/v1/create", json!({"path": "/"}), 403, "EPERM"),
        ("/v1/create", json!({"parent": 1, "name": ""}), 400, "EINVAL"),
        ("/v1/create", json!({"parent": 1, "name": "."}), 400, "EINVAL"),
        ("/v1/create", json!({"parent": 1, "name": ".."}), 400, "EINVAL"),
        ("/v1/create", json!({"parent": 1, "name": "a/b"}), 400, "EINVAL"),
        ("/v1/create", json!({"parent": 1, "name": "a\u{0}b"}), 400, "EINVAL"),
        ("/v1/create", json!({"path": long}), 400, "ENAMETOOLONG"),
        ("/v1/create", json!({"path": "relative"}), 400, "EINVAL"),
        ("/v1/create", json!({"path": "/x", "parent": 1, "name": "x"}), 400, "EINVAL"),
        ("/v1/create", json!({"path": "/missing/f"}), 404, "ENOENT"),
        ("/v1/create", json!({"path": "/d/f/g"}), 400, "ENOTDIR"),
        ("/v1/create", json!({"path": "/d/f"}), 409, "EEXIST"),
        ("/v1/create", json!({"path": "/d", "exclusive": false}), 400, "EISDIR"),
        ("/v1/create", json!({"path": "/r", "replication": 0}), 400, "EINVAL"),
        ("/v1/create", json!({"path": "/r", "chunk_size_bytes": 12345}), 400, "EINVAL"),
        ("/v1/create", json!({"parent": 999999, "name": "x"}), 404, "ENOENT"),
        ("/v1/mkdir", json!({"path": "/d/f"}), 409, "EEXIST"),
        ("/v1/mkdir", json!({"path": "/d"}), 409, "EEXIST"),
        ("/v1/mkdir", json!({"path": "/d/f/sub", "parents": true}), 400, "ENOTDIR"),
        ("/v1/mkdir", json!({"path": "/m", "mode": 0o77777}), 400, "EINVAL"),
        ("/v1/rmdir", json!({"path": "/d/f"}), 400, "ENOTDIR"),
        ("/v1/rmdir", json!({"path": "/full"}), 409, "ENOTEMPTY"),
        ("/v1/rmdir", json!({"path": "/"}), 403, "EPERM"),
        ("/v1/unlink", json!({"path": "/d"}), 400, "EISDIR"),
        ("/v1/unlink", json!({"path": "/nothing"}), 404, "ENOENT"),
        ("/v1/delete", json!({"path": "/full"}), 409, "ENOTEMPTY"),
        ("/v1/rename", json!({"src": {"path": "/full"}, "dst": {"path": "/full/sub/in"}}), 400, "EINVAL"),
        ("/v1/rename", json!({"src": {"path": "/d"}, "dst": {"path": "/full"}}), 409, "ENOTEMPTY"),
        ("/v1/rename", json!({"src": {"path": "/d/f"}, "dst": {"path": "/full"}}), 400, "EISDIR"),
        ("/v1/rename", json!({"src": {"path": "/full"}, "dst": {"path": "/d/f"}}), 400, "ENOTDIR"),
        ("/v1/rename", json!({"src": {"path": "/nope"}, "dst": {"path": "/x"}}), 404, "ENOENT"),
        ("/v1/rename", json!({"src": {"path": "/d/f"}, "dst": {"path": "/full/sub"}, "noreplace": true}), 409, "EEXIST"),
        ("/v1/setattr", json!({"path": "/d", "size": 1}), 400, "EISDIR"),
        ("/v1/setattr", json!({"path": "/d/f", "mode": 0o100000}), 400, "EINVAL"),
        ("/v1/setattr", json!({"inode": 424242, "mode": 1}), 404, "ENOENT"),
        ("/v1/setattr", json!({"path": "/d/f", "size": u64::MAX}), 400, "EINVAL"),
        ("/v1/commit_length", json!({"inode": 1, "length": 10}), 400, "EISDIR"),
        ("/v1/symlink", json!({"path": "/l", "target": ""}), 400, "EINVAL"),
        ("/v1/symlink", json!({"path": "/d/f", "target": "x"}), 409, "EEXIST"),
        ("/v1/mkdir", json!({"path": 5}), 400, "EINVAL"),
        ("/v1/mkdir", json!([1, 2]), 400, "EINVAL"),
    ];
    for (endpoint, body, status, kind) in cases {
        let r = c.post(endpoint, body.clone()).await;
        assert_eq!((r.status, r.kind()), (status, kind), "{endpoint} {body} → {}", r.body);
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.body);
    }

    // Malformed and oversized bodies, bad queries, unknown endpoints.
    let r = c.api.post_raw("/v1/mkdir", b"{\"path\": \"/x\"".to_vec()).await.unwrap();
    assert_eq!((r.status, r.kind()), (400, "EINVAL"));
    let r = c.api.post_raw("/v1/mkdir", vec![0xff, 0xfe, 0x00]).await.unwrap();
    assert_eq!((r.status, r.kind()), (400, "EINVAL"));
    let mut huge = b"{\"path\": \"/".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 << 20));
    huge.extend_from_slice(b"\"}");
    // The master answers before reading the body and then closes the
    // connection, so only the head is sent.
    let head = c.api.signed_head("POST", "/v1/create", huge).await;
    let r = dfs_tests::insider::raw_request(&dfs_tests::insider::host_port(&c.master.url), &head, 0, Duration::from_secs(10)).await.unwrap();
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(r.text.contains("EMSGSIZE"), "{}", r.text);
    let r = c.api.get("/v1/stat?inode=abc").await.unwrap();
    assert_eq!((r.status, r.kind()), (400, "EINVAL"));
    let r = c.api.get("/v1/stat").await.unwrap();
    assert_eq!((r.status, r.kind()), (400, "EINVAL"));
    let r = c.api.get_query("/v1/list", &[("path", "/d/f")]).await.unwrap();
    assert_eq!((r.status, r.kind()), (400, "ENOTDIR"));
    let r = c.api.get_query("/v1/readlink", &[("path", "/d")]).await.unwrap();
    assert_eq!((r.status, r.kind()), (400, "EINVAL"));
    let r = c.api.get("/v1/no-such-call").await.unwrap();
    assert_eq!((r.status, r.kind()), (404, "ENOENT"));

    // Nothing changed, and the master is still healthy.
    assert_eq!(c.fs().await, before);
    assert_eq!(c.stat("/d/f").await.body["kind"], json!("file"));
    c.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_survives_a_clean_restart() {
    let mut c = start(&[]);
    let id = c.api.get("/v1/cluster").await.unwrap().body["cluster_id"].clone();
    ok(&c.post("/v1/mkdir", json!({"path": "/keep/me", "parents": true})).await);
    ok(&c.post("/v1/create", json!({"path": "/keep/me/f"})).await);
    assert_eq!(c.master.terminate().unwrap(), Some(0), "SIGTERM should stop the master cleanly");
    c.master.restart().unwrap();
    c.api = Api::new(&c.master.url);
    assert_eq!(c.api.get("/v1/cluster").await.unwrap().body["cluster_id"], id);
    assert_eq!(c.stat("/keep/me/f").await.body["kind"], json!("file"));
    c.assert_consistent().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_file_environment_and_flags_layer() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("master.toml");
    std::fs::write(&toml, "default_replication = 2\ndefault_chunk_size_bytes = 1048576\n").unwrap();
    let config = toml.to_str().unwrap();
    let master = MasterProcess::start(&dir.path().join("m"), &["--config", config, "--default-replication", "5"]).unwrap();
    let api = Api::new(&master.url);
    let f = api.post("/v1/create", &json!({"path": "/f"})).await.unwrap();
    // The flag beats the file; the file beats the built-in default.
    assert_eq!((f.body["replication"].as_u64(), f.body["chunk_size_bytes"].as_u64()), (Some(5), Some(1048576)));

    // A broken setting is refused at start-up, naming the problem.
    std::fs::write(&toml, "default_replication = 0\n").unwrap();
    let bin = dfs_tests::process::bin_dir().unwrap().join("dfs-master");
    let out = std::process::Command::new(bin).args(["--config", config, "--data-dir"]).arg(dir.path().join("x")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("default_replication"));
    std::fs::write(&toml, "replication_typo = 3\n").unwrap();
    let bin = dfs_tests::process::bin_dir().unwrap().join("dfs-master");
    let out = std::process::Command::new(bin).args(["--config", config]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("replication_typo"));
}
