//! Boards: the default board every account gets (pt-BR and other locales), concurrent "make
//! default" requests, the list order, create validation (2–20 stages, unique stage names
//! ignoring case, per-field 400s, a non-final stage), the `max_boards` quota, the `kanban`
//! flag, who may write, PATCH (`is_default: false` refused) and DELETE (not the default; cascades).

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

const PT_BR_BOARD: (&str, [&str; 4]) = (
    "Funil principal",
    ["Novo", "Em andamento", "Aguardando", "Resolvido"],
);
const OTHER_BOARD: (&str, [&str; 4]) = (
    "Main pipeline",
    ["New", "In progress", "Waiting", "Resolved"],
);

/// Asserts a board (with stages) is kanban.md's default board with these names: a `pipeline`,
/// four stages in order with dense positions, only the last final, `#RRGGBB` colours.
fn assert_default_board(board: &Value, (name, stages): (&str, [&str; 4])) {
    assert_eq!(board["name"], name, "{board}");
    assert_eq!(board["type"], "pipeline", "{board}");
    assert_eq!(board["is_default"], true, "{board}");
    let listed = array(&board["stages"]);
    let names: Vec<&str> = listed.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, stages, "{board}");
    let finals: Vec<bool> = listed.iter().map(|s| s["is_final"] == true).collect();
    assert_eq!(finals, [false, false, false, true], "{board}");
    let positions: Vec<i64> = listed
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [0, 1, 2, 3], "{board}");
    for stage in listed {
        let color = stage["color"].as_str().unwrap_or_default();
        assert!(
            color.len() == 7
                && color.starts_with('#')
                && color[1..].chars().all(|c| c.is_ascii_hexdigit()),
            "colour of {stage}"
        );
        assert_eq!(stage["board_id"], board["id"]);
    }
}

/// The account's only board as its list item and in full, checked against `expected`.
async fn assert_only_default_board(client: &Client<'_>, expected: (&str, [&str; 4])) {
    let boards = list_boards(client).await;
    assert_eq!(boards.len(), 1, "{boards:?}");
    let item = &boards[0];
    assert_eq!(item["stages_count"], 4, "{item}");
    assert_eq!(item["cards_count"], 0, "{item}");
    assert!(item["seq"].is_i64(), "{item}");
    assert!(
        item.get("stages").is_none(),
        "list items carry counts: {item}"
    );
    let board = get_board(client, id(item)).await;
    assert_default_board(&board, expected);
    assert_eq!(
        listed_stage_ids(client, id(&board)).await,
        stage_ids(&board)
    );
}

#[actix_rt::test]
async fn a_new_account_has_a_portuguese_default_board_with_four_stages() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let locale = value(
        &app,
        &format!("SELECT locale AS v FROM accounts WHERE id = '{}'", acme.id),
    )
    .await;
    assert_eq!(locale, "pt-BR", "seeded accounts take the default locale");
    assert_only_default_board(&acme.admin, PT_BR_BOARD).await;
    // Everyone reads boards.
    let agent = acme.user("agent", "agent").await;
    assert_only_default_board(&agent, PT_BR_BOARD).await;

    // An account created through the API without a locale gets the same board.
    let root = root(&app).await;
    let created = expect(
        app.http
            .post(app.url("/api/v1/accounts"))
            .bearer_auth(&root.token)
            .json(&json!({ "name": "Via API" }))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(created["locale"], "pt-BR");
    assert_only_default_board(&root.acting_in(id(&created)), PT_BR_BOARD).await;
    app.stop().await;
}

