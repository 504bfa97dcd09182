//! The chunkserver's own pages: `GET /` (status at a glance, kept current
//! by polling `/v1/status`), `GET /metrics`, and the fallback: JSON
//! `ENOENT` under `/v1/`, an HTML 404 page elsewhere.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::{Html, Response};
use axum::Extension;
use dfs_proto::endpoint::chunkserver as ep;
use dfs_proto::endpoint::Endpoint;
use dfs_server_kit::http::error::unknown_api_path;
use dfs_server_kit::http::html::{bar, bytes, escape, not_found, page as frame, LIVE_JS};
use dfs_server_kit::http::metrics::{respond, HttpMetrics};

use crate::node::{available_bytes, Node};

const NAV: &[(&str, &str)] = &[(ep::StatusPage::ROUTE, "Status"), (ep::Status::ROUTE, "JSON"), (ep::Metrics::ROUTE, "Metrics")];

/// One labelled figure kept current by the page's script.
fn figure(label: &str, key: &str, format: &str, value: String) -> String {
    format!(r#"<p>{label}: <span data-k="{key}" data-f="{format}">{}</span></p>"#, escape(&value))
}

/// `GET /`: the node, its storage, traffic and the scrubber's progress.
pub async fn page(State(n): State<Arc<Node>>) -> Html<String> {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let used = n.store.used_bytes();
    let capacity = used + available_bytes(&n.data_dir);
    let chunks = n.store.list().len();
    let scrub = n.scrub.progress();
    let uptime = format!(r#"<p>Up <span data-k="uptime_s">{}</span> s</p>"#, n.started.elapsed().as_secs());
    let body = format!(
        r#"<div class="cards">
<div class="card"><h2>Node</h2><p>Node id <code>{id}</code></p><p>Address <code>{addr}</code></p>
<p>Master <a href="{master}/">{master_text}</a></p>{uptime}</div>
<div class="card"><h2>Storage</h2>{chunks}<p>{bar}<span data-k="used_bytes" data-f="bytes">{used}</span> of <span data-k="capacity_bytes" data-f="bytes">{capacity}</span></p></div>
<div class="card"><h2>Traffic</h2>{read}{written}{replicated}{in_flight}</div>
<div class="card"><h2>Scrubber</h2>{passes}<p>{scrub_bar}<span data-k="scrub.pass_replicas_done">{done}</span> of <span data-k="scrub.pass_replicas_total">{total}</span> replicas this pass</p>{verified}{corrupt}</div>
<div class="card"><h2>Maintenance</h2>{copied}{deleted}{failures}</div>
</div>"#,
        id = escape(&n.id.to_string()),
        addr = escape(&n.address),
        master = escape(&n.master),
        master_text = escape(&n.master),
        chunks = figure("Replicas", "chunks", "", chunks.to_string()),
        bar = bar(used, capacity, "used_bytes/capacity_bytes"),
        used = bytes(used),
        capacity = bytes(capacity),
        read = figure("Bytes read", "bytes_read", "bytes", bytes(get(&n.bytes_read))),
        written = figure("Bytes written", "bytes_written", "bytes", bytes(get(&n.bytes_written))),
        replicated = figure("Bytes copied from peers", "bytes_replicated", "bytes", bytes(get(&n.bytes_replicated))),
        in_flight = figure("Requests in flight", "in_flight", "", n.in_flight.load(Ordering::Relaxed).to_string()),
        passes = figure("Passes completed", "scrub.passes_completed", "", scrub.passes_completed.to_string()),
        scrub_bar = bar(scrub.pass_done, scrub.pass_total, "scrub.pass_replicas_done/scrub.pass_replicas_total"),
        done = scrub.pass_done,
        total = scrub.pass_total,
        verified = figure("Replicas verified", "scrub.replicas_verified", "", get(&n.scrub.replicas_verified).to_string()),
        corrupt = figure("Corrupt found", "scrub.corrupt_found", "", scrub.corrupt_found.to_string()),
        copied = figure("Replicas copied", "replicas_copied", "", get(&n.replicas_copied).to_string()),
        deleted = figure("Replicas deleted", "replicas_deleted", "", get(&n.replicas_deleted).to_string()),
        failures = figure("Checksum failures", "checksum_failures", "", get(&n.checksum_failures).to_string()),
    );
    let script = format!("{LIVE_JS}\ndfsPoll('{}', d => dfsFill(document, d));", ep::Status::ROUTE);
    Html(frame("dfs chunkserver", NAV, &body, &script))
}

/// `GET /metrics`, with the HTTP figures the router counts (an extension
/// the router adds).
pub async fn metrics(State(n): State<Arc<Node>>, Extension(http): Extension<Arc<HttpMetrics>>) -> Response {
    let snapshot = tokio::task::spawn_blocking(move || crate::metrics::snapshot(&n)).await.unwrap_or_default();
    respond(&http, &snapshot)
}

/// Unknown paths: the API's JSON error under `/v1/`, a page elsewhere.
pub async fn fallback(uri: Uri) -> Response {
    if let Some(answer) = unknown_api_path(uri.path()) {
        return answer;
    }
    not_found("dfs chunkserver", NAV, uri.path())
}
