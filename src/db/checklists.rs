//! Card checklist items: the `card_checklist_items` table (kanban.md, ≤ 100 per card).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::boards::Stage;
use super::schema::card_checklist_items as items;

/// A checklist item.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = items)]
pub struct ChecklistItem {
    /// Id.
    pub id: Uuid,
    /// Account.
    #[serde(skip)]
    pub account_id: Uuid,
    /// Card.
    pub card_id: Uuid,
    /// Text.
    pub text: String,
    /// Blocks a move into a final stage while open.
    pub is_required: bool,
    /// Done.
    pub is_completed: bool,
    /// Who completed it.
    pub completed_by: Option<Uuid>,
    /// When.
    pub completed_at: Option<DateTime<Utc>>,
    /// Order.
    pub position: i32,
    /// The stage template item it came from.
    pub template_key: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A card's items in order.
pub async fn of_card(
    conn: &mut AsyncPgConnection,
    card_id: Uuid,
) -> QueryResult<Vec<ChecklistItem>> {
    items::table
        .filter(items::card_id.eq(card_id))
        .order((items::position.asc(), items::id.asc()))
        .select(ChecklistItem::as_select())
        .load(conn)
        .await
}

/// Ids of the card's required items still open.
pub async fn open_required(conn: &mut AsyncPgConnection, card_id: Uuid) -> QueryResult<Vec<Uuid>> {
    items::table
        .filter(items::card_id.eq(card_id))
        .filter(items::is_required.eq(true))
        .filter(items::is_completed.eq(false))
        .order((items::position.asc(), items::id.asc()))
        .select(items::id)
        .load(conn)
        .await
}

/// Adds the stage's template items the card lacks (by `template_key`, never twice), after
/// its existing items. Answers how many were added.
pub async fn apply_template(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    card_id: Uuid,
    stage: &Stage,
) -> QueryResult<usize> {
    let Some(template) = stage
        .checklist_template
        .as_array()
        .filter(|t| !t.is_empty())
    else {
        return Ok(0);
    };
    let existing = of_card(conn, card_id).await?;
    let mut position = existing.iter().map(|i| i.position + 1).max().unwrap_or(0);
    let mut rows = Vec::new();
    for item in template {
        let key = item
            .get("key")
            .and_then(Value::as_str)
            .and_then(|k| Uuid::parse_str(k).ok());
        if key.is_some() && existing.iter().any(|i| i.template_key == key) {
            continue;
        }
        rows.push((
            items::id.eq(Uuid::now_v7()),
            items::account_id.eq(account_id),
            items::card_id.eq(card_id),
            items::text.eq(item
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()),
            items::is_required.eq(item
                .get("is_required")
                .and_then(Value::as_bool)
                .unwrap_or(false)),
            items::position.eq(position),
            items::template_key.eq(key),
        ));
        position += 1;
    }
    diesel::insert_into(items::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
}

/// Most items a card may hold.
pub const MAX_ITEMS: usize = 100;

/// Appends an item.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    card_id: Uuid,
    text: &str,
    is_required: bool,
    position: i32,
) -> QueryResult<ChecklistItem> {
    diesel::insert_into(items::table)
        .values((
            items::id.eq(Uuid::now_v7()),
            items::account_id.eq(account_id),
            items::card_id.eq(card_id),
            items::text.eq(text),
            items::is_required.eq(is_required),
            items::position.eq(position),
        ))
        .returning(ChecklistItem::as_returning())
        .get_result(conn)
        .await
}

/// Item fields a PATCH changes.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = items)]
pub struct ItemChanges {
    /// Text.
    pub text: Option<String>,
    /// Required.
    pub is_required: Option<bool>,
    /// Done.
    pub is_completed: Option<bool>,
    /// Who completed it (`Some(None)` clears it).
    pub completed_by: Option<Option<Uuid>>,
    /// When (`Some(None)` clears it).
    pub completed_at: Option<Option<DateTime<Utc>>>,
    /// Always set by [`update`].
    pub updated_at: Option<DateTime<Utc>>,
}

/// Updates an item.
pub async fn update(
    conn: &mut AsyncPgConnection,
    item_id: Uuid,
    mut changes: ItemChanges,
) -> QueryResult<ChecklistItem> {
    changes.updated_at = Some(Utc::now());
    diesel::update(items::table.filter(items::id.eq(item_id)))
        .set(changes)
        .returning(ChecklistItem::as_returning())
        .get_result(conn)
        .await
}

/// Rewrites the card's item positions to the order of `ordered`.
pub async fn set_order(conn: &mut AsyncPgConnection, ordered: &[Uuid]) -> QueryResult<()> {
    for (position, id) in ordered.iter().enumerate() {
        diesel::update(items::table.filter(items::id.eq(id)))
            .set(items::position.eq(position as i32))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Deletes an item.
pub async fn delete(conn: &mut AsyncPgConnection, item_id: Uuid) -> QueryResult<usize> {
    diesel::delete(items::table.filter(items::id.eq(item_id)))
        .execute(conn)
        .await
}
