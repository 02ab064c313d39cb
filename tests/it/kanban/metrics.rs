//! Board metrics (kanban.md, Metrics) on a scripted history: cards are created and moved
//! through the API, then every history row's `created_at` (and the cards' `created_at` and
//! `moved_at`) is rewritten by SQL to the script's local times in `America/Sao_Paulo`, in a
//! fixed past week. The expected values are computed here from the script, for the São Paulo
//! and the UTC views of the same period.
//!
//! Definitions assumed where kanban.md is terse: `from`/`to` are calendar dates in `tz`, both
//! inclusive (like the usage report); a stay counts when its end lies in the period; p50/p90 are
//! PostgreSQL's `percentile_cont` (linear interpolation); the funnel counts the cards with a
//! history row in the period, each at the furthest stage (by position) those rows reached;
//! throughput entries are `{date, moves, created, closed}`; lead and cycle time end at a card's
//! last `closed` row in the period. Also: who may read metrics, and the 366-day limit.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

const FROM: &str = "2026-03-02";
const TO: &str = "2026-03-06";
/// The first day after the period.
const AFTER: &str = "2026-03-07";

/// `(card, local date, local time, stage index)`, in order; a card's first step creates it.
/// X lives before the period and Y after it; B is created late on the first evening (the next
/// day in UTC); C is closed, reopened and closed again; D is still open and over its SLA; E is
/// created in the second stage and closed late on the last evening (after the period in UTC);
/// Z is still in the first stage.
const SCRIPT: &[(&str, &str, &str, usize)] = &[
    ("X", "2026-02-26", "10:00", 0),
    ("X", "2026-02-26", "11:00", 1),
    ("X", "2026-02-27", "12:00", 3),
    ("A", "2026-03-02", "09:00", 0),
    ("A", "2026-03-02", "10:00", 1),
    ("A", "2026-03-02", "13:00", 2),
    ("B", "2026-03-02", "22:30", 0),
    ("B", "2026-03-03", "01:30", 1),
    ("C", "2026-03-03", "08:00", 0),
    ("A", "2026-03-03", "09:00", 3),
    ("C", "2026-03-03", "12:00", 1),
    ("C", "2026-03-03", "18:00", 3),
    ("C", "2026-03-04", "08:00", 1),
    ("D", "2026-03-04", "09:00", 0),
    ("B", "2026-03-04", "10:30", 3),
    ("D", "2026-03-04", "21:45", 2),
    ("E", "2026-03-05", "10:00", 1),
    ("E", "2026-03-05", "15:00", 2),
    ("C", "2026-03-05", "23:00", 3),
    ("Z", "2026-03-06", "10:00", 0),
    ("E", "2026-03-06", "22:30", 3),
    ("Y", "2026-03-08", "10:00", 0),
    ("Y", "2026-03-08", "12:00", 3),
];

/// The third stage's SLA; D sits in it far longer.
const SLA_STAGE: usize = 2;
const SLA_HOURS: i64 = 24;

/// One step of the script as seen in one time zone.
#[derive(Clone, Debug)]
struct Step {
    card: &'static str,
    stage: usize,
    /// Unix seconds.
    at: f64,
    /// The calendar date in the view's time zone.
    date: String,
}

/// The script in one time zone, with the period's bounds.
struct View {
    steps: Vec<Step>,
    start: f64,
    end: f64,
}

impl View {
    fn in_period(&self, at: f64) -> bool {
        self.start <= at && at < self.end
    }

    /// Each card's steps, in order.
    fn by_card(&self) -> BTreeMap<&'static str, Vec<Step>> {
        let mut cards: BTreeMap<&str, Vec<Step>> = BTreeMap::new();
        for step in &self.steps {
            cards.entry(step.card).or_default().push(step.clone());
        }
        cards
    }
}

/// PostgreSQL's `percentile_cont` over sorted values.
fn percentile_cont(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (position - low as f64) * (sorted[high] - sorted[low])
}

/// `{count, avg_seconds, p50_seconds, p90_seconds}` of some durations (null statistics when
/// there are none).
fn summary(mut seconds: Vec<f64>) -> Value {
    seconds.sort_by(f64::total_cmp);
    if seconds.is_empty() {
        return json!({ "count": 0, "avg_seconds": null, "p50_seconds": null, "p90_seconds": null });
    }
    json!({
        "count": seconds.len(),
        "avg_seconds": seconds.iter().sum::<f64>() / seconds.len() as f64,
        "p50_seconds": percentile_cont(&seconds, 0.5),
        "p90_seconds": percentile_cont(&seconds, 0.9),
    })
}

