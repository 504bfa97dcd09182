//! The heartbeat worker: capacity, use and load every interval, with a full
//! chunk report at registration, periodically, and whenever the master asks;
//! and the replica deletes the master answers with.
//!
//! Heartbeats are signed with the cluster key, and nothing in an answer is
//! applied (deletes, token keys, peers, registration) unless the answer is
//! signed for that very heartbeat and names this node's cluster ([`decide`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::auth::signature::HEADER_AUTH;
use dfs_proto::auth::AuthError;
use dfs_proto::endpoint::master as ep;
use dfs_proto::endpoint::url_no_query;
use dfs_proto::error::HEADER_LEADER;
use dfs_proto::wire::chunks::{DeleteReplica, Heartbeat, HeartbeatResponse, ReplicaReport};
use dfs_proto::ErrorKind;
use dfs_server_kit::http::call::{body_up_to, refusal, CallError};
use dfs_server_kit::http::internal::ClusterAuth;
use dfs_server_kit::worker::{Next, Worker};

use crate::chunk_store::ChunkError;
use crate::cluster_id;
use crate::node::{available_bytes, copy_in_progress, Node};

fn build(node: &Node, with_report: bool) -> Heartbeat {
    let used = node.store.used_bytes();
    let replicas = node.store.list();
    let chunk_count = replicas.len() as u64;
    let report =
        with_report.then(|| replicas.into_iter().map(|c| ReplicaReport { handle: c.handle, version: c.version, length: c.length, dirty: c.dirty }).collect());
    Heartbeat {
        node_id: node.id,
        address: node.address.clone(),
        capacity_bytes: used + available_bytes(&node.data_dir),
        used_bytes: used,
        chunk_count,
        load: node.in_flight.load(Ordering::Relaxed),
        report,
        bytes_read: node.bytes_read.load(Ordering::Relaxed),
        bytes_written: node.bytes_written.load(Ordering::Relaxed),
        scrub: Some(node.scrub.progress()),
        registering: !node.registered.load(Ordering::Acquire),
        cluster_id: node.cluster_id.get().cloned(),
        peers_epoch: node.peers.epoch(),
    }
}

/// What to do with the master's answer to a heartbeat.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Apply it; `record` is the cluster id to record first (this node's
    /// first registration).
    Apply { answer: HeartbeatResponse, record: Option<String> },
    /// A master this node must not obey (another cluster, not holding the
    /// cluster key, or refusing this node): apply nothing, stay
    /// unregistered, say why once per attempt, retry with backoff.
    Refuse(Refusal),
    /// No usable answer this time (a busy or failing master): retry at
    /// the next tick.
    Failed(CallError),
    /// A master that does not lead answered, naming the leader ("" when it
    /// knows none yet): beat there (or at the next master) at once.
    Elsewhere(String),
}

/// Why this node will not obey an answer (or a master).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the master refused this chunkserver ({status} {kind:?}: {message})")]
    Refused { status: u16, kind: Option<ErrorKind>, message: String },
    #[error("the master's answer is not signed with this node's cluster key ({0}); is --cluster-key-file this cluster's key, and --master its master?")]
    Unsigned(AuthError),
    #[error("the master's answer names no valid cluster id ({0:?})")]
    NoClusterId(String),
    #[error("the master is of cluster {theirs}, this chunkserver of cluster {mine} (DATA_DIR/cluster_id): not serving it")]
    OtherCluster { theirs: String, mine: String },
    #[error("recording the cluster id {id}: {reason}")]
    Unrecorded { id: String, reason: String },
}

