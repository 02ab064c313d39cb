//! Who may subscribe to `board:{id}` (realtime.md "Topics and authorization", iam.md §2–§3):
//! another tenant's board answers like a random id, the `kanban` flag gates topics and routes,
//! instance tokens and API keys need `boards:read` and `cards:read`; malformed topics get an
//! error, `unsub` stops the events, and subscribing twice answers `subscribed` again.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use super::support::*;

#[actix_rt::test]
async fn another_tenants_board_is_not_found_exactly_like_a_random_id() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let other = tenant(&app, "other").await;
    let theirs = other.default_board(&app).await;
    let mut ws = connect(&app, &acme.admin.token).await;

    let foreign = sub_refused(&mut ws, &theirs.topic(), "NOT_FOUND").await;
    let random = sub_refused(&mut ws, &format!("board:{}", Uuid::now_v7()), "NOT_FOUND").await;
    assert_eq!(foreign["message"], random["message"], "same answer");

    // Their own admin subscribes, and their writes never reach the refused session.
    let mut owner = connect(&app, &other.admin.token).await;
    let seq = subscribe(&mut owner, theirs.id).await;
    let card = theirs
        .new_card(&app, &other.admin.token, theirs.stages[0], "Private", None)
        .await;
    let now = theirs.card_now(&app, &other.admin.token, card).await;
    expect_frame(&mut owner, card_created(theirs.id, seq + 1, &now)).await;
    expect_quiet(&mut ws).await;
    app.stop().await;
}

#[actix_rt::test]
async fn with_the_kanban_flag_off_topics_and_routes_are_feature_disabled() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    let mut ws = connect(&app, admin).await;
    let seq = subscribe(&mut ws, board.id).await;

    set_entitlements(&app, acme.id, json!({ "overrides": { "kanban": false } })).await;
    // The subscribed session loses access (realtime.md: checked again when the flag changes).
    expect_frame(&mut ws, unsubscribed(board.id, "feature_disabled")).await;
    sub_refused(&mut ws, &board.topic(), "FEATURE_DISABLED").await;
    for path in [boards_path(acme.id), board.path(), board.events_path(0)] {
        let error = refused(
            &app,
            admin,
            Method::GET,
            &path,
            None,
            403,
            "FEATURE_DISABLED",
        )
        .await;
        assert_eq!(error["details"]["feature"], "kanban", "{path}: {error}");
    }
    let error = refused(
        &app,
        admin,
        Method::POST,
        &board.cards_path(),
        Some(json!({ "stage_id": board.stages[0], "title": "Blocked" })),
        403,
        "FEATURE_DISABLED",
    )
    .await;
    assert_eq!(error["details"]["feature"], "kanban");

    // Back on: the data was kept and the topic works again.
    set_entitlements(&app, acme.id, json!({ "overrides": { "kanban": null } })).await;
    assert_eq!(subscribe(&mut ws, board.id).await, seq);
    assert_eq!(board.current_seq(&app, admin).await, seq);
    app.stop().await;
}

#[actix_rt::test]
async fn instance_tokens_and_api_keys_subscribe_with_board_and_card_read_scopes_only() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let board = acme.default_board(&app).await;
    let both = ["boards:read", "cards:read"];
    let token = acme.instance_token(&app, &both).await;
    let key = acme.api_key(&app, &both).await;

    let mut subscribers = Vec::new();
    for cred in [&token, &key] {
        let mut ws = connect(&app, cred).await;
        assert_eq!(subscribe(&mut ws, board.id).await, board.seq);
        subscribers.push(ws);
    }
    for partial in [["boards:read"], ["cards:read"]] {
        let creds = [
            acme.instance_token(&app, &partial).await,
            acme.api_key(&app, &partial).await,
        ];
        for cred in creds {
            let mut ws = connect(&app, &cred).await;
            sub_refused(&mut ws, &board.topic(), "SCOPE_MISSING").await;
        }
    }

    let card = board
        .new_card(
            &app,
            &acme.admin.token,
            board.stages[0],
            "Seen by machines",
            None,
        )
        .await;
    let expected = card_created(
        board.id,
        board.seq + 1,
        &board.card_now(&app, &acme.admin.token, card).await,
    );
    for ws in &mut subscribers {
        expect_frame(ws, expected.clone()).await;
    }
    app.stop().await;
}

#[actix_rt::test]
async fn malformed_topics_unsub_and_subscribing_twice() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();

    // Malformed topics get an error (and the session goes on); a handful stays under the 1008
    // threshold.
    let mut ws = connect(&app, admin).await;
    for topic in [
        json!("board:"),
        json!("board:not-a-uuid"),
        json!("boards:0190b3a4-0000-7000-8000-000000000000"),
        json!("nonsense"),
        json!(42),
    ] {
        send_sub(&mut ws, topic.clone(), "bad").await;
        let error = next_frame(&mut ws).await;
        assert_eq!(error["event"], "error", "{topic}: {error}");
        assert!(
            ["BAD_REQUEST", "VALIDATION_ERROR"].contains(&error["code"].as_str().unwrap_or("")),
            "{topic}: {error}"
        );
        assert_eq!(
            (&error["op"], &error["ref"]),
            (&json!("sub"), &json!("bad"))
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    expect_quiet(&mut ws).await;

    // Subscribing twice answers `subscribed` again, and events still arrive once.
    let seq = subscribe(&mut ws, board.id).await;
    assert_eq!(subscribe(&mut ws, board.id).await, seq);
    let mut witness = connect(&app, admin).await;
    assert_eq!(subscribe(&mut witness, board.id).await, seq);
    let card = board
        .new_card(&app, admin, board.stages[0], "Once", None)
        .await;
    let created = card_created(board.id, seq + 1, &board.card_now(&app, admin, card).await);
    expect_frame(&mut ws, created.clone()).await;
    expect_frame(&mut witness, created).await;
    expect_quiet(&mut ws).await;

    // `unsub`: answered (again when repeated), and nothing more arrives.
    unsubscribe(&mut ws, board.id).await;
    unsubscribe(&mut ws, board.id).await;
    board
        .update_card(&app, admin, card, json!({ "title": "Unseen" }))
        .await;
    let updated = next_frame(&mut witness).await;
    assert_eq!(
        (&updated["event"], &updated["seq"]),
        (&json!("card.updated"), &json!(seq + 2))
    );
    expect_quiet(&mut ws).await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_two_hundred_and_first_subscription_is_refused() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    // 200 more boards than the default one, straight into the table (access only needs them
    // to exist in the tenant).
    app.sql(&format!(
        "INSERT INTO boards (id, account_id, name) \
         SELECT uuid_v7(), '{}', 'Board ' || g FROM generate_series(1, 200) g",
        acme.id
    ))
    .await;
    let boards: Vec<Uuid> = app
        .rows(&format!(
            "SELECT id FROM boards WHERE account_id = '{}' ORDER BY id",
            acme.id
        ))
        .await
        .iter()
        .map(|row| uuid_of(&row["id"]))
        .collect();
    assert_eq!(boards.len(), 201);
    let mut ws = connect(&app, &acme.admin.token).await;
    for board in &boards[..200] {
        subscribe(&mut ws, *board).await;
    }
    let refused = sub_refused(&mut ws, &format!("board:{}", boards[200]), "UNPROCESSABLE").await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("200"),
        "{refused}"
    );
    // Subscribing again to a held topic is no new subscription.
    subscribe(&mut ws, boards[0]).await;
    app.stop().await;
}
