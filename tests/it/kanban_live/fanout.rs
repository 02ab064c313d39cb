//! Fan-out: several subscribers see the same frames, and concurrent moves keep seqs dense,
//! positions unique and history exact.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

#[actix_rt::test]
async fn two_subscribers_receive_the_same_card_moved_frames_with_consecutive_seqs() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let agent = acme.member(&app, "agent", "agent").await;
    let board = acme.default_board(&app).await;
    let card = board
        .new_card(&app, &acme.admin.token, board.stages[0], "Deal", None)
        .await;
    let rest_seq = board.current_seq(&app, &acme.admin.token).await;

    let mut admin_ws = connect(&app, &acme.admin.token).await;
    let mut agent_ws = connect(&app, &agent.token).await;
    assert_eq!(subscribe(&mut admin_ws, board.id).await, rest_seq);
    assert_eq!(subscribe(&mut agent_ws, board.id).await, rest_seq);
    // The agent reads the board too; its REST seq is the same.
    assert_eq!(board.current_seq(&app, &agent.token).await, rest_seq);

    let mut seq = rest_seq;
    for (from, to) in [(0, 1), (1, 0)] {
        let moved = board
            .move_card(
                &app,
                &acme.admin.token,
                card,
                json!({ "stage_id": board.stages[to] }),
            )
            .await;
        seq += 1;
        let expected = card_moved(board.id, seq, &moved, board.stages[from], acme.admin.id);
        expect_frame(&mut admin_ws, expected.clone()).await;
        expect_frame(&mut agent_ws, expected).await;
    }
    assert_eq!(board.current_seq(&app, &acme.admin.token).await, seq);
    app.stop().await;
}

#[actix_rt::test]
async fn fifty_concurrent_moves_into_one_stage_keep_seqs_positions_and_history_exact() {
    let app = start().await;
    let acme = tenant(&app, "acme").await;
    let board = acme.default_board(&app).await;
    let admin = &acme.admin.token;
    let (source, target) = (board.stages[0], board.stages[1]);
    let mut movers = Vec::new();
    let mut stayers = Vec::new();
    for i in 0..25 {
        movers.push(
            board
                .new_card(&app, admin, source, &format!("mover {i}"), None)
                .await,
        );
        stayers.push(
            board
                .new_card(&app, admin, target, &format!("stayer {i}"), None)
                .await,
        );
    }
    let history_before = scalar(
        &app,
        &format!(
            "SELECT count(*) AS n FROM card_history WHERE board_id = '{}'",
            board.id
        ),
    )
    .await;
    let mut ws = connect(&app, admin).await;
    let base = subscribe(&mut ws, board.id).await;

    // 25 stage changes into `target` and 25 reorders inside it, all at once, with every kind
    // of placement. Neighbours are always cards that stay in `target`.
    let mut requests: Vec<(Uuid, Value)> = Vec::new();
    for (i, card) in movers.iter().enumerate() {
        let mut body = json!({ "stage_id": target });
        match i % 3 {
            0 => {}
            1 => body["index"] = json!(i),
            _ => body["after_card_id"] = json!(stayers[i]),
        }
        requests.push((*card, body));
    }
    for (i, card) in stayers.iter().enumerate() {
        let mut body = json!({ "stage_id": target });
        match i % 2 {
            0 => body["index"] = json!((i * 7) % 25),
            _ => body["before_card_id"] = json!(stayers[(i + 3) % 25]),
        }
        requests.push((*card, body));
    }
    let answers = join_all(
        requests
            .iter()
            .map(|(card, body)| board.move_card(&app, admin, *card, body.clone())),
    )
    .await;
    let answer_of: BTreeMap<Uuid, &Value> = requests
        .iter()
        .map(|(card, _)| *card)
        .zip(answers.iter())
        .collect();

    // The subscriber: 50 `card.moved`, seqs base+1..=base+50 in order, each card once.
    let frames = take_frames(&mut ws, 50).await;
    let seqs: Vec<i64> = frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (base + 1..=base + 50).collect::<Vec<_>>());
    let mut seen = BTreeSet::new();
    for frame in &frames {
        assert_eq!(frame["event"], "card.moved", "{frame}");
        assert_eq!(frame["board_id"], board.id.to_string());
        let card = uuid_of(&frame["card"]["id"]);
        assert!(seen.insert(card), "card {card} moved twice: {frame}");
        let answer = answer_of[&card];
        let from = if movers.contains(&card) {
            source
        } else {
            target
        };
        // The frame carries the card exactly as its move answered it.
        let mut expected = card_moved(
            board.id,
            frame["seq"].as_i64().unwrap(),
            answer,
            from,
            acme.admin.id,
        );
        if let Some(renumbered) = frame.get("renumbered") {
            // Only after a renumbering (kanban.md Positions), which many inserts at one index
            // may cause: a list of {id, position}.
            assert!(
                renumbered.as_array().is_some_and(|r| !r.is_empty()),
                "{frame}"
            );
            expected["renumbered"] = renumbered.clone();
        }
        assert_eq!(frame, &expected);
        assert_eq!(frame["card"]["stage_id"], target.to_string());
        assert_eq!(answer["card"]["id"], card.to_string());
        assert_eq!(
            answer["history_entry"].is_null(),
            from == target,
            "{answer}"
        );
    }

    // Positions are unique in the target stage, which now holds all 50 cards.
    let positions = app
        .rows(&format!(
            "SELECT id, position FROM cards WHERE stage_id = '{target}'"
        ))
        .await;
    assert_eq!(positions.len(), 50);
    let distinct: BTreeSet<i64> = positions
        .iter()
        .map(|r| r["position"].as_i64().unwrap())
        .collect();
    assert_eq!(distinct.len(), 50, "positions are unique: {positions:?}");

    // One `moved` row per stage change, none for a reorder, matching the answers and frames.
    let mut history = app
        .rows(&format!(
            "SELECT id, card_id, action, from_stage_id, to_stage_id FROM card_history \
             WHERE board_id = '{}' AND action <> 'created'",
            board.id
        ))
        .await;
    history.sort_by_key(|row| row["card_id"].as_str().unwrap().to_owned());
    assert_eq!(
        scalar(
            &app,
            &format!(
                "SELECT count(*) AS n FROM card_history WHERE board_id = '{}'",
                board.id
            ),
        )
        .await,
        history_before + 25
    );
    let mut expected_history: Vec<Value> = movers
        .iter()
        .map(|card| {
            json!({
                "id": answer_of[card]["history_entry"]["id"],
                "card_id": card,
                "action": "moved",
                "from_stage_id": source,
                "to_stage_id": target,
            })
        })
        .collect();
    expected_history.sort_by_key(|row| row["card_id"].as_str().unwrap().to_owned());
    assert_eq!(history, expected_history);

    // The board's seq is the last one delivered.
    assert_eq!(board.current_seq(&app, admin).await, base + 50);
    assert_eq!(
        scalar(
            &app,
            &format!("SELECT seq AS n FROM boards WHERE id = '{}'", board.id)
        )
        .await,
        base + 50
    );
    app.stop().await;
}
