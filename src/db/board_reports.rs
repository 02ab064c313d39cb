//! Read-only reports on a board, computed from card history (kanban.md, Metrics): a card's
//! history page, its time in each stage, SLA breaches and the board metrics.
//!
//! A *stay* runs from the history row that brought a card into a stage (`created`, `moved`,
//! `closed`, `reopened`: the rows with a `to_stage_id`) to the card's next such row, or now.
//! Percentiles are PostgreSQL's `percentile_cont` (linear interpolation).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::cards::{Card, HistoryEntry, CARD_SELECT, PAST_SLA};
use super::schema::card_history;

/// The rows that move a card into a stage.
const STAGE_ROWS: &str = "h.to_stage_id IS NOT NULL \
    AND h.action IN ('created', 'moved', 'closed', 'reopened')";

/// A page of a card's history, newest first, after `(created_at, id)`.
pub async fn history_page(
    conn: &mut AsyncPgConnection,
    card_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    fetch: i64,
) -> QueryResult<Vec<HistoryEntry>> {
    let mut query = card_history::table
        .filter(card_history::card_id.eq(card_id))
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            card_history::created_at
                .lt(at)
                .or(card_history::created_at.eq(at).and(card_history::id.lt(id))),
        );
    }
    query
        .order((card_history::created_at.desc(), card_history::id.desc()))
        .limit(fetch)
        .select(HistoryEntry::as_select())
        .load(conn)
        .await
}

/// Time a card spent in one stage.
#[derive(Debug, Clone, QueryableByName, Serialize, utoipa::ToSchema)]
pub struct StageTime {
    /// The stage.
    #[diesel(sql_type = SqlUuid)]
    pub stage_id: Uuid,
    /// Stays in it.
    #[diesel(sql_type = BigInt)]
    pub visits: i64,
    /// Their total length (the current stay until now).
    #[diesel(sql_type = Double)]
    pub total_seconds: f64,
    /// Whether the card is in it now.
    #[diesel(sql_type = Bool)]
    pub current: bool,
}

/// A card's stays per stage, in the board's stage order.
pub async fn time_in_stage(
    conn: &mut AsyncPgConnection,
    card_id: Uuid,
) -> QueryResult<Vec<StageTime>> {
    diesel::sql_query(format!(
        "WITH stays AS (SELECT h.to_stage_id AS stage_id, h.created_at AS started, \
             lead(h.created_at) OVER (ORDER BY h.created_at, h.id) AS ended \
             FROM card_history h WHERE h.card_id = $1 AND {STAGE_ROWS}) \
         SELECT s.id AS stage_id, count(*) AS visits, \
             sum(extract(epoch FROM coalesce(stays.ended, now()) - stays.started))::float8 \
                 AS total_seconds, \
             bool_or(stays.ended IS NULL) AS current \
         FROM stays JOIN stages s ON s.id = stays.stage_id \
         GROUP BY s.id, s.position ORDER BY s.position"
    ))
    .bind::<SqlUuid, _>(card_id)
    .load(conn)
    .await
}

/// A card past its stage's SLA.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Breach {
    /// The card.
    pub card: Card,
    /// Its stage.
    pub stage_id: Uuid,
    /// Seconds since it entered the stage.
    pub in_stage_seconds: f64,
    /// Seconds past the stage's `sla_hours`.
    pub overdue_seconds: f64,
}

#[derive(QueryableByName)]
struct BreachRow {
    #[diesel(embed)]
    card: Card,
    #[diesel(sql_type = Double)]
    in_stage_seconds: f64,
    #[diesel(sql_type = Double)]
    overdue_seconds: f64,
}

