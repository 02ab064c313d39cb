//! Stages: adding (appended, or at a position), the 20-stage limit, names unique per board
//! ignoring case, PATCH (and keeping a non-final stage), DELETE (cards need a target of the same
//! board; they keep their order at the bottom of the target, each with a `moved` row; a board
//! keeps two stages), and reorder (each stage exactly once; supervisors may, agents may not).

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

/// `POST /boards/{b}/stages` (201 expected).
async fn add_stage(client: &Client<'_>, board: Uuid, body: Value) -> Value {
    expect(client.post(&stages_path(board), body).await, 201).await
}

/// `DELETE /boards/{b}/stages/{s}`, with `?move_cards_to=` when a target is given.
async fn delete_stage(
    client: &Client<'_>,
    board: Uuid,
    stage: Uuid,
    target: Option<Uuid>,
) -> reqwest::Response {
    let path = match target {
        Some(target) => format!("{}?move_cards_to={target}", stage_path(board, stage)),
        None => stage_path(board, stage),
    };
    client.delete(&path).await
}

/// `POST …/stages/reorder`.
async fn reorder(client: &Client<'_>, board: Uuid, stage_ids: &[Uuid]) -> reqwest::Response {
    client
        .post(&reorder_path(board), json!({ "stage_ids": stage_ids }))
        .await
}

/// Reorders (200 or 204: the answer's body is not specified) and checks the new order.
async fn reordered(client: &Client<'_>, board: Uuid, stage_ids: &[Uuid]) {
    let response = reorder(client, board, stage_ids).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(status == 200 || status == 204, "reorder: {status} {text}");
    assert_eq!(listed_stage_ids(client, board).await, stage_ids);
}

/// The names of a board's stages, in order.
async fn stage_names(client: &Client<'_>, board: Uuid) -> Vec<String> {
    array(&get_board(client, board).await["stages"])
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_rt::test]
async fn stages_are_appended_or_inserted_at_a_position() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let b = id(&new_board(admin, "Funil", &["A", "B", "C"]).await);

    let appended = add_stage(admin, b, json!({ "name": "D" })).await;
    assert_eq!(appended["position"], 3);
    assert_eq!(appended["board_id"], json!(b));
    assert_eq!(appended["color"], "#6B7280");
    assert_eq!(appended["is_final"], false);
    assert_eq!(appended["sla_hours"], Value::Null);
    assert_eq!(appended["checklist_template"], json!([]));
    assert_eq!(appended["auto_actions"], json!([]));

    let inserted = add_stage(
        admin,
        b,
        json!({
            "name": "Early",
            "position": 1,
            "color": "#10B981",
            "sla_hours": 48,
            "checklist_template": [{ "text": "Confirmar endereço", "is_required": true }],
        }),
    )
    .await;
    assert_eq!(inserted["position"], 1);
    assert_eq!(inserted["color"], "#10B981");
    assert_eq!(inserted["sla_hours"], 48);
    let template = array(&inserted["checklist_template"]);
    assert_eq!(template.len(), 1);
    assert_eq!(template[0]["text"], "Confirmar endereço");
    assert_eq!(template[0]["is_required"], true);
    uuid(&template[0]["key"]);
    assert_eq!(stage_names(admin, b).await, ["A", "Early", "B", "C", "D"]);
    listed_stage_ids(admin, b).await;

    let before = kanban_state(&app, acme.id).await;
    invalid(
        admin
            .post(&stages_path(b), json!({ "name": "E", "color": "red" }))
            .await,
        "color",
    )
    .await;
    invalid(
        admin
            .post(&stages_path(b), json!({ "name": "E", "sla_hours": 0 }))
            .await,
        "sla_hours",
    )
    .await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn a_board_holds_at_most_20_stages() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = create_board(
        admin,
        json!({ "name": "Long", "stages": numbered_stages(19) }),
    )
    .await;
    let b = id(&board);
    add_stage(admin, b, json!({ "name": "Twentieth" })).await;
    let before = kanban_state(&app, acme.id).await;
    unprocessable(
        admin
            .post(&stages_path(b), json!({ "name": "Too many" }))
            .await,
    )
    .await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    assert_eq!(listed_stage_ids(admin, b).await.len(), 20);
    app.stop().await;
}

#[actix_rt::test]
async fn stage_names_are_unique_per_board_ignoring_case() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = new_board(admin, "Funil", &["Novo", "Contato"]).await;
    let (b, stages) = (id(&board), stage_ids(&board));
    let before = kanban_state(&app, acme.id).await;
    fail(
        admin.post(&stages_path(b), json!({ "name": "NOVO" })).await,
        409,
        "CONFLICT",
    )
    .await;
    fail(
        admin
            .patch(&stage_path(b, stages[1]), json!({ "name": "novo" }))
            .await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    // Another board may use the name.
    let other = id(&new_board(admin, "Outro", &["A", "B"]).await);
    add_stage(admin, other, json!({ "name": "Novo" })).await;
    app.stop().await;
}

