//! Kanban cards, their history and the per-board event log: the `cards`, `card_history` and
//! `board_events` tables (kanban.md).
//!
//! A card is read with its assignee's name and checklist counts in one query ([`CARD_SELECT`]);
//! money (`numeric(15,2)`) crosses the boundary as its decimal text, so no decimal crate is
//! needed. Positions are gapped keys (see `crate::kanban::positions`); the neighbour queries
//! here read only the rows around the target slot.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::schema::{board_events, card_history, cards};

/// A card as the API shows it: the columns plus `assignee_name` and checklist counts.
#[derive(Debug, Clone, QueryableByName, Serialize, utoipa::ToSchema)]
pub struct Card {
    /// Id.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// Account.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub account_id: Uuid,
    /// Board.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub board_id: Uuid,
    /// Stage.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub stage_id: Uuid,
    /// Gapped position within the stage.
    #[diesel(sql_type = BigInt)]
    pub position: i64,
    /// Title.
    #[diesel(sql_type = Text)]
    pub title: String,
    /// Chatwoot conversation.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub chatwoot_conversation_id: Option<i64>,
    /// Chatwoot contact.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub chatwoot_contact_id: Option<i64>,
    /// Contact name.
    #[diesel(sql_type = Nullable<Text>)]
    pub contact_name: Option<String>,
    /// Contact phone.
    #[diesel(sql_type = Nullable<Text>)]
    pub contact_phone: Option<String>,
    /// Contact email.
    #[diesel(sql_type = Nullable<Text>)]
    pub contact_email: Option<String>,
    /// Contact avatar.
    #[diesel(sql_type = Nullable<Text>)]
    pub contact_avatar_url: Option<String>,
    /// Inbox name.
    #[diesel(sql_type = Nullable<Text>)]
    pub inbox_name: Option<String>,
    /// Last message (≤ 200 chars).
    #[diesel(sql_type = Nullable<Text>)]
    pub last_message_preview: Option<String>,
    /// Last message time.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Money as a decimal string (`"1500.00"`).
    #[diesel(sql_type = Nullable<Text>)]
    pub value: Option<String>,
    /// `low`, `medium`, `high`, `urgent`.
    #[diesel(sql_type = Text)]
    pub priority: String,
    /// Due date.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub due_date: Option<DateTime<Utc>>,
    /// Tags.
    #[diesel(sql_type = Array<Text>)]
    pub tags: Vec<String>,
    /// Custom fields.
    #[diesel(sql_type = Jsonb)]
    #[schema(value_type = Object)]
    pub custom_fields: Value,
    /// Notes.
    #[diesel(sql_type = Nullable<Text>)]
    pub notes: Option<String>,
    /// Assignee.
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub assignee_id: Option<Uuid>,
    /// Assignee's name.
    #[diesel(sql_type = Nullable<Text>)]
    pub assignee_name: Option<String>,
    /// Last stage change.
    #[diesel(sql_type = Timestamptz)]
    pub moved_at: DateTime<Utc>,
    /// Set by the SLA timer.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sla_breached_at: Option<DateTime<Utc>>,
    /// Optimistic version.
    #[diesel(sql_type = Integer)]
    pub version: i32,
    /// Creator.
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub created_by: Option<Uuid>,
    /// Created.
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// Updated.
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
    /// Checklist items.
    #[diesel(sql_type = BigInt)]
    pub checklist_total: i64,
    /// Completed items.
    #[diesel(sql_type = BigInt)]
    pub checklist_done: i64,
    /// Required items still open.
    #[diesel(sql_type = BigInt)]
    pub checklist_required_open: i64,
}

/// The card query; append `WHERE …` (and ordering) to it.
pub const CARD_SELECT: &str = concat!(card_columns!(), "FROM cards c ", card_joins!());

/// The columns of [`Card`] over `cards c` and the joins of [`card_joins`].
macro_rules! card_columns {
    () => {
        "SELECT c.id, c.account_id, c.board_id, c.stage_id, c.position, \
        c.title, c.chatwoot_conversation_id, c.chatwoot_contact_id, c.contact_name, \
        c.contact_phone, c.contact_email, c.contact_avatar_url, c.inbox_name, \
        c.last_message_preview, c.last_message_at, c.value::text AS value, c.priority, \
        c.due_date, c.tags, c.custom_fields, c.notes, c.assignee_id, u.name AS assignee_name, \
        c.moved_at, c.sla_breached_at, c.version, c.created_by, c.created_at, c.updated_at, \
        coalesce(k.total, 0) AS checklist_total, coalesce(k.done, 0) AS checklist_done, \
        coalesce(k.required_open, 0) AS checklist_required_open "
    };
}
use card_columns;

