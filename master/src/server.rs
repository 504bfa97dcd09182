//! Starting the master: open the store, start the writer, serve HTTP until
//! SIGINT or SIGTERM, then let the writer finish what is under way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dfs_server_kit::http::daemon::shutdown_signal;
use dfs_server_kit::http::internal::ClusterAuth;
use dfs_server_kit::http::serve::{serve, Limits};
use dfs_server_kit::worker::{Shutdown, Workers};
use tokio::net::TcpListener;

use crate::api::router;
use crate::chunks::trust::Trust;
use crate::chunks::{monitor::Monitor, safe_mode, ChunkConfig, ChunkManager};
use crate::cluster_key;
use crate::config::MasterConfig;
use crate::history::Sampler;
use crate::raft::commit::Propose;
use crate::raft::role::{Role, Standing};
use crate::state::{DashboardAccess, Master};
use crate::store::db::StoreOptions;
use crate::store::mutations::Defaults;
use crate::store::{Store, Writer, WriterConfig};
use crate::tokens::{Schedule, Tokens};
use crate::users::{AuthMode, Users};

/// The masters' own key, which signs and checks Raft's calls (chunkservers
/// do not hold it). Read once: a rotation takes a restart of each master.
fn raft_auth(file: &std::path::Path) -> anyhow::Result<Arc<ClusterAuth>> {
    anyhow::ensure!(file.exists(), "the Raft key file {} is missing: make it with `dfs-master keygen > FILE` (chmod 600)", file.display());
    let (keys, _) = cluster_key::open(file, true).with_context(|| format!("the Raft key file {}", file.display()))?;
    Ok(ClusterAuth::new(Arc::new(keys)))
}

/// Files open on mounts before this start are not known yet (if this
/// master ever had mounts holding files: a fresh or mount-less cluster
/// frees deleted files at once).
async fn hold_open_files(store: &Store, writer: &Writer) -> anyhow::Result<()> {
    let s = store.clone();
    if tokio::task::spawn_blocking(move || s.had_open_sessions()).await?? {
        writer.held().noted_already();
        writer.held().begin_grace(Instant::now());
    }
    Ok(())
}

