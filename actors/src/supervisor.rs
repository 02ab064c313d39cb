//! The tenant supervisor: one actor per active account, owning that tenant's realtime state.
//!
//! It holds the tenant's connected sessions and their topic subscriptions, fans events out to
//! them, and runs the tenant's timers. It stops itself after an idle period with no sessions;
//! the [`TenantRegistry`] restarts it on next use, or at once if it died.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, MessageResult,
    ResponseFuture,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::board::{BoardActor, BoardKey, BoardUnavailable, BoardWrite, CardScope};
use crate::bus::{Audience, Event, EventBus, Topic};
use crate::outbound::{CloseFrame, Outbound};
use crate::presence::{self, Presence};
use crate::protocol::TopicName;
use crate::registry::TenantRegistry;
use crate::session::TopicAccess;
use crate::usage::{UsageCounters, UsageDelta};
use actix::ActorFutureExt;

/// A timer's state, as `/admin/tenants` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TimerSnapshot {
    /// Timer name (`idle_check`, later `inbox_sync`, `provider_health`, ...).
    pub name: &'static str,
    /// Seconds between runs.
    pub interval_s: u64,
    /// When it runs next.
    pub next_run_at: DateTime<Utc>,
    /// When it last ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// `ok` or an error summary.
    pub last_result: Option<String>,
    /// Failures in a row (drives backoff).
    pub consecutive_failures: u32,
}

/// What a live supervisor reports about itself.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSnapshot {
    /// The tenant.
    pub account_id: Uuid,
    /// When this supervisor (incarnation) started.
    pub started_at: DateTime<Utc>,
    /// Connected websocket sessions.
    pub sessions: usize,
    /// Board actors loaded.
    pub boards_loaded: usize,
    /// Chat-room actors loaded.
    pub rooms_loaded: usize,
    /// The supervisor's timers.
    pub timers: Vec<TimerSnapshot>,
}

struct SessionEntry {
    user_id: Option<Uuid>,
    access: Arc<dyn TopicAccess>,
    counts_for_presence: bool,
    credentials: Vec<Uuid>,
    outbound: Outbound,
    topics: HashSet<Topic>,
}

/// One tenant's supervisor.
pub struct TenantSupervisor {
    account_id: Uuid,
    started_at: DateTime<Utc>,
    registry: TenantRegistry,
    idle_timeout: Duration,
    idle_since: Option<Instant>,
    sessions: HashMap<Uuid, SessionEntry>,
    /// Per topic, its subscribed sessions and the card scope each reads with.
    subscribers: HashMap<Topic, HashMap<Uuid, CardScope>>,
    boards: HashMap<Uuid, Addr<BoardActor>>,
    timers: Vec<TimerSnapshot>,
    usage: UsageCounters,
    facts: Option<TenantFacts>,
    sweeping: bool,
    presence: Presence,
}

/// Tenant facts that hot paths need, cached by the supervisor (tenancy.md §4): the effective
/// feature flags and access mode. Loaded by the server on first need; every change replaces
/// or clears them before its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TenantFacts {
    /// Kanban boards.
    pub kanban: bool,
    /// Internal chat.
    pub internal_chat: bool,
    /// Analytics.
    pub analytics: bool,
    /// Writes refused (billing overdue).
    pub read_only: bool,
}

impl TenantSupervisor {
    /// A supervisor for `account_id`, registered in `registry`.
    pub fn new(account_id: Uuid, registry: TenantRegistry) -> Self {
        Self {
            account_id,
            started_at: Utc::now(),
            idle_timeout: registry.config().idle_timeout,
            registry,
            idle_since: Some(Instant::now()),
            sessions: HashMap::new(),
            subscribers: HashMap::new(),
            boards: HashMap::new(),
            timers: Vec::new(),
            usage: UsageCounters::default(),
            facts: None,
            sweeping: false,
            presence: Presence::default(),
        }
    }

    fn timer(&mut self, name: &'static str) -> Option<&mut TimerSnapshot> {
        self.timers.iter_mut().find(|t| t.name == name)
    }

