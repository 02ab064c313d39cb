//! Board writes (kanban.md): what each command changes, checks and emits, inside the board
//! actor's transaction (see [`super::store`]). A refusal returns an error before anything is
//! emitted, and the transaction rolls back, so nothing is half-written.

use std::collections::HashSet;

use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::access;
use super::inputs::{
    BoardPatch, CardPatch, ChecklistItemPatch, CreateCard, MoveCard, NewChecklistItem, StageInput,
    StagePatch,
};
use super::positions::{self, GAP};
use super::store::{CardChange, Emitter};
use crate::auth::Principal;
use crate::db::audit::{self, AuditContext, AuditEvent};
use crate::db::boards::{self, Board, BoardChanges, NewStage, Stage, StageChanges};
use crate::db::cards::{self, Card, CardFields, HistoryEntry, NewCard, NewHistory};
use crate::db::checklists::{self, ChecklistItem};
use crate::db::users;
use crate::error::ApiError;

/// Most stages a board may have.
pub const MAX_STAGES: usize = 20;
/// Fewest stages a board may have.
pub const MIN_STAGES: usize = 2;

/// A write for one board, with who asks.
pub struct Command {
    /// The caller (`None`: the system, such as the SLA timer).
    pub principal: Option<Principal>,
    /// The caller's audit context.
    pub audit: AuditContext,
    /// What to do.
    pub op: Op,
}

/// The board writes.
pub enum Op {
    /// `PATCH /boards/{b}`.
    UpdateBoard(BoardPatch),
    /// `DELETE /boards/{b}`.
    DeleteBoard,
    /// `POST /boards/{b}/stages`.
    CreateStage(StageInput),
    /// `PATCH /boards/{b}/stages/{s}`.
    UpdateStage(Uuid, StagePatch),
    /// `DELETE /boards/{b}/stages/{s}?move_cards_to=`.
    DeleteStage {
        /// The stage.
        stage_id: Uuid,
        /// Where its cards go.
        move_cards_to: Option<Uuid>,
    },
    /// `POST /boards/{b}/stages/reorder`.
    ReorderStages(Vec<Uuid>),
    /// `POST /boards/{b}/cards`.
    CreateCard(CreateCard),
    /// `PATCH /boards/{b}/cards/{c}`.
    UpdateCard(Uuid, CardPatch),
    /// `POST /boards/{b}/cards/{c}/move`.
    MoveCard(Uuid, MoveCard),
    /// `DELETE /boards/{b}/cards/{c}`.
    DeleteCard(Uuid),
    /// `POST …/cards/{c}/checklist`.
    AddItem(Uuid, NewChecklistItem),
    /// `PATCH …/cards/{c}/checklist/{i}`.
    UpdateItem(Uuid, Uuid, ChecklistItemPatch),
    /// `DELETE …/cards/{c}/checklist/{i}`.
    DeleteItem(Uuid, Uuid),
    /// The SLA timer: marks the board's cards past their stage's SLA.
    MarkSlaBreaches,
}

/// What a write answers. Built once per write and moved straight into the HTTP answer, so
/// the size difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// A board with its stages.
    Board(BoardView),
    /// A stage.
    Stage(Stage),
    /// A card.
    Card(Card),
    /// A moved card and its history row (none for a same-stage reorder).
    Moved(Card, Option<HistoryEntry>),
    /// A checklist item.
    Item(ChecklistItem),
    /// Nothing (deletes, reorders).
    Done,
}

impl Reply {
    fn unexpected() -> ApiError {
        ApiError::internal("a board write answered with an unexpected reply")
    }

    /// The board of a board write.
    pub fn into_board(self) -> Result<BoardView, ApiError> {
        match self {
            Reply::Board(view) => Ok(view),
            _ => Err(Self::unexpected()),
        }
    }

    /// The stage of a stage write.
    pub fn into_stage(self) -> Result<Stage, ApiError> {
        match self {
            Reply::Stage(stage) => Ok(stage),
            _ => Err(Self::unexpected()),
        }
    }

    /// The card of a card write.
    pub fn into_card(self) -> Result<Card, ApiError> {
        match self {
            Reply::Card(card) => Ok(card),
            _ => Err(Self::unexpected()),
        }
    }

    /// The card and history row of a move.
    pub fn into_moved(self) -> Result<(Card, Option<HistoryEntry>), ApiError> {
        match self {
            Reply::Moved(card, entry) => Ok((card, entry)),
            _ => Err(Self::unexpected()),
        }
    }

