//! `/admin/*`: super_admin operations (operations.md, "Admin endpoints"). Live state is per
//! node, so answers carry this node's id.

use std::collections::HashMap;

use actix_web::web;
use serde::Serialize;
use uuid::Uuid;
use whatpro_actors::supervisor::GetSnapshot;
use whatpro_actors::{TenantSnapshot, TimerSnapshot};

use crate::auth::Principal;
use crate::db::{self, accounts};
use crate::error::ApiError;
use crate::state::AppState;

/// A live tenant supervisor of this node.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveTenant {
    /// The account.
    pub account_id: Uuid,
    /// Its name.
    pub name: Option<String>,
    /// Whether a supervisor runs on this node.
    pub live: bool,
    /// When this supervisor started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Connected websocket sessions.
    pub sessions: usize,
    /// Board actors loaded.
    pub boards_loaded: usize,
    /// Room actors loaded.
    pub rooms_loaded: usize,
    /// The supervisor's timers.
    #[schema(value_type = Vec<Object>)]
    pub timers: Vec<TimerSnapshot>,
    /// The node answering.
    pub node_id: Uuid,
}

/// A list of live tenants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveTenantList {
    /// The tenants, ordered by account id.
    pub items: Vec<LiveTenant>,
    /// Always null: a node holds few enough live tenants for one page.
    pub next_cursor: Option<String>,
    /// The node answering.
    pub node_id: Uuid,
}

fn live_tenant(snapshot: TenantSnapshot, name: Option<String>, node_id: Uuid) -> LiveTenant {
    LiveTenant {
        account_id: snapshot.account_id,
        name,
        live: true,
        started_at: Some(snapshot.started_at),
        sessions: snapshot.sessions,
        boards_loaded: snapshot.boards_loaded,
        rooms_loaded: snapshot.rooms_loaded,
        timers: snapshot.timers,
        node_id,
    }
}

/// `GET /admin/tenants`: the tenant actors live on this node.
#[utoipa::path(get, path = "/admin/tenants", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = LiveTenantList), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_tenants(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<LiveTenantList>, ApiError> {
    let scope = principal.platform_scope()?;
    let live = state.registry.live();
    let ids: Vec<Uuid> = live.iter().map(|(id, _)| *id).collect();
    let names: HashMap<Uuid, String> = db::platform_tx(&state.db, scope, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(accounts::names(conn, &ids).await?) })
    })
    .await?
    .into_iter()
    .collect();
    // `Addr::send` enqueues at once, so every supervisor is asked before the first answer is
    // awaited.
    let timeout = state.registry.config().send_timeout;
    let pending: Vec<_> = live
        .iter()
        .map(|(id, addr)| (*id, addr.send(GetSnapshot).timeout(timeout)))
        .collect();
    let mut items = Vec::with_capacity(pending.len());
    for (id, answer) in pending {
        // A supervisor that stopped in between is simply no longer live.
        if let Ok(snapshot) = answer.await {
            items.push(live_tenant(
                snapshot,
                names.get(&id).cloned(),
                state.node_id,
            ));
        }
    }
    items.sort_by_key(|t| t.account_id);
    Ok(web::Json(LiveTenantList {
        items,
        next_cursor: None,
        node_id: state.node_id,
    }))
}

/// `GET /admin/tenants/{account_id}`: one tenant; `live: false` when it has no supervisor here.
#[utoipa::path(get, path = "/admin/tenants/{account_id}", tag = "admin", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account id")),
    responses((status = 200, body = LiveTenant), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<LiveTenant>, ApiError> {
    let scope = principal.platform_scope()?;
    let account_id = path.into_inner();
    let account = db::platform_tx(&state.db, scope, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(accounts::find(conn, account_id).await?) })
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    let snapshot = match state.registry.get(account_id) {
        Some(_) => state.registry.send(account_id, GetSnapshot).await.ok(),
        None => None,
    };
    Ok(web::Json(match snapshot {
        Some(snapshot) => live_tenant(snapshot, Some(account.name), state.node_id),
        None => LiveTenant {
            account_id,
            name: Some(account.name),
            live: false,
            started_at: None,
            sessions: 0,
            boards_loaded: 0,
            rooms_loaded: 0,
            timers: Vec::new(),
            node_id: state.node_id,
        },
    }))
}

/// `POST /admin/impersonate` body.
#[derive(Debug, serde::Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateRequest {
    /// The user to act as (any account; not a super_admin).
    #[garde(skip)]
    pub user_id: Uuid,
    /// Why, 10–500 characters (audited).
    #[garde(length(min = 10, max = 500))]
    pub reason: String,
}

/// An impersonation access token (no refresh token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Impersonation {
    /// Access token: `sub` the super_admin, `act_as` the target.
    pub token: String,
    /// Expiry.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The session (visible to the target).
    pub session_id: Uuid,
    /// The target.
    pub user: crate::http::users::UserView,
}

/// Starts impersonating a user (iam.md §4.8): a session of kind `impersonation` in the
/// target's account, audited with the reason; rows written meanwhile name both people.
#[utoipa::path(post, path = "/admin/impersonate", tag = "admin", security(("bearer" = [])), request_body = ImpersonateRequest,
    responses((status = 201, body = Impersonation), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn impersonate(
    state: web::Data<AppState>,
    principal: Principal,
    context: crate::http::context::RequestContext,
    body: crate::http::extract::Json<ImpersonateRequest>,
) -> Result<actix_web::HttpResponse, ApiError> {
    use crate::auth::policy::{authorize, Action};
    use crate::db::audit::{self, AuditContext, AuditEvent};
    authorize(&principal, Action::Impersonate)?;
    let scope = principal.platform_scope()?;
    let super_admin = principal.require_user()?;
    let ImpersonateRequest { user_id, reason } = body.0;
    let target = db::platform_tx(&state.db, scope, |conn| {
        Box::pin(async move {
            use crate::db::schema::users;
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            Ok::<_, ApiError>(
                users::table
                    .find(user_id)
                    .select(crate::db::users::User::as_select())
                    .first(conn)
                    .await
                    .optional()?,
            )
        })
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    if target.role == "super_admin" {
        return Err(ApiError::forbidden("super_admins cannot be impersonated"));
    }
    if !target.is_active() {
        return Err(ApiError::Unprocessable("the user is not active".into()));
    }
    let account_id = target.account_id;
    let audit_context = AuditContext {
        actor_type: "user",
        actor_id: Some(super_admin),
        acted_as_user_id: Some(target.id),
        ..context.anonymous()
    };
    let target_id = target.id;
    let session_id = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let session_id = Uuid::now_v7();
            crate::db::sessions::insert(
                conn,
                &crate::db::sessions::NewSession {
                    id: session_id,
                    account_id,
                    user_id: target_id,
                    kind: "impersonation",
                    ip: audit_context.ip.as_deref(),
                    user_agent: audit_context.user_agent.as_deref(),
                    expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
                },
            )
            .await?;
            crate::db::sessions::set_impersonator(conn, session_id, super_admin).await?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(
                    Some(account_id),
                    "impersonation.started",
                    "session",
                    session_id,
                )
                .with_after(serde_json::json!({ "reason": reason, "target_user_id": target_id })),
            )
            .await?;
            Ok::<_, ApiError>(session_id)
        })
    })
    .await?;
    let (token, claims) = state
        .tokens
        .issue_impersonation(super_admin, session_id, target.id, account_id, &target.role)
        .map_err(ApiError::internal)?;
    Ok(actix_web::HttpResponse::Created().json(Impersonation {
        token,
        expires_at: claims.expires_at(),
        session_id,
        user: target.into(),
    }))
}
