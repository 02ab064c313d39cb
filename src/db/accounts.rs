//! Accounts (tenants): the `accounts` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::accounts;

/// An account row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    /// Primary key.
    pub id: Uuid,
    /// The Chatwoot account this tenant mirrors.
    pub chatwoot_account_id: Option<i64>,
    /// Display name.
    pub name: String,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    /// BCP 47 locale.
    pub locale: String,
    /// Known settings keys only (tenancy.md §1).
    pub settings: serde_json::Value,
    /// The install's platform account (holds the super_admins).
    pub is_platform: bool,
    /// Why it was suspended.
    pub suspended_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Account {
    /// Whether the account may be used (logins, tokens).
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// A new account.
#[derive(Debug, Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccount<'a> {
    /// Primary key (UUIDv7).
    pub id: Uuid,
    /// Display name.
    pub name: &'a str,
    /// Whether this is the platform account.
    pub is_platform: bool,
    /// Chatwoot account id, if any.
    pub chatwoot_account_id: Option<i64>,
    /// BCP 47 locale (`None`: the default, pt-BR). Set at insert: the default board is named
    /// after it in the same statement.
    pub locale: Option<&'a str>,
}

/// Inserts an account.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewAccount<'_>) -> QueryResult<Account> {
    diesel::insert_into(accounts::table)
        .values(new)
        .returning(Account::as_returning())
        .get_result(conn)
        .await
}

/// Reads an account by id.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Account>> {
    accounts::table
        .find(id)
        .select(Account::as_select())
        .first(conn)
        .await
        .optional()
}

/// Reads the names of several accounts (for admin listings).
pub async fn names(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, String)>> {
    accounts::table
        .filter(accounts::id.eq_any(ids))
        .select((accounts::id, accounts::name))
        .load(conn)
        .await
}

/// Whether any account exists (first-start detection).
pub async fn any_exists(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(accounts::table.select(accounts::id)))
        .get_result(conn)
        .await
}

/// The platform account, if it exists.
pub async fn platform(conn: &mut AsyncPgConnection) -> QueryResult<Option<Account>> {
    accounts::table
        .filter(accounts::is_platform.eq(true))
        .select(Account::as_select())
        .first(conn)
        .await
        .optional()
}

/// Filters of the accounts list.
#[derive(Debug, Default, Clone)]
pub struct AccountFilter {
    /// Only this status (`deleted` accounts are listed only when asked for).
    pub status: Option<String>,
    /// Name contains (case-insensitive).
    pub q: Option<String>,
    /// This Chatwoot account.
    pub chatwoot_account_id: Option<i64>,
}

/// A page of accounts in id order after `after` (platform scope).
pub async fn page(
    conn: &mut AsyncPgConnection,
    filter: &AccountFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Account>> {
    let mut query = accounts::table.into_boxed();
    query = match &filter.status {
        Some(status) => query.filter(accounts::status.eq(status.clone())),
        None => query.filter(accounts::status.ne("deleted")),
    };
    if let Some(q) = &filter.q {
        let pattern = format!(
            "%{}%",
            q.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        query = query.filter(accounts::name.ilike(pattern));
    }
    if let Some(id) = filter.chatwoot_account_id {
        query = query.filter(accounts::chatwoot_account_id.eq(id));
    }
    if let Some(after) = after {
        query = query.filter(accounts::id.gt(after));
    }
    query
        .order(accounts::id.asc())
        .limit(limit)
        .select(Account::as_select())
        .load(conn)
        .await
}

/// Changes to an account (fields given are set).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = accounts)]
pub struct AccountChanges {
    /// Name.
    pub name: Option<String>,
    /// Locale.
    pub locale: Option<String>,
    /// Settings.
    pub settings: Option<serde_json::Value>,
    /// Status.
    pub status: Option<String>,
    /// Suspension reason (`Some(None)` clears it).
    pub suspended_reason: Option<Option<String>>,
    /// Chatwoot account id (`Some(None)` clears it).
    pub chatwoot_account_id: Option<Option<i64>>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Applies changes to an account and returns it.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    mut changes: AccountChanges,
) -> QueryResult<Account> {
    changes.updated_at = Some(Utc::now());
    diesel::update(accounts::table.find(id))
        .set(changes)
        .returning(Account::as_returning())
        .get_result(conn)
        .await
}

/// A hub account as the pre-tenant look-up by Chatwoot id returns it.
#[derive(Debug, diesel::QueryableByName)]
pub struct MirroredAccount {
    /// The account.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// Its status.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
}

/// The account mirroring a Chatwoot account, through the `auth_account_by_chatwoot_id`
/// SECURITY DEFINER function (SSO, before the tenant is known).
pub async fn by_chatwoot_id(
    conn: &mut AsyncPgConnection,
    chatwoot_account_id: i64,
) -> QueryResult<Option<MirroredAccount>> {
    diesel::sql_query("SELECT id, status FROM auth_account_by_chatwoot_id($1)")
        .bind::<diesel::sql_types::BigInt, _>(chatwoot_account_id)
        .get_result(conn)
        .await
        .optional()
}

/// Inserts an active account mirroring `chatwoot_account_id`; `None` when one already exists
/// (a concurrent sign-in won).
pub async fn insert_chatwoot_mirror(
    conn: &mut AsyncPgConnection,
    name: &str,
    chatwoot_account_id: i64,
) -> QueryResult<Option<Account>> {
    diesel::insert_into(accounts::table)
        .values(&NewAccount {
            id: Uuid::now_v7(),
            name,
            is_platform: false,
            chatwoot_account_id: Some(chatwoot_account_id),
            locale: None,
        })
        .on_conflict(accounts::chatwoot_account_id)
        .do_nothing()
        .returning(Account::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Renames an account.
pub async fn rename(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    name: &str,
) -> QueryResult<Account> {
    diesel::update(accounts::table.find(account_id))
        .set((
            accounts::name.eq(name),
            accounts::updated_at.eq(chrono::Utc::now()),
        ))
        .returning(Account::as_returning())
        .get_result(conn)
        .await
}
