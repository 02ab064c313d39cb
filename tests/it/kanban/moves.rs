//! Moves (kanban.md, Move): who may move which card on `all` and `scoped` boards, the target
//! stage (one 422 for another board's, another tenant's or a missing stage), a stale `version`,
//! required checklist items before a final stage (`details.open_item_ids`), template items added
//! once per stage, same-stage reorders without history, and placement by neighbour or index.

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

/// An account with a supervisor leading `agent` and `colleague` (team A), a `rival` agent in
/// team B, and the default board.
struct Crew<'a> {
    acme: Tenant<'a>,
    supervisor: Client<'a>,
    agent: Client<'a>,
    colleague: Client<'a>,
    rival: Client<'a>,
    board: Uuid,
    stages: Vec<Uuid>,
}

impl<'a> Crew<'a> {
    async fn new(app: &'a TestApp) -> Self {
        let acme = Tenant::new(app, "Acme").await;
        let supervisor = acme.user("supervisor", "supervisor").await;
        let agent = acme.user("agent", "agent").await;
        let colleague = acme.user("colleague", "agent").await;
        let rival = acme.user("rival", "agent").await;
        acme.team("Time A", &[supervisor.id, agent.id, colleague.id])
            .await;
        acme.team("Time B", &[rival.id]).await;
        let board = acme.default_board().await;
        Self {
            board: id(&board),
            stages: stage_ids(&board),
            acme,
            supervisor,
            agent,
            colleague,
            rival,
        }
    }

    /// A card in the first stage, created by the admin and assigned to `assignee`.
    async fn card(&self, title: &str, assignee: Option<Uuid>) -> Uuid {
        let fields = json!({ "title": title, "assignee_id": assignee });
        id(&new_card(&self.acme.admin, self.board, self.stages[0], fields).await)
    }

    async fn state(&self) -> Value {
        kanban_state(self.acme.app, self.acme.id).await
    }

    async fn scoped(&self) {
        set_visibility(&self.acme.admin, self.board, "scoped").await;
    }
}

/// Asserts a successful stage change: the card is in `to`, one version further, with a fresh
/// `moved_at`, and the history entry (stored) names the actor and both stages.
async fn assert_stage_change(
    app: &TestApp,
    response: &Value,
    before: &Value,
    to: Uuid,
    actor: Uuid,
    action: &str,
) {
    let (card, entry) = (&response["card"], &response["history_entry"]);
    assert_eq!(card["stage_id"], json!(to), "{response}");
    assert_eq!(card["version"], before["version"].as_i64().unwrap() + 1);
    assert!(
        time(&card["moved_at"]) > time(&before["moved_at"]),
        "{response}"
    );
    assert_eq!(card["sla_breached_at"], Value::Null);
    assert_fields(entry, HISTORY_FIELDS);
    assert_eq!(entry["action"], action, "{entry}");
    assert_eq!(entry["card_id"], card["id"]);
    assert_eq!(entry["board_id"], card["board_id"]);
    assert_eq!(entry["from_stage_id"], before["stage_id"]);
    assert_eq!(entry["to_stage_id"], json!(to));
    assert_eq!(entry["actor_id"], json!(actor));
    assert_eq!(entry["automation_id"], Value::Null);
    let stored = history_rows(app, id(card)).await;
    assert_eq!(
        id(stored.last().unwrap()),
        id(entry),
        "the entry is the newest row"
    );
}