/// Judges an answer: its signature (bound to the heartbeat whose
/// `x-dfs-auth` was `request_auth`) checked with the node's keys, then
/// [`decide`]. No I/O.
pub fn judge(
    auth: &ClusterAuth,
    url: &str,
    request_auth: &str,
    recorded: Option<&str>,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Decision {
    decide(url, recorded, status, auth.verify_answer(request_auth, status, headers, body), body)
}

/// Decides on an answer from `url` with `status` and `body` whose
/// signature check gave `signature`, for a node that recorded the cluster
/// id `recorded`.
pub fn decide(url: &str, recorded: Option<&str>, status: u16, signature: Result<(), AuthError>, body: &[u8]) -> Decision {
    let (kind, message) = refusal(body);
    if status == 401 || status == 403 {
        return Decision::Refuse(Refusal::Refused { status, kind, message });
    }
    if !(200..300).contains(&status) {
        return Decision::Failed(CallError::Refused { url: url.to_string(), status, kind, message });
    }
    if let Err(e) = signature {
        return Decision::Refuse(Refusal::Unsigned(e));
    }
    let answer: HeartbeatResponse = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => return Decision::Failed(CallError::BadAnswer { url: url.to_string(), reason: e.to_string() }),
    };
    if !cluster_id::valid(&answer.cluster_id) {
        return Decision::Refuse(Refusal::NoClusterId(answer.cluster_id.chars().take(40).collect()));
    }
    match recorded {
        Some(mine) if mine != answer.cluster_id => Decision::Refuse(Refusal::OtherCluster { theirs: answer.cluster_id, mine: mine.to_string() }),
        Some(_) => Decision::Apply { answer, record: None },
        None => {
            let record = Some(answer.cluster_id.clone());
            Decision::Apply { answer, record }
        }
    }
}

/// The wait before the next attempt after a refusal: doubling from the
/// heartbeat interval up to [`BACKOFF_MAX`].
pub fn backoff_after(previous: Option<Duration>, interval: Duration) -> Duration {
    previous.map_or(interval, |p| p.saturating_mul(2)).max(interval).min(BACKOFF_MAX.max(interval))
}

/// Most leaders followed at once, without waiting for the next tick.
const MAX_HOPS: usize = 7;

/// Longest wait between attempts on a master that was refused.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Shortest gap before an early heartbeat (one a request asked for, to
/// learn a peer that registered a moment ago).
const EARLY_BEAT_GAP: Duration = Duration::from_millis(200);
/// Largest heartbeat answer read (a long delete list).
const ANSWER_MAX_BYTES: u64 = dfs_server_kit::http::internal::SIGNED_BODY_MAX_BYTES as u64;

/// The heartbeat worker: a beat every interval, an early one when a
/// request waits for a fresher peer list, at once when the master asks for
/// a report. Failures are logged and retried next tick; refusals (see
/// [`Decision::Refuse`]) after a growing wait.
pub struct Heartbeats {
    node: Arc<Node>,
    http: reqwest::Client,
    interval: Duration,
    report_interval: Duration,
    /// When the last full report was taken (`None`: one is due).
    last_report: Option<Instant>,
    /// The wait after the last refusal (`None`: not refused).
    backoff: Option<Duration>,
    /// Token key ids of the master's that this node cannot derive (logged once).
    missing_keys: Vec<u32>,
    last_beat: Option<Instant>,
    /// Leaders followed at once since the last accepted beat.
    hops: usize,
}

impl Heartbeats {
    pub fn new(node: Arc<Node>, interval: Duration, report_interval: Duration) -> Self {
        let http = dfs_server_kit::tls::peer_client().timeout(Duration::from_secs(10)).pool_idle_timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Heartbeats { node, http, interval, report_interval, last_report: None, backoff: None, missing_keys: Vec::new(), last_beat: None, hops: 0 }
    }
}

impl Worker for Heartbeats {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    /// A request waits for a fresher peer list: beat early, but not within
    /// [`EARLY_BEAT_GAP`] of the last beat.
    async fn woken(&self) {
        self.node.peers.refresh_wanted().await;
        if let Some(gap) = self.last_beat.and_then(|t| EARLY_BEAT_GAP.checked_sub(t.elapsed())) {
            tokio::time::sleep(gap).await;
        }
    }

