//! The attacks on one running cluster that leave it as it was (forged
//! heartbeats are in `heartbeats`, the cluster they share in `world`).

use std::time::{Duration, Instant};

use dfs_proto::NodeId;
use dfs_tests::faults;
use dfs_tests::insider::{self, closed_port_url, fake_heartbeat, get_data, host_port, lease, locations, put_data, raw_request};
use dfs_tests::say;
use serde_json::{json, Value};

use crate::heartbeats::forged_heartbeats_change_nothing;
use crate::world::{alive, world, World};
use crate::*;

/// Attacks on one running cluster, each leaving it as it was; then the
/// cluster is whole, every byte is there and nothing was adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attacks_on_a_running_cluster_change_nothing() {
    let started = Instant::now();
    let mut w = world().await;
    say!(TAG, "cluster with {} files up in {:.1}s", w.files.len(), started.elapsed().as_secs_f64());
    internal_routes_refuse_outsiders_and_replays(&w).await;
    data_requests_need_the_right_token(&mut w).await;
    forwards_and_copies_go_only_to_peers(&w).await;
    version_max_and_out_of_range_numbers_are_refused(&w).await;
    outsiders_bad_replica_reports_keep_every_copy(&w).await;
    oversized_bodies_are_refused_without_being_read(&w).await;
    forged_heartbeats_change_nothing(&w).await;
    // The fake nodes fall silent and go dead; the cluster is as it was.
    w.c.wait_live(3, LIVE).await.expect("only the 3 real chunkservers live");
    let client = faults::client(&w.c.master.url);
    let after = shape(&all_locations(&w.http, &w.c, &client, &w.files).await);
    let scratch = &w.scratch.0;
    let keep = |v: &Vec<(String, u64, u64, Vec<String>)>| v.iter().filter(|s| &s.0 != scratch).cloned().collect::<Vec<_>>();
    assert_eq!(keep(&after), keep(&w.before), "chunks, versions or replica sets changed");
    all_there(&w.http, &w.c, &w.files).await;
    assert_eq!(w.trap.hits(), 0, "a chunkserver contacted the URL an attacker named");
    say!(TAG, "all attacks done in {:.1}s", started.elapsed().as_secs_f64());
}

/// Internal routes without a signature, with a stranger's, with a body
/// other than the one signed, and a correctly signed request sent twice.
async fn internal_routes_refuse_outsiders_and_replays(w: &World) {
    let (m, cs, peer) = (&w.c.master.url, &w.c.chunkservers[0].url, &w.c.chunkservers[1].url);
    let (h, v) = (w.victim.handle.0, w.victim.version.0);
    let hb = serde_json::to_value(fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await)).expect("json");
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", format!("{m}/v1/heartbeat"), Some(hb)),
        ("POST", format!("{cs}/v1/chunks/{h}/create"), Some(json!({"version": v + 1, "chunk_size_bytes": MIB}))),
        ("POST", format!("{cs}/v1/chunks/{h}/version"), Some(json!({"version": v + 1}))),
        ("POST", format!("{cs}/v1/chunks/{h}/replicate"), Some(json!({"source": peer, "version": v, "chunk_size_bytes": MIB}))),
        ("POST", format!("{cs}/v1/chunks/{h}/verify"), Some(json!({"version": v}))),
        ("GET", format!("{cs}/v1/chunks/{h}"), None),
    ];
    for (method, url, body) in &routes {
        let build = |http: &reqwest::Client| {
            let b = http.request(method.parse().expect("method"), url);
            match body {
                Some(j) => b.header("content-type", "application/json").body(j.to_string()),
                None => b,
            }
        };
        let plain = insider::send_reply(build(&w.http)).await.expect("send");
        refused(&plain, 401, "EKEYREJECTED", &format!("unsigned {method} {url}"));
        let forged = w.stranger.send(build(&w.stranger.http)).await.expect("send");
        refused(&forged, 401, "EKEYREJECTED", &format!("{method} {url} signed with a stranger's key"));
    }
    // A signature over one body does not carry another.
    let mut swapped =
        w.insider.signed(w.http.post(format!("{cs}/v1/chunks/{h}/version")).header("content-type", "application/json").body(json!({"version": v}).to_string()));
    *swapped.body_mut() = Some(json!({"version": v + 7}).to_string().into());
    let r = w.insider.execute(swapped).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "a signed version order with its body swapped");
    // Replay: the same signed request twice.
    let first = w.insider.signed(w.http.get(format!("{cs}/v1/chunks/{h}")));
    let again = first.try_clone().expect("clonable");
    let r = w.insider.execute(first).await.expect("send");
    assert_eq!((r.status, r.body["version"].as_u64()), (200, Some(v)), "a signed info request: {r:?}");
    let r = w.insider.execute(again).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "the same signed request again (a replay)");
    // Nothing changed on the replica.
    assert_eq!(replica_info(&w.insider, cs, h).await.map(|i| i.0), Some(v));
    say!(TAG, "internal routes: unsigned, stranger-signed, body-swapped and replayed requests refused");
}