/// What the metrics endpoint must answer for a view, keyed by stage index and date.
struct Expected {
    stays: Vec<Value>,
    throughput: BTreeMap<String, (i64, i64, i64)>,
    entered: Vec<i64>,
    lead: Value,
    cycle: Value,
}

fn expected(view: &View, finals: &[bool]) -> Expected {
    let stages = finals.len();
    let mut stays = vec![Vec::new(); stages];
    let mut throughput: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    let mut furthest = Vec::new();
    let (mut lead, mut cycle) = (Vec::new(), Vec::new());
    for steps in view.by_card().values() {
        for pair in steps.windows(2) {
            if view.in_period(pair[1].at) {
                stays[pair[0].stage].push(pair[1].at - pair[0].at);
            }
        }
        let mut last_close = None;
        for (k, step) in steps.iter().enumerate() {
            if !view.in_period(step.at) {
                continue;
            }
            let day = throughput.entry(step.date.clone()).or_default();
            if k == 0 {
                day.1 += 1;
            } else {
                day.0 += 1;
                if finals[step.stage] && !finals[steps[k - 1].stage] {
                    day.2 += 1;
                    last_close = Some(step.at);
                }
            }
        }
        if let Some(reached) = steps
            .iter()
            .filter(|s| view.in_period(s.at))
            .map(|s| s.stage)
            .max()
        {
            furthest.push(reached);
        }
        if let Some(closed) = last_close {
            lead.push(closed - steps[0].at);
            cycle.push(closed - steps[1].at);
        }
    }
    let entered = (0..stages)
        .map(|s| furthest.iter().filter(|f| **f >= s).count() as i64)
        .collect();
    Expected {
        stays: stays.into_iter().map(summary).collect(),
        throughput,
        entered,
        lead: summary(lead),
        cycle: summary(cycle),
    }
}

/// Asserts `avg_seconds`, `p50_seconds` and `p90_seconds` within a second (null or 0 when
/// nothing was measured), and `count` exactly when `with_count`.
fn assert_summary(got: &Value, want: &Value, with_count: bool, what: &str) {
    if with_count {
        assert_eq!(got["count"], want["count"], "{what}: {got}");
    }
    for field in ["avg_seconds", "p50_seconds", "p90_seconds"] {
        match want[field].as_f64() {
            Some(seconds) => assert_close(&got[field], seconds, 1.0, &format!("{what} {field}")),
            None => assert!(
                got[field].is_null() || num(&got[field]) == 0.0,
                "{what} {field}: {got}"
            ),
        }
    }
}

/// The scripted board: the default board of a fresh account, cards named by the script.
struct Scripted<'a> {
    acme: Tenant<'a>,
    board: Uuid,
    stages: Vec<Uuid>,
    names: Vec<String>,
    finals: Vec<bool>,
    /// Each card's current stage index.
    current: BTreeMap<&'static str, usize>,
}

