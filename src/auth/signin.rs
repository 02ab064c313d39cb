//! Sessions from sign-in to sign-out: opening one (login, SSO), rotating its refresh token,
//! and revoking it (iam.md §4.5).
//!
//! Refresh tokens rotate on every use inside one session (`sid`). The row is locked while it is
//! exchanged, so of concurrent refreshes exactly one wins; the loser, within 10 seconds of the
//! rotation, gets 409 and the session lives on (it retries with the new cookie). Presenting an
//! already-rotated token later than that is treated as theft: the whole session is revoked.

use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::Bytea;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::policy::Role;
use super::revocation::Revocable;
use super::secrets;
use super::tokens::AccessClaims;
use crate::db::audit::{self, AuditContext, AuditEvent};
use crate::db::{self, refresh_tokens, sessions, users};
use crate::error::ApiError;
use crate::state::AppState;

/// Session (refresh family) lifetime.
pub const SESSION_DAYS: i64 = 30;
/// Refresh token lifetime.
pub const REFRESH_DAYS: i64 = 7;
/// A token rotated this recently is answered 409 rather than treated as reuse.
pub const ROTATION_GRACE_SECS: i64 = 10;

/// A new session's credentials.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Access JWT.
    pub access_token: String,
    /// Its claims.
    pub claims: AccessClaims,
    /// Opaque refresh token (`wpr_…`).
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Opens a session with its first refresh token, inside the caller's (tenant) transaction.
/// Returns the session id, the refresh token and its expiry.
pub async fn open_session(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
    kind: &str,
    context: &AuditContext,
) -> Result<(Uuid, String, DateTime<Utc>), ApiError> {
    let session_id = Uuid::now_v7();
    let now = Utc::now();
    let session_expires = now + Duration::days(SESSION_DAYS);
    sessions::insert(
        conn,
        &sessions::NewSession {
            id: session_id,
            account_id,
            user_id,
            kind,
            ip: context.ip.as_deref(),
            user_agent: context.user_agent.as_deref(),
            expires_at: session_expires,
        },
    )
    .await?;
    let (token, hash) = secrets::new_refresh_token();
    let refresh_expires = (now + Duration::days(REFRESH_DAYS)).min(session_expires);
    refresh_tokens::insert(
        conn,
        Uuid::now_v7(),
        account_id,
        session_id,
        &hash,
        refresh_expires,
    )
    .await?;
    Ok((session_id, token, refresh_expires))
}

/// Issues the access token of a freshly opened session.
pub fn issue(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    account_id: Uuid,
    role: Role,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
) -> Result<Issued, ApiError> {
    let (access_token, claims) = state
        .tokens
        .issue(user_id, session_id, account_id, role.as_str())
        .map_err(ApiError::internal)?;
    Ok(Issued {
        access_token,
        claims,
        refresh_token,
        refresh_expires_at,
    })
}

#[derive(diesel::QueryableByName)]
struct TokenOwner {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
}

