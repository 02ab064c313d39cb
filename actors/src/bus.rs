//! The event bus: how an event reaches the websocket sessions that want it.
//!
//! An [`Event`] is serialized once by its writer; the bus and the supervisors only move the
//! shared [`ByteString`] around, so fan-out costs no per-recipient encoding. In-process (the
//! default, one node) the bus hands the event to the tenant's live supervisor, which offers it
//! to its subscribed sessions. A tenant without a live supervisor has no sessions on this node,
//! so there is nobody to deliver to. A cross-node transport (Redis pub/sub, architecture.md
//! "Scale-out") plugs in here by relaying every event to each node's own registry.

use std::sync::Arc;

use actix::Message;
use bytestring::ByteString;
use uuid::Uuid;

use crate::board::CardAudience;
use crate::registry::TenantRegistry;
use crate::stats::{RuntimeStats, EVENT_KINDS};

/// Where an event goes within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Every session of the tenant (presence, feature flags): needs no subscription.
    Tenant,
    /// `board:{id}` subscribers.
    Board(Uuid),
    /// `room:{id}` subscribers.
    Room(Uuid),
    /// `instances:{account_id}` subscribers.
    Instances,
}

impl Topic {
    /// Index into [`EVENT_KINDS`] for metrics.
    fn kind_index(self) -> usize {
        match self {
            Topic::Tenant => 0,
            Topic::Board(_) => 1,
            Topic::Room(_) => 2,
            Topic::Instances => 3,
        }
    }

    /// The metrics label of this topic's kind.
    pub fn kind(self) -> &'static str {
        EVENT_KINDS[self.kind_index()]
    }
}

/// One event, already serialized.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Event {
    /// The tenant; events never cross tenants.
    pub account_id: Uuid,
    /// The audience within the tenant.
    pub topic: Topic,
    /// The JSON frame, shared by every recipient.
    pub frame: ByteString,
    /// Ephemeral events (typing, presence) are dropped for sessions whose queue is over half
    /// full, instead of being queued.
    pub ephemeral: bool,
    /// Who gets `frame` and who a stand-in (`seq.skip`, `card.deleted`).
    pub audience: Audience,
    /// The topic ends with this event (`board.deleted`): its subscriptions are dropped and
    /// each subscriber is told `unsubscribed` with reason `deleted`.
    pub ends_topic: bool,
}

/// Which subscribers of the topic get the event's frame.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every subscriber.
    All,
    /// A card event on a scoped board: each subscriber's card scope decides.
    Cards(Arc<CardAudience>),
}

impl Event {
    /// Serializes `payload` once into a state event for `topic`.
    pub fn new<T: serde::Serialize>(
        account_id: Uuid,
        topic: Topic,
        payload: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            account_id,
            topic,
            frame: serde_json::to_string(payload)?.into(),
            ephemeral: false,
            audience: Audience::All,
            ends_topic: false,
        })
    }
}

/// Publishes events to the sessions of this node.
#[derive(Clone)]
pub struct EventBus {
    registry: TenantRegistry,
    stats: Arc<RuntimeStats>,
}

impl EventBus {
    /// A bus delivering through `registry`'s live supervisors.
    pub fn new(registry: TenantRegistry) -> Self {
        let stats = registry.stats();
        Self { registry, stats }
    }

    /// Publishes an event. Never blocks and never starts a tenant: a tenant with no live
    /// supervisor has no sessions here.
    pub fn publish(&self, event: Event) {
        RuntimeStats::incr(&self.stats.events_published[event.topic.kind_index()]);
        if let Some(supervisor) = self.registry.get(event.account_id) {
            supervisor.do_send(event);
        }
    }
}