    /// The item of a checklist write.
    pub fn into_item(self) -> Result<ChecklistItem, ApiError> {
        match self {
            Reply::Item(item) => Ok(item),
            _ => Err(Self::unexpected()),
        }
    }
}

/// A board with its stages in order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BoardView {
    /// The board.
    #[serde(flatten)]
    pub board: Board,
    /// Its stages.
    pub stages: Vec<Stage>,
}

/// Runs `command` on `board` (locked by the caller).
pub async fn apply(
    conn: &mut AsyncPgConnection,
    board: &Board,
    command: Command,
    events: &mut Emitter,
) -> Result<Reply, ApiError> {
    let Command {
        principal,
        audit,
        op,
    } = command;
    let writer = Writer {
        principal: principal.as_ref(),
        audit: &audit,
        board,
    };
    match op {
        Op::UpdateBoard(patch) => writer.update_board(conn, patch, events).await,
        Op::DeleteBoard => writer.delete_board(conn, events).await,
        Op::CreateStage(input) => writer.create_stage(conn, input, events).await,
        Op::UpdateStage(id, patch) => writer.update_stage(conn, id, patch, events).await,
        Op::DeleteStage {
            stage_id,
            move_cards_to,
        } => {
            writer
                .delete_stage(conn, stage_id, move_cards_to, events)
                .await
        }
        Op::ReorderStages(ids) => writer.reorder(conn, ids, events).await,
        Op::CreateCard(input) => writer.create_card(conn, input, events).await,
        Op::UpdateCard(id, patch) => writer.update_card(conn, id, patch, events).await,
        Op::MoveCard(id, input) => writer.move_card(conn, id, input, events).await,
        Op::DeleteCard(id) => writer.delete_card(conn, id, events).await,
        Op::MarkSlaBreaches => writer.mark_sla_breaches(conn, events).await,
        Op::AddItem(card, input) => {
            writer
                .checklist(conn, card, events, |conn, card, items| {
                    Box::pin(async move {
                        if items.len() >= checklists::MAX_ITEMS {
                            return Err(ApiError::Unprocessable(
                                format!(
                                    "a card holds at most {} checklist items",
                                    checklists::MAX_ITEMS
                                )
                                .into(),
                            ));
                        }
                        let position = items.iter().map(|i| i.position + 1).max().unwrap_or(0);
                        let item = checklists::insert(
                            conn,
                            card.account_id,
                            card.id,
                            &input.text,
                            input.is_required,
                            position,
                        )
                        .await?;
                        Ok(Reply::Item(item))
                    })
                })
                .await
        }
        Op::UpdateItem(card, item_id, patch) => {
            let user = writer.user_id();
            writer
                .checklist(conn, card, events, |conn, _, items| {
                    Box::pin(async move {
                        let before = items
                            .iter()
                            .find(|i| i.id == item_id)
                            .ok_or(ApiError::NotFound)?;
                        let completion = patch
                            .is_completed
                            .filter(|done| *done != before.is_completed);
                        let mut item = checklists::update(
                            conn,
                            item_id,
                            checklists::ItemChanges {
                                text: patch.text,
                                is_required: patch.is_required,
                                is_completed: patch.is_completed,
                                completed_by: completion.map(|done| if done { user } else { None }),
                                completed_at: completion.map(|done| done.then(chrono::Utc::now)),
                                updated_at: None,
                            },
                        )
                        .await?;
                        if let Some(position) = patch.position {
                            let mut order: Vec<Uuid> = items
                                .iter()
                                .map(|i| i.id)
                                .filter(|id| *id != item_id)
                                .collect();
                            let slot = usize::try_from(position).unwrap_or(0).min(order.len());
                            order.insert(slot, item_id);
                            checklists::set_order(conn, &order).await?;
                            item.position = slot as i32;
                        }
                        Ok(Reply::Item(item))
                    })
                })
                .await
        }
        Op::DeleteItem(card, item_id) => {
            writer
                .checklist(conn, card, events, |conn, _, items| {
                    Box::pin(async move {
                        if !items.iter().any(|i| i.id == item_id) {
                            return Err(ApiError::NotFound);
                        }
                        checklists::delete(conn, item_id).await?;
                        Ok(Reply::Done)
                    })
                })
                .await
        }
    }
}

