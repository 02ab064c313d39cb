//! Board reports (kanban.md): a card's history and time in stage (its readers), the board's
//! SLA breaches and metrics (admins and supervisors). All read from card history.

use actix_web::web;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::policy::Action;
use crate::auth::Principal;
use crate::db::board_reports::{self, Breach, Metrics, Period, StageTime};
use crate::db::cards::{self as card_rows, HistoryEntry};
use crate::db::{self, boards};
use crate::error::ApiError;
use crate::http::boards::gate;
use crate::http::cards::{visible, visible_card};
use crate::http::pagination::{decode_cursor, encode_cursor, Page, PageQuery};
use crate::kanban::access;
use crate::state::AppState;

/// Longest metrics period (kanban.md: 366 days).
const MAX_PERIOD_DAYS: i64 = 366;

#[derive(Serialize, Deserialize)]
struct HistoryCursor {
    at: DateTime<Utc>,
    id: Uuid,
}

/// A card's history, newest first.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/history", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card"), PageQuery),
    responses((status = 200, body = Page<HistoryEntry>), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn history(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid, Uuid)>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<HistoryEntry>>, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsRead).await?;
    let limit = query.limit()?;
    let after = query
        .cursor
        .as_deref()
        .map(decode_cursor::<HistoryCursor>)
        .transpose()?
        .map(|cursor| (cursor.at, cursor.id));
    let rows = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            visible_card(conn, &principal, account_id, board_id, card_id).await?;
            Ok::<_, ApiError>(board_reports::history_page(conn, card_id, after, limit + 1).await?)
        })
    })
    .await?;
    Ok(web::Json(Page::with_cursor(
        rows,
        limit,
        |last| {
            encode_cursor(&HistoryCursor {
                at: last.created_at,
                id: last.id,
            })
        },
        |entry| entry,
    )))
}

/// A card's stays per stage.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/time-in-stage", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card")),
    responses((status = 200, body = Page<StageTime>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn time_in_stage(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<web::Json<Page<StageTime>>, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsRead).await?;
    let items = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            visible_card(conn, &principal, account_id, board_id, card_id).await?;
            Ok::<_, ApiError>(board_reports::time_in_stage(conn, card_id).await?)
        })
    })
    .await?;
    Ok(web::Json(Page::all(items)))
}

/// Cards past their stage's SLA, most overdue first (admins, supervisors).
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/sla-breaches", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"), PageQuery),
    responses((status = 200, body = Page<Breach>), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn sla_breaches(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Breach>>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardMetrics).await?;
    if query.cursor.is_some() {
        return Err(ApiError::field(
            "cursor",
            "the list is one page of the most overdue cards",
        ));
    }
    let limit = query.limit()?;
    let items = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let board = boards::find(conn, account_id, board_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let scope = visible(&access::read_scope(conn, &principal, &board).await?);
            Ok::<_, ApiError>(
                board_reports::sla_breaches(conn, board_id, scope.as_ref(), limit).await?,
            )
        })
    })
    .await?;
    Ok(web::Json(Page::all(items)))
}

/// `?from=&to=&tz=` of the metrics.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    /// First day (`YYYY-MM-DD`, in `tz`; default 29 days before `to`).
    pub from: Option<String>,
    /// Last day, inclusive (default today in `tz`).
    pub to: Option<String>,
    /// IANA time zone (default UTC).
    pub tz: Option<String>,
}

fn date(field: &str, value: &Option<String>) -> Result<Option<NaiveDate>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| ApiError::field(field, "must be a date (YYYY-MM-DD)"))
        })
        .transpose()
}

/// Board metrics from history (admins, supervisors).
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/metrics", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"), MetricsQuery),
    responses((status = 200, body = Metrics), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn metrics(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<MetricsQuery>,
) -> Result<web::Json<Metrics>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardMetrics).await?;
    let (from, to) = (date("from", &query.from)?, date("to", &query.to)?);
    let tz = query.tz.clone().unwrap_or_else(|| "UTC".into());
    let report = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            if !card_rows::is_time_zone(conn, &tz).await? {
                return Err(ApiError::field("tz", "must be an IANA time zone"));
            }
            boards::find(conn, account_id, board_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let to = match to {
                Some(to) => to,
                None => board_reports::today_in(conn, &tz).await?,
            };
            let from = from.unwrap_or(to - chrono::Days::new(29));
            let days = (to - from).num_days() + 1;
            if days < 1 {
                return Err(ApiError::field("from", "must not be after to"));
            }
            if days > MAX_PERIOD_DAYS {
                return Err(ApiError::field(
                    "to",
                    format!("the period is at most {MAX_PERIOD_DAYS} days"),
                ));
            }
            let period = Period { from, to, tz };
            Ok::<_, ApiError>(board_reports::metrics(conn, board_id, &period).await?)
        })
    })
    .await?;
    Ok(web::Json(report))
}