    /// Hands the unflushed usage to the sink; what fails to flush is kept for the next tick.
    fn flush_usage(
        &mut self,
    ) -> Option<impl std::future::Future<Output = Vec<(UsageDelta, Result<(), String>)>>> {
        let sink = self.registry.usage_sink()?;
        let deltas = self.usage.take(self.account_id);
        Some(async move {
            let mut results = Vec::with_capacity(deltas.len());
            for delta in deltas {
                let result = sink.flush(delta.clone()).await;
                results.push((delta, result));
            }
            results
        })
    }

    fn after_flush(&mut self, results: Vec<(UsageDelta, Result<(), String>)>) {
        let interval = self.registry.config().usage_flush_interval;
        let mut failure = None;
        for (delta, result) in results {
            if let Err(e) = result {
                failure = Some(e);
                self.usage.restore(delta);
            }
        }
        let now = Utc::now();
        if let Some(timer) = self.timer("usage_flush") {
            timer.last_run_at = Some(now);
            timer.next_run_at = now + interval;
            match failure {
                Some(e) => {
                    timer.consecutive_failures += 1;
                    timer.last_result = Some(e);
                }
                None => {
                    timer.consecutive_failures = 0;
                    timer.last_result = Some("ok".into());
                }
            }
        }
    }

    fn usage_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(flush) = self.flush_usage() {
            ctx.spawn(
                actix::fut::wrap_future(flush)
                    .map(|results, act: &mut Self, _| act.after_flush(results)),
            );
        }
    }

    /// The SLA timer (kanban.md): asks the store which boards have cards past their SLA and
    /// runs each board's marking write through its actor. One sweep at a time.
    fn sla_tick(&mut self, ctx: &mut Context<Self>) {
        let Some(store) = self.registry.board_store() else {
            return;
        };
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let sweep = store.sweep(self.account_id);
        ctx.spawn(actix::fut::wrap_future(sweep).map(
            |writes, act: &mut Self, ctx: &mut Context<Self>| {
                act.sweeping = false;
                let now = Utc::now();
                let interval = act.registry.config().sla_check_interval;
                if let Some(timer) = act.timer("sla_check") {
                    timer.last_run_at = Some(now);
                    timer.next_run_at = now + interval;
                    timer.last_result = Some(format!("{} board(s) to mark", writes.len()));
                }
                for (board_id, command) in writes {
                    ctx.address().do_send(BoardWrite { board_id, command });
                }
            },
        ));
    }

    fn idle_check_interval(&self) -> Duration {
        (self.idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(30))
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        let interval = self.idle_check_interval();
        if let Some(timer) = self.timers.iter_mut().find(|t| t.name == "idle_check") {
            timer.last_run_at = Some(now);
            timer.last_result = Some("ok".into());
            timer.next_run_at = now + interval;
        }
        if let Some(since) = self.idle_since {
            if self.sessions.is_empty() && since.elapsed() >= self.idle_timeout {
                tracing::debug!(account_id = %self.account_id, "tenant idle; stopping supervisor");
                ctx.stop();
            }
        }
    }

    fn drop_subscriber(&mut self, topic: Topic, session_id: Uuid) {
        if let Some(ids) = self.subscribers.get_mut(&topic) {
            ids.remove(&session_id);
            if ids.is_empty() {
                self.subscribers.remove(&topic);
            }
        }
    }

    /// Ends a topic: every subscriber is told `unsubscribed` with `reason` (`deleted`,
    /// `feature_disabled`) and forgets it.
    fn end_topic(&mut self, topic: Topic, reason: &str) {
        let Some(name) = TopicName::of(topic) else {
            return;
        };
        let Some(ids) = self.subscribers.remove(&topic) else {
            return;
        };
        let frame = crate::protocol::unsubscribed(name, reason, None);
        for id in ids.keys() {
            if let Some(entry) = self.sessions.get_mut(id) {
                entry.topics.remove(&topic);
                entry.outbound.offer(&frame);
            }
        }
        if let Topic::Board(board_id) = topic {
            self.boards.remove(&board_id);
        }
    }

    /// Offers `frame` to every user session (presence), as an ephemeral event.
    fn to_user_sessions(&self, frame: &bytestring::ByteString, except: Option<Uuid>) {
        for (id, entry) in &self.sessions {
            if entry.counts_for_presence && Some(*id) != except {
                entry.outbound.offer_ephemeral(frame);
            }
        }
    }

    fn remove_session(&mut self, session_id: Uuid, ctx: &mut Context<Self>) {
        if let Some(entry) = self.sessions.remove(&session_id) {
            for topic in entry.topics {
                self.drop_subscriber(topic, session_id);
            }
            if let (true, Some(user)) = (entry.counts_for_presence, entry.user_id) {
                if let Some(ticket) = self.presence.leave(user) {
                    let grace = self.registry.config().presence_grace;
                    ctx.run_later(grace, move |act, _| {
                        if act.presence.expire(user, ticket) {
                            act.to_user_sessions(&presence::frame(user, false), None);
                        }
                    });
                }
            }
        }
        if self.sessions.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }
}

