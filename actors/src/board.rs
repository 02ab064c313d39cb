//! Board actors: the single writer of each board (architecture.md, kanban.md).
//!
//! Every write to a board (its stages, cards, checklists) goes through the board's
//! [`BoardActor`], one at a time and in arrival order. The actor hands the write to the
//! [`BoardStore`] port, which runs it in one database transaction (the change, its history, the
//! board's `seq` bump and the event log) and answers the committed events. The actor publishes
//! them on the bus, then replies, so a client never sees an event for a write that failed and
//! the HTTP answer comes after the commit.
//!
//! The actor does not know what a write does: the command and the reply are the server's own
//! types, carried as `Box<dyn Any + Send>` (the server's kanban module puts its command enum in
//! and takes its typed result out). That keeps the schema and the rules of kanban.md in the
//! server, where the SQL is, and this crate free of both.

use std::any::Any;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message,
    WrapFuture,
};
use bytestring::ByteString;
use uuid::Uuid;

use crate::bus::{Audience, Event, EventBus, Topic};

/// A future the store answers with.
pub type StoreFuture = Pin<Box<dyn Future<Output = StoreOutcome> + Send>>;

/// A board of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BoardKey {
    /// The tenant.
    pub account_id: Uuid,
    /// The board.
    pub board_id: Uuid,
}

/// The persistence port of board writes, implemented by the server.
pub trait BoardStore: Send + Sync + 'static {
    /// Runs `command` on `board` in one transaction that also bumps the board's seq and logs
    /// the events it emits. Refusals are part of the reply and emit no event.
    fn execute(&self, board: BoardKey, command: Box<dyn Any + Send>) -> StoreFuture;

    /// The tenant's periodic board work (marking SLA breaches): the writes to run, each
    /// through its board's actor. Failures are the store's to log; they answer no work.
    fn sweep(&self, account_id: Uuid) -> SweepFuture;
}

/// The writes a sweep found, per board.
pub type SweepFuture = Pin<Box<dyn Future<Output = Vec<(Uuid, Box<dyn Any + Send>)>> + Send>>;

/// What a write produced.
pub struct StoreOutcome {
    /// The server's reply (its own result type, success or refusal).
    pub reply: Box<dyn Any + Send>,
    /// The committed events, in seq order (none for a refusal).
    pub events: Vec<BoardEvent>,
}

/// One committed board event, encoded once per audience variant.
#[derive(Debug, Clone)]
pub struct BoardEvent {
    /// The board's seq of this event.
    pub seq: i64,
    /// The frame every reader who may see it gets.
    pub frame: ByteString,
    /// For card events on a board whose cards are visible by scope: who sees what.
    pub cards: Option<Arc<CardAudience>>,
    /// `board.deleted`: the topic ends after this event.
    pub ends_topic: bool,
}

/// Who may see a card event on a `card_visibility: scoped` board (kanban.md, Access).
#[derive(Debug, Clone)]
pub struct CardAudience {
    /// The card's assignee before the write (`None`: the card did not exist).
    pub before: Option<Option<Uuid>>,
    /// The card's assignee after the write (`None`: the card no longer exists).
    pub after: Option<Option<Uuid>>,
    /// `seq.skip` under this seq, for readers who see the card neither before nor after.
    pub skip: ByteString,
    /// `card.deleted` under this seq, for readers who saw the card before but not after.
    pub gone: ByteString,
}

/// Which cards a subscriber may see on a scoped board (iam.md §2 card scopes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CardScope {
    /// Every card (admins, API keys, boards with `card_visibility: all`).
    #[default]
    All,
    /// Cards assigned to the user (agents).
    Own(Uuid),
    /// The user's own cards, unassigned ones, and cards of their team mates (supervisors).
    Team {
        /// The supervisor.
        user_id: Uuid,
        /// Users sharing a team with them.
        mates: HashSet<Uuid>,
    },
}

impl CardScope {
    /// Whether a card with this assignee is in scope.
    pub fn sees(&self, assignee: Option<Uuid>) -> bool {
        match self {
            CardScope::All => true,
            CardScope::Own(user) => assignee == Some(*user),
            CardScope::Team { user_id, mates } => match assignee {
                None => true,
                Some(a) => a == *user_id || mates.contains(&a),
            },
        }
    }
}

/// What a reader gets of a card event on a scoped board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardView {
    /// The event itself: they see the card after it (or saw the card it deletes).
    Full,
    /// `card.deleted` under the event's seq: they saw the card before, not after.
    Gone,
    /// `seq.skip`: they see the card neither before nor after.
    Skip,
}

impl CardScope {
    /// The view of a card event whose card had assignee `before` and has `after` (`None`:
    /// the card did not exist then). The live fan-out and the event-log replay both ask this.
    pub fn view(&self, before: Option<Option<Uuid>>, after: Option<Option<Uuid>>) -> CardView {
        let sees = |assignee: Option<Option<Uuid>>| assignee.is_some_and(|a| self.sees(a));
        if sees(after) || (after.is_none() && sees(before)) {
            CardView::Full
        } else if sees(before) {
            CardView::Gone
        } else {
            CardView::Skip
        }
    }
}

