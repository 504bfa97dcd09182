//! The master's dashboard: server-rendered pages (every outside string
//! escaped with `dfs_server_kit::http::html::escape`) kept current by a small
//! inline script that polls the JSON endpoints every 2 s and writes with
//! textContent only. No external assets: it works offline.
//!
//! - [`data`]: the JSON under `/v1/dashboard/` (overview, chunkservers,
//!   work, events, history).
//! - [`pages`]: `/`, `/chunkservers`, `/work`, `/events`.
//! - [`namespace`]: `/browse`, `/file`, `/download` and their JSON.
//! - [`charts`]: inline SVG charts of throughput and capacity.
//! - [`viewer`]: who looks (a login, or a public read-only dashboard), the
//!   host check against DNS rebinding, `/login` and `/logout`.

pub mod charts;
pub mod data;
pub mod namespace;
pub mod pages;
pub mod viewer;

use axum::extract::State;
use axum::http::Uri;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::MethodRouter;
use dfs_proto::endpoint::master as ep;
use dfs_proto::endpoint::{path_and_query, Endpoint};
use dfs_server_kit::http::error::unknown_api_path;
use dfs_server_kit::http::html::{escape, not_found, page, LIVE_JS};
use dfs_server_kit::http::metrics::respond;
use dfs_server_kit::http::route::Routes;

use crate::state::Master;

pub const TITLE: &str = "dfs master";
pub const NAV: &[(&str, &str)] = &[
    (ep::OverviewPage::ROUTE, "Overview"),
    (ep::ChunkserversPage::ROUTE, "Chunkservers"),
    // The root without a path.
    (ep::BrowsePage::ROUTE, "Browse"),
    (ep::WorkPage::ROUTE, "Background work"),
    (ep::EventsHtml::ROUTE, "Events"),
    (ep::Metrics::ROUTE, "Metrics"),
];

/// The path and query of a dashboard endpoint, escaped for an HTML
/// attribute (its bare route should the query not encode).
pub fn link<E: Endpoint<Path = ()>>(query: &E::Query) -> String {
    escape(&path_and_query::<E>(&(), query).unwrap_or_else(|_| E::ROUTE.to_string()))
}

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

/// The dashboard's endpoints on `r`, each behind the viewer check (but
/// the login form and `/metrics`, which scrapers read).
pub fn routes(r: Routes<Master>, gate: viewer::ViewerGate) -> Routes<Master> {
    let v = move |m: MethodRouter<Master>| m.route_layer(from_fn_with_state(gate.clone(), viewer::require_viewer));
    r.serve_with::<ep::OverviewPage, _, _>(pages::overview, v.clone())
        .serve_with::<ep::ChunkserversPage, _, _>(pages::chunkservers, v.clone())
        .serve_with::<ep::WorkPage, _, _>(pages::work, v.clone())
        .serve_with::<ep::EventsHtml, _, _>(pages::events, v.clone())
        .serve_with::<ep::BrowsePage, _, _>(namespace::browse_page, v.clone())
        .serve_with::<ep::FilePage, _, _>(namespace::file_page, v.clone())
        .serve_with::<ep::Download, _, _>(namespace::download, v.clone())
        .serve_with::<ep::DashOverview, _, _>(data::overview_json, v.clone())
        .serve_with::<ep::DashChunkservers, _, _>(data::chunkservers_json, v.clone())
        .serve_with::<ep::DashWork, _, _>(data::work_json, v.clone())
        .serve_with::<ep::DashEvents, _, _>(data::events_json, v.clone())
        .serve_with::<ep::DashHistory, _, _>(data::history_json, v.clone())
        .serve_with::<ep::DashBrowse, _, _>(namespace::browse_json, v.clone())
        .serve_with::<ep::DashFile, _, _>(namespace::file_json, v)
        .serve::<ep::Metrics, _, _>(metrics)
        .serve::<ep::LoginPage, _, _>(viewer::login_form)
        .serve::<ep::LoginForm, _, _>(viewer::login)
        .serve::<ep::Logout, _, _>(viewer::logout)
}

/// Unknown paths: the API's JSON error under `/v1/`, an HTML page elsewhere.
pub async fn fallback(uri: Uri) -> Response {
    if let Some(answer) = unknown_api_path(uri.path()) {
        return answer;
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
