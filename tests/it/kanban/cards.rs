//! Cards: create (top of the stage, the stage's checklist template, a `created` row, the title
//! from the contact, an agent's card assigned to the agent), field validation, one card per
//! Chatwoot conversation, PATCH with `version` (409 with `details.current_version`), assignee
//! rules per role, DELETE for the account scope only, and `scoped` boards hiding cards outside
//! the reader's scope.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

/// `PATCH /boards/{b}/cards/{c}`.
async fn patch_card(
    client: &Client<'_>,
    board: Uuid,
    card: Uuid,
    body: Value,
) -> reqwest::Response {
    client.patch(&card_path(board, card), body).await
}

/// The ids of the cards a client lists on a board (one page).
async fn listed_ids(client: &Client<'_>, board: Uuid) -> BTreeSet<Uuid> {
    id_set(items(
        &expect(client.get(&cards_path(board)).await, 200).await,
    ))
}

/// The actions of a card's history, oldest first.
async fn actions(app: &TestApp, card: Uuid) -> Vec<String> {
    history_rows(app, card)
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_rt::test]
async fn a_card_is_created_at_the_top_with_the_stage_template_and_a_created_row() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let stage = expect(
        admin
            .patch(
                &stage_path(b, s[0]),
                json!({ "checklist_template": [
                    { "text": "Confirmar endereço", "is_required": true },
                    { "text": "Enviar fotos", "is_required": false },
                ] }),
            )
            .await,
        200,
    )
    .await;
    let keys: Vec<Value> = array(&stage["checklist_template"])
        .iter()
        .map(|t| t["key"].clone())
        .collect();

    let first = new_card(
        admin,
        b,
        s[0],
        json!({ "title": "Instalação", "value": "1500.00", "priority": "high", "tags": ["vip"],
                "custom_fields": { "origem": "site" }, "notes": "Ligar de manhã" }),
    )
    .await;
    assert_fields(&first, CARD_FIELDS);
    assert_eq!(first["title"], "Instalação");
    assert_eq!(first["board_id"], json!(b));
    assert_eq!(first["stage_id"], json!(s[0]));
    assert_eq!(first["account_id"], json!(acme.id));
    assert_eq!(first["value"], "1500.00");
    assert_eq!(first["priority"], "high");
    assert_eq!(first["tags"], json!(["vip"]));
    assert_eq!(first["custom_fields"], json!({ "origem": "site" }));
    assert_eq!(first["version"], 1);
    assert_eq!(
        first["assignee_id"],
        Value::Null,
        "an admin's card is not auto-assigned"
    );
    assert_eq!(first["created_by"], json!(admin.id));
    assert_eq!(first["sla_breached_at"], Value::Null);
    assert!(first["moved_at"].is_string());
    assert_eq!(
        (
            &first["checklist_total"],
            &first["checklist_done"],
            &first["checklist_required_open"]
        ),
        (&json!(2), &json!(0), &json!(1))
    );

    let second = new_card(admin, b, s[0], json!({ "title": "Segundo" })).await;
    assert_eq!(second["priority"], "medium", "the default priority");
    assert!(second["position"].as_i64() < first["position"].as_i64());
    assert_eq!(stage_order(admin, b, s[0]).await, [id(&second), id(&first)]);

    let shown = get_card(admin, b, id(&first)).await;
    let checklist = array(&shown["checklist"]);
    let template_keys: Vec<Value> = checklist
        .iter()
        .map(|i| i["template_key"].clone())
        .collect();
    assert_eq!(template_keys, keys);
    assert_eq!(checklist[0]["text"], "Confirmar endereço");
    assert_eq!(checklist[0]["is_required"], true);
    assert!(checklist.iter().all(|i| i["is_completed"] == false));

    let history = card_history(admin, b, id(&first)).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_fields(&history[0], HISTORY_FIELDS);
    assert_eq!(history[0]["action"], "created");
    assert_eq!(history[0]["to_stage_id"], json!(s[0]));
    assert_eq!(history[0]["from_stage_id"], Value::Null);
    assert_eq!(history[0]["actor_id"], json!(admin.id));

    // The title defaults to the contact's name; a stage without a template adds no items.
    let contact = new_card(admin, b, s[1], json!({ "contact_name": "Maria Silva" })).await;
    assert_eq!(contact["title"], "Maria Silva");
    assert_eq!(contact["checklist_total"], 0);
    app.stop().await;
}

