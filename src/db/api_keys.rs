//! API keys: the `api_keys` table (iam.md §4.6). Only the prefix and an argon2id hash are kept.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::api_keys;

/// An API key row (never carries the key itself).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    /// Primary key.
    pub id: Uuid,
    /// Owning account.
    pub account_id: Uuid,
    /// Label.
    pub name: String,
    /// The public prefix (shown in lists).
    pub prefix: String,
    /// Granted scopes.
    pub scopes: Vec<Option<String>>,
    /// The key's own rate limit.
    pub rate_limit_per_minute: i32,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who created it.
    pub created_by: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A new API key.
#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    /// Primary key.
    pub id: Uuid,
    /// Owning account.
    pub account_id: Uuid,
    /// Label.
    pub name: &'a str,
    /// Public prefix.
    pub prefix: &'a str,
    /// argon2id hash of the whole key.
    pub key_hash: &'a str,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Rate limit.
    pub rate_limit_per_minute: i32,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Creator.
    pub created_by: Option<Uuid>,
}

/// Inserts a key.
pub async fn insert(conn: &mut AsyncPgConnection, new: NewApiKey<'_>) -> QueryResult<ApiKey> {
    diesel::insert_into(api_keys::table)
        .values(new)
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await
}

/// The account's keys, newest first.
pub async fn list(conn: &mut AsyncPgConnection, account_id: Uuid) -> QueryResult<Vec<ApiKey>> {
    api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .select(ApiKey::as_select())
        .load(conn)
        .await
}

/// One key of the account.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .filter(api_keys::id.eq(id))
        .select(ApiKey::as_select())
        .first(conn)
        .await
        .optional()
}

/// Revokes a key (the row is kept); returns whether it was live.
pub async fn revoke(conn: &mut AsyncPgConnection, account_id: Uuid, id: Uuid) -> QueryResult<bool> {
    diesel::update(
        api_keys::table
            .filter(api_keys::account_id.eq(account_id))
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Utc::now()))
    .execute(conn)
    .await
    .map(|n| n > 0)
}

/// Records a use.
pub async fn touch(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(api_keys::table.find(id))
        .set(api_keys::last_used_at.eq(Utc::now()))
        .execute(conn)
        .await
        .map(|_| ())
}
