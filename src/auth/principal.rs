//! The authenticated caller of a request: a user session, an API key or an instance token.
//!
//! [`Principal`] is an extractor: a handler that takes one is authenticated, and one that does
//! not is anonymous. [`credential`] reads the request's one credential (two at once → 400),
//! [`authenticate`] verifies it; the websocket upgrade uses the same two functions.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Bytea, Text};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::policy::{Role, Scope, Scopes};
use super::revocation::{Revocable, Verdict};
use super::secrets;
use super::tokens::TokenError;
use crate::db::{self, sessions};
use crate::error::ApiError;
use crate::state::AppState;

/// What kind of credential authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An access token of a login session.
    User {
        /// The session (`sid`).
        session_id: Uuid,
    },
    /// An API key (account-wide, no user).
    ApiKey {
        /// The key's id.
        key_id: Uuid,
        /// Its own rate limit.
        rate_limit_per_minute: u32,
    },
    /// An instance token, acting as its issuer within its scopes.
    InstanceToken {
        /// The token's id.
        token_id: Uuid,
        /// The issuer's session.
        session_id: Uuid,
    },
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The credential.
    pub kind: PrincipalKind,
    /// The tenant.
    pub account_id: Uuid,
    /// The user whose rights apply (the impersonated user while impersonating); `None` for
    /// API keys.
    pub user_id: Option<Uuid>,
    /// The role whose rights apply (API keys act as `admin`, narrowed by their scopes).
    pub role: Role,
    /// `None`: the role's full rights (user sessions). `Some`: only these scopes.
    pub scopes: Option<Scopes>,
    /// The super_admin acting as `user_id`.
    pub impersonator_id: Option<Uuid>,
    /// An instance token bound to one provider instance.
    pub provider_instance_id: Option<Uuid>,
    /// When the credential expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    /// Whether this principal is the platform operator (and not impersonating).
    pub fn is_super_admin(&self) -> bool {
        self.role == Role::SuperAdmin
            && self.impersonator_id.is_none()
            && matches!(self.kind, PrincipalKind::User { .. })
    }

    /// The platform scope, for super_admin operations across accounts.
    pub fn platform_scope(&self) -> Result<db::PlatformScope, ApiError> {
        super::policy::authorize(self, super::policy::Action::PlatformAdmin)?;
        Ok(db::PlatformScope::system())
    }

    /// The user id, or 403 for API keys.
    pub fn require_user(&self) -> Result<Uuid, ApiError> {
        self.user_id.ok_or_else(|| ApiError::Forbidden {
            message: "this action needs a user".into(),
            details: Some(serde_json::json!({ "required_principal": "user" })),
        })
    }

    /// The session behind a user session or instance token.
    pub fn session_id(&self) -> Option<Uuid> {
        match self.kind {
            PrincipalKind::User { session_id }
            | PrincipalKind::InstanceToken { session_id, .. } => Some(session_id),
            PrincipalKind::ApiKey { .. } => None,
        }
    }

    /// The id that audit rows name as the actor, and its type.
    pub fn actor(&self) -> (&'static str, Option<Uuid>) {
        match self.kind {
            PrincipalKind::User { .. } => ("user", self.impersonator_id.or(self.user_id)),
            PrincipalKind::ApiKey { key_id, .. } => ("api_key", Some(key_id)),
            PrincipalKind::InstanceToken { token_id, .. } => ("instance_token", Some(token_id)),
        }
    }

    /// Checks that the path's account is the principal's (super_admin passes: its
    /// `app.account_id` becomes the path's). Another account answers like a missing one.
    pub fn check_account(&self, account_id: Uuid) -> Result<(), ApiError> {
        if self.account_id == account_id || self.is_super_admin() {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        }
    }
}

/// The one credential a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access JWT.
    AccessToken(String),
    /// An instance token (`wpi_…`).
    InstanceToken(String),
    /// An API key (`X-API-Key`).
    ApiKey(String),
}

/// Reads the credential of a request; two credentials at once → 400.
pub fn credential(req: &HttpRequest) -> Result<Option<Credential>, ApiError> {
    let bearer = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| ApiError::Unauthenticated("malformed Authorization header".into()))?;
            match value.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Some(token.trim().to_owned())
                }
                _ => {
                    return Err(ApiError::Unauthenticated(
                        "Authorization must be `Bearer <token>`".into(),
                    ))
                }
            }
        }
    };
    let api_key = req
        .headers()
        .get("x-api-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::InvalidToken)?;
    match (bearer, api_key) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest("send exactly one credential".into())),
        (Some(token), None) => Ok(Some(bearer_credential(token))),
        (None, Some(key)) => Ok(Some(Credential::ApiKey(key))),
        (None, None) => Ok(None),
    }
}

/// Classifies a bearer value (a JWT or an instance token).
pub fn bearer_credential(token: String) -> Credential {
    if secrets::is_instance_token(&token) {
        Credential::InstanceToken(token)
    } else {
        Credential::AccessToken(token)
    }
}

