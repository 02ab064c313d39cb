//! `whatpro-hub admin maintenance` (operations.md, "CLI"; tenancy.md §6): audit log
//! retention.
//!
//! Run as the table owner, in one transaction under an advisory lock (two runs at once wait
//! for each other): creates the audit log's monthly partitions for this month and the next
//! three, then drops every monthly partition (`audit_log_YYYY_MM`, found through `pg_inherits`)
//! whose whole month ended at or before `now - retention_days`. Rows are never deleted one by
//! one (the table's trigger refuses that anyway); a partition is dropped whole. The run is
//! audited as a platform event (`audit_log.maintained`, actor `system`).

use std::fmt;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Integer, Text, Timestamptz};
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::Serialize;

use crate::db::audit::{self, AuditContext, AuditEvent};
use crate::db::DbError;

/// The least retention tenancy.md allows (`AUDIT_RETENTION_DAYS` ≥ 365); smaller values are
/// raised to it, so a mistaken argument can never drop a recent month.
pub const MIN_RETENTION_DAYS: u32 = 365;

/// Months created ahead of the current one.
pub const MONTHS_AHEAD: i32 = 3;

/// Serializes maintenance runs ("WHPRMAIN").
const MAINTENANCE_LOCK: i64 = 0x5748_5052_4d41_494e;

/// What a maintenance run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    /// The retention applied, in days (at least [`MIN_RETENTION_DAYS`]).
    pub retention_days: u32,
    /// `now - retention_days`: partitions whose month ended at or before it were dropped.
    pub cutoff: DateTime<Utc>,
    /// Partitions created (names, oldest first).
    pub created: Vec<String>,
    /// Partitions dropped (names, oldest first).
    pub dropped: Vec<String>,
    /// Partitions left, after the run (names, oldest first).
    pub kept: Vec<String>,
}

impl fmt::Display for MaintenanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audit retention: {} days (cutoff {})",
            self.retention_days,
            self.cutoff
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )?;
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        writeln!(f, "created partitions: {}", list(&self.created))?;
        writeln!(f, "dropped partitions: {}", list(&self.dropped))?;
        writeln!(f, "kept partitions: {}", list(&self.kept))
    }
}

#[derive(diesel::QueryableByName)]
struct Partition {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    qualified: String,
    #[diesel(sql_type = Bool)]
    expired: bool,
}

#[derive(diesel::QueryableByName)]
struct Cutoff {
    #[diesel(sql_type = Timestamptz)]
    cutoff: DateTime<Utc>,
}

/// The monthly partitions of `audit_log`, oldest first, each marked expired when its whole
/// month (its upper bound, the first instant of the next month) is at or before the cutoff.
/// Other children (a default partition, differently named tables) are never touched.
async fn partitions(
    conn: &mut AsyncPgConnection,
    retention_days: i32,
) -> Result<Vec<Partition>, DbError> {
    Ok(diesel::sql_query(
        "SELECT c.relname::text AS name, c.oid::regclass::text AS qualified, \
                (to_date(substring(c.relname::text FROM 11), 'YYYY_MM') + interval '1 month') \
                    <= now() - make_interval(days => $1) AS expired \
         FROM pg_catalog.pg_inherits i \
         JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'audit_log'::regclass \
           AND c.relname ~ '^audit_log_[0-9]{4}_(0[1-9]|1[0-2])$' \
         ORDER BY c.relname",
    )
    .bind::<Integer, _>(retention_days)
    .load(conn)
    .await?)
}

/// Runs the audit log's maintenance as the table owner (`owner_url`): creates this month's
/// partition and the next [`MONTHS_AHEAD`] months', and drops the monthly partitions past
/// `retention_days` (raised to [`MIN_RETENTION_DAYS`] if smaller). Returns what it did.
pub async fn run(owner_url: &str, retention_days: u32) -> Result<MaintenanceReport, DbError> {
    let retention_days = retention_days.max(MIN_RETENTION_DAYS);
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    let mut conn = AsyncPgConnection::establish(owner_url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    // Dropping a partition locks the parent briefly; never queue the server's inserts behind
    // a long wait.
    conn.batch_execute("SET lock_timeout = '5s'; SET statement_timeout = '60s'")
        .await?;
    conn.transaction::<_, DbError, _>(|conn| {
        async move {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(MAINTENANCE_LOCK)
                .execute(conn)
                .await?;
            // The platform scope, for the audit row below (row-level security is forced).
            diesel::sql_query("SELECT set_config('app.platform', 'on', true)")
                .execute(conn)
                .await?;
            let cutoff: Cutoff =
                diesel::sql_query("SELECT now() - make_interval(days => $1) AS cutoff")
                    .bind::<Integer, _>(days)
                    .get_result(conn)
                    .await?;
            let before: Vec<String> = partitions(conn, days)
                .await?
                .into_iter()
                .map(|p| p.name)
                .collect();
            diesel::sql_query(
                "SELECT audit_log_ensure_partitions(date_trunc('month', now())::date, $1)",
            )
            .bind::<Integer, _>(MONTHS_AHEAD + 1)
            .execute(conn)
            .await?;
            let mut created = Vec::new();
            let mut dropped = Vec::new();
            let mut kept = Vec::new();
            for partition in partitions(conn, days).await? {
                if !before.contains(&partition.name) {
                    created.push(partition.name.clone());
                }
                if partition.expired {
                    // `qualified` is PostgreSQL's own quoting of the partition's name.
                    diesel::sql_query(format!("DROP TABLE {}", partition.qualified))
                        .execute(conn)
                        .await?;
                    dropped.push(partition.name);
                } else {
                    kept.push(partition.name);
                }
            }
            let report = MaintenanceReport {
                retention_days,
                cutoff: cutoff.cutoff,
                created,
                dropped,
                kept,
            };
            audit::record(
                conn,
                &AuditContext::system(),
                AuditEvent {
                    account_id: None,
                    action: "audit_log.maintained",
                    resource_type: Some("audit_log"),
                    resource_id: None,
                    before: None,
                    after: Some(serde_json::json!({
                        "retention_days": report.retention_days,
                        "cutoff": report.cutoff,
                        "created": report.created,
                        "dropped": report.dropped,
                    })),
                    result: "success",
                    error_code: None,
                },
            )
            .await?;
            Ok(report)
        }
        .scope_boxed()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_prints_what_was_done() {
        let report = MaintenanceReport {
            retention_days: 365,
            cutoff: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
            created: vec!["audit_log_2026_03".into()],
            dropped: vec![],
            kept: vec!["audit_log_2026_02".into(), "audit_log_2026_03".into()],
        };
        let text = report.to_string();
        assert!(text.contains("365 days"), "{text}");
        assert!(
            text.contains("created partitions: audit_log_2026_03"),
            "{text}"
        );
        assert!(text.contains("dropped partitions: none"), "{text}");
    }
}
