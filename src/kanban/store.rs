//! The [`BoardStore`] port on PostgreSQL: one tenant transaction per board write.
//!
//! The transaction locks the board row (the write order across nodes), applies the command
//! ([`super::commands`]), then gives each emitted event the next seq, logs it in
//! `board_events` and stores the board's new seq, all before commit. Each frame is serialized
//! once here; on a `card_visibility: scoped` board the `seq.skip` and `card.deleted` stand-ins
//! are encoded once too, and the supervisor picks one per subscriber.

use std::any::Any;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use uuid::Uuid;
use whatpro_actors::{BoardEvent, BoardKey, BoardStore, CardAudience, StoreOutcome};

use super::commands::{self, Command, Reply};
use crate::db::cards::{self as card_rows, LoggedEvent};
use crate::db::{self, boards, Database};
use crate::error::ApiError;

/// The board store of the running server.
pub struct DbBoardStore {
    db: Database,
}

impl DbBoardStore {
    /// A store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl BoardStore for DbBoardStore {
    /// Prunes the event logs, then finds the boards with cards to mark past their SLA. The
    /// marking itself is idempotent (a marked card is skipped), so two nodes sweeping the
    /// same tenant at once mark each card once; no advisory lock is needed for that.
    fn sweep(&self, account_id: Uuid) -> whatpro_actors::board::SweepFuture {
        let db = self.db.clone();
        Box::pin(async move {
            let boards = db::tenant_tx(&db, account_id, |conn| {
                Box::pin(async move {
                    // The tenant's timer also keeps the event logs within their bounds.
                    card_rows::prune_events(conn, account_id).await?;
                    Ok::<_, ApiError>(card_rows::boards_with_sla_breaches(conn, account_id).await?)
                })
            })
            .await;
            match boards {
                Ok(boards) => boards
                    .into_iter()
                    .map(|board_id| {
                        let command: Box<dyn Any + Send> = Box::new(Command {
                            principal: None,
                            audit: crate::db::audit::AuditContext::system(),
                            op: commands::Op::MarkSlaBreaches,
                        });
                        (board_id, command)
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(%account_id, error = %e, "SLA sweep failed");
                    Vec::new()
                }
            }
        })
    }

    fn execute(
        &self,
        board: BoardKey,
        command: Box<dyn Any + Send>,
    ) -> whatpro_actors::board::StoreFuture {
        let db = self.db.clone();
        Box::pin(async move {
            let result = match command.downcast::<Command>() {
                Ok(command) => run(&db, board, *command).await,
                Err(_) => Err(ApiError::internal("not a kanban command")),
            };
            match result {
                Ok((reply, events)) => StoreOutcome {
                    reply: Box::new(Ok::<Reply, ApiError>(reply)),
                    events,
                },
                Err(e) => StoreOutcome {
                    reply: Box::new(Err::<Reply, ApiError>(e)),
                    events: Vec::new(),
                },
            }
        })
    }
}

async fn run(
    db: &Database,
    key: BoardKey,
    command: Command,
) -> Result<(Reply, Vec<BoardEvent>), ApiError> {
    db::tenant_tx(db, key.account_id, |conn| {
        Box::pin(async move {
            let board = boards::lock(conn, key.account_id, key.board_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let mut events = Emitter::new(key, board.seq, board.is_scoped());
            let mut reply = commands::apply(conn, &board, command, &mut events).await?;
            let committed = events.commit(conn).await?;
            // A board in the answer carries the seq its own write reached.
            if let (Reply::Board(view), Some(last)) = (&mut reply, committed.last()) {
                view.board.seq = last.seq;
            }
            Ok::<_, ApiError>((reply, committed))
        })
    })
    .await
}

/// The `seq.skip` stand-in of a board event.
pub fn skip_frame(board_id: Uuid, seq: i64) -> Value {
    json!({"event": "seq.skip", "board_id": board_id, "seq": seq})
}

/// The `card.deleted` stand-in of a board event, for a reader who no longer sees the card.
pub fn gone_frame(board_id: Uuid, seq: i64, card_id: Uuid, stage_id: Value) -> Value {
    json!({"event": "card.deleted", "board_id": board_id, "seq": seq,
           "card_id": card_id, "stage_id": stage_id})
}

/// A card event's audience facts.
#[derive(Debug, Clone, Copy)]
pub struct CardChange {
    /// The card.
    pub card_id: Uuid,
    /// Its stage after the write (before, for a deletion).
    pub stage_id: Uuid,
    /// Assignee before (`None`: the card is new).
    pub before: Option<Option<Uuid>>,
    /// Assignee after (`None`: the card is gone).
    pub after: Option<Option<Uuid>>,
}

struct Pending {
    kind: &'static str,
    payload: Map<String, Value>,
    card: Option<CardChange>,
    ends_topic: bool,
}

/// Collects a write's events; [`Emitter::commit`] numbers, logs and encodes them.
pub struct Emitter {
    key: BoardKey,
    seq: i64,
    scoped: bool,
    pending: Vec<Pending>,
}

impl Emitter {
    fn new(key: BoardKey, seq: i64, scoped: bool) -> Self {
        Self {
            key,
            seq,
            scoped,
            pending: Vec::new(),
        }
    }

    /// Whether the board hides cards by scope (a settings change updates it).
    pub fn set_scoped(&mut self, scoped: bool) {
        self.scoped = scoped;
    }

    /// A board or stage event.
    pub fn emit(&mut self, kind: &'static str, payload: Value) {
        self.push(kind, payload, None, false);
    }

    /// A card event.
    pub fn emit_card(&mut self, kind: &'static str, payload: Value, change: CardChange) {
        self.push(kind, payload, Some(change), false);
    }

    /// `board.deleted`: the last event of the topic.
    pub fn emit_board_deleted(&mut self) {
        self.push("board.deleted", json!({}), None, true);
    }

    fn push(&mut self, kind: &'static str, payload: Value, card: Option<CardChange>, ends: bool) {
        let payload = match payload {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self.pending.push(Pending {
            kind,
            payload,
            card,
            ends_topic: ends,
        });
    }

    /// Numbers the events after the board's seq, logs them (unless the board is gone) and
    /// stores the new seq.
    async fn commit(
        self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<Vec<BoardEvent>, ApiError> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let board_id = self.key.board_id;
        let mut seq = self.seq;
        let mut logged = Vec::with_capacity(self.pending.len());
        let mut events = Vec::with_capacity(self.pending.len());
        let mut board_gone = false;
        for pending in self.pending {
            seq += 1;
            let mut frame = Map::with_capacity(pending.payload.len() + 3);
            frame.insert("event".into(), pending.kind.into());
            frame.insert("board_id".into(), json!(board_id));
            frame.insert("seq".into(), seq.into());
            frame.extend(pending.payload);
            // `board.updated` shows the board as of this event.
            if let Some(board) = frame.get_mut("board").and_then(Value::as_object_mut) {
                board.insert("seq".into(), seq.into());
            }
            let frame = Value::Object(frame);
            let encoded: bytestring::ByteString = frame.to_string().into();
            let cards = pending.card.filter(|_| self.scoped).map(|change| {
                Arc::new(CardAudience {
                    before: change.before,
                    after: change.after,
                    skip: skip_frame(board_id, seq).to_string().into(),
                    gone: gone_frame(board_id, seq, change.card_id, json!(change.stage_id))
                        .to_string()
                        .into(),
                })
            });
            board_gone |= pending.ends_topic;
            logged.push(LoggedEvent {
                account_id: self.key.account_id,
                board_id,
                seq,
                frame,
                card_id: pending.card.map(|c| c.card_id),
                assignee_before: pending.card.and_then(|c| c.before.flatten()),
                assignee_after: pending.card.and_then(|c| c.after.flatten()),
            });
            events.push(BoardEvent {
                seq,
                frame: encoded,
                cards,
                ends_topic: pending.ends_topic,
            });
        }
        if !board_gone {
            card_rows::log_events(conn, &logged).await?;
            boards::set_seq(conn, board_id, seq).await?;
        }
        Ok(events)
    }
}