#[actix_rt::test]
async fn an_agent_moves_only_their_own_cards() {
    let app = start().await;
    let crew = Crew::new(&app).await;
    let (b, s) = (crew.board, &crew.stages);
    let own = crew.card("Meu", Some(crew.agent.id)).await;
    let theirs = crew.card("Da colega", Some(crew.colleague.id)).await;

    // `all` board: the colleague's card is visible but not the agent's to move.
    let before = crew.state().await;
    let refused = fail(
        move_card(&crew.agent, b, theirs, json!({ "stage_id": s[1] })).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(
        refused["message"],
        "you can only move cards assigned to you"
    );
    assert_eq!(crew.state().await, before);

    let card = get_card(&crew.agent, b, own).await;
    let response = moved(
        &crew.agent,
        b,
        own,
        json!({ "stage_id": s[1], "notes": "Retornou" }),
    )
    .await;
    assert_stage_change(&app, &response, &card, s[1], crew.agent.id, "moved").await;
    assert_eq!(response["history_entry"]["notes"], "Retornou");

    // `scoped` board: the colleague's card does not exist for the agent.
    crew.scoped().await;
    let before = crew.state().await;
    fail(
        move_card(&crew.agent, b, theirs, json!({ "stage_id": s[1] })).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(crew.state().await, before);
    let card = get_card(&crew.agent, b, own).await;
    let response = moved(&crew.agent, b, own, json!({ "stage_id": s[2] })).await;
    assert_stage_change(&app, &response, &card, s[2], crew.agent.id, "moved").await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_supervisor_moves_team_and_unassigned_cards_only() {
    let app = start().await;
    let crew = Crew::new(&app).await;
    let (b, s) = (crew.board, &crew.stages);
    let team_card = crew.card("Do time", Some(crew.agent.id)).await;
    let free = crew.card("Livre", None).await;
    let rivals = crew.card("Do outro time", Some(crew.rival.id)).await;
    let sup = &crew.supervisor;

    for card in [team_card, free] {
        let before = get_card(sup, b, card).await;
        let response = moved(sup, b, card, json!({ "stage_id": s[1] })).await;
        assert_stage_change(&app, &response, &before, s[1], sup.id, "moved").await;
    }
    let before = crew.state().await;
    fail(
        move_card(sup, b, rivals, json!({ "stage_id": s[1] })).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(crew.state().await, before);

    crew.scoped().await;
    let before = crew.state().await;
    fail(
        move_card(sup, b, rivals, json!({ "stage_id": s[1] })).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(crew.state().await, before);
    for card in [team_card, free] {
        moved(sup, b, card, json!({ "stage_id": s[2] })).await;
    }
    app.stop().await;
}

#[actix_rt::test]
async fn a_move_needs_a_stage_of_this_board_and_gives_strangers_one_answer() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let other = new_board(admin, "Outro", &["P", "Q"]).await;
    let elsewhere = stage_ids(&other)[0];
    let foreign = foreign_stage(&app, "Globex").await;
    let card = id(&new_card(admin, b, s[0], json!({})).await);
    let neighbour_elsewhere = id(&new_card(admin, id(&other), elsewhere, json!({})).await);
    let in_first = id(&new_card(admin, b, s[0], json!({})).await);
    let in_second = id(&new_card(admin, b, s[1], json!({})).await);

    let before = kanban_state(&app, acme.id).await;
    let mut bodies = Vec::new();
    for stage in [elsewhere, foreign, Uuid::now_v7()] {
        let body =
            unprocessable(move_card(admin, b, card, json!({ "stage_id": stage })).await).await;
        bodies.push(without_request_id(&body));
    }
    assert_eq!(
        bodies[0], bodies[1],
        "another tenant's stage answers like another board's"
    );
    assert_eq!(bodies[0], bodies[2], "and like a missing one");
    // Neighbours must be in the target stage.
    for body in [
        json!({ "stage_id": s[1], "before_card_id": in_first }),
        json!({ "stage_id": s[1], "after_card_id": neighbour_elsewhere }),
        json!({ "stage_id": s[0], "after_card_id": in_second }),
        json!({ "stage_id": s[1], "before_card_id": Uuid::now_v7() }),
    ] {
        unprocessable(move_card(admin, b, card, body).await).await;
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn a_move_with_a_stale_version_is_409() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let card = id(&new_card(admin, b, s[0], json!({})).await);
    expect(
        admin
            .patch(&card_path(b, card), json!({ "title": "Editado" }))
            .await,
        200,
    )
    .await;

    let before = kanban_state(&app, acme.id).await;
    let stale = fail(
        move_card(admin, b, card, json!({ "stage_id": s[1], "version": 1 })).await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(stale["details"]["current_version"], 2, "{stale}");
    assert_eq!(kanban_state(&app, acme.id).await, before);

    let response = moved(admin, b, card, json!({ "stage_id": s[1], "version": 2 })).await;
    assert_eq!(response["card"]["version"], 3);
    app.stop().await;
}

#[actix_rt::test]
async fn a_final_stage_needs_the_required_items_done() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let done = s[3];
    let card = id(&new_card(admin, b, s[0], json!({})).await);
    let add = |text: &str, required: bool| json!({ "text": text, "is_required": required });
    let required = expect(
        admin
            .post(&checklist_path(b, card), add("Assinar contrato", true))
            .await,
        201,
    )
    .await;
    expect(
        admin
            .post(&checklist_path(b, card), add("Enviar brinde", false))
            .await,
        201,
    )
    .await;

    let before = kanban_state(&app, acme.id).await;
    let refused = unprocessable(move_card(admin, b, card, json!({ "stage_id": done })).await).await;
    assert_eq!(
        refused["details"]["open_item_ids"],
        json!([required["id"]]),
        "{refused}"
    );
    assert_eq!(kanban_state(&app, acme.id).await, before);

    let item_path = checklist_item_path(b, card, id(&required));
    expect(
        admin
            .patch(&item_path, json!({ "is_completed": true }))
            .await,
        200,
    )
    .await;
    let before = get_card(admin, b, card).await;
    let response = moved(admin, b, card, json!({ "stage_id": done })).await;
    assert_stage_change(&app, &response, &before, done, admin.id, "closed").await;
    let before = get_card(admin, b, card).await;
    let response = moved(admin, b, card, json!({ "stage_id": s[1] })).await;
    assert_stage_change(&app, &response, &before, s[1], admin.id, "reopened").await;
    app.stop().await;
}

#[actix_rt::test]
async fn re_entering_a_stage_adds_its_template_items_only_once() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let template = json!({ "checklist_template": [
        { "text": "Agendar visita", "is_required": false },
        { "text": "Registrar fotos", "is_required": false },
    ] });
    let stage = expect(admin.patch(&stage_path(b, s[1]), template).await, 200).await;
    let keys: Vec<Value> = array(&stage["checklist_template"])
        .iter()
        .map(|t| t["key"].clone())
        .collect();
    let checklist = |card: Uuid| async move {
        let shown = get_card(admin, b, card).await;
        array(&shown["checklist"]).clone()
    };

    // Entering adds the items; leaving and coming back adds nothing.
    let outside = id(&new_card(admin, b, s[0], json!({})).await);
    let inside = id(&new_card(admin, b, s[1], json!({})).await);
    assert!(checklist(outside).await.is_empty());
    let entered = moved(admin, b, outside, json!({ "stage_id": s[1] })).await;
    assert_eq!(entered["card"]["checklist_total"], 2);
    for card in [outside, inside] {
        let first = checklist(card).await;
        let first_keys: Vec<Value> = first.iter().map(|i| i["template_key"].clone()).collect();
        assert_eq!(first_keys, keys);
        for stage in [s[2], s[1], s[0], s[1]] {
            moved(admin, b, card, json!({ "stage_id": stage })).await;
        }
        assert_eq!(
            checklist(card).await,
            first,
            "no duplicates, the same items"
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn a_same_stage_reorder_writes_no_history() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    for i in 0..3 {
        new_card(admin, b, s[0], json!({ "title": format!("C{i}") })).await;
    }
    let order = stage_order(admin, b, s[0]).await;
    let top = order[0];
    let before = get_card(admin, b, top).await;
    let history = history_rows(&app, top).await;

    let response = moved(admin, b, top, json!({ "stage_id": s[0], "index": 2 })).await;
    assert_eq!(response["history_entry"], Value::Null);
    assert_eq!(response["card"]["moved_at"], before["moved_at"]);
    assert_eq!(response["card"]["stage_id"], json!(s[0]));
    assert_eq!(
        response["card"]["version"],
        before["version"].as_i64().unwrap() + 1
    );
    assert_eq!(history_rows(&app, top).await, history);
    assert_eq!(stage_order(admin, b, s[0]).await, [order[1], order[2], top]);
    app.stop().await;
}

#[actix_rt::test]
async fn placement_follows_the_neighbour_or_the_index() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    // Created at the top, so the stage reads a, b, c.
    let mut created = Vec::new();
    for title in ["c", "b", "a"] {
        created.push(id(
            &new_card(admin, b, s[1], json!({ "title": title })).await
        ));
    }
    let (c, bb, a) = (created[0], created[1], created[2]);
    let d = id(&new_card(admin, b, s[0], json!({ "title": "d" })).await);
    assert_eq!(stage_order(admin, b, s[1]).await, [a, bb, c]);

    let target = s[1];
    let cases: Vec<(Value, Vec<Uuid>)> = vec![
        (json!({ "before_card_id": bb }), vec![a, d, bb, c]),
        (json!({ "after_card_id": c }), vec![a, bb, c, d]),
        (json!({ "index": 0 }), vec![d, a, bb, c]),
        (json!({ "index": 2 }), vec![a, bb, d, c]),
        (json!({ "index": 99 }), vec![a, bb, c, d]),
        (json!({}), vec![d, a, bb, c]),
        (json!({ "after_card_id": a }), vec![a, d, bb, c]),
        (json!({ "before_card_id": a }), vec![d, a, bb, c]),
        (json!({ "index": 3 }), vec![a, bb, c, d]),
    ];
    for (placement, expected) in cases {
        let mut body = placement.clone();
        body["stage_id"] = json!(target);
        moved(admin, b, d, body).await;
        assert_eq!(
            stage_order(admin, b, target).await,
            expected,
            "after {placement}"
        );
    }
    assert_unique_positions(&app, b).await;

    let before = kanban_state(&app, acme.id).await;
    for placement in [
        json!({ "before_card_id": a, "index": 1 }),
        json!({ "before_card_id": a, "after_card_id": bb }),
        json!({ "after_card_id": a, "index": 0 }),
    ] {
        let mut body = placement;
        body["stage_id"] = json!(target);
        bad_request(move_card(admin, b, d, body).await).await;
    }
    invalid(
        move_card(admin, b, d, json!({ "stage_id": target, "index": -1 })).await,
        "index",
    )
    .await;
    invalid(
        move_card(
            admin,
            b,
            d,
            json!({ "stage_id": target, "notes": "x".repeat(501) }),
        )
        .await,
        "notes",
    )
    .await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}
