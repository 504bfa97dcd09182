//! WebHDFS with the HDFS ecosystem's own clients, unchanged: HdfsCLI and
//! fsspec from PyPI (pinned in tests/python/requirements.txt, installed in
//! ~/.cache/dfs/pyvenv by `make deps`) run the scripts in tests/python;
//! curl drives every operation, malformed ones included; what WebHDFS
//! wrote reads back through the shell and the mount, and the reverse.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use dfs_client::auth::Credentials;
use dfs_tests::tools::*;
use dfs_tests::Cluster;
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
struct Got {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl std::fmt::Debug for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = text(&self.body[..self.body.len().min(400)]);
        write!(f, "{} ({} bytes: {body:?}) {:?}", self.status, self.body.len(), self.headers)
    }
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
    curl_full(w, method, url, body, follow, &[])
}

/// `curl -X METHOD URL` with request headers ("name: value").
fn curl_headers(w: &World, method: &str, url: &str, headers: &[&str]) -> Got {
    curl_full(w, method, url, None, false, headers)
}

fn curl_full(w: &World, method: &str, url: &str, body: Option<&[u8]>, follow: bool, headers: &[&str]) -> Got {
    let dir = tempfile::tempdir_in(w.work.path()).unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--path-as-is", "--max-time", "60", "-X", method, "-D"]).arg(&h).arg("-o").arg(&b);
    for header in headers {
        cmd.args(["-H", header]);
    }
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

/// alice's view of `/user/alice/c`: its listing (with times and modes)
/// and every file's bytes; a refused call must leave it as it was.
fn snapshot(w: &World) -> (Value, Vec<Vec<u8>>) {
    let listing = curl(w, "GET", "/user/alice/c?op=LISTSTATUS", &[("user.name", "alice")], None, false).json();
    let mut bytes = Vec::new();
    for entry in listing["FileStatuses"]["FileStatus"].as_array().unwrap() {
        if entry["type"] == "FILE" {
            let name = entry["pathSuffix"].as_str().unwrap();
            bytes.push(curl(w, "GET", &format!("/user/alice/c/{name}?op=OPEN"), &[("user.name", "alice")], None, true).body);
        }
    }
    (listing, bytes)
}

fn remote_exception(got: &Got, status: u16, exception: &str, what: &str) {
    assert_eq!(got.status, status, "{what}: {got:?} {}", text(&got.body));
    let e = got.json();
    assert_eq!(e["RemoteException"]["exception"], exception, "{what}: {e}");
    assert!(e["RemoteException"]["javaClassName"].as_str().is_some_and(|c| c.ends_with(exception)), "{what}: {e}");
    assert!(e["RemoteException"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {e}");
}

/// curl against every operation: the two-step data flow (307, noredirect,
/// 201 with a webhdfs:// Location, chunked and empty bodies, one APPEND
/// location for many POSTs), the JSON of each answer, then malformed
/// parameters, unsupported operations and refused callers: a 4xx
/// RemoteException each, and nothing changed.
#[test]
fn curl_drives_every_operation_and_malformed_calls_change_nothing() {
    let w = world();
    let alice = [("user.name", "alice")];
    let cs_urls: Vec<String> = block_on(w.c.chunkservers()).unwrap().iter().map(|n| n["address"].as_str().unwrap().trim_end_matches('/').to_string()).collect();
    let ok = |got: &Got, what: &str| assert!((200..300).contains(&got.status), "{what}: {got:?} {}", text(&got.body));

    // MKDIRS, then CREATE in two steps: a 307 to a chunkserver, the data there, 201.
    let made = curl(&w, "PUT", "/user/alice/c?op=MKDIRS&permission=755", &alice, None, false);
    assert_eq!(made.json(), json!({"boolean": true}));
    let step1 = curl(&w, "PUT", "/user/alice/c/f?op=CREATE&permission=640&replication=2&blocksize=134217728", &alice, None, false);
    assert_eq!(step1.status, 307, "{step1:?}");
    let location = step1.header("location").unwrap();
    assert!(cs_urls.iter().any(|u| location.starts_with(&format!("{u}/webhdfs/v1/user/alice/c/f?"))), "{location} is not a chunkserver's");
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let step2 = curl_url(&w, "PUT", &location, Some(&data), false);
    assert_eq!(step2.status, 201, "{step2:?}");
    assert!(step2.header("location").unwrap().starts_with("webhdfs://") && step2.header("location").unwrap().ends_with("/user/alice/c/f"), "{step2:?}");
    let st = curl(&w, "GET", "/user/alice/c/f?op=GETFILESTATUS", &alice, None, false).json()["FileStatus"].clone();
    assert_eq!(
        (st["length"].as_u64(), st["permission"].as_str(), st["replication"].as_u64(), st["owner"].as_str()),
        (Some(1_500_000), Some("640"), Some(2), Some("alice")),
        "{st}"
    );
    assert_eq!(st["type"], "FILE");

    // noredirect=true: 200 with the Location in JSON; an empty body makes an empty file.
    let nr = curl(&w, "PUT", "/user/alice/c/empty?op=CREATE&noredirect=true", &alice, None, false);
    assert_eq!(nr.status, 200, "{nr:?}");
    let loc = nr.json()["Location"].as_str().unwrap().to_string();
    ok(&curl_url(&w, "PUT", &loc, None, false), "empty CREATE");
    assert_eq!(curl(&w, "GET", "/user/alice/c/empty?op=GETFILESTATUS", &alice, None, false).json()["FileStatus"]["length"], 0);

    // A chunked body; overwrite=false on an existing file refuses.
    let chunked = chunked_put(&w, "/user/alice/c/chunked?op=CREATE&user.name=alice", b"sent in chunks\n");
    assert_eq!(chunked, 201);
    let again = curl(&w, "PUT", "/user/alice/c/chunked?op=CREATE&overwrite=false", &alice, Some(b"x"), true);
    remote_exception(&again, 403, "FileAlreadyExistsException", "CREATE over a file");

    // APPEND: one Location for several POSTs (as fsspec does).
    let step1 = curl(&w, "POST", "/user/alice/c/f?op=APPEND", &alice, None, false);
    assert_eq!(step1.status, 307, "{step1:?}");
    let location = step1.header("location").unwrap();
    for part in [&b"first append"[..], b", second"] {
        assert_eq!(curl_url(&w, "POST", &location, Some(part), false).status, 200);
    }
    let mut want = data.clone();
    want.extend_from_slice(b"first append, second");

    // OPEN whole, with offset and length, and past the end.
    assert_eq!(curl(&w, "GET", "/user/alice/c/f?op=OPEN", &alice, None, true).body, want);
    let part = curl(&w, "GET", "/user/alice/c/f?op=OPEN&offset=1499990&length=20", &alice, None, true);
    assert_eq!(part.body, &want[1_499_990..1_500_010]);
    // As HDFS's namenode: an offset at or past the end of a non-empty file is an IOException.
    let past = curl(&w, "GET", &format!("/user/alice/c/f?op=OPEN&offset={}", want.len()), &alice, None, true);
    remote_exception(&past, 403, "IOException", "OPEN past the end");
    assert_eq!(curl(&w, "GET", "/user/alice/c/empty?op=OPEN", &alice, None, true).body, b"");

    // The reading operations.
    let list = curl(&w, "GET", "/user/alice/c?op=LISTSTATUS", &alice, None, false).json();
    let names: Vec<&str> = list["FileStatuses"]["FileStatus"].as_array().unwrap().iter().map(|e| e["pathSuffix"].as_str().unwrap()).collect();
    assert_eq!(names, ["chunked", "empty", "f"]);
    let batch = curl(&w, "GET", "/user/alice/c?op=LISTSTATUS_BATCH&startAfter=chunked", &alice, None, false).json();
    let listing = &batch["DirectoryListing"];
    let names: Vec<&str> =
        listing["partialListing"]["FileStatuses"]["FileStatus"].as_array().unwrap().iter().map(|e| e["pathSuffix"].as_str().unwrap()).collect();
    assert_eq!((names, listing["remainingEntries"].as_u64()), (vec!["empty", "f"], Some(0)), "{batch}");
    let one = curl(&w, "GET", "/user/alice/c/f?op=LISTSTATUS", &alice, None, false).json();
    assert_eq!(one["FileStatuses"]["FileStatus"][0]["pathSuffix"], "", "a file lists as itself");
    let summary = curl(&w, "GET", "/user/alice/c?op=GETCONTENTSUMMARY", &alice, None, false).json()["ContentSummary"].clone();
    assert_eq!(
        (summary["length"].as_u64(), summary["fileCount"].as_u64(), summary["directoryCount"].as_u64()),
        (Some(want.len() as u64 + 15), Some(3), Some(1)),
        "{summary}"
    );
    let sum = curl(&w, "GET", "/user/alice/c/f?op=GETFILECHECKSUM", &alice, None, true).json()["FileChecksum"].clone();
    assert!(
        sum["algorithm"].as_str().is_some_and(|a| !a.is_empty()) && sum["bytes"].as_str().is_some_and(|b| !b.is_empty()) && sum["length"].as_u64() > Some(0),
        "{sum}"
    );
    assert_eq!(curl(&w, "GET", "/?op=GETHOMEDIRECTORY", &alice, None, false).json(), json!({"Path": "/user/alice"}));
    assert_eq!(curl(&w, "GET", "/user/alice/c?op=GETTRASHROOT", &alice, None, false).json(), json!({"Path": "/user/alice/.Trash"}));
    assert_eq!(curl(&w, "GET", "/user/alice/c/f?op=CHECKACCESS&fsaction=rw-", &alice, None, false).status, 200);
    remote_exception(&curl(&w, "GET", "/user/alice/c/f?op=CHECKACCESS&fsaction=--x", &alice, None, false), 403, "AccessControlException", "CHECKACCESS x");
    let defaults = curl(&w, "GET", "/?op=GETSERVERDEFAULTS", &alice, None, false).json();
    assert!(defaults["FsServerDefaults"]["blockSize"].as_u64() > Some(0) && defaults["FsServerDefaults"]["replication"].as_u64() > Some(0), "{defaults}");
    let blocks = curl(&w, "GET", "/user/alice/c/f?op=GETFILEBLOCKLOCATIONS&offset=0&length=10", &alice, None, false).json();
    let block = &blocks["BlockLocations"]["BlockLocation"][0];
    assert!(block["hosts"].as_array().is_some_and(|h| h.len() == 2) && block["offset"] == 0, "{blocks}");

    // The changing operations.
    assert_eq!(curl(&w, "PUT", "/user/alice/c/link?op=CREATESYMLINK&destination=/user/alice/c/f", &alice, None, false).status, 200);
    assert_eq!(curl(&w, "GET", "/user/alice/c/link?op=GETFILESTATUS", &alice, None, false).json()["FileStatus"]["type"], "SYMLINK");
    let renamed = curl(&w, "PUT", "/user/alice/c/empty?op=RENAME&destination=/user/alice/c/renamed", &alice, None, false);
    assert_eq!(renamed.json(), json!({"boolean": true}));
    assert_eq!(curl(&w, "PUT", "/user/alice/c/f?op=SETREPLICATION&replication=3", &alice, None, false).json(), json!({"boolean": true}));
    ok(&curl(&w, "PUT", "/user/alice/c/f?op=SETPERMISSION&permission=600", &alice, None, false), "SETPERMISSION");
    ok(&curl(&w, "PUT", "/user/alice/c/f?op=SETOWNER&group=staff", &alice, None, false), "SETOWNER");
    ok(&curl(&w, "PUT", "/user/alice/c/f?op=SETTIMES&modificationtime=1400000000000&accesstime=1400000001000", &alice, None, false), "SETTIMES");
    let st = curl(&w, "GET", "/user/alice/c/f?op=GETFILESTATUS", &alice, None, false).json()["FileStatus"].clone();
    assert_eq!((st["permission"].as_str(), st["group"].as_str(), st["replication"].as_u64()), (Some("600"), Some("staff"), Some(3)), "{st}");
    assert_eq!((st["modificationTime"].as_i64(), st["accessTime"].as_i64()), (Some(1_400_000_000_000), Some(1_400_000_001_000)), "{st}");
    let truncated = curl(&w, "POST", "/user/alice/c/f?op=TRUNCATE&newlength=1000", &alice, None, false);
    assert_eq!(truncated.json(), json!({"boolean": true}), "truncating to 1000 bytes is done at once");
    assert_eq!(curl(&w, "GET", "/user/alice/c/f?op=OPEN", &alice, None, true).body, &want[..1000]);

    // Tokens: none under simple authentication (as HDFS) or with a token;
    // one from `dfs fetchdt`, renewed only by its signed-in renewer.
    remote_exception(&curl(&w, "GET", "/?op=GETDELEGATIONTOKEN", &alice, None, false), 403, "IOException", "a token for a name on trust");
    let fetched = shell_as(&w.c, &w.alice, w.work.path(), &["fetchdt"]);
    assert!(fetched.status.success(), "{}", head(&fetched.stderr));
    let token = text(&fetched.stdout).trim().to_string();
    let listed = curl(&w, "GET", "/user/alice/c?op=LISTSTATUS", &[("delegation", &token)], None, false);
    assert_eq!(listed.status, 200, "{listed:?}");
    let with_token = [("delegation", token.as_str())];
    remote_exception(&curl(&w, "GET", "/?op=GETDELEGATIONTOKEN", &with_token, None, false), 400, "IllegalArgumentException", "a token for a token");
    let renew = format!("/?op=RENEWDELEGATIONTOKEN&token={token}");
    remote_exception(&curl(&w, "PUT", &renew, &with_token, None, false), 403, "IOException", "a token renewing itself");
    remote_exception(&curl(&w, "PUT", &renew, &alice, None, false), 403, "IOException", "a renewal by a name on trust");
    // The grant in a redirect made for the token is no credential here.
    let nr = curl(&w, "GET", "/user/alice/c/f?op=OPEN&noredirect=true", &with_token, None, false).json();
    let grant = nr["Location"].as_str().unwrap().split("dfsgrant=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let url = format!("{}/webhdfs/v1/user/alice/c/f?op=OPEN&noredirect=true", w.c.master.url);
    let by_grant = curl_headers(&w, "GET", &url, &["x-dfs-session: x", &format!("x-dfs-grant: {grant}")]);
    remote_exception(&by_grant, 401, "SecurityException", "a grant offered to WebHDFS");
    ok(&curl(&w, "PUT", &format!("/?op=CANCELDELEGATIONTOKEN&token={token}"), &alice, None, false), "CANCELDELEGATIONTOKEN");
    remote_exception(&curl(&w, "GET", "/user/alice/c?op=LISTSTATUS", &with_token, None, false), 403, "SecurityException", "a cancelled token");

    // Refused: malformed, unsupported, wrong method, unauthenticated, not allowed.
    let bob = Credentials::generate("bob");
    assert!(block_on(w.c.api.post("/v1/admin/users/add", &json!({"name": "bob", "stored_key": bob.stored_key_hex()}))).unwrap().ok());
    let before = snapshot(&w);
    let refused: &[Refused] = &[
        ("GET", "/user/alice/c/f?op=OPEN&offset=-1", &alice, 400, "IllegalArgumentException"),
        ("GET", "/user/alice/c/f?op=OPEN&length=abc", &alice, 400, "IllegalArgumentException"),
        ("GET", "/user/alice/c/f?op=OPEN&offset=99999999999999999999999", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=SETPERMISSION&permission=999", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=SETPERMISSION&permission=-1", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=SETREPLICATION&replication=0", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=SETREPLICATION&replication=70000", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=SETTIMES&modificationtime=yesterday", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=SETOWNER&owner=admin", &alice, 403, "AccessControlException"),
        ("PUT", "/user/alice/c/f?op=SETOWNER&group=nosuchgroup", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=SETOWNER&group=bob", &alice, 403, "AccessControlException"),
        ("PUT", "/user/alice/c/new?op=CREATE&blocksize=0", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/new?op=CREATE&replication=abc", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/new?op=CREATE&overwrite=maybe", &alice, 400, "IllegalArgumentException"),
        ("POST", "/user/alice/c/f?op=TRUNCATE&newlength=-5", &alice, 400, "IllegalArgumentException"),
        ("POST", "/user/alice/c/f?op=TRUNCATE&newlength=5000", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=RENAME&destination=relative/path", &alice, 400, "IllegalArgumentException"),
        ("PUT", "/user/alice/c/f?op=RENAME", &alice, 400, "IllegalArgumentException"),
        ("DELETE", "/user/alice/c?op=DELETE&recursive=maybe", &alice, 400, "IllegalArgumentException"),
        ("DELETE", "/user/alice/c?op=DELETE&recursive=false", &alice, 403, "PathIsNotEmptyDirectoryException"),
        ("GET", "/user/alice/c/none?op=LISTSTATUS_BATCH", &alice, 404, "FileNotFoundException"),
        ("GET", "/user/alice/c/none?op=GETFILESTATUS", &alice, 404, "FileNotFoundException"),
        ("GET", "/user/alice/c?op=NOSUCHOP", &alice, 400, "IllegalArgumentException"),
        ("GET", "/user/alice/c?op=GETXATTRS", &alice, 400, "UnsupportedOperationException"),
        ("PUT", "/user/alice/c?op=ALLOWSNAPSHOT", &alice, 400, "UnsupportedOperationException"),
        ("GET", "/user/alice/c/f?op=DELETE", &alice, 400, "IllegalArgumentException"),
        ("DELETE", "/user/alice/c/f?op=OPEN", &alice, 400, "IllegalArgumentException"),
        ("GET", "/user/alice/c/../c/f?op=GETFILESTATUS", &alice, 400, "IllegalArgumentException"),
        ("DELETE", "/user/alice/c/f?op=DELETE", &[], 401, "SecurityException"),
        ("DELETE", "/user/alice/c/f?op=DELETE", &[("user.name", "mallory")], 401, "SecurityException"),
        ("DELETE", "/user/alice/c/f?op=DELETE", &[("delegation", "dt1.forged.token")], 403, "SecurityException"),
        ("DELETE", "/user/alice/c/f?op=DELETE&doas=alice", &[("user.name", "bob")], 403, "AccessControlException"),
    ];
    for (method, path, params, status, exception) in refused {
        let got = curl(&w, method, path, params, None, false);
        remote_exception(&got, *status, exception, &format!("{method} {path} {params:?}"));
    }
    let bob_writes = curl(&w, "PUT", "/user/alice/c/f?op=CREATE&overwrite=true", &[("user.name", "bob")], Some(b"bob was here"), true);
    remote_exception(&bob_writes, 403, "AccessControlException", "bob overwriting alice's 0600 file");
    remote_exception(&curl(&w, "GET", "/user/alice/c/f?op=OPEN", &[("user.name", "bob")], None, true), 403, "AccessControlException", "bob reading it");
    remote_exception(
        &curl(&w, "DELETE", "/user/alice/c?op=DELETE&recursive=true", &[("user.name", "bob")], None, false),
        403,
        "AccessControlException",
        "bob deleting",
    );
    assert_eq!(snapshot(&w), before, "refused calls changed nothing");

    // A proxy user acts for alice with doas; what it makes is hers.
    let gw = Credentials::generate("gateway");
    assert!(block_on(w.c.api.post("/v1/admin/users/add", &json!({"name": "gateway", "proxy": true, "stored_key": gw.stored_key_hex()}))).unwrap().ok());
    ok(&curl(&w, "PUT", "/user/alice/c/by-proxy?op=MKDIRS&doas=alice", &[("user.name", "gateway")], None, false), "doas");
    assert_eq!(curl(&w, "GET", "/user/alice/c/by-proxy?op=GETFILESTATUS", &alice, None, false).json()["FileStatus"]["owner"], "alice");
    // A proxy that squashes root acts for the admin as nobody, never as root.
    let squash = Credentials::generate("squasher");
    let made = json!({"name": "squasher", "proxy": true, "squash_root": true, "stored_key": squash.stored_key_hex()});
    assert!(block_on(w.c.api.post("/v1/admin/users/add", &made)).unwrap().ok());
    let as_admin = curl(&w, "PUT", "/user/alice/c/by-squasher?op=MKDIRS&doas=admin", &[("user.name", "squasher")], None, false);
    remote_exception(&as_admin, 403, "AccessControlException", "doas=admin through a squashing proxy");

    // DELETE recursive, last.
    assert_eq!(curl(&w, "DELETE", "/user/alice/c?op=DELETE&recursive=true", &alice, None, false).json(), json!({"boolean": true}));
    assert_eq!(curl(&w, "DELETE", "/user/alice/c?op=DELETE&recursive=true", &alice, None, false).json(), json!({"boolean": false}));
}

/// A call that must be refused: method, path and query, parameters, status, exception.
type Refused<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);

/// A CREATE whose body curl sends chunked (no length), following the 307: the final status.
fn chunked_put(w: &World, path_query: &str, body: &[u8]) -> u16 {
    let url = format!("{}/webhdfs/v1{path_query}", w.c.master.url);
    let file = w.work.path().join("chunked.in");
    fs::write(&file, body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-L", "-X", "PUT", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Transfer-Encoding: chunked", "-T"])
        .arg(&file)
        .arg(url);
    run_ok(&mut cmd).trim().parse().unwrap()
}

/// A concat that must be refused: its query, parameters, status, exception.
type ConcatRefused<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);

/// CONCAT moves the sources' chunks onto the target (no byte copied): the
/// file reads back as the sources in order, through WebHDFS and the shell,
/// fsck finds it healthy, and it stays writable (an APPEND leases the
/// moved last chunk under its new file). Every refused concat changes nothing.
#[test]
fn concat_moves_chunks_onto_the_target_and_refusals_change_nothing() {
    let w = world();
    let alice = [("user.name", "alice")];
    let put = |path: &str, data: &[u8], blocksize: u64| {
        let q = format!("{path}?op=CREATE&blocksize={blocksize}");
        let got = curl(&w, "PUT", &q, &alice, Some(data), true);
        assert_eq!(got.status, 201, "{path}: {got:?}");
    };
    let parts: Vec<Vec<u8>> = [131_072usize, 131_072, 1_000, 1_000, 65_536].iter().enumerate().map(|(i, n)| vec![b'a' + i as u8; *n]).collect();
    for (name, data) in ["a", "b", "c", "d"].iter().zip(&parts) {
        put(&format!("/user/alice/cc/{name}"), data, 65_536);
    }
    put("/user/alice/cc/e", &parts[4], 131_072);
    put("/user/alice/other/x", &parts[4], 65_536);
    let listing = |w: &World| curl(w, "GET", "/user/alice/cc?op=LISTSTATUS", &alice, None, false).json();
    let before = listing(&w);

    let bob = Credentials::generate("bob");
    assert!(block_on(w.c.api.post("/v1/admin/users/add", &json!({"name": "bob", "stored_key": bob.stored_key_hex()}))).unwrap().ok());
    let refused: &[ConcatRefused] = &[
        ("sources=/user/alice/cc/d,/user/alice/cc/b", &alice, 400, "IllegalArgumentException"),
        ("sources=/user/alice/other/x", &alice, 400, "IllegalArgumentException"),
        ("sources=/user/alice/cc/a", &alice, 400, "IllegalArgumentException"),
        ("sources=/user/alice/cc/b,/user/alice/cc/b", &alice, 400, "IllegalArgumentException"),
        ("sources=/user/alice/cc/e", &alice, 400, "IllegalArgumentException"),
        ("sources=/user/alice/cc/none", &alice, 404, "FileNotFoundException"),
        ("sources=user/alice/cc/b", &alice, 400, "IllegalArgumentException"),
        ("sources=", &alice, 400, "IllegalArgumentException"),
        ("sources=/user/alice/cc/b", &[("user.name", "bob")], 403, "AccessControlException"),
    ];
    for (query, params, status, exception) in refused {
        let got = curl(&w, "POST", &format!("/user/alice/cc/a?op=CONCAT&{query}"), params, None, false);
        remote_exception(&got, *status, exception, query);
    }
    assert_eq!(listing(&w), before, "refused concats changed nothing");

    let done = curl(&w, "POST", "/user/alice/cc/a?op=CONCAT&sources=/user/alice/cc/b,/user/alice/cc/c", &alice, None, false);
    assert_eq!(done.status, 200, "{done:?}");
    let mut want = [parts[0].clone(), parts[1].clone(), parts[2].clone()].concat();
    assert_eq!(curl(&w, "GET", "/user/alice/cc/a?op=OPEN", &alice, None, true).body, want);
    for gone in ["b", "c"] {
        remote_exception(&curl(&w, "GET", &format!("/user/alice/cc/{gone}?op=GETFILESTATUS"), &alice, None, false), 404, "FileNotFoundException", gone);
    }
    // Past the lease the sources' writes held (2 s in tests): the append
    // gets a new one, whose version bump the master records under the
    // chunk's new file and index.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let step1 = curl(&w, "POST", "/user/alice/cc/a?op=APPEND", &alice, None, false);
    let appended = curl_url(&w, "POST", &step1.header("location").unwrap(), Some(b"and a tail"), false);
    assert_eq!(appended.status, 200, "an append after a concat leases the moved last chunk: {appended:?}");
    want.extend_from_slice(b"and a tail");
    assert_eq!(shell(&w.c, &["cat", "/user/alice/cc/a"]), want, "read back through the shell");
    let fsck = run(dfs_tests::shell::command(&w.c.master.url).unwrap().args(["fsck", "/user/alice/cc"]));
    assert!(fsck.status.success(), "fsck: {}", text(&fsck.stdout));
    assert_namespace_consistent(&w.c);
}
