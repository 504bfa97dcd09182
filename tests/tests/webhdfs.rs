//! WebHDFS with the HDFS ecosystem's own clients, unchanged: HdfsCLI and
//! fsspec from PyPI (pinned in tests/python/requirements.txt, installed in
//! ~/.cache/dfs/pyvenv by `make deps`) run the scripts in tests/python;
//! curl drives every operation, malformed ones included; what WebHDFS
//! wrote reads back through the shell and the mount, and the reverse.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dfs_client::auth::Credentials;
use dfs_tests::tools::*;
use dfs_tests::{Cluster, Mount};
use serde_json::{json, Value};

/// A cluster that believes `user.name=` (as an HDFS cluster with simple
/// authentication), with alice (group staff) and her home directory.
struct World {
    c: Cluster,
    alice: Credentials,
    /// A file the admin put with the shell, readable by everyone.
    shared: (String, Vec<u8>),
    work: tempfile::TempDir,
}

fn world() -> World {
    let c = cluster(&["--webhdfs-simple-auth", "true"]);
    let alice = Credentials::generate("alice");
    let added = block_on(c.api.post("/v1/admin/users/add", &json!({"name": "alice", "groups": ["staff"], "stored_key": alice.stored_key_hex()}))).unwrap();
    assert!(added.ok(), "{added:?}");
    let uid = added.body["uid"].as_u64().unwrap();
    for (path, owner) in [("/user", 0), ("/user/alice", uid)] {
        let r = block_on(c.api.post("/v1/mkdir", &json!({"path": path, "mode": 0o755, "uid": owner, "gid": owner}))).unwrap();
        assert!(r.ok(), "{r:?}");
    }
    let work = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let local = work.path().join("shared.local");
    fs::write(&local, &bytes).unwrap();
    shell(&c, &["mkdir", "/shared"]);
    shell(&c, &["put", local.to_str().unwrap(), "/shared/file"]);
    World { c, alice, shared: ("/shared/file".into(), bytes), work }
}

/// `dfs ARGS` as the cluster's admin; its stdout as bytes.
fn shell(c: &Cluster, args: &[&str]) -> Vec<u8> {
    let mut cmd = dfs_tests::shell::command(&c.master.url).unwrap();
    let out = run(cmd.args(args));
    assert!(out.status.success(), "dfs {args:?}: {}", head(&out.stderr));
    out.stdout
}

/// `dfs ARGS` as the user of `credentials`.
fn shell_as(c: &Cluster, credentials: &Credentials, dir: &Path, args: &[&str]) -> std::process::Output {
    let file = dir.join(format!("credentials-{}", credentials.user));
    if !file.exists() {
        fs::write(&file, credentials.to_file_text()).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut cmd = Command::new(dfs_tests::process::bin_dir().unwrap().join("dfs"));
    run(cmd.arg("--master").arg(&c.master.url).env("DFS_CREDENTIALS", &file).args(args))
}

fn venv_python() -> PathBuf {
    let dir = std::env::var_os("DFS_PYVENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/dfs/pyvenv"));
    let python = dir.join("bin/python");
    assert!(python.exists(), "{} is missing: `make deps` (deploy/install-deps.sh) installs the WebHDFS clients", python.display());
    python
}