impl Actor for TenantSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let interval = self.idle_check_interval();
        self.timers.push(TimerSnapshot {
            name: "idle_check",
            interval_s: interval.as_secs(),
            next_run_at: Utc::now() + interval,
            last_run_at: None,
            last_result: None,
            consecutive_failures: 0,
        });
        ctx.run_interval(interval, Self::check_idle);
        let flush_every = self.registry.config().usage_flush_interval;
        self.timers.push(TimerSnapshot {
            name: "usage_flush",
            interval_s: flush_every.as_secs(),
            next_run_at: Utc::now() + flush_every,
            last_run_at: None,
            last_result: None,
            consecutive_failures: 0,
        });
        ctx.run_interval(flush_every, Self::usage_tick);
        if self.registry.board_store().is_some() {
            let sla_every = self.registry.config().sla_check_interval;
            self.timers.push(TimerSnapshot {
                name: "sla_check",
                interval_s: sla_every.as_secs(),
                next_run_at: Utc::now() + sla_every,
                last_run_at: None,
                last_result: None,
                consecutive_failures: 0,
            });
            ctx.run_interval(sla_every, Self::sla_tick);
        }
        tracing::debug!(account_id = %self.account_id, "tenant supervisor started");
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        // actix runs `stopped` while a panicking handler unwinds the actor's task; that is a
        // crash, not an idle stop. Either way the registry forgets this incarnation and the
        // next use (a session's heartbeat re-registration, a request) starts a fresh one.
        if std::thread::panicking() {
            tracing::error!(account_id = %self.account_id, "tenant supervisor panicked; it restarts on next use");
            self.registry
                .stats()
                .tenant_restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.registry.forget(self.account_id, &ctx.address());
        tracing::debug!(account_id = %self.account_id, "tenant supervisor stopped");
    }
}

/// A session joined the tenant.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    /// The session's id.
    pub session_id: Uuid,
    /// Its user, if any (API keys have none).
    pub user_id: Option<Uuid>,
    /// Ids whose revocation ends the session (login session, instance token, API key).
    pub credentials: Vec<Uuid>,
    /// Its outbound queue.
    pub outbound: Outbound,
    /// A user's own session (counts for presence).
    pub counts_for_presence: bool,
    /// How the session's subscriptions are authorized (checked again on [`RefreshAccess`]).
    pub access: Arc<dyn TopicAccess>,
}

impl Handler<Connect> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        self.idle_since = None;
        self.usage
            .record_sessions(msg.user_id, self.sessions.len() + 1);
        if let (true, Some(user)) = (msg.counts_for_presence, msg.user_id) {
            let came_online = self.presence.join(user);
            // The newcomer learns who is online (itself included), then the others learn
            // about the newcomer.
            for online in self.presence.online().take(1000) {
                msg.outbound.offer(&presence::frame(online, true));
            }
            if came_online {
                self.to_user_sessions(&presence::frame(user, true), None);
            }
        }
        self.sessions.insert(
            msg.session_id,
            SessionEntry {
                user_id: msg.user_id,
                access: msg.access,
                counts_for_presence: msg.counts_for_presence,
                credentials: msg.credentials,
                outbound: msg.outbound,
                topics: HashSet::new(),
            },
        );
    }
}

