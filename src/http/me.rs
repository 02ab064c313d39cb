//! `/api/v1/me`: the caller's own profile.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::{self, users};
use crate::error::ApiError;
use crate::state::AppState;

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

/// `GET /api/v1/me`.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Me>, ApiError> {
    let user_id = principal.require_user()?;
    let account_id = principal.account_id;
    let (user, account) = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(users::find_in_account(conn, account_id, user_id).await?)
        })
    })
    .await?
    .ok_or(ApiError::InvalidToken)?;
    Ok(web::Json(Me {
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
        impersonated_by: principal.impersonator_id,
        last_login_at: user.last_login_at,
        created_at: user.created_at,
    }))
}
