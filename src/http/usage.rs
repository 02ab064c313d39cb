//! `GET /api/v1/accounts/{account_id}/usage` (tenancy.md §5): daily usage between two UTC
//! dates, dense (zeros where nothing happened), with totals and DAU/WAU/MAU.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::web;
use chrono::{Datelike, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use whatpro_actors::supervisor::FlushUsage;

use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::db::schema::{usage_active_users, usage_daily};
use crate::db::{self, entitlements};
use crate::error::ApiError;
use crate::state::AppState;

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// First day (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day (default: today, UTC).
    pub to: Option<NaiveDate>,
}

/// One day's usage.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageDay {
    /// The UTC day.
    #[schema(value_type = String)]
    pub date: NaiveDate,
    /// Distinct users with a request or a socket.
    pub active_users: i64,
    /// Messages sent through the account's instances.
    pub messages_sent: i64,
    /// Messages received.
    pub messages_received: i64,
    /// Conversations opened (Chatwoot).
    pub conversations_opened: i64,
    /// Conversations resolved (Chatwoot).
    pub conversations_resolved: i64,
    /// Authenticated REST requests.
    pub api_requests: i64,
    /// Highest number of simultaneous websockets.
    pub ws_connections_peak: i64,
}

/// The usage report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// First day.
    #[schema(value_type = String)]
    pub from: NaiveDate,
    /// Last day.
    #[schema(value_type = String)]
    pub to: NaiveDate,
    /// One entry per day.
    pub days: Vec<UsageDay>,
    /// Sums over the span (`active_users`: distinct users over the span; the peak: the highest).
    pub totals: UsageDay,
    /// Distinct users on `to`.
    pub dau: i64,
    /// Distinct users in the 7 days ending on `to`.
    pub wau: i64,
    /// Distinct users in the 30 days ending on `to`.
    pub mau: i64,
    /// Messages sent this UTC calendar month.
    pub month_to_date_messages_sent: i64,
    /// The plan's monthly message limit (`null` = unlimited).
    pub max_monthly_messages: Option<i64>,
}

type DayRow = (NaiveDate, i32, i64, i64, i64, i64, i64, i32);

/// The usage report (admins, super_admins, `usage:read`).
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/usage", tag = "entitlements", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), UsageQuery),
    responses((status = 200, body = UsageReport), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<UsageQuery>,
) -> Result<web::Json<UsageReport>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsageRead)?;
    let to = query.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = query.from.unwrap_or(to - chrono::Duration::days(29));
    if from > to {
        return Err(ApiError::field("from", "must not be after `to`"));
    }
    if (to - from).num_days() + 1 > 366 {
        return Err(ApiError::field("to", "the span is at most 366 days"));
    }
    // The supervisor's unflushed counts first, so the report is current.
    if state.registry.get(account_id).is_some() {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            state.registry.send(account_id, FlushUsage),
        )
        .await;
    }
    let month_start = NaiveDate::from_ymd_opt(to.year(), to.month(), 1).unwrap_or(to);
    let report = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let rows: Vec<DayRow> = usage_daily::table
                .filter(usage_daily::account_id.eq(account_id))
                .filter(usage_daily::date.between(from.min(month_start), to))
                .order(usage_daily::date.asc())
                .select((
                    usage_daily::date,
                    usage_daily::active_users,
                    usage_daily::messages_sent,
                    usage_daily::messages_received,
                    usage_daily::conversations_opened,
                    usage_daily::conversations_resolved,
                    usage_daily::api_requests,
                    usage_daily::ws_connections_peak,
                ))
                .load(conn)
                .await?;
            let distinct = |since: NaiveDate| {
                usage_active_users::table
                    .filter(usage_active_users::account_id.eq(account_id))
                    .filter(usage_active_users::date.between(since, to))
                    .select(diesel::dsl::count(usage_active_users::user_id).aggregate_distinct())
            };
            let dau: i64 = distinct(to).get_result(conn).await?;
            let wau: i64 = distinct(to - chrono::Duration::days(6))
                .get_result(conn)
                .await?;
            let mau: i64 = distinct(to - chrono::Duration::days(29))
                .get_result(conn)
                .await?;
            let span_users: i64 = distinct(from).get_result(conn).await?;
            let max_monthly_messages = entitlements::load(conn, account_id, false)
                .await?
                .and_then(|e| e.limit("max_monthly_messages"));
            Ok::<_, ApiError>((rows, dau, wau, mau, span_users, max_monthly_messages))
        })
    })
    .await?;
    let (rows, dau, wau, mau, span_users, max_monthly_messages) = report;
    let stored: BTreeMap<NaiveDate, UsageDay> = rows
        .into_iter()
        .map(
            |(date, active, sent, received, opened, resolved, requests, peak)| {
                (
                    date,
                    UsageDay {
                        date,
                        active_users: active.into(),
                        messages_sent: sent,
                        messages_received: received,
                        conversations_opened: opened,
                        conversations_resolved: resolved,
                        api_requests: requests,
                        ws_connections_peak: peak.into(),
                    },
                )
            },
        )
        .collect();
    let month_to_date_messages_sent = stored
        .range(month_start..=to)
        .map(|(_, d)| d.messages_sent)
        .sum();
    let days: Vec<UsageDay> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|date| {
            stored.get(&date).cloned().unwrap_or(UsageDay {
                date,
                ..UsageDay::default()
            })
        })
        .collect();
    let totals = days.iter().fold(
        UsageDay {
            date: to,
            active_users: span_users,
            ..UsageDay::default()
        },
        |mut t, d| {
            t.messages_sent += d.messages_sent;
            t.messages_received += d.messages_received;
            t.conversations_opened += d.conversations_opened;
            t.conversations_resolved += d.conversations_resolved;
            t.api_requests += d.api_requests;
            t.ws_connections_peak = t.ws_connections_peak.max(d.ws_connections_peak);
            t
        },
    );
    Ok(web::Json(UsageReport {
        from,
        to,
        days,
        totals,
        dau,
        wau,
        mau,
        month_to_date_messages_sent,
        max_monthly_messages,
    }))
}