#[actix_rt::test]
async fn other_locales_get_an_english_default_board() {
    let app = start().await;
    let root = root(&app).await;
    let created = expect(
        app.http
            .post(app.url("/api/v1/accounts"))
            .bearer_auth(&root.token)
            .json(&json!({ "name": "Globex", "locale": "en-US" }))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(created["locale"], "en-US");
    assert_only_default_board(&root.acting_in(id(&created)), OTHER_BOARD).await;

    // The trigger serves any insert, with any non-pt-BR locale.
    let spanish = Uuid::now_v7();
    app.sql(&format!(
        "INSERT INTO accounts (id, name, locale) VALUES ('{spanish}', 'Hola', 'es')"
    ))
    .await;
    assert_only_default_board(&root.acting_in(spanish), OTHER_BOARD).await;
    app.stop().await;
}

#[actix_rt::test]
async fn concurrent_make_default_requests_leave_exactly_one_default() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    for round in 0..3 {
        let first = id(&new_board(admin, &format!("First {round}"), &["A", "B"]).await);
        let second = id(&new_board(admin, &format!("Second {round}"), &["A", "B"]).await);
        let make_default = json!({ "is_default": true });
        let (first_path, second_path) = (board_path(first), board_path(second));
        let (a, b) = tokio::join!(
            admin.patch(&first_path, make_default.clone()),
            admin.patch(&second_path, make_default.clone()),
        );
        let mut winners = Vec::new();
        for (board, response) in [(first, a), (second, b)] {
            if response.status() == 200 {
                winners.push(board);
                expect(response, 200).await;
            } else {
                fail(response, 409, "CONFLICT").await;
            }
        }
        assert!(
            !winners.is_empty(),
            "round {round}: neither request succeeded"
        );
        let defaults = app
            .rows(&format!(
                "SELECT id FROM boards WHERE account_id = '{}' AND is_default",
                acme.id
            ))
            .await;
        assert_eq!(defaults.len(), 1, "round {round}: {defaults:?}");
        let default = id(&defaults[0]);
        assert!(
            winners.contains(&default),
            "round {round}: {default} did not win"
        );
        let listed = list_boards(admin).await;
        assert_eq!(id(&listed[0]), default, "the default is listed first");
        assert_eq!(
            listed.iter().filter(|b| b["is_default"] == true).count(),
            1,
            "{listed:?}"
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn boards_list_the_default_first_then_by_name_and_creating_a_default_moves_the_flag() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let original = id(&acme.default_board().await);
    let zeta = new_board(admin, "Zeta", &["One", "Two", "Three"]).await;
    assert_eq!(zeta["is_default"], false);
    assert_eq!(array(&zeta["stages"]).len(), 3);
    let alpha = new_board(admin, "Alpha", &["One", "Two"]).await;
    let card_stage = stage_ids(&alpha)[1];
    new_card(admin, id(&alpha), card_stage, json!({})).await;
    let names = |boards: &[Value]| -> Vec<String> {
        boards
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = list_boards(admin).await;
    assert_eq!(names(&listed), ["Funil principal", "Alpha", "Zeta"]);
    assert_eq!(listed[1]["stages_count"], 2);
    assert_eq!(listed[1]["cards_count"], 1);

    let made = create_board(
        admin,
        json!({ "name": "Beta", "is_default": true, "stages": stage_specs(&["X", "Y"]) }),
    )
    .await;
    assert_eq!(made["is_default"], true);
    let listed = list_boards(admin).await;
    assert_eq!(names(&listed), ["Beta", "Alpha", "Funil principal", "Zeta"]);
    assert_eq!(get_board(admin, original).await["is_default"], false);
    app.stop().await;
}

#[actix_rt::test]
async fn a_board_has_between_2_and_20_stages() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let before = kanban_state(&app, acme.id).await;
    for count in [0, 1, 21] {
        let body = json!({ "name": format!("{count} stages"), "stages": numbered_stages(count) });
        unprocessable(admin.post(&boards_path(), body).await).await;
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);

    for count in [2, 20] {
        let body = json!({ "name": format!("{count} stages"), "stages": numbered_stages(count) });
        let board = create_board(admin, body).await;
        let stages = array(&board["stages"]);
        let names: Vec<String> = stages
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (1..=count).map(|i| format!("Stage {i}")).collect();
        assert_eq!(names, expected, "stages in array order");
        assert_eq!(listed_stage_ids(admin, id(&board)).await, stage_ids(&board));
        assert!(
            stages.iter().all(|s| s["color"] == "#6B7280"),
            "default colour"
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn duplicate_stage_names_ignoring_case_are_409() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let before = kanban_state(&app, acme.id).await;
    let body =
        json!({ "name": "Dupes", "stages": stage_specs(&["Proposta", "Contato", "PROPOSTA"]) });
    fail(acme.admin.post(&boards_path(), body).await, 409, "CONFLICT").await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn board_fields_are_validated_per_field() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let before = kanban_state(&app, acme.id).await;
    let with_stage =
        |stage: Value| json!({ "name": "Bad", "stages": [stage, { "name": "Other" }] });
    let long = |n: usize| "x".repeat(n);
    let template = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({ "text": format!("Item {i}"), "is_required": false }))
            .collect()
    };
    let cases: Vec<(Value, &str)> = vec![
        (with_stage(json!({ "name": "A", "color": "red" })), "color"),
        (
            with_stage(json!({ "name": "A", "color": "#12345" })),
            "color",
        ),
        (
            with_stage(json!({ "name": "A", "sla_hours": 0 })),
            "sla_hours",
        ),
        (
            with_stage(json!({ "name": "A", "sla_hours": 8761 })),
            "sla_hours",
        ),
        (with_stage(json!({ "name": "" })), "name"),
        (with_stage(json!({ "name": long(51) })), "name"),
        (
            with_stage(json!({ "name": "A",
                "checklist_template": [{ "text": "", "is_required": false }] })),
            "text",
        ),
        (
            with_stage(json!({ "name": "A", "checklist_template": template(51) })),
            "checklist_template",
        ),
        (
            json!({ "name": "", "stages": stage_specs(&["A", "B"]) }),
            "name",
        ),
        (
            json!({ "name": long(101), "stages": stage_specs(&["A", "B"]) }),
            "name",
        ),
        (
            json!({ "name": "A", "description": long(501), "stages": stage_specs(&["A", "B"]) }),
            "description",
        ),
        (
            json!({ "name": "A", "type": "kanban", "stages": stage_specs(&["A", "B"]) }),
            "type",
        ),
        (
            json!({ "name": "A", "settings": { "card_visibility": "everyone" },
                    "stages": stage_specs(&["A", "B"]) }),
            "card_visibility",
        ),
    ];
    for (body, field) in cases {
        invalid(acme.admin.post(&boards_path(), body).await, field).await;
    }
    // Unknown fields are rejected too.
    let typo =
        json!({ "name": "A", "stages": [{ "name": "A", "colour": "#FF0000" }, { "name": "B" }] });
    bad_request(acme.admin.post(&boards_path(), typo).await).await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn a_board_needs_a_non_final_stage() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let before = kanban_state(&app, acme.id).await;
    let body = json!({ "name": "Only ends", "stages": [
        { "name": "Won", "is_final": true },
        { "name": "Lost", "is_final": true },
    ] });
    unprocessable(acme.admin.post(&boards_path(), body).await).await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    // Several final stages beside a non-final one are fine.
    let body = json!({ "name": "Sales", "stages": [
        { "name": "Open" },
        { "name": "Won", "is_final": true },
        { "name": "Lost", "is_final": true },
    ] });
    let board = create_board(&acme.admin, body).await;
    let finals: Vec<bool> = array(&board["stages"])
        .iter()
        .map(|s| s["is_final"] == true)
        .collect();
    assert_eq!(finals, [false, true, true]);
    app.stop().await;
}

#[actix_rt::test]
async fn the_free_plan_allows_one_board() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let before = kanban_state(&app, acme.id).await;
    let body = json!({ "name": "Second", "stages": stage_specs(&["A", "B"]) });
    let refused = fail(
        acme.admin.post(&boards_path(), body.clone()).await,
        403,
        "QUOTA_EXCEEDED",
    )
    .await;
    assert_eq!(
        refused["details"],
        json!({ "limit": "max_boards", "max": 1, "current": 1, "plan": "free" }),
        "{refused}"
    );
    assert_eq!(kanban_state(&app, acme.id).await, before);
    // A higher limit admits it.
    acme.entitlements(json!({ "overrides": { "max_boards": 2 } }))
        .await;
    create_board(&acme.admin, body).await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_kanban_flag_off_disables_every_route() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let agent = acme.user("agent", "agent").await;
    let board = acme.default_board().await;
    let (b, stages) = (id(&board), stage_ids(&board));
    let card = new_card(
        &acme.admin,
        b,
        stages[0],
        json!({ "assignee_id": agent.id }),
    )
    .await;
    let c = id(&card);
    let shown = get_card(&acme.admin, b, c).await;
    acme.entitlements(json!({ "overrides": { "kanban": false } }))
        .await;
    let before = kanban_state(&app, acme.id).await;

    let reads = [
        boards_path(),
        board_path(b),
        stages_path(b),
        cards_path(b),
        card_path(b, c),
        history_path(b, c),
        checklist_path(b, c),
        time_in_stage_path(b, c),
        metrics_path(b),
        sla_breaches_path(b),
    ];
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            boards_path(),
            Some(json!({ "name": "New", "stages": stage_specs(&["A", "B"]) })),
        ),
        (
            Method::PATCH,
            board_path(b),
            Some(json!({ "name": "Renamed" })),
        ),
        (
            Method::POST,
            stages_path(b),
            Some(json!({ "name": "Extra" })),
        ),
        (
            Method::POST,
            reorder_path(b),
            Some(json!({ "stage_ids": stages.iter().rev().collect::<Vec<_>>() })),
        ),
        (
            Method::POST,
            cards_path(b),
            Some(json!({ "stage_id": stages[0], "title": "New" })),
        ),
        (
            Method::PATCH,
            card_path(b, c),
            Some(json!({ "title": "Renamed" })),
        ),
        (
            Method::POST,
            move_path(b, c),
            Some(json!({ "stage_id": stages[1] })),
        ),
        (
            Method::POST,
            checklist_path(b, c),
            Some(json!({ "text": "Call back" })),
        ),
        (Method::DELETE, card_path(b, c), None),
        (Method::DELETE, board_path(b), None),
    ];
    let disabled = |response: reqwest::Response| async move {
        let body = fail(response, 403, "FEATURE_DISABLED").await;
        assert_eq!(body["details"]["feature"], "kanban", "{body}");
    };
    for path in &reads {
        for client in [&acme.admin, &agent] {
            disabled(client.get(path).await).await;
        }
    }
    for (method, path, body) in &writes {
        disabled(acme.admin.call(method.clone(), path, body.as_ref()).await).await;
    }
    // The agent's own card is refused the same way.
    disabled(move_card(&agent, b, c, json!({ "stage_id": stages[1] })).await).await;
    assert_eq!(kanban_state(&app, acme.id).await, before);

    // The data comes back with the flag.
    acme.entitlements(json!({ "overrides": { "kanban": null } }))
        .await;
    assert_eq!(get_card(&acme.admin, b, c).await, shown);
    app.stop().await;
}