#[actix_rt::test]
async fn patching_a_stage_keeps_a_non_final_stage() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = create_board(
        admin,
        json!({ "name": "Vendas", "stages": [{ "name": "Aberto" }, { "name": "Ganho", "is_final": true }] }),
    )
    .await;
    let (b, stages) = (id(&board), stage_ids(&board));

    let patched = expect(
        admin
            .patch(
                &stage_path(b, stages[0]),
                json!({
                    "name": "Em aberto",
                    "color": "#2563EB",
                    "sla_hours": 8760,
                    "checklist_template": [{ "text": "Qualificar", "is_required": false }],
                    "auto_actions": [],
                }),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(patched["name"], "Em aberto");
    assert_eq!(patched["color"], "#2563EB");
    assert_eq!(patched["sla_hours"], 8760);
    assert_eq!(patched["checklist_template"][0]["text"], "Qualificar");
    uuid(&patched["checklist_template"][0]["key"]);
    assert_eq!(patched["auto_actions"], json!([]));
    let listed = get_board(admin, b).await;
    assert_eq!(listed["stages"][0], patched);

    let before = kanban_state(&app, acme.id).await;
    let last_open = admin
        .patch(&stage_path(b, stages[0]), json!({ "is_final": true }))
        .await;
    unprocessable(last_open).await;
    invalid(
        admin
            .patch(&stage_path(b, stages[0]), json!({ "color": "blue" }))
            .await,
        "color",
    )
    .await;
    invalid(
        admin
            .patch(&stage_path(b, stages[0]), json!({ "sla_hours": 0 }))
            .await,
        "sla_hours",
    )
    .await;
    assert_eq!(kanban_state(&app, acme.id).await, before);

    // With another open stage, the first may become final.
    add_stage(admin, b, json!({ "name": "Negociação", "position": 1 })).await;
    let closed = expect(
        admin
            .patch(&stage_path(b, stages[0]), json!({ "is_final": true }))
            .await,
        200,
    )
    .await;
    assert_eq!(closed["is_final"], true);
    app.stop().await;
}

#[actix_rt::test]
async fn deleting_a_stage_moves_its_cards_in_order_to_a_target_of_the_same_board() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = new_board(admin, "Funil", &["A", "B", "C", "D"]).await;
    let (b, s) = (id(&board), stage_ids(&board));
    let elsewhere = stage_ids(&new_board(admin, "Outro", &["P", "Q"]).await)[0];
    let foreign = foreign_stage(&app, "Globex").await;

    // Created at the top one after another: each stage lists its cards newest first.
    for i in 0..3 {
        new_card(admin, b, s[0], json!({ "title": format!("A{i}") })).await;
    }
    for i in 0..2 {
        new_card(admin, b, s[1], json!({ "title": format!("B{i}") })).await;
    }
    let in_a = stage_order(admin, b, s[0]).await;
    let in_b = stage_order(admin, b, s[1]).await;

    // An empty stage needs no target.
    expect(delete_stage(admin, b, s[3], None).await, 204).await;

    let before = kanban_state(&app, acme.id).await;
    unprocessable(delete_stage(admin, b, s[0], None).await).await;
    for target in [elsewhere, foreign, s[0], Uuid::now_v7()] {
        unprocessable(delete_stage(admin, b, s[0], Some(target)).await).await;
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);

    expect(delete_stage(admin, b, s[0], Some(s[1])).await, 204).await;
    assert_eq!(listed_stage_ids(admin, b).await, [s[1], s[2]]);
    let expected: Vec<Uuid> = in_b.iter().chain(in_a.iter()).copied().collect();
    assert_eq!(
        stage_order(admin, b, s[1]).await,
        expected,
        "at the bottom, in order"
    );
    for card in &in_a {
        let rows = history_rows(&app, *card).await;
        let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["created", "moved"], "{rows:?}");
        assert_eq!(rows[1]["to_stage_id"], json!(s[1]));
        assert_eq!(rows[1]["actor_id"], json!(admin.id));
    }
    for card in &in_b {
        assert_eq!(
            history_rows(&app, *card).await.len(),
            1,
            "B's cards did not move"
        );
    }
    assert_unique_positions(&app, b).await;

    // Two stages left: none may go, empty or not.
    let before = kanban_state(&app, acme.id).await;
    unprocessable(delete_stage(admin, b, s[2], None).await).await;
    unprocessable(delete_stage(admin, b, s[1], Some(s[2])).await).await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn reordering_stages_needs_each_of_the_boards_stages_exactly_once() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = new_board(admin, "Funil", &["A", "B", "C", "D"]).await;
    let (b, s) = (id(&board), stage_ids(&board));
    let elsewhere = stage_ids(&new_board(admin, "Outro", &["P", "Q"]).await)[0];
    let foreign = foreign_stage(&app, "Globex").await;

    let before = kanban_state(&app, acme.id).await;
    let refused: Vec<Vec<Uuid>> = vec![
        vec![],
        vec![s[3], s[2], s[1]],
        vec![s[3], s[2], s[1], s[1]],
        vec![s[3], s[2], s[1], s[0], s[0]],
        vec![s[3], s[2], s[1], elsewhere],
        vec![s[3], s[2], s[1], s[0], elsewhere],
        vec![s[3], s[2], s[1], foreign],
        vec![s[3], s[2], s[1], Uuid::now_v7()],
    ];
    for ids in &refused {
        unprocessable(reorder(admin, b, ids).await).await;
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);

    reordered(admin, b, &[s[3], s[1], s[0], s[2]]).await;
    assert_eq!(stage_names(admin, b).await, ["D", "B", "A", "C"]);
    app.stop().await;
}

#[actix_rt::test]
async fn supervisors_may_reorder_stages_and_agents_may_not() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let supervisor = acme.user("supervisor", "supervisor").await;
    let agent = acme.user("agent", "agent").await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let reversed: Vec<Uuid> = s.iter().rev().copied().collect();

    let before = kanban_state(&app, acme.id).await;
    fail(reorder(&agent, b, &reversed).await, 403, "FORBIDDEN").await;
    assert_eq!(kanban_state(&app, acme.id).await, before);

    reordered(&supervisor, b, &reversed).await;
    assert_eq!(listed_stage_ids(&agent, b).await, reversed);
    app.stop().await;
}
