//! `/api/v1/me`: the caller's own profile, and its correction (tenancy.md §7).
//!
//! `PATCH /api/v1/me` is for user sessions that are not impersonating (keys, instance tokens
//! and impersonators get 403). It corrects `name`, `email`, `avatar_url` and `preferences`;
//! a new email needs `current_password` when the user has a password (missing → 400; wrong →
//! 403 and a failed login for the lockout, as `POST /api/v1/me/password`); Chatwoot owns a
//! linked user's name and email (422); another user of the account with the email → 409.
//! A change is audited as `user.updated` (before and after, never a password).

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::password::{self, Verification};
use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::db::accounts::Account;
use crate::db::audit::{self, AuditEvent};
use crate::db::{self, users};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::{nullable, Json};
use crate::http::users::{email_conflict, https_avatar, profile_changes, user_json};
use crate::state::AppState;

/// Largest `preferences` document, serialized (the column's CHECK holds it to 16 KiB too).
const MAX_PREFERENCES_BYTES: usize = 16 * 1024;

/// The account a profile belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountRef {
    /// Account id.
    pub id: Uuid,
    /// Account name.
    pub name: String,
}

/// The caller's profile.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// User id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// `active` or `inactive`.
    pub status: String,
    /// The account id.
    pub account_id: Uuid,
    /// The account.
    pub account: AccountRef,
    /// Client preferences.
    pub preferences: serde_json::Value,
    /// Whether the user has a local password.
    pub has_password: bool,
    /// The super_admin acting as this user, when impersonated.
    pub impersonated_by: Option<Uuid>,
    /// Last login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Me {
    fn new(user: users::User, account: Account, impersonated_by: Option<Uuid>) -> Self {
        Me {
            id: user.id,
            has_password: user.password_hash.is_some(),
            email: user.email,
            name: user.name,
            role: user.role,
            avatar_url: user.avatar_url,
            status: user.status,
            account_id: account.id,
            account: AccountRef {
                id: account.id,
                name: account.name,
            },
            preferences: user.preferences,
            impersonated_by,
            last_login_at: user.last_login_at,
            created_at: user.created_at,
        }
    }
}

/// The caller's user row and account (a token whose user is gone is invalid).
async fn load(
    state: &AppState,
    account_id: Uuid,
    user_id: Uuid,
) -> Result<(users::User, Account), ApiError> {
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(users::find_in_account(conn, account_id, user_id).await?)
        })
    })
    .await?
    .ok_or(ApiError::InvalidToken)
}

/// `GET /api/v1/me`.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Me>, ApiError> {
    let user_id = principal.require_user()?;
    let (user, account) = load(&state, principal.account_id, user_id).await?;
    Ok(web::Json(Me::new(user, account, principal.impersonator_id)))
}

/// `PATCH /api/v1/me` body: the fields present change.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    /// Display name (not for Chatwoot-linked users: 422).
    #[garde(inner(length(min = 1, max = 100)))]
    pub name: Option<String>,
    /// Email, unique in the account in any case (not for Chatwoot-linked users: 422).
    #[garde(inner(length(min = 3, max = 254), email))]
    pub email: Option<String>,
    /// The current password; required with a new email when the user has a password.
    #[garde(inner(length(min = 1, max = 1024)))]
    pub current_password: Option<String>,
    /// https avatar URL, ≤ 2048 characters; null clears it.
    #[garde(inner(inner(custom(https_avatar))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    /// Client preferences: a JSON object of at most 16 KiB, replacing the stored one.
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<Value>,
}

fn check_preferences(preferences: &Value) -> Result<(), ApiError> {
    if !preferences.is_object() {
        return Err(ApiError::field("preferences", "must be an object"));
    }
    if preferences.to_string().len() > MAX_PREFERENCES_BYTES {
        return Err(ApiError::field("preferences", "must be at most 16 KiB"));
    }
    Ok(())
}

/// The column's CHECK (type and stored size) said as the field's 400; other errors as usual.
fn preferences_refused(error: diesel::result::Error) -> ApiError {
    use diesel::result::{DatabaseErrorKind, Error};
    match &error {
        Error::DatabaseError(DatabaseErrorKind::CheckViolation, info)
            if info
                .constraint_name()
                .is_some_and(|c| c.contains("preferences")) =>
        {
            ApiError::field("preferences", "must be an object of at most 16 KiB")
        }
        _ => email_conflict(error),
    }
}

/// Checks `current_password` for an email change, as `POST /api/v1/me/password` does: a
/// wrong one is a failed login for the lockout (iam.md §4.1) and a 403.
async fn confirm_password(
    state: &AppState,
    context: &RequestContext,
    user: &users::User,
    given: Option<String>,
) -> Result<(), ApiError> {
    let Some(stored) = user.password_hash.clone() else {
        return Ok(());
    };
    let given =
        given.ok_or_else(|| ApiError::field("current_password", "required to change the email"))?;
    let attempt = state
        .login_throttle
        .begin(&user.email, context.ip)
        .map_err(|retry_after| ApiError::RateLimited {
            retry_after_secs: retry_after.as_secs().max(1),
        })?;
    if password::verify_blocking(given, Some(stored)).await == Verification::Mismatch {
        attempt.failed();
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    attempt.succeeded();
    Ok(())
}

/// Corrects the caller's profile (see the module documentation); 200 with the profile.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", security(("bearer" = [])), request_body = MePatch,
    responses((status = 200, body = Me), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    body: Json<MePatch>,
) -> Result<web::Json<Me>, ApiError> {
    authorize(&principal, Action::OwnProfileUpdate)?;
    let (account_id, user_id) = (principal.account_id, principal.require_user()?);
    let request = body.0;
    if let Some(preferences) = &request.preferences {
        check_preferences(preferences)?;
    }
    let (user, account) = load(&state, account_id, user_id).await?;
    let mut changes = profile_changes(
        &user,
        request.name.as_deref(),
        request.email.as_deref(),
        request.avatar_url,
    )?;
    changes.preferences = request.preferences.filter(|p| *p != user.preferences);
    if changes.email.is_some() {
        confirm_password(&state, &context, &user, request.current_password).await?;
    }
    if changes.is_empty() {
        return get(state, principal).await;
    }
    let audit_context = context.audit(&principal);
    let user = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let before = users::lock(conn, account_id, user_id)
                .await?
                .ok_or(ApiError::InvalidToken)?;
            let after = users::update_profile(conn, user_id, &changes)
                .await
                .map_err(preferences_refused)?;
            let (mut before_json, mut after_json) = (user_json(&before), user_json(&after));
            if changes.preferences.is_some() {
                before_json["preferences"] = before.preferences.clone();
                after_json["preferences"] = after.preferences.clone();
            }
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "user.updated", "user", user_id)
                    .with_before(before_json)
                    .with_after(after_json),
            )
            .await?;
            Ok::<_, ApiError>(after)
        })
    })
    .await?;
    Ok(web::Json(Me::new(user, account, principal.impersonator_id)))
}
