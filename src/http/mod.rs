//! The HTTP surface: routes, one module per resource, and the edge middleware.
//!
//! [`configure`] registers every route; `server.rs` wraps the app in the edge layers
//! ([`edge`], [`cors`], the tracing span). Handlers return `Result<_, ApiError>`; the edge turns
//! every error (including actix's own routing and extractor errors, and panics) into the error
//! shape of conventions.md.

pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod board_events;
pub mod board_reports;
pub mod boards;
pub mod cards;
pub mod checklists;
pub mod client_ip;
pub mod console;
pub mod context;
pub mod cors;
pub mod denials;
pub mod edge;
pub mod entitlements;
pub mod extract;
pub mod health;
pub mod instance_tokens;
pub mod me;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod presence;
pub mod privacy;
pub mod rate_limit;
pub mod sessions;
pub mod sso;
pub mod stages;
pub mod teams;
pub mod usage;
pub mod users;

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
                .route("/auth/sso", web::post().to(sso::sso))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/me", web::get().to(me::get))
                .route("/me", web::patch().to(me::patch))
                .route("/me/export", web::get().to(privacy::export))
                .route("/me/sessions", web::get().to(sessions::list))
                .route("/me/sessions", web::delete().to(sessions::revoke_others))
                .route(
                    "/me/sessions/{session_id}",
                    web::delete().to(sessions::revoke_one),
                )
                .route("/me/password", web::post().to(sessions::change_password))
                .route(
                    "/instance-tokens/validate",
                    web::get().to(instance_tokens::validate),
                )
                .route("/accounts", web::get().to(accounts::list))
                .route("/accounts", web::post().to(accounts::create))
                .service(
                    web::scope("/accounts/{account_id}")
                        .route("", web::get().to(accounts::get))
                        .route("", web::patch().to(accounts::patch))
                        .route("", web::delete().to(accounts::delete))
                        .route("/features", web::get().to(entitlements::features))
                        .route("/entitlements", web::get().to(entitlements::get))
                        .route("/entitlements", web::patch().to(entitlements::patch))
                        .route("/usage", web::get().to(usage::get))
                        .route("/presence", web::get().to(presence::list))
                        .route("/audit-log", web::get().to(audit::list))
                        .route("/audit-log/{audit_id}", web::get().to(audit::get))
                        .service(kanban_routes())
                        .route("/users", web::get().to(users::list))
                        .route("/users", web::post().to(users::create))
                        .route(
                            "/users/{user_id}/deactivate",
                            web::post().to(users::deactivate),
                        )
                        .route(
                            "/users/{user_id}/reactivate",
                            web::post().to(users::reactivate),
                        )
                        .route("/teams", web::get().to(teams::list))
                        .route("/teams", web::post().to(teams::create))
                        .route("/teams/{team_id}", web::get().to(teams::get))
                        .route("/teams/{team_id}", web::patch().to(teams::patch))
                        .route("/teams/{team_id}", web::delete().to(teams::delete))
                        .route("/teams/{team_id}/members", web::get().to(teams::members))
                        .route(
                            "/teams/{team_id}/members",
                            web::post().to(teams::add_member),
                        )
                        .route(
                            "/teams/{team_id}/members/{user_id}",
                            web::delete().to(teams::remove_member),
                        )
                        .route("/users/{user_id}", web::get().to(users::get))
                        .route("/users/{user_id}", web::patch().to(users::patch))
                        .route(
                            "/users/{user_id}/password",
                            web::post().to(users::set_password),
                        )
                        .route(
                            "/users/{user_id}/sessions",
                            web::delete().to(users::revoke_sessions),
                        )
                        .route("/api-keys", web::get().to(api_keys::list))
                        .route("/api-keys", web::post().to(api_keys::create))
                        .route("/api-keys/{key_id}", web::get().to(api_keys::get))
                        .route("/api-keys/{key_id}", web::delete().to(api_keys::revoke))
                        .route("/instance-tokens", web::get().to(instance_tokens::list))
                        .route("/instance-tokens", web::post().to(instance_tokens::issue))
                        .route(
                            "/instance-tokens/{token_id}",
                            web::delete().to(instance_tokens::revoke),
                        ),
                ),
        )
        .service(
            web::scope("/admin")
                .route("/tenants", web::get().to(admin::list_tenants))
                .route("/tenants/{account_id}", web::get().to(admin::get_tenant))
                .route("/impersonate", web::post().to(admin::impersonate))
                .route("/audit-log", web::get().to(audit::admin_list)),
        )
        .route("/ws", web::get().to(crate::ws::upgrade))
        .route("/ws/internal-chat", web::get().to(crate::ws::upgrade))
        .route("/", web::get().to(console::index))
        .default_service(web::to(not_found));
}

/// `/boards/...` (kanban.md, Endpoints).
fn kanban_routes() -> actix_web::Scope {
    web::scope("/boards")
        .route("", web::get().to(boards::list))
        .route("", web::post().to(boards::create))
        .route("/{board_id}", web::get().to(boards::get))
        .route("/{board_id}", web::patch().to(boards::patch))
        .route("/{board_id}", web::delete().to(boards::delete))
        .route("/{board_id}/events", web::get().to(board_events::list))
        .route("/{board_id}/metrics", web::get().to(board_reports::metrics))
        .route(
            "/{board_id}/sla-breaches",
            web::get().to(board_reports::sla_breaches),
        )
        .route(
            "/{board_id}/cards/{card_id}/history",
            web::get().to(board_reports::history),
        )
        .route(
            "/{board_id}/cards/{card_id}/time-in-stage",
            web::get().to(board_reports::time_in_stage),
        )
        .route("/{board_id}/stages", web::get().to(stages::list))
        .route("/{board_id}/stages", web::post().to(stages::create))
        .route(
            "/{board_id}/stages/reorder",
            web::post().to(stages::reorder),
        )
        .route(
            "/{board_id}/stages/{stage_id}",
            web::patch().to(stages::patch),
        )
        .route(
            "/{board_id}/stages/{stage_id}",
            web::delete().to(stages::delete),
        )
        .route("/{board_id}/cards", web::get().to(cards::list))
        .route("/{board_id}/cards", web::post().to(cards::create))
        .route("/{board_id}/cards/{card_id}", web::get().to(cards::get))
        .route("/{board_id}/cards/{card_id}", web::patch().to(cards::patch))
        .route(
            "/{board_id}/cards/{card_id}",
            web::delete().to(cards::delete),
        )
        .route(
            "/{board_id}/cards/{card_id}/move",
            web::post().to(cards::move_card),
        )
        .route(
            "/{board_id}/cards/{card_id}/checklist",
            web::get().to(checklists::list),
        )
        .route(
            "/{board_id}/cards/{card_id}/checklist",
            web::post().to(checklists::create),
        )
        .route(
            "/{board_id}/cards/{card_id}/checklist/{item_id}",
            web::patch().to(checklists::patch),
        )
        .route(
            "/{board_id}/cards/{card_id}/checklist/{item_id}",
            web::delete().to(checklists::delete),
        )
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