/// Data writes and reads without a token, with garbage, an expired token,
/// a token for another chunk or version, a read-only token; a legitimate
/// write of the attacker's own file as the control.
async fn data_requests_need_the_right_token(w: &mut World) {
    let (m, http) = (w.c.master.url.clone(), w.http.clone());
    let victim = w.victim().await;
    let (h, v, r0) = (victim.handle.0, victim.version.0, victim.replicas[0].address.clone());
    let garbage = vec![0xa5u8; 4096];
    // The control: the attacker's own file, with its own lease, through the chain.
    let own = lease(&http, &m, w.scratch.1, 0).await.expect("lease");
    let chain: Vec<&str> = own.secondaries.iter().map(|r| r.address.as_str()).collect();
    let new_head = vec![0x3cu8; 4096];
    let r = put_data(&http, &own.primary.address, own.handle.0, own.version.0, 0, &new_head, Some(&own.token), &chain).await.expect("put");
    assert!(r.ok(), "a write with its own lease's token: {r:?}");
    w.files.get_mut(&w.scratch.0).expect("scratch")[..4096].copy_from_slice(&new_head);
    let (status, body) = get_data(&http, &r0, h, v, 0, 100, Some(&victim.token)).await.expect("get");
    assert_eq!((status, &body[..]), (200, &w.files["/h/two-chunks"][..100]), "a read with a location's token");

    let put = |addr: String, handle: u64, version: u64, token: Option<String>| {
        let (http, garbage) = (http.clone(), garbage.clone());
        async move { put_data(&http, &addr, handle, version, 0, &garbage, token.as_deref(), &[]).await.expect("put") }
    };
    refused(&put(r0.clone(), h, v, None).await, 401, "EKEYREJECTED", "a write without a token");
    refused(&put(r0.clone(), h, v, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into())).await, 401, "EKEYREJECTED", "a write with a made-up token");
    refused(&put(r0.clone(), h, v, Some(victim.token.clone())).await, 403, "EACCES", "a write with a read-only token");
    refused(&put(r0.clone(), h, v, Some(own.token.clone())).await, 403, "EACCES", "a write with a token for another chunk");
    let p = own.primary.address.clone();
    refused(&put(p.clone(), own.handle.0, own.version.0 + 1, Some(own.token.clone())).await, 403, "EACCES", "a write with a token for another version (+1)");
    refused(&put(p.clone(), own.handle.0, own.version.0 - 1, Some(own.token.clone())).await, 403, "EACCES", "a write with a token for another version (-1)");
    // A token is bound to its signature: a stranger's signature on top is refused.
    let signed_forward = w.stranger.send(
        http.put(format!("{p}/v1/chunks/{}/data?version={}&offset=0", own.handle.0, own.version.0))
            .header(dfs_proto::auth::token::HEADER_TOKEN, own.token.as_str())
            .header(dfs_proto::wire::chunks::HEADER_CHECKSUMS, dfs_proto::wire::chunks::checksum_header(&garbage))
            .body(garbage.clone()),
    );
    refused(&signed_forward.await.expect("put"), 401, "EKEYREJECTED", "a write with a valid token and a stranger's signature");
    // Reads and syncs need tokens too.
    let (status, body) = get_data(&http, &r0, h, v, 0, 100, None).await.expect("get");
    assert_eq!(status, 401, "a read without a token: {}", String::from_utf8_lossy(&body));
    let (status, body) = get_data(&http, &r0, h, v, 0, 100, Some(&own.token)).await.expect("get");
    assert_eq!(status, 403, "a read with a token for another chunk: {}", String::from_utf8_lossy(&body));
    let r = insider::send_reply(http.post(format!("{r0}/v1/chunks/{h}/fsync?version={v}"))).await.expect("fsync");
    refused(&r, 401, "EKEYREJECTED", "an fsync without a token");
    // An expired token (the lease taken at the start).
    let (early, at) = w.early.clone();
    tokio::time::sleep((TOKEN_LIFETIME + Duration::from_millis(500)).saturating_sub(at.elapsed())).await;
    let r = put(early.primary.address.clone(), early.handle.0, early.version.0, Some(early.token.clone())).await;
    refused(&r, 401, "EKEYEXPIRED", "a write with an expired token");
    say!(TAG, "data path: missing, made-up, read-only, other-chunk, other-version, stranger-signed and expired tokens refused");
}