/// Runs tests/python/SCRIPT with the world in its environment; its stdout.
fn python(w: &World, script: &str, env: &[(&str, &str)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
    let local = w.work.path().join("shared.local");
    let mut cmd = Command::new(venv_python());
    cmd.arg(&script)
        .env("DFS_URL", &w.c.master.url)
        .env("DFS_USER", "alice")
        .env("DFS_GROUP", "staff")
        .env("DFS_WORK", w.work.path())
        .env("DFS_SHARED", &w.shared.0)
        .env("DFS_SHARED_LOCAL", local)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_ok(&mut cmd)
}

/// HdfsCLI's InsecureClient (user.name=): every call the issue names, then
/// what it wrote read back through the shell.
#[test]
fn hdfscli_works_unchanged() {
    let w = world();
    python(&w, "hdfscli_check.py", &[]);
    let local = fs::read(w.work.path().join("big.bin")).unwrap();
    assert_eq!(shell(&w.c, &["cat", "/user/alice/up/big.bin"]), local, "an upload through WebHDFS reads back through the shell");
    let tree_b = fs::read(w.work.path().join("tree/sub/b.bin")).unwrap();
    assert_eq!(shell(&w.c, &["cat", "/user/alice/up/tree/sub/b.bin"]), tree_b);
    let listing = String::from_utf8(shell(&w.c, &["ls", "/user/alice/up"])).unwrap();
    assert!(listing.contains("alice") && listing.contains("big.copy"), "{listing}");
    assert_namespace_consistent(&w.c);
}

/// fsspec (and pandas through it) with a token from `dfs fetchdt`; what
/// it wrote reads back through the shell and a mount, and a file written
/// through the mount reads back through WebHDFS. The token renews, and
/// once cancelled opens nothing.
#[test]
fn fsspec_and_pandas_work_with_a_token_from_fetchdt() {
    let w = world();
    let token_file = w.work.path().join("alice.token");
    let out = shell_as(&w.c, &w.alice, w.work.path(), &["fetchdt", token_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", head(&out.stderr));
    assert_eq!(fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let token = fs::read_to_string(&token_file).unwrap().trim().to_string();
    python(&w, "fsspec_check.py", &[("DFS_TOKEN", &token)]);

    let local = fs::read(w.work.path().join("fs-big.bin")).unwrap();
    assert_eq!(shell(&w.c, &["cat", "/user/alice/fs/big.bin"]), local, "fsspec's multi-APPEND write reads back through the shell");
    let m = mount(&w.c, &[]);
    let through_mount = fs::read(m.path().join("user/alice/fs/big.bin")).unwrap();
    assert!(through_mount == local, "and through the mount");
    let written: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(m.path().join("shared/from-mount"), &written).unwrap();
    let opened = curl(&w, "GET", "/shared/from-mount?op=OPEN", &[("delegation", &token)], None, true);
    assert_eq!((opened.status, opened.body == written), (200, true), "a file written through the mount reads back through WebHDFS");

    // Renewal (alice is the renewer), then cancel: the token opens nothing more.
    let out = shell_as(&w.c, &w.alice, w.work.path(), &["fetchdt", "--renew", token_file.to_str().unwrap()]);
    assert!(out.status.success() && text(&out.stdout).contains("renewed"), "{}", head(&out.stderr));
    let out = shell_as(&w.c, &w.alice, w.work.path(), &["fetchdt", "--cancel", token_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", head(&out.stderr));
    let refused = curl(&w, "GET", "/user/alice?op=LISTSTATUS", &[("delegation", &token)], None, false);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.json()["RemoteException"]["exception"], "SecurityException", "{refused:?}");
    drop(m);
}

/// What one curl call got.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers.lines().find(|l| l.to_ascii_lowercase().starts_with(&prefix)).map(|l| l[prefix.len()..].trim().to_string())
    }
}

/// `curl -X METHOD MASTER/webhdfs/v1PATH&PARAMS` (following redirects when
/// `follow`), with `body` from a file when given.
fn curl(w: &World, method: &str, path_query: &str, params: &[(&str, &str)], body: Option<&[u8]>, follow: bool) -> Got {
    let mut url = format!("{}/webhdfs/v1{path_query}", w.c.master.url);
    for (k, v) in params {
        url.push_str(&format!("&{k}={v}"));
    }
    curl_url(w, method, &url, body, follow)
}

fn curl_url(w: &World, method: &str, url: &str, body: Option<&[u8]>, follow: bool) -> Got {
    let dir = tempfile::tempdir_in(w.work.path()).unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-X", method, "-D"]).arg(&h).arg("-o").arg(&b);
    if follow {
        cmd.arg("-L");
    }
    if let Some(body) = body {
        let file = dir.path().join("in");
        fs::write(&file, body).unwrap();
        cmd.arg("--data-binary").arg(format!("@{}", file.display())).args(["-H", "Content-Type: application/octet-stream"]);
    }
    run_ok(cmd.arg(url));
    let headers = fs::read_to_string(&h).unwrap();
    // With -L, the last response's headers are the last block.
    let last = headers.trim_end().rsplit("\r\n\r\n").next().unwrap_or_default().to_string();
    let status = last.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {headers:?}"));
    Got { status, headers: last, body: fs::read(&b).unwrap_or_default() }
}

#[allow(dead_code)]
fn unused(_: Duration, _: &Mount) {}
