//! Users and POSIX permissions, checked by the master whoever the client is:
//! every operation as the owner, a member of the group and another user,
//! allowed and denied, with the sticky and setgid rules, the superuser and
//! the admin role; a denied operation changes nothing (stat, listing and
//! bytes compared). Then the same through the shell, and unauthenticated,
//! wrong, expired and replayed requests.

use dfs_client::auth::Credentials;
use dfs_tests::api::Reply;
use dfs_tests::{Api, Cluster};
use serde_json::{json, Value};

use dfs_proto::auth::keys::hex;

/// A user made by the admin: their API client, uid and gids.
struct User {
    api: Api,
    credentials: Credentials,
    uid: u32,
    gids: Vec<u32>,
}

async fn add_user(c: &Cluster, name: &str, groups: &[&str], extra: Value) -> User {
    let credentials = Credentials::generate(name);
    let mut req = json!({"name": name, "groups": groups, "stored_key": credentials.stored_key_hex()});
    if let (Some(req), Some(extra)) = (req.as_object_mut(), extra.as_object()) {
        req.extend(extra.clone());
    }
    let r = c.api.post("/v1/admin/users/add", &req).await.unwrap();
    assert!(r.ok(), "{r:?}");
    let uid = r.body["uid"].as_u64().unwrap() as u32;
    let gids = r.body["gids"].as_array().unwrap().iter().map(|g| g.as_u64().unwrap() as u32).collect();
    User { api: Api::as_user(&c.master.url, credentials.clone()), credentials, uid, gids }
}

struct World {
    c: Cluster,
    /// Owns the things under test; staff is her primary group.
    alice: User,
    /// In staff.
    bob: User,
    /// In no group of alice's.
    carol: User,
}

async fn world() -> World {
    let c = Cluster::start(1).unwrap();
    let alice = add_user(&c, "alice", &["staff"], json!({})).await;
    let bob = add_user(&c, "bob", &["bobs", "staff"], json!({})).await;
    let carol = add_user(&c, "carol", &[], json!({})).await;
    World { c, alice, bob, carol }
}

/// Everything observable about a path: its stat and, for a directory, its listing.
async fn snapshot(api: &Api, path: &str) -> (Value, Value) {
    let stat = api.get_query("/v1/stat", &[("path", path)]).await.unwrap().body;
    let list = api.get_query("/v1/list", &[("path", path)]).await.unwrap().body;
    (stat, list)
}

fn denied(r: &Reply, kind: &str, what: &str) {
    assert_eq!(r.kind(), kind, "{what}: {r:?}");
    assert_eq!(r.status, 403, "{what}: {r:?}");
}

/// Makes `path` as the admin, owned by `uid:gid` with `mode`.
async fn make(w: &World, path: &str, dir: bool, mode: u32, uid: u32, gid: u32) -> Value {
    let route = if dir { "/v1/mkdir" } else { "/v1/create" };
    let r = w.c.api.post(route, &json!({"path": path, "mode": mode, "uid": uid, "gid": gid})).await.unwrap();
    assert!(r.ok(), "{path}: {r:?}");
    r.body
}

