//! Positions (kanban.md, Positions): 1 000 random moves against an in-test model of every
//! stage's order, inserts between the same two cards until the stage is renumbered to
//! `i × 65 536`, and a normal move rewriting exactly one card row (compared by `xmin`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

/// The cards of a stage with their positions, top first, straight from the database.
async fn stored_order(app: &TestApp, stage: Uuid) -> Vec<(Uuid, i64)> {
    app.rows(&format!(
        "SELECT id, position FROM cards WHERE stage_id = '{stage}' ORDER BY position, id"
    ))
    .await
    .iter()
    .map(|r| (id(r), r["position"].as_i64().expect("position")))
    .collect()
}

/// Asserts that every stage holds exactly the model's cards in the model's order, both in the
/// database and through the list endpoint, and that positions are unique.
async fn assert_model(
    client: &Client<'_>,
    board: Uuid,
    stages: &[Uuid],
    model: &[Vec<Uuid>],
    what: &str,
) {
    for (stage, expected) in stages.iter().zip(model) {
        let stored: Vec<Uuid> = stored_order(client.app, *stage)
            .await
            .iter()
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(&stored, expected, "stored order of {stage} ({what})");
        assert_eq!(
            &stage_order(client, board, *stage).await,
            expected,
            "listed order ({what})"
        );
    }
    assert_unique_positions(client.app, board).await;
}

/// `xmin` of every card of a board: a changed value is a rewritten row.
async fn row_versions(app: &TestApp, board: Uuid) -> Vec<Value> {
    app.rows(&format!(
        "SELECT id, xmin::text AS xmin FROM cards WHERE board_id = '{board}' ORDER BY id"
    ))
    .await
}

/// The ids whose row changed between two [`row_versions`].
fn rewritten(before: &[Value], after: &[Value]) -> Vec<Uuid> {
    assert_eq!(before.len(), after.len());
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| id(b))
        .collect()
}

#[actix_rt::test]
async fn a_thousand_random_moves_keep_positions_unique_and_match_a_model() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let b = id(&board);
    // Three non-final stages, so every stage change writes a `moved` row.
    let stages: Vec<Uuid> = stage_ids(&board)[..3].to_vec();
    let cards = seed_cards(
        &app,
        Seed {
            account: acme.id,
            board: b,
            stages: &stages,
            count: 30,
            prefix: "Random",
            columns: &[],
        },
    )
    .await;
    let mut model: Vec<Vec<Uuid>> = vec![Vec::new(); stages.len()];
    for (i, card) in cards.iter().enumerate() {
        model[i % stages.len()].push(*card);
    }
    assert_model(admin, b, &stages, &model, "seeded").await;

    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stage_changes = 0;
    for step in 0..1000 {
        let what = format!("seed {seed}, step {step}");
        let card = cards[rng.random_range(0..cards.len())];
        let from = model.iter().position(|s| s.contains(&card)).unwrap();
        let to = rng.random_range(0..stages.len());
        model[from].retain(|c| *c != card);
        let target = &model[to];
        let (mut body, at) = match rng.random_range(0..4) {
            0 if !target.is_empty() => {
                let k = rng.random_range(0..target.len());
                (json!({ "before_card_id": target[k] }), k)
            }
            1 if !target.is_empty() => {
                let k = rng.random_range(0..target.len());
                (json!({ "after_card_id": target[k] }), k + 1)
            }
            2 => {
                let index = rng.random_range(0..target.len() + 3);
                (json!({ "index": index }), index.min(target.len()))
            }
            _ => (json!({}), 0),
        };
        body["stage_id"] = json!(stages[to]);
        model[to].insert(at, card);
        let response = moved(admin, b, card, body).await;
        assert_eq!(response["card"]["stage_id"], json!(stages[to]), "{what}");
        if from == to {
            assert_eq!(response["history_entry"], Value::Null, "{what}");
        } else {
            stage_changes += 1;
            assert_eq!(response["history_entry"]["action"], "moved", "{what}");
        }
        if step % 100 == 99 {
            assert_model(admin, b, &stages, &model, &what).await;
        }
    }
    let moved_rows = count(
        &app,
        &format!("card_history WHERE board_id = '{b}' AND action = 'moved'"),
    )
    .await;
    assert_eq!(
        moved_rows, stage_changes,
        "one row per stage change (seed {seed})"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn inserting_between_the_same_two_cards_renumbers_the_stage() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let right = id(&new_card(admin, b, s[1], json!({ "title": "right" })).await);
    let left = id(&new_card(admin, b, s[1], json!({ "title": "left" })).await);
    let mut movers = Vec::new();
    for i in 0..20 {
        movers.push(id(&new_card(
            admin,
            b,
            s[0],
            json!({ "title": format!("m{i}") }),
        )
        .await));
    }
    let mut model = vec![left, right];
    assert_eq!(stage_order(admin, b, s[1]).await, model);

    let mut renumbered = Vec::new();
    for (k, mover) in movers.iter().enumerate() {
        moved(
            admin,
            b,
            *mover,
            json!({ "stage_id": s[1], "before_card_id": right }),
        )
        .await;
        model.insert(model.len() - 1, *mover);
        let stored = stored_order(&app, s[1]).await;
        let order: Vec<Uuid> = stored.iter().map(|(c, _)| *c).collect();
        assert_eq!(order, model, "after insert {k}");
        let evenly_spaced = stored
            .iter()
            .enumerate()
            .all(|(i, (_, position))| *position == i as i64 * GAP);
        if evenly_spaced {
            renumbered.push(k);
        }
    }
    assert!(
        !renumbered.is_empty(),
        "20 halvings of a 65 536 gap must renumber the stage to i × 65 536"
    );
    assert_eq!(stage_order(admin, b, s[1]).await, model);
    assert_unique_positions(&app, b).await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_normal_move_rewrites_exactly_one_card_row() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    for stage in [s[0], s[1]] {
        for i in 0..5 {
            new_card(admin, b, stage, json!({ "title": format!("C{i}") })).await;
        }
    }
    let first = stage_order(admin, b, s[0]).await;
    let second = stage_order(admin, b, s[1]).await;
    let moves = [
        (
            first[2],
            json!({ "stage_id": s[1], "after_card_id": second[1] }),
        ),
        (first[0], json!({ "stage_id": s[1] })),
        (first[1], json!({ "stage_id": s[1], "index": 99 })),
        (
            second[3],
            json!({ "stage_id": s[1], "before_card_id": second[0] }),
        ),
    ];
    for (card, body) in moves {
        let before = row_versions(&app, b).await;
        moved(admin, b, card, body.clone()).await;
        let after = row_versions(&app, b).await;
        assert_eq!(rewritten(&before, &after), [card], "{body}");
    }
    app.stop().await;
}
