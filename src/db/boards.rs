//! Kanban boards and their stages: the `boards` and `stages` tables (kanban.md, Data model).
//!
//! Writes here run inside the board actor's transaction (`crate::kanban::store`), which first
//! locks the board row ([`lock`]), so a board's writes, its seq and its event log stay in one
//! order across nodes.

use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::schema::{boards, cards, stages};

/// A board row (and its JSON).
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = boards)]
pub struct Board {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `pipeline`, `leads`, `support`, `sales` or `custom`.
    #[diesel(column_name = type_)]
    #[serde(rename = "type")]
    pub kind: String,
    /// The account's default board.
    pub is_default: bool,
    /// `card_visibility`, `chatwoot_status_map`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The seq of the board's last event.
    pub seq: i64,
    /// Creator.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl Board {
    /// Whether cards outside a reader's scope are hidden (`settings.card_visibility: scoped`).
    pub fn is_scoped(&self) -> bool {
        self.settings.get("card_visibility").and_then(Value::as_str) == Some("scoped")
    }
}

/// A stage row (and its JSON).
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = stages)]
pub struct Stage {
    /// Id.
    pub id: Uuid,
    /// Account.
    #[serde(skip)]
    pub account_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Name (unique per board, ignoring case).
    pub name: String,
    /// `#RRGGBB`.
    pub color: String,
    /// Dense 0..n-1.
    pub position: i32,
    /// A closing stage (won, lost).
    pub is_final: bool,
    /// Hours a card may stay before it breaches.
    pub sla_hours: Option<i32>,
    /// `[{key, text, is_required}]`.
    #[schema(value_type = Vec<Object>)]
    pub checklist_template: Value,
    /// Owned by automations.
    #[schema(value_type = Vec<Object>)]
    pub auto_actions: Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// The board's fields a create sets.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = boards)]
pub struct NewBoard<'a> {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// Type.
    #[diesel(column_name = type_)]
    pub kind: &'a str,
    /// Settings.
    pub settings: &'a Value,
    /// Creator.
    pub created_by: Option<Uuid>,
}

/// A stage to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = stages)]
pub struct NewStage {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Name.
    pub name: String,
    /// Color.
    pub color: String,
    /// Position.
    pub position: i32,
    /// Final.
    pub is_final: bool,
    /// SLA.
    pub sla_hours: Option<i32>,
    /// Template.
    pub checklist_template: Value,
}

/// Board fields a PATCH changes (`None`: unchanged).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = boards)]
pub struct BoardChanges {
    /// Name.
    pub name: Option<String>,
    /// Description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Type.
    #[diesel(column_name = type_)]
    pub kind: Option<String>,
    /// Settings.
    pub settings: Option<Value>,
    /// Always set by [`update`].
    pub updated_at: Option<DateTime<Utc>>,
}

/// Stage fields a PATCH changes.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = stages)]
pub struct StageChanges {
    /// Name.
    pub name: Option<String>,
    /// Color.
    pub color: Option<String>,
    /// Final.
    pub is_final: Option<bool>,
    /// SLA (`Some(None)` clears it).
    pub sla_hours: Option<Option<i32>>,
    /// Template.
    pub checklist_template: Option<Value>,
    /// Automations.
    pub auto_actions: Option<Value>,
    /// Always set by [`update_stage`].
    pub updated_at: Option<DateTime<Utc>>,
}

/// A board with its counts, as `GET /boards` lists it.
#[derive(Debug, Clone)]
pub struct BoardSummary {
    /// The board.
    pub board: Board,
    /// Its stages.
    pub stages_count: i64,
    /// Its cards.
    pub cards_count: i64,
}

/// One board of the account.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    board_id: Uuid,
) -> QueryResult<Option<Board>> {
    boards::table
        .filter(boards::account_id.eq(account_id))
        .filter(boards::id.eq(board_id))
        .select(Board::as_select())
        .first(conn)
        .await
        .optional()
}

/// One board of the account, locked until the transaction ends (the board's write order).
pub async fn lock(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    board_id: Uuid,
) -> QueryResult<Option<Board>> {
    boards::table
        .filter(boards::account_id.eq(account_id))
        .filter(boards::id.eq(board_id))
        .select(Board::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The account's boards with their counts: the default first, then by name.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
) -> QueryResult<Vec<BoardSummary>> {
    let rows: Vec<Board> = boards::table
        .filter(boards::account_id.eq(account_id))
        .order((
            boards::is_default.desc(),
            boards::name.asc(),
            boards::id.asc(),
        ))
        .select(Board::as_select())
        .load(conn)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|b| b.id).collect();
    let stage_counts: Vec<(Uuid, i64)> = stages::table
        .filter(stages::board_id.eq_any(&ids))
        .group_by(stages::board_id)
        .select((stages::board_id, count_star()))
        .load(conn)
        .await?;
    let card_counts: Vec<(Uuid, i64)> = cards::table
        .filter(cards::board_id.eq_any(&ids))
        .group_by(cards::board_id)
        .select((cards::board_id, count_star()))
        .load(conn)
        .await?;
    let count_of = |counts: &[(Uuid, i64)], id: Uuid| {
        counts
            .iter()
            .find(|(board, _)| *board == id)
            .map_or(0, |(_, n)| *n)
    };
    Ok(rows
        .into_iter()
        .map(|board| BoardSummary {
            stages_count: count_of(&stage_counts, board.id),
            cards_count: count_of(&card_counts, board.id),
            board,
        })
        .collect())
}