/// The board's cards past their stage's SLA, most overdue first (at most `limit`).
pub async fn sla_breaches(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
    visible: Option<&(Vec<Uuid>, bool)>,
    limit: i64,
) -> QueryResult<Vec<Breach>> {
    let base = CARD_SELECT.replacen(
        " FROM cards c ",
        ", extract(epoch FROM now() - c.moved_at)::float8 AS in_stage_seconds, \
         (extract(epoch FROM now() - c.moved_at) - s.sla_hours * 3600)::float8 AS overdue_seconds \
         FROM cards c JOIN stages s ON s.id = c.stage_id ",
        1,
    );
    let rows: Vec<BreachRow> = diesel::sql_query(format!(
        "{base} WHERE c.board_id = $1 AND {PAST_SLA} \
         AND ($2::uuid[] IS NULL OR c.assignee_id = ANY($2) OR ($3 AND c.assignee_id IS NULL)) \
         ORDER BY overdue_seconds DESC, c.id LIMIT $4"
    ))
    .bind::<SqlUuid, _>(board_id)
    .bind::<Nullable<diesel::sql_types::Array<SqlUuid>>, _>(visible.map(|v| v.0.clone()))
    .bind::<Bool, _>(visible.is_some_and(|v| v.1))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Breach {
            stage_id: row.card.stage_id,
            card: row.card,
            in_stage_seconds: row.in_stage_seconds,
            overdue_seconds: row.overdue_seconds,
        })
        .collect())
}

/// A report period: `[start, end)` as instants, and the time zone its days are counted in.
#[derive(Debug, Clone)]
pub struct Period {
    /// First day (in `tz`).
    pub from: chrono::NaiveDate,
    /// Last day, inclusive.
    pub to: chrono::NaiveDate,
    /// IANA zone.
    pub tz: String,
}

/// Count, mean and percentiles of some durations (nulls when there are none).
#[derive(Debug, Clone, QueryableByName, Serialize, utoipa::ToSchema)]
pub struct Durations {
    /// How many.
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    /// Mean seconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_seconds: Option<f64>,
    /// Median seconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub p50_seconds: Option<f64>,
    /// 90th percentile seconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub p90_seconds: Option<f64>,
}

/// One stage in the metrics.
#[derive(Debug, Clone, QueryableByName, Serialize, utoipa::ToSchema)]
pub struct StageMetrics {
    /// The stage.
    #[diesel(sql_type = SqlUuid)]
    pub stage_id: Uuid,
    /// Its name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Cards in it now.
    #[diesel(sql_type = BigInt)]
    pub cards_now: i64,
    /// Mean stay (stays ended in the period).
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_seconds: Option<f64>,
    /// Median stay.
    #[diesel(sql_type = Nullable<Double>)]
    pub p50_seconds: Option<f64>,
    /// 90th percentile stay.
    #[diesel(sql_type = Nullable<Double>)]
    pub p90_seconds: Option<f64>,
    /// The stage's SLA.
    #[diesel(sql_type = Nullable<Integer>)]
    pub sla_hours: Option<i32>,
    /// Cards past the SLA now.
    #[diesel(sql_type = BigInt)]
    pub breaching_now: i64,
}

/// One day of throughput.
#[derive(Debug, Clone, QueryableByName, Serialize, utoipa::ToSchema)]
pub struct DayThroughput {
    /// The day in the period's zone.
    #[diesel(sql_type = Text)]
    pub date: String,
    /// Stage changes.
    #[diesel(sql_type = BigInt)]
    pub moves: i64,
    /// Cards created.
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    /// Cards closed (into a final stage).
    #[diesel(sql_type = BigInt)]
    pub closed: i64,
}

/// One stage of the funnel.
#[derive(Debug, Clone, QueryableByName, Serialize, utoipa::ToSchema)]
pub struct FunnelStage {
    /// The stage.
    #[diesel(sql_type = SqlUuid)]
    pub stage_id: Uuid,
    /// Cards active in the period that reached this stage or a later one.
    #[diesel(sql_type = BigInt)]
    pub entered: i64,
    /// `entered` of the next stage over this one's (4 decimals; null for the last stage or
    /// when nobody entered).
    #[diesel(sql_type = Nullable<Double>)]
    pub conversion_to_next: Option<f64>,
}

/// The board metrics.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Metrics {
    /// Per stage, in order.
    pub stages: Vec<StageMetrics>,
    /// Per day of the period.
    pub throughput: Vec<DayThroughput>,
    /// Per stage, in order.
    pub funnel: Vec<FunnelStage>,
    /// Creation → last close, over cards closed in the period.
    pub lead_time: Durations,
    /// First stage change → last close, over the same cards.
    pub cycle_time: Durations,
}

#[derive(QueryableByName)]
struct LeadCycle {
    #[diesel(embed)]
    lead: LeadStats,
    #[diesel(embed)]
    cycle: CycleStats,
}

