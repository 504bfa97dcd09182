//! The JSON behind the dashboard's pages (`/v1/dashboard/...`), gathered
//! from counters, the sampler's history and short snapshots; the pages
//! render the same structs.

use axum::extract::State;
use axum::Json;
use dfs_proto::wire::dashboard::{EventsPage, EventsQuery, HistoryPage, NodeCounts, NodeRow, Overview, ScrubRow, Work};
use dfs_server_kit::http::{ApiError, ApiQuery};

use crate::api::store_call::blocking;
use crate::history::SAMPLE_EVERY;
use crate::state::Master;

pub async fn overview(s: &Master) -> Result<Overview, ApiError> {
    let store = s.store.clone();
    let (cluster_id, fs) = blocking(move || Ok((store.cluster_id()?, store.counters()?.stats()))).await?;
    let nodes = s.chunks.chunkservers();
    let mut counts = NodeCounts { total: nodes.len(), ..Default::default() };
    let (mut capacity, mut used) = (0u64, 0u64);
    for n in &nodes {
        match n.state.as_str() {
            "live" => counts.live += 1,
            "dead" => counts.dead += 1,
            "decommissioning" => counts.decommissioning += 1,
            _ => counts.decommissioned += 1,
        }
        if n.state != "dead" {
            // Reported numbers: many nodes' worth must not overflow.
            capacity = capacity.saturating_add(n.capacity_bytes);
            used = used.saturating_add(n.used_bytes);
        }
    }
    Ok(Overview {
        cluster_id,
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: s.started.elapsed().as_secs(),
        safe_mode: s.chunks.safe_mode_on(),
        capacity_bytes: capacity,
        used_bytes: used,
        free_bytes: capacity.saturating_sub(used),
        files: fs.files,
        directories: fs.directories,
        symlinks: fs.symlinks,
        bytes: fs.bytes,
        chunks: s.chunks.census(),
        chunkservers: counts,
    })
}

pub fn chunkservers(s: &Master) -> Vec<NodeRow> {
    let traffic = s.history.traffic();
    s.chunks
        .chunkservers()
        .into_iter()
        .map(|n| {
            let t = traffic.get(&n.node_id).copied().unwrap_or_default();
            // A dead node's last rates are no longer true.
            let live = n.state != "dead";
            NodeRow {
                read_bytes_per_sec: if live { t.read_bytes_per_sec } else { 0.0 },
                write_bytes_per_sec: if live { t.write_bytes_per_sec } else { 0.0 },
                scrub: t.scrub,
                info: n,
            }
        })
        .collect()
}

pub fn work(s: &Master) -> Work {
    let replication = s.chunks.replication_status();
    let scrub = chunkservers(s).into_iter().filter_map(|n| Some(ScrubRow { address: n.info.address, progress: n.scrub? })).collect();
    Work { replication_queue: replication.under_replicated, gc_backlog: replication.garbage_chunks + replication.deletes_waiting, replication, scrub }
}

/// Events shown when no limit is asked.
pub const EVENTS_DEFAULT: usize = 50;

pub fn events(s: &Master, q: EventsQuery) -> EventsPage {
    EventsPage { events: s.chunks.events.since(q.after, q.limit.unwrap_or(EVENTS_DEFAULT).min(crate::events::CAPACITY)) }
}

pub fn history(s: &Master) -> HistoryPage {
    HistoryPage { interval_s: SAMPLE_EVERY.as_secs(), samples: s.history.samples() }
}

pub async fn overview_json(State(s): State<Master>) -> Result<Json<Overview>, ApiError> {
    Ok(Json(overview(&s).await?))
}

pub async fn chunkservers_json(State(s): State<Master>) -> Json<Vec<NodeRow>> {
    Json(chunkservers(&s))
}

pub async fn work_json(State(s): State<Master>) -> Json<Work> {
    Json(work(&s))
}

pub async fn events_json(State(s): State<Master>, ApiQuery(q): ApiQuery<EventsQuery>) -> Json<EventsPage> {
    Json(events(&s, q))
}

pub async fn history_json(State(s): State<Master>) -> Json<HistoryPage> {
    Json(history(&s))
}