/// Stored template items: every item gets its key.
pub fn template_json(items: Option<Vec<super::inputs::TemplateItem>>) -> Value {
    let items: Vec<Value> = items
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            json!({
                "key": item.key.unwrap_or_else(Uuid::now_v7),
                "text": item.text,
                "is_required": item.is_required,
            })
        })
        .collect();
    Value::Array(items)
}

/// A stage row for `input` at `position` on `board`.
pub fn new_stage(board: &Board, input: StageInput, position: i32) -> NewStage {
    NewStage {
        id: Uuid::now_v7(),
        account_id: board.account_id,
        board_id: board.id,
        name: input.name,
        color: input.color.unwrap_or_else(|| "#6B7280".into()),
        position,
        is_final: input.is_final,
        sla_hours: input.sla_hours,
        checklist_template: template_json(input.checklist_template),
    }
}

/// 409 for a duplicate stage name, other database errors as they are.
pub fn stage_conflict(e: diesel::result::Error) -> ApiError {
    match ApiError::from(e) {
        ApiError::Conflict { .. } => {
            ApiError::conflict("a stage with this name exists on the board")
        }
        other => other,
    }
}

fn board_json(board: &Board) -> Value {
    serde_json::to_value(board).unwrap_or(Value::Null)
}

fn card_json(card: &Card) -> Value {
    serde_json::to_value(card).unwrap_or(Value::Null)
}

struct Writer<'a> {
    principal: Option<&'a Principal>,
    audit: &'a AuditContext,
    board: &'a Board,
}