#[derive(QueryableByName)]
struct LeadStats {
    #[diesel(sql_type = BigInt)]
    lead_count: i64,
    #[diesel(sql_type = Nullable<Double>)]
    lead_avg: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    lead_p50: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    lead_p90: Option<f64>,
}

#[derive(QueryableByName)]
struct CycleStats {
    #[diesel(sql_type = BigInt)]
    cycle_count: i64,
    #[diesel(sql_type = Nullable<Double>)]
    cycle_avg: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    cycle_p50: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    cycle_p90: Option<f64>,
}

/// The period's bounds as SQL over `$2` (from), `$3` (to) and `$4` (tz).
const PERIOD: &str = "bounds AS (SELECT ($2::date)::timestamp AT TIME ZONE $4 AS start_at, \
    ($3::date + 1)::timestamp AT TIME ZONE $4 AS end_at)";

/// The board metrics over `period`.
pub async fn metrics(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
    period: &Period,
) -> QueryResult<Metrics> {
    let (from, to) = (period.from.to_string(), period.to.to_string());
    let stays = format!(
        "stays AS (SELECT h.to_stage_id AS stage_id, h.created_at AS started, \
         lead(h.created_at) OVER (PARTITION BY h.card_id ORDER BY h.created_at, h.id) AS ended \
         FROM card_history h WHERE h.board_id = $1 AND {STAGE_ROWS})"
    );
    let stages: Vec<StageMetrics> = diesel::sql_query(format!(
        "WITH {PERIOD}, {stays}, \
         ended AS (SELECT stays.stage_id, extract(epoch FROM stays.ended - stays.started) AS secs \
             FROM stays, bounds WHERE stays.ended >= bounds.start_at AND stays.ended < bounds.end_at), \
         now_in AS (SELECT c.stage_id, count(*) AS cards_now, \
             count(*) FILTER (WHERE {PAST_SLA}) AS breaching_now \
             FROM cards c JOIN stages s ON s.id = c.stage_id WHERE c.board_id = $1 \
             GROUP BY c.stage_id) \
         SELECT s.id AS stage_id, s.name, coalesce(n.cards_now, 0) AS cards_now, \
             (SELECT avg(secs) FROM ended e WHERE e.stage_id = s.id)::float8 AS avg_seconds, \
             (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) FROM ended e \
                 WHERE e.stage_id = s.id)::float8 AS p50_seconds, \
             (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY secs) FROM ended e \
                 WHERE e.stage_id = s.id)::float8 AS p90_seconds, \
             s.sla_hours, coalesce(n.breaching_now, 0) AS breaching_now \
         FROM stages s LEFT JOIN now_in n ON n.stage_id = s.id \
         WHERE s.board_id = $1 ORDER BY s.position"
    ))
    .bind::<SqlUuid, _>(board_id)
    .bind::<Text, _>(&from)
    .bind::<Text, _>(&to)
    .bind::<Text, _>(&period.tz)
    .load(conn)
    .await?;
    let throughput: Vec<DayThroughput> = diesel::sql_query(format!(
        "WITH {PERIOD}, \
         days AS (SELECT d::date AS day FROM generate_series($2::date, $3::date, interval '1 day') d), \
         counted AS (SELECT (h.created_at AT TIME ZONE $4)::date AS day, \
             count(*) FILTER (WHERE h.action <> 'created') AS moves, \
             count(*) FILTER (WHERE h.action = 'created') AS created, \
             count(*) FILTER (WHERE h.action = 'closed') AS closed \
             FROM card_history h, bounds WHERE h.board_id = $1 AND {STAGE_ROWS} \
             AND h.created_at >= bounds.start_at AND h.created_at < bounds.end_at GROUP BY 1) \
         SELECT days.day::text AS date, coalesce(c.moves, 0) AS moves, \
             coalesce(c.created, 0) AS created, coalesce(c.closed, 0) AS closed \
         FROM days LEFT JOIN counted c ON c.day = days.day ORDER BY days.day"
    ))
    .bind::<SqlUuid, _>(board_id)
    .bind::<Text, _>(&from)
    .bind::<Text, _>(&to)
    .bind::<Text, _>(&period.tz)
    .load(conn)
    .await?;
    let funnel: Vec<FunnelStage> = diesel::sql_query(format!(
        "WITH {PERIOD}, \
         reached AS (SELECT h.card_id, max(s.position) AS furthest \
             FROM card_history h JOIN stages s ON s.id = h.to_stage_id, bounds \
             WHERE h.board_id = $1 AND {STAGE_ROWS} \
             AND h.created_at >= bounds.start_at AND h.created_at < bounds.end_at \
             GROUP BY h.card_id), \
         entered AS (SELECT s.id, s.position, \
             (SELECT count(*) FROM reached r WHERE r.furthest >= s.position) AS entered \
             FROM stages s WHERE s.board_id = $1) \
         SELECT e.id AS stage_id, e.entered, \
             CASE WHEN e.entered = 0 OR lead(e.entered) OVER w IS NULL THEN NULL \
                  ELSE round(lead(e.entered) OVER w::numeric / e.entered, 4)::float8 END \
                 AS conversion_to_next \
         FROM entered e WINDOW w AS (ORDER BY e.position) ORDER BY e.position"
    ))
    .bind::<SqlUuid, _>(board_id)
    .bind::<Text, _>(&from)
    .bind::<Text, _>(&to)
    .bind::<Text, _>(&period.tz)
    .load(conn)
    .await?;
    let times: LeadCycle = diesel::sql_query(format!(
        "WITH {PERIOD}, \
         steps AS (SELECT h.card_id, h.action, h.created_at, \
             row_number() OVER (PARTITION BY h.card_id ORDER BY h.created_at, h.id) AS n \
             FROM card_history h WHERE h.board_id = $1 AND {STAGE_ROWS}), \
         closes AS (SELECT steps.card_id, max(steps.created_at) AS closed_at FROM steps, bounds \
             WHERE steps.action = 'closed' AND steps.created_at >= bounds.start_at \
             AND steps.created_at < bounds.end_at GROUP BY steps.card_id), \
         firsts AS (SELECT card_id, min(created_at) FILTER (WHERE n = 1) AS first_at, \
             min(created_at) FILTER (WHERE n = 2) AS second_at FROM steps GROUP BY card_id), \
         spans AS (SELECT extract(epoch FROM c.closed_at - f.first_at) AS lead, \
             extract(epoch FROM c.closed_at - f.second_at) AS cycle \
             FROM closes c JOIN firsts f ON f.card_id = c.card_id) \
         SELECT count(lead) AS lead_count, avg(lead)::float8 AS lead_avg, \
             (percentile_cont(0.5) WITHIN GROUP (ORDER BY lead))::float8 AS lead_p50, \
             (percentile_cont(0.9) WITHIN GROUP (ORDER BY lead))::float8 AS lead_p90, \
             count(cycle) AS cycle_count, avg(cycle)::float8 AS cycle_avg, \
             (percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle))::float8 AS cycle_p50, \
             (percentile_cont(0.9) WITHIN GROUP (ORDER BY cycle))::float8 AS cycle_p90 \
         FROM spans"
    ))
    .bind::<SqlUuid, _>(board_id)
    .bind::<Text, _>(&from)
    .bind::<Text, _>(&to)
    .bind::<Text, _>(&period.tz)
    .get_result(conn)
    .await?;
    Ok(Metrics {
        stages,
        throughput,
        funnel,
        lead_time: Durations {
            count: times.lead.lead_count,
            avg_seconds: times.lead.lead_avg,
            p50_seconds: times.lead.lead_p50,
            p90_seconds: times.lead.lead_p90,
        },
        cycle_time: Durations {
            count: times.cycle.cycle_count,
            avg_seconds: times.cycle.cycle_avg,
            p50_seconds: times.cycle.cycle_p50,
            p90_seconds: times.cycle.cycle_p90,
        },
    })
}

#[derive(QueryableByName)]
struct Today {
    #[diesel(sql_type = diesel::sql_types::Date)]
    today: chrono::NaiveDate,
}

/// Today's date in `tz`.
pub async fn today_in(conn: &mut AsyncPgConnection, tz: &str) -> QueryResult<chrono::NaiveDate> {
    let row: Today = diesel::sql_query("SELECT (now() AT TIME ZONE $1)::date AS today")
        .bind::<Text, _>(tz)
        .get_result(conn)
        .await?;
    Ok(row.today)
}
