//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `/api/v1/openapi.json` (and written by `whatpro-hub openapi dump`).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    accounts, admin, api_keys, audit, auth, board_events, board_reports, boards, cards, checklists,
    entitlements, health, instance_tokens, me, presence, privacy, sessions, sso, stages, teams,
    usage, users,
};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(title = "WhatPro Hub API", description = "Kanban CRM, WhatsApp instances and team chat beside Chatwoot."),
    paths(
        health::live, health::ready,
        auth::login, sso::sso, auth::refresh, auth::logout,
        me::get, me::patch, privacy::export, sessions::list, sessions::revoke_one, sessions::revoke_others, sessions::change_password,
        accounts::list, accounts::create, accounts::get, accounts::patch, accounts::delete,
        entitlements::features, entitlements::get, entitlements::patch, usage::get, presence::list,
        audit::list, audit::get, audit::admin_list,
        boards::list, boards::create, boards::get, boards::patch, boards::delete,
        stages::list, stages::create, stages::patch, stages::delete, stages::reorder,
        cards::list, cards::create, cards::get, cards::patch, cards::delete, cards::move_card,
        checklists::list, checklists::create, checklists::patch, checklists::delete,
        board_events::list,
        board_reports::history, board_reports::time_in_stage, board_reports::sla_breaches,
        board_reports::metrics,
        users::list, users::create, users::get, users::patch, users::set_password, users::revoke_sessions,
        users::deactivate, users::reactivate,
        teams::list, teams::create, teams::get, teams::patch, teams::delete,
        teams::members, teams::add_member, teams::remove_member,
        api_keys::list, api_keys::create, api_keys::get, api_keys::revoke,
        instance_tokens::issue, instance_tokens::list, instance_tokens::revoke, instance_tokens::validate,
        admin::list_tenants, admin::get_tenant, admin::impersonate,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::FieldError)),
    modifiers(&Security),
    tags(
        (name = "health", description = "liveness and readiness"),
        (name = "auth", description = "sign-in"),
        (name = "me", description = "the caller"),
        (name = "admin", description = "super_admin operations"),
        (name = "accounts", description = "tenants"),
        (name = "entitlements", description = "plans, limits and feature flags"),
        (name = "users", description = "users of an account"),
        (name = "teams", description = "teams and members"),
        (name = "api-keys", description = "API keys"),
        (name = "instance-tokens", description = "short-lived instance tokens"),
        (name = "audit", description = "the audit log"),
        (name = "kanban", description = "boards, stages and cards"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document as pretty JSON (built once).
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc.to_pretty_json().unwrap_or_default()
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
