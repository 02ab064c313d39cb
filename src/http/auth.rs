//! `/api/v1/auth/*`: password login (iam.md §4.1), refresh and logout (§4.5). Chatwoot SSO
//! (§4.3) lives in `sso.rs`.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::password::{self, Verification};
use crate::auth::policy::Role;
use crate::auth::principal::{authenticate_access_token, credential, Credential};
use crate::auth::signin::{self, Issued};
use crate::db::audit::{self, AuditEvent};
use crate::db::{self, sessions, users};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::cors::origin_allowed;
use crate::http::extract::Json;
use crate::state::AppState;

/// The refresh cookie's name.
pub const REFRESH_COOKIE: &str = "wp_refresh";

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
pub struct SignedInUser {
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

impl SignedInUser {
    /// The user as sign-in answers show it.
    pub fn new(user: users::User, account: crate::db::accounts::Account) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            account_id: account.id,
            account_name: account.name,
        }
    }
}

/// Login, SSO and refresh answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignInResponse {
    /// Access token (HS256 JWT, 15 minutes).
    pub token: String,
    /// Opaque refresh token (`wpr_…`); also set as the `wp_refresh` cookie.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// The user.
    pub user: SignedInUser,
}

/// The `wp_refresh` cookie (HttpOnly, SameSite=Strict, Path=/api/v1/auth; Secure unless the
/// hub runs on plain HTTP in development).
pub fn refresh_cookie(state: &AppState, token: &str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, token.to_owned())
        .http_only(true)
        .secure(state.config.public_is_https())
        .same_site(SameSite::Strict)
        .path("/api/v1/auth")
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

/// The answer to a successful sign-in or refresh: body plus cookie.
pub fn signed_in(state: &AppState, issued: Issued, user: SignedInUser) -> HttpResponse {
    let max_age = (issued.refresh_expires_at - Utc::now())
        .num_seconds()
        .max(0);
    HttpResponse::Ok()
        .cookie(refresh_cookie(state, &issued.refresh_token, max_age))
        .json(SignInResponse {
            token: issued.access_token,
            refresh_token: issued.refresh_token,
            expires_at: issued.claims.expires_at(),
            user,
        })
}

#[derive(diesel::QueryableByName)]
struct Candidate {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    password_hash: Option<String>,
    #[diesel(sql_type = Text)]
    user_status: String,
    #[diesel(sql_type = Text)]
    account_status: String,
    #[diesel(sql_type = Text)]
    account_name: String,
}

/// Password login.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = SignInResponse),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "email in several accounts: details.accounts"),
        (status = 429, body = crate::error::ErrorBody),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    context: RequestContext,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest {
        email,
        password,
        account_id,
    } = body.0;
    let email = email.trim().to_owned();
    state.rate_limits.check_login_email(&email)?;
    let attempt = match state.login_throttle.begin(&email, context.ip) {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            state
                .metrics
                .auth_attempts
                .with_label_values(&["locked"])
                .inc();
            audit_platform(
                &state,
                &context,
                "auth.login.locked",
                &email,
                "RATE_LIMITED",
            )
            .await;
            return Err(ApiError::RateLimited {
                retry_after_secs: retry_after.as_secs().max(1),
            });
        }
    };
    let candidates: Vec<Candidate> = {
        let mut conn = state.db.conn().await?;
        diesel::sql_query("SELECT * FROM auth_login_candidates($1)")
            .bind::<Text, _>(&email)
            .load(&mut conn)
            .await?
    };
    let candidates: Vec<_> = candidates
        .into_iter()
        .filter(|c| account_id.is_none_or(|a| c.account_id == a))
        .collect();
    let mut matched = Vec::new();
    if candidates.is_empty() {
        // Same cost as a wrong password, so timing does not reveal unknown emails.
        password::verify_blocking(password.clone(), None).await;
    }
    for candidate in candidates {
        if let Verification::Match { rehash } =
            password::verify_blocking(password.clone(), candidate.password_hash.clone()).await
        {
            matched.push((candidate, rehash));
        }
    }
    let (candidate, rehash) = match matched.len() {
        0 => {
            let lock = attempt.failed();
            state
                .metrics
                .auth_attempts
                .with_label_values(&["failure"])
                .inc();
            audit_platform(
                &state,
                &context,
                "auth.login.failed",
                &email,
                "UNAUTHENTICATED",
            )
            .await;
            if lock.is_some() {
                audit_platform(
                    &state,
                    &context,
                    "auth.login.locked",
                    &email,
                    "RATE_LIMITED",
                )
                .await;
            }
            return Err(ApiError::Unauthenticated(
                "invalid email or password".into(),
            ));
        }
        1 => matched.remove(0),
        _ => {
            attempt.succeeded();
            let accounts: Vec<_> = matched
                .iter()
                .map(|(c, _)| json!({ "id": c.account_id, "name": c.account_name }))
                .collect();
            return Err(ApiError::Conflict {
                message: "this email exists in several accounts; choose one with account_id".into(),
                details: Some(json!({ "accounts": accounts })),
            });
        }
    };
    if candidate.user_status != "active" || candidate.account_status != "active" {
        state
            .metrics
            .auth_attempts
            .with_label_values(&["failure"])
            .inc();
        return Err(ApiError::forbidden("this user or account is not active"));
    }
    attempt.succeeded();
    let new_hash = match rehash {
        true => Some(password::hash_blocking(password).await?),
        false => None,
    };
    let audit_context = context.user(candidate.user_id);
    let (account_id, user_id) = (candidate.account_id, candidate.user_id);
    let (user, account, session_id, refresh, refresh_expires) =
        db::tenant_tx(&state.db, account_id, |conn| {
            Box::pin(async move {
                let (user, account) = users::find_in_account(conn, account_id, user_id)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                let (session_id, refresh, refresh_expires) =
                    signin::open_session(conn, account_id, user_id, "password", &audit_context)
                        .await?;
                users::record_login(conn, user_id, new_hash.as_deref()).await?;
                audit::record(
                    conn,
                    &audit_context,
                    AuditEvent::success(
                        Some(account_id),
                        "auth.login.succeeded",
                        "session",
                        session_id,
                    ),
                )
                .await?;
                Ok::<_, ApiError>((user, account, session_id, refresh, refresh_expires))
            })
        })
        .await?;
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::internal("unknown role in the database"))?;
    let issued = signin::issue(
        &state,
        user.id,
        session_id,
        account.id,
        role,
        refresh,
        refresh_expires,
    )?;
    state
        .metrics
        .auth_attempts
        .with_label_values(&["success"])
        .inc();
    Ok(signed_in(&state, issued, SignedInUser::new(user, account)))
}