    /// One beat. A refusal waits out its backoff inside the pass (no early
    /// beat cuts it short), then the next beat is an interval later.
    async fn pass(&mut self) -> Next {
        let node = self.node.clone();
        self.last_beat = Some(Instant::now());
        let with_report = self.last_report.is_none_or(|t| t.elapsed() >= self.report_interval);
        let master = node.masters.current();
        let decision = beat(&node, &self.http, &url_no_query::<ep::Heartbeat>(&master, &()), with_report).await;
        let mut next = Next::Tick;
        let refused = match decision {
            Decision::Apply { answer, record } => match apply(&node, answer, record, with_report, &mut self.missing_keys).await {
                Ok(send_report) => {
                    self.backoff = None;
                    self.hops = 0;
                    if with_report {
                        self.last_report = Some(Instant::now());
                    }
                    if send_report {
                        self.last_report = None;
                        next = Next::Now;
                    }
                    None
                }
                Err(why) => Some(why),
            },
            Decision::Refuse(why) => Some(why),
            Decision::Failed(why) => {
                tracing::warn!(error = %why, "heartbeat failed");
                // The master may have restarted: report everything once it is back.
                self.last_report = None;
                node.masters.pass_over(&master);
                None
            }
            Decision::Elsewhere(leader) => {
                // The leader needs every replica: a full report, now.
                self.last_report = None;
                let moved = match leader.as_str() {
                    "" => {
                        node.masters.pass_over(&master);
                        false
                    }
                    l => node.masters.follow(&master, l),
                };
                tracing::info!(from = %master, to = %node.masters.current(), "the master does not lead; heartbeating the leader");
                // At once, a few times: masters that name each other while
                // an election settles wait for the next tick.
                if moved && self.hops < MAX_HOPS {
                    self.hops += 1;
                    next = Next::Now;
                }
                None
            }
        };
        node.peers.beat_finished();
        let Some(why) = refused else { return next };
        // Serve nothing for a master this node cannot trust; the next
        // accepted answer takes a full report again.
        node.registered.store(false, Ordering::Release);
        self.last_report = None;
        let wait = backoff_after(self.backoff, self.interval);
        self.backoff = Some(wait);
        tracing::error!(master = %master, retry_in_ms = wait.as_millis() as u64, "{why}");
        tokio::time::sleep(wait).await;
        Next::After(self.interval)
    }
}

/// Sends one signed heartbeat and judges the answer.
async fn beat(node: &Arc<Node>, http: &reqwest::Client, url: &str, with_report: bool) -> Decision {
    let n = node.clone();
    let hb = match tokio::task::spawn_blocking(move || build(&n, with_report)).await {
        Ok(hb) => hb,
        Err(e) => return Decision::Failed(CallError::Unsent { url: url.to_string(), reason: format!("building the heartbeat: {e}") }),
    };
    let mut request = match http.post(url).json(&hb).build() {
        Ok(r) => r,
        Err(e) => return Decision::Failed(CallError::Unsent { url: url.to_string(), reason: e.to_string() }),
    };
    node.auth.sign(&mut request);
    let request_auth = request.headers().get(HEADER_AUTH).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let resp = match http.execute(request).await {
        Ok(r) => r,
        Err(e) => return Decision::Failed(CallError::unreachable(url, e)),
    };
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    if let Some(leader) = headers.get(HEADER_LEADER).and_then(|v| v.to_str().ok()).filter(|_| status == 503) {
        return Decision::Elsewhere(leader.to_string());
    }
    let body = match body_up_to(url, resp, ANSWER_MAX_BYTES).await {
        Ok(b) => b,
        Err(e) => return Decision::Failed(e),
    };
    judge(&node.auth, url, &request_auth, node.cluster_id.get().map(String::as_str), status, &headers, &body)
}