/// The assignee's name and the checklist counts of `cards c`.
macro_rules! card_joins {
    () => {
        "LEFT JOIN users u ON u.id = c.assignee_id \
        LEFT JOIN LATERAL (SELECT count(*) AS total, \
            count(*) FILTER (WHERE i.is_completed) AS done, \
            count(*) FILTER (WHERE i.is_required AND NOT i.is_completed) AS required_open \
            FROM card_checklist_items i WHERE i.card_id = c.id) k ON true "
    };
}
use card_joins;

/// One card of the board.
pub async fn find(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
    card_id: Uuid,
) -> QueryResult<Option<Card>> {
    diesel::sql_query(format!("{CARD_SELECT} WHERE c.board_id = $1 AND c.id = $2"))
        .bind::<diesel::sql_types::Uuid, _>(board_id)
        .bind::<diesel::sql_types::Uuid, _>(card_id)
        .get_result(conn)
        .await
        .optional()
}

/// One card of the board, its row locked until the transaction ends.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
    card_id: Uuid,
) -> QueryResult<Option<Card>> {
    diesel::sql_query(format!(
        "{CARD_SELECT} WHERE c.board_id = $1 AND c.id = $2 FOR UPDATE OF c"
    ))
    .bind::<diesel::sql_types::Uuid, _>(board_id)
    .bind::<diesel::sql_types::Uuid, _>(card_id)
    .get_result(conn)
    .await
    .optional()
}

/// What placing a card changed, so the caller can update its copy without reading it again.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Placed {
    /// Last stage change.
    #[diesel(sql_type = Timestamptz)]
    pub moved_at: DateTime<Utc>,
    /// The SLA mark (cleared by a stage change).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sla_breached_at: Option<DateTime<Utc>>,
    /// The version.
    #[diesel(sql_type = Integer)]
    pub version: i32,
    /// Updated.
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

impl Placed {
    /// `card` as this placement left it in `stage_id` at `position`.
    pub fn apply(self, card: &mut Card, stage_id: Uuid, position: i64) {
        card.stage_id = stage_id;
        card.position = position;
        card.moved_at = self.moved_at;
        card.sla_breached_at = self.sla_breached_at;
        card.version = self.version;
        card.updated_at = self.updated_at;
    }
}

/// A card to insert.
#[derive(Debug, Clone)]
pub struct NewCard {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Stage.
    pub stage_id: Uuid,
    /// Position.
    pub position: i64,
    /// Editable fields.
    pub fields: CardFields,
    /// Chatwoot conversation.
    pub chatwoot_conversation_id: Option<i64>,
    /// Chatwoot contact.
    pub chatwoot_contact_id: Option<i64>,
    /// Creator.
    pub created_by: Option<Uuid>,
}

/// The client-editable fields of a card, as stored.
#[derive(Debug, Clone, Default)]
pub struct CardFields {
    /// Title.
    pub title: String,
    /// Decimal string.
    pub value: Option<String>,
    /// Priority.
    pub priority: String,
    /// Due date.
    pub due_date: Option<DateTime<Utc>>,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: Value,
    /// Notes.
    pub notes: Option<String>,
    /// Assignee.
    pub assignee_id: Option<Uuid>,
    /// Contact name.
    pub contact_name: Option<String>,
    /// Contact phone.
    pub contact_phone: Option<String>,
    /// Contact email.
    pub contact_email: Option<String>,
    /// Contact avatar.
    pub contact_avatar_url: Option<String>,
}

impl CardFields {
    /// The editable fields of a stored card.
    pub fn of(card: &Card) -> Self {
        Self {
            title: card.title.clone(),
            value: card.value.clone(),
            priority: card.priority.clone(),
            due_date: card.due_date,
            tags: card.tags.clone(),
            custom_fields: card.custom_fields.clone(),
            notes: card.notes.clone(),
            assignee_id: card.assignee_id,
            contact_name: card.contact_name.clone(),
            contact_phone: card.contact_phone.clone(),
            contact_email: card.contact_email.clone(),
            contact_avatar_url: card.contact_avatar_url.clone(),
        }
    }
}

