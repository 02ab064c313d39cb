//! Card history (newest first, paginated, 404 outside the board), time in stage (visits,
//! seconds and the current stay, on a history whose timestamps are rewritten by SQL) and SLA
//! breaches (most overdue first, from `moved_at` and the stages' `sla_hours`).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

/// Sets a history row's `created_at` to `hours` hours before the database's now.
fn backdate_row(row: Uuid, hours: f64) -> String {
    format!(
        "UPDATE card_history SET created_at = now() - interval '{} seconds' WHERE id = '{row}';",
        hours * 3600.0
    )
}

/// Sets a card's `moved_at` (and `created_at`, when given) to hours before the database's now.
fn backdate_card(card: Uuid, moved_hours: f64, created_hours: Option<f64>) -> String {
    let created = created_hours
        .map(|h| format!(", created_at = now() - interval '{} seconds'", h * 3600.0))
        .unwrap_or_default();
    format!(
        "UPDATE cards SET moved_at = now() - interval '{} seconds'{created} WHERE id = '{card}';",
        moved_hours * 3600.0
    )
}

/// The id of a card's `created` history row.
async fn created_row(app: &TestApp, card: Uuid) -> Uuid {
    let rows = history_rows(app, card).await;
    assert_eq!(rows[0]["action"], "created");
    id(&rows[0])
}

