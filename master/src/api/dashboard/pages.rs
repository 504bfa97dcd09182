//! The dashboard's status pages: the overview (`/`: the cluster, charts,
//! chunkservers, background work, recent events), and each part alone
//! (`/chunkservers`, `/work`, `/events`). Every section is rendered here
//! and kept current by dashboard.js from the JSON in [`super::data`].

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use dfs_server_kit::http::html::{bar, bytes, escape};

use super::data;
use super::{charts, frame, link};
use crate::events::Event;
use crate::state::Master;
use dfs_proto::endpoint::master as ep;
use dfs_proto::endpoint::Endpoint;
use dfs_proto::wire::dashboard::{EventsQuery, NodeRow, Overview, Work};

/// The page script: poll what the page shows.
const LIVE: &str = "dashStart();";

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A figure the script keeps current: `key` into the section's JSON.
fn k(key: &str, format: &str, text: impl std::fmt::Display) -> String {
    format!(r#"<span data-k="{key}" data-f="{format}">{}</span>"#, escape(&text.to_string()))
}

fn overview_section(o: &Overview) -> String {
    let c = &o.chunks;
    let n = &o.chunkservers;
    format!(
        r#"<section id="overview" data-src="{src}"><div class="cards">
<div class="card"><h2>Cluster</h2><p>Cluster <code>{id}</code></p><p>dfs {version} · up {uptime} s</p><p>Safe mode {safe}</p></div>
<div class="card"><h2>Capacity</h2><p>{bar}{used} used</p><p>{free} free of {total}</p></div>
<div class="card"><h2>Namespace</h2><p>{files} files · {dirs} directories · {links} symlinks</p><p>{fbytes} in files</p></div>
<div class="card"><h2>Chunks</h2><p>{chunks} chunks · {healthy} healthy</p><p><span class="under-replicated">{under} under-replicated</span> · <span class="stale">{stale} stale</span></p>
<p><span class="corrupt">{corrupt} corrupt</span> · <span class="missing">{missing} missing</span> · {over} over-replicated</p></div>
<div class="card"><h2>Chunkservers</h2><p>{summary}</p><p><span class="live">{live} live</span> · <span class="dead">{dead} dead</span> · <span class="decommissioning">{decom} decommissioning</span> · {decomd} decommissioned</p></div>
</div></section>"#,
        src = link::<ep::DashOverview>(&()),
        id = escape(&o.cluster_id),
        version = escape(&o.version),
        uptime = k("uptime_s", "", o.uptime_s),
        safe = k("safe_mode", "onoff", if o.safe_mode { "ON" } else { "off" }),
        bar = bar(o.used_bytes, o.capacity_bytes, "used_bytes/capacity_bytes"),
        used = k("used_bytes", "bytes", bytes(o.used_bytes)),
        free = k("free_bytes", "bytes", bytes(o.free_bytes)),
        total = k("capacity_bytes", "bytes", bytes(o.capacity_bytes)),
        files = k("files", "", o.files),
        dirs = k("directories", "", o.directories),
        links = k("symlinks", "", o.symlinks),
        fbytes = k("bytes", "bytes", bytes(o.bytes)),
        chunks = k("chunks.total", "", c.total),
        healthy = k("chunks.healthy", "", c.healthy),
        under = k("chunks.under_replicated", "", c.under_replicated),
        stale = k("chunks.stale", "", c.stale),
        corrupt = k("chunks.corrupt", "", c.corrupt),
        missing = k("chunks.missing", "", c.missing),
        over = k("chunks.over_replicated", "", c.over_replicated),
        summary = k("chunkservers", "nodes", format!("{} live / {} chunkservers", n.live, n.total)),
        live = k("chunkservers.live", "", n.live),
        dead = k("chunkservers.dead", "", n.dead),
        decom = k("chunkservers.decommissioning", "", n.decommissioning),
        decomd = k("chunkservers.decommissioned", "", n.decommissioned),
    )
}

fn node_row(n: &NodeRow) -> String {
    let rate = |v: f64| format!("{}/s", bytes(v.round() as u64));
    format!(
        r#"<tr class="node"><td><code>{id}</code></td><td><a href="{a}/">{a}</a></td><td class="{s}">{s}</td><td>{bar}{used} of {cap}</td><td class="num">{chunks}</td><td class="num">{age:.1} s</td><td class="num">{r}</td><td class="num">{w}</td></tr>"#,
        id = escape(&n.info.node_id.to_string()),
        a = escape(&n.info.address),
        s = escape(&n.info.state),
        bar = bar(n.info.used_bytes, n.info.capacity_bytes, ""),
        used = bytes(n.info.used_bytes),
        cap = bytes(n.info.capacity_bytes),
        chunks = n.info.chunk_count,
        age = n.info.last_heartbeat_age_ms as f64 / 1000.0,
        r = rate(n.read_bytes_per_sec),
        w = rate(n.write_bytes_per_sec),
    )
}

fn nodes_section(rows: &[NodeRow]) -> String {
    let body: String = rows.iter().map(node_row).collect();
    format!(
        r#"<section><h2>Chunkservers</h2><table><thead><tr><th>Node</th><th>Address</th><th>State</th><th>Capacity</th><th>Chunks</th><th>Last heartbeat</th><th>Read</th><th>Write</th></tr></thead>
<tbody id="cs-rows" data-src="{src}">{body}</tbody></table></section>"#,
        src = link::<ep::DashChunkservers>(&())
    )
}

fn scrub_rows(w: &Work) -> String {
    w.scrub
        .iter()
        .map(|r| {
            let p = &r.progress;
            let last = if p.last_pass_completed_unix_ms == 0 { "—".to_string() } else { super::time_text(p.last_pass_completed_unix_ms as i64 * 1_000_000) };
            format!(
                r#"<tr><td>{a}</td><td>{bar}{done} of {total}</td><td class="num">{passes}</td><td class="num">{corrupt}</td><td>{last}</td></tr>"#,
                a = escape(&r.address),
                bar = bar(p.pass_done, p.pass_total, ""),
                done = p.pass_done,
                total = p.pass_total,
                passes = p.passes_completed,
                corrupt = p.corrupt_found,
            )
        })
        .collect()
}

fn work_section(w: &Work) -> String {
    let r = &w.replication;
    format!(
        r#"<section id="work" data-src="{src}"><h2>Background work</h2><div class="cards">
<div class="card"><h3>Replication</h3><p>Queue: {queue} chunks under-replicated · {missing} missing</p><p>Copies running {running} · done {done} · failed {failed}</p></div>
<div class="card"><h3>Garbage collection</h3><p>Backlog {backlog}: {garbage} removed chunks in grace · {waiting} deletions waiting</p><p>Deletions sent {sent}</p></div>
<div class="card"><h3>Safe mode</h3><p>{safe} · {reported} of {total_chunks} chunks reported</p></div>
</div><h3>Scrubbing</h3><table><thead><tr><th>Chunkserver</th><th>Current pass</th><th>Passes</th><th>Corrupt found</th><th>Last pass ended (UTC)</th></tr></thead><tbody id="scrub-rows">{rows}</tbody></table></section>"#,
        src = link::<ep::DashWork>(&()),
        queue = k("replication_queue", "", w.replication_queue),
        missing = k("replication.missing", "", r.missing),
        running = k("replication.copies_running", "", r.copies_running),
        done = k("replication.copies_done", "", r.copies_done),
        failed = k("replication.copies_failed", "", r.copies_failed),
        backlog = k("gc_backlog", "", w.gc_backlog),
        garbage = k("replication.garbage_chunks", "", r.garbage_chunks),
        waiting = k("replication.deletes_waiting", "", r.deletes_waiting),
        sent = k("replication.deletes_sent", "", r.deletes_sent),
        safe = k("replication.safe_mode.on", "onoff", if r.safe_mode.on { "ON" } else { "off" }),
        reported = k("replication.safe_mode.reported_chunks", "", r.safe_mode.reported_chunks),
        total_chunks = k("replication.safe_mode.total_chunks", "", r.safe_mode.total_chunks),
        rows = scrub_rows(w),
    )
}

fn events_section(events: &[Event], limit: usize) -> String {
    let rows: String = events
        .iter()
        .map(|e| {
            let when = super::time_text(e.unix_ms as i64 * 1_000_000);
            format!(r#"<tr><td>{when}</td><td class="{k}">{k}</td><td>{m}</td></tr>"#, k = e.kind, m = escape(&e.message))
        })
        .collect();
    format!(
        r#"<section><h2>Recent events</h2><table><thead><tr><th>Time (UTC)</th><th>Kind</th><th>What</th></tr></thead><tbody id="event-rows" data-limit="{limit}" data-src="{src}">{rows}</tbody></table></section>"#,
        src = link::<ep::DashEvents>(&EventsQuery { after: 0, limit: Some(limit) })
    )
}

fn json_links(links: &[&str]) -> String {
    let items: Vec<String> = links.iter().map(|l| format!(r#"<a href="{l}">{l}</a>"#, l = escape(l))).collect();
    format!(r#"<p class="muted">JSON: {}</p>"#, items.join(" · "))
}

fn page(body: String) -> Response {
    Html(frame(&body, LIVE)).into_response()
}

/// `GET /`
pub async fn overview(State(s): State<Master>) -> Response {
    let o = match data::overview(&s).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let events = data::events(&s, EventsQuery { after: 0, limit: Some(10) });
    let body = [
        overview_section(&o),
        format!(
            r#"<h2>Last hour</h2><div id="history" data-src="{}">{}</div>"#,
            link::<ep::DashHistory>(&()),
            charts::both(&data::history(&s).samples, unix_ms())
        ),
        nodes_section(&data::chunkservers(&s)),
        work_section(&data::work(&s)),
        events_section(&events.events, 10),
        json_links(&[ep::DashOverview::ROUTE, ep::DashHistory::ROUTE, ep::Cluster::ROUTE, ep::Fs::ROUTE]),
    ];
    page(body.concat())
}

/// `GET /chunkservers`
pub async fn chunkservers(State(s): State<Master>) -> Response {
    page(nodes_section(&data::chunkservers(&s)) + &json_links(&[ep::DashChunkservers::ROUTE, ep::Chunkservers::ROUTE]))
}

/// `GET /work`
pub async fn work(State(s): State<Master>) -> Response {
    page(work_section(&data::work(&s)) + &json_links(&[ep::DashWork::ROUTE, ep::Replication::ROUTE]))
}

/// `GET /events`
pub async fn events(State(s): State<Master>) -> Response {
    let limit = data::EVENTS_DEFAULT;
    let events = data::events(&s, EventsQuery { after: 0, limit: Some(limit) });
    page(events_section(&events.events, limit) + &json_links(&[ep::DashEvents::ROUTE]))
}