/// `x-dfs-forward` naming a URL that is no chunkserver of the cluster, and
/// `replicate` from such a source: refused before anything is sent there.
async fn forwards_and_copies_go_only_to_peers(w: &World) {
    let (m, http, trap) = (&w.c.master.url, &w.http, w.trap.url.as_str());
    let data = vec![0x77u8; 1024];
    for second in [false, true] {
        // A fresh lease each time: a refusal may wait 2 s for a fresher peer list, the token lives 2 s.
        let own = lease(http, m, w.scratch.1, 0).await.expect("lease");
        let p = own.primary.address.as_str();
        let chain: Vec<&str> = if second { vec![own.secondaries[0].address.as_str(), trap] } else { vec![trap] };
        let r = put_data(http, p, own.handle.0, own.version.0, 0, &data, Some(&own.token), &chain).await.expect("put");
        refused(&r, 403, "EACCES", &format!("a write forwarded to {chain:?}"));
        let r = put_data(http, p, own.handle.0, own.version.0, 0, &data, None, &chain).await.expect("put");
        assert!(r.status == 401 || r.status == 403, "a write without a token forwarded to {chain:?}: {r:?}");
    }
    let (h, v, cs) = (w.victim.handle.0, w.victim.version.0, &w.victim.replicas[0].address);
    let order = |source: &str| json!({"source": source, "version": v, "chunk_size_bytes": MIB});
    let url = format!("{cs}/v1/chunks/{h}/replicate");
    let r = insider::send_reply(http.post(&url).json(&order(trap))).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "an unsigned replicate order");
    let r = w.stranger.post_json(&url, &order(trap)).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "a replicate order signed by a stranger");
    let r = w.insider.post_json(&url, &order(trap)).await.expect("send");
    refused(&r, 403, "EACCES", "a signed replicate order from a source outside the cluster");
    let r = w.insider.post_json(&url, &order(&closed_port_url().await)).await.expect("send");
    refused(&r, 403, "EACCES", "a signed replicate order from an unreachable source outside the cluster");
    assert_eq!(replica_info(&w.insider, cs, h).await.map(|i| i.0), Some(v), "the replica survives the refused copies");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.trap.hits(), 0, "a chunkserver contacted the URL an attacker named");
    say!(TAG, "forwards to a foreign URL and copies from a foreign source refused; the trap was never contacted");
}