/// Follows this master's standing in the group: when it comes to lead,
/// takes over (chunk management, the users, open files, the first admin)
/// and then serves; when another master leads, stands by. While it serves
/// it has a majority confirm its lead twice per election timeout: a leader
/// cut off from the others (openraft keeps it leader until it hears of a
/// later term) stops serving and commanding chunkservers within about one
/// election timeout, before the others elect a new leader.
async fn follow_leadership(state: Master, config: MasterConfig) {
    let Some(raft) = state.role.raft().cloned() else { return };
    let mut metrics = raft.metrics();
    let election = Duration::from_millis(config.raft_election_ms);
    loop {
        let standing = crate::raft::role::standing(&metrics.borrow_and_update());
        let leads = matches!(standing, Standing::Leads { .. });
        let mut failed = false;
        match standing {
            Standing::Leads { term } if !state.role.serves() => match confirmed_then_take_over(&state, &config, election).await {
                Ok(()) => {
                    state.role.serve(term);
                    tracing::info!(term, "leading the masters");
                }
                Err(e) => {
                    tracing::debug!(term, error = %e, "not serving as the leader yet; trying again");
                    failed = true;
                }
            },
            Standing::Leads { term } => {
                if let Err(e) = confirmed(&state, election).await {
                    state.role.unserve();
                    state.chunks.stand_by();
                    tracing::warn!(term, error = %e, "the majority did not confirm this leader: not serving until it does");
                    failed = true;
                }
            }
            Standing::Follows { leader } if state.chunks.is_active() => {
                state.chunks.stand_by();
                tracing::info!(leader = leader.as_deref().unwrap_or("unknown"), "another master leads; chunk management stands by");
            }
            _ => {}
        }
        let wait = if failed {
            Duration::from_secs(1).min(election)
        } else if leads {
            election / 2
        } else {
            Duration::from_secs(3600)
        };
        if failed {
            // Not at each of openraft's metrics changes (many a second).
            tokio::time::sleep(wait).await;
            continue;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Whether a majority confirms this master's lead within `within`.
async fn confirmed(state: &Master, within: Duration) -> anyhow::Result<()> {
    match tokio::time::timeout(within, state.role.linearizable()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => anyhow::bail!("{e}"),
        Err(_) => anyhow::bail!("no majority answered within {within:?}"),
    }
}

/// A majority's confirmation first: a leader cut off from the others must
/// not take chunk management over again.
async fn confirmed_then_take_over(state: &Master, config: &MasterConfig, election: Duration) -> anyhow::Result<()> {
    confirmed(state, election).await?;
    take_over(state, config).await
}

/// What a new leader does before it serves: everything clients see
/// comes from the store as the group committed it, not from memory of an
/// earlier term.
async fn take_over(state: &Master, config: &MasterConfig) -> anyhow::Result<()> {
    let (chunks, users, store) = (state.chunks.clone(), state.users.clone(), state.store.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        chunks.take_over()?;
        users.reload(&store)
    })
    .await??;
    hold_open_files(&state.store, &state.writer).await?;
    crate::users::bootstrap(&state.users, &state.store, &state.writer, &config.data_dir, &config.admin_user, &config.superuser_group).await
}

/// The users, and the first admin on a new store (`bootstrap`: else when
/// this master first leads).
async fn open_users(config: &MasterConfig, store: &Store, writer: &Writer, bootstrap: bool) -> anyhow::Result<Users> {
    let mode = if config.auth == "none" { AuthMode::None } else { AuthMode::Users };
    let (s, group, session_ms, simple) = (store.clone(), config.superuser_group.clone(), config.session_ms, config.webhdfs_simple_auth);
    let users = tokio::task::spawn_blocking(move || {
        let users = Users::new(mode, &group, session_ms).with_simple_names(simple);
        users.reload(&s).map(|_| users)
    })
    .await??;
    if bootstrap {
        crate::users::bootstrap(&users, store, writer, &config.data_dir, &config.admin_user, &config.superuser_group).await?;
    }
    if config.webhdfs_simple_auth && mode == AuthMode::Users {
        tracing::warn!("webhdfs_simple_auth = true: WebHDFS believes any user.name= it is given. Only for a trusted network.");
    }
    if mode == AuthMode::None {
        for _ in 0..3 {
            tracing::warn!("auth = none: ANYONE WHO REACHES THIS MASTER IS THE SUPERUSER. Only for throwaway clusters; never expose it.");
        }
    }
    Ok(users)
}

/// The URL this master reaches its own API at: the listening address,
/// or loopback when it listens on every address.
fn self_url(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{}://{}", dfs_server_kit::tls::scheme(), std::net::SocketAddr::new(ip, addr.port()))
}

pub async fn run(config: MasterConfig) -> anyhow::Result<()> {
    let members = config.raft_members().map_err(anyhow::Error::msg)?;
    // One master per data directory, held until this returns (or the
    // process dies): a second one would replay and append the same log.
    let _dir_lock = dfs_server_kit::dir_lock::lock_dir(&config.data_dir)?;
    // Bound first: a taken port fails before the store is open (a process
    // ending with RocksDB open and its threads running may crash on exit).
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let tls = config.tls.setup()?;
    // The client library (WebHDFS's data and truncates, downloads) trusts
    // this node's CA, not whatever the environment names.
    if let Some(ca) = config.tls.tls_ca.as_deref().filter(|_| tls.is_some()) {
        dfs_client::tls::init(Some(ca))?;
    }
    // RocksDB's CURRENT file: the directory held a namespace before.
    let had_namespace = config.data_dir.join("CURRENT").exists();
    anyhow::ensure!(
        members.is_none() || !had_namespace || config.data_dir.join(crate::raft::member::LOG_DIR).exists(),
        "{} holds a single master's namespace: a Raft group starts from empty data directories (a single master's namespace cannot join one yet)",
        config.data_dir.display()
    );
    let key_file = cluster_key::path(config.cluster_key_file.as_deref(), &config.data_dir);
    anyhow::ensure!(
        members.is_none() || key_file.exists(),
        "several masters need the same cluster key: make one with `dfs-master keygen > FILE`, chmod 600 it, give each master a copy and pass --cluster-key-file"
    );
    let (keys, _) = cluster_key::open(&key_file, had_namespace).with_context(|| format!("the cluster key file {}", key_file.display()))?;
    // Several masters name their cluster the same, each on its own.
    let cluster_id = members.as_ref().map(|_| keys.current().signing().derived_uuid("dfs cluster id").to_string());
    let auth = ClusterAuth::new(Arc::new(keys));
    let _key_watch = auth.watch();
    let dir = config.data_dir.clone();
    let options = StoreOptions { cluster_id, ..Default::default() };
    let store = tokio::task::spawn_blocking(move || crate::store::backup::clear_leftovers(&dir).and_then(|_| Store::open_with(&dir, options)))
        .await?
        .with_context(|| format!("opening the metadata store in {}", config.data_dir.display()))?;
    let writer_config = WriterConfig {
        defaults: Defaults { replication: config.default_replication, chunk_size_bytes: config.default_chunk_size_bytes },
        group_max: config.group_commit_max_ops,
        reap_batch: 1000,
        open_files_timeout: Duration::from_millis(config.open_files_timeout_ms),
    };
    let (role, writer, raft_auth) = match (&members, config.raft_id, &config.raft_key_file) {
        (Some(members), Some(id), Some(key_file)) => {
            let raft_auth = raft_auth(key_file)?;
            let raft = crate::raft::member::start(id, members, store.clone(), &config.data_dir, raft_auth.clone(), config.raft_election_ms).await?;
            // The leader's writer decides groups through pending writes and proposes them.
            let commit = Propose::new(raft.clone(), tokio::runtime::Handle::current());
            let writer = Writer::start_committing(store.with_pending(Arc::default()), writer_config, commit)?;
            (Arc::new(Role::member(raft)), writer, Some(raft_auth))
        }
        _ => (Arc::new(Role::single()), Writer::start(store.clone(), writer_config)?, None),
    };
    let ms = Duration::from_millis;
    let chunk_config = ChunkConfig {
        lease: ms(config.lease_ms),
        dead_after: ms(config.dead_after_ms),
        monitor_interval: ms(config.replication_interval_ms),
        copies_per_node: config.max_copies_per_node,
        gc_grace: ms(config.gc_grace_ms),
        startup_delete_delay: ms(config.startup_delete_delay_ms),
        safe_mode: safe_mode::Rule {
            threshold: config.safe_mode_threshold,
            extension: ms(config.safe_mode_extension_ms),
            timeout: ms(config.safe_mode_timeout_ms),
        },
    };
    let schedule = Schedule::new(config.token_lifetime_ms, config.token_key_roll_ms, config.heartbeat_interval_ms);
    let s = store.clone();
    let cluster_id = tokio::task::spawn_blocking(move || s.cluster_id()).await??;
    let trust = Trust::new(auth.clone(), Tokens::new(auth.clone(), schedule), cluster_id);
    let (s, w) = (store.clone(), writer.clone());
    let chunks = tokio::task::spawn_blocking(move || ChunkManager::load(s, w, chunk_config, trust)).await??;
    if role.raft().is_some() {
        chunks.stand_by(); // until this master leads: `follow_leadership`
    }
    let history = Arc::new(crate::history::History::default());
    // Dropped on an early return: the workers stop with it.
    let shutdown = Shutdown::default();
    let workers = Arc::new(Workers::default());
    let sampler = workers.spawn(Sampler::new(Arc::downgrade(&chunks), history.clone()), shutdown.signal());
    let monitor = workers.spawn(Monitor::new(Arc::downgrade(&chunks), chunk_config.monitor_interval), shutdown.signal());
    // Files open on mounts before this start are not known yet (if this
    // master ever had mounts holding files: a fresh or mount-less cluster
    // frees deleted files at once).
    if role.raft().is_none() {
        hold_open_files(&store, &writer).await?;
    }
    let sweeper = workers.spawn(crate::orphans::OrphanSweeper::new(store.clone(), writer.clone()), shutdown.signal());
    let http_metrics = dfs_server_kit::http::metrics::HttpMetrics::new("dfs_master");
    let users = Arc::new(open_users(&config, &store, &writer, role.raft().is_none()).await?);
    let dashboard = Arc::new(DashboardAccess {
        public: config.dashboard == "public",
        hosts: config.dashboard_hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_string).collect(),
    });
    let delegation = Arc::new(crate::delegation::Delegation::new(store.clone(), writer.clone()));
    let self_url: Arc<str> = self_url(listener.local_addr()?).into();
    let state = Master {
        store,
        writer: writer.clone(),
        chunks,
        started: std::time::Instant::now(),
        history,
        http_metrics,
        auth,
        users,
        dashboard,
        delegation,
        self_url,
        workers,
        role: role.clone(),
    };
    let mut app = router(state.clone(), config.max_request_body_bytes);
    let leadership = role.raft().zip(raft_auth).map(|(raft, raft_auth)| {
        // Bodies are bounded by the signature check (`SIGNED_BODY_MAX_BYTES`).
        app = app.clone().merge(crate::raft::network::routes(raft.clone(), raft_auth));
        tokio::spawn(follow_leadership(state.clone(), config.clone()))
    });

    let addr = listener.local_addr()?;
    // Scripts and tests read this line to learn the port when it was 0.
    println!("dfs-master listening on {}://{addr}", dfs_server_kit::tls::scheme());
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "master started");
    let limits = Limits::from_config(config.header_read_timeout_ms, config.body_idle_timeout_ms, config.max_connections);
    serve(listener, app, limits, tls.as_ref().map(|t| t.server.clone()), shutdown_signal()).await?;
    shutdown.stop();
    sampler.await.ok();
    monitor.await.ok();
    sweeper.await.ok();
    if let Some(raft) = role.raft() {
        // Groups waiting for their entry fail now (their clients retry at the next leader).
        raft.shutdown().await.ok();
        if let Some(task) = leadership {
            task.abort();
        }
    }
    // Every answered mutation is durable; wait out a group or reaper step under way.
    tokio::task::spawn_blocking(move || writer.close()).await?;
    tracing::info!("master stopped");
    Ok(())
}