#[actix_rt::test]
async fn card_history_is_newest_first_and_paginated() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let card = id(&new_card(admin, b, s[0], json!({ "title": "v0" })).await);
    let mut actions = vec!["created"];
    for i in 1..=3 {
        let body = json!({ "title": format!("v{i}") });
        expect(admin.patch(&card_path(b, card), body).await, 200).await;
        actions.push("updated");
    }
    for (stage, action) in [
        (s[1], "moved"),
        (s[2], "moved"),
        (s[3], "closed"),
        (s[1], "reopened"),
    ] {
        moved(admin, b, card, json!({ "stage_id": stage })).await;
        actions.push(action);
    }
    actions.reverse();

    let path = history_path(b, card);
    let whole = walk(admin, &path, &[], 200).await;
    let listed: Vec<&str> = whole
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(listed, actions, "newest first");
    for entry in &whole {
        assert_fields(entry, HISTORY_FIELDS);
        assert_eq!(entry["card_id"], json!(card));
        assert_eq!(entry["actor_id"], json!(admin.id));
    }
    let times: Vec<_> = whole.iter().map(|e| time(&e["created_at"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let paged = walk(admin, &path, &[], 3).await;
    assert_eq!(paged, whole, "pages of 3 give the same entries once each");

    // Readers see it; the card is not on another board, nor is a missing card anywhere.
    let agent = acme.user("agent", "agent").await;
    assert_eq!(walk(&agent, &path, &[], 200).await, whole);
    let other = id(&new_board(admin, "Outro", &["P", "Q"]).await);
    fail(
        admin.get(&history_path(other, card)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    fail(
        admin.get(&history_path(b, Uuid::now_v7())).await,
        404,
        "NOT_FOUND",
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn time_in_stage_sums_the_visits_of_each_stage() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    // Stage and hours ago of each entry, oldest first; the card is still in the last one.
    let script = [(s[0], 10.0), (s[1], 8.0), (s[0], 5.0), (s[1], 2.0)];
    let card = id(&new_card(admin, b, script[0].0, json!({})).await);
    let mut entries = vec![created_row(&app, card).await];
    for (stage, _) in &script[1..] {
        let response = moved(admin, b, card, json!({ "stage_id": stage })).await;
        entries.push(id(&response["history_entry"]));
    }
    let started = Instant::now();
    let mut sql: String = entries
        .iter()
        .zip(&script)
        .map(|(row, (_, hours))| backdate_row(*row, *hours))
        .collect();
    sql.push_str(&backdate_card(card, script[3].1, Some(script[0].1)));
    app.sql(&sql).await;

    // Expected: per stage, the number of stays and their seconds (the current one until now).
    let mut expected: BTreeMap<Uuid, (i64, f64, bool)> = BTreeMap::new();
    for (i, (stage, hours)) in script.iter().enumerate() {
        let until = script.get(i + 1).map_or(0.0, |(_, h)| *h);
        let entry = expected.entry(*stage).or_insert((0, 0.0, false));
        entry.0 += 1;
        entry.1 += (hours - until) * 3600.0;
        entry.2 = i == script.len() - 1;
    }
    let agent = acme.user("agent", "agent").await;
    let report = expect(agent.get(&time_in_stage_path(b, card)).await, 200).await;
    let slack = started.elapsed().as_secs_f64() + 1.0;
    assert_eq!(report["next_cursor"], Value::Null, "{report}");
    for item in items(&report) {
        assert_fields(item, &["stage_id", "visits", "total_seconds", "current"]);
        let stage = uuid(&item["stage_id"]);
        let (visits, seconds, current) = expected.get(&stage).copied().unwrap_or((0, 0.0, false));
        assert_eq!(item["visits"], visits, "{item}");
        assert_eq!(item["current"], current, "{item}");
        // The current stay runs until the server's now, a little after the rewrite.
        let tolerance = if current { slack } else { 1.0 };
        let got = num(&item["total_seconds"]);
        assert!(
            got >= seconds - 1.0 && got <= seconds + tolerance,
            "{item}: expected {seconds} s"
        );
    }
    let listed: Vec<Uuid> = items(&report)
        .iter()
        .filter(|i| i["visits"].as_i64() > Some(0))
        .map(|i| uuid(&i["stage_id"]))
        .collect();
    assert_eq!(
        listed.len(),
        expected.len(),
        "every visited stage: {report}"
    );

    let other = id(&new_board(admin, "Outro", &["P", "Q"]).await);
    fail(
        admin.get(&time_in_stage_path(other, card)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn sla_breaches_list_the_most_overdue_cards_first() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let supervisor = acme.user("supervisor", "supervisor").await;
    let agent = acme.user("agent", "agent").await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let sla = [(s[1], 1.0), (s[2], 10.0)];
    for (stage, hours) in sla {
        let body = json!({ "sla_hours": hours as i64 });
        expect(admin.patch(&stage_path(b, stage), body).await, 200).await;
    }
    // (stage, hours in it): over the SLA in stages 1 and 2; under it; stages without one.
    let placed = [
        (s[1], 5.0),
        (s[1], 3.0),
        (s[1], 0.5),
        (s[2], 13.0),
        (s[0], 100.0),
        (s[3], 100.0),
    ];
    let mut cards = Vec::new();
    let mut sql = String::new();
    for (stage, hours) in placed {
        let card = id(&new_card(admin, b, stage, json!({})).await);
        sql.push_str(&backdate_card(card, hours, None));
        sql.push_str(&backdate_row(created_row(&app, card).await, hours));
        cards.push((card, stage, hours));
    }
    let started = Instant::now();
    app.sql(&sql).await;

    let mut expected: Vec<(Uuid, Uuid, f64, f64)> = cards
        .iter()
        .filter_map(|(card, stage, hours)| {
            let limit = sla.iter().find(|(s, _)| s == stage)?.1;
            (*hours > limit).then(|| (*card, *stage, hours * 3600.0, (hours - limit) * 3600.0))
        })
        .collect();
    expected.sort_by(|a, b| b.3.total_cmp(&a.3));
    assert_eq!(expected.len(), 3);

    for client in [admin, &supervisor] {
        let report = expect(client.get(&sla_breaches_path(b)).await, 200).await;
        let slack = started.elapsed().as_secs_f64() + 1.0;
        let listed = items(&report);
        let got: Vec<Uuid> = listed.iter().map(|i| id(&i["card"])).collect();
        let want: Vec<Uuid> = expected.iter().map(|e| e.0).collect();
        assert_eq!(got, want, "most overdue first: {report}");
        for (item, (_, stage, in_stage, overdue)) in listed.iter().zip(&expected) {
            assert_eq!(item["stage_id"], json!(stage));
            assert_eq!(item["card"]["stage_id"], json!(stage));
            let within = |field: &str, want: f64| {
                let got = num(&item[field]);
                assert!(
                    got >= want - 1.0 && got <= want + slack,
                    "{field} {got} vs {want}: {item}"
                );
            };
            within("in_stage_seconds", *in_stage);
            within("overdue_seconds", *overdue);
        }
    }
    fail(agent.get(&sla_breaches_path(b)).await, 403, "FORBIDDEN").await;
    app.stop().await;
}
