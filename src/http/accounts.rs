//! `/api/v1/accounts`: the tenants themselves (tenancy.md §2). super_admins list, create,
//! suspend and delete; an account's admin reads and updates its own name, locale and settings.
//! Suspending or deleting an account revokes its sessions and instance tokens, refuses its API
//! keys and closes its websockets (4003).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use whatpro_actors::outbound::close_code;
use whatpro_actors::CloseFrame;

use crate::auth::policy::{authorize, Action, Role};
use crate::auth::{signin, Principal};
use crate::db::accounts::{self, Account, AccountChanges, AccountFilter};
use crate::db::audit::{self, AuditEvent};
use crate::db::{self, entitlements, sessions};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

/// An account as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    /// BCP 47 locale.
    pub locale: String,
    /// The Chatwoot account it mirrors.
    pub chatwoot_account_id: Option<i64>,
    /// The platform account (holds the super_admins).
    pub is_platform: bool,
    /// Why it was suspended.
    pub suspended_reason: Option<String>,
    /// Settings (admins and super_admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl AccountView {
    fn new(account: Account, with_settings: bool) -> Self {
        Self {
            id: account.id,
            name: account.name,
            status: account.status,
            locale: account.locale,
            chatwoot_account_id: account.chatwoot_account_id,
            is_platform: account.is_platform,
            suspended_reason: account.suspended_reason,
            settings: with_settings.then_some(account.settings),
            created_at: account.created_at,
            updated_at: account.updated_at,
        }
    }
}

fn account_json(account: &Account) -> Value {
    json!({ "name": account.name, "status": account.status, "locale": account.locale,
            "settings": account.settings, "chatwoot_account_id": account.chatwoot_account_id,
            "suspended_reason": account.suspended_reason })
}

/// Settings keys an account may hold, each an email address.
const SETTINGS_KEYS: [&str; 2] = ["billing_email", "support_email"];

fn validate_settings(settings: &Value) -> Result<(), ApiError> {
    let map = settings
        .as_object()
        .ok_or_else(|| ApiError::field("settings", "must be an object"))?;
    for (key, value) in map {
        if !SETTINGS_KEYS.contains(&key.as_str()) {
            return Err(ApiError::field(
                format!("settings.{key}"),
                "unknown setting",
            ));
        }
        let valid = value.is_null()
            || value.as_str().is_some_and(|v| {
                // garde's parser (the one the request bodies use) plus a dotted domain: a
                // billing address on `localhost` is a typo, not a mailbox.
                v.len() <= 254
                    && garde::rules::email::parse_email(v).is_ok()
                    && v.rsplit_once('@').is_some_and(|(_, d)| d.contains('.'))
            });
        if !valid {
            return Err(ApiError::field(
                format!("settings.{key}"),
                "must be an email address",
            ));
        }
    }
    Ok(())
}

fn validate_locale(locale: &str) -> Result<(), ApiError> {
    let ok = (2..=35).contains(&locale.len())
        && locale
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field("locale", "must be a BCP 47 language tag"))
    }
}

/// `GET /api/v1/accounts` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    /// `active`, `suspended` or `deleted` (deleted accounts are listed only when asked for).
    pub status: Option<String>,
    /// Name contains.
    pub q: Option<String>,
    /// Chatwoot account id.
    pub chatwoot_account_id: Option<i64>,
    /// Page size.
    pub limit: Option<i64>,
    /// Cursor.
    pub cursor: Option<String>,
}

/// Lists accounts (super_admin).
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", security(("bearer" = [])), params(AccountQuery),
    responses((status = 200, body = Page<AccountView>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AccountQuery>,
) -> Result<web::Json<Page<AccountView>>, ApiError> {
    let scope = principal.platform_scope()?;
    let query = query.into_inner();
    if let Some(status) = &query.status {
        if !["active", "suspended", "deleted"].contains(&status.as_str()) {
            return Err(ApiError::field(
                "status",
                "must be active, suspended or deleted",
            ));
        }
    }
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let (limit, after) = (page.limit()?, page.after_id()?);
    let filter = AccountFilter {
        status: query.status,
        q: query.q,
        chatwoot_account_id: query.chatwoot_account_id,
    };
    let rows = db::platform_tx(&state.db, scope, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(accounts::page(conn, &filter, after, limit + 1).await?)
        })
    })
    .await?;
    Ok(web::Json(Page::from_rows(
        rows,
        limit,
        |a| a.id,
        |a| AccountView::new(a, true),
    )))
}