/// Inserts a card.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewCard) -> QueryResult<()> {
    let f = &new.fields;
    diesel::sql_query(
        "INSERT INTO cards (id, account_id, board_id, stage_id, position, title, \
         chatwoot_conversation_id, chatwoot_contact_id, contact_name, contact_phone, \
         contact_email, contact_avatar_url, value, priority, due_date, tags, custom_fields, \
         notes, assignee_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::numeric, $14, $15, \
         $16, $17, $18, $19, $20)",
    )
    .bind::<diesel::sql_types::Uuid, _>(new.id)
    .bind::<diesel::sql_types::Uuid, _>(new.account_id)
    .bind::<diesel::sql_types::Uuid, _>(new.board_id)
    .bind::<diesel::sql_types::Uuid, _>(new.stage_id)
    .bind::<BigInt, _>(new.position)
    .bind::<Text, _>(&f.title)
    .bind::<Nullable<BigInt>, _>(new.chatwoot_conversation_id)
    .bind::<Nullable<BigInt>, _>(new.chatwoot_contact_id)
    .bind::<Nullable<Text>, _>(&f.contact_name)
    .bind::<Nullable<Text>, _>(&f.contact_phone)
    .bind::<Nullable<Text>, _>(&f.contact_email)
    .bind::<Nullable<Text>, _>(&f.contact_avatar_url)
    .bind::<Nullable<Text>, _>(&f.value)
    .bind::<Text, _>(&f.priority)
    .bind::<Nullable<Timestamptz>, _>(f.due_date)
    .bind::<Array<Text>, _>(&f.tags)
    .bind::<Jsonb, _>(&f.custom_fields)
    .bind::<Nullable<Text>, _>(&f.notes)
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(f.assignee_id)
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(new.created_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a card's editable fields and bumps its version.
pub async fn update_fields(
    conn: &mut AsyncPgConnection,
    card_id: Uuid,
    f: &CardFields,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE cards SET title = $2, value = $3::numeric, priority = $4, due_date = $5, \
         tags = $6, custom_fields = $7, notes = $8, assignee_id = $9, contact_name = $10, \
         contact_phone = $11, contact_email = $12, contact_avatar_url = $13, \
         version = version + 1, updated_at = now() WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(card_id)
    .bind::<Text, _>(&f.title)
    .bind::<Nullable<Text>, _>(&f.value)
    .bind::<Text, _>(&f.priority)
    .bind::<Nullable<Timestamptz>, _>(f.due_date)
    .bind::<Array<Text>, _>(&f.tags)
    .bind::<Jsonb, _>(&f.custom_fields)
    .bind::<Nullable<Text>, _>(&f.notes)
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(f.assignee_id)
    .bind::<Nullable<Text>, _>(&f.contact_name)
    .bind::<Nullable<Text>, _>(&f.contact_phone)
    .bind::<Nullable<Text>, _>(&f.contact_email)
    .bind::<Nullable<Text>, _>(&f.contact_avatar_url)
    .execute(conn)
    .await?;
    Ok(())
}

/// Places a card: its stage and position; a stage change also sets `moved_at` and clears the
/// SLA mark. Bumps the version when `bump_version`.
pub async fn place(
    conn: &mut AsyncPgConnection,
    card_id: Uuid,
    stage_id: Uuid,
    position: i64,
    stage_changed: bool,
    bump_version: bool,
) -> QueryResult<Placed> {
    diesel::sql_query(
        "UPDATE cards SET stage_id = $2, position = $3, \
         moved_at = CASE WHEN $4 THEN now() ELSE moved_at END, \
         sla_breached_at = CASE WHEN $4 THEN NULL ELSE sla_breached_at END, \
         version = version + CASE WHEN $5 THEN 1 ELSE 0 END, updated_at = now() \
         WHERE id = $1 RETURNING moved_at, sla_breached_at, version, updated_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(card_id)
    .bind::<diesel::sql_types::Uuid, _>(stage_id)
    .bind::<BigInt, _>(position)
    .bind::<Bool, _>(stage_changed)
    .bind::<Bool, _>(bump_version)
    .get_result(conn)
    .await
}

/// Renumbers a stage to `i × gap` in the given order (ids); answers the new positions.
pub async fn renumber(
    conn: &mut AsyncPgConnection,
    ordered: &[Uuid],
    gap: i64,
) -> QueryResult<Vec<(Uuid, i64)>> {
    let positions: Vec<i64> = (0..ordered.len() as i64).map(|i| i * gap).collect();
    diesel::sql_query(
        "UPDATE cards c SET position = u.position \
         FROM unnest($1::uuid[], $2::bigint[]) AS u(id, position) WHERE c.id = u.id",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(ordered)
    .bind::<Array<BigInt>, _>(&positions)
    .execute(conn)
    .await?;
    Ok(ordered.iter().copied().zip(positions).collect())
}

/// A stage's cards, leaving `except` (the card being placed) out.
fn stage_cards(stage_id: Uuid, except: Option<Uuid>) -> cards::BoxedQuery<'static, diesel::pg::Pg> {
    let query = cards::table
        .filter(cards::stage_id.eq(stage_id))
        .into_boxed();
    match except {
        Some(except) => query.filter(cards::id.ne(except)),
        None => query,
    }
}

/// Ids of a stage's cards in position order, leaving `except` out.
pub async fn ids_in_stage(
    conn: &mut AsyncPgConnection,
    stage_id: Uuid,
    except: Option<Uuid>,
) -> QueryResult<Vec<Uuid>> {
    stage_cards(stage_id, except)
        .order((cards::position.asc(), cards::id.asc()))
        .select(cards::id)
        .load(conn)
        .await
}

/// The positions around slot `index` of a stage (0 = top), leaving `except` out: the card
/// before the slot and the card after it.
pub async fn neighbours_at(
    conn: &mut AsyncPgConnection,
    stage_id: Uuid,
    index: i64,
    except: Option<Uuid>,
) -> QueryResult<(Option<i64>, Option<i64>)> {
    let start = (index - 1).max(0);
    let found: Vec<i64> = stage_cards(stage_id, except)
        .order(cards::position.asc())
        .offset(start)
        .limit(2)
        .select(cards::position)
        .load(conn)
        .await?;
    let (first, second) = (<[i64]>::first(&found).copied(), found.get(1).copied());
    Ok(match (index, first) {
        (0, _) => (None, first),
        // Past the end: the slot after the last card.
        (_, None) => (last_position(conn, stage_id, except).await?, None),
        _ => (first, second),
    })
}

/// The bottom card's position in a stage, leaving `except` out.
pub async fn last_position(
    conn: &mut AsyncPgConnection,
    stage_id: Uuid,
    except: Option<Uuid>,
) -> QueryResult<Option<i64>> {
    stage_cards(stage_id, except)
        .select(diesel::dsl::max(cards::position))
        .first(conn)
        .await
}

/// The 0-based index of `card_id` within its stage, leaving `except` out (`None`: not there).
pub async fn index_in_stage(
    conn: &mut AsyncPgConnection,
    stage_id: Uuid,
    card_id: Uuid,
    except: Uuid,
) -> QueryResult<Option<i64>> {
    let position: Option<i64> = cards::table
        .filter(cards::stage_id.eq(stage_id))
        .filter(cards::id.eq(card_id))
        .filter(cards::id.ne(except))
        .select(cards::position)
        .first(conn)
        .await
        .optional()?;
    let Some(position) = position else {
        return Ok(None);
    };
    cards::table
        .filter(cards::stage_id.eq(stage_id))
        .filter(cards::position.lt(position))
        .filter(cards::id.ne(except))
        .count()
        .get_result(conn)
        .await
        .map(Some)
}

/// The card for a Chatwoot conversation, if any.
pub async fn by_conversation(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    conversation_id: i64,
) -> QueryResult<Option<Uuid>> {
    cards::table
        .filter(cards::account_id.eq(account_id))
        .filter(cards::chatwoot_conversation_id.eq(conversation_id))
        .select(cards::id)
        .first(conn)
        .await
        .optional()
}

/// Deletes a card.
pub async fn delete(conn: &mut AsyncPgConnection, card_id: Uuid) -> QueryResult<usize> {
    diesel::delete(cards::table.filter(cards::id.eq(card_id)))
        .execute(conn)
        .await
}

/// A card history row.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = card_history)]
pub struct HistoryEntry {
    /// Id.
    pub id: Uuid,
    /// Account.
    #[serde(skip)]
    pub account_id: Uuid,
    /// Card.
    pub card_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// `created`, `moved`, `updated`, `assigned`, `closed`, `reopened`.
    pub action: String,
    /// From.
    pub from_stage_id: Option<Uuid>,
    /// To.
    pub to_stage_id: Option<Uuid>,
    /// Who.
    pub actor_id: Option<Uuid>,
    /// Which automation.
    pub automation_id: Option<Uuid>,
    /// Notes (≤ 500).
    pub notes: Option<String>,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A history row to write.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = card_history)]
pub struct NewHistory {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Card.
    pub card_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Action.
    pub action: &'static str,
    /// From.
    pub from_stage_id: Option<Uuid>,
    /// To.
    pub to_stage_id: Option<Uuid>,
    /// Who.
    pub actor_id: Option<Uuid>,
    /// Notes.
    pub notes: Option<String>,
    /// Metadata.
    pub metadata: Value,
}

/// Writes a history row.
pub async fn record_history(
    conn: &mut AsyncPgConnection,
    new: &NewHistory,
) -> QueryResult<HistoryEntry> {
    diesel::insert_into(card_history::table)
        .values(new)
        .returning(HistoryEntry::as_returning())
        .get_result(conn)
        .await
}

/// One logged board event.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = board_events)]
pub struct LoggedEvent {
    /// Account.
    pub account_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Seq.
    pub seq: i64,
    /// The frame as pushed to a full-audience subscriber.
    pub frame: Value,
    /// The card, for card events.
    pub card_id: Option<Uuid>,
    /// Assignee before.
    pub assignee_before: Option<Uuid>,
    /// Assignee after.
    pub assignee_after: Option<Uuid>,
}

/// Logs events.
pub async fn log_events(conn: &mut AsyncPgConnection, events: &[LoggedEvent]) -> QueryResult<()> {
    diesel::insert_into(board_events::table)
        .values(events)
        .execute(conn)
        .await?;
    Ok(())
}

/// The board's logged events after `seq`, ascending, and the oldest seq still logged.
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
    seq: i64,
) -> QueryResult<(Vec<LoggedEvent>, Option<i64>)> {
    let oldest: Option<i64> = board_events::table
        .filter(board_events::board_id.eq(board_id))
        .select(diesel::dsl::min(board_events::seq))
        .first(conn)
        .await?;
    let events = board_events::table
        .filter(board_events::board_id.eq(board_id))
        .filter(board_events::seq.gt(seq))
        .order(board_events::seq.asc())
        .select(LoggedEvent::as_select())
        .load(conn)
        .await?;
    Ok((events, oldest))
}

