//! `/api/v1/accounts/{account_id}/api-keys` (iam.md §4.6): admins create keys (shown once),
//! list them by prefix, read and revoke them.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::policy::{authorize, parse_scopes, scope_names, Action};
use crate::auth::revocation::Revocable;
use crate::auth::{password, secrets, Principal};
use crate::db::audit::{self, AuditEvent};
use crate::db::{self, api_keys};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::Page;
use crate::state::AppState;

/// An API key as listed (never the key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    /// Id.
    pub id: Uuid,
    /// Label.
    pub name: String,
    /// Public prefix (`wp_live_<prefix>_…`).
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Requests per minute.
    pub rate_limit_per_minute: i32,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Creator.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<api_keys::ApiKey> for ApiKeyView {
    fn from(key: api_keys::ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            scopes: key.scopes.into_iter().flatten().collect(),
            rate_limit_per_minute: key.rate_limit_per_minute,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            created_by: key.created_by,
            created_at: key.created_at,
        }
    }
}

/// A created key: the only time `key` is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    /// The key (`wp_live_<prefix>_<secret>`); store it now.
    pub key: String,
    /// The key's record.
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

/// `POST …/api-keys` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Label, 1–100 characters.
    #[garde(length(min = 1, max = 100))]
    pub name: String,
    /// Scopes (iam.md §4.6), at least one.
    #[garde(length(min = 1, max = 15))]
    pub scopes: Vec<String>,
    /// Optional expiry, in the future.
    #[garde(skip)]
    pub expires_at: Option<DateTime<Utc>>,
    /// 1–6000 (default 600).
    #[garde(inner(range(min = 1, max = 6000)))]
    pub rate_limit_per_minute: Option<i32>,
}

fn start(principal: &Principal, account_id: Uuid) -> Result<(), ApiError> {
    principal.check_account(account_id)?;
    authorize(principal, Action::ApiKeysManage)
}

/// `GET …/api-keys`.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/api-keys", tag = "api-keys", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 200, body = Page<ApiKeyView>), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<Page<ApiKeyView>>, ApiError> {
    let account_id = path.into_inner();
    start(&principal, account_id)?;
    let keys = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(api_keys::list(conn, account_id).await?) })
    })
    .await?;
    Ok(web::Json(Page::all(
        keys.into_iter().map(ApiKeyView::from).collect(),
    )))
}

/// `POST …/api-keys`: 201 with the key, shown once.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/api-keys", tag = "api-keys", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
    body: Json<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    start(&principal, account_id)?;
    let request = body.0;
    let scopes = parse_scopes(&request.scopes, "scopes")?;
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::field("expires_at", "must be in the future"));
    }
    let (key, prefix) = secrets::new_api_key();
    let hash = password::hash_blocking(key.clone()).await?;
    let audit_context = context.audit(&principal);
    let created_by = principal.user_id;
    let created = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let created = api_keys::insert(
                conn,
                api_keys::NewApiKey {
                    id: Uuid::now_v7(),
                    account_id,
                    name: &request.name,
                    prefix: &prefix,
                    key_hash: &hash,
                    scopes: scope_names(&scopes),
                    rate_limit_per_minute: request.rate_limit_per_minute.unwrap_or(600),
                    expires_at: request.expires_at,
                    created_by,
                },
            )
            .await?;
            let view = ApiKeyView::from(created);
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "api_key.created", "api_key", view.id)
                    .with_after(
                        json!({ "name": view.name, "prefix": view.prefix, "scopes": view.scopes }),
                    ),
            )
            .await?;
            Ok::<_, ApiError>(view)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(CreatedApiKey {
        key,
        api_key: created,
    }))
}

/// `GET …/api-keys/{key_id}`.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/api-keys/{key_id}", tag = "api-keys", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("key_id" = Uuid, Path, description = "key")),
    responses((status = 200, body = ApiKeyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    let (account_id, key_id) = path.into_inner();
    start(&principal, account_id)?;
    let key = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(api_keys::find(conn, account_id, key_id).await?) })
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(web::Json(key.into()))
}

/// `DELETE …/api-keys/{key_id}`: revokes the key (the row is kept); 204.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/api-keys/{key_id}", tag = "api-keys", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("key_id" = Uuid, Path, description = "key")),
    responses((status = 204, description = "revoked"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, key_id) = path.into_inner();
    start(&principal, account_id)?;
    let audit_context = context.audit(&principal);
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            api_keys::find(conn, account_id, key_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if api_keys::revoke(conn, account_id, key_id).await? {
                audit::record(
                    conn,
                    &audit_context,
                    AuditEvent::success(Some(account_id), "api_key.revoked", "api_key", key_id),
                )
                .await?;
            }
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    state.revocations.record(Revocable::ApiKey, key_id);
    state.api_keys.evict(key_id);
    crate::ws::close_revoked_sessions(&state, &[key_id]);
    Ok(HttpResponse::NoContent().finish())
}