/// Verifies a credential.
pub async fn authenticate(
    state: &AppState,
    credential: &Credential,
) -> Result<Principal, ApiError> {
    match credential {
        Credential::AccessToken(token) => authenticate_access_token(state, token).await,
        Credential::InstanceToken(token) => authenticate_instance_token(state, token).await,
        Credential::ApiKey(key) => authenticate_api_key(state, key).await,
    }
}

/// Verifies an access token and that its session is not revoked.
pub async fn authenticate_access_token(
    state: &AppState,
    token: &str,
) -> Result<Principal, ApiError> {
    let claims = state.tokens.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::TokenExpired,
        TokenError::Invalid => ApiError::InvalidToken,
    })?;
    match state.revocations.verdict(Revocable::Session, claims.sid) {
        Verdict::Revoked => return Err(ApiError::InvalidToken),
        Verdict::Live => {}
        Verdict::Unknown => {
            // The cache is stale: the database decides (or the request fails closed).
            let (sid, owner) = (claims.sid, claims.act_as.unwrap_or(claims.sub));
            let live = db::tenant_tx(&state.db, claims.account_id, |conn| {
                Box::pin(
                    async move { Ok::<_, ApiError>(sessions::is_live(conn, sid, owner).await?) },
                )
            })
            .await?;
            if !live {
                return Err(ApiError::InvalidToken);
            }
        }
    }
    let role = Role::parse(&claims.role).ok_or(ApiError::InvalidToken)?;
    Ok(Principal {
        kind: PrincipalKind::User {
            session_id: claims.sid,
        },
        account_id: claims.account_id,
        user_id: Some(claims.act_as.unwrap_or(claims.sub)),
        role,
        scopes: None,
        impersonator_id: claims.act_as.map(|_| claims.sub),
        provider_instance_id: None,
        expires_at: Some(claims.expires_at()),
    })
}

#[derive(diesel::QueryableByName)]
struct InstanceTokenRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    session_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    provider_instance_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    scopes: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    revoked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    user_status: String,
    #[diesel(sql_type = Text)]
    account_status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    session_revoked_at: Option<DateTime<Utc>>,
}

/// Verifies an instance token: not expired, not revoked, its issuer's session, user and
/// account still good.
pub async fn authenticate_instance_token(
    state: &AppState,
    token: &str,
) -> Result<Principal, ApiError> {
    let hash = secrets::sha256(token);
    let row: Option<InstanceTokenRow> = {
        let mut conn = state.db.conn().await?;
        diesel::sql_query("SELECT * FROM auth_instance_token_by_hash($1)")
            .bind::<Bytea, _>(hash)
            .get_result(&mut conn)
            .await
            .optional_row()?
    };
    let row = row.ok_or(ApiError::InvalidToken)?;
    if row.revoked_at.is_some()
        || row.session_revoked_at.is_some()
        || state.revocations.verdict(Revocable::InstanceToken, row.id) == Verdict::Revoked
        || state
            .revocations
            .verdict(Revocable::Session, row.session_id)
            == Verdict::Revoked
        || row.user_status != "active"
    {
        return Err(ApiError::InvalidToken);
    }
    if row.expires_at <= Utc::now() {
        return Err(ApiError::TokenExpired);
    }
    if row.account_status != "active" {
        return Err(ApiError::forbidden("the account is not active"));
    }
    let scopes: Scopes = row.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    Ok(Principal {
        kind: PrincipalKind::InstanceToken {
            token_id: row.id,
            session_id: row.session_id,
        },
        account_id: row.account_id,
        user_id: Some(row.user_id),
        role: Role::parse(&row.role).ok_or(ApiError::InvalidToken)?,
        scopes: Some(scopes),
        impersonator_id: None,
        provider_instance_id: row.provider_instance_id,
        expires_at: Some(row.expires_at),
    })
}

#[derive(diesel::QueryableByName)]
struct ApiKeyRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
    #[diesel(sql_type = Text)]
    key_hash: String,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    scopes: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    rate_limit_per_minute: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    revoked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Text)]
    account_status: String,
}

/// A verified API key, cached under the key's SHA-256 for up to a minute.
#[derive(Debug, Clone)]
struct VerifiedKey {
    id: Uuid,
    account_id: Uuid,
    scopes: Scopes,
    rate_limit_per_minute: u32,
    expires_at: Option<DateTime<Utc>>,
    verified_at: Instant,
}

