//! WhatPro Hub server library.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library; the integration tests in
//! `tests/` start the same server in process through [`server::start`].
//!
//! Map of the crate (see `README.md` for the longer tour):
//! - [`config`]: configuration from the environment, validated once at start.
//! - [`cli`]: the `whatpro-hub` command line.
//! - [`server`]: builds the actix-web app, runs it, shuts it down gracefully.
//! - [`state`]: the shared application state handed to every handler.
//! - [`http`]: one module per REST resource, plus the edge middleware.
//! - [`integrations`]: clients of outside systems (Chatwoot).
//! - [`ws`]: the websocket upgrade and the transport pump around `whatpro_actors::WsSession`.
//! - [`auth`]: passwords, access tokens, the authenticated principal.
//! - [`db`]: the pool, migrations, embedded PostgreSQL and one module per aggregate.
//! - [`error`]: the one error type every handler returns and its mapping to HTTP.
//! - [`telemetry`], [`metrics`]: logs and Prometheus metrics.
//! - [`usage`]: the database side of usage metering (the supervisors count).

pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod integrations;
pub mod kanban;
pub mod maintenance;
pub mod metrics;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod usage;
pub mod ws;
