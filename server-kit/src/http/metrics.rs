//! Request metrics shared by the daemons, and the `/metrics` answer.
//!
//! [`track`] is an axum middleware: it counts every request by route (the
//! matched route pattern, so ids in paths do not explode the label set),
//! method and status, and observes its latency in a histogram per route and
//! method. Labels come from a fixed set whatever a client sends: a route
//! the router does not know is `unmatched`, a method outside the standard
//! ones is `other` ([`route_label`], [`method_label`]). Daemons add their point-in-time figures with [`Snapshot`] at
//! scrape time and answer with [`respond`] (OpenMetrics text, which
//! Prometheus scrapes natively).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label set: (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// The content type of the answer (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// Request counters and latency histograms of one daemon.
#[derive(Debug)]
pub struct HttpMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// Metrics named `{prefix}_http_requests_total` and
    /// `{prefix}_http_request_duration_seconds`.
    pub fn new(prefix: &str) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(format!("{prefix}_http_requests"), "HTTP requests by route, method and status", requests.clone());
        registry.register(
            format!("{prefix}_http_request_duration_seconds"),
            "Time to answer HTTP requests (until the response head), by route and method",
            latency.clone(),
        );
        Arc::new(HttpMetrics { registry, requests, latency })
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let (route, method) = (route.to_string(), method.to_string());
        self.requests.get_or_create(&vec![("route".into(), route.clone()), ("method".into(), method.clone()), ("status".into(), status.to_string())]).inc();
        self.latency.get_or_create(&vec![("route".into(), route), ("method".into(), method)]).observe(seconds);
    }
}

/// The route label: the route pattern the router matched (one of the
/// routes it was built with), or `unmatched`.
pub fn route_label(matched: Option<&MatchedPath>) -> String {
    matched.map_or("unmatched", |p| p.as_str()).to_string()
}

/// The method label: a standard method's name, or `other`.
pub fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] =
        [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::CONNECT, Method::OPTIONS, Method::TRACE, Method::PATCH];
    STANDARD.iter().find(|m| *m == method).map_or("other", |m| m.as_str())
}

/// The middleware: `Router::layer(axum::middleware::from_fn_with_state(metrics, track))`.
pub async fn track(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = method_label(req.method());
    let start = Instant::now();
    let response = next.run(req).await;
    m.observe(&route, method, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// Point-in-time figures gathered at scrape time.
#[derive(Default)]
pub struct Snapshot {
    registry: Registry,
}

impl Snapshot {
    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        g.set(value);
        self.registry.register(name, help, g);
    }

    /// A gauge with one series per label set.
    pub fn gauges(&mut self, name: &str, help: &str, series: Vec<(Labels, f64)>) {
        let family = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).set(value);
        }
        self.registry.register(name, help, family);
    }

    /// A counter (its total since the start), named `{name}_total`.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let c = Counter::<u64>::default();
        c.inc_by(value);
        self.registry.register(name, help, c);
    }

    /// A counter with one series per label set.
    pub fn counters(&mut self, name: &str, help: &str, series: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).inc_by(value);
        }
        self.registry.register(name, help, family);
    }
}

/// One label.
pub fn label(name: &str, value: impl Into<String>) -> Labels {
    vec![(name.to_string(), value.into())]
}

/// Encodes the request metrics and the snapshot.
pub fn render(http: &HttpMetrics, snapshot: &Snapshot) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; a failed encode would only shorten the answer.
    let _ = encode_registry(&mut out, &http.registry);
    let _ = encode_registry(&mut out, &snapshot.registry);
    let _ = encode_eof(&mut out);
    out
}

/// The `/metrics` answer.
pub fn respond(http: &HttpMetrics, snapshot: &Snapshot) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(http, snapshot)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_snapshots_render_as_openmetrics() {
        let m = HttpMetrics::new("dfs");
        m.observe("/v1/stat", "GET", 200, 0.001);
        m.observe("/v1/stat", "GET", 200, 0.002);
        let mut s = Snapshot::default();
        s.gauges("dfs_chunks", "chunks by state", vec![(label("state", "missing"), 2.0)]);
        s.counter("dfs_lease_grants", "leases", 7);
        let text = render(&m, &s);
        assert!(text.contains(r#"dfs_http_requests_total{route="/v1/stat",method="GET",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"dfs_http_request_duration_seconds_count{route="/v1/stat",method="GET"} 2"#), "{text}");
        assert!(text.contains(r#"dfs_chunks{state="missing"} 2.0"#), "{text}");
        assert!(text.contains("dfs_lease_grants_total 7"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn methods_outside_the_standard_ones_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for odd in ["FOO", "get", "PROPFIND", "X-123"] {
            assert_eq!(method_label(&Method::from_bytes(odd.as_bytes()).unwrap()), "other", "{odd}");
        }
    }

    /// Every series of the request counter, as its label text.
    fn series(text: &str) -> std::collections::BTreeSet<String> {
        text.lines().filter(|l| l.starts_with("t_http_requests_total{")).filter_map(|l| l.rsplit_once(' ').map(|(labels, _)| labels.to_string())).collect()
    }

    #[tokio::test]
    async fn what_a_client_sends_creates_no_new_series() {
        use axum::body::Body;
        use axum::routing::get;

        let m = HttpMetrics::new("t");
        let app = axum::Router::new()
            .route("/v1/chunks/{handle}", get(|| async { "ok" }))
            .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no") })
            .layer(axum::middleware::from_fn_with_state(m.clone(), track));
        let app = hyper_util::service::TowerToHyperService::new(app);
        let send = |method: &str, uri: &str| {
            let req = axum::http::Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
            hyper::service::Service::call(&app, req)
        };
        // One of each kind: a route, its wrong method, an odd method, no route.
        for (method, uri) in [("GET", "/v1/chunks/1"), ("POST", "/v1/chunks/1"), ("FOO", "/v1/chunks/1"), ("GET", "/x"), ("FOO", "/x")] {
            send(method, uri).await.unwrap();
        }
        let before = series(&render(&m, &Snapshot::default()));
        for i in 0..200 {
            let method = format!("M{i}");
            send(&method, &format!("/v1/chunks/{i}")).await.unwrap();
            send(&method, &format!("/garbage/{i}/%00?x={i}")).await.unwrap();
            send("GET", &format!("/v1/chunks/{i}")).await.unwrap();
            send("GET", &format!("/nothing-{i}")).await.unwrap();
        }
        let after = series(&render(&m, &Snapshot::default()));
        assert_eq!(before, after);
        assert!(after.iter().all(|s| !s.contains("M1") && !s.contains("garbage")), "{after:?}");
        assert!(after.iter().any(|s| s.contains(r#"route="unmatched",method="other""#)), "{after:?}");
    }
}
