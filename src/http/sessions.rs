//! `/api/v1/me/sessions` and `/api/v1/me/password`: a user's own sign-in sessions and password
//! (iam.md §4.5, §5).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::password::{self, Verification};
use crate::auth::policy::{authorize, Action};
use crate::auth::signin;
use crate::auth::Principal;
use crate::db::{self, sessions, users};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::Page;
use crate::state::AppState;

/// One of the caller's sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Session id.
    pub id: Uuid,
    /// `password`, `sso` or `impersonation`.
    pub kind: String,
    /// IP at sign-in.
    pub ip: Option<String>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last refresh.
    pub last_seen_at: DateTime<Utc>,
    /// Hard end.
    pub expires_at: DateTime<Utc>,
    /// Whether this is the session of the request.
    pub current: bool,
    /// The super_admin behind an impersonation session.
    pub impersonated_by: Option<Uuid>,
}

/// `GET /api/v1/me/sessions`.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Page<SessionView>), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Page<SessionView>>, ApiError> {
    authorize(&principal, Action::SelfService)?;
    let (account_id, user_id, current) = (
        principal.account_id,
        principal.require_user()?,
        principal.session_id(),
    );
    let rows = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(sessions::live_for_user(conn, account_id, user_id).await?)
        })
    })
    .await?;
    Ok(web::Json(Page::all(
        rows.into_iter()
            .map(|s| SessionView {
                current: Some(s.id) == current,
                id: s.id,
                kind: s.kind,
                ip: s.ip,
                user_agent: s.user_agent,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                impersonated_by: s.impersonator_id,
            })
            .collect(),
    )))
}

async fn revoke(
    state: &AppState,
    principal: &Principal,
    context: &RequestContext,
    which: impl FnOnce(Uuid, Option<Uuid>) -> sessions::Revoke,
) -> Result<Vec<Uuid>, ApiError> {
    authorize(principal, Action::SelfService)?;
    let (account_id, user_id) = (principal.account_id, principal.require_user()?);
    let which = which(user_id, principal.session_id());
    let audit_context = context.audit(principal);
    let revoked = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            signin::revoke_sessions(
                conn,
                account_id,
                which,
                "user_revoked",
                &audit_context,
                "session.revoked",
            )
            .await
        })
    })
    .await?;
    signin::after_revocation(state, &revoked);
    Ok(revoked)
}

/// `DELETE /api/v1/me/sessions/{session_id}`: revokes one of the caller's sessions (another
/// user's → 404).
#[utoipa::path(delete, path = "/api/v1/me/sessions/{session_id}", tag = "me", security(("bearer" = [])),
    params(("session_id" = Uuid, Path, description = "session")),
    responses((status = 204, description = "revoked"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_one(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let session_id = path.into_inner();
    let revoked = revoke(&state, &principal, &context, |user_id, _| {
        sessions::Revoke::One {
            user_id,
            session_id,
        }
    })
    .await?;
    if revoked.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/v1/me/sessions`: revokes every session of the caller but the current one.
#[utoipa::path(delete, path = "/api/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 204, description = "revoked"), (status = 401, body = crate::error::ErrorBody)))]
pub async fn revoke_others(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
) -> Result<HttpResponse, ApiError> {
    revoke(&state, &principal, &context, |user_id, except| {
        sessions::Revoke::AllOfUser { user_id, except }
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/me/password` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password.
    #[garde(length(min = 1, max = 1024))]
    pub current_password: String,
    /// The new password (policy of iam.md §4.1).
    #[garde(length(min = 1, max = 1024))]
    pub new_password: String,
}

/// Changes the caller's password; a wrong current password counts as a failed login; the
/// other sessions are revoked.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 204, description = "changed"), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn change_password(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    body: Json<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    authorize(&principal, Action::OwnCredentials)?;
    let (account_id, user_id) = (principal.account_id, principal.require_user()?);
    let user = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(users::find(conn, account_id, user_id).await?) })
    })
    .await?
    .ok_or(ApiError::InvalidToken)?;
    let attempt = state
        .login_throttle
        .begin(&user.email, context.ip)
        .map_err(|retry_after| ApiError::RateLimited {
            retry_after_secs: retry_after.as_secs().max(1),
        })?;
    let ChangePassword {
        current_password,
        new_password,
    } = body.0;
    if password::verify_blocking(current_password, user.password_hash.clone()).await
        == Verification::Mismatch
    {
        attempt.failed();
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    attempt.succeeded();
    password::check_policy(&new_password, &user.email)
        .map_err(|rule| ApiError::field("new_password", rule.to_string()))?;
    let hash = password::hash_blocking(new_password).await?;
    let current = principal.session_id();
    let audit_context = context.audit(&principal);
    let revoked = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            signin::replace_password(
                conn,
                account_id,
                user_id,
                &hash,
                current,
                "password_changed",
                &audit_context,
            )
            .await
        })
    })
    .await?;
    signin::after_revocation(&state, &revoked);
    Ok(HttpResponse::NoContent().finish())
}