/// The account a refresh token belongs to (found before the tenant is known).
async fn token_account(state: &AppState, hash: &[u8]) -> Result<Option<Uuid>, ApiError> {
    let mut conn = state.db.conn().await?;
    let found: Result<TokenOwner, _> =
        diesel::sql_query("SELECT account_id FROM auth_refresh_token_by_hash($1)")
            .bind::<Bytea, _>(hash)
            .get_result(&mut conn)
            .await;
    match found {
        Ok(owner) => Ok(Some(owner.account_id)),
        Err(diesel::result::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

enum Exchange {
    Rotated {
        user_id: Uuid,
        session_id: Uuid,
        role: Role,
        token: String,
        expires_at: DateTime<Utc>,
    },
    TooSoon,
    Reused(Uuid),
    Expired,
    Invalid,
}

/// Exchanges a refresh token for a new access token and a new refresh token.
pub async fn refresh(
    state: &AppState,
    token: &str,
    context: &AuditContext,
) -> Result<(Issued, Uuid), ApiError> {
    if !secrets::is_refresh_token(token) {
        return Err(ApiError::InvalidToken);
    }
    let hash = secrets::sha256(token);
    let account_id = token_account(state, &hash)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    let context = context.clone();
    let exchange = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let Some(current) = refresh_tokens::lock_by_hash(conn, &hash).await? else {
                return Ok::<_, ApiError>(Exchange::Invalid);
            };
            let now = Utc::now();
            let Some(session) = sessions::lock(conn, account_id, current.session_id).await? else {
                return Ok(Exchange::Invalid);
            };
            if session.revoked_at.is_some() || session.expires_at <= now {
                return Ok(Exchange::Invalid);
            }
            if let Some(used_at) = current.used_at {
                if now - used_at < Duration::seconds(ROTATION_GRACE_SECS) {
                    return Ok(Exchange::TooSoon);
                }
                // An old token came back: someone kept a copy. End the whole session.
                sessions::revoke(
                    conn,
                    account_id,
                    sessions::Revoke::One {
                        user_id: session.user_id,
                        session_id: session.id,
                    },
                    "refresh_reuse",
                )
                .await?;
                let event = AuditEvent {
                    error_code: Some("INVALID_TOKEN"),
                    result: "failure",
                    ..AuditEvent::success(
                        Some(account_id),
                        "auth.refresh.reuse_detected",
                        "session",
                        session.id,
                    )
                };
                audit::record(
                    conn,
                    &AuditContext {
                        actor_type: "user",
                        actor_id: Some(session.user_id),
                        ..context
                    },
                    event,
                )
                .await?;
                return Ok(Exchange::Reused(session.id));
            }
            if current.expires_at <= now {
                return Ok(Exchange::Expired);
            }
            let Some((user, account)) =
                users::find_in_account(conn, account_id, session.user_id).await?
            else {
                return Ok(Exchange::Invalid);
            };
            if !user.is_active() || !account.is_active() {
                return Ok(Exchange::Invalid);
            }
            let role = Role::parse(&user.role)
                .ok_or_else(|| ApiError::internal("unknown role in the database"))?;
            let (token, new_hash) = secrets::new_refresh_token();
            let successor = Uuid::now_v7();
            let expires_at = (now + Duration::days(REFRESH_DAYS)).min(session.expires_at);
            refresh_tokens::insert(
                conn, successor, account_id, session.id, &new_hash, expires_at,
            )
            .await?;
            refresh_tokens::mark_used(conn, current.id, successor).await?;
            sessions::touch(conn, session.id).await?;
            Ok(Exchange::Rotated {
                user_id: user.id,
                session_id: session.id,
                role,
                token,
                expires_at,
            })
        })
    })
    .await?;
    match exchange {
        Exchange::Rotated {
            user_id,
            session_id,
            role,
            token,
            expires_at,
        } => Ok((
            issue(
                state, user_id, session_id, account_id, role, token, expires_at,
            )?,
            user_id,
        )),
        Exchange::TooSoon => Err(ApiError::conflict(
            "this refresh token was just rotated; retry with the new one",
        )),
        Exchange::Reused(session_id) => {
            state.revocations.record(Revocable::Session, session_id);
            Err(ApiError::InvalidToken)
        }
        Exchange::Expired => Err(ApiError::TokenExpired),
        Exchange::Invalid => Err(ApiError::InvalidToken),
    }
}

/// The session a refresh token belongs to, for logout by refresh token.
pub async fn session_of_refresh_token(
    state: &AppState,
    token: &str,
) -> Result<(Uuid, Uuid, Uuid), ApiError> {
    if !secrets::is_refresh_token(token) {
        return Err(ApiError::InvalidToken);
    }
    let hash = secrets::sha256(token);
    let account_id = token_account(state, &hash)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let token = refresh_tokens::lock_by_hash(conn, &hash)
                .await?
                .ok_or(ApiError::InvalidToken)?;
            let session = sessions::lock(conn, account_id, token.session_id)
                .await?
                .ok_or(ApiError::InvalidToken)?;
            Ok((account_id, session.user_id, session.id))
        })
    })
    .await
}

/// Revokes sessions and records the revocation on this node at once (other nodes learn it
/// from their poll within seconds). Runs in the caller's transaction; call
/// [`after_revocation`] once it committed.
pub async fn revoke_sessions(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    which: sessions::Revoke,
    reason: &str,
    context: &AuditContext,
    action: &str,
) -> Result<Vec<Uuid>, ApiError> {
    let revoked = sessions::revoke(conn, account_id, which, reason).await?;
    for session_id in &revoked {
        audit::record(
            conn,
            context,
            AuditEvent::success(Some(account_id), action, "session", session_id),
        )
        .await?;
    }
    Ok(revoked)
}

/// Makes committed session revocations effective on this node immediately: tokens fail and
/// the sessions' websockets close.
pub fn after_revocation(state: &AppState, revoked: &[Uuid]) {
    for session_id in revoked {
        state.revocations.record(Revocable::Session, *session_id);
    }
    crate::ws::close_revoked_sessions(state, revoked);
}

/// Replaces a user's password and revokes their sessions (all, or all but `keep`), with the
/// audit rows, in the caller's transaction.
pub async fn replace_password(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
    hash: &str,
    keep: Option<Uuid>,
    reason: &str,
    context: &AuditContext,
) -> Result<Vec<Uuid>, ApiError> {
    users::set_password_hash(conn, user_id, hash).await?;
    let revoked = revoke_sessions(
        conn,
        account_id,
        sessions::Revoke::AllOfUser {
            user_id,
            except: keep,
        },
        reason,
        context,
        "session.revoked",
    )
    .await?;
    audit::record(
        conn,
        context,
        AuditEvent::success(Some(account_id), "user.password_changed", "user", user_id),
    )
    .await?;
    Ok(revoked)
}