impl CardAudience {
    /// The frame a subscriber with `scope` gets for this event (`full` when they see the card
    /// after the write).
    pub fn frame_for<'a>(&'a self, scope: &CardScope, full: &'a ByteString) -> &'a ByteString {
        match scope.view(self.before, self.after) {
            CardView::Full => full,
            CardView::Gone => &self.gone,
            CardView::Skip => &self.skip,
        }
    }
}

/// A board actor with no write for this long stops; the next write starts a fresh one (so
/// writes naming boards that do not exist leave nothing behind).
const IDLE_STOP: Duration = Duration::from_secs(60);

/// One board's writer.
pub struct BoardActor {
    key: BoardKey,
    store: Arc<dyn BoardStore>,
    bus: EventBus,
    last_write: Instant,
}

impl BoardActor {
    /// The writer of `key`, persisting through `store` and publishing on `bus`.
    pub fn new(key: BoardKey, store: Arc<dyn BoardStore>, bus: EventBus) -> Self {
        Self {
            key,
            store,
            bus,
            last_write: Instant::now(),
        }
    }
}

impl Actor for BoardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(IDLE_STOP / 2, |act, ctx| {
            if act.last_write.elapsed() >= IDLE_STOP {
                ctx.stop();
            }
        });
    }
}

/// The board's actor could not take the write (no store configured, or it stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the board's actor is unavailable")]
pub struct BoardUnavailable;

/// A write for a board; answered with the store's reply after the events are published.
#[derive(Message)]
#[rtype(result = "Result<Box<dyn Any + Send>, BoardUnavailable>")]
pub struct BoardWrite {
    /// The board.
    pub board_id: Uuid,
    /// The server's command.
    pub command: Box<dyn Any + Send>,
}

impl Handler<BoardWrite> for BoardActor {
    type Result = AtomicResponse<Self, Result<Box<dyn Any + Send>, BoardUnavailable>>;

    /// Runs writes strictly one after another (an atomic response holds the mailbox).
    fn handle(&mut self, msg: BoardWrite, _: &mut Context<Self>) -> Self::Result {
        self.last_write = Instant::now();
        let run = self.store.execute(self.key, msg.command);
        AtomicResponse::new(Box::pin(run.into_actor(self).map(
            |outcome, act: &mut Self, _| {
                for event in outcome.events {
                    act.bus.publish(Event {
                        account_id: act.key.account_id,
                        topic: Topic::Board(act.key.board_id),
                        frame: event.frame,
                        ephemeral: false,
                        audience: match event.cards {
                            Some(cards) => Audience::Cards(cards),
                            None => Audience::All,
                        },
                        ends_topic: event.ends_topic,
                    });
                }
                Ok(outcome.reply)
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(before: Option<Option<Uuid>>, after: Option<Option<Uuid>>) -> CardAudience {
        CardAudience {
            before,
            after,
            skip: "skip".into(),
            gone: "gone".into(),
        }
    }

    #[test]
    fn scoped_readers_get_the_full_frame_a_deletion_or_a_skip() {
        let (ana, bia, sup) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let full: ByteString = "full".into();
        let agent = CardScope::Own(ana);
        let supervisor = CardScope::Team {
            user_id: sup,
            mates: [ana].into_iter().collect(),
        };
        // Ana's card moves: Ana sees it, Bia's scope does not.
        let moved = audience(Some(Some(ana)), Some(Some(ana)));
        assert_eq!(moved.frame_for(&agent, &full), "full");
        assert_eq!(moved.frame_for(&CardScope::Own(bia), &full), "skip");
        assert_eq!(moved.frame_for(&supervisor, &full), "full");
        assert_eq!(moved.frame_for(&CardScope::All, &full), "full");
        // Reassigned from Ana to Bia: Ana loses it.
        let handed = audience(Some(Some(ana)), Some(Some(bia)));
        assert_eq!(handed.frame_for(&agent, &full), "gone");
        assert_eq!(handed.frame_for(&CardScope::Own(bia), &full), "full");
        assert_eq!(handed.frame_for(&supervisor, &full), "gone");
        // Deleted: whoever saw it gets the deletion itself.
        let deleted = audience(Some(Some(ana)), None);
        assert_eq!(deleted.frame_for(&agent, &full), "full");
        assert_eq!(deleted.frame_for(&CardScope::Own(bia), &full), "skip");
        // Created unassigned: supervisors see it, agents do not.
        let created = audience(None, Some(None));
        assert_eq!(created.frame_for(&supervisor, &full), "full");
        assert_eq!(created.frame_for(&agent, &full), "skip");
    }
}
