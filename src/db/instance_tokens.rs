//! Instance tokens: the `instance_tokens` table (iam.md §4.7). Stored as SHA-256.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::instance_tokens;

/// An instance token row (never carries the token).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = instance_tokens)]
pub struct InstanceToken {
    /// Primary key.
    pub id: Uuid,
    /// Owning account.
    pub account_id: Uuid,
    /// The issuer.
    pub user_id: Uuid,
    /// The issuer's session (the token dies with it).
    pub session_id: Uuid,
    /// The one provider instance it is bound to, if any.
    pub provider_instance_id: Option<Uuid>,
    /// Scopes.
    pub scopes: Vec<Option<String>>,
    /// Expiry (15–60 minutes after creation).
    pub expires_at: DateTime<Utc>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A new instance token.
#[derive(Debug, Insertable)]
#[diesel(table_name = instance_tokens)]
pub struct NewInstanceToken {
    /// Primary key.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Issuer.
    pub user_id: Uuid,
    /// Issuer's session.
    pub session_id: Uuid,
    /// Bound instance.
    pub provider_instance_id: Option<Uuid>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Inserts a token.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: NewInstanceToken,
) -> QueryResult<InstanceToken> {
    diesel::insert_into(instance_tokens::table)
        .values(new)
        .returning(InstanceToken::as_returning())
        .get_result(conn)
        .await
}

/// The account's tokens (only `user_id`'s when given), newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Option<Uuid>,
) -> QueryResult<Vec<InstanceToken>> {
    let mut query = instance_tokens::table
        .filter(instance_tokens::account_id.eq(account_id))
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(instance_tokens::user_id.eq(user_id));
    }
    query
        .order((
            instance_tokens::created_at.desc(),
            instance_tokens::id.desc(),
        ))
        .select(InstanceToken::as_select())
        .load(conn)
        .await
}

/// One token of the account.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<InstanceToken>> {
    instance_tokens::table
        .filter(instance_tokens::account_id.eq(account_id))
        .filter(instance_tokens::id.eq(id))
        .select(InstanceToken::as_select())
        .first(conn)
        .await
        .optional()
}

/// Revokes one token; returns whether it was live.
pub async fn revoke(conn: &mut AsyncPgConnection, account_id: Uuid, id: Uuid) -> QueryResult<bool> {
    diesel::update(
        instance_tokens::table
            .filter(instance_tokens::account_id.eq(account_id))
            .filter(instance_tokens::id.eq(id))
            .filter(instance_tokens::revoked_at.is_null()),
    )
    .set(instance_tokens::revoked_at.eq(Utc::now()))
    .execute(conn)
    .await
    .map(|n| n > 0)
}

/// Revokes every live token issued in the given sessions.
pub async fn revoke_for_sessions(
    conn: &mut AsyncPgConnection,
    session_ids: &[Uuid],
) -> QueryResult<usize> {
    diesel::update(
        instance_tokens::table
            .filter(instance_tokens::session_id.eq_any(session_ids))
            .filter(instance_tokens::revoked_at.is_null()),
    )
    .set(instance_tokens::revoked_at.eq(Utc::now()))
    .execute(conn)
    .await
}