#[actix_rt::test]
async fn only_admins_write_boards_and_stages_while_everyone_reads_them() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let supervisor = acme.user("supervisor", "supervisor").await;
    let agent = acme.user("agent", "agent").await;
    let board = acme.default_board().await;
    let (b, stages) = (id(&board), stage_ids(&board));
    let before = kanban_state(&app, acme.id).await;
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            boards_path(),
            Some(json!({ "name": "New", "stages": stage_specs(&["A", "B"]) })),
        ),
        (
            Method::PATCH,
            board_path(b),
            Some(json!({ "name": "Renamed" })),
        ),
        (Method::DELETE, board_path(b), None),
        (
            Method::POST,
            stages_path(b),
            Some(json!({ "name": "Extra" })),
        ),
        (
            Method::PATCH,
            stage_path(b, stages[0]),
            Some(json!({ "name": "Renamed" })),
        ),
        (Method::DELETE, stage_path(b, stages[0]), None),
    ];
    for client in [&supervisor, &agent] {
        for (method, path, body) in &writes {
            fail(
                client.call(method.clone(), path, body.as_ref()).await,
                403,
                "FORBIDDEN",
            )
            .await;
        }
        assert_eq!(get_board(client, b).await, board);
        assert_eq!(listed_stage_ids(client, b).await, stages);
    }
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn patching_a_board_edits_its_fields_but_never_unsets_the_default() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let default = id(&acme.default_board().await);
    let before = kanban_state(&app, acme.id).await;
    let refused = admin
        .patch(&board_path(default), json!({ "is_default": false }))
        .await;
    unprocessable(refused).await;
    invalid(
        admin
            .patch(&board_path(default), json!({ "name": "" }))
            .await,
        "name",
    )
    .await;
    invalid(
        admin
            .patch(&board_path(default), json!({ "type": "kanban" }))
            .await,
        "type",
    )
    .await;
    assert_eq!(kanban_state(&app, acme.id).await, before);

    let changes = json!({
        "name": "Vendas",
        "description": "Pipeline comercial",
        "type": "sales",
        "settings": { "card_visibility": "scoped" },
    });
    let patched = expect(admin.patch(&board_path(default), changes).await, 200).await;
    assert_eq!(patched["name"], "Vendas");
    assert_eq!(patched["description"], "Pipeline comercial");
    assert_eq!(patched["type"], "sales");
    assert_eq!(patched["settings"]["card_visibility"], "scoped");
    assert_eq!(patched["is_default"], true);
    assert_eq!(
        array(&patched["stages"]).len(),
        4,
        "PATCH answers with the stages"
    );
    assert_eq!(get_board(admin, default).await, patched);

    // `is_default: true` on another board moves the flag.
    let other = id(&new_board(admin, "Suporte", &["Aberto", "Fechado"]).await);
    let moved_flag = expect(
        admin
            .patch(&board_path(other), json!({ "is_default": true }))
            .await,
        200,
    )
    .await;
    assert_eq!(moved_flag["is_default"], true);
    assert_eq!(get_board(admin, default).await["is_default"], false);
    app.stop().await;
}

