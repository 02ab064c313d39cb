//! Checklists: add, edit (text, required, completed, position) and remove items, each change
//! bumping the card's `version` and its counters; field validation; the card's write scope;
//! at most 100 items per card.

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

/// The checklist item fields (docs/kanban-api.md, Resources).
const ITEM_FIELDS: &[&str] = &[
    "id",
    "card_id",
    "text",
    "is_required",
    "is_completed",
    "completed_by",
    "completed_at",
    "position",
    "template_key",
];

/// A card of the default board and the client that writes it.
struct Fixture<'a> {
    client: Client<'a>,
    board: Uuid,
    card: Uuid,
}

impl Fixture<'_> {
    async fn card(&self) -> Value {
        get_card(&self.client, self.board, self.card).await
    }

    /// The item ids of `GET …/checklist`, in order.
    async fn item_ids(&self) -> Vec<Uuid> {
        let page = expect(
            self.client
                .get(&checklist_path(self.board, self.card))
                .await,
            200,
        )
        .await;
        assert_eq!(page["next_cursor"], Value::Null);
        ids(&page)
    }

    async fn add(&self, body: Value) -> Value {
        let path = checklist_path(self.board, self.card);
        expect(self.client.post(&path, body).await, 201).await
    }

    async fn patch(&self, item: Uuid, body: Value) -> Value {
        let path = checklist_item_path(self.board, self.card, item);
        expect(self.client.patch(&path, body).await, 200).await
    }

    /// Asserts the card's version and `(checklist_total, checklist_done, checklist_required_open)`.
    async fn assert_card(&self, version: i64, counts: (i64, i64, i64)) {
        let card = self.card().await;
        assert_eq!(card["version"], version, "{card}");
        assert_eq!(
            (
                card["checklist_total"].as_i64(),
                card["checklist_done"].as_i64(),
                card["checklist_required_open"].as_i64()
            ),
            (Some(counts.0), Some(counts.1), Some(counts.2)),
            "{card}"
        );
    }
}

#[actix_rt::test]
async fn checklist_items_are_added_edited_and_removed_each_bumping_the_version() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let agent = acme.user("agent", "agent").await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let card = id(&new_card(&agent, b, s[0], json!({ "title": "Com tarefas" })).await);
    let f = Fixture {
        client: agent.clone(),
        board: b,
        card,
    };
    assert!(f.item_ids().await.is_empty());
    f.assert_card(1, (0, 0, 0)).await;

    let call = f
        .add(json!({ "text": "Ligar para o cliente", "is_required": true }))
        .await;
    assert_fields(&call, ITEM_FIELDS);
    assert_eq!(call["card_id"], json!(card));
    assert_eq!(call["is_required"], true);
    assert_eq!(call["is_completed"], false);
    assert_eq!(call["completed_by"], Value::Null);
    assert_eq!(call["template_key"], Value::Null);
    f.assert_card(2, (1, 0, 1)).await;
    let offer = f.add(json!({ "text": "Enviar proposta" })).await;
    assert_eq!(offer["is_required"], false, "not required by default");
    let visit = f.add(json!({ "text": "Agendar visita" })).await;
    let (call, offer, visit) = (id(&call), id(&offer), id(&visit));
    assert_eq!(f.item_ids().await, [call, offer, visit], "appended");
    f.assert_card(4, (3, 0, 1)).await;

    let done = f.patch(call, json!({ "is_completed": true })).await;
    assert_eq!(done["is_completed"], true);
    assert_eq!(done["completed_by"], json!(agent.id));
    assert!(done["completed_at"].is_string());
    f.assert_card(5, (3, 1, 0)).await;
    let edited = f
        .patch(
            call,
            json!({ "text": "Ligar de novo", "is_required": false }),
        )
        .await;
    assert_eq!(edited["text"], "Ligar de novo");
    f.assert_card(6, (3, 1, 0)).await;
    f.patch(visit, json!({ "position": 0 })).await;
    assert_eq!(f.item_ids().await, [visit, call, offer]);
    f.assert_card(7, (3, 1, 0)).await;
    let undone = f.patch(call, json!({ "is_completed": false })).await;
    assert_eq!(undone["completed_by"], Value::Null);
    assert_eq!(undone["completed_at"], Value::Null);
    f.assert_card(8, (3, 0, 0)).await;
    expect(
        agent.delete(&checklist_item_path(b, card, offer)).await,
        204,
    )
    .await;
    assert_eq!(f.item_ids().await, [visit, call]);
    f.assert_card(9, (2, 0, 0)).await;
    let shown = f.card().await;
    let embedded: Vec<Uuid> = array(&shown["checklist"]).iter().map(id).collect();
    assert_eq!(
        embedded,
        [visit, call],
        "the card embeds its checklist in order"
    );

    // Refusals change nothing.
    let before = kanban_state(&app, acme.id).await;
    let items_path = checklist_path(b, card);
    let item_path = checklist_item_path(b, card, call);
    invalid(agent.post(&items_path, json!({ "text": "" })).await, "text").await;
    invalid(
        agent
            .post(&items_path, json!({ "text": "x".repeat(201) }))
            .await,
        "text",
    )
    .await;
    invalid(agent.patch(&item_path, json!({ "text": "" })).await, "text").await;
    bad_request(agent.patch(&item_path, json!({ "done": true })).await).await;
    fail(
        agent
            .delete(&checklist_item_path(b, card, Uuid::now_v7()))
            .await,
        404,
        "NOT_FOUND",
    )
    .await;
    // A colleague sees the card (an `all` board) but may not write its checklist.
    let colleague = acme.user("colleague", "agent").await;
    fail(
        colleague
            .post(&items_path, json!({ "text": "Minha" }))
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    fail(
        colleague
            .patch(&item_path, json!({ "is_completed": true }))
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    fail(colleague.delete(&item_path).await, 403, "FORBIDDEN").await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    app.stop().await;
}

#[actix_rt::test]
async fn a_card_holds_at_most_100_checklist_items() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let board = acme.default_board().await;
    let (b, s) = (id(&board), stage_ids(&board));
    let card = id(&new_card(&acme.admin, b, s[0], json!({})).await);
    let f = Fixture {
        client: acme.admin.clone(),
        board: b,
        card,
    };
    for i in 0..100 {
        f.add(json!({ "text": format!("Item {i}") })).await;
    }
    f.assert_card(101, (100, 0, 0)).await;
    let before = kanban_state(&app, acme.id).await;
    let path = checklist_path(b, card);
    unprocessable(acme.admin.post(&path, json!({ "text": "Item 101" })).await).await;
    assert_eq!(kanban_state(&app, acme.id).await, before);
    assert_eq!(
        count(
            &app,
            &format!("card_checklist_items WHERE card_id = '{card}'")
        )
        .await,
        100
    );
    app.stop().await;
}
