//! `whatpro-actors`: the tenant runtime of WhatPro Hub.
//!
//! This crate knows nothing about HTTP or SQL. It owns the realtime core:
//!
//! - [`registry::TenantRegistry`] maps an account id to its [`supervisor::TenantSupervisor`],
//!   starting one on first use, forgetting it when it stops idle and restarting it when it dies.
//! - [`supervisor::TenantSupervisor`] owns one tenant's websocket sessions, topic fan-out and
//!   timers.
//! - [`session::WsSession`] is one websocket connection: heartbeats, client ops, and the
//!   bounded outbound queue of [`outbound`] that closes slow consumers.
//! - [`board::BoardActor`] is the single writer of one board: it runs each write through the
//!   [`board::BoardStore`] port and publishes the committed events.
//! - [`presence`] keeps which users are online, with the reconnect grace period.
//! - [`bus::EventBus`] carries an event, serialized once, to the sessions that want it.
//! - [`protocol`] holds the websocket frame shapes; [`stats`] the counters the server exports;
//!   [`usage`] the per-tenant usage counters and the port they are flushed through.
//!
//! The server crate (`src/`) drives the socket itself (actix-ws) and pumps frames between the
//! socket and a [`session::WsSession`]; persistence and outside systems reach actors through
//! port traits that the server implements.

pub mod board;
pub mod bus;
pub mod outbound;
pub mod presence;
pub mod protocol;
pub mod registry;
pub mod session;
pub mod stats;
pub mod supervisor;
pub mod usage;

pub use board::{
    BoardEvent, BoardKey, BoardStore, CardAudience, CardScope, CardView, StoreOutcome,
};
pub use bus::{Audience, Event, EventBus, Topic};
pub use outbound::{CloseFrame, OutFrame, Outbound, OutboundLimits, OutboundReceiver};
pub use registry::{Ports, RegistryConfig, TenantRegistry, TenantSend};
pub use session::{BoardGrant, Refusal, SessionConfig, SessionIdentity, TopicAccess, WsSession};
pub use stats::RuntimeStats;
pub use supervisor::{TenantFacts, TenantSnapshot, TenantSupervisor, TimerSnapshot};
pub use usage::{UsageDelta, UsageSink};
