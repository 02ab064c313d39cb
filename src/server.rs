//! Starting and stopping the hub.
//!
//! [`start`] brings up the database (the embedded cluster when `DATABASE_URL` is unset),
//! applies migrations, bootstraps a first start, starts the tenant registry and the HTTP
//! listeners, and returns a [`RunningServer`]. [`RunningServer::shutdown`] is the graceful stop
//! of operations.md: readiness turns 503, listeners stop accepting, websockets get 1012,
//! in-flight requests finish within the grace period, the pool closes and the embedded
//! PostgreSQL stops last. `run` is the `serve` command: start, wait for a signal, stop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use tracing_actix_web::TracingLogger;
use uuid::Uuid;
use whatpro_actors::outbound::close_code;
use whatpro_actors::{CloseFrame, EventBus, Ports, RegistryConfig, TenantRegistry};

use crate::auth::revocation::RevocationCache;
use crate::auth::TokenService;
use crate::bootstrap::{self, Bootstrapped};
use crate::config::Config;
use crate::db::embedded::{self, EmbeddedOptions, EmbeddedPostgres};
use crate::db::{self, Database};
use crate::http;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::telemetry::HubRootSpan;

/// Name of the database inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "whatpro";

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The embedded PostgreSQL could not start.
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
    /// The database refused.
    #[error(transparent)]
    Database(#[from] db::DbError),
    /// First-start bootstrap failed.
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    /// A listener could not bind, or similar.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl StartError {
    /// Process exit code: configuration problems are 2, the rest 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Bootstrap(bootstrap::BootstrapError::Policy(_)) => 2,
            _ => 1,
        }
    }
}

/// Start-up choices that are not configuration.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    /// Apply pending migrations (`serve --no-migrate` turns this off).
    pub migrate: bool,
    /// Start the embedded cluster with durability off (the test harness only).
    pub embedded_fast_unsafe: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            embedded_fast_unsafe: false,
        }
    }
}

/// The database the hub uses, and the embedded cluster behind it when there is one.
pub struct DatabaseTarget {
    /// The owner's URL (migrations run as this role).
    pub owner_url: String,
    /// The embedded cluster, when `DATABASE_URL` is unset.
    pub embedded: Option<EmbeddedPostgres>,
}

/// Resolves `DATABASE_URL`, or starts the embedded cluster and creates its database.
pub async fn database_target(
    config: &Config,
    fast_unsafe: bool,
) -> Result<DatabaseTarget, StartError> {
    if let Some(url) = &config.database_url {
        return Ok(DatabaseTarget {
            owner_url: url.clone(),
            embedded: None,
        });
    }
    if config.is_production() {
        tracing::warn!("DATABASE_URL is unset: using the embedded PostgreSQL in production");
    }
    let cluster = embedded::start(EmbeddedOptions {
        data_dir: config.data_dir.clone(),
        fast_unsafe,
    })
    .await?;
    db::ensure_database(&cluster.url("postgres"), EMBEDDED_DATABASE, None).await?;
    Ok(DatabaseTarget {
        owner_url: cluster.url(EMBEDDED_DATABASE),
        embedded: Some(cluster),
    })
}

/// A started hub.
pub struct RunningServer {
    /// The main listener's address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The metrics listener's address, with `METRICS_BIND`.
    pub metrics_addr: Option<SocketAddr>,
    /// The shared state (tests reach the registry and the bus through it).
    pub state: AppState,
    /// What the first start created, if this was one.
    pub bootstrapped: Option<Bootstrapped>,
    handles: Vec<ServerHandle>,
    background: Vec<actix_web::rt::task::JoinHandle<()>>,
    embedded: Option<EmbeddedPostgres>,
    stopped: bool,
}

/// Starts the hub. Must run inside an actix `System`.
pub async fn start(config: Config, options: StartOptions) -> Result<RunningServer, StartError> {
    let started = Instant::now();
    let target = database_target(&config, options.embedded_fast_unsafe).await?;
    start_with_database(config, options, target, started).await
}

