//! Teams and their members: the `teams` and `team_members` tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{team_members, teams, users};
use super::users::User;

/// A team row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = teams)]
pub struct Team {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Name (unique per account, case-insensitive).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Chatwoot team id.
    pub chatwoot_team_id: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// Inserts a team.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    name: &str,
    description: Option<&str>,
) -> QueryResult<Team> {
    diesel::insert_into(teams::table)
        .values((
            teams::id.eq(Uuid::now_v7()),
            teams::account_id.eq(account_id),
            teams::name.eq(name),
            teams::description.eq(description),
        ))
        .returning(Team::as_returning())
        .get_result(conn)
        .await
}

/// A page of the account's teams in id order after `after`.
pub async fn page(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Team>> {
    let mut query = teams::table
        .filter(teams::account_id.eq(account_id))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(teams::id.gt(after));
    }
    query
        .order(teams::id.asc())
        .limit(limit)
        .select(Team::as_select())
        .load(conn)
        .await
}

/// One team of the account.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Team>> {
    teams::table
        .filter(teams::account_id.eq(account_id))
        .filter(teams::id.eq(id))
        .select(Team::as_select())
        .first(conn)
        .await
        .optional()
}

/// Renames or re-describes a team.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> QueryResult<Team> {
    if let Some(name) = name {
        diesel::update(teams::table.find(id))
            .set(teams::name.eq(name))
            .execute(conn)
            .await?;
    }
    if let Some(description) = description {
        diesel::update(teams::table.find(id))
            .set(teams::description.eq(description))
            .execute(conn)
            .await?;
    }
    diesel::update(teams::table.find(id))
        .set(teams::updated_at.eq(Utc::now()))
        .returning(Team::as_returning())
        .get_result(conn)
        .await
}

/// Deletes a team (its memberships go with it).
pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(teams::table.find(id)).execute(conn).await
}

/// The team's members.
pub async fn members(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    team_id: Uuid,
) -> QueryResult<Vec<User>> {
    team_members::table
        .inner_join(users::table.on(users::id.eq(team_members::user_id)))
        .filter(team_members::account_id.eq(account_id))
        .filter(team_members::team_id.eq(team_id))
        .order(users::id.asc())
        .select(User::as_select())
        .load(conn)
        .await
}

/// Whether the user is in the team.
pub async fn is_member(
    conn: &mut AsyncPgConnection,
    team_id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        team_members::table
            .filter(team_members::team_id.eq(team_id))
            .filter(team_members::user_id.eq(user_id)),
    ))
    .get_result(conn)
    .await
}

/// Adds a member; returns its creation time.
pub async fn add_member(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    team_id: Uuid,
    user_id: Uuid,
    added_by: Option<Uuid>,
) -> QueryResult<DateTime<Utc>> {
    diesel::insert_into(team_members::table)
        .values((
            team_members::account_id.eq(account_id),
            team_members::team_id.eq(team_id),
            team_members::user_id.eq(user_id),
            team_members::added_by.eq(added_by),
        ))
        .returning(team_members::created_at)
        .get_result(conn)
        .await
}

/// Removes a member; returns whether there was one.
pub async fn remove_member(
    conn: &mut AsyncPgConnection,
    team_id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    diesel::delete(
        team_members::table
            .filter(team_members::team_id.eq(team_id))
            .filter(team_members::user_id.eq(user_id)),
    )
    .execute(conn)
    .await
    .map(|n| n > 0)
}

/// The teams of a user, as (id, name).
pub async fn of_user(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Vec<(Uuid, String)>> {
    team_members::table
        .inner_join(teams::table.on(teams::id.eq(team_members::team_id)))
        .filter(team_members::account_id.eq(account_id))
        .filter(team_members::user_id.eq(user_id))
        .order(teams::name.asc())
        .select((teams::id, teams::name))
        .load(conn)
        .await
}

/// The teams of several users of the account, as (user id, team id, team name), by team name.
pub async fn of_users(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, Uuid, String)>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    team_members::table
        .inner_join(teams::table.on(teams::id.eq(team_members::team_id)))
        .filter(team_members::account_id.eq(account_id))
        .filter(team_members::user_id.eq_any(user_ids))
        .order((teams::name.asc(), teams::id.asc()))
        .select((team_members::user_id, teams::id, teams::name))
        .load(conn)
        .await
}

/// The user's memberships with when and by whom they were added, as (team id, team name,
/// added by, added at), by team name.
pub async fn memberships_of(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Vec<(Uuid, String, Option<Uuid>, DateTime<Utc>)>> {
    team_members::table
        .inner_join(teams::table.on(teams::id.eq(team_members::team_id)))
        .filter(team_members::account_id.eq(account_id))
        .filter(team_members::user_id.eq(user_id))
        .order((teams::name.asc(), teams::id.asc()))
        .select((
            teams::id,
            teams::name,
            team_members::added_by,
            team_members::created_at,
        ))
        .load(conn)
        .await
}
