//! Login sessions: the `sessions` table. An access token's `sid` names one of these rows, so
//! revoking the row revokes every token issued for it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::sessions;

/// A new session.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    /// Primary key (UUIDv7), the tokens' `sid`.
    pub id: Uuid,
    /// The user's account.
    pub account_id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// `password`, `sso` or `impersonation`.
    pub kind: &'a str,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Client user agent (≤ 512 chars).
    pub user_agent: Option<&'a str>,
    /// Hard end of the session.
    pub expires_at: DateTime<Utc>,
}

/// Inserts a session.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(new)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Whether the session exists, belongs to `user_id`, is not revoked and has not expired.
pub async fn is_live(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(Utc::now())),
    ))
    .get_result(conn)
    .await
}

/// A session row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// Primary key (`sid`).
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// User.
    pub user_id: Uuid,
    /// `password`, `sso` or `impersonation`.
    pub kind: String,
    /// The super_admin behind an impersonation session.
    pub impersonator_id: Option<Uuid>,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last refresh.
    pub last_seen_at: DateTime<Utc>,
    /// Hard end.
    pub expires_at: DateTime<Utc>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A session of the account, locked for update.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Session>> {
    sessions::table
        .filter(sessions::account_id.eq(account_id))
        .filter(sessions::id.eq(id))
        .select(Session::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The user's live sessions, newest first.
pub async fn live_for_user(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::account_id.eq(account_id))
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(Utc::now()))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(Session::as_select())
        .load(conn)
        .await
}

/// Records a refresh.
pub async fn touch(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(sessions::table.find(id))
        .set(sessions::last_seen_at.eq(Utc::now()))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Which sessions to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Revoke {
    /// One session of a user.
    One {
        /// The user.
        user_id: Uuid,
        /// The session.
        session_id: Uuid,
    },
    /// Every session of the account (suspension, deletion).
    AllOfAccount,
    /// Every session of a user except one (`None`: all).
    AllOfUser {
        /// The user.
        user_id: Uuid,
        /// The session to keep.
        except: Option<Uuid>,
    },
}

/// Revokes live sessions of the account with their instance tokens (refresh tokens die with
/// their session); returns the revoked session ids.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    which: Revoke,
    reason: &str,
) -> QueryResult<Vec<Uuid>> {
    let mut query = diesel::update(sessions::table)
        .filter(sessions::account_id.eq(account_id))
        .filter(sessions::revoked_at.is_null())
        .into_boxed();
    match which {
        Revoke::One {
            user_id,
            session_id,
        } => {
            query = query
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::id.eq(session_id));
        }
        Revoke::AllOfAccount => {}
        Revoke::AllOfUser { user_id, except } => {
            query = query.filter(sessions::user_id.eq(user_id));
            if let Some(keep) = except {
                query = query.filter(sessions::id.ne(keep));
            }
        }
    }
    let revoked: Vec<Uuid> = query
        .set((
            sessions::revoked_at.eq(Utc::now()),
            sessions::revoke_reason.eq(reason),
        ))
        .returning(sessions::id)
        .get_results(conn)
        .await?;
    if !revoked.is_empty() {
        super::instance_tokens::revoke_for_sessions(conn, &revoked).await?;
    }
    Ok(revoked)
}

/// Names the super_admin behind an impersonation session.
pub async fn set_impersonator(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    impersonator_id: Uuid,
) -> QueryResult<()> {
    diesel::update(sessions::table.find(id))
        .set(sessions::impersonator_id.eq(impersonator_id))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Every session of the user, live or not, newest first, with its revocation reason.
pub async fn all_of_user(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Vec<(Session, Option<String>)>> {
    sessions::table
        .filter(sessions::account_id.eq(account_id))
        .filter(sessions::user_id.eq(user_id))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select((Session::as_select(), sessions::revoke_reason))
        .load(conn)
        .await
}
