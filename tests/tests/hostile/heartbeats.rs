//! Forged heartbeats against the shared cluster of `running`.

use std::time::Duration;

use dfs_proto::wire::chunks::{Heartbeat, ReplicaReport, ScrubProgress};
use dfs_proto::{ChunkVersion, NodeId};
use dfs_tests::insider::{self, closed_port_url, fake_heartbeat};
use dfs_tests::say;
use serde_json::json;

use crate::world::{alive, World};
use crate::*;

/// A heartbeat as a chunkserver reporting `report`.
pub fn reporting(node: NodeId, address: &str, report: Vec<ReplicaReport>) -> Heartbeat {
    let mut hb = fake_heartbeat(node, address);
    hb.chunk_count = report.len() as u64;
    hb.report = Some(report);
    hb
}

/// Forged heartbeats: unsigned (401), and signed by an insider: every
/// chunk reported at a version far ahead (not adopted, every real replica
/// kept), a real node's id from another address (refused), absurd
/// capacities and counters (no overflow), a version of u64::MAX (4xx),
/// and a signed heartbeat sent twice (the second is a replay).
pub async fn forged_heartbeats_change_nothing(w: &World) {
    versions_far_ahead_are_not_adopted(w).await;
    a_live_node_id_is_not_hijacked(w).await;
    absurd_numbers_do_not_overflow(w).await;
    let m = &w.c.master.url;
    // A version of u64::MAX in a report.
    let top = vec![ReplicaReport { handle: w.victim.handle, version: ChunkVersion(u64::MAX), length: 10, dirty: false }];
    let r = w.insider.heartbeat(m, &reporting(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await, top)).await.expect("heartbeat");
    client_error(&r, "a signed heartbeat reporting version u64::MAX");
    // The same signed heartbeat twice.
    let hb = serde_json::to_vec(&fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await)).expect("json");
    let req = w.insider.signed(w.http.post(format!("{m}/v1/heartbeat")).header("content-type", "application/json").body(hb));
    let again = req.try_clone().expect("clonable");
    let r = w.insider.execute(req).await.expect("heartbeat");
    assert!(r.ok(), "a signed heartbeat of a new node: {r:?}");
    refused(&w.insider.execute(again).await.expect("heartbeat"), 401, "EKEYREJECTED", "the same signed heartbeat again (a replay)");
    alive(w).await;
    say!(TAG, "forged heartbeats: unsigned refused, versions not adopted, node id not hijacked, absurd numbers and a replay survived");
}