#[actix_rt::test]
async fn an_agents_card_is_assigned_to_the_agent() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let agent = acme.user("agent", "agent").await;
    let colleague = acme.user("colleague", "agent").await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let card = new_card(&agent, b, s[0], json!({ "title": "Meu lead" })).await;
    assert_eq!(card["assignee_id"], json!(agent.id));
    assert_eq!(card["assignee_name"], "Seeded User");
    assert_eq!(card["created_by"], json!(agent.id));

    let before = kanban_state(&app, acme.id).await;
    let body = json!({ "stage_id": s[0], "title": "Para outro", "assignee_id": colleague.id });
    fail(agent.post(&cards_path(b), body).await, 403, "FORBIDDEN").await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn card_fields_are_validated() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let elsewhere = stage_ids(&new_board(admin, "Outro", &["P", "Q"]).await)[0];
    let foreign = foreign_stage(&app, "Globex").await;
    let before = kanban_state(&app, acme.id).await;

    let card = |fields: Value| {
        let mut body = json!({ "stage_id": s[0], "title": "Válido" });
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let tags: Vec<String> = (0..21).map(|i| format!("tag{i}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "stage_id": s[0] }), "title"),
        (json!({ "title": "Sem etapa" }), "stage_id"),
        (card(json!({ "title": "" })), "title"),
        (card(json!({ "title": "x".repeat(201) })), "title"),
        (card(json!({ "priority": "huge" })), "priority"),
        (card(json!({ "value": "-1.00" })), "value"),
        (card(json!({ "value": "abc" })), "value"),
        (card(json!({ "tags": tags })), "tags"),
        (card(json!({ "tags": [""] })), "tags"),
        (card(json!({ "tags": ["x".repeat(51)] })), "tags"),
        (card(json!({ "notes": "x".repeat(10_001) })), "notes"),
        (card(json!({ "due_date": "amanhã" })), "due_date"),
        (card(json!({ "custom_fields": [1, 2] })), "custom_fields"),
    ];
    for (body, field) in cases {
        invalid(admin.post(&cards_path(b), body).await, field).await;
    }
    bad_request(
        admin
            .post(&cards_path(b), card(json!({ "titel": "typo" })))
            .await,
    )
    .await;
    for stage in [elsewhere, foreign, Uuid::now_v7()] {
        let body = json!({ "stage_id": stage, "title": "Fora" });
        unprocessable(admin.post(&cards_path(b), body).await).await;
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn a_conversation_has_at_most_one_card() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let other = new_board(admin, "Suporte", &["Aberto", "Fechado"]).await;
    let first = new_card(
        admin,
        b,
        s[0],
        json!({ "chatwoot_conversation_id": 4242, "title": "Conversa 4242" }),
    )
    .await;
    assert_eq!(first["chatwoot_conversation_id"], 4242);

    let before = kanban_state(&app, acme.id).await;
    for (board, stage) in [(b, s[1]), (id(&other), stage_ids(&other)[0])] {
        let body =
            json!({ "stage_id": stage, "chatwoot_conversation_id": 4242, "title": "De novo" });
        let refused = fail(admin.post(&cards_path(board), body).await, 409, "CONFLICT").await;
        assert_eq!(refused["details"]["card_id"], first["id"], "{refused}");
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);
    // Another conversation is fine.
    new_card(
        admin,
        b,
        s[0],
        json!({ "chatwoot_conversation_id": 4243, "title": "Outra" }),
    )
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_stale_version_is_409_and_patches_write_history() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let c = id(&new_card(admin, b, s[0], json!({ "title": "Original" })).await);

    let patched = expect(
        patch_card(admin, b, c, json!({ "title": "Renomeado", "version": 1 })).await,
        200,
    )
    .await;
    assert_eq!(patched["title"], "Renomeado");
    assert_eq!(patched["version"], 2);

    let before = kanban_state(&app, acme.id).await;
    let stale = fail(
        patch_card(admin, b, c, json!({ "notes": "perdido", "version": 1 })).await,
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(stale["details"]["current_version"], 2, "{stale}");
    invalid(
        patch_card(admin, b, c, json!({ "priority": "huge" })).await,
        "priority",
    )
    .await;
    bad_request(patch_card(admin, b, c, json!({ "position": 5 })).await).await;
    assert_eq!(kanban_state(&app, acme.id).await, before);

    // Without a version the write applies; custom fields are replaced whole.
    let patched = expect(
        patch_card(admin, b, c, json!({ "custom_fields": { "a": 1, "b": 2 } })).await,
        200,
    )
    .await;
    assert_eq!(patched["version"], 3);
    let patched = expect(
        patch_card(
            admin,
            b,
            c,
            json!({ "custom_fields": { "c": 3 }, "value": "99.90", "due_date": "2030-01-02T03:04:05Z",
                    "tags": ["retorno", "vip"], "contact_phone": "+55 11 99999-0000", "version": 3 }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(patched["custom_fields"], json!({ "c": 3 }));
    assert_eq!(patched["value"], "99.90");
    assert_eq!(patched["due_date"], "2030-01-02T03:04:05Z");
    assert_eq!(patched["version"], 4);
    assert_eq!(get_card(admin, b, c).await["version"], 4);
    assert_eq!(
        actions(&app, c).await,
        ["created", "updated", "updated", "updated"]
    );
    app.stop().await;
}

#[actix_rt::test]
async fn assignees_follow_the_callers_role() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let supervisor = acme.user("supervisor", "supervisor").await;
    let agent = acme.user("agent", "agent").await;
    let outsider = acme.user("outsider", "agent").await;
    acme.team("Time A", &[supervisor.id, agent.id]).await;
    let inactive = app.seed_user(acme.id, "gone@acme.test", "agent").await;
    app.sql(&format!(
        "UPDATE users SET status = 'inactive', deactivated_at = now() WHERE id = '{inactive}'"
    ))
    .await;
    let stranger = app
        .seed_user(app.seed_account("Globex").await, "x@globex.test", "agent")
        .await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let mut unassigned = Vec::new();
    for i in 0..6 {
        unassigned.push(id(&new_card(
            admin,
            b,
            s[0],
            json!({ "title": format!("Livre {i}") }),
        )
        .await));
    }
    let assign = |who: Uuid| json!({ "assignee_id": who });

    // Allowed: supervisor → a team member or self; admin → any active user; agent → claim.
    let allowed: Vec<(&Client<'_>, Uuid, Uuid)> = vec![
        (&supervisor, unassigned[0], agent.id),
        (&supervisor, unassigned[1], supervisor.id),
        (admin, unassigned[2], outsider.id),
        (&agent, unassigned[3], agent.id),
    ];
    for (client, card, who) in &allowed {
        let body = expect(patch_card(client, b, *card, assign(*who)).await, 200).await;
        assert_eq!(body["assignee_id"], json!(who));
        assert!(
            actions(&app, *card).await.contains(&"assigned".to_owned()),
            "an `assigned` row"
        );
    }

    let before = kanban_state(&app, acme.id).await;
    // Active users outside the caller's reach: 403.
    let forbidden: Vec<(&Client<'_>, Uuid, Value)> = vec![
        (&supervisor, unassigned[4], assign(outsider.id)),
        (&agent, unassigned[4], assign(outsider.id)),
        (&agent, unassigned[3], assign(outsider.id)),
        (&agent, unassigned[2], assign(agent.id)),
        (&agent, unassigned[2], json!({ "title": "Não é meu" })),
    ];
    for (client, card, body) in forbidden {
        fail(patch_card(client, b, card, body).await, 403, "FORBIDDEN").await;
    }
    // Anyone who is not an active user of the tenant: 400.
    for client in [admin, &supervisor] {
        for who in [inactive, stranger, Uuid::now_v7()] {
            invalid(
                patch_card(client, b, unassigned[5], assign(who)).await,
                "assignee_id",
            )
            .await;
        }
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn only_the_account_scope_deletes_cards() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let supervisor = acme.user("supervisor", "supervisor").await;
    let agent = acme.user("agent", "agent").await;
    acme.team("Time A", &[supervisor.id, agent.id]).await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let c = id(&new_card(&agent, b, s[0], json!({ "title": "Meu" })).await);
    expect(
        agent
            .post(&checklist_path(b, c), json!({ "text": "Ligar" }))
            .await,
        201,
    )
    .await;

    let before = kanban_state(&app, acme.id).await;
    for client in [&agent, &supervisor] {
        fail(client.delete(&card_path(b, c)).await, 403, "FORBIDDEN").await;
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);

    expect(acme.admin.delete(&card_path(b, c)).await, 204).await;
    fail(acme.admin.get(&card_path(b, c)).await, 404, "NOT_FOUND").await;
    fail(agent.get(&card_path(b, c)).await, 404, "NOT_FOUND").await;
    assert_eq!(
        count(&app, &format!("card_history WHERE card_id = '{c}'")).await,
        0
    );
    assert_eq!(
        count(&app, &format!("card_checklist_items WHERE card_id = '{c}'")).await,
        0
    );
    app.stop().await;
}

#[actix_rt::test]
async fn a_scoped_board_hides_cards_outside_the_readers_scope() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let admin = &acme.admin;
    let supervisor = acme.user("supervisor", "supervisor").await;
    let agent = acme.user("agent", "agent").await;
    let colleague = acme.user("colleague", "agent").await;
    acme.team("Time A", &[supervisor.id, agent.id]).await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let own = id(&new_card(&agent, b, s[0], json!({ "title": "Do agente" })).await);
    let theirs = id(&new_card(&colleague, b, s[0], json!({ "title": "Da colega" })).await);
    let free = id(&new_card(admin, b, s[0], json!({ "title": "Livre" })).await);
    let all: BTreeSet<Uuid> = [own, theirs, free].into();

    // `all` (the default): everyone reads every card.
    for client in [admin, &supervisor, &agent, &colleague] {
        assert_eq!(listed_ids(client, b).await, all);
    }
    get_card(&agent, b, theirs).await;

    expect(
        admin
            .patch(
                &board_path(b),
                json!({ "settings": { "card_visibility": "scoped" } }),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(listed_ids(admin, b).await, all);
    assert_eq!(listed_ids(&supervisor, b).await, [own, free].into());
    assert_eq!(listed_ids(&agent, b).await, [own].into());
    assert_eq!(listed_ids(&colleague, b).await, [theirs].into());
    get_card(&agent, b, own).await;
    for (client, hidden) in [(&agent, theirs), (&agent, free), (&supervisor, theirs)] {
        for path in [
            card_path(b, hidden),
            history_path(b, hidden),
            checklist_path(b, hidden),
            time_in_stage_path(b, hidden),
        ] {
            fail(client.get(&path).await, 404, "NOT_FOUND").await;
        }
    }
    app.stop().await;
}
