//! Counters and gauges of the runtime, kept as atomics so the hot paths never lock.
//!
//! The server reads them when `/metrics` is scraped and copies them into Prometheus; this
//! crate stays free of any metrics library.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Event topic kinds counted separately in `events_published_total`.
pub const EVENT_KINDS: [&str; 4] = ["tenant", "board", "room", "instances"];

/// Process-wide runtime counters (one per registry).
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Open websocket sessions on this node.
    pub ws_connections: AtomicI64,
    /// Frames handed to socket writers.
    pub ws_messages_out: AtomicU64,
    /// Sessions closed with 1013 because their outbound queue overflowed.
    pub ws_slow_consumer_closes: AtomicU64,
    /// Live tenant supervisors on this node.
    pub tenant_actors_active: AtomicI64,
    /// Tenant supervisors that died (panicked); the registry starts a fresh one on next use.
    pub tenant_restarts: AtomicU64,
    /// Events published, indexed like [`EVENT_KINDS`].
    pub events_published: [AtomicU64; 4],
}

impl RuntimeStats {
    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter or gauge.
    pub fn read_u64(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Reads a signed gauge.
    pub fn read_i64(gauge: &AtomicI64) -> i64 {
        gauge.load(Ordering::Relaxed)
    }
}