/// A session left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    /// The session's id.
    pub session_id: Uuid,
}

impl Handler<Disconnect> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        self.remove_session(msg.session_id, ctx);
    }
}

/// Most topics one session may hold (realtime.md: 200).
pub const MAX_SUBSCRIPTIONS: usize = 200;

/// Subscribes a connected session to a topic (authorization is the caller's job) and queues
/// `confirmation` (the `subscribed` frame) to it before any event of the topic.
#[derive(Message)]
#[rtype(result = "SubscribeResult")]
pub struct Subscribe {
    /// The session.
    pub session_id: Uuid,
    /// The topic.
    pub topic: Topic,
    /// Which cards the session may see on the topic's board.
    pub scope: CardScope,
    /// The `subscribed` frame.
    pub confirmation: bytestring::ByteString,
}

/// The answer to [`Subscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, actix::MessageResponse)]
pub enum SubscribeResult {
    /// Subscribed (or already was; the scope is refreshed).
    Subscribed,
    /// The session already holds [`MAX_SUBSCRIPTIONS`] topics.
    TooMany,
    /// The session is not connected (it closed meanwhile).
    UnknownSession,
}

impl Handler<Subscribe> for TenantSupervisor {
    type Result = SubscribeResult;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> SubscribeResult {
        let Some(entry) = self.sessions.get_mut(&msg.session_id) else {
            return SubscribeResult::UnknownSession;
        };
        if !entry.topics.contains(&msg.topic) && entry.topics.len() >= MAX_SUBSCRIPTIONS {
            return SubscribeResult::TooMany;
        }
        entry.topics.insert(msg.topic);
        entry.outbound.offer(&msg.confirmation);
        self.subscribers
            .entry(msg.topic)
            .or_default()
            .insert(msg.session_id, msg.scope);
        SubscribeResult::Subscribed
    }
}

/// Ends a session's subscription (idempotent) and queues `confirmation` to it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The session.
    pub session_id: Uuid,
    /// The topic.
    pub topic: Topic,
    /// The `unsubscribed` frame.
    pub confirmation: bytestring::ByteString,
}

impl Handler<Unsubscribe> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        let Some(entry) = self.sessions.get_mut(&msg.session_id) else {
            return;
        };
        entry.topics.remove(&msg.topic);
        entry.outbound.offer(&msg.confirmation);
        self.drop_subscriber(msg.topic, msg.session_id);
    }
}

impl Handler<BoardWrite> for TenantSupervisor {
    type Result = ResponseFuture<Result<Box<dyn std::any::Any + Send>, BoardUnavailable>>;

    /// Hands the write to the board's actor, starting it on first use.
    fn handle(&mut self, msg: BoardWrite, _: &mut Context<Self>) -> Self::Result {
        let Some(store) = self.registry.board_store() else {
            return Box::pin(async { Err(BoardUnavailable) });
        };
        let key = BoardKey {
            account_id: self.account_id,
            board_id: msg.board_id,
        };
        let registry = self.registry.clone();
        let board = match self.boards.get(&msg.board_id) {
            Some(board) if board.connected() => board.clone(),
            _ => {
                let board = BoardActor::new(key, store, EventBus::new(registry)).start();
                self.boards.insert(msg.board_id, board.clone());
                board
            }
        };
        Box::pin(async move { board.send(msg).await.map_err(|_| BoardUnavailable)? })
    }
}

impl Handler<Event> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        let offer = |entry: &SessionEntry, frame: &bytestring::ByteString| {
            if event.ephemeral {
                entry.outbound.offer_ephemeral(frame);
            } else {
                entry.outbound.offer(frame);
            }
        };
        match event.topic {
            Topic::Tenant => self
                .sessions
                .values()
                .for_each(|entry| offer(entry, &event.frame)),
            topic => {
                if let Some(ids) = self.subscribers.get(&topic) {
                    for (id, scope) in ids {
                        let Some(entry) = self.sessions.get(id) else {
                            continue;
                        };
                        let frame = match &event.audience {
                            Audience::All => &event.frame,
                            Audience::Cards(cards) => cards.frame_for(scope, &event.frame),
                        };
                        offer(entry, frame);
                    }
                }
                if event.ends_topic {
                    self.end_topic(topic, "deleted");
                }
            }
        }
    }
}

