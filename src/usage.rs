//! Usage metering, database side (tenancy.md §5): the [`UsageSink`] the tenant supervisors
//! flush into, with additive upserts (`GREATEST` for the daily socket peak) and the distinct
//! active users of each day.

use std::future::Future;
use std::pin::Pin;

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use whatpro_actors::{UsageDelta, UsageSink};

use crate::db::schema::{usage_active_users, usage_daily};
use crate::db::{self, Database};
use crate::error::ApiError;

/// Flushes usage deltas into `usage_daily` and `usage_active_users`.
pub struct DbUsageSink {
    db: Database,
}

impl DbUsageSink {
    /// A sink on the pool.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// Adds one delta, in one tenant transaction.
pub async fn apply(db: &Database, delta: UsageDelta) -> Result<(), ApiError> {
    let account_id = delta.account_id;
    db::tenant_tx(db, account_id, |conn| {
        Box::pin(async move {
            let users: Vec<_> = delta
                .active_users
                .iter()
                .map(|user| {
                    (
                        usage_active_users::account_id.eq(account_id),
                        usage_active_users::date.eq(delta.date),
                        usage_active_users::user_id.eq(*user),
                    )
                })
                .collect();
            if !users.is_empty() {
                diesel::insert_into(usage_active_users::table)
                    .values(users)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            let active: i64 = usage_active_users::table
                .filter(usage_active_users::account_id.eq(account_id))
                .filter(usage_active_users::date.eq(delta.date))
                .count()
                .get_result(conn)
                .await?;
            let requests = i64::try_from(delta.api_requests).unwrap_or(i64::MAX);
            let peak = i32::try_from(delta.ws_connections_peak).unwrap_or(i32::MAX);
            diesel::insert_into(usage_daily::table)
                .values((
                    usage_daily::account_id.eq(account_id),
                    usage_daily::date.eq(delta.date),
                    usage_daily::api_requests.eq(requests),
                    usage_daily::ws_connections_peak.eq(peak),
                    usage_daily::active_users.eq(active as i32),
                ))
                .on_conflict((usage_daily::account_id, usage_daily::date))
                .do_update()
                .set((
                    usage_daily::api_requests
                        .eq(usage_daily::api_requests + excluded(usage_daily::api_requests)),
                    usage_daily::ws_connections_peak.eq(diesel::dsl::sql::<
                        diesel::sql_types::Integer,
                    >(
                        "GREATEST(usage_daily.ws_connections_peak, excluded.ws_connections_peak)",
                    )),
                    usage_daily::active_users.eq(excluded(usage_daily::active_users)),
                    usage_daily::updated_at.eq(chrono::Utc::now()),
                ))
                .execute(conn)
                .await?;
            Ok::<_, ApiError>(())
        })
    })
    .await
}

impl UsageSink for DbUsageSink {
    fn flush(&self, delta: UsageDelta) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let db = self.db.clone();
        Box::pin(async move { apply(&db, delta).await.map_err(|e| e.to_string()) })
    }
}
