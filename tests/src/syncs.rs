//! Proof that a close made a file durable: each chunkserver counts the
//! replica syncs writers asked of it (`dfs_chunkserver_replica_fsyncs` in
//! its `/metrics`), and a file's chunk locations say which node holds
//! which replica, so a test can check that every replica was synced.

use anyhow::{bail, Context};

use crate::Cluster;

/// Each chunkserver's count of replica syncs, in the cluster's order.
pub async fn replica_fsyncs(c: &Cluster) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for cs in &c.chunkservers {
        out.push(node_fsyncs(&cs.url).await?);
    }
    Ok(out)
}

/// The count of replica syncs of the chunkserver at `url`.
pub async fn node_fsyncs(url: &str) -> anyhow::Result<u64> {
    node_metric(url, "dfs_chunkserver_replica_fsyncs_total").await
}

/// A metric without labels of the server at `url` (e.g. a chunkserver's
/// `dfs_chunkserver_written_bytes_total`, to see an upload's progress).
pub async fn node_metric(url: &str, name: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    metric(&text, name).with_context(|| format!("{url}/metrics"))
}

/// The value of a metric without labels in OpenMetrics text.
fn metric(text: &str, name: &str) -> anyhow::Result<u64> {
    for line in text.lines() {
        if let Some(v) = line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')) {
            return Ok(v.trim().parse::<f64>()? as u64);
        }
    }
    bail!("no {name} in the metrics")
}

/// How many replicas of the file's chunks each chunkserver holds (those of
/// chunks `first..`), in the cluster's order.
pub async fn replicas_held(c: &Cluster, path: &str, first: u64) -> anyhow::Result<Vec<u64>> {
    let client = crate::client(&c.master.url);
    let attr = client.stat(path).await?;
    let chunks = attr.size.div_ceil(attr.chunk_size_bytes.max(1));
    let mut held = vec![0; c.chunkservers.len()];
    if chunks <= first {
        return Ok(held);
    }
    let locs = client.master().locate(attr.inode, first, chunks - first).await?;
    for r in locs.chunks.iter().flat_map(|l| &l.replicas) {
        let i = c.index_of(&r.address).with_context(|| format!("replica on an unknown node {}", r.address))?;
        held[i] += 1;
    }
    Ok(held)
}

/// How much each count went up from `before` to `after`.
pub fn deltas(before: &[u64], after: &[u64]) -> Vec<u64> {
    before.iter().zip(after).map(|(b, a)| a.saturating_sub(*b)).collect()
}