/// Team memberships changed: every board subscription is authorized again in place, so a
/// supervisor's card scope follows their teams (realtime.md, "Topics and authorization").
/// A subscription that lost access ends with `unsubscribed` reason `removed`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RefreshAccess;

impl Handler<RefreshAccess> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, _: RefreshAccess, ctx: &mut Context<Self>) {
        let checks: Vec<_> = self
            .subscribers
            .iter()
            .filter_map(|(topic, ids)| match topic {
                Topic::Board(board) => {
                    Some((*topic, *board, ids.keys().copied().collect::<Vec<_>>()))
                }
                _ => None,
            })
            .flat_map(|(topic, board, ids)| ids.into_iter().map(move |id| (topic, board, id)))
            .filter_map(|(topic, board, id)| {
                let access = self.sessions.get(&id)?.access.clone();
                Some(async move { (topic, board, id, access.board(board).await) })
            })
            .collect();
        ctx.spawn(
            actix::fut::wrap_future(in_turn(checks)).map(|results, act: &mut Self, _| {
                for (topic, board, id, result) in results {
                    match result {
                        Ok(grant) => {
                            if let Some(scope) =
                                act.subscribers.get_mut(&topic).and_then(|s| s.get_mut(&id))
                            {
                                *scope = grant.scope;
                            }
                        }
                        Err(_) => {
                            act.drop_subscriber(topic, id);
                            if let Some(entry) = act.sessions.get_mut(&id) {
                                entry.topics.remove(&topic);
                                entry.outbound.offer(&crate::protocol::unsubscribed(
                                    TopicName::Board(board),
                                    "removed",
                                    None,
                                ));
                            }
                        }
                    }
                }
            }),
        );
    }
}

/// Awaits the futures one after another (a handful: one per board subscription).
async fn in_turn<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs = Vec::with_capacity(futures.len());
    for future in futures {
        outputs.push(future.await);
    }
    outputs
}

/// Credentials were revoked: their sessions close with 4003.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Revoked {
    /// Revoked session, token or key ids.
    pub ids: std::sync::Arc<HashSet<Uuid>>,
}

impl Handler<Revoked> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Revoked, _: &mut Context<Self>) {
        for entry in self.sessions.values() {
            if entry.credentials.iter().any(|id| msg.ids.contains(id)) {
                entry.outbound.close(CloseFrame::new(
                    crate::outbound::close_code::REVOKED,
                    "credential revoked",
                ));
            }
        }
    }
}

/// Reports the supervisor's state.
#[derive(Message)]
#[rtype(result = "TenantSnapshot")]
pub struct GetSnapshot;

impl Handler<GetSnapshot> for TenantSupervisor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _: GetSnapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(TenantSnapshot {
            account_id: self.account_id,
            started_at: self.started_at,
            sessions: self.sessions.len(),
            boards_loaded: self.boards.values().filter(|b| b.connected()).count(),
            rooms_loaded: 0,
            timers: self.timers.clone(),
        })
    }
}

/// Lists the online users (presence: user sessions, grace periods included).
#[derive(Message)]
#[rtype(result = "Vec<Uuid>")]
pub struct OnlineUsers;

impl Handler<OnlineUsers> for TenantSupervisor {
    type Result = MessageResult<OnlineUsers>;

    fn handle(&mut self, _: OnlineUsers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.presence.online().collect())
    }
}

/// Closes every session with `frame` and stops the supervisor (shutdown, tenant restart,
/// suspension).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    /// The close frame every session gets.
    pub frame: CloseFrame,
}

impl Handler<Shutdown> for TenantSupervisor {
    type Result = actix::ResponseActFuture<Self, ()>;

