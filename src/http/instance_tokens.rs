//! Instance tokens (iam.md §4.7): short-lived bearer tokens a user issues for an embedded
//! screen or a single WhatsApp instance; they act as the issuer narrowed to their scopes.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::policy::{authorize, parse_scopes, scope_names, Action, Role};
use crate::auth::principal::PrincipalKind;
use crate::auth::revocation::Revocable;
use crate::auth::{secrets, Principal};
use crate::db::audit::{self, AuditEvent};
use crate::db::{self, instance_tokens};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::Page;
use crate::state::AppState;

/// An instance token as listed (never the token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InstanceTokenView {
    /// Id.
    pub id: Uuid,
    /// The issuer.
    pub user_id: Uuid,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The instance it is bound to.
    pub provider_instance_id: Option<Uuid>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<instance_tokens::InstanceToken> for InstanceTokenView {
    fn from(t: instance_tokens::InstanceToken) -> Self {
        Self {
            id: t.id,
            user_id: t.user_id,
            scopes: t.scopes.into_iter().flatten().collect(),
            provider_instance_id: t.provider_instance_id,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
            created_at: t.created_at,
        }
    }
}

/// `POST …/instance-tokens` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueInstanceToken {
    /// Scopes the issuer's role allows.
    #[garde(length(min = 1, max = 15))]
    pub scopes: Vec<String>,
    /// Lifetime in minutes, 15–60 (default 30).
    #[garde(inner(range(min = 15, max = 60)))]
    pub ttl_minutes: Option<i64>,
    /// Bind the token to one provider instance.
    #[garde(skip)]
    pub provider_instance_id: Option<Uuid>,
}

/// The issued token: the only time `token` is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedInstanceToken {
    /// Id.
    pub id: Uuid,
    /// The token (`wpi_…`).
    pub token: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Bound instance.
    pub provider_instance_id: Option<Uuid>,
}

/// Issues an instance token (user principals only).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/instance-tokens", tag = "instance-tokens", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")), request_body = IssueInstanceToken,
    responses((status = 201, body = IssuedInstanceToken), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn issue(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
    body: Json<IssueInstanceToken>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::InstanceTokensIssue)?;
    let PrincipalKind::User { session_id } = principal.kind else {
        return Err(ApiError::forbidden(
            "instance tokens are issued by user sessions",
        ));
    };
    let user_id = principal.require_user()?;
    let request = body.0;
    let scopes = parse_scopes(&request.scopes, "scopes")?;
    let not_allowed: Vec<&str> = scopes
        .iter()
        .filter(|s| s.min_role() > principal.role.min(Role::Admin))
        .map(|s| s.as_str())
        .collect();
    if !not_allowed.is_empty() {
        return Err(ApiError::Forbidden {
            message: "your role does not allow these scopes".into(),
            details: Some(json!({ "scopes_not_allowed": not_allowed })),
        });
    }
    if request.provider_instance_id.is_some() {
        // Provider instances arrive with the providers work; until then no id can be valid,
        // and a foreign id must look exactly like a missing one.
        return Err(ApiError::NotFound);
    }
    let (token, hash) = secrets::new_instance_token();
    let now = Utc::now();
    let expires_at = now + Duration::minutes(request.ttl_minutes.unwrap_or(30));
    let audit_context = context.audit(&principal);
    let scope_list = scope_names(&scopes);
    let created = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let created = instance_tokens::insert(
                conn,
                instance_tokens::NewInstanceToken {
                    id: Uuid::now_v7(),
                    account_id,
                    user_id,
                    session_id,
                    provider_instance_id: None,
                    scopes: scope_list.clone(),
                    token_hash: hash,
                    created_at: now,
                    expires_at,
                },
            )
            .await?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(
                    Some(account_id),
                    "instance_token.created",
                    "instance_token",
                    created.id,
                )
                .with_after(json!({ "scopes": scope_list, "expires_at": expires_at })),
            )
            .await?;
            Ok::<_, ApiError>(created)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(IssuedInstanceToken {
        id: created.id,
        token,
        scopes: created.scopes.into_iter().flatten().collect(),
        expires_at: created.expires_at,
        provider_instance_id: created.provider_instance_id,
    }))
}

/// Lists instance tokens: the caller's own; an admin's, everyone's.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/instance-tokens", tag = "instance-tokens", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 200, body = Page<InstanceTokenView>), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<Page<InstanceTokenView>>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::InstanceTokensIssue)?;
    let only = (principal.role < Role::Admin).then_some(principal.require_user()?);
    let rows = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(
            async move { Ok::<_, ApiError>(instance_tokens::list(conn, account_id, only).await?) },
        )
    })
    .await?;
    Ok(web::Json(Page::all(
        rows.into_iter().map(InstanceTokenView::from).collect(),
    )))
}

/// Revokes an instance token (own, or any as an admin); 204.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/instance-tokens/{token_id}", tag = "instance-tokens", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("token_id" = Uuid, Path, description = "token")),
    responses((status = 204, description = "revoked"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, token_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::InstanceTokensIssue)?;
    let only = (principal.role < Role::Admin).then_some(principal.require_user()?);
    let audit_context = context.audit(&principal);
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let token = instance_tokens::find(conn, account_id, token_id)
                .await?
                .filter(|t| only.is_none_or(|u| t.user_id == u))
                .ok_or(ApiError::NotFound)?;
            if instance_tokens::revoke(conn, account_id, token.id).await? {
                audit::record(
                    conn,
                    &audit_context,
                    AuditEvent::success(
                        Some(account_id),
                        "instance_token.revoked",
                        "instance_token",
                        token.id,
                    ),
                )
                .await?;
            }
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    state.revocations.record(Revocable::InstanceToken, token_id);
    crate::ws::close_revoked_sessions(&state, &[token_id]);
    Ok(HttpResponse::NoContent().finish())
}

/// The answer of `validate`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Validation {
    /// Always true (an invalid token gets 401).
    pub valid: bool,
    /// Account.
    pub account_id: Uuid,
    /// Issuer.
    pub user_id: Option<Uuid>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Bound instance.
    pub provider_instance_id: Option<Uuid>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/instance-tokens/validate`: checks the instance token of the request.
#[utoipa::path(get, path = "/api/v1/instance-tokens/validate", tag = "instance-tokens", security(("bearer" = [])),
    responses((status = 200, body = Validation), (status = 401, body = crate::error::ErrorBody)))]
pub async fn validate(principal: Principal) -> Result<web::Json<Validation>, ApiError> {
    if !matches!(principal.kind, PrincipalKind::InstanceToken { .. }) {
        return Err(ApiError::InvalidToken);
    }
    Ok(web::Json(Validation {
        valid: true,
        account_id: principal.account_id,
        user_id: principal.user_id,
        scopes: principal
            .scopes
            .as_ref()
            .map(scope_names)
            .unwrap_or_default(),
        provider_instance_id: principal.provider_instance_id,
        expires_at: principal.expires_at,
    }))
}
