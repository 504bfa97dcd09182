//! `GET /`: the master's status page, server-rendered HTML with no external
//! assets: the cluster, its capacity and namespace counts, and every
//! chunkserver. Everything shown from outside (addresses) is escaped.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;
use dfs_common::http::ApiError;

use super::{blocking, AppState};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub async fn page(State(s): State<AppState>) -> Result<Html<String>, ApiError> {
    let store = s.store.clone();
    let (cluster_id, stats) = blocking(move || Ok((store.cluster_id()?, store.counters()?.stats()))).await?;
    let nodes = s.chunks.chunkservers();
    let live: Vec<_> = nodes.iter().filter(|n| n.state == "live").collect();
    let capacity: u64 = live.iter().map(|n| n.capacity_bytes).sum();
    let used: u64 = live.iter().map(|n| n.used_bytes).sum();
    let mut rows = String::new();
    for n in &nodes {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td></tr>",
            escape(&n.node_id.to_string()),
            escape(&n.address),
            escape(&n.state),
            escape(&n.state),
            gib(n.capacity_bytes),
            gib(n.used_bytes),
            n.chunk_count,
            n.last_heartbeat_age_ms
        );
    }
    let uptime = s.started.elapsed().as_secs();
    let html = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>dfs master</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}} .live{{color:#070}} .dead{{color:#b00}}
</style></head><body>
<h1>dfs master</h1>
<p>Cluster <code>{cluster}</code> · dfs {version} · up {uptime} s</p>
<p>Capacity {capacity} · used {used} · {live} live / {total} chunkservers</p>
<p>{files} files · {dirs} directories · {symlinks} symlinks · {bytes} bytes</p>
<h2>Chunkservers</h2>
<table><tr><th>Node</th><th>Address</th><th>State</th><th>Capacity</th><th>Used</th><th>Chunks</th><th>Last heartbeat</th></tr>
{rows}</table>
<p>JSON: <a href="/v1/cluster">/v1/cluster</a> · <a href="/v1/chunkservers">/v1/chunkservers</a> · <a href="/v1/fs">/v1/fs</a></p>
</body></html>"#,
        cluster = escape(&cluster_id),
        version = env!("CARGO_PKG_VERSION"),
        capacity = gib(capacity),
        used = gib(used),
        live = live.len(),
        total = nodes.len(),
        files = stats.files,
        dirs = stats.directories,
        symlinks = stats.symlinks,
        bytes = stats.bytes,
    );
    Ok(Html(html))
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped() {
        assert_eq!(super::escape(r#"<script>"a"&'b'</script>"#), "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;");
    }
}