/// Applies a verified answer; answers whether the master wants a full
/// report. Fails (nothing applied) if a first cluster id cannot be recorded.
async fn apply(node: &Arc<Node>, answer: HeartbeatResponse, record: Option<String>, with_report: bool, missing_keys: &mut Vec<u32>) -> Result<bool, Refusal> {
    if let Some(id) = record {
        let (dir, text) = (node.data_dir.clone(), id.clone());
        match tokio::task::spawn_blocking(move || cluster_id::store(&dir, &text)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Refusal::Unrecorded { id, reason: e.to_string() }),
            Err(e) => return Err(Refusal::Unrecorded { id, reason: e.to_string() }),
        }
        let _ = node.cluster_id.set(id.clone()); // only this loop sets it, once
        tracing::info!(cluster = %id, "registered with the master: this node now belongs to its cluster");
    }
    let missing = node.tokens.install(&node.auth.ring(), &answer.token_keys);
    if missing != *missing_keys && !missing.is_empty() {
        tracing::error!(token_keys = ?missing, "the master's token keys are derived from a cluster key this node does not hold: tokens signed with them are refused");
    }
    *missing_keys = missing;
    if let Some(peers) = answer.peers {
        node.peers.set(peers);
    }
    if with_report {
        node.registered.store(true, Ordering::Release);
    }
    apply_deletes(node, answer.delete).await;
    Ok(answer.send_report)
}

/// Carries out the master's deletes, in one trip to the blocking pool.
async fn apply_deletes(node: &Arc<Node>, deletes: Vec<DeleteReplica>) {
    if deletes.is_empty() {
        return;
    }
    let n = node.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || deletes.into_iter().for_each(|d| delete_one(&n, d))).await {
        tracing::error!(error = %e, "deleting replicas failed");
    }
}