impl<'a> Scripted<'a> {
    async fn play(app: &'a TestApp) -> Self {
        let acme = Tenant::new(app, "Metricas").await;
        let admin = &acme.admin;
        let board = acme.default_board().await;
        let b = id(&board);
        let stages = stage_ids(&board);
        let body = json!({ "sla_hours": SLA_HOURS });
        expect(
            admin.patch(&stage_path(b, stages[SLA_STAGE]), body).await,
            200,
        )
        .await;

        let mut cards: BTreeMap<&str, Uuid> = BTreeMap::new();
        let mut rows_of_steps = Vec::new();
        let mut current = BTreeMap::new();
        for (card, _, _, stage) in SCRIPT {
            let row = match cards.get(card) {
                None => {
                    let created =
                        new_card(admin, b, stages[*stage], json!({ "title": card })).await;
                    cards.insert(*card, id(&created));
                    id(&history_rows(app, id(&created)).await[0])
                }
                Some(existing) => {
                    let body = json!({ "stage_id": stages[*stage] });
                    id(&moved(admin, b, *existing, body).await["history_entry"])
                }
            };
            rows_of_steps.push(row);
            current.insert(*card, *stage);
        }

        // Rewrite every timestamp to the script's local times.
        let at = |(_, date, clock, _): &(&str, &str, &str, usize)| {
            format!("(timestamp '{date} {clock}' AT TIME ZONE '{TZ}')")
        };
        let mut sql = String::new();
        for (step, row) in SCRIPT.iter().zip(&rows_of_steps) {
            sql.push_str(&format!(
                "UPDATE card_history SET created_at = {} WHERE id = '{row}';",
                at(step)
            ));
        }
        for (name, card) in &cards {
            let steps: Vec<_> = SCRIPT.iter().filter(|s| s.0 == *name).collect();
            let breached = if current[name] == SLA_STAGE {
                "now()"
            } else {
                "NULL"
            };
            sql.push_str(&format!(
                "UPDATE cards SET created_at = {}, moved_at = {}, sla_breached_at = {breached} \
                 WHERE id = '{card}';",
                at(steps[0]),
                at(steps[steps.len() - 1]),
            ));
        }
        app.sql(&sql).await;

        let listed = array(&board["stages"]);
        Self {
            names: listed
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned())
                .collect(),
            finals: listed.iter().map(|s| s["is_final"] == true).collect(),
            acme,
            board: b,
            stages,
            current,
        }
    }

    /// The script as seen in `tz`.
    async fn view(&self, tz: &str) -> View {
        let values: Vec<String> = SCRIPT
            .iter()
            .enumerate()
            .map(|(i, (_, date, clock, _))| {
                format!("({i}, timestamp '{date} {clock}' AT TIME ZONE '{TZ}')")
            })
            .collect();
        let found = self.acme.app.rows(&format!(
                "SELECT i, extract(epoch FROM t)::float8 AS at, (t AT TIME ZONE '{tz}')::date::text AS date \
                 FROM (VALUES {}) v(i, t) ORDER BY i",
                values.join(", ")
            ),
        )
        .await;
        let bound = |date: &str| {
            format!("extract(epoch FROM timestamp '{date} 00:00' AT TIME ZONE '{tz}')::float8")
        };
        let bounds = self
            .acme
            .app
            .rows(&format!(
                "SELECT {} AS start, {} AS end",
                bound(FROM),
                bound(AFTER)
            ))
            .await
            .remove(0);
        View {
            steps: SCRIPT
                .iter()
                .zip(&found)
                .map(|((card, _, _, stage), row)| Step {
                    card,
                    stage: *stage,
                    at: row["at"].as_f64().unwrap(),
                    date: row["date"].as_str().unwrap().to_owned(),
                })
                .collect(),
            start: bounds["start"].as_f64().unwrap(),
            end: bounds["end"].as_f64().unwrap(),
        }
    }

    async fn metrics(&self, client: &Client<'_>, query: &[(&str, &str)]) -> reqwest::Response {
        client.get_with(&metrics_path(self.board), query).await
    }

    /// Asserts the report of `query` equals the values computed from the view of `tz`.
    async fn assert_report(&self, query: &[(&str, &str)], tz: &str) {
        let report = expect(self.metrics(&self.acme.admin, query).await, 200).await;
        let want = expected(&self.view(tz).await, &self.finals);
        let what = |part: &str| format!("{part} ({tz})");

        let stages = array(&report["stages"]);
        assert_eq!(stages.len(), self.stages.len(), "{report}");
        for (index, stage) in self.stages.iter().enumerate() {
            let got = stages
                .iter()
                .find(|s| s["stage_id"] == json!(stage))
                .unwrap_or_else(|| panic!("stage {index} missing: {report}"));
            let now = self.current.values().filter(|s| **s == index).count();
            assert_eq!(got["name"], self.names[index].as_str());
            assert_eq!(got["cards_now"], now, "{}: {got}", what("cards_now"));
            let breaching = if index == SLA_STAGE { now } else { 0 };
            assert_eq!(
                got["breaching_now"],
                breaching,
                "{}: {got}",
                what("breaching_now")
            );
            let sla = if index == SLA_STAGE {
                json!(SLA_HOURS)
            } else {
                Value::Null
            };
            assert_eq!(got["sla_hours"], sla);
            assert_summary(
                got,
                &want.stays[index],
                false,
                &what(&format!("stage {index}")),
            );
        }

        let days = array(&report["throughput"]);
        let mut seen = BTreeSet::new();
        for day in days {
            let date = day["date"].as_str().expect("date").to_owned();
            assert!(
                date.as_str() >= FROM && date.as_str() <= TO,
                "{date} outside the period"
            );
            let (moves, created, closed) = want.throughput.get(&date).copied().unwrap_or_default();
            assert_eq!(
                (&day["moves"], &day["created"], &day["closed"]),
                (&json!(moves), &json!(created), &json!(closed)),
                "{} {date}",
                what("throughput")
            );
            seen.insert(date);
        }
        for date in want
            .throughput
            .keys()
            .filter(|d| d.as_str() >= FROM && d.as_str() <= TO)
        {
            assert!(
                seen.contains(date),
                "{}: no entry for {date}",
                what("throughput")
            );
        }

        let funnel = array(&report["funnel"]);
        for (index, stage) in self.stages.iter().enumerate() {
            let got = funnel
                .iter()
                .find(|s| s["stage_id"] == json!(stage))
                .unwrap_or_else(|| panic!("funnel stage {index} missing: {report}"));
            assert_eq!(
                got["entered"],
                want.entered[index],
                "{}: {got}",
                what("funnel")
            );
            if let Some(next) = want.entered.get(index + 1) {
                let ratio =
                    (*next as f64 / want.entered[index] as f64 * 10_000.0).round() / 10_000.0;
                assert_close(
                    &got["conversion_to_next"],
                    ratio,
                    1e-9,
                    &what("conversion_to_next"),
                );
            }
        }
        assert_summary(&report["lead_time"], &want.lead, true, &what("lead_time"));
        assert_summary(
            &report["cycle_time"],
            &want.cycle,
            true,
            &what("cycle_time"),
        );
    }
}

