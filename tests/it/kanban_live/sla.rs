//! The tenant's SLA timer (kanban.md "Metrics", docs/kanban-api.md `sla_check_interval`): a card
//! past its stage's `sla_hours` is marked once per stay with one `card.updated` that leaves its
//! `version` alone; moving it clears the mark.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::support::*;
use crate::harness::*;

#[actix_rt::test]
async fn an_overdue_card_is_marked_once_without_a_version_bump_and_a_move_clears_the_mark() {
    let interval = Duration::from_millis(300);
    let app = TestApp::start_with(|c| {
        c.rate_limit_enabled = false;
        c.tuning.sla_check_interval = interval;
    })
    .await;
    let acme = tenant(&app, "acme").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    let (timed, next) = (board.stages[0], board.stages[1]);
    ok(
        &app,
        admin,
        Method::PATCH,
        &board.stage_path(timed),
        Some(json!({ "sla_hours": 1 })),
        200,
    )
    .await;
    let card = board.new_card(&app, admin, timed, "Waiting", None).await;
    let before = board.card_now(&app, admin, card).await;
    assert_eq!(before["sla_breached_at"], Value::Null);
    let mut ws = connect(&app, admin).await;
    let seq = subscribe(&mut ws, board.id).await;

    // Two hours in a one-hour stage, as the timer's clock sees it.
    app.sql(&format!(
        "UPDATE cards SET moved_at = now() - interval '2 hours' WHERE id = '{card}'"
    ))
    .await;
    let marked = next_frame(&mut ws).await;
    let now = board.card_now(&app, admin, card).await;
    assert!(now["sla_breached_at"].is_string(), "{now}");
    assert_eq!(
        now["version"], before["version"],
        "an SLA mark is not a user write"
    );
    let changed = marked["changed"].as_array().cloned().unwrap_or_default();
    assert!(changed.contains(&json!("sla_breached_at")), "{marked}");
    assert_eq!(
        marked,
        frame(
            "card.updated",
            board.id,
            seq + 1,
            json!({ "card": now, "changed": changed })
        )
    );

    // Later ticks do not mark it again: after several intervals the next frame is a write's.
    tokio::time::sleep(interval * 5).await;
    board
        .update_card(&app, admin, card, json!({ "notes": "Chased" }))
        .await;
    let noted = board.card_now(&app, admin, card).await;
    assert_eq!(noted["sla_breached_at"], now["sla_breached_at"]);
    expect_frame(&mut ws, card_updated(board.id, seq + 2, &noted, &["notes"])).await;

    // A stage change clears the mark (in the answer, the frame and the card).
    let moved = board
        .move_card(&app, admin, card, json!({ "stage_id": next }))
        .await;
    assert_eq!(moved["card"]["sla_breached_at"], Value::Null, "{moved}");
    expect_frame(
        &mut ws,
        card_moved(board.id, seq + 3, &moved, timed, acme.admin.id),
    )
    .await;
    assert_eq!(
        board.card_now(&app, admin, card).await["sla_breached_at"],
        Value::Null
    );
    tokio::time::sleep(interval * 3).await;
    expect_quiet(&mut ws).await;
    app.stop().await;
}
