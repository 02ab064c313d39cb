//! The HTTP surface: routes, one module per resource, and the edge middleware.
//!
//! [`configure`] registers every route; `server.rs` wraps the app in the edge layers
//! ([`edge`], [`cors`], the tracing span). Handlers return `Result<_, ApiError>`; the edge turns
//! every error (including actix's own routing and extractor errors, and panics) into the error
//! shape of conventions.md.

pub mod admin;
pub mod auth;
pub mod client_ip;
pub mod console;
pub mod context;
pub mod cors;
pub mod edge;
pub mod extract;
pub mod health;
pub mod me;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;

use actix_web::web;

use crate::error::ApiError;

/// Registers every route of the hub.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extract::path_config())
        .app_data(extract::query_config())
        .service(
            web::scope("/health")
                .route("/live", web::get().to(health::live))
                .route("/ready", web::get().to(health::ready)),
        )
        .route("/metrics", web::get().to(metrics::scrape))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(openapi::document))
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/me", web::get().to(me::get)),
        )
        .service(
            web::scope("/admin")
                .route("/tenants", web::get().to(admin::list_tenants))
                .route("/tenants/{account_id}", web::get().to(admin::get_tenant)),
        )
        .route("/ws", web::get().to(crate::ws::upgrade))
        .route("/ws/internal-chat", web::get().to(crate::ws::upgrade))
        .route("/", web::get().to(console::index))
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