/// `POST /api/v1/accounts` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Name, 1–255 characters.
    #[garde(length(min = 1, max = 255))]
    pub name: String,
    /// The Chatwoot account it mirrors.
    #[garde(inner(range(min = 1)))]
    pub chatwoot_account_id: Option<i64>,
    /// BCP 47 locale (default pt-BR).
    #[garde(skip)]
    pub locale: Option<String>,
    /// Settings (`billing_email`, `support_email`).
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Plan code (default free).
    #[garde(inner(length(min = 1, max = 50)))]
    pub plan: Option<String>,
}

/// Creates an account (super_admin); its entitlements row comes with it.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", security(("bearer" = [])), request_body = CreateAccount,
    responses((status = 201, body = AccountView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    body: Json<CreateAccount>,
) -> Result<HttpResponse, ApiError> {
    let scope = principal.platform_scope()?;
    let request = body.0;
    if let Some(locale) = &request.locale {
        validate_locale(locale)?;
    }
    if let Some(settings) = &request.settings {
        validate_settings(settings)?;
    }
    let audit_context = context.audit(&principal);
    let updated_by = principal.user_id;
    let account = db::platform_tx(&state.db, scope, |conn| {
        Box::pin(async move {
            if let Some(plan) = &request.plan {
                if !entitlements::plan_exists(conn, plan).await? {
                    return Err(ApiError::field("plan", "unknown plan"));
                }
            }
            let id = Uuid::now_v7();
            let created = accounts::insert(
                conn,
                &accounts::NewAccount {
                    id,
                    name: &request.name,
                    is_platform: false,
                    chatwoot_account_id: request.chatwoot_account_id,
                    locale: request.locale.as_deref(),
                },
            )
            .await
            .map_err(|e| match ApiError::from(e) {
                ApiError::Conflict { .. } => {
                    ApiError::conflict("an account with this chatwoot_account_id exists")
                }
                other => other,
            })?;
            let account = if request.settings.is_some() {
                accounts::update(
                    conn,
                    id,
                    AccountChanges {
                        settings: request.settings,
                        ..Default::default()
                    },
                )
                .await?
            } else {
                created
            };
            if let Some(plan) = &request.plan {
                entitlements::update(conn, id, Some(plan), None, None, updated_by).await?;
            }
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(id), "account.created", "account", id)
                    .with_after(account_json(&account)),
            )
            .await?;
            Ok(account)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(AccountView::new(account, true)))
}

/// Reads an account: any principal of the account, or a super_admin; `settings` only for
/// admins and super_admins.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}", tag = "accounts", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 200, body = AccountView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<AccountView>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::AccountRead)?;
    let account = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(accounts::find(conn, account_id).await?) })
    })
    .await?
    .filter(|a| a.status != "deleted" || principal.is_super_admin())
    .ok_or(ApiError::NotFound)?;
    let with_settings = principal.role >= Role::Admin && principal.user_id.is_some();
    Ok(web::Json(AccountView::new(account, with_settings)))
}

/// `PATCH /api/v1/accounts/{account_id}` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAccount {
    /// Name.
    #[garde(inner(length(min = 1, max = 255)))]
    pub name: Option<String>,
    /// Locale.
    #[garde(skip)]
    pub locale: Option<String>,
    /// Settings.
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// super_admin: `active` or `suspended` (deletion is `DELETE`).
    #[garde(skip)]
    pub status: Option<String>,
    /// super_admin: why.
    #[garde(inner(length(max = 500)))]
    pub suspended_reason: Option<String>,
    /// super_admin: the Chatwoot account it mirrors.
    #[garde(inner(range(min = 1)))]
    pub chatwoot_account_id: Option<i64>,
}

/// Revokes an account's sessions and instance tokens inside the transaction (suspension,
/// deletion); returns the revoked session ids.
async fn revoke_account_access(
    conn: &mut diesel_async::AsyncPgConnection,
    account_id: Uuid,
    reason: &str,
    context: &crate::db::audit::AuditContext,
) -> Result<Vec<Uuid>, ApiError> {
    signin::revoke_sessions(
        conn,
        account_id,
        sessions::Revoke::AllOfAccount,
        reason,
        context,
        "session.revoked",
    )
    .await
}