    /// Closes the sessions, flushes usage, then stops.
    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) -> Self::Result {
        for entry in self.sessions.values() {
            entry.outbound.close(msg.frame);
        }
        let flush = self.flush_usage();
        Box::pin(
            actix::fut::wrap_future(async move {
                match flush {
                    Some(flush) => flush.await,
                    None => Vec::new(),
                }
            })
            .map(|results, act: &mut Self, ctx: &mut Context<Self>| {
                act.after_flush(results);
                ctx.stop();
            }),
        )
    }
}

/// Reads the cached facts (`None`: not loaded).
#[derive(Message)]
#[rtype(result = "Option<TenantFacts>")]
pub struct GetFacts;

impl Handler<GetFacts> for TenantSupervisor {
    type Result = Option<TenantFacts>;

    fn handle(&mut self, _: GetFacts, _: &mut Context<Self>) -> Option<TenantFacts> {
        self.facts
    }
}

/// Replaces (or clears) the cached facts. A change of the chat flag is announced to every
/// session of the tenant as `account.feature.updated`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFacts(pub Option<TenantFacts>);

impl Handler<SetFacts> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SetFacts, _: &mut Context<Self>) {
        if let (Some(old), Some(new)) = (self.facts, msg.0) {
            if old.internal_chat != new.internal_chat {
                let frame: bytestring::ByteString = serde_json::json!({
                    "event": "account.feature.updated",
                    "account_id": self.account_id,
                    "internal_chat_enabled": new.internal_chat,
                })
                .to_string()
                .into();
                for entry in self.sessions.values() {
                    entry.outbound.offer(&frame);
                }
            }
        }
        // The kanban flag turned off: board subscriptions end (realtime.md).
        if msg.0.is_some_and(|facts| !facts.kanban) {
            let boards: Vec<Topic> = self
                .subscribers
                .keys()
                .filter(|t| matches!(t, Topic::Board(_)))
                .copied()
                .collect();
            for topic in boards {
                self.end_topic(topic, "feature_disabled");
            }
        }
        self.facts = msg.0;
    }
}

/// An authenticated request of the tenant (usage metering).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordActivity {
    /// The user behind it, if any.
    pub user_id: Option<Uuid>,
}

impl Handler<RecordActivity> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RecordActivity, _: &mut Context<Self>) {
        self.usage.record_request(msg.user_id);
    }
}

/// Flushes usage now (tests and operations); answers when the flush ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushUsage;

