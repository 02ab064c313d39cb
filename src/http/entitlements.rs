//! `/api/v1/accounts/{account_id}/features` and `/entitlements` (tenancy.md §4): what the
//! account's plan allows, with overrides and access mode. Features fail closed: an account whose
//! entitlements cannot be read answers 503, never a default.

use std::collections::BTreeMap;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::db::audit::{self, AuditEvent};
use crate::db::{self, accounts, entitlements};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::state::AppState;
use whatpro_actors::supervisor::{GetFacts, SetFacts};
use whatpro_actors::TenantFacts;

/// The account's feature flags.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Features {
    /// Kanban boards.
    pub kanban: bool,
    /// Internal chat.
    pub internal_chat: bool,
    /// Analytics.
    pub analytics: bool,
    /// `full` or `read_only`.
    pub access_mode: String,
}

async fn load(state: &AppState, account_id: Uuid) -> Result<entitlements::Effective, ApiError> {
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let effective = entitlements::load(conn, account_id, false).await?;
            // No entitlements row: a missing account is a 404; an account without its row
            // (never expected, the insert trigger writes it) fails closed as unavailable.
            if effective.is_none() && accounts::find(conn, account_id).await?.is_none() {
                return Err(ApiError::NotFound);
            }
            Ok::<_, ApiError>(effective)
        })
    })
    .await
    .map_err(|e| match e {
        ApiError::NotFound => ApiError::NotFound,
        _ => ApiError::Unavailable("the account's entitlements cannot be read".into()),
    })?
    .ok_or_else(|| ApiError::Unavailable("the account's entitlements cannot be read".into()))
}

fn facts_of(effective: &entitlements::Effective) -> TenantFacts {
    TenantFacts {
        kanban: effective.feature("kanban"),
        internal_chat: effective.feature("internal_chat"),
        analytics: effective.feature("analytics"),
        read_only: effective.access_mode == "read_only",
    }
}

/// Hands fresh facts to the tenant's live supervisor (which announces a chat-flag change to
/// the tenant's sockets); awaited, so the next request sees them.
async fn publish_facts(state: &AppState, account_id: Uuid, facts: Option<TenantFacts>) {
    if state.registry.get(account_id).is_some() {
        let _ = state.registry.send(account_id, SetFacts(facts)).await;
    }
}

/// The tenant's feature flags and access mode for hot paths (module routes, websocket topic
/// checks): from the supervisor's cache, loaded from the database on a miss. Fails closed: an
/// unreadable entitlements row is a 503, never a default.
pub async fn tenant_facts(state: &AppState, account_id: Uuid) -> Result<TenantFacts, ApiError> {
    if let Ok(Some(facts)) = state.registry.send(account_id, GetFacts).await {
        return Ok(facts);
    }
    let facts = facts_of(&load(state, account_id).await?);
    publish_facts(state, account_id, Some(facts)).await;
    Ok(facts)
}

/// 403 `FEATURE_DISABLED` unless the account has `feature` (`kanban`, `internal_chat`,
/// `analytics`).
pub async fn require_feature(
    state: &AppState,
    account_id: Uuid,
    feature: &'static str,
) -> Result<(), ApiError> {
    let facts = tenant_facts(state, account_id).await?;
    let on = match feature {
        "kanban" => facts.kanban,
        "internal_chat" => facts.internal_chat,
        "analytics" => facts.analytics,
        _ => false,
    };
    if on {
        Ok(())
    } else {
        Err(ApiError::FeatureDisabled(feature))
    }
}

/// `GET …/features`: any principal of the account. Clients treat any non-200 as all off.
/// Read from the database (the authority) every time, refreshing the supervisor's cache.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/features", tag = "entitlements", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 200, body = Features), (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn features(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<Features>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    let effective = match load(&state, account_id).await {
        Ok(effective) => effective,
        Err(e) => {
            publish_facts(&state, account_id, None).await;
            return Err(e);
        }
    };
    let facts = facts_of(&effective);
    publish_facts(&state, account_id, Some(facts)).await;
    Ok(web::Json(Features {
        kanban: facts.kanban,
        internal_chat: facts.internal_chat,
        analytics: facts.analytics,
        access_mode: effective.access_mode,
    }))
}