#[actix_rt::test]
async fn metrics_of_a_scripted_history_equal_hand_computed_values() {
    let app = start().await;
    let board = Scripted::play(&app).await;
    // The script is built to tell the zones apart.
    let (sp, utc) = (board.view(TZ).await, board.view("UTC").await);
    let (sp_want, utc_want) = (expected(&sp, &board.finals), expected(&utc, &board.finals));
    assert_ne!(sp_want.throughput, utc_want.throughput);
    assert_ne!(sp_want.lead, utc_want.lead);
    assert_eq!(
        sp_want.lead["count"], 4,
        "A, B, C and E close in the São Paulo week"
    );

    board
        .assert_report(&[("from", FROM), ("to", TO), ("tz", TZ)], TZ)
        .await;
    board
        .assert_report(&[("from", FROM), ("to", TO)], "UTC")
        .await;
    app.stop().await;
}

#[actix_rt::test]
async fn metrics_are_for_admins_and_supervisors_over_at_most_366_days() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let supervisor = acme.user("supervisor", "supervisor").await;
    let agent = acme.user("agent", "agent").await;
    let board = acme.default_board().await;
    let path = metrics_path(id(&board));
    let week = [("from", FROM), ("to", TO), ("tz", TZ)];

    let by_admin = expect(acme.admin.get_with(&path, &week).await, 200).await;
    assert_fields(
        &by_admin,
        &["stages", "throughput", "funnel", "lead_time", "cycle_time"],
    );
    assert_eq!(
        expect(supervisor.get_with(&path, &week).await, 200).await,
        by_admin
    );
    fail(agent.get_with(&path, &week).await, 403, "FORBIDDEN").await;
    let default = expect(acme.admin.get(&path).await, 200).await;
    assert_fields(
        &default,
        &["stages", "throughput", "funnel", "lead_time", "cycle_time"],
    );

    let year = [("from", "2025-01-01"), ("to", "2026-01-01")];
    expect(acme.admin.get_with(&path, &year).await, 200).await;
    for query in [
        [("from", "2025-01-01"), ("to", "2026-01-02"), ("tz", TZ)],
        [("from", "2026-02-02"), ("to", "2026-02-01"), ("tz", TZ)],
        [
            ("from", "2026-02-01"),
            ("to", "2026-02-02"),
            ("tz", "Mars/Olympus_Mons"),
        ],
        [("from", "yesterday"), ("to", "2026-02-02"), ("tz", TZ)],
    ] {
        bad_request(acme.admin.get_with(&path, &query).await).await;
    }
    app.stop().await;
}
