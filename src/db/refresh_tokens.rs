//! Refresh tokens: the `refresh_tokens` table (iam.md §4.5). Stored as SHA-256; rotated on
//! every use within the same session.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::refresh_tokens;

/// A refresh token row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    /// Primary key.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Session (refresh family).
    pub session_id: Uuid,
    /// Issue time.
    pub issued_at: DateTime<Utc>,
    /// Expiry (7 days, never past the session's).
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged.
    pub used_at: Option<DateTime<Utc>>,
    /// Its successor.
    pub replaced_by: Option<Uuid>,
}

/// Inserts a token.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    account_id: Uuid,
    session_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(id),
            refresh_tokens::account_id.eq(account_id),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Reads and locks a token by hash (concurrent refreshes of one token serialize here).
pub async fn lock_by_hash(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(RefreshToken::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Marks a token used and points it at its successor.
pub async fn mark_used(conn: &mut AsyncPgConnection, id: Uuid, successor: Uuid) -> QueryResult<()> {
    diesel::update(refresh_tokens::table.find(id))
        .set((
            refresh_tokens::used_at.eq(Utc::now()),
            refresh_tokens::replaced_by.eq(successor),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
