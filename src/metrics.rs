//! Prometheus metrics (operations.md, "Metrics").
//!
//! HTTP metrics are observed once per request by the request span (`telemetry`); runtime
//! gauges are copied from the actors' atomic counters when `/metrics` is scraped, so the hot
//! paths never touch Prometheus.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use whatpro_actors::stats::{RuntimeStats, EVENT_KINDS};

use crate::db::Database;

/// Every metric the hub exports.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    ws_connections: IntGauge,
    ws_messages_out: IntCounter,
    ws_slow_consumer_closes: IntCounter,
    tenant_actors_active: IntGauge,
    tenant_restarts: IntCounter,
    events_published: IntCounterVec,
    db_pool_connections: IntGaugeVec,
    /// Sign-in outcomes, by `result`.
    pub auth_attempts: IntCounterVec,
    /// Time from start to ready (seconds), for the closing notes and dashboards.
    pub startup_seconds: Histogram,
}

impl Metrics {
    /// Registers every metric (and the process collector on Linux).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route template"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
            &["method", "route"],
        )?;
        let ws_connections = IntGauge::new("ws_connections", "open websocket sessions")?;
        let ws_messages_out =
            IntCounter::new("ws_messages_out_total", "frames written to websockets")?;
        let ws_slow_consumer_closes = IntCounter::new(
            "ws_slow_consumer_closes_total",
            "sessions closed because their outbound queue overflowed",
        )?;
        let tenant_actors_active =
            IntGauge::new("tenant_actors_active", "live tenant supervisors")?;
        let tenant_restarts = IntCounter::new(
            "tenant_actor_restarts_total",
            "tenant supervisors that died and were restarted",
        )?;
        let events_published = IntCounterVec::new(
            Opts::new("events_published_total", "events published, by topic kind"),
            &["kind"],
        )?;
        let db_pool_connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "database pool connections by state"),
            &["state"],
        )?;
        let auth_attempts = IntCounterVec::new(
            Opts::new("auth_attempts_total", "sign-in attempts by result"),
            &["result"],
        )?;
        let startup_seconds = Histogram::with_opts(HistogramOpts::new(
            "startup_seconds",
            "seconds from process start to ready",
        ))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(ws_connections.clone()))?;
        registry.register(Box::new(ws_messages_out.clone()))?;
        registry.register(Box::new(ws_slow_consumer_closes.clone()))?;
        registry.register(Box::new(tenant_actors_active.clone()))?;
        registry.register(Box::new(tenant_restarts.clone()))?;
        registry.register(Box::new(events_published.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        registry.register(Box::new(auth_attempts.clone()))?;
        registry.register(Box::new(startup_seconds.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            ws_connections,
            ws_messages_out,
            ws_slow_consumer_closes,
            tenant_actors_active,
            tenant_restarts,
            events_published,
            db_pool_connections,
            auth_attempts,
            startup_seconds,
        })
    }

    /// Records one finished request under its route template.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[method, route, status.to_string().as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Copies the runtime counters in and renders the text exposition format.
    pub fn render(&self, stats: &RuntimeStats, db: &Database) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        self.ws_connections.set(stats.ws_connections.load(Relaxed));
        sync_counter(&self.ws_messages_out, stats.ws_messages_out.load(Relaxed));
        sync_counter(
            &self.ws_slow_consumer_closes,
            stats.ws_slow_consumer_closes.load(Relaxed),
        );
        self.tenant_actors_active
            .set(stats.tenant_actors_active.load(Relaxed));
        sync_counter(&self.tenant_restarts, stats.tenant_restarts.load(Relaxed));
        for (kind, counter) in EVENT_KINDS.iter().zip(stats.events_published.iter()) {
            sync_counter(
                &self.events_published.with_label_values(&[kind]),
                counter.load(Relaxed),
            );
        }
        let (idle, in_use, waiting) = db.pool_status();
        for (state, value) in [("idle", idle), ("in_use", in_use), ("waiting", waiting)] {
            self.db_pool_connections
                .with_label_values(&[state])
                .set(value as i64);
        }
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Advances a Prometheus counter to an externally kept total.
fn sync_counter(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}