impl Writer<'_> {
    /// The acting user, if any.
    fn user_id(&self) -> Option<Uuid> {
        self.principal.and_then(|p| p.user_id)
    }

    /// The writer's card scope (the system writes every card).
    async fn scope(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> Result<whatpro_actors::CardScope, ApiError> {
        match self.principal {
            Some(principal) => access::card_scope(conn, principal).await,
            None => Ok(whatpro_actors::CardScope::All),
        }
    }

    async fn mark_sla_breaches(
        &self,
        conn: &mut AsyncPgConnection,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        for card_id in cards::mark_sla_breaches(conn, self.board.id).await? {
            let card = cards::find(conn, self.board.id, card_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            events.emit_card(
                "card.updated",
                json!({ "card": card_json(&card), "changed": ["sla_breached_at"] }),
                CardChange {
                    card_id,
                    stage_id: card.stage_id,
                    before: Some(card.assignee_id),
                    after: Some(card.assignee_id),
                },
            );
        }
        Ok(Reply::Done)
    }

    async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        action: &str,
        resource: &str,
        id: Uuid,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<(), ApiError> {
        let mut event = AuditEvent::success(Some(self.board.account_id), action, resource, id);
        if let Some(before) = before {
            event = event.with_before(before);
        }
        if let Some(after) = after {
            event = event.with_after(after);
        }
        audit::record(conn, self.audit, event).await?;
        Ok(())
    }

    /// Writes a history row of the acting user: `stages` is `(from, to)`.
    async fn history(
        &self,
        conn: &mut AsyncPgConnection,
        card_id: Uuid,
        action: &'static str,
        stages: (Option<Uuid>, Option<Uuid>),
        notes: Option<String>,
        metadata: Value,
    ) -> Result<HistoryEntry, ApiError> {
        Ok(cards::record_history(
            conn,
            &NewHistory {
                id: Uuid::now_v7(),
                account_id: self.board.account_id,
                card_id,
                board_id: self.board.id,
                action,
                from_stage_id: stages.0,
                to_stage_id: stages.1,
                actor_id: self.user_id(),
                notes,
                metadata,
            },
        )
        .await?)
    }

    async fn update_board(
        &self,
        conn: &mut AsyncPgConnection,
        patch: BoardPatch,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        if patch.is_default == Some(false) {
            return Err(ApiError::Unprocessable(
                "is_default can only be set to true; make another board the default instead".into(),
            ));
        }
        // A board update leaves the stages as they are: read once, for the status map check
        // and for the answer.
        let stages = boards::stages_of(conn, self.board.id).await?;
        if let Some(map) = patch
            .settings
            .as_ref()
            .and_then(|s| s.get("chatwoot_status_map"))
            .and_then(Value::as_object)
        {
            let foreign = map.values().filter_map(Value::as_str).any(|id| {
                Uuid::parse_str(id).map_or(true, |id| !stages.iter().any(|s| s.id == id))
            });
            if foreign {
                return Err(ApiError::field(
                    "settings.chatwoot_status_map",
                    "must map to stages of this board",
                ));
            }
        }
        if patch.is_default == Some(true) && !self.board.is_default {
            boards::lock_default(conn, self.board.account_id).await?;
            boards::make_default(conn, self.board.account_id, self.board.id).await?;
        }
        let board = boards::update(
            conn,
            self.board.id,
            BoardChanges {
                name: patch.name,
                description: patch.description,
                kind: patch.kind,
                settings: patch.settings,
                updated_at: None,
            },
        )
        .await?;
        events.set_scoped(board.is_scoped());
        self.record(
            conn,
            "board.updated",
            "board",
            board.id,
            Some(board_json(self.board)),
            Some(board_json(&board)),
        )
        .await?;
        events.emit("board.updated", json!({ "board": board }));
        Ok(Reply::Board(BoardView { board, stages }))
    }

    async fn delete_board(
        &self,
        conn: &mut AsyncPgConnection,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        if self.board.is_default {
            return Err(ApiError::Unprocessable(
                "the default board cannot be deleted; make another board the default first".into(),
            ));
        }
        boards::delete(conn, self.board.id).await?;
        self.record(
            conn,
            "board.deleted",
            "board",
            self.board.id,
            Some(board_json(self.board)),
            None,
        )
        .await?;
        events.emit_board_deleted();
        Ok(Reply::Done)
    }

    async fn stage_of_board(
        &self,
        conn: &mut AsyncPgConnection,
        stage_id: Uuid,
    ) -> Result<Option<Stage>, ApiError> {
        Ok(boards::stages_of(conn, self.board.id)
            .await?
            .into_iter()
            .find(|s| s.id == stage_id))
    }

    async fn create_stage(
        &self,
        conn: &mut AsyncPgConnection,
        input: StageInput,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let stages = boards::stages_of(conn, self.board.id).await?;
        if stages.len() >= MAX_STAGES {
            return Err(ApiError::Unprocessable(
                format!("a board has at most {MAX_STAGES} stages").into(),
            ));
        }
        let count = stages.len() as i32;
        let position = input.position.map_or(count, |p| p.min(count));
        let stage = new_stage(self.board, input, position);
        let id = stage.id;
        boards::insert_stages(conn, &[stage])
            .await
            .map_err(stage_conflict)?;
        let mut order: Vec<Uuid> = stages.iter().map(|s| s.id).collect();
        order.insert(position as usize, id);
        boards::set_stage_order(conn, &order).await?;
        let stage = self
            .stage_of_board(conn, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        self.record(
            conn,
            "stage.created",
            "stage",
            id,
            None,
            serde_json::to_value(&stage).ok(),
        )
        .await?;
        events.emit("stage.created", json!({ "stage": stage }));
        Ok(Reply::Stage(stage))
    }

    async fn update_stage(
        &self,
        conn: &mut AsyncPgConnection,
        stage_id: Uuid,
        patch: StagePatch,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let stages = boards::stages_of(conn, self.board.id).await?;
        let before = stages
            .iter()
            .find(|s| s.id == stage_id)
            .cloned()
            .ok_or(ApiError::NotFound)?;
        if patch.is_final == Some(true) && !stages.iter().any(|s| s.id != stage_id && !s.is_final) {
            return Err(ApiError::Unprocessable(
                "a board needs at least one non-final stage".into(),
            ));
        }
        let stage = boards::update_stage(
            conn,
            stage_id,
            StageChanges {
                name: patch.name,
                color: patch.color,
                is_final: patch.is_final,
                sla_hours: patch.sla_hours,
                checklist_template: patch.checklist_template.map(|t| template_json(Some(t))),
                auto_actions: patch.auto_actions.map(Value::Array),
                updated_at: None,
            },
        )
        .await
        .map_err(stage_conflict)?;
        self.record(
            conn,
            "stage.updated",
            "stage",
            stage_id,
            serde_json::to_value(&before).ok(),
            serde_json::to_value(&stage).ok(),
        )
        .await?;
        events.emit("stage.updated", json!({ "stage": stage }));
        Ok(Reply::Stage(stage))
    }

    async fn delete_stage(
        &self,
        conn: &mut AsyncPgConnection,
        stage_id: Uuid,
        move_cards_to: Option<Uuid>,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let stages = boards::stages_of(conn, self.board.id).await?;
        let stage = stages
            .iter()
            .find(|s| s.id == stage_id)
            .cloned()
            .ok_or(ApiError::NotFound)?;
        if stages.len() <= MIN_STAGES {
            return Err(ApiError::Unprocessable(
                format!("a board needs at least {MIN_STAGES} stages").into(),
            ));
        }
        let remaining: Vec<&Stage> = stages.iter().filter(|s| s.id != stage_id).collect();
        if remaining.iter().all(|s| s.is_final) {
            return Err(ApiError::Unprocessable(
                "a board needs at least one non-final stage".into(),
            ));
        }
        let card_ids = cards::ids_in_stage(conn, stage_id, None).await?;
        let target = match move_cards_to {
            Some(target) => Some(
                remaining
                    .iter()
                    .find(|s| s.id == target)
                    .copied()
                    .ok_or_else(|| {
                        ApiError::Unprocessable(
                            "move_cards_to must be another stage of this board".into(),
                        )
                    })?,
            ),
            None => None,
        };
        if !card_ids.is_empty() && target.is_none() {
            return Err(ApiError::Unprocessable(
                "the stage still has cards; name a stage in move_cards_to".into(),
            ));
        }
        if let Some(target) = target {
            let mut bottom = cards::last_position(conn, target.id, None).await?;
            for card_id in &card_ids {
                let position = match positions::between(bottom, None) {
                    Some(p) => p,
                    None => return Err(ApiError::Unprocessable("the target stage is full".into())),
                };
                cards::place(conn, *card_id, target.id, position, true, false).await?;
                bottom = Some(position);
                self.history(
                    conn,
                    *card_id,
                    stage_change_action(&stage, target),
                    (Some(stage_id), Some(target.id)),
                    None,
                    json!({ "reason": "stage_deleted" }),
                )
                .await?;
            }
        }
        boards::delete_stage(conn, stage_id).await?;
        let order: Vec<Uuid> = remaining.iter().map(|s| s.id).collect();
        boards::set_stage_order(conn, &order).await?;
        self.record(
            conn,
            "stage.deleted",
            "stage",
            stage_id,
            serde_json::to_value(&stage).ok(),
            None,
        )
        .await?;
        events.emit(
            "stage.deleted",
            json!({ "stage_id": stage_id, "moved_cards_to": target.map(|t| t.id),
                    "moved_card_ids": card_ids }),
        );
        Ok(Reply::Done)
    }

    async fn reorder(
        &self,
        conn: &mut AsyncPgConnection,
        ids: Vec<Uuid>,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let stages = boards::stages_of(conn, self.board.id).await?;
        let current: HashSet<Uuid> = stages.iter().map(|s| s.id).collect();
        let given: HashSet<Uuid> = ids.iter().copied().collect();
        if ids.len() != stages.len() || given.len() != ids.len() || given != current {
            return Err(ApiError::Unprocessable(
                "stage_ids must list each of the board's stages exactly once".into(),
            ));
        }
        boards::set_stage_order(conn, &ids).await?;
        self.record(
            conn,
            "stages.reordered",
            "board",
            self.board.id,
            Some(json!({ "stage_ids": stages.iter().map(|s| s.id).collect::<Vec<_>>() })),
            Some(json!({ "stage_ids": ids })),
        )
        .await?;
        events.emit("stages.reordered", json!({ "stage_ids": ids }));
        Ok(Reply::Done)
    }

    /// 400 unless `assignee` is an active user of the account; 403 unless the writer may give
    /// cards to them.
    async fn check_assignee(
        &self,
        conn: &mut AsyncPgConnection,
        scope: &whatpro_actors::CardScope,
        assignee: Uuid,
    ) -> Result<(), ApiError> {
        let active = users::find(conn, self.board.account_id, assignee)
            .await?
            .is_some_and(|u| u.is_active());
        if !active {
            return Err(ApiError::field(
                "assignee_id",
                "must be an active user of the account",
            ));
        }
        access::check_assignee(scope, assignee)
    }

    async fn create_card(
        &self,
        conn: &mut AsyncPgConnection,
        input: CreateCard,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let scope = self.scope(conn).await?;
        let stage = self
            .stage_of_board(conn, input.stage_id)
            .await?
            .ok_or_else(|| {
                ApiError::Unprocessable("stage_id is not a stage of this board".into())
            })?;
        let title = input
            .title
            .clone()
            .or_else(|| input.contact_name.clone())
            .ok_or_else(|| ApiError::field("title", "required when there is no contact_name"))?;
        // An agent's card is theirs (kanban.md); anyone else may leave it unassigned.
        let assignee = match (&scope, input.assignee_id) {
            (whatpro_actors::CardScope::Own(me), None) => Some(*me),
            (_, assignee) => assignee,
        };
        if let Some(assignee) = assignee {
            self.check_assignee(conn, &scope, assignee).await?;
        }
        if let Some(conversation) = input.chatwoot_conversation_id {
            if let Some(existing) =
                cards::by_conversation(conn, self.board.account_id, conversation).await?
            {
                return Err(ApiError::Conflict {
                    message: "the conversation already has a card".into(),
                    details: Some(json!({ "card_id": existing })),
                });
            }
        }
        let (_, first) = cards::neighbours_at(conn, stage.id, 0, None).await?;
        let position = match positions::between(None, first) {
            Some(p) => p,
            None => renumber_then_top(conn, stage.id).await?,
        };
        let id = Uuid::now_v7();
        cards::insert(
            conn,
            &NewCard {
                id,
                account_id: self.board.account_id,
                board_id: self.board.id,
                stage_id: stage.id,
                position,
                fields: CardFields {
                    title,
                    value: input.value,
                    priority: input.priority.unwrap_or_else(|| "medium".into()),
                    due_date: input.due_date,
                    tags: input.tags.unwrap_or_default(),
                    custom_fields: input.custom_fields.unwrap_or_else(|| json!({})),
                    notes: input.notes,
                    assignee_id: assignee,
                    contact_name: input.contact_name,
                    contact_phone: input.contact_phone,
                    contact_email: input.contact_email,
                    contact_avatar_url: input.contact_avatar_url,
                },
                chatwoot_conversation_id: input.chatwoot_conversation_id,
                chatwoot_contact_id: input.chatwoot_contact_id,
                created_by: self.user_id(),
            },
        )
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict { .. } => ApiError::conflict("the conversation already has a card"),
            other => other,
        })?;
        self.history(conn, id, "created", (None, Some(stage.id)), None, json!({}))
            .await?;
        checklists::apply_template(conn, self.board.account_id, id, &stage).await?;
        let card = cards::find(conn, self.board.id, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        events.emit_card(
            "card.created",
            json!({ "card": card_json(&card) }),
            CardChange {
                card_id: id,
                stage_id: stage.id,
                before: None,
                after: Some(card.assignee_id),
            },
        );
        Ok(Reply::Card(card))
    }

    /// The card, if the caller may see it (404 otherwise) and write it (403).
    async fn writable_card(
        &self,
        conn: &mut AsyncPgConnection,
        scope: &whatpro_actors::CardScope,
        card_id: Uuid,
        verb: &str,
        claiming: bool,
    ) -> Result<Card, ApiError> {
        let card = cards::lock(conn, self.board.id, card_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        let visible = !self.board.is_scoped() || scope.sees(card.assignee_id);
        // An agent claiming an unassigned card is the one write outside their own cards.
        let claim = claiming && card.assignee_id.is_none();
        if !visible && !claim {
            return Err(ApiError::NotFound);
        }
        if !claim {
            access::check_write(scope, card.assignee_id, verb)?;
        }
        Ok(card)
    }

    async fn update_card(
        &self,
        conn: &mut AsyncPgConnection,
        card_id: Uuid,
        patch: CardPatch,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let scope = self.scope(conn).await?;
        let claiming =
            patch.assignee_id.flatten().is_some() && patch.assignee_id.flatten() == self.user_id();
        let before = self
            .writable_card(conn, &scope, card_id, "change", claiming)
            .await?;
        if let Some(version) = patch.version {
            if version != before.version {
                return Err(version_conflict(before.version));
            }
        }
        let contact_change = patch.contact_name.is_some()
            || patch.contact_phone.is_some()
            || patch.contact_email.is_some()
            || patch.contact_avatar_url.is_some();
        if contact_change && before.chatwoot_conversation_id.is_some() {
            return Err(ApiError::Unprocessable(
                "the contact of a Chatwoot conversation's card comes from Chatwoot".into(),
            ));
        }
        if let Some(Some(assignee)) = patch.assignee_id {
            if Some(assignee) != before.assignee_id {
                self.check_assignee(conn, &scope, assignee).await?;
            }
        }
        let mut fields = CardFields::of(&before);
        let mut changed: Vec<&str> = Vec::new();
        macro_rules! set {
            ($name:ident) => {
                if let Some(value) = patch.$name {
                    if value != fields.$name {
                        fields.$name = value;
                        changed.push(stringify!($name));
                    }
                }
            };
        }
        set!(title);
        set!(value);
        set!(priority);
        set!(due_date);
        set!(tags);
        set!(custom_fields);
        set!(notes);
        set!(assignee_id);
        set!(contact_name);
        set!(contact_phone);
        set!(contact_email);
        set!(contact_avatar_url);
        if changed.is_empty() {
            return Ok(Reply::Card(before));
        }
        cards::update_fields(conn, card_id, &fields).await?;
        let assignment = changed.contains(&"assignee_id");
        for action in ["updated", "assigned"] {
            if action == "assigned" && !assignment {
                continue;
            }
            self.history(
                conn,
                card_id,
                action,
                (None, None),
                None,
                if action == "assigned" {
                    json!({ "from": before.assignee_id, "to": fields.assignee_id })
                } else {
                    json!({ "changed": changed })
                },
            )
            .await?;
        }
        let card = cards::find(conn, self.board.id, card_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        events.emit_card(
            "card.updated",
            json!({ "card": card_json(&card), "changed": changed }),
            CardChange {
                card_id,
                stage_id: card.stage_id,
                before: Some(before.assignee_id),
                after: Some(card.assignee_id),
            },
        );
        Ok(Reply::Card(card))
    }

    async fn move_card(
        &self,
        conn: &mut AsyncPgConnection,
        card_id: Uuid,
        input: MoveCard,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let placements = usize::from(input.before_card_id.is_some())
            + usize::from(input.after_card_id.is_some())
            + usize::from(input.index.is_some());
        if placements > 1 {
            return Err(ApiError::BadRequest(
                "send at most one of before_card_id, after_card_id and index".into(),
            ));
        }
        let scope = self.scope(conn).await?;
        let card = self
            .writable_card(conn, &scope, card_id, "move", false)
            .await?;
        if let Some(version) = input.version {
            if version != card.version {
                return Err(version_conflict(card.version));
            }
        }
        let stages = boards::stages_of(conn, self.board.id).await?;
        let target = stages
            .iter()
            .find(|s| s.id == input.stage_id)
            .ok_or_else(|| {
                ApiError::Unprocessable("stage_id is not a stage of this board".into())
            })?;
        let source = stages.iter().find(|s| s.id == card.stage_id);
        let stage_changed = card.stage_id != target.id;
        if stage_changed && target.is_final && card.checklist_required_open > 0 {
            let open = open_required_items(conn, card_id).await?;
            return Err(ApiError::UnprocessableWith {
                message: "complete the required checklist items before closing the card".into(),
                details: json!({ "open_item_ids": open }),
            });
        }
        // The slot: an index among the target stage's other cards.
        let index = match (input.before_card_id, input.after_card_id, input.index) {
            (Some(neighbour), _, _) | (_, Some(neighbour), _) => {
                let at = cards::index_in_stage(conn, target.id, neighbour, card_id)
                    .await?
                    .ok_or_else(|| {
                        ApiError::Unprocessable(
                            "the neighbour card is not in the target stage".into(),
                        )
                    })?;
                if input.after_card_id.is_some() {
                    at + 1
                } else {
                    at
                }
            }
            (_, _, Some(index)) => index,
            _ => 0,
        };
        let (above, below) = cards::neighbours_at(conn, target.id, index, Some(card_id)).await?;
        let mut renumbered = None;
        let position = match positions::between(above, below) {
            Some(position) => position,
            None => {
                let mut order = cards::ids_in_stage(conn, target.id, Some(card_id)).await?;
                let slot = usize::try_from(index)
                    .unwrap_or(usize::MAX)
                    .min(order.len());
                order.insert(slot, card_id);
                let numbered = cards::renumber(conn, &order, GAP).await?;
                let position = numbered[slot].1;
                renumbered = Some(numbered);
                position
            }
        };
        let placed = cards::place(conn, card_id, target.id, position, stage_changed, true).await?;
        let history = if stage_changed {
            Some(
                self.history(
                    conn,
                    card_id,
                    source.map_or("moved", |s| stage_change_action(s, target)),
                    (Some(card.stage_id), Some(target.id)),
                    input.notes,
                    json!({}),
                )
                .await?,
            )
        } else {
            None
        };
        let added = if stage_changed {
            checklists::apply_template(conn, self.board.account_id, card_id, target).await?
        } else {
            0
        };
        // The card read under lock, as the move left it; read again only when template
        // items changed its checklist counts.
        let moved = if added > 0 {
            cards::find(conn, self.board.id, card_id)
                .await?
                .ok_or(ApiError::NotFound)?
        } else {
            let mut moved = card.clone();
            placed.apply(&mut moved, target.id, position);
            moved
        };
        let mut payload = json!({
            "card": card_json(&moved),
            "from_stage_id": card.stage_id,
            "to_stage_id": target.id,
            "history_id": history.as_ref().map(|h| h.id),
            "actor_id": self.user_id(),
            "automation_id": Value::Null,
        });
        if let Some(numbered) = renumbered {
            payload["renumbered"] = numbered
                .iter()
                .map(|(id, position)| json!({ "id": id, "position": position }))
                .collect();
        }
        events.emit_card(
            "card.moved",
            payload,
            CardChange {
                card_id,
                stage_id: target.id,
                before: Some(card.assignee_id),
                after: Some(moved.assignee_id),
            },
        );
        Ok(Reply::Moved(moved, history))
    }

    /// A checklist write: the card must be visible (404) and writable (403); the change bumps
    /// the card's version and emits `card.updated` with `changed: ["checklist"]`.
    async fn checklist<F>(
        &self,
        conn: &mut AsyncPgConnection,
        card_id: Uuid,
        events: &mut Emitter,
        change: F,
    ) -> Result<Reply, ApiError>
    where
        F: for<'c> FnOnce(
            &'c mut AsyncPgConnection,
            &'c Card,
            &'c [ChecklistItem],
        ) -> futures_util::future::BoxFuture<'c, Result<Reply, ApiError>>,
    {
        let scope = self.scope(conn).await?;
        let card = self
            .writable_card(conn, &scope, card_id, "change", false)
            .await?;
        let items = checklists::of_card(conn, card_id).await?;
        let reply = change(conn, &card, &items).await?;
        cards::bump_version(conn, card_id).await?;
        let updated = cards::find(conn, self.board.id, card_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        events.emit_card(
            "card.updated",
            json!({ "card": card_json(&updated), "changed": ["checklist"] }),
            CardChange {
                card_id,
                stage_id: updated.stage_id,
                before: Some(card.assignee_id),
                after: Some(updated.assignee_id),
            },
        );
        Ok(reply)
    }

    async fn delete_card(
        &self,
        conn: &mut AsyncPgConnection,
        card_id: Uuid,
        events: &mut Emitter,
    ) -> Result<Reply, ApiError> {
        let scope = self.scope(conn).await?;
        let card = cards::lock(conn, self.board.id, card_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        if self.board.is_scoped() && !scope.sees(card.assignee_id) {
            return Err(ApiError::NotFound);
        }
        cards::delete(conn, card_id).await?;
        events.emit_card(
            "card.deleted",
            json!({ "card_id": card_id, "stage_id": card.stage_id }),
            CardChange {
                card_id,
                stage_id: card.stage_id,
                before: Some(card.assignee_id),
                after: None,
            },
        );
        Ok(Reply::Done)
    }
}

/// The history action of a stage change: `closed` into a final stage from a non-final one,
/// `reopened` the reverse, `moved` otherwise.
fn stage_change_action(from: &Stage, to: &Stage) -> &'static str {
    match (from.is_final, to.is_final) {
        (false, true) => "closed",
        (true, false) => "reopened",
        _ => "moved",
    }
}

fn version_conflict(current: i32) -> ApiError {
    ApiError::Conflict {
        message: "the card changed since you read it".into(),
        details: Some(json!({ "current_version": current })),
    }
}

/// Renumbers a stage whose first card sits at the bottom of the key space; answers the top.
async fn renumber_then_top(conn: &mut AsyncPgConnection, stage_id: Uuid) -> Result<i64, ApiError> {
    let order = cards::ids_in_stage(conn, stage_id, None).await?;
    cards::renumber(conn, &order, GAP).await?;
    Ok(-GAP)
}

async fn open_required_items(
    conn: &mut AsyncPgConnection,
    card_id: Uuid,
) -> Result<Vec<Uuid>, ApiError> {
    Ok(checklists::open_required(conn, card_id).await?)
}