/// Every chunk reported 1000 versions ahead, unsigned (401) and signed by
/// an insider's fake node: the master may take the node, never the
/// versions, and every real replica stays.
async fn versions_far_ahead_are_not_adopted(w: &World) {
    let (m, http) = (&w.c.master.url, &w.http);
    let locs = all_locations(http, &w.c, &w.client, &w.files).await;
    let ahead: Vec<ReplicaReport> = locs
        .values()
        .flat_map(|l| l.chunks.iter())
        .map(|c| ReplicaReport { handle: c.handle, version: ChunkVersion(c.version.0 + 1000), length: c.length, dirty: false })
        .collect();
    // Each fake node has an address of its own (an address is one node's).
    let hb = reporting(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await, ahead);
    let r = insider::send_reply(http.post(format!("{m}/v1/heartbeat")).json(&hb)).await.expect("send");
    refused(&r, 401, "EKEYREJECTED", "an unsigned heartbeat reporting every chunk ahead");
    for i in 0..5 {
        let mut hb = hb.clone();
        hb.registering = i == 0;
        let r = w.insider.heartbeat(m, &hb).await.expect("heartbeat");
        no_server_error(&r, "a signed heartbeat reporting every chunk 1000 versions ahead");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let now = shape(&all_locations(http, &w.c, &w.client, &w.files).await);
    let scratch = &w.scratch.0;
    let versions = |v: &[(String, u64, u64, Vec<String>)]| v.iter().filter(|s| &s.0 != scratch).map(|s| (s.1, s.2)).collect::<Vec<_>>();
    assert_eq!(versions(&now), versions(&w.before), "the master adopted versions it never issued");
    for (i, cs) in w.c.chunkservers.iter().enumerate() {
        for c in locs.values().flat_map(|l| l.chunks.iter()) {
            assert_eq!(replica_info(&w.insider, &cs.url, c.handle.0).await.map(|i| i.0), Some(c.version.0), "chunkserver {i}: replica of {:#x}", c.handle.0);
        }
    }
}

/// A live node's id in a signed heartbeat from another address: refused,
/// and the node keeps its address.
async fn a_live_node_id_is_not_hijacked(w: &World) {
    let nodes = w.c.chunkservers().await.expect("chunkservers");
    let real = nodes.iter().find(|n| n["state"] == "live").expect("a live node").clone();
    let id: NodeId = serde_json::from_value(real["node_id"].clone()).expect("node id");
    let r = w.insider.heartbeat(&w.c.master.url, &fake_heartbeat(id, &closed_port_url().await)).await.expect("heartbeat");
    client_error(&r, "a signed heartbeat with a live node's id from another address");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nodes = w.c.chunkservers().await.expect("chunkservers");
    let same = nodes.iter().find(|n| n["node_id"] == real["node_id"]).expect("the node is still known");
    assert_eq!((&same["address"], &same["state"]), (&real["address"], &json!("live")), "the node's address was hijacked: {nodes:?}");
}

/// Absurd capacities and counters (refused or taken, never a panic), then
/// the largest capacity taken on several nodes with u64::MAX counters
/// going back to 0; every page that sums them still answers.
async fn absurd_numbers_do_not_overflow(w: &World) {
    let m = &w.c.master.url;
    let max = u64::MAX;
    let mut absurd = fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await);
    (absurd.capacity_bytes, absurd.used_bytes) = (max, max);
    let r = w.insider.heartbeat(m, &absurd).await.expect("heartbeat");
    no_server_error(&r, "a heartbeat with u64::MAX capacity");
    (absurd.capacity_bytes, absurd.used_bytes) = (1, max);
    let r = w.insider.heartbeat(m, &absurd).await.expect("heartbeat");
    no_server_error(&r, "a heartbeat using more than its capacity");
    const LARGEST: u64 = 64 << 50; // 64 PiB
    for _ in 0..4 {
        let mut huge = fake_heartbeat(NodeId(uuid::Uuid::new_v4()), &closed_port_url().await);
        (huge.capacity_bytes, huge.used_bytes, huge.chunk_count, huge.load, huge.bytes_read, huge.bytes_written) = (LARGEST, LARGEST, max, u32::MAX, max, max);
        huge.scrub = Some(ScrubProgress { passes_completed: max, pass_done: max, pass_total: max, corrupt_found: max, last_pass_completed_unix_ms: max });
        let r = w.insider.heartbeat(m, &huge).await.expect("heartbeat");
        assert!(r.ok(), "a heartbeat of a full 64 PiB node with u64::MAX counters: {r:?}");
        (huge.registering, huge.bytes_read, huge.bytes_written, huge.used_bytes) = (false, 0, 0, 0);
        let r = w.insider.heartbeat(m, &huge).await.expect("heartbeat");
        assert!(r.ok(), "the same node with its counters gone back to 0: {r:?}");
    }
    for path in ["/v1/chunkservers", "/v1/fs", "/v1/cluster", "/v1/admin/replication", "/metrics", "/", "/chunkservers"] {
        let r = insider::send(w.http.get(format!("{m}{path}"))).await.unwrap_or_else(|e| panic!("{path} after absurd heartbeats: {e}"));
        assert_eq!(r.status().as_u16(), 200, "{path} after absurd heartbeats");
    }
}
