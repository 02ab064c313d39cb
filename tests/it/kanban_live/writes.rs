//! One event per write: every kind of board, stage, card and checklist write emits exactly one
//! frame with seq = previous + 1 and the kanban.md payload; a refused write (403, 409, 422)
//! emits nothing and leaves `boards.seq` alone; `board.deleted` ends the subscriptions.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;
use crate::harness::*;

/// A subscriber that tracks the board's seq: each expected frame takes the next one.
struct Watch<'a> {
    app: &'a TestApp,
    board: &'a Board,
    /// A reader's credential for REST checks.
    cred: &'a str,
    ws: Ws,
    seq: i64,
}

impl<'a> Watch<'a> {
    async fn subscribe(app: &'a TestApp, board: &'a Board, cred: &'a str) -> Watch<'a> {
        let mut ws = connect(app, cred).await;
        let seq = subscribe(&mut ws, board.id).await;
        assert_eq!(seq, board.current_seq(app, cred).await);
        Watch {
            app,
            board,
            cred,
            ws,
            seq,
        }
    }

    /// The next frame is `event` with seq + 1 and exactly `payload` besides.
    async fn expect(&mut self, event: &str, payload: Value) {
        self.seq += 1;
        expect_frame(&mut self.ws, frame(event, self.board.id, self.seq, payload)).await;
    }

    /// A write refused with `status` and `code`: `boards.seq` is unchanged (and the next
    /// `expect` proves no frame was sent). Returns the error body.
    async fn refused(
        &self,
        cred: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
        code: &str,
    ) -> Value {
        let error = refused(self.app, cred, method, path, body, status, code).await;
        assert_eq!(
            self.board.current_seq(self.app, self.cred).await,
            self.seq,
            "a refused write takes no seq"
        );
        error
    }

    /// The next frame is the `card.moved` of this move answer (`{card, history_entry}`).
    async fn expect_moved(&mut self, moved: &Value, from: Uuid, actor: Uuid) {
        self.seq += 1;
        expect_frame(
            &mut self.ws,
            card_moved(self.board.id, self.seq, moved, from, actor),
        )
        .await;
    }

    async fn card_now(&self, card: Uuid) -> Value {
        self.board.card_now(self.app, self.cred, card).await
    }

    async fn stage_now(&self, stage: Uuid) -> Value {
        self.board.stage_now(self.app, self.cred, stage).await
    }
}

/// Sends an action whose success status the spec leaves to 200 or 204; returns the body.
async fn action(app: &TestApp, cred: &str, path: &str, body: Value) -> Value {
    let response = send(app, cred, Method::POST, path, Some(body)).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(status == 200 || status == 204, "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[actix_rt::test]
async fn each_write_emits_one_event_with_the_next_seq_and_refused_writes_emit_nothing() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let agent = acme.member(&app, "agent", "agent").await;
    let colleague = acme.member(&app, "colleague", "agent").await;
    let board = acme.default_board(&app).await;
    let admin = acme.admin.token.as_str();
    let (first, second) = (board.stages[0], board.stages[1]);
    let mut watch = Watch::subscribe(&app, &board, admin).await;

    // Card create.
    let created = board
        .create_card(
            &app,
            admin,
            json!({ "stage_id": first, "title": "Deal", "value": "1500.00", "assignee_id": colleague.id }),
        )
        .await;
    let card = uuid_of(&created["id"]);
    assert_eq!(created["value"], "1500.00");
    watch
        .expect(
            "card.created",
            json!({ "card": watch.card_now(card).await }),
        )
        .await;

    // 403: an agent moving a colleague's card on an `all` board.
    let error = watch
        .refused(
            &agent.token,
            Method::POST,
            &board.move_path(card),
            Some(json!({ "stage_id": second })),
            403,
            "FORBIDDEN",
        )
        .await;
    assert_eq!(error["message"], "you can only move cards assigned to you");

    // Card update.
    board
        .update_card(
            &app,
            admin,
            card,
            json!({ "title": "Deal renamed", "priority": "high" }),
        )
        .await;
    let now = watch.card_now(card).await;
    watch
        .expect(
            "card.updated",
            json!({ "card": now, "changed": ["priority", "title"] }),
        )
        .await;

    // 409: a stale version.
    let version = now["version"].as_i64().unwrap();
    let error = watch
        .refused(
            admin,
            Method::PATCH,
            &board.card_path(card),
            Some(json!({ "title": "Stale", "version": version - 1 })),
            409,
            "CONFLICT",
        )
        .await;
    assert_eq!(error["details"]["current_version"], version, "{error}");

    // Move to another stage, then a same-stage reorder (no history entry).
    let moved = board
        .move_card(&app, admin, card, json!({ "stage_id": second }))
        .await;
    assert!(moved["history_entry"]["id"].is_string(), "{moved}");
    watch.expect_moved(&moved, first, acme.admin.id).await;
    let reordered = board
        .move_card(&app, admin, card, json!({ "stage_id": second, "index": 0 }))
        .await;
    assert_eq!(reordered["history_entry"], Value::Null, "{reordered}");
    watch.expect_moved(&reordered, second, acme.admin.id).await;

    // Checklist add.
    let item = ok(
        &app,
        admin,
        Method::POST,
        &board.checklist_path(card),
        Some(json!({ "text": "Send the proposal", "is_required": true })),
        201,
    )
    .await;
    let item_id = uuid_of(&item["id"]);
    watch
        .expect(
            "card.updated",
            json!({ "card": watch.card_now(card).await, "changed": ["checklist"] }),
        )
        .await;

    // 422: into a final stage with that required item open.
    let error = watch
        .refused(
            admin,
            Method::POST,
            &board.move_path(card),
            Some(json!({ "stage_id": board.final_stage })),
            422,
            "UNPROCESSABLE",
        )
        .await;
    assert_eq!(
        error["details"]["open_item_ids"],
        json!([item_id]),
        "{error}"
    );

    // Checklist item completed.
    ok(
        &app,
        admin,
        Method::PATCH,
        &format!("{}/{item_id}", board.checklist_path(card)),
        Some(json!({ "is_completed": true })),
        200,
    )
    .await;
    watch
        .expect(
            "card.updated",
            json!({ "card": watch.card_now(card).await, "changed": ["checklist"] }),
        )
        .await;

    // Stage create; a duplicate name (ignoring case) and an agent are refused.
    let stage = ok(
        &app,
        admin,
        Method::POST,
        &board.stages_path(),
        Some(json!({ "name": "Qualified", "sla_hours": 24 })),
        201,
    )
    .await;
    let extra = uuid_of(&stage["id"]);
    watch
        .expect(
            "stage.created",
            json!({ "stage": watch.stage_now(extra).await }),
        )
        .await;
    watch
        .refused(
            admin,
            Method::POST,
            &board.stages_path(),
            Some(json!({ "name": "qualified" })),
            409,
            "CONFLICT",
        )
        .await;
    watch
        .refused(
            &agent.token,
            Method::POST,
            &board.stages_path(),
            Some(json!({ "name": "Agents' stage" })),
            403,
            "FORBIDDEN",
        )
        .await;

    // Stage update.
    ok(
        &app,
        admin,
        Method::PATCH,
        &board.stage_path(extra),
        Some(json!({ "name": "Qualified leads", "color": "#22C55E" })),
        200,
    )
    .await;
    watch
        .expect(
            "stage.updated",
            json!({ "stage": watch.stage_now(extra).await }),
        )
        .await;

    // Stages reorder; a list missing a stage is refused.
    let mut order = vec![extra];
    order.extend(&board.stages);
    action(
        &app,
        admin,
        &board.reorder_path(),
        json!({ "stage_ids": order }),
    )
    .await;
    watch
        .expect("stages.reordered", json!({ "stage_ids": order }))
        .await;
    watch
        .refused(
            admin,
            Method::POST,
            &board.reorder_path(),
            Some(json!({ "stage_ids": &order[1..] })),
            422,
            "UNPROCESSABLE",
        )
        .await;

    // The card goes into the new stage; deleting it without a target is refused, with one the
    // card moves to the target.
    let moved = board
        .move_card(&app, admin, card, json!({ "stage_id": extra }))
        .await;
    watch.expect_moved(&moved, second, acme.admin.id).await;
    watch
        .refused(
            admin,
            Method::DELETE,
            &board.stage_path(extra),
            None,
            422,
            "UNPROCESSABLE",
        )
        .await;
    ok(
        &app,
        admin,
        Method::DELETE,
        &format!("{}?move_cards_to={first}", board.stage_path(extra)),
        None,
        204,
    )
    .await;
    watch
        .expect(
            "stage.deleted",
            json!({ "stage_id": extra, "moved_cards_to": first, "moved_card_ids": [card] }),
        )
        .await;
    assert_eq!(watch.card_now(card).await["stage_id"], first.to_string());

    // Board update; the default board cannot be deleted.
    ok(
        &app,
        admin,
        Method::PATCH,
        &board.path(),
        Some(json!({ "description": "Where the deals live" })),
        200,
    )
    .await;
    watch
        .expect(
            "board.updated",
            json!({ "board": board.board_now(&app, admin).await }),
        )
        .await;
    watch
        .refused(
            admin,
            Method::DELETE,
            &board.path(),
            None,
            422,
            "UNPROCESSABLE",
        )
        .await;

    // Card delete.
    ok(
        &app,
        admin,
        Method::DELETE,
        &board.card_path(card),
        None,
        204,
    )
    .await;
    watch
        .expect(
            "card.deleted",
            json!({ "card_id": card, "stage_id": first }),
        )
        .await;

    assert_eq!(board.current_seq(&app, admin).await, watch.seq);
    expect_quiet(&mut watch.ws).await;
    app.stop().await;
}

#[actix_rt::test]
async fn board_deleted_reaches_every_subscriber_and_ends_their_subscriptions() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let agent = acme.member(&app, "agent", "agent").await;
    let board = acme
        .create_board(
            &app,
            "Short-lived",
            json!([{ "name": "Open" }, { "name": "Done", "is_final": true }]),
        )
        .await;
    board
        .new_card(&app, &acme.admin.token, board.stages[0], "Doomed", None)
        .await;
    let base = board.current_seq(&app, &acme.admin.token).await;
    let mut sessions = [
        connect(&app, &acme.admin.token).await,
        connect(&app, &agent.token).await,
    ];
    for ws in &mut sessions {
        assert_eq!(subscribe(ws, board.id).await, base);
    }

    ok(
        &app,
        &acme.admin.token,
        Method::DELETE,
        &board.path(),
        None,
        204,
    )
    .await;
    for ws in &mut sessions {
        expect_frames(
            ws,
            &[
                frame("board.deleted", board.id, base + 1, json!({})),
                unsubscribed(board.id, "deleted"),
            ],
        )
        .await;
    }

    // The board is gone: subscribing answers exactly like an id that never existed, and its
    // event log is gone with it.
    let ws = &mut sessions[0];
    let gone = sub_refused(ws, &board.topic(), "NOT_FOUND").await;
    let random = Uuid::now_v7();
    let never = sub_refused(ws, &format!("board:{random}"), "NOT_FOUND").await;
    assert_eq!(gone["message"], never["message"]);
    refused(
        &app,
        &acme.admin.token,
        Method::GET,
        &board.events_path(0),
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_quiet(ws).await;
    app.stop().await;
}