/// How long a successful API-key verification is reused (iam.md §4.6: ≤ 60 s).
const KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Successful API-key verifications (argon2id is slow on purpose; a key used for many requests
/// is verified once a minute). Revocation is checked on every request regardless.
#[derive(Clone, Default)]
pub struct ApiKeyCache {
    verified: Arc<Mutex<HashMap<Vec<u8>, VerifiedKey>>>,
    last_used_written: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

impl ApiKeyCache {
    fn get(&self, digest: &[u8]) -> Option<VerifiedKey> {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(digest) {
            Some(key) if key.verified_at.elapsed() < KEY_CACHE_TTL => Some(key.clone()),
            Some(_) => {
                map.remove(digest);
                None
            }
            None => None,
        }
    }

    fn put(&self, digest: Vec<u8>, key: VerifiedKey) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, k| k.verified_at.elapsed() < KEY_CACHE_TTL);
        map.insert(digest, key);
    }

    /// Drops a key's cached verification (on revoke).
    pub fn evict(&self, key_id: Uuid) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, k| k.id != key_id);
    }

    /// Drops the cached verifications of an account's keys (suspension, deletion).
    pub fn evict_account(&self, account_id: Uuid) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, k| k.account_id != account_id);
    }

    /// Whether `last_used_at` is due a write (at most once a minute per key).
    fn last_used_due(&self, key_id: Uuid) -> bool {
        let mut map = self
            .last_used_written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match map.get(&key_id) {
            Some(at) if at.elapsed() < Duration::from_secs(60) => false,
            _ => {
                map.insert(key_id, Instant::now());
                true
            }
        }
    }
}

/// Verifies an API key: format, prefix, argon2id hash, revocation, expiry, account status.
pub async fn authenticate_api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let prefix = secrets::api_key_prefix(key).ok_or(ApiError::InvalidToken)?;
    let digest = secrets::sha256(key);
    let verified = match state.api_keys.get(&digest) {
        Some(verified) => verified,
        None => {
            let row: Option<ApiKeyRow> = {
                let mut conn = state.db.conn().await?;
                diesel::sql_query("SELECT * FROM auth_api_key_by_prefix($1)")
                    .bind::<Text, _>(prefix)
                    .get_result(&mut conn)
                    .await
                    .optional_row()?
            };
            let stored = row.as_ref().map(|r| r.key_hash.clone());
            let matches = matches!(
                super::password::verify_blocking(key.to_owned(), stored).await,
                super::password::Verification::Match { .. }
            );
            let row = match row {
                Some(row) if matches => row,
                _ => return Err(ApiError::InvalidToken),
            };
            if row.revoked_at.is_some() {
                return Err(ApiError::InvalidToken);
            }
            if row.account_status != "active" {
                return Err(ApiError::forbidden("the account is not active"));
            }
            let verified = VerifiedKey {
                id: row.id,
                account_id: row.account_id,
                scopes: row.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
                rate_limit_per_minute: row.rate_limit_per_minute.max(1) as u32,
                expires_at: row.expires_at,
                verified_at: Instant::now(),
            };
            state.api_keys.put(digest, verified.clone());
            verified
        }
    };
    if state.revocations.verdict(Revocable::ApiKey, verified.id) == Verdict::Revoked {
        state.api_keys.evict(verified.id);
        return Err(ApiError::InvalidToken);
    }
    if verified.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::TokenExpired);
    }
    if state.api_keys.last_used_due(verified.id) {
        let (db, account_id, key_id) = (state.db.clone(), verified.account_id, verified.id);
        actix_web::rt::spawn(async move {
            let result = db::tenant_tx(&db, account_id, |conn| {
                Box::pin(async move {
                    crate::db::api_keys::touch(conn, key_id).await?;
                    Ok::<_, ApiError>(())
                })
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not record api key use");
            }
        });
    }
    Ok(Principal {
        kind: PrincipalKind::ApiKey {
            key_id: verified.id,
            rate_limit_per_minute: verified.rate_limit_per_minute,
        },
        account_id: verified.account_id,
        user_id: None,
        role: Role::Admin,
        scopes: Some(verified.scopes),
        impersonator_id: None,
        provider_instance_id: None,
        expires_at: verified.expires_at,
    })
}

/// `get_result(...).optional()` for `sql_query` rows.
trait OptionalRow<T> {
    fn optional_row(self) -> Result<Option<T>, diesel::result::Error>;
}

impl<T> OptionalRow<T> for Result<T, diesel::result::Error> {
    fn optional_row(self) -> Result<Option<T>, diesel::result::Error> {
        match self {
            Ok(row) => Ok(Some(row)),
            Err(diesel::result::Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Counts an authenticated request in the tenant's usage (the supervisor accumulates it).
fn record_activity(state: &AppState, principal: &Principal) {
    if let Ok(supervisor) = state.registry.get_or_start(principal.account_id) {
        supervisor.do_send(whatpro_actors::supervisor::RecordActivity {
            user_id: principal.user_id,
        });
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        // A principal resolved earlier in the request (rate limiting) is reused.
        if let Some(principal) = req.extensions().get::<Principal>().cloned() {
            return Box::pin(async move {
                if let Some(state) = state {
                    record_activity(&state, &principal);
                }
                Ok(principal)
            });
        }
        let credential = credential(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let credential =
                credential?.ok_or(ApiError::Unauthenticated("authentication required".into()))?;
            let principal = authenticate(&state, &credential).await?;
            if let Some(span) = req.extensions().get::<tracing_actix_web::RootSpan>() {
                span.record("account_id", tracing::field::display(principal.account_id));
                if let Some(user_id) = principal.user_id {
                    span.record("user_id", tracing::field::display(user_id));
                }
            }
            req.extensions_mut().insert(principal.clone());
            record_activity(&state, &principal);
            Ok(principal)
        })
    }
}