/// Starts the hub on an already resolved database (the test harness uses this).
pub async fn start_with_database(
    config: Config,
    options: StartOptions,
    target: DatabaseTarget,
    started: Instant,
) -> Result<RunningServer, StartError> {
    let metrics = Arc::new(Metrics::new()?);
    if options.migrate {
        let applied = db::run_migrations(&target.owner_url).await?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied migrations");
        }
    }
    db::ensure_audit_partitions(&target.owner_url).await?;
    let database = Database::connect(&target.owner_url, config.database_pool_size)?;
    let bootstrapped = bootstrap::first_start(&database, &config).await?;
    if let Some(b) = &bootstrapped {
        tracing::info!(account_id = %b.account_id, "first start: created the platform account and its super_admin");
    }

    let registry = TenantRegistry::with_ports(
        RegistryConfig {
            idle_timeout: config.tuning.tenant_idle_timeout,
            arbiters: config.tuning.http_workers.clamp(1, 4),
            send_timeout: Duration::from_secs(5),
            usage_flush_interval: config.tuning.usage_flush_interval,
            sla_check_interval: config.tuning.sla_check_interval,
            presence_grace: config.tuning.presence_grace,
        },
        Arc::new(Default::default()),
        Ports {
            usage: Some(Arc::new(crate::usage::DbUsageSink::new(database.clone()))),
            boards: Some(Arc::new(crate::kanban::store::DbBoardStore::new(
                database.clone(),
            ))),
        },
    );
    let config = Arc::new(config);
    let revocations = RevocationCache::default();
    let state = AppState {
        revocations: revocations.clone(),
        api_keys: Default::default(),
        login_throttle: Default::default(),
        rate_limits: Arc::new(crate::http::rate_limit::RateLimits::new(&config)),
        tokens: TokenService::new(
            &config.jwt_secret,
            &config.jwt_issuer,
            config.tuning.access_token_ttl,
        ),
        db: database,
        bus: EventBus::new(registry.clone()),
        registry,
        metrics,
        draining: Arc::new(AtomicBool::new(false)),
        started_at: started,
        node_id: Uuid::now_v7(),
        config: config.clone(),
    };

    // Revocations reach this node within a poll; their websockets are closed as they arrive.
    let poll_state = state.clone();
    let revocation_poll = actix_web::rt::spawn(revocations.run(state.db.clone(), move |ids| {
        crate::ws::close_revoked_sessions(&poll_state, &ids)
    }));
    let data = web::Data::new(state.clone());
    let app_data = data.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_data.clone())
            .configure(http::configure)
            .wrap(from_fn(http::rate_limit::rate_limit))
            .wrap(from_fn(http::cors::cors))
            .wrap(from_fn(http::edge::edge))
            .wrap(from_fn(http::denials::audit_denials))
            .wrap(TracingLogger::<HubRootSpan>::new())
    })
    .workers(config.tuning.http_workers.max(1))
    .disable_signals()
    .client_request_timeout(Duration::from_secs(5))
    .keep_alive(Duration::from_secs(75))
    .shutdown_timeout(config.shutdown_grace.as_secs())
    .bind(config.listen_addr())?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no listener address"))?;
    let server = server.run();
    let mut handles = vec![server.handle()];
    actix_web::rt::spawn(server);

    let mut metrics_addr = None;
    if let Some(bind) = config.metrics_bind {
        let metrics_data = data.clone();
        let metrics_server = HttpServer::new(move || {
            App::new()
                .app_data(metrics_data.clone())
                .route("/metrics", web::get().to(http::metrics::scrape_dedicated))
        })
        .workers(1)
        .disable_signals()
        .bind(bind)?;
        metrics_addr = metrics_server.addrs().first().copied();
        let metrics_server = metrics_server.run();
        handles.push(metrics_server.handle());
        actix_web::rt::spawn(metrics_server);
    }
    state
        .metrics
        .startup_seconds
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(%addr, startup_ms = started.elapsed().as_millis() as u64, "listening");
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        bootstrapped,
        handles,
        background: vec![revocation_poll],
        embedded: target.embedded,
        stopped: false,
    })
}

impl RunningServer {
    /// The graceful stop of operations.md.
    pub async fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let state = &self.state;
        state.draining.store(true, Ordering::Release);
        for handle in &self.handles {
            handle.pause().await;
        }
        state
            .registry
            .shutdown(CloseFrame::new(
                close_code::SERVICE_RESTART,
                "server restarting",
            ))
            .await;
        for handle in &self.handles {
            handle.stop(true).await;
        }
        state.registry.stop_arbiters();
        for task in &self.background {
            task.abort();
        }
        state.db.close();
        if let Some(cluster) = self.embedded.as_mut() {
            cluster.stop().await;
        }
        tracing::info!("stopped");
    }
}

/// The `serve` command: start, print a first-start password once, run until SIGTERM or
/// SIGINT, stop gracefully. A second signal exits at once. Returns the exit code.
pub async fn run(config: Config, options: StartOptions) -> i32 {
    let mut server = match start(config, options).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("whatpro-hub: {e}");
            return e.exit_code();
        }
    };
    if let Some(Bootstrapped {
        email,
        generated_password: Some(password),
        ..
    }) = &server.bootstrapped
    {
        // Printed once, to stdout only: never to the log.
        println!("First start: created super_admin {email} with password: {password}");
        println!("Store it now; it is not shown again.");
    }
    println!("WhatPro Hub listening on http://{}", server.addr);
    wait_for_signal().await;
    tracing::info!("shutting down");
    actix_web::rt::spawn(async {
        wait_for_signal().await;
        eprintln!("whatpro-hub: second signal, exiting now");
        std::process::exit(1);
    });
    server.shutdown().await;
    0
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can only be killed; wait forever.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