/// The order of a card list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardSort {
    /// Stage position, card position, id (the board's own order).
    Position,
    /// Newest change first.
    UpdatedDesc,
    /// Soonest due first, undated last.
    DueDate,
    /// Highest value first, no value last.
    ValueDesc,
    /// Newest first.
    CreatedDesc,
}

impl CardSort {
    /// The sort key expressions (as text, so a cursor can carry them) and the direction.
    fn keys(self) -> (&'static [&'static str], &'static str) {
        match self {
            CardSort::Position => (&["s.position::bigint", "c.position"], ">"),
            CardSort::UpdatedDesc => (&["c.updated_at"], "<"),
            CardSort::DueDate => (&["coalesce(c.due_date, 'infinity'::timestamptz)"], ">"),
            CardSort::ValueDesc => (&["coalesce(c.value, -1)"], "<"),
            CardSort::CreatedDesc => (&["c.created_at"], "<"),
        }
    }

    /// The SQL types of the keys, for casting cursor values back.
    fn casts(self) -> &'static [&'static str] {
        match self {
            CardSort::Position => &["bigint", "bigint"],
            CardSort::UpdatedDesc | CardSort::DueDate | CardSort::CreatedDesc => &["timestamptz"],
            CardSort::ValueDesc => &["numeric"],
        }
    }
}

