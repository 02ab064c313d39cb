//! `/api/v1/auth/*`: password login (iam.md §4.1). SSO, refresh and logout come with the IAM
//! issue.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::password::{self, Verification};
use crate::db::{self, sessions, users};
use crate::error::ApiError;
use crate::http::client_ip::client_ip;
use crate::http::extract::Json;
use crate::state::AppState;

/// How long a login session (refresh family) lives.
pub const SESSION_LIFETIME_DAYS: i64 = 30;

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email (case-insensitive).
    #[garde(length(min = 3, max = 254))]
    pub email: String,
    /// Password.
    #[garde(length(min = 1, max = 1024))]
    pub password: String,
    /// The account to sign in to, when the email exists in several.
    #[garde(skip)]
    pub account_id: Option<Uuid>,
}

/// The signed-in user, as login answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginUser {
    /// User id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Account id.
    pub account_id: Uuid,
    /// Account name.
    pub account_name: String,
}

/// `POST /api/v1/auth/login` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Access token (HS256 JWT, 15 minutes).
    pub token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// The user.
    pub user: LoginUser,
}

/// Password login.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "email in several accounts: details.accounts"),
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest {
        email,
        password,
        account_id,
    } = body.0;
    let candidates = {
        let mut conn = state.db.conn().await?;
        users::with_email(&mut conn, email.trim()).await?
    };
    let candidates: Vec<_> = candidates
        .into_iter()
        .filter(|(user, _)| account_id.is_none_or(|a| user.account_id == a))
        .collect();
    let unauthenticated = || {
        state
            .metrics
            .auth_attempts
            .with_label_values(&["failure"])
            .inc();
        ApiError::Unauthenticated("invalid email or password".into())
    };
    if candidates.is_empty() {
        // Same cost as a wrong password, so response time does not reveal unknown emails.
        password::verify_blocking(password, None).await;
        return Err(unauthenticated());
    }
    let mut matched = Vec::new();
    for (user, account) in candidates {
        if let Verification::Match { rehash } =
            password::verify_blocking(password.clone(), user.password_hash.clone()).await
        {
            matched.push((user, account, rehash));
        }
    }
    let (user, account, rehash) = match matched.len() {
        0 => return Err(unauthenticated()),
        1 => matched.remove(0),
        _ => {
            let accounts: Vec<_> = matched
                .iter()
                .map(|(_, a, _)| json!({ "id": a.id, "name": a.name }))
                .collect();
            return Err(ApiError::Conflict {
                message: "this email exists in several accounts; choose one with account_id".into(),
                details: Some(json!({ "accounts": accounts })),
            });
        }
    };
    if !user.is_active() || !account.is_active() {
        state
            .metrics
            .auth_attempts
            .with_label_values(&["failure"])
            .inc();
        return Err(ApiError::forbidden("this user or account is not active"));
    }
    let new_hash = if rehash {
        Some(password::hash_blocking(password).await?)
    } else {
        None
    };
    let session_id = Uuid::now_v7();
    let ip = client_ip(&req, &state.config.trusted_proxies).map(|ip| ip.to_string());
    let user_agent: Option<String> = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    let user_id = user.id;
    db::transaction(&state.db, |conn| {
        Box::pin(async move {
            sessions::insert(
                conn,
                &sessions::NewSession {
                    id: session_id,
                    account_id: user.account_id,
                    user_id,
                    kind: "password",
                    ip: ip.as_deref(),
                    user_agent: user_agent.as_deref(),
                    expires_at: Utc::now() + Duration::days(SESSION_LIFETIME_DAYS),
                },
            )
            .await?;
            users::record_login(conn, user_id, new_hash.as_deref()).await?;
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    let (token, claims) = state
        .tokens
        .issue(user.id, session_id, user.account_id, &user.role)
        .map_err(ApiError::internal)?;
    state
        .metrics
        .auth_attempts
        .with_label_values(&["success"])
        .inc();
    Ok(HttpResponse::Ok().json(LoginResponse {
        token,
        expires_at: claims.expires_at(),
        user: LoginUser {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            account_id: account.id,
            account_name: account.name,
        },
    }))
}