/// u64::MAX as a version, an offset or a length, in data queries, in
/// signed create/version orders and on the master's client routes: 4xx,
/// and every daemon still answers.
async fn version_max_and_out_of_range_numbers_are_refused(w: &World) {
    let (m, http) = (&w.c.master.url, &w.http);
    let max = u64::MAX;
    let victim = w.victim().await;
    let (h, v, cs, token) = (victim.handle.0, victim.version.0, victim.replicas[0].address.as_str(), victim.token.as_str());
    for (version, offset, length) in [(max, 0, 100), (v, max, 10), (v, max - 5, 100), (v, 0, max)] {
        let (status, body) = get_data(http, cs, h, version, offset, length, Some(token)).await.expect("get");
        assert!((400..500).contains(&status), "a read at version {version} offset {offset} length {length}: {status} {}", String::from_utf8_lossy(&body));
    }
    // A read asking for more than there is is clipped at the replica's length.
    let (status, body) = get_data(http, cs, h, v, 0, 2 * MIB, Some(token)).await.expect("get");
    assert_eq!((status, body.len() as u64), (200, MIB), "a read of 2 MiB from a full 1 MiB chunk");
    let own = lease(http, m, w.scratch.1, 0).await.expect("lease");
    let data = vec![1u8; 100];
    let p = own.primary.address.as_str();
    for (version, offset) in [(max, 0), (own.version.0, max - 10), (own.version.0, max)] {
        let r = put_data(http, p, own.handle.0, version, offset, &data, Some(&own.token), &[]).await.expect("put");
        client_error(&r, &format!("a write at version {version} offset {offset}"));
    }
    // Signed orders (an insider's: only the range checks stand in the way).
    let fresh = 0x7fff_0000_0000_0000u64 + rand::random::<u32>() as u64;
    // Versions above 2^63 - 1 are refused (docs/SECURITY.md).
    let top = 1u64 << 63;
    for body in
        [json!({"version": max, "chunk_size_bytes": MIB}), json!({"version": top, "chunk_size_bytes": MIB}), json!({"version": 1, "chunk_size_bytes": max})]
    {
        let r = w.insider.post_json(&format!("{cs}/v1/chunks/{fresh}/create"), &body).await.expect("create");
        client_error(&r, &format!("a signed create of {body}"));
    }
    assert_eq!(replica_info(&w.insider, cs, fresh).await, None, "a refused create left a replica");
    for version in [max, top] {
        let r = w.insider.post_json(&format!("{cs}/v1/chunks/{h}/version"), &json!({"version": version})).await.expect("version");
        client_error(&r, &format!("a signed version order of {version}"));
    }
    assert_eq!(replica_info(&w.insider, cs, h).await.map(|i| i.0), Some(v), "the replica kept its version");
    // The master's client routes.
    let inode = w.scratch.1 .0;
    for (path, body) in [
        ("/v1/chunks/lease", json!({"inode": inode, "index": max})),
        ("/v1/commit_length", json!({"inode": inode, "length": max})),
        ("/v1/append", json!({"inode": inode, "length": max})),
    ] {
        let r = insider::send_reply(http.post(format!("{m}{path}")).json(&body)).await.expect("send");
        client_error(&r, &format!("POST {path} {body}"));
    }
    let r = insider::send_reply(http.get(format!("{m}/v1/chunks?inode={inode}&first={max}&count={max}"))).await.expect("send");
    no_server_error(&r, "locations from chunk u64::MAX");
    alive(w).await;
    say!(TAG, "u64::MAX versions, offsets and lengths refused with 4xx; every daemon answers");
}

