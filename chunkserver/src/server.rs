//! Starting a chunkserver: node id, chunk store, HTTP server, heartbeats,
//! scrubber; serving until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dfs_proto::auth::KeySource;
use dfs_server_kit::http::daemon::shutdown_signal;
use dfs_server_kit::http::internal::ClusterAuth;
use dfs_server_kit::http::serve::{serve, Limits};
use dfs_server_kit::worker::Shutdown;
use tokio::net::TcpListener;

use crate::api::router;
use crate::chunk_store::ChunkStore;
use crate::config::ChunkserverConfig;
use crate::heartbeat::Heartbeats;
use crate::node::{new_node, Trust};
use crate::pacing::mib_per_sec;
use crate::scrubber::Scrubber;
use crate::{cluster_id, local_reads, node_id};

pub async fn run(config: ChunkserverConfig) -> anyhow::Result<()> {
    // One chunkserver per data directory, held until this returns (or the
    // process dies): two stores writing one replica would corrupt it.
    let _dir_lock = dfs_server_kit::dir_lock::lock_dir(&config.data_dir)?;
    let dir = config.data_dir.clone();
    let key_file = config.cluster_key_file.clone().ok_or_else(|| anyhow::anyhow!(crate::config::NO_CLUSTER_KEY))?;
    let (id, store, trust) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let keys = KeySource::open(&key_file)?;
        let cluster_id = cluster_id::load(&dir).context("cluster id")?;
        let id = node_id::load_or_create(&dir).context("node id")?;
        let store = ChunkStore::open(&dir).context("chunk store")?;
        Ok((id, store, Trust { auth: ClusterAuth::new(Arc::new(keys)), cluster_id }))
    })
    .await??;
    // Rotation without a restart: the file is re-read when it changes.
    let _key_watch = trust.auth.watch();
    for q in store.quarantined() {
        tracing::warn!(file = %q, "moved a damaged file aside at start-up");
    }
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let tls = config.tls.setup()?;
    // The client library (WebHDFS's data and truncates, downloads) trusts
    // this node's CA, not whatever the environment names.
    if let Some(ca) = config.tls.tls_ca.as_deref().filter(|_| tls.is_some()) {
        dfs_client::tls::init(Some(ca))?;
    }
    let addr = listener.local_addr()?;
    let address = config.advertise_url.clone().unwrap_or_else(|| format!("{}://{addr}", dfs_server_kit::tls::scheme()));
    let node = Arc::new(new_node(&config, id, store, address.clone(), trust)?);
    // Dropped on an early return: the workers stop with it.
    let shutdown = Shutdown::default();
    let ms = Duration::from_millis;
    let beats = Heartbeats::new(node.clone(), ms(config.heartbeat_interval_ms), ms(config.report_interval_ms));
    let beats = node.workers.spawn(beats, shutdown.signal());
    let scrub = Scrubber::new(node.clone(), ms(config.scrub_period_ms), mib_per_sec(config.scrub_mib_per_sec));
    let scrub = node.workers.spawn(scrub, shutdown.signal());
    println!("dfs-chunkserver listening on {address}");
    tracing::info!(%address, node = %id, master = %node.master, "chunkserver started");
    let (local, store) = (node.local.clone(), node.store.clone());
    let limits = Limits::from_config(config.header_read_timeout_ms, config.body_idle_timeout_ms, config.max_connections);
    serve(listener, router(node), limits, tls.as_ref().map(|t| t.server.clone()), shutdown_signal()).await?;
    if let Some(endpoint) = local {
        local_reads::remove_socket(&endpoint);
    }
    shutdown.stop();
    let _ = tokio::join!(beats, scrub);
    // A clean stop loses nothing: sync the replicas written since their
    // last sync, so the next start does not report them dirty.
    let synced = tokio::task::spawn_blocking(move || store.sync_dirty()).await.unwrap_or(0);
    tracing::info!(replicas = synced, "synced replicas written since their last sync");
    tracing::info!("chunkserver stopped");
    Ok(())
}
