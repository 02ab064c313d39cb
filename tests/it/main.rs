//! Integration tests: the real server on a real PostgreSQL over real HTTP and websockets.
//!
//! One test binary with a module per area (fewer binaries build much faster). The
//! [`harness`] gives every test its own database cloned from a migrated template, on the
//! embedded cluster (or `TEST_DATABASE_URL` when set).

mod harness;

mod admin;
mod audit;
mod auth;
mod database;
mod http_edge;
mod iam_access;
mod iam_sessions;
mod isolation;
mod kanban;
mod kanban_live;
mod presence;
mod privacy;
mod process;
mod sso;
mod tenancy;
mod usage;
mod websocket;