/// The account's entitlements with current counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntitlementsView {
    /// Plan code.
    pub plan: String,
    /// Effective limits (`null` = unlimited).
    #[schema(value_type = Object)]
    pub limits: BTreeMap<String, Option<i64>>,
    /// Effective feature flags.
    #[schema(value_type = Object)]
    pub features: BTreeMap<String, bool>,
    /// The account's overrides.
    #[schema(value_type = Object)]
    pub overrides: Value,
    /// `full` or `read_only`.
    pub access_mode: String,
    /// Current usage of each countable limit.
    #[schema(value_type = Object)]
    pub counts: BTreeMap<String, i64>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

async fn view(state: &AppState, account_id: Uuid) -> Result<EntitlementsView, ApiError> {
    let effective = load(state, account_id).await?;
    let counts = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(entitlements::counts(conn, account_id).await?) })
    })
    .await?;
    Ok(EntitlementsView {
        plan: effective.plan,
        limits: effective.limits,
        features: effective.features,
        overrides: effective.overrides,
        access_mode: effective.access_mode,
        counts,
        updated_at: effective.updated_at,
    })
}

/// `GET …/entitlements`: admins, super_admins, `usage:read`.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/entitlements", tag = "entitlements", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 200, body = EntitlementsView), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<EntitlementsView>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsageRead)?;
    Ok(web::Json(view(&state, account_id).await?))
}

/// `PATCH …/entitlements` body (super_admin).
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEntitlements {
    /// Plan code.
    #[garde(inner(length(min = 1, max = 50)))]
    pub plan: Option<String>,
    /// `full` or `read_only`.
    #[garde(skip)]
    pub access_mode: Option<String>,
    /// Limit and flag overrides; a key set to `null` is removed.
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    pub overrides: Option<Map<String, Value>>,
}

/// Merges override changes: limits take a non-negative integer, flags a boolean, `null`
/// removes the key; anything else is a 400 naming the key.
fn merge_overrides(current: &Value, changes: &Map<String, Value>) -> Result<Value, ApiError> {
    let mut merged = current.as_object().cloned().unwrap_or_default();
    for (key, value) in changes {
        let field = format!("overrides.{key}");
        if value.is_null() {
            merged.remove(key);
        } else if entitlements::LIMIT_KEYS.contains(&key.as_str()) {
            if value.as_i64().is_none_or(|n| n < 0) {
                return Err(ApiError::field(
                    field,
                    "must be a non-negative integer or null",
                ));
            }
            merged.insert(key.clone(), value.clone());
        } else if entitlements::FEATURE_KEYS.contains(&key.as_str()) {
            if !value.is_boolean() {
                return Err(ApiError::field(field, "must be true, false or null"));
            }
            merged.insert(key.clone(), value.clone());
        } else {
            return Err(ApiError::field(field, "unknown limit or flag"));
        }
    }
    Ok(Value::Object(merged))
}

/// Sets plan, access mode and overrides (super_admin); audited.
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}/entitlements", tag = "entitlements", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")), request_body = PatchEntitlements,
    responses((status = 200, body = EntitlementsView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
    body: Json<PatchEntitlements>,
) -> Result<web::Json<EntitlementsView>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    principal.platform_scope()?;
    let patch = body.0;
    if let Some(mode) = &patch.access_mode {
        if !["full", "read_only"].contains(&mode.as_str()) {
            return Err(ApiError::field("access_mode", "must be full or read_only"));
        }
    }
    let audit_context = context.audit(&principal);
    let updated_by = principal.user_id;
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let before = entitlements::load(conn, account_id, true)
                .await?
                .ok_or(ApiError::NotFound)?;
            if let Some(plan) = &patch.plan {
                if !entitlements::plan_exists(conn, plan).await? {
                    return Err(ApiError::field("plan", "unknown plan"));
                }
            }
            let overrides = match &patch.overrides {
                Some(changes) => Some(merge_overrides(&before.overrides, changes)?),
                None => None,
            };
            entitlements::update(conn, account_id, patch.plan.as_deref(), patch.access_mode.as_deref(), overrides.as_ref(), updated_by).await?;
            let after = entitlements::load(conn, account_id, false).await?.ok_or(ApiError::NotFound)?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "entitlements.updated", "account", account_id)
                    .with_before(json!({ "plan": before.plan, "access_mode": before.access_mode, "overrides": before.overrides }))
                    .with_after(json!({ "plan": after.plan, "access_mode": after.access_mode, "overrides": after.overrides })),
            )
            .await?;
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    // The cache learns the change before the response (and sockets hear of a chat change).
    let facts = load(&state, account_id).await.ok().map(|e| facts_of(&e));
    publish_facts(&state, account_id, facts).await;
    Ok(web::Json(view(&state, account_id).await?))
}