/// `due=` buckets, evaluated in the filter's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueBucket {
    /// Before now and not in a final stage.
    Overdue,
    /// Today.
    Today,
    /// Monday to Sunday of this week.
    ThisWeek,
    /// No due date.
    NoDate,
}

/// Whose cards a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeFilter {
    /// Assigned to this user.
    User(Uuid),
    /// Unassigned.
    Nobody,
}

/// A card list's filters (kanban.md, Filters), already validated.
#[derive(Debug, Clone)]
pub struct CardFilter {
    /// Any of these stages.
    pub stage_ids: Vec<Uuid>,
    /// Any of these priorities.
    pub priorities: Vec<String>,
    /// The assignee.
    pub assignee: Option<AssigneeFilter>,
    /// Any of these tags.
    pub tags: Vec<String>,
    /// A due-date bucket.
    pub due: Option<DueBucket>,
    /// IANA time zone of `due`.
    pub tz: String,
    /// Value at least (decimal string).
    pub value_min: Option<String>,
    /// Value at most.
    pub value_max: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created at or before.
    pub created_before: Option<DateTime<Utc>>,
    /// Full-text and fragment search.
    pub q: Option<String>,
    /// Only cards of these assignees, plus unassigned ones when `visible_unassigned`
    /// (the reader's scope on a `scoped` board; `None`: every card).
    pub visible: Option<(Vec<Uuid>, bool)>,
    /// Order.
    pub sort: CardSort,
    /// After this cursor (the sort key values as text, and the id).
    pub after: Option<(Vec<String>, Uuid)>,
    /// Page size + 1.
    pub fetch: i64,
}

