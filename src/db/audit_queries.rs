//! Reading the audit log (tenancy.md §6): filtered pages, newest first by
//! `(created_at, id)`, and single rows. Writing lives in [`super::audit`].
//!
//! Every query here runs inside a scoped transaction: in a tenant transaction row-level
//! security already hides other tenants' rows and the platform rows (`account_id` null), and
//! the queries filter on the account anyway; in the platform scope they see everything.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{self, Bool, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::schema::{audit_log, instance_tokens};

/// One audit row, every column.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AuditEntry {
    /// Row id (UUIDv7).
    pub id: Uuid,
    /// The tenant; `None` for platform events.
    pub account_id: Option<Uuid>,
    /// `user`, `api_key`, `instance_token`, `system`, `webhook` or `anonymous`.
    pub actor_type: String,
    /// The acting user, key or token.
    pub actor_id: Option<Uuid>,
    /// The impersonated user, while impersonating.
    pub acted_as_user_id: Option<Uuid>,
    /// `<resource>.<verb>`.
    pub action: String,
    /// The resource's type.
    pub resource_type: Option<String>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// State before (redacted).
    pub before: Option<Value>,
    /// State after (redacted).
    pub after: Option<Value>,
    /// `success`, `failure` or `denied`.
    pub result: String,
    /// The error code of a failure or denial.
    pub error_code: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// Which accounts' rows a listing covers (on top of what row-level security allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountFilter {
    /// Every row the transaction may see (platform scope: all of them).
    Any,
    /// One account's rows.
    Account(Uuid),
    /// Platform rows only (`account_id` null).
    Platform,
}

/// How `action` is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionFilter {
    /// The action equals this.
    Exact(String),
    /// The action starts with this (which ends with `.`, e.g. `user.`).
    Prefix(String),
}

/// The filters of an audit listing; `None` means "any".
#[derive(Debug, Clone)]
pub struct AuditFilter {
    /// Whose rows.
    pub account: AccountFilter,
    /// The actor.
    pub actor_id: Option<Uuid>,
    /// The action, exact or by prefix.
    pub action: Option<ActionFilter>,
    /// The resource's type.
    pub resource_type: Option<String>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub result: Option<String>,
    /// Rows created at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Rows created strictly before this instant.
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// No filter besides whose rows.
    pub fn for_account(account: AccountFilter) -> Self {
        Self {
            account,
            actor_id: None,
            action: None,
            resource_type: None,
            resource_id: None,
            result: None,
            from: None,
            to: None,
        }
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern (PostgreSQL's default escape is `\`).
fn like_escape(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len() + 4);
    for c in literal.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Up to `limit` rows matching `filter`, newest first by `(created_at, id)`, starting strictly
/// after the sort key `after` (the last row of the previous page).
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &AuditFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table.into_boxed();
    query = match filter.account {
        AccountFilter::Any => query,
        AccountFilter::Account(account_id) => query.filter(audit_log::account_id.eq(account_id)),
        AccountFilter::Platform => query.filter(audit_log::account_id.is_null()),
    };
    if let Some(actor_id) = filter.actor_id {
        query = query.filter(audit_log::actor_id.eq(actor_id));
    }
    match &filter.action {
        Some(ActionFilter::Exact(action)) => {
            query = query.filter(audit_log::action.eq(action.clone()));
        }
        Some(ActionFilter::Prefix(prefix)) => {
            query = query.filter(audit_log::action.like(format!("{}%", like_escape(prefix))));
        }
        None => {}
    }
    if let Some(resource_type) = &filter.resource_type {
        query = query.filter(audit_log::resource_type.eq(resource_type.clone()));
    }
    if let Some(resource_id) = &filter.resource_id {
        query = query.filter(audit_log::resource_id.eq(resource_id.clone()));
    }
    if let Some(result) = &filter.result {
        query = query.filter(audit_log::result.eq(result.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::created_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::created_at.lt(to));
    }
    if let Some((created_at, id)) = after {
        // A row comparison, so the `(account_id, created_at DESC, id DESC)` index serves it as
        // one range; the plain bound lets the planner skip the newer partitions.
        query = query.filter(audit_log::created_at.le(created_at)).filter(
            sql::<Bool>("(audit_log.created_at, audit_log.id) < (")
                .bind::<Timestamptz, _>(created_at)
                .sql(", ")
                .bind::<sql_types::Uuid, _>(id)
                .sql(")"),
        );
    }
    query
        .order((audit_log::created_at.desc(), audit_log::id.desc()))
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
        .await
}

/// One row of `account_id` by its id (the id alone identifies a row; the table's key also
/// holds `created_at` only because it is partitioned by it).
pub async fn find(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<AuditEntry>> {
    audit_log::table
        .filter(audit_log::id.eq(id))
        .filter(audit_log::account_id.eq(account_id))
        .select(AuditEntry::as_select())
        .first(conn)
        .await
        .optional()
}

/// The rows where the user acts: as themself, impersonated by a super_admin (acted as), or
/// through one of their instance tokens; of `account_id` only when given (a super_admin's
/// export, in the platform scope, covers every account). Newest first.
pub async fn acted_by_user(
    conn: &mut AsyncPgConnection,
    account_id: Option<Uuid>,
    user_id: Uuid,
) -> QueryResult<Vec<AuditEntry>> {
    let tokens = instance_tokens::table
        .filter(instance_tokens::user_id.eq(user_id))
        .select(instance_tokens::id.nullable());
    let mut query = audit_log::table
        .filter(
            audit_log::actor_type
                .eq("user")
                .and(audit_log::actor_id.eq(user_id))
                .or(audit_log::acted_as_user_id.eq(user_id))
                .or(audit_log::actor_type
                    .eq("instance_token")
                    .and(audit_log::actor_id.eq_any(tokens))),
        )
        .into_boxed();
    if let Some(account_id) = account_id {
        query = query.filter(audit_log::account_id.eq(account_id));
    }
    query
        .order((audit_log::created_at.desc(), audit_log::id.desc()))
        .select(AuditEntry::as_select())
        .load(conn)
        .await
}

/// How many successful `action` rows the user wrote in the account since `since`.
pub async fn count_by_actor_since(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    actor_id: Uuid,
    action: &str,
    since: DateTime<Utc>,
) -> QueryResult<i64> {
    audit_log::table
        .filter(audit_log::account_id.eq(account_id))
        .filter(audit_log::action.eq(action))
        .filter(audit_log::actor_type.eq("user"))
        .filter(audit_log::actor_id.eq(actor_id))
        .filter(audit_log::result.eq("success"))
        .filter(audit_log::created_at.ge(since))
        .count()
        .get_result(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape("api_key."), "api\\_key.");
        assert_eq!(like_escape("50%\\"), "50\\%\\\\");
        assert_eq!(like_escape("user."), "user.");
    }
}
