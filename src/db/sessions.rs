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

/// Revokes every live session of a user (password reset).
pub async fn revoke_all_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(Utc::now()),
        sessions::revoke_reason.eq(reason),
    ))
    .execute(conn)
    .await
}