/// After a suspension or deletion committed: tokens fail, keys are refused, sockets close.
async fn after_lockout(state: &AppState, account_id: Uuid, revoked: &[Uuid]) {
    signin::after_revocation(state, revoked);
    state.api_keys.evict_account(account_id);
    state
        .registry
        .stop(
            account_id,
            CloseFrame::new(close_code::REVOKED, "account not active"),
        )
        .await;
}

/// Updates an account: its admin may change name, locale and settings; a super_admin also
/// status, suspension reason and Chatwoot id. The platform account cannot be suspended (422).
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}", tag = "accounts", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")), request_body = PatchAccount,
    responses((status = 200, body = AccountView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
    body: Json<PatchAccount>,
) -> Result<web::Json<AccountView>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::AccountUpdate)?;
    let patch = body.0;
    let platform_fields = patch.status.is_some()
        || patch.suspended_reason.is_some()
        || patch.chatwoot_account_id.is_some();
    if platform_fields && !principal.is_super_admin() {
        return Err(ApiError::Forbidden {
            message: "only a super_admin changes status and Chatwoot links".into(),
            details: Some(json!({ "required_role": "super_admin" })),
        });
    }
    if let Some(status) = &patch.status {
        if !["active", "suspended"].contains(&status.as_str()) {
            return Err(ApiError::field("status", "must be active or suspended"));
        }
    }
    if let Some(locale) = &patch.locale {
        validate_locale(locale)?;
    }
    if let Some(settings) = &patch.settings {
        validate_settings(settings)?;
    }
    let audit_context = context.audit(&principal);
    let (account, revoked) = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            // A deleted account is gone for everyone except a super_admin restoring it
            // (tenancy.md §2); the status check above already requires the super_admin.
            let restoring = patch.status.as_deref() == Some("active");
            let before = accounts::find(conn, account_id)
                .await?
                .filter(|a| a.status != "deleted" || restoring)
                .ok_or(ApiError::NotFound)?;
            let suspending =
                patch.status.as_deref() == Some("suspended") && before.status != "suspended";
            if suspending && before.is_platform {
                return Err(ApiError::Unprocessable(
                    "the platform account cannot be suspended".into(),
                ));
            }
            let changes = AccountChanges {
                name: patch.name,
                locale: patch.locale,
                settings: patch.settings,
                suspended_reason: match patch.status.as_deref() {
                    Some("active") => Some(None),
                    _ => patch.suspended_reason.map(Some),
                },
                status: patch.status,
                chatwoot_account_id: patch.chatwoot_account_id.map(Some),
                updated_at: None,
            };
            let account = accounts::update(conn, account_id, changes)
                .await
                .map_err(|e| match ApiError::from(e) {
                    ApiError::Conflict { .. } => {
                        ApiError::conflict("an account with this chatwoot_account_id exists")
                    }
                    other => other,
                })?;
            let revoked = if suspending {
                revoke_account_access(conn, account_id, "account_suspended", &audit_context).await?
            } else {
                Vec::new()
            };
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "account.updated", "account", account_id)
                    .with_before(account_json(&before))
                    .with_after(account_json(&account)),
            )
            .await?;
            Ok::<_, ApiError>((account, (suspending, revoked)))
        })
    })
    .await?;
    if revoked.0 {
        after_lockout(&state, account_id, &revoked.1).await;
    }
    Ok(web::Json(AccountView::new(account, true)))
}

/// Soft-deletes an account (super_admin): status `deleted`, access revoked; 204.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}", tag = "accounts", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 204, description = "deleted"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    let scope = principal.platform_scope()?;
    let audit_context = context.audit(&principal);
    let revoked = db::platform_tx(&state.db, scope, |conn| {
        Box::pin(async move {
            let before = accounts::find(conn, account_id)
                .await?
                .filter(|a| a.status != "deleted")
                .ok_or(ApiError::NotFound)?;
            if before.is_platform {
                return Err(ApiError::Unprocessable(
                    "the platform account cannot be deleted".into(),
                ));
            }
            let account = accounts::update(
                conn,
                account_id,
                AccountChanges {
                    status: Some("deleted".into()),
                    ..Default::default()
                },
            )
            .await?;
            let revoked =
                revoke_account_access(conn, account_id, "account_deleted", &audit_context).await?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "account.deleted", "account", account_id)
                    .with_before(account_json(&before))
                    .with_after(account_json(&account)),
            )
            .await?;
            Ok::<_, ApiError>(revoked)
        })
    })
    .await?;
    after_lockout(&state, account_id, &revoked).await;
    Ok(HttpResponse::NoContent().finish())
}