/// Inserts a board.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewBoard<'_>) -> QueryResult<Board> {
    diesel::insert_into(boards::table)
        .values(new)
        .returning(Board::as_returning())
        .get_result(conn)
        .await
}

/// Updates a board's fields.
pub async fn update(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
    mut changes: BoardChanges,
) -> QueryResult<Board> {
    changes.updated_at = Some(Utc::now());
    diesel::update(boards::table.filter(boards::id.eq(board_id)))
        .set(changes)
        .returning(Board::as_returning())
        .get_result(conn)
        .await
}

/// Makes `board_id` the account's default board (and no other).
pub async fn make_default(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    board_id: Uuid,
) -> QueryResult<()> {
    diesel::update(
        boards::table
            .filter(boards::account_id.eq(account_id))
            .filter(boards::is_default.eq(true))
            .filter(boards::id.ne(board_id)),
    )
    .set((
        boards::is_default.eq(false),
        boards::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    diesel::update(boards::table.filter(boards::id.eq(board_id)))
        .set((
            boards::is_default.eq(true),
            boards::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks the account's default board row, if any (two "make default" writes on different
/// boards then take turns instead of tripping over the unique index).
pub async fn lock_default(conn: &mut AsyncPgConnection, account_id: Uuid) -> QueryResult<()> {
    boards::table
        .filter(boards::account_id.eq(account_id))
        .filter(boards::is_default.eq(true))
        .select(boards::id)
        .for_update()
        .load::<Uuid>(conn)
        .await?;
    Ok(())
}

/// Deletes a board (stages, cards, history, checklists and events cascade).
pub async fn delete(conn: &mut AsyncPgConnection, board_id: Uuid) -> QueryResult<usize> {
    diesel::delete(boards::table.filter(boards::id.eq(board_id)))
        .execute(conn)
        .await
}

/// Sets the board's seq (the store's last step of a write).
pub async fn set_seq(conn: &mut AsyncPgConnection, board_id: Uuid, seq: i64) -> QueryResult<()> {
    diesel::update(boards::table.filter(boards::id.eq(board_id)))
        .set(boards::seq.eq(seq))
        .execute(conn)
        .await?;
    Ok(())
}

/// The board's stages in position order.
pub async fn stages_of(conn: &mut AsyncPgConnection, board_id: Uuid) -> QueryResult<Vec<Stage>> {
    stages::table
        .filter(stages::board_id.eq(board_id))
        .order(stages::position.asc())
        .select(Stage::as_select())
        .load(conn)
        .await
}

/// Inserts stages.
pub async fn insert_stages(
    conn: &mut AsyncPgConnection,
    new: &[NewStage],
) -> QueryResult<Vec<Stage>> {
    diesel::insert_into(stages::table)
        .values(new)
        .returning(Stage::as_returning())
        .get_results(conn)
        .await
}

/// Updates a stage's fields.
pub async fn update_stage(
    conn: &mut AsyncPgConnection,
    stage_id: Uuid,
    mut changes: StageChanges,
) -> QueryResult<Stage> {
    changes.updated_at = Some(Utc::now());
    diesel::update(stages::table.filter(stages::id.eq(stage_id)))
        .set(changes)
        .returning(Stage::as_returning())
        .get_result(conn)
        .await
}

/// Rewrites the board's stage positions to the order of `ordered` (the unique position
/// constraint is deferred, so intermediate duplicates are fine).
pub async fn set_stage_order(conn: &mut AsyncPgConnection, ordered: &[Uuid]) -> QueryResult<()> {
    for (position, id) in ordered.iter().enumerate() {
        diesel::update(stages::table.filter(stages::id.eq(id)))
            .set((
                stages::position.eq(position as i32),
                stages::updated_at.eq(Utc::now()),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Deletes a stage (it must hold no cards).
pub async fn delete_stage(conn: &mut AsyncPgConnection, stage_id: Uuid) -> QueryResult<usize> {
    diesel::delete(stages::table.filter(stages::id.eq(stage_id)))
        .execute(conn)
        .await
}