/// Each operation × owner/group/other × allowed/denied: the class's bit
/// decides, and a denied operation changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn each_operation_follows_the_bits_of_the_callers_class() {
    let w = world().await;
    let (a, staff) = (w.alice.uid, w.alice.gids[0]);
    // (bit, class shift, caller)
    let classes: [(&str, u32, &User); 3] = [("owner", 6, &w.alice), ("group", 3, &w.bob), ("other", 0, &w.carol)];
    for (class, shift, who) in classes {
        for bit in [4u32, 2, 1] {
            for granted in [true, false] {
                // The other classes get everything; only the class under
                // test varies (writing a directory also takes search).
                let others = 0o777 & !(0o7 << shift);
                let search = if bit == 2 { 1 << shift } else { 0 };
                let mode = others | search | if granted { bit << shift } else { 0 };
                let dir = format!("/m-{class}-{bit}-{granted}");
                make(&w, &dir, true, mode, a, staff).await;
                make(&w, &format!("{dir}/f"), false, 0o666, a, staff).await;
                let before = snapshot(&w.c.api, &dir).await;
                let what = format!("{class} bit {bit} granted={granted} on dir mode {mode:o}");
                match bit {
                    4 => {
                        let r = who.api.get_query("/v1/list", &[("path", &dir)]).await.unwrap();
                        if granted {
                            assert!(r.ok(), "list, {what}: {r:?}")
                        } else {
                            denied(&r, "EACCES", &format!("list, {what}"))
                        }
                    }
                    2 => {
                        let r = who.api.post("/v1/create", &json!({"path": format!("{dir}/new")})).await.unwrap();
                        if granted {
                            assert!(r.ok(), "create, {what}: {r:?}")
                        } else {
                            denied(&r, "EACCES", &format!("create, {what}"))
                        }
                        let r = who.api.post("/v1/unlink", &json!({"path": format!("{dir}/f")})).await.unwrap();
                        if granted {
                            assert!(r.ok(), "unlink, {what}: {r:?}")
                        } else {
                            denied(&r, "EACCES", &format!("unlink, {what}"))
                        }
                    }
                    _ => {
                        let r = who.api.get_query("/v1/stat", &[("path", &format!("{dir}/f"))]).await.unwrap();
                        if granted {
                            assert!(r.ok(), "traverse, {what}: {r:?}")
                        } else {
                            denied(&r, "EACCES", &format!("traverse, {what}"))
                        }
                    }
                }
                if !granted {
                    assert_eq!(snapshot(&w.c.api, &dir).await, before, "a denied operation changed {dir}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_data_follows_read_and_write_bits_and_its_owner_keeps_access() {
    let w = world().await;
    let (a, staff) = (w.alice.uid, w.alice.gids[0]);
    make(&w, "/d", true, 0o755, a, staff).await;
    let f = make(&w, "/d/f", false, 0o640, a, staff).await;
    let inode = f["inode"].as_u64().unwrap().to_string();
    let locate = |api: &Api| {
        let (api, inode) = (api.clone(), inode.clone());
        async move { api.get_query("/v1/chunks", &[("inode", &inode), ("first", "0"), ("count", "1")]).await.unwrap() }
    };
    let lease = |api: &Api| {
        let api = api.clone();
        let inode = f["inode"].clone();
        async move { api.post("/v1/chunks/lease", &json!({"inode": inode, "index": 0})).await.unwrap() }
    };
    // 0640: bob (staff) reads, carol does not; only alice writes.
    assert!(locate(&w.bob.api).await.ok());
    denied(&locate(&w.carol.api).await, "EACCES", "carol reads");
    denied(&lease(&w.bob.api).await, "EACCES", "bob writes");
    denied(&lease(&w.carol.api).await, "EACCES", "carol writes");
    let r = lease(&w.alice.api).await;
    assert!(r.ok() || r.kind() == "ENOSPC" || r.kind() == "EAGAIN", "alice writes: {r:?}");
    // Her own 0444 file: she still writes (a descriptor opened while it
    // was writable); others get nothing more than the bits.
    w.alice.api.post("/v1/setattr", &json!({"path": "/d/f", "mode": 0o444})).await.unwrap();
    let r = lease(&w.alice.api).await;
    assert!(r.kind() != "EACCES", "the owner keeps writing: {r:?}");
    denied(&lease(&w.bob.api).await, "EACCES", "bob writes a 0444 file");
    // Truncate: write permission (the owner's override too).
    denied(&w.carol.api.post("/v1/setattr", &json!({"path": "/d/f", "size": 0})).await.unwrap(), "EACCES", "carol truncates");
    // Record append reservations are writes.
    denied(&w.carol.api.post("/v1/append", &json!({"inode": f["inode"], "length": 10})).await.unwrap(), "EACCES", "carol appends");
    // Open for write of an existing file (create without exclusive) needs write.
    denied(&w.carol.api.post("/v1/create", &json!({"path": "/d/f", "exclusive": false})).await.unwrap(), "EACCES", "carol opens for write");
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_chmod_only_the_superuser_chowns_and_chgrp_goes_to_own_groups() {
    let w = world().await;
    let (a, staff) = (w.alice.uid, w.alice.gids[0]);
    make(&w, "/f", false, 0o6755, a, staff).await;
    // chmod: the owner yes, others EPERM (nothing changed).
    let before = snapshot(&w.c.api, "/f").await;
    denied(&w.bob.api.post("/v1/setattr", &json!({"path": "/f", "mode": 0o777})).await.unwrap(), "EPERM", "bob chmods");
    assert_eq!(snapshot(&w.c.api, "/f").await, before);
    let r = w.alice.api.post("/v1/setattr", &json!({"path": "/f", "mode": 0o2750})).await.unwrap();
    assert_eq!(r.body["mode"], 0o2750, "{r:?}");
    // chown to another uid: only the superuser.
    denied(&w.alice.api.post("/v1/setattr", &json!({"path": "/f", "uid": w.bob.uid})).await.unwrap(), "EPERM", "alice gives away");
    // chgrp: to one of her groups, not to another's.
    denied(&w.alice.api.post("/v1/setattr", &json!({"path": "/f", "gid": w.carol.gids[0]})).await.unwrap(), "EPERM", "alice chgrps to carol's group");
    denied(&w.bob.api.post("/v1/setattr", &json!({"path": "/f", "gid": staff})).await.unwrap(), "EPERM", "bob chgrps her file");
    // chmod setgid by an owner outside the file's group drops the bit.
    let r = w.c.api.post("/v1/setattr", &json!({"path": "/f", "gid": w.carol.gids[0]})).await.unwrap();
    assert!(r.ok(), "{r:?}");
    let r = w.alice.api.post("/v1/setattr", &json!({"path": "/f", "mode": 0o2755})).await.unwrap();
    assert_eq!(r.body["mode"], 0o755, "setgid dropped for a non-member: {r:?}");
    // The superuser chowns; a file changing hands loses setuid.
    w.c.api.post("/v1/setattr", &json!({"path": "/f", "mode": 0o4755})).await.unwrap();
    let r = w.c.api.post("/v1/setattr", &json!({"path": "/f", "uid": w.bob.uid, "gid": staff})).await.unwrap();
    assert_eq!((r.body["uid"].as_u64(), r.body["mode"].as_u64()), (Some(w.bob.uid as u64), Some(0o755)), "{r:?}");
    // utimes: explicit times by the owner only; "now" by whoever may write.
    w.c.api.post("/v1/setattr", &json!({"path": "/f", "mode": 0o666})).await.unwrap();
    denied(&w.carol.api.post("/v1/setattr", &json!({"path": "/f", "mtime_ns": 5})).await.unwrap(), "EPERM", "carol sets a time");
    let r = w.carol.api.post("/v1/setattr", &json!({"path": "/f", "mtime_ns": 5, "times_now": true})).await.unwrap();
    assert!(r.ok() && r.body["mtime_ns"].as_i64() > Some(5), "carol touches a writable file: {r:?}");
    w.c.api.post("/v1/setattr", &json!({"path": "/f", "mode": 0o644})).await.unwrap();
    denied(&w.carol.api.post("/v1/setattr", &json!({"path": "/f", "mtime_ns": 5, "times_now": true})).await.unwrap(), "EACCES", "carol touches");
}

#[tokio::test(flavor = "multi_thread")]
async fn sticky_directories_and_setgid_directories() {
    let w = world().await;
    let (a, staff) = (w.alice.uid, w.alice.gids[0]);
    make(&w, "/tmp", true, 0o1777, 0, 0).await;
    make(&w, "/tmp/alices", false, 0o666, a, staff).await;
    // Bob may write the directory but not remove or rename her entry.
    let before = snapshot(&w.c.api, "/tmp").await;
    denied(&w.bob.api.post("/v1/unlink", &json!({"path": "/tmp/alices"})).await.unwrap(), "EPERM", "bob unlinks in /tmp");
    denied(&w.bob.api.post("/v1/rename", &json!({"src": {"path": "/tmp/alices"}, "dst": {"path": "/tmp/bobs"}})).await.unwrap(), "EPERM", "bob renames");
    make(&w, "/tmp/bobs", false, 0o666, w.bob.uid, w.bob.gids[0]).await;
    denied(&w.bob.api.post("/v1/rename", &json!({"src": {"path": "/tmp/bobs"}, "dst": {"path": "/tmp/alices"}})).await.unwrap(), "EPERM", "bob replaces hers");
    w.c.api.post("/v1/unlink", &json!({"path": "/tmp/bobs"})).await.unwrap();
    assert_eq!(snapshot(&w.c.api, "/tmp").await.1, before.1, "denied changes left the listing alone");
    assert!(w.alice.api.post("/v1/unlink", &json!({"path": "/tmp/alices"})).await.unwrap().ok(), "her own");
    // setgid: new entries take the directory's group, subdirectories its bit.
    make(&w, "/shared", true, 0o2777, 0, w.carol.gids[0]).await;
    let r = w.alice.api.post("/v1/create", &json!({"path": "/shared/x"})).await.unwrap();
    assert_eq!(r.body["gid"].as_u64(), Some(w.carol.gids[0] as u64), "{r:?}");
    assert_eq!(r.body["uid"].as_u64(), Some(a as u64), "{r:?}");
    let r = w.alice.api.post("/v1/mkdir", &json!({"path": "/shared/d", "mode": 0o755})).await.unwrap();
    assert_eq!(r.body["mode"].as_u64(), Some(0o2755), "{r:?}");
    // A new file belongs to its maker, whatever the request claims.
    let r = w.alice.api.post("/v1/create", &json!({"path": "/shared/y", "uid": 0})).await.unwrap();
    assert_eq!(r.body["uid"].as_u64(), Some(a as u64), "{r:?}");
    // Recursive delete: write on every directory of the subtree.
    make(&w, "/tree", true, 0o777, a, staff).await;
    make(&w, "/tree/locked", true, 0o555, a, staff).await;
    make(&w, "/tree/locked/f", false, 0o644, a, staff).await;
    let r = w.bob.api.post("/v1/delete", &json!({"path": "/tree/locked", "recursive": true})).await.unwrap();
    denied(&r, "EACCES", "bob deletes a subtree he may not empty");
    assert!(w.c.api.get_query("/v1/stat", &[("path", "/tree/locked/f")]).await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_superuser_the_supergroup_and_the_admin_role() {
    let w = world().await;
    let sup = add_user(&w.c, "ops", &["supergroup"], json!({})).await;
    make(&w, "/private", true, 0o700, w.alice.uid, w.alice.gids[0]).await;
    make(&w, "/private/f", false, 0o600, w.alice.uid, w.alice.gids[0]).await;
    // A member of the supergroup passes every check, as uid 0 does.
    assert!(sup.api.get_query("/v1/list", &[("path", "/private")]).await.unwrap().ok());
    assert!(sup.api.post("/v1/setattr", &json!({"path": "/private/f", "uid": w.carol.uid})).await.unwrap().ok());
    denied(&w.carol.api.get_query("/v1/list", &[("path", "/private")]).await.unwrap(), "EACCES", "carol lists");
    // Admin endpoints need the admin role (the supergroup is not enough).
    for (method, path) in [("GET", "/v1/admin/users"), ("GET", "/v1/admin/replication"), ("GET", "/v1/admin/fsck?path=/"), ("POST", "/v1/admin/safemode")] {
        for who in [&w.alice, &sup] {
            let r = if method == "GET" { who.api.get(path).await.unwrap() } else { who.api.post(path, &json!({"leave": true})).await.unwrap() };
            denied(&r, "EACCES", &format!("{method} {path}"));
        }
        let r = if method == "GET" { w.c.api.get(path).await.unwrap() } else { w.c.api.post(path, &json!({"leave": true})).await.unwrap() };
        assert!(r.ok(), "the admin: {method} {path}: {r:?}");
    }
    let r = w.alice.api.post("/v1/admin/users/add", &json!({"name": "mallory", "uid": 0, "stored_key": hex(&[0; 32])})).await.unwrap();
    denied(&r, "EACCES", "alice adds a user");
    let me = w.alice.api.get("/v1/auth/whoami").await.unwrap();
    assert_eq!((me.body["user"].as_str(), me.body["superuser"].as_bool()), (Some("alice"), Some(false)));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_proxy_acts_for_others_and_squashed_root_is_nobody() {
    let w = world().await;
    let mount = add_user(&w.c, "mnt", &[], json!({"proxy": true, "squash_root": true})).await;
    make(&w, "/home", true, 0o755, w.alice.uid, w.alice.gids[0]).await;
    let act = |api: &Api, header: &'static str| {
        let api = api.clone();
        async move { api.post_with("/v1/create", &json!({"path": "/home/x"}), &[("x-dfs-act-as", header)]).await.unwrap() }
    };
    // Alice is no proxy: naming someone else is refused outright.
    let r = act(&w.alice.api, "uid=0 gids=0").await;
    assert_eq!(r.status, 401, "{r:?}");
    // Through the proxy, root is squashed to nobody: no write in her directory.
    denied(&act(&mount.api, "uid=0 gids=0").await, "EACCES", "squashed root");
    // Acting for alice, it may.
    let header: &'static str = Box::leak(format!("uid={} gids={}", w.alice.uid, w.alice.gids[0]).into_boxed_str());
    let r = act(&mount.api, header).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.body["uid"].as_u64(), Some(w.alice.uid as u64));
    // A local group numbered like the supergroup makes no superuser through a proxy.
    assert!(w.c.api.post("/v1/unlink", &json!({"path": "/home/x"})).await.unwrap().ok());
    let supergroup = w.c.api.get("/v1/auth/whoami").await.unwrap().body["gids"][0].as_u64().unwrap();
    let claim: &'static str = Box::leak(format!("uid=1234 gids={supergroup}").into_boxed_str());
    denied(&act(&mount.api, claim).await, "EACCES", "a local uid claiming the supergroup's gid");
    let _ = mount.credentials;
}

/// Every endpoint for users or admins, from the declarations: no session,
/// a forged session, or a replay of a signed request gets 401.
#[tokio::test(flavor = "multi_thread")]
async fn every_user_endpoint_refuses_no_session_a_forged_one_and_a_replay() {
    use dfs_proto::endpoint::{master::ALL, Access};
    let w = world().await;
    let before = snapshot(&w.c.api, "/").await;
    let anon = Api::anonymous(&w.c.master.url);
    for e in ALL.iter().filter(|e| matches!(e.access, Access::User | Access::Admin)) {
        let path = match e.param {
            Some(name) => e.route.replacen(&format!("{{{name}}}"), "1", 1),
            None => e.route.to_string(),
        };
        let method = e.method.as_str();
        let none = anon.request_with(method, &path, &[]).await.unwrap();
        assert_eq!(none.status, 401, "{e} without a session: {none:?}");
        let forged_headers =
            [("x-dfs-session", "v1.YWxpY2UKMQo5OTk5OTk5OTk5OTk5CjAw.AAAA"), ("x-dfs-user-auth", "v1 key=session ts=1 nonce=00 body=00 sig=00")];
        let forged = anon.request_with(method, &path, &forged_headers).await.unwrap();
        assert_eq!(forged.status, 401, "{e} with a forged session: {forged:?}");
        let (first, again) = w.carol.api.send_twice(method, &path).await.unwrap();
        assert_ne!(first.status, 401, "{e}: carol's own request: {first:?}");
        assert_eq!(again.status, 401, "{e} replayed: {again:?}");
    }
    assert_eq!(snapshot(&w.c.api, "/").await, before, "refused requests changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_forged_replayed_and_stale_requests_are_refused() {
    let w = world().await;
    let before = snapshot(&w.c.api, "/").await;
    // No session: every endpoint for users answers 401, whatever the body.
    let anon = Api::anonymous(&w.c.master.url);
    for (method, path) in
        [("POST", "/v1/mkdir"), ("POST", "/v1/create"), ("GET", "/v1/list?path=/"), ("GET", "/v1/stat?path=/"), ("POST", "/v1/admin/users/add")]
    {
        let r = if method == "GET" { anon.get(path).await.unwrap() } else { anon.post(path, &json!({"path": "/x"})).await.unwrap() };
        assert_eq!(r.status, 401, "{method} {path}: {r:?}");
    }
    // Wrong credentials: a user name with another secret cannot log in.
    let forged = Api::as_user(&w.c.master.url, Credentials::generate("alice"));
    assert_eq!(forged.post("/v1/mkdir", &json!({"path": "/x"})).await.unwrap().status, 401);
    // A replayed request (same signature, same nonce) is refused.
    let (first, again) = w.alice.api.post_twice("/v1/mkdir", &json!({"path": "/x"})).await.unwrap();
    assert_eq!(first.status, 403, "alice may not write /: {first:?}");
    assert_eq!(again.status, 401, "the replay: {again:?}");
    // A removed user's session ends at once; a rotated credential ends the old one.
    assert!(w.bob.api.get("/v1/auth/whoami").await.unwrap().ok());
    w.c.api.post("/v1/admin/users/remove", &json!({"name": "bob"})).await.unwrap();
    assert_eq!(w.bob.api.get("/v1/auth/whoami").await.unwrap().status, 401);
    // Made again (another credential): the old sessions stay dead.
    let _again = add_user(&w.c, "bob", &[], json!({})).await;
    assert_eq!(w.bob.api.get("/v1/auth/whoami").await.unwrap().status, 401, "a removed user's session came back");
    assert!(w.carol.api.get("/v1/auth/whoami").await.unwrap().ok());
    let fresh = Credentials::generate("carol");
    let r = w.carol.api.post("/v1/admin/users/rotate", &json!({"name": "carol", "stored_key": fresh.stored_key_hex()})).await.unwrap();
    assert!(r.ok(), "a user rotates her own: {r:?}");
    assert_eq!(w.carol.api.get("/v1/auth/whoami").await.unwrap().status, 401, "the old credential is gone");
    assert!(Api::as_user(&w.c.master.url, fresh).get("/v1/auth/whoami").await.unwrap().ok());
    // Nothing changed in the namespace.
    assert_eq!(snapshot(&w.c.api, "/").await.1, before.1);
    let _ = w.alice.credentials;
}
