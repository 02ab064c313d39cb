//! Resync (realtime.md "Sequence numbers and resync", docs/kanban-api.md): a client that
//! subscribed late or unsubscribed gets exactly the frames it missed from
//! `GET …/events?after_seq=N`, equal to what a live subscriber received; frames pruned from
//! the log answer 409 `resync_required`; a missing or invalid `after_seq` is a 400.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;
use crate::harness::*;

/// The `events?after_seq` answer expected for these frames.
fn replay(frames: &[Value], current_seq: i64) -> Value {
    json!({
        "items": frames.iter().cloned().map(normalized).collect::<Vec<_>>(),
        "current_seq": current_seq,
        "next_cursor": null,
    })
}

/// Renames a card (one `card.updated`).
async fn rename(app: &TestApp, board: &Board, cred: &str, card: Uuid, title: &str) {
    board
        .update_card(app, cred, card, json!({ "title": title }))
        .await;
}

#[actix_rt::test]
async fn a_late_or_unsubscribed_client_gets_exactly_the_missed_frames_from_events() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let agent = acme.member(&app, "agent", "agent").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    let mut live = connect(&app, admin).await;
    let mut dropout = connect(&app, &agent.token).await;
    let base = subscribe(&mut live, board.id).await;
    assert_eq!(subscribe(&mut dropout, board.id).await, base);

    // Four writes of different kinds.
    let card = board
        .new_card(&app, admin, board.stages[0], "Deal", None)
        .await;
    rename(&app, &board, admin, card, "Deal, renamed").await;
    board
        .move_card(&app, admin, card, json!({ "stage_id": board.stages[1] }))
        .await;
    ok(
        &app,
        admin,
        Method::POST,
        &board.checklist_path(card),
        Some(json!({ "text": "Call back" })),
        201,
    )
    .await;
    let first = take_frames(&mut live, 4).await;
    let seqs: Vec<i64> = first.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [base + 1, base + 2, base + 3, base + 4]);
    expect_frames(&mut dropout, &first).await;

    // A client that subscribes now learns it is behind, and catches up from its REST seq.
    let mut late = connect(&app, &agent.token).await;
    assert_eq!(subscribe(&mut late, board.id).await, base + 4);
    assert_eq!(
        board.events(&app, &agent.token, base).await,
        replay(&first, base + 4)
    );

    // The dropout unsubscribes and misses two writes that the others receive.
    unsubscribe(&mut dropout, board.id).await;
    rename(&app, &board, admin, card, "Deal, renamed again").await;
    board
        .move_card(&app, admin, card, json!({ "stage_id": board.stages[0] }))
        .await;
    let missed = take_frames(&mut live, 2).await;
    expect_frames(&mut late, &missed).await;
    expect_quiet(&mut dropout).await;
    assert_eq!(
        board.events(&app, &agent.token, base + 4).await,
        replay(&missed, base + 6)
    );

    // Any N: the frames after it; N at or past the current seq: none.
    let all: Vec<Value> = first.iter().chain(&missed).cloned().collect();
    assert_eq!(
        board.events(&app, admin, base + 2).await,
        replay(&all[2..], base + 6)
    );
    for after in [base + 6, base + 60] {
        assert_eq!(
            board.events(&app, admin, after).await,
            replay(&[], base + 6)
        );
    }
    app.stop().await;
}

/// Asserts a 400 of conventions.md's shape for a bad `after_seq` (`VALIDATION_ERROR` naming
/// the parameter, or `BAD_REQUEST`: the spec allows either for a malformed request).
async fn bad_after_seq(app: &TestApp, cred: &str, path: &str) {
    let response = send(app, cred, Method::GET, path, None).await;
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(status, 400, "{path}: {body}");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match body["code"].as_str() {
        Some("VALIDATION_ERROR") => assert!(
            body["details"]["fields"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["field"] == "after_seq")),
            "{body}"
        ),
        Some("BAD_REQUEST") => {}
        _ => panic!("{path}: not a 400 code: {body}"),
    }
}

#[actix_rt::test]
async fn a_pruned_log_answers_resync_required_and_a_bad_after_seq_is_a_400() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    let mut live = connect(&app, admin).await;
    let base = subscribe(&mut live, board.id).await;
    let card = board
        .new_card(&app, admin, board.stages[0], "Deal", None)
        .await;
    for n in 1..=5 {
        rename(&app, &board, admin, card, &format!("Deal v{n}")).await;
    }
    let frames = take_frames(&mut live, 6).await;
    let current = base + 6;

    // The tenant timer's pruning, simulated: the oldest frames leave the log.
    app.sql(&format!(
        "DELETE FROM board_events WHERE board_id = '{}' AND seq <= {}",
        board.id,
        base + 2
    ))
    .await;
    assert_eq!(
        board.events(&app, admin, base + 2).await,
        replay(&frames[2..], current),
        "everything after N is still logged"
    );
    for after in [base + 1, 0] {
        let error = refused(
            &app,
            admin,
            Method::GET,
            &board.events_path(after),
            None,
            409,
            "CONFLICT",
        )
        .await;
        assert_eq!(
            error["details"],
            json!({ "reason": "resync_required", "current_seq": current }),
            "after_seq={after}: {error}"
        );
    }

    let bare = board.path() + "/events";
    for path in [
        bare.clone(),
        format!("{bare}?after_seq=-1"),
        format!("{bare}?after_seq=abc"),
        format!("{bare}?after_seq="),
    ] {
        bad_after_seq(&app, admin, &path).await;
    }
    app.stop().await;
}

#[actix_rt::test]
async fn the_tenant_timer_prunes_frames_older_than_seven_days() {
    let app = TestApp::start_with(|c| {
        c.rate_limit_enabled = false;
        c.tuning.sla_check_interval = std::time::Duration::from_millis(200);
    })
    .await;
    let acme = tenant(&app, "acme").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    for title in ["One", "Two", "Three"] {
        board
            .new_card(&app, admin, board.stages[0], title, None)
            .await;
    }
    let current = board.current_seq(&app, admin).await;
    // All but the last frame are eight days old: the tenant's timer drops them.
    app.sql(&format!(
        "UPDATE board_events SET created_at = now() - interval '8 days' \
         WHERE board_id = '{}' AND seq < {current}",
        board.id
    ))
    .await;
    let logged = format!(
        "SELECT count(*) AS n FROM board_events WHERE board_id = '{}'",
        board.id
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while scalar(&app, &logged).await > 1 {
        assert!(std::time::Instant::now() < deadline, "pruned within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The newest frame is still served; anything older asks for a reload.
    let tail = board.events(&app, admin, current - 1).await;
    assert_eq!(tail["items"].as_array().map(Vec::len), Some(1), "{tail}");
    let body = refused(
        &app,
        admin,
        Method::GET,
        &board.events_path(0),
        None,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(
        body["details"],
        json!({ "reason": "resync_required", "current_seq": current })
    );
    app.stop().await;
}
