//! Users: the `users` table. `password_hash` never leaves this module's callers in a response.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::accounts::Account;
use super::schema::{accounts, team_members, users};

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

/// The filters of a user listing; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// `active` or `inactive`.
    pub status: Option<String>,
    /// A role's wire name.
    pub role: Option<String>,
    /// Members of this team only.
    pub team_id: Option<Uuid>,
    /// Name or email contains this (case-insensitive).
    pub q: Option<String>,
}

/// `%text%` for `ILIKE`, with `%`, `_` and `\` escaped.
fn contains_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// A page of the account's users matching `filter`, in id order (ids are time-ordered
/// UUIDv7), after `after`.
pub async fn page(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    filter: &UserFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<User>> {
    let mut query = users::table
        .filter(users::account_id.eq(account_id))
        .into_boxed();
    if let Some(status) = &filter.status {
        query = query.filter(users::status.eq(status.clone()));
    }
    if let Some(role) = &filter.role {
        query = query.filter(users::role.eq(role.clone()));
    }
    if let Some(team_id) = filter.team_id {
        query = query.filter(
            users::id.eq_any(
                team_members::table
                    .filter(team_members::account_id.eq(account_id))
                    .filter(team_members::team_id.eq(team_id))
                    .select(team_members::user_id),
            ),
        );
    }
    if let Some(q) = &filter.q {
        let pattern = contains_pattern(q);
        // citext has no `ILIKE` in diesel's DSL; its text form matches the same way.
        let email_matches = diesel::dsl::sql::<diesel::sql_types::Bool>("users.email::text ILIKE ")
            .bind::<diesel::sql_types::Text, _>(pattern.clone());
        query = query.filter(users::name.ilike(pattern).or(email_matches));
    }
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

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct ProfileChanges {
    /// Display name.
    pub name: Option<String>,
    /// Email (unique per account, case-insensitive: a clash is a unique violation).
    pub email: Option<String>,
    /// https avatar URL; `Some(None)` clears it.
    pub avatar_url: Option<Option<String>>,
    /// Client preferences (an object of at most 16 KiB, checked by the column too).
    pub preferences: Option<serde_json::Value>,
}

impl ProfileChanges {
    /// Whether nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.email.is_none()
            && self.avatar_url.is_none()
            && self.preferences.is_none()
    }
}

/// Changes a user's profile fields (at least one must be given).
pub async fn update_profile(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    changes: &ProfileChanges,
) -> QueryResult<User> {
    diesel::update(users::table.find(user_id))
        .set((changes, users::updated_at.eq(Utc::now())))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// A user of the account, its row locked until the transaction ends.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<User>> {
    users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::id.eq(user_id))
        .select(User::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
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

/// Every column of a user row the person may see about themself (the data-subject export):
/// all but the password hash, which only shows as whether there is one.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = users)]
pub struct PersonalProfile {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Avatar.
    pub avatar_url: Option<String>,
    /// Role.
    pub role: String,
    /// `chatwoot` or `manual`.
    pub role_source: String,
    /// `active` or `inactive`.
    pub status: String,
    /// Chatwoot user id.
    pub chatwoot_user_id: Option<i64>,
    /// The role Chatwoot gives the user.
    pub chatwoot_role: Option<String>,
    /// Chatwoot availability.
    pub availability: Option<String>,
    /// Client preferences.
    #[schema(value_type = Object)]
    pub preferences: serde_json::Value,
    /// Last activity.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Last login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// When deactivated.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The user's personal profile and whether they have a password.
pub async fn personal_profile(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<(PersonalProfile, bool)>> {
    users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::id.eq(user_id))
        .select((
            PersonalProfile::as_select(),
            users::password_hash.is_not_null(),
        ))
        .first(conn)
        .await
        .optional()
}
