//! Plans, entitlements and quotas (tenancy.md §4).
//!
//! Effective entitlements are the plan's limits and flags with the account's `overrides`
//! applied. Every create of a counted resource calls [`check_quota`] inside its own
//! transaction: it locks the account's entitlements row, counts, and refuses at the limit, so
//! concurrent creates cannot overshoot. A missing or unreadable row fails closed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::schema::{account_entitlements, accounts, boards, plans, teams, users};
use crate::error::ApiError;

/// Limit keys, in the order of tenancy.md §4.
pub const LIMIT_KEYS: [&str; 7] = [
    "max_agents",
    "max_teams",
    "max_inboxes",
    "max_providers",
    "max_instances",
    "max_boards",
    "max_monthly_messages",
];

/// Feature flag keys.
pub const FEATURE_KEYS: [&str; 3] = ["kanban", "internal_chat", "analytics"];

/// A counted resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Active users of any role.
    MaxAgents,
    /// Teams.
    MaxTeams,
    /// Kanban boards.
    MaxBoards,
}

impl Limit {
    /// The limit's key.
    pub fn key(self) -> &'static str {
        match self {
            Limit::MaxAgents => "max_agents",
            Limit::MaxTeams => "max_teams",
            Limit::MaxBoards => "max_boards",
        }
    }
}

/// An account's effective entitlements.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Effective {
    /// The plan's code.
    pub plan: String,
    /// Limits (`null` = unlimited).
    #[schema(value_type = Object)]
    pub limits: BTreeMap<String, Option<i64>>,
    /// Feature flags.
    #[schema(value_type = Object)]
    pub features: BTreeMap<String, bool>,
    /// The account's overrides.
    #[schema(value_type = Object)]
    pub overrides: Value,
    /// `full` or `read_only`.
    pub access_mode: String,
    /// Whether the account is the platform account (exempt from limits and flags).
    pub is_platform: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Effective {
    /// Whether a feature is on (the platform account has every feature).
    pub fn feature(&self, key: &str) -> bool {
        self.is_platform || self.features.get(key).copied().unwrap_or(false)
    }

    /// A limit's maximum (`None`: unlimited; always unlimited for the platform account).
    pub fn limit(&self, key: &str) -> Option<i64> {
        if self.is_platform {
            return None;
        }
        self.limits.get(key).copied().flatten()
    }
}

type Row = (String, Value, String, DateTime<Utc>, Value, Value, bool);

fn effective(
    (plan, overrides, access_mode, updated_at, plan_limits, plan_features, is_platform): Row,
) -> Effective {
    let mut limits: BTreeMap<String, Option<i64>> = LIMIT_KEYS
        .iter()
        .map(|k| ((*k).to_owned(), plan_limits.get(*k).and_then(Value::as_i64)))
        .collect();
    let mut features: BTreeMap<String, bool> = FEATURE_KEYS
        .iter()
        .map(|k| {
            (
                (*k).to_owned(),
                plan_features
                    .get(*k)
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            )
        })
        .collect();
    if let Some(map) = overrides.as_object() {
        for (key, value) in map {
            if let Some(limit) = limits.get_mut(key) {
                *limit = value.as_i64();
            } else if let Some(flag) = features.get_mut(key) {
                *flag = value.as_bool().unwrap_or(*flag);
            }
        }
    }
    Effective {
        plan,
        limits,
        features,
        overrides,
        access_mode,
        is_platform,
        updated_at,
    }
}

/// Reads an account's effective entitlements (`FOR UPDATE` of the entitlements row when
/// `lock`).
pub async fn load(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    lock: bool,
) -> QueryResult<Option<Effective>> {
    let query = account_entitlements::table
        .inner_join(plans::table.on(plans::code.eq(account_entitlements::plan)))
        .inner_join(accounts::table.on(accounts::id.eq(account_entitlements::account_id)))
        .filter(account_entitlements::account_id.eq(account_id))
        .select((
            account_entitlements::plan,
            account_entitlements::overrides,
            account_entitlements::access_mode,
            account_entitlements::updated_at,
            plans::limits,
            plans::features,
            accounts::is_platform,
        ));
    if lock {
        // Lock only the account's own row (a FOR UPDATE on the join would also lock the
        // shared plan row and serialize every account on that plan).
        let locked: Option<Uuid> = account_entitlements::table
            .find(account_id)
            .select(account_entitlements::account_id)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if locked.is_none() {
            return Ok(None);
        }
    }
    let row: Option<Row> = query.first(conn).await.optional()?;
    Ok(row.map(effective))
}

/// The current count of a limited resource.
pub async fn count(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    limit: Limit,
) -> QueryResult<i64> {
    match limit {
        Limit::MaxAgents => {
            users::table
                .filter(users::account_id.eq(account_id))
                .filter(users::status.eq("active"))
                .count()
                .get_result(conn)
                .await
        }
        Limit::MaxTeams => {
            teams::table
                .filter(teams::account_id.eq(account_id))
                .count()
                .get_result(conn)
                .await
        }
        Limit::MaxBoards => {
            boards::table
                .filter(boards::account_id.eq(account_id))
                .count()
                .get_result(conn)
                .await
        }
    }
}

/// Refuses a create at the limit (403 `QUOTA_EXCEEDED` with `{limit, max, current, plan}`).
/// Locks the entitlements row until the caller's transaction ends.
pub async fn check_quota(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    limit: Limit,
) -> Result<(), ApiError> {
    let entitlements = load(conn, account_id, true)
        .await?
        .ok_or_else(|| ApiError::Unavailable("the account's entitlements cannot be read".into()))?;
    let Some(max) = entitlements.limit(limit.key()) else {
        return Ok(());
    };
    let current = count(conn, account_id, limit).await?;
    if current >= max {
        return Err(ApiError::QuotaExceeded {
            limit: limit.key(),
            details: json!({ "limit": limit.key(), "max": max, "current": current, "plan": entitlements.plan }),
        });
    }
    Ok(())
}

/// Current counts of every limit that can be counted yet (for `GET …/entitlements`).
pub async fn counts(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
) -> QueryResult<BTreeMap<String, i64>> {
    let mut counts = BTreeMap::new();
    for limit in [Limit::MaxAgents, Limit::MaxTeams, Limit::MaxBoards] {
        counts.insert(
            limit.key().to_owned(),
            count(conn, account_id, limit).await?,
        );
    }
    Ok(counts)
}

/// Whether a plan code exists.
pub async fn plan_exists(conn: &mut AsyncPgConnection, code: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        plans::table.filter(plans::code.eq(code)),
    ))
    .get_result(conn)
    .await
}

/// Sets plan, access mode and overrides (those given).
pub async fn update(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    plan: Option<&str>,
    access_mode: Option<&str>,
    overrides: Option<&Value>,
    updated_by: Option<Uuid>,
) -> QueryResult<()> {
    let target = account_entitlements::table.find(account_id);
    if let Some(plan) = plan {
        diesel::update(target)
            .set(account_entitlements::plan.eq(plan))
            .execute(conn)
            .await?;
    }
    if let Some(mode) = access_mode {
        diesel::update(target)
            .set(account_entitlements::access_mode.eq(mode))
            .execute(conn)
            .await?;
    }
    if let Some(overrides) = overrides {
        diesel::update(target)
            .set(account_entitlements::overrides.eq(overrides))
            .execute(conn)
            .await?;
    }
    diesel::update(target)
        .set((
            account_entitlements::updated_by.eq(updated_by),
            account_entitlements::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