impl Handler<FlushUsage> for TenantSupervisor {
    type Result = actix::ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: FlushUsage, _: &mut Context<Self>) -> Self::Result {
        let flush = self.flush_usage();
        Box::pin(
            actix::fut::wrap_future(async move {
                match flush {
                    Some(flush) => flush.await,
                    None => Vec::new(),
                }
            })
            .map(|results, act: &mut Self, _| act.after_flush(results)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{close_code, Next, OutFrame, OutboundLimits};
    use crate::registry::{RegistryConfig, TenantSend};
    use crate::stats::RuntimeStats;
    use std::sync::Arc;

    /// A fault injected only by these tests.
    #[derive(Message)]
    #[rtype(result = "()")]
    pub(crate) struct Panic;

    impl Handler<Panic> for TenantSupervisor {
        type Result = ();
        fn handle(&mut self, _: Panic, _: &mut Context<Self>) {
            panic!("injected supervisor fault");
        }
    }

    /// Access for sessions that never subscribe through ops in these tests.
    struct NoTopics;

    impl TopicAccess for NoTopics {
        fn board(
            &self,
            _: Uuid,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<crate::session::BoardGrant, crate::session::Refusal>,
                    > + Send,
            >,
        > {
            Box::pin(async {
                Err(crate::session::Refusal {
                    code: "NOT_FOUND",
                    message: "no topics here".into(),
                })
            })
        }
    }

    fn registry(idle: Duration) -> TenantRegistry {
        TenantRegistry::new(
            RegistryConfig {
                idle_timeout: idle,
                arbiters: 1,
                send_timeout: Duration::from_secs(2),
                usage_flush_interval: Duration::from_secs(60),
                sla_check_interval: Duration::from_secs(60),
                presence_grace: Duration::from_secs(10),
            },
            Arc::new(RuntimeStats::default()),
        )
    }

    #[actix_rt::test]
    async fn panicking_supervisor_is_restarted_and_registry_still_answers() {
        let registry = registry(Duration::from_secs(60));
        let account = Uuid::now_v7();
        let first = registry.send(account, GetSnapshot).await.unwrap();
        assert_eq!(
            registry.send(account, Panic).await,
            Err(TenantSend::Stopped)
        );
        // A request racing the crash may still find the dying incarnation and get `Stopped`
        // (a 503 for an HTTP caller, never a hang); the next one reaches a fresh supervisor.
        let mut second = None;
        for _ in 0..50 {
            match registry.send(account, GetSnapshot).await {
                Ok(snapshot) => {
                    second = Some(snapshot);
                    break;
                }
                Err(e) => assert_eq!(e, TenantSend::Stopped),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let second = second.expect("the registry answers again");
        assert!(second.started_at >= first.started_at);
        assert_eq!(
            registry
                .stats()
                .tenant_restarts
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // Other tenants were never affected.
        let other = registry.send(Uuid::now_v7(), GetSnapshot).await.unwrap();
        assert_eq!(other.sessions, 0);
        assert_eq!(registry.live().len(), 2);
    }

    #[actix_rt::test]
    async fn idle_supervisor_stops_and_is_forgotten() {
        let registry = registry(Duration::from_millis(100));
        let account = Uuid::now_v7();
        registry.send(account, GetSnapshot).await.unwrap();
        assert!(registry.get(account).is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(registry.get(account).is_none());
        assert!(registry.live().is_empty());
    }

    #[actix_rt::test]
    async fn events_reach_subscribers_of_their_topic_only() {
        let registry = registry(Duration::from_secs(60));
        let account = Uuid::now_v7();
        let stats = registry.stats();
        let (a, mut a_rx) = Outbound::channel(OutboundLimits::default(), stats.clone());
        let (b, mut b_rx) = Outbound::channel(OutboundLimits::default(), stats);
        let (sa, sb) = (Uuid::now_v7(), Uuid::now_v7());
        let board = Topic::Board(Uuid::now_v7());
        for (id, out) in [(sa, a), (sb, b)] {
            registry
                .send(
                    account,
                    Connect {
                        session_id: id,
                        user_id: None,
                        credentials: vec![id],
                        outbound: out,
                        counts_for_presence: false,
                        access: Arc::new(NoTopics),
                    },
                )
                .await
                .unwrap();
        }
        assert_eq!(
            registry
                .send(
                    account,
                    Subscribe {
                        session_id: sa,
                        topic: board,
                        scope: CardScope::All,
                        confirmation: r#"{"event":"subscribed"}"#.into(),
                    }
                )
                .await
                .unwrap(),
            SubscribeResult::Subscribed
        );
        let bus = crate::bus::EventBus::new(registry.clone());
        bus.publish(Event::new(account, board, &serde_json::json!({"event":"x"})).unwrap());
        bus.publish(Event::new(account, Topic::Tenant, &serde_json::json!({"event":"t"})).unwrap());
        // A different tenant's event never arrives.
        bus.publish(Event::new(Uuid::now_v7(), Topic::Tenant, &serde_json::json!({})).unwrap());
        let text = |n: Next| match n {
            Next::Frame(OutFrame::Text(t)) => t.to_string(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(text(a_rx.next().await), r#"{"event":"subscribed"}"#);
        assert_eq!(text(a_rx.next().await), r#"{"event":"x"}"#);
        assert_eq!(text(a_rx.next().await), r#"{"event":"t"}"#);
        assert_eq!(text(b_rx.next().await), r#"{"event":"t"}"#);
        registry.broadcast_revoked([sa].into_iter().collect());
        assert!(matches!(a_rx.next().await, Next::Close(f) if f.code == close_code::REVOKED));
        registry
            .send(
                account,
                Shutdown {
                    frame: CloseFrame::new(close_code::SERVICE_RESTART, ""),
                },
            )
            .await
            .unwrap();
        assert!(
            matches!(b_rx.next().await, Next::Close(f) if f.code == close_code::SERVICE_RESTART)
        );
    }
}