#[actix_rt::test]
async fn deleting_a_board_cascades_but_the_default_board_stays() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Acme").await;
    let admin = &acme.admin;
    let default = acme.default_board().await;
    let doomed = new_board(admin, "Temporário", &["A", "B"]).await;
    let d = id(&doomed);
    let mut card_ids = Vec::new();
    for stage in stage_ids(&doomed) {
        let card = new_card(admin, d, stage, json!({})).await;
        expect(
            admin
                .post(&checklist_path(d, id(&card)), json!({ "text": "Ligar" }))
                .await,
            201,
        )
        .await;
        card_ids.push(format!("'{}'", id(&card)));
    }
    let before = kanban_state(&app, acme.id).await;
    unprocessable(admin.delete(&board_path(id(&default))).await).await;
    assert_eq!(kanban_state(&app, acme.id).await, before);

    expect(admin.delete(&board_path(d)).await, 204).await;
    fail(admin.get(&board_path(d)).await, 404, "NOT_FOUND").await;
    let card_list = card_ids.join(",");
    for from_where in [
        format!("stages WHERE board_id = '{d}'"),
        format!("cards WHERE board_id = '{d}'"),
        format!("card_history WHERE board_id = '{d}'"),
        format!("card_checklist_items WHERE card_id IN ({card_list})"),
    ] {
        assert_eq!(count(&app, &from_where).await, 0, "{from_where}");
    }
    let listed = list_boards(admin).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(id(&listed[0]), id(&default));
    app.stop().await;
}
