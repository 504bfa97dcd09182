//! The master's dashboard: server-rendered pages (every outside string
//! escaped with `dfs_common::http::html::escape`) kept current by a small
//! inline script that polls the JSON endpoints every 2 s and writes with
//! textContent only. No external assets: it works offline.
//!
//! - [`data`]: the JSON under `/v1/dashboard/` (overview, chunkservers,
//!   work, events, history).
//! - [`pages`]: `/`, `/chunkservers`, `/work`, `/events`.
//! - [`namespace`]: `/browse`, `/file`, `/download` and their JSON.
//! - [`charts`]: inline SVG charts of throughput and capacity.

pub mod charts;
pub mod data;
pub mod namespace;
pub mod pages;

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dfs_common::http::html::{not_found, page, LIVE_JS};
use dfs_common::http::metrics::respond;
use dfs_common::http::ApiError;
use dfs_common::ErrorKind;

use crate::state::Master;

pub const TITLE: &str = "dfs master";
pub const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/chunkservers", "Chunkservers"),
    ("/browse?path=/", "Browse"),
    ("/work", "Background work"),
    ("/events", "Events"),
    ("/metrics", "Metrics"),
];

/// The dashboard's own script (after the shared one).
const DASHBOARD_JS: &str = include_str!("dashboard.js");

/// A dashboard page around `body`; `live` adds the polling script.
pub fn frame(body: &str, live: &str) -> String {
    let script = if live.is_empty() { String::new() } else { format!("{LIVE_JS}\n{DASHBOARD_JS}\n{live}") };
    page(TITLE, NAV, body, &script)
}

/// `GET /metrics`: the master's figures and the API's request counts.
async fn metrics(State(s): State<Master>) -> Response {
    let figures = crate::metrics::snapshot(&s).await;
    respond(&s.http_metrics, &figures)
}

pub fn routes() -> Router<Master> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/chunkservers", get(pages::chunkservers))
        .route("/work", get(pages::work))
        .route("/events", get(pages::events))
        .route("/browse", get(namespace::browse_page))
        .route("/file", get(namespace::file_page))
        .route("/download", get(namespace::download))
        .route("/metrics", get(metrics))
        .route("/v1/dashboard/overview", get(data::overview_json))
        .route("/v1/dashboard/chunkservers", get(data::chunkservers_json))
        .route("/v1/dashboard/work", get(data::work_json))
        .route("/v1/dashboard/events", get(data::events_json))
        .route("/v1/dashboard/history", get(data::history_json))
        .route("/v1/dashboard/browse", get(namespace::browse_json))
        .route("/v1/dashboard/file", get(namespace::file_json))
}

/// Unknown paths: the API's JSON error under `/v1/`, an HTML page elsewhere.
pub async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/v1/") {
        return ApiError::new(ErrorKind::ENOENT, "no such endpoint").into_response();
    }
    not_found(TITLE, NAV, uri.path())
}

/// Nanoseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time_text(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_dates() {
        assert_eq!(super::time_text(0), "1970-01-01 00:00:00");
        assert_eq!(super::time_text(1_709_251_199 * 1_000_000_000), "2024-02-29 23:59:59");
    }
}