/// Removes a replica at a version at most the one named (checked under its
/// lock: one moved on meanwhile is kept), unless a copy of it is being made
/// here: that copy is the master's own later order, and ends durable or removed.
pub(crate) fn delete_one(node: &Node, d: DeleteReplica) {
    if copy_in_progress(node, d.handle) {
        tracing::info!(chunk = %d.handle, "not deleting a replica while copying it");
        return;
    }
    match node.store.delete_up_to(d.handle, d.max_version) {
        Ok(version) => {
            node.replicas_deleted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(chunk = %d.handle, %version, "deleted a replica on the master's order");
        }
        Err(ChunkError::UnknownChunk(_)) => {}
        Err(ChunkError::VersionConflict { have, .. }) => {
            tracing::info!(chunk = %d.handle, version = %have, max_version = %d.max_version, "kept a replica newer than the delete order");
        }
        Err(e) => tracing::warn!(chunk = %d.handle, error = %e, "deleting a replica failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::auth::signature::{sign_reply, HEADER_REPLY_AUTH};
    use dfs_proto::auth::{ClusterKey, KeyRing};

    fn answer(cluster: &str) -> Vec<u8> {
        serde_json::to_vec(&HeartbeatResponse {
            cluster_id: cluster.into(),
            delete: vec![DeleteReplica { handle: dfs_proto::ChunkHandle(1), max_version: dfs_proto::ChunkVersion(9) }],
            ..Default::default()
        })
        .unwrap()
    }

    const URL: &str = "http://master/v1/heartbeat";

    fn applied(d: &Decision) -> Option<Option<&str>> {
        match d {
            Decision::Apply { record, .. } => Some(record.as_deref()),
            _ => None,
        }
    }

    #[test]
    fn only_a_signed_answer_of_this_nodes_cluster_is_applied() {
        let ok = || Ok(());
        // First registration: applied, and the id is recorded.
        assert_eq!(applied(&decide(URL, None, 200, ok(), &answer("c1"))), Some(Some("c1")));
        // The recorded cluster: applied, nothing to record.
        assert_eq!(applied(&decide(URL, Some("c1"), 200, ok(), &answer("c1"))), Some(None));
        // Another cluster: refused, its deletes not applied.
        let other = decide(URL, Some("c1"), 200, ok(), &answer("c2"));
        assert!(matches!(&other, Decision::Refuse(m) if m.to_string().contains("c1") && m.to_string().contains("c2")), "{other:?}");
        // Not signed by this cluster's key, whatever it says.
        let bad = || [AuthError::Missing, AuthError::BadSignature, AuthError::UnknownKey("k".into())];
        for (first, later) in bad().into_iter().zip(bad()) {
            assert!(matches!(decide(URL, None, 200, Err(first), &answer("c1")), Decision::Refuse(_)));
            assert!(matches!(decide(URL, Some("c1"), 200, Err(later), &answer("c1")), Decision::Refuse(_)));
        }
        // The master refused us: 401 or 403, signed or not.
        let refusal = br#"{"error":"EACCES","message":"chunkserver of cluster c9"}"#;
        for status in [401, 403] {
            assert!(matches!(decide(URL, Some("c1"), status, Err(AuthError::Missing), refusal), Decision::Refuse(m) if m.to_string().contains("c9")));
        }
        // No (valid) cluster id in a signed answer: refused, nothing recorded.
        assert!(matches!(decide(URL, None, 200, ok(), &answer("")), Decision::Refuse(_)));
        assert!(matches!(decide(URL, None, 200, ok(), &answer("../x")), Decision::Refuse(_)));
        // A failing master is retried, not refused.
        assert!(matches!(decide(URL, Some("c1"), 503, Err(AuthError::Missing), b"busy"), Decision::Failed(_)));
        assert!(matches!(decide(URL, Some("c1"), 200, ok(), b"{not json"), Decision::Failed(_)));
    }

    /// The signature check itself: bound to the cluster key, the heartbeat
    /// it answers, and the status and body.
    #[test]
    fn an_answer_is_judged_by_its_signature_for_this_very_heartbeat() {
        let ring = KeyRing::single(ClusterKey::generate());
        let auth = ClusterAuth::fixed(ring.clone());
        let mut req = reqwest::Client::new().post("http://master/v1/heartbeat").body("{}").build().unwrap();
        auth.sign(&mut req);
        let request_auth = req.headers().get(HEADER_AUTH).unwrap().to_str().unwrap().to_string();
        let nonce = dfs_proto::auth::signature::nonce_of(&request_auth).unwrap();
        let body = answer("c1");
        let signed_by = |ring: &KeyRing, nonce: &[u8; 16], body: &[u8]| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(HEADER_REPLY_AUTH, sign_reply(ring, nonce, 200, body).parse().unwrap());
            h
        };
        let good = signed_by(&ring, &nonce, &body);
        assert_eq!(applied(&judge(&auth, URL, &request_auth, Some("c1"), 200, &good, &body)), Some(None));
        let stranger = KeyRing::single(ClusterKey::generate());
        let cases = [
            ("another cluster's key", signed_by(&stranger, &nonce, &body), body.clone()),
            ("another heartbeat's answer", signed_by(&ring, &[7; 16], &body), body.clone()),
            ("a changed body", good.clone(), answer("c1").into_iter().chain(*b" ").collect()),
            ("no signature", reqwest::header::HeaderMap::new(), body.clone()),
        ];
        for (what, headers, body) in cases {
            assert!(matches!(judge(&auth, URL, &request_auth, Some("c1"), 200, &headers, &body), Decision::Refuse(_)), "{what}");
        }
    }

    #[test]
    fn backoff_doubles_from_the_interval_up_to_thirty_seconds() {
        let interval = Duration::from_millis(500);
        let mut wait = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let w = backoff_after(wait, interval);
            seen.push(w.as_millis() as u64);
            wait = Some(w);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
        // An interval longer than the cap is kept as it is.
        assert_eq!(backoff_after(None, Duration::from_secs(60)), Duration::from_secs(60));
    }
}
