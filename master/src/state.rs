//! [`Master`]: what the running master's parts share: the namespace store
//! and its writer, chunk management, the dashboard's history, the cluster
//! key, the workers' figures. The HTTP API (`api`) and the figures (`metrics`) both read it; it
//! knows neither.

use std::sync::Arc;
use std::time::Instant;

use dfs_server_kit::http::internal::ClusterAuth;
use dfs_server_kit::http::metrics::HttpMetrics;
use dfs_server_kit::worker::Workers;

use crate::chunks::ChunkManager;
use crate::history::History;
use crate::store::{Store, Writer};
use crate::users::Users;

/// Who may look at the dashboard.
#[derive(Clone, Debug, Default)]
pub struct DashboardAccess {
    /// Anyone, with the rights of "other"; else logged-in users only.
    pub public: bool,
    /// Host names the dashboard answers to besides IP addresses and `localhost`.
    pub hosts: Vec<String>,
}

/// The master's shared state; cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct Master {
    pub store: Store,
    pub writer: Writer,
    pub chunks: Arc<ChunkManager>,
    /// When the master started, for its uptime.
    pub started: Instant,
    /// Traffic, samples and the chunk census for the dashboard.
    pub history: Arc<History>,
    /// Request counts and latencies, for `/metrics`.
    pub http_metrics: Arc<HttpMetrics>,
    /// The cluster key: checks chunkservers' requests, signs answers.
    pub auth: Arc<ClusterAuth>,
    /// Users and their sessions: who is calling.
    pub users: Arc<Users>,
    /// Who may look at the dashboard, and under which host names.
    pub dashboard: Arc<DashboardAccess>,
    /// WebHDFS's delegation tokens.
    pub delegation: Arc<crate::delegation::Delegation>,
    /// This master's own API, for the rare request it makes to itself as a
    /// client (a WebHDFS TRUNCATE zeroing a cut chunk's tail).
    pub self_url: Arc<str>,
    /// The background workers' figures (the dashboard's sampler...), for `/metrics`.
    pub workers: Arc<Workers>,
    /// Whether this master serves, or which master does (several masters).
    pub role: Arc<crate::raft::role::Role>,
}