/// Writes a platform audit row about an anonymous sign-in attempt.
async fn audit_platform(
    state: &AppState,
    context: &RequestContext,
    action: &'static str,
    email: &str,
    code: &'static str,
) {
    let event = AuditEvent {
        account_id: None,
        action,
        resource_type: Some("user"),
        resource_id: None,
        before: None,
        after: Some(json!({ "email": email })),
        result: "failure",
        error_code: Some(code),
    };
    audit::record_alone(&state.db, context.anonymous(), event).await;
}

/// `POST /api/v1/auth/refresh` body (the cookie may carry the token instead; the body wins).
#[derive(Debug, Default, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    #[garde(length(max = 100))]
    pub refresh_token: Option<String>,
}

/// The refresh token of a request: the body's, else the cookie's (which needs an allowed
/// `Origin`, so another site cannot ride the cookie).
fn refresh_token_of(
    req: &HttpRequest,
    state: &AppState,
    context: &RequestContext,
    body: Option<RefreshRequest>,
) -> Result<Option<String>, ApiError> {
    if let Some(token) = body.and_then(|b| b.refresh_token) {
        return Ok(Some(token));
    }
    let Some(cookie) = req.cookie(REFRESH_COOKIE) else {
        return Ok(None);
    };
    match context.origin.as_deref() {
        Some(origin) if origin_allowed(state, origin) => Ok(Some(cookie.value().to_owned())),
        _ => Err(ApiError::forbidden(
            "a cookie refresh needs an allowed Origin",
        )),
    }
}

/// Optional JSON body: an empty body is allowed (cookie transport).
async fn optional_body(
    req: &HttpRequest,
    payload: &mut actix_web::dev::Payload,
) -> Result<Option<RefreshRequest>, ApiError> {
    use actix_web::FromRequest;
    let has_body = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || req.headers().contains_key("transfer-encoding");
    if !has_body {
        return Ok(None);
    }
    Ok(Some(
        Json::<RefreshRequest>::from_request(req, payload).await?.0,
    ))
}

/// Exchanges a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body(content = RefreshRequest, description = "or the wp_refresh cookie"),
    responses(
        (status = 200, body = SignInResponse),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "rotated < 10 s ago: retry with the new token"),
        (status = 429, body = crate::error::ErrorBody),
    ))]
pub async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    context: RequestContext,
) -> Result<HttpResponse, ApiError> {
    let body = optional_body(&req, &mut payload.into_inner()).await?;
    let token = refresh_token_of(&req, &state, &context, body)?
        .ok_or(ApiError::Unauthenticated("no refresh token".into()))?;
    let (issued, user_id) = signin::refresh(&state, &token, &context.anonymous()).await?;
    let account_id = issued.claims.account_id;
    let (user, account) = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(users::find_in_account(conn, account_id, user_id).await?)
        })
    })
    .await?
    .ok_or(ApiError::InvalidToken)?;
    Ok(signed_in(&state, issued, SignedInUser::new(user, account)))
}

/// Signs out: revokes the session of the access token (or of the refresh token in the body or
/// cookie) with its refresh and instance tokens, and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "signed out"), (status = 401, body = crate::error::ErrorBody)))]
pub async fn logout(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    context: RequestContext,
) -> Result<HttpResponse, ApiError> {
    let mut action = "auth.logout";
    let mut audit_context = None;
    let (account_id, user_id, session_id) = match credential(&req)? {
        Some(Credential::AccessToken(token)) => {
            let principal = authenticate_access_token(&state, &token).await?;
            let session_id = principal.session_id().ok_or(ApiError::InvalidToken)?;
            let owner = principal.user_id.ok_or(ApiError::InvalidToken)?;
            if principal.impersonator_id.is_some() {
                action = "impersonation.ended";
            }
            audit_context = Some(context.audit(&principal));
            (principal.account_id, owner, session_id)
        }
        Some(_) => return Err(ApiError::forbidden("logout needs a user session")),
        None => {
            let body = optional_body(&req, &mut payload.into_inner()).await?;
            let token = refresh_token_of(&req, &state, &context, body)?
                .ok_or(ApiError::Unauthenticated("authentication required".into()))?;
            signin::session_of_refresh_token(&state, &token).await?
        }
    };
    let audit_context = audit_context.unwrap_or_else(|| context.user(user_id));
    let revoked = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            signin::revoke_sessions(
                conn,
                account_id,
                sessions::Revoke::One {
                    user_id,
                    session_id,
                },
                "logout",
                &audit_context,
                action,
            )
            .await
        })
    })
    .await?;
    signin::after_revocation(&state, &revoked);
    Ok(HttpResponse::NoContent()
        .cookie(refresh_cookie(&state, "", 0))
        .finish())
}