/// A card with the cursor values of its sort key.
#[derive(Debug, Clone, QueryableByName)]
pub struct ListedCard {
    /// The card.
    #[diesel(embed)]
    pub card: Card,
    /// The sort key values as text.
    #[diesel(sql_type = Array<Text>)]
    pub sort_key: Vec<String>,
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

type BoxedQuery =
    diesel::query_builder::BoxedSqlQuery<'static, diesel::pg::Pg, diesel::query_builder::SqlQuery>;

/// Dynamic SQL with numbered binds: diesel's boxed raw query appends values but not their
/// `$n` placeholders, so this writes each placeholder with its value.
struct Sql {
    query: BoxedQuery,
    binds: usize,
}

impl Sql {
    fn new(base: String) -> Self {
        Self {
            query: diesel::sql_query(base).into_boxed(),
            binds: 0,
        }
    }

    fn sql(mut self, text: impl AsRef<str>) -> Self {
        self.query = self.query.sql(text.as_ref());
        self
    }

    fn bind<ST, V>(mut self, value: V) -> Self
    where
        diesel::pg::Pg: diesel::sql_types::HasSqlType<ST>,
        V: diesel::serialize::ToSql<ST, diesel::pg::Pg> + Send + 'static,
        ST: Send + 'static,
    {
        self.binds += 1;
        self.query = self
            .query
            .sql(format!("${}", self.binds))
            .bind::<ST, V>(value);
        self
    }
}

/// Appends the instant the current `unit` (`day`, `week`: ISO, from Monday) began in `tz`.
fn zone_start(query: Sql, unit: &str, tz: &str) -> Sql {
    query
        .sql(format!("(date_trunc('{unit}', now() AT TIME ZONE "))
        .bind::<Text, _>(tz.to_owned())
        .sql(") AT TIME ZONE ")
        .bind::<Text, _>(tz.to_owned())
        .sql(")")
}

/// A filtered, ordered page of a board's cards.
pub async fn list(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
    filter: &CardFilter,
) -> QueryResult<Vec<ListedCard>> {
    // The page is chosen first over the bare rows (filters, order, limit); only its cards
    // are then joined with their assignee and checklist counts.
    let (keys, direction) = filter.sort.keys();
    let sort_key = keys
        .iter()
        .map(|k| format!("({k})::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let page_keys: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!(", {k} AS k{i}"))
        .collect();
    // Only the board's own order needs the stages (their positions); the other orders can
    // then walk their index on `cards` alone.
    let stages = if filter.sort == CardSort::Position {
        " JOIN stages s ON s.id = c.stage_id"
    } else {
        ""
    };
    let base = format!(
        "WITH page AS (SELECT c.id AS page_id, ARRAY[{sort_key}] AS sort_key{page_keys} \
         FROM cards c{stages}"
    );
    let mut query = Sql::new(base)
        .sql(" WHERE c.board_id = ")
        .bind::<diesel::sql_types::Uuid, _>(board_id);
    if !filter.stage_ids.is_empty() {
        query = query
            .sql(" AND c.stage_id = ANY(")
            .bind::<Array<diesel::sql_types::Uuid>, _>(filter.stage_ids.clone())
            .sql(")");
    }
    if !filter.priorities.is_empty() {
        query = query
            .sql(" AND c.priority = ANY(")
            .bind::<Array<Text>, _>(filter.priorities.clone())
            .sql(")");
    }
    match &filter.assignee {
        Some(AssigneeFilter::User(user)) => {
            query = query
                .sql(" AND c.assignee_id = ")
                .bind::<diesel::sql_types::Uuid, _>(*user);
        }
        Some(AssigneeFilter::Nobody) => query = query.sql(" AND c.assignee_id IS NULL"),
        None => {}
    }
    if let Some((users, unassigned)) = &filter.visible {
        query = query
            .sql(" AND (c.assignee_id = ANY(")
            .bind::<Array<diesel::sql_types::Uuid>, _>(users.clone())
            .sql(if *unassigned {
                ") OR c.assignee_id IS NULL)"
            } else {
                "))"
            });
    }
    if !filter.tags.is_empty() {
        query = query
            .sql(" AND c.tags && ")
            .bind::<Array<Text>, _>(filter.tags.clone());
    }
    if let Some(due) = filter.due {
        let unit = match due {
            DueBucket::Overdue => {
                query = query.sql(
                    " AND c.due_date < now() AND NOT EXISTS (SELECT 1 FROM stages f \
                     WHERE f.id = c.stage_id AND f.is_final)",
                );
                None
            }
            DueBucket::NoDate => {
                query = query.sql(" AND c.due_date IS NULL");
                None
            }
            DueBucket::Today => Some(("day", "1 day")),
            DueBucket::ThisWeek => Some(("week", "7 days")),
        };
        if let Some((unit, span)) = unit {
            query = zone_start(query.sql(" AND c.due_date >= "), unit, &filter.tz);
            query = zone_start(query.sql(" AND c.due_date < "), unit, &filter.tz)
                .sql(format!(" + interval '{span}'"));
        }
    }
    if let Some(min) = &filter.value_min {
        query = query
            .sql(" AND c.value >= ")
            .bind::<Text, _>(min.clone())
            .sql("::numeric");
    }
    if let Some(max) = &filter.value_max {
        query = query
            .sql(" AND c.value <= ")
            .bind::<Text, _>(max.clone())
            .sql("::numeric");
    }
    if let Some(after) = filter.created_after {
        query = query
            .sql(" AND c.created_at >= ")
            .bind::<Timestamptz, _>(after);
    }
    if let Some(before) = filter.created_before {
        query = query
            .sql(" AND c.created_at <= ")
            .bind::<Timestamptz, _>(before);
    }
    if let Some(q) = &filter.q {
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        query = query
            .sql(" AND (c.search @@ websearch_to_tsquery('portuguese', immutable_unaccent(")
            .bind::<Text, _>(q.clone())
            .sql(")) OR immutable_unaccent(c.title) ILIKE immutable_unaccent(")
            .bind::<Text, _>(like_pattern(q))
            .sql(") OR immutable_unaccent(c.contact_name) ILIKE immutable_unaccent(")
            .bind::<Text, _>(like_pattern(q))
            .sql(")");
        if digits.len() >= 3 {
            query = query
                .sql(" OR regexp_replace(c.contact_phone, '\\D', '', 'g') LIKE ")
                .bind::<Text, _>(like_pattern(&digits));
        }
        query = query.sql(")");
    }
    if let Some((values, id)) = &filter.after {
        let casts = filter.sort.casts();
        query = query.sql(" AND (");
        for (i, key) in keys.iter().enumerate() {
            query = query.sql(if i == 0 { "" } else { ", " }).sql(*key);
        }
        query = query.sql(", c.id) ").sql(direction).sql(" (");
        for (i, (value, cast)) in values.iter().zip(casts).enumerate() {
            query = query
                .sql(if i == 0 { "" } else { ", " })
                .bind::<Text, _>(value.clone())
                .sql(format!("::{cast}"));
        }
        query = query
            .sql(", ")
            .bind::<diesel::sql_types::Uuid, _>(*id)
            .sql(")");
    }
    let order_direction = if direction == ">" { "ASC" } else { "DESC" };
    query = query.sql(" ORDER BY ");
    for key in keys {
        query = query.sql(format!("{key} {order_direction}, "));
    }
    let outer_order: String = (0..keys.len())
        .map(|i| format!("page.k{i} {order_direction}, "))
        .collect();
    query
        .sql(format!("c.id {order_direction} LIMIT "))
        .bind::<BigInt, _>(filter.fetch)
        .sql(concat!(
            ") ",
            card_columns!(),
            ", page.sort_key FROM page JOIN cards c ON c.id = page.page_id ",
            card_joins!()
        ))
        .sql(format!("ORDER BY {outer_order}c.id {order_direction}"))
        .query
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

/// Whether PostgreSQL knows the IANA time zone `name`.
pub async fn is_time_zone(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<bool> {
    let found: Exists = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS exists",
    )
    .bind::<Text, _>(name)
    .get_result(conn)
    .await?;
    Ok(found.exists)
}

/// Bumps a card's version (a checklist change is a user write of the card).
pub async fn bump_version(conn: &mut AsyncPgConnection, card_id: Uuid) -> QueryResult<()> {
    diesel::update(cards::table.filter(cards::id.eq(card_id)))
        .set((
            cards::version.eq(cards::version + 1),
            cards::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The one definition of an SLA breach, over `cards c` joined with its `stages s`: the card
/// has been in a stage with `sla_hours` for longer than that.
pub const PAST_SLA: &str =
    "(s.sla_hours IS NOT NULL AND c.moved_at < now() - make_interval(hours => s.sla_hours))";

/// A row of one id.
#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Marks the board's cards that stayed past their stage's `sla_hours` (once per stay: a
/// marked card is skipped until a stage change clears the mark); answers their ids. Not a
/// user write: the version stays.
pub async fn mark_sla_breaches(
    conn: &mut AsyncPgConnection,
    board_id: Uuid,
) -> QueryResult<Vec<Uuid>> {
    let marked: Vec<IdRow> = diesel::sql_query(format!(
        "UPDATE cards c SET sla_breached_at = now() FROM stages s \
         WHERE s.id = c.stage_id AND c.board_id = $1 AND c.sla_breached_at IS NULL \
         AND {PAST_SLA} RETURNING c.id"
    ))
    .bind::<diesel::sql_types::Uuid, _>(board_id)
    .load(conn)
    .await?;
    Ok(marked.into_iter().map(|m| m.id).collect())
}

/// The account's boards with cards past their SLA and not yet marked.
pub async fn boards_with_sla_breaches(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
) -> QueryResult<Vec<Uuid>> {
    let boards: Vec<IdRow> = diesel::sql_query(format!(
        "SELECT DISTINCT c.board_id AS id FROM cards c JOIN stages s ON s.id = c.stage_id \
         WHERE c.account_id = $1 AND c.sla_breached_at IS NULL AND {PAST_SLA}"
    ))
    .bind::<diesel::sql_types::Uuid, _>(account_id)
    .load(conn)
    .await?;
    Ok(boards.into_iter().map(|b| b.id).collect())
}

/// How long the board event log keeps frames, and how many per board (kanban.md).
pub const EVENT_LOG_DAYS: i32 = 7;
/// The most frames kept per board.
pub const EVENT_LOG_PER_BOARD: i64 = 10_000;

/// Prunes the account's board event logs to the last [`EVENT_LOG_DAYS`] days and at most
/// [`EVENT_LOG_PER_BOARD`] frames per board; answers how many frames went. A client asking
/// for older frames then gets `resync_required`.
pub async fn prune_events(conn: &mut AsyncPgConnection, account_id: Uuid) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM board_events e USING boards b \
         WHERE e.account_id = $1 AND b.id = e.board_id \
         AND (e.created_at < now() - make_interval(days => $2) OR e.seq <= b.seq - $3)",
    )
    .bind::<diesel::sql_types::Uuid, _>(account_id)
    .bind::<Integer, _>(EVENT_LOG_DAYS)
    .bind::<BigInt, _>(EVENT_LOG_PER_BOARD)
    .execute(conn)
    .await
}

/// The cards of the account assigned to or created by the user, oldest first (the
/// data-subject export).
pub async fn of_user(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Vec<Card>> {
    diesel::sql_query(format!(
        "{CARD_SELECT} WHERE c.account_id = $1 AND (c.assignee_id = $2 OR c.created_by = $2) \
         ORDER BY c.created_at, c.id"
    ))
    .bind::<diesel::sql_types::Uuid, _>(account_id)
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .load(conn)
    .await
}