/// Many reports that every replica of a chunk is bad, from clients:
/// without a token (refused), with a read token (verified by each
/// chunkserver, found good) and naming replicas by address. Every copy is
/// kept.
async fn outsiders_bad_replica_reports_keep_every_copy(w: &World) {
    let (m, http) = (&w.c.master.url, &w.http);
    let (h, v) = (w.victim.handle.0, w.victim.version.0);
    let mut accepted = 0;
    for _ in 0..20 {
        for r in &w.victim.replicas {
            let plain = json!({"handle": h, "node_id": r.node_id, "corrupt": true});
            let reply = insider::send_reply(http.post(format!("{m}/v1/chunks/bad")).json(&plain)).await.expect("send");
            client_error(&reply, "a bad-replica report without a token");
            let by_address = json!({"handle": h, "address": r.address, "corrupt": false, "reporter_version": v});
            let reply = insider::send_reply(http.post(format!("{m}/v1/chunks/bad")).json(&by_address)).await.expect("send");
            client_error(&reply, "a bad-replica report by address without a token");
            let with_token = json!({"handle": h, "node_id": r.node_id, "corrupt": true, "token": w.victim().await.token});
            let reply = insider::send_reply(http.post(format!("{m}/v1/chunks/bad")).json(&with_token)).await.expect("send");
            no_server_error(&reply, "a bad-replica report with a read token");
            accepted += reply.ok() as usize;
        }
    }
    // The verifications run in the background: give them time, then every copy is still listed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let locs = locations(http, m, w.client.stat("/h/two-chunks").await.expect("stat").inode).await.expect("locate");
    let chunk = &locs.chunks[0];
    assert_eq!((chunk.handle.0, chunk.version.0, chunk.replicas.len()), (h, v, 3), "after the reports: {chunk:?}");
    for (i, cs) in w.c.chunkservers.iter().enumerate() {
        assert_eq!(replica_info(&w.insider, &cs.url, h).await.map(|i| i.0), Some(v), "chunkserver {i} lost its replica");
        assert!(faults::quarantined(&w.c.cs_dir(i), h).is_empty(), "chunkserver {i} quarantined a good replica");
    }
    say!(TAG, "180 bad-replica reports from outsiders ({accepted} with a token accepted for verification): every copy kept");
}

/// Bodies far over any limit, announced by Content-Length: refused at
/// once, before any of the body is sent (a stranger's signature is
/// checked first), or, on the master's client routes, after at most
/// their 1 MiB limit is read (one byte more is sent).
async fn oversized_bodies_are_refused_without_being_read(w: &World) {
    let m = host_port(&w.c.master.url);
    let cs = host_port(&w.victim.replicas[0].address);
    let (h, v) = (w.victim.handle.0, w.victim.version.0);
    let json_head = |line: &str, len: u64| format!("{line}\r\nContent-Type: application/json\r\nContent-Length: {len}");
    let limit = (1u64 << 20) + 1; // the master's --max-request-body-bytes, and one byte
    let cases = [
        (m.as_str(), json_head("POST /v1/heartbeat HTTP/1.1", 256 << 20), 0, "a 256 MiB heartbeat from a stranger"),
        (m.as_str(), json_head("POST /v1/heartbeat HTTP/1.1", (256 << 20) + 1), 0, "a heartbeat over 256 MiB from a stranger"),
        (m.as_str(), json_head("POST /v1/create HTTP/1.1", 64 << 20), limit, "a 64 MiB create"),
        (cs.as_str(), json_head(&format!("POST /v1/chunks/{h}/create HTTP/1.1"), 64 << 20), 0, "a 64 MiB create order from a stranger"),
        (cs.as_str(), format!("PUT /v1/chunks/{h}/data?version={v}&offset=0 HTTP/1.1\r\nContent-Length: {}", 1u64 << 30), 0, "a 1 GiB write without a token"),
        (
            cs.as_str(),
            format!("PUT /v1/chunks/{h}/data?version={v}&offset=0 HTTP/1.1\r\nx-dfs-token: {}\r\nContent-Length: {}", w.victim().await.token, 1u64 << 30),
            0,
            "a 1 GiB write with a read token",
        ),
    ];
    for (addr, head, sent, what) in cases {
        let a = raw_request(addr, &head, sent, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!((400..500).contains(&a.status), "{what}: {}", a.text);
        assert!(a.text.contains("\"error\""), "{what}: no JSON error: {}", a.text);
        assert!(a.elapsed < Duration::from_secs(3), "{what}: answered after {:?}", a.elapsed);
        say!(TAG, "{what}: {} after {:?}, {} body bytes sent", a.status, a.elapsed, a.body_bytes_sent);
    }
    alive(w).await;
}
