//! Users: the `users` table. `password_hash` never leaves this module's callers in a response.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::accounts::Account;
use super::schema::{accounts, users};

/// A user row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// Primary key.
    pub id: Uuid,
    /// The account the user belongs to.
    pub account_id: Uuid,
    /// Email (case-insensitive, unique per account).
    pub email: String,
    /// Display name.
    pub name: String,
    /// https avatar URL.
    pub avatar_url: Option<String>,
    /// `super_admin`, `admin`, `supervisor` or `agent`.
    pub role: String,
    /// Whether the role follows Chatwoot or was set in the hub.
    pub role_source: String,
    /// `active` or `inactive`.
    pub status: String,
    /// Chatwoot user id.
    pub chatwoot_user_id: Option<i64>,
    /// argon2id PHC string; `None` for SSO-only users.
    pub password_hash: Option<String>,
    /// Client preferences.
    pub preferences: serde_json::Value,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// Whether the user may sign in.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// A new user.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Primary key (UUIDv7).
    pub id: Uuid,
    /// Owning account.
    pub account_id: Uuid,
    /// Email.
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Role.
    pub role: &'a str,
    /// argon2id PHC string.
    pub password_hash: Option<&'a str>,
}

/// Inserts a user.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Every user with this email (case-insensitive), in any account, with their account: login
/// looks across accounts before the tenant is known.
pub async fn with_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Vec<(User, Account)>> {
    users::table
        .inner_join(accounts::table)
        .filter(users::email.eq(email))
        .select((User::as_select(), Account::as_select()))
        .order(users::created_at.asc())
        .load(conn)
        .await
}

/// A user of an account, with the account.
pub async fn find_in_account(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<(User, Account)>> {
    users::table
        .inner_join(accounts::table)
        .filter(users::account_id.eq(account_id))
        .filter(users::id.eq(user_id))
        .select((User::as_select(), Account::as_select()))
        .first(conn)
        .await
        .optional()
}

/// Records a successful login, replacing the hash when it was re-hashed with stronger
/// parameters.
pub async fn record_login(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    new_hash: Option<&str>,
) -> QueryResult<()> {
    let now = Utc::now();
    let target = users::table.find(user_id);
    match new_hash {
        Some(hash) => {
            diesel::update(target)
                .set((users::last_login_at.eq(now), users::password_hash.eq(hash)))
                .execute(conn)
                .await?
        }
        None => {
            diesel::update(target)
                .set(users::last_login_at.eq(now))
                .execute(conn)
                .await?
        }
    };
    Ok(())
}

/// Sets a user's password hash.
pub async fn set_password_hash(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    hash: &str,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(hash),
            users::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A user of the account.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<User>> {
    users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::id.eq(user_id))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// A page of the account's users in id order (ids are time-ordered UUIDv7), after `after`.
pub async fn page(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<User>> {
    let mut query = users::table
        .filter(users::account_id.eq(account_id))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(users::id.gt(after));
    }
    query
        .order(users::id.asc())
        .limit(limit)
        .select(User::as_select())
        .load(conn)
        .await
}

/// Sets a user's role (set in the hub, so `role_source` becomes `manual`).
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    role: &str,
) -> QueryResult<User> {
    diesel::update(users::table.find(user_id))
        .set((
            users::role.eq(role),
            users::role_source.eq("manual"),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Sets a user's name.
pub async fn set_name(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    name: &str,
) -> QueryResult<User> {
    diesel::update(users::table.find(user_id))
        .set((users::name.eq(name), users::updated_at.eq(Utc::now())))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Active admins of the account, locked (the last one may not be demoted).
pub async fn lock_active_admins(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
) -> QueryResult<Vec<Uuid>> {
    users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::role.eq("admin"))
        .filter(users::status.eq("active"))
        .select(users::id)
        .for_update()
        .load(conn)
        .await
}

/// Sets a user's status (`deactivated_at` follows it).
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    active: bool,
) -> QueryResult<User> {
    let now = Utc::now();
    diesel::update(users::table.find(user_id))
        .set((
            users::status.eq(if active { "active" } else { "inactive" }),
            users::deactivated_at.eq(if active { None } else { Some(now) }),
            users::updated_at.eq(now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// A Chatwoot user's fields as the hub mirrors them (SSO).
#[derive(Debug, Clone, Copy)]
pub struct ChatwootUser<'a> {
    /// Chatwoot's user id.
    pub chatwoot_user_id: i64,
    /// Email.
    pub email: &'a str,
    /// Name.
    pub name: &'a str,
    /// Avatar (https).
    pub avatar_url: Option<&'a str>,
    /// The role Chatwoot gives them.
    pub chatwoot_role: Option<&'a str>,
    /// The hub role derived from it.
    pub role: &'a str,
}

/// Inserts a Chatwoot-linked user (role following Chatwoot, no password); `None` when a row
/// with that Chatwoot id or email already exists.
pub async fn insert_chatwoot_user(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user: &ChatwootUser<'_>,
) -> QueryResult<Option<User>> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(Uuid::now_v7()),
            users::account_id.eq(account_id),
            users::email.eq(user.email),
            users::name.eq(user.name),
            users::avatar_url.eq(user.avatar_url),
            users::role.eq(user.role),
            users::role_source.eq("chatwoot"),
            users::chatwoot_user_id.eq(Some(user.chatwoot_user_id)),
            users::chatwoot_role.eq(user.chatwoot_role),
        ))
        .on_conflict_do_nothing()
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The account's user linked to a Chatwoot user, locked.
pub async fn lock_by_chatwoot_id(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    chatwoot_user_id: i64,
) -> QueryResult<Option<User>> {
    users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::chatwoot_user_id.eq(chatwoot_user_id))
        .select(User::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The account's user with this email (case-insensitive) and no Chatwoot link, locked.
pub async fn lock_unlinked_by_email(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    email: &str,
) -> QueryResult<Option<User>> {
    users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::email.eq(email))
        .filter(users::chatwoot_user_id.is_null())
        .select(User::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Whether a user of the account other than `except` (any status) has this email.
pub async fn email_taken(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    email: &str,
    except: Uuid,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::account_id.eq(account_id))
            .filter(users::email.eq(email))
            .filter(users::id.ne(except)),
    ))
    .get_result(conn)
    .await
}

/// Writes the Chatwoot-owned fields, the link and the role.
pub async fn update_from_chatwoot(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
    user: &ChatwootUser<'_>,
    role: &str,
) -> QueryResult<User> {
    diesel::update(
        users::table
            .filter(users::account_id.eq(account_id))
            .filter(users::id.eq(user_id)),
    )
    .set((
        users::email.eq(user.email),
        users::name.eq(user.name),
        users::avatar_url.eq(user.avatar_url),
        users::chatwoot_user_id.eq(Some(user.chatwoot_user_id)),
        users::chatwoot_role.eq(user.chatwoot_role),
        users::role.eq(role),
        users::updated_at.eq(chrono::Utc::now()),
    ))
    .returning(User::as_returning())
    .get_result(conn)
    .await
}
