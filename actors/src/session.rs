//! The websocket session actor: one per connection.
//!
//! The server authenticates the upgrade, then starts a [`WsSession`] and pumps frames between
//! the socket and the actor: client text arrives as [`ClientText`], protocol pongs as
//! [`PongReceived`], the end of the connection as [`TransportClosed`]. Everything the session
//! sends goes through its bounded [`Outbound`] queue. The session registers with its tenant's
//! supervisor (which fans events into the same queue), answers ops, sends heartbeats and closes
//! the connection on missed pongs (4000) or repeated invalid frames (1008).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message};
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::board::CardScope;
use crate::outbound::{close_code, CloseFrame, Outbound};
use crate::protocol::{self, error_code, parse_client_frame, ClientOp, SessionEvent, TopicName};
use crate::registry::TenantRegistry;
use crate::supervisor::{
    Connect, Disconnect, Subscribe, SubscribeResult, TenantSupervisor, Unsubscribe,
    MAX_SUBSCRIPTIONS,
};

/// Invalid frames tolerated per minute before the session is closed with 1008.
const MAX_INVALID_FRAMES_PER_MINUTE: usize = 10;

/// Who is on the other end, fixed for the session's life.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    /// This connection's id.
    pub session_id: Uuid,
    /// The tenant the session belongs to.
    pub account_id: Uuid,
    /// The user (none for API keys).
    pub user_id: Option<Uuid>,
    /// Ids whose revocation ends the session (login session, instance token, API key).
    pub credentials: Vec<Uuid>,
    /// A user's own session (not an instance token's or an API key's): it counts for
    /// presence and receives presence updates.
    pub counts_for_presence: bool,
    /// When the credential expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The port that decides whether a session may subscribe to a topic, implemented by the
/// server with the session's principal (the board's tenant, the feature flag, scopes, roles).
pub trait TopicAccess: Send + Sync + 'static {
    /// Authorizes `board:{board_id}`: the board's current seq and the cards the session sees.
    fn board(
        &self,
        board_id: Uuid,
    ) -> Pin<Box<dyn Future<Output = Result<BoardGrant, Refusal>> + Send>>;
}

/// A granted board subscription.
#[derive(Debug, Clone)]
pub struct BoardGrant {
    /// The board's seq when access was checked.
    pub current_seq: i64,
    /// The cards the session may see.
    pub scope: CardScope,
}

/// A refused op: an `error` event's code and message.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// A conventions.md code (`NOT_FOUND`, `FORBIDDEN`, `SCOPE_MISSING`, ...).
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
}

/// Heartbeat settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Time between server pings (realtime.md: 20 s).
    pub heartbeat_interval: Duration,
    /// Pings in a row without a pong before closing with 4000 (realtime.md: 2).
    pub missed_pongs_allowed: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(20),
            missed_pongs_allowed: 2,
        }
    }
}

/// One websocket connection.
pub struct WsSession {
    identity: SessionIdentity,
    config: SessionConfig,
    outbound: Outbound,
    registry: TenantRegistry,
    supervisor: Addr<TenantSupervisor>,
    access: Arc<dyn TopicAccess>,
    unanswered_pings: u32,
    invalid_frames: VecDeque<Instant>,
}

impl WsSession {
    /// A session for `identity` whose frames go out through `outbound`.
    pub fn new(
        identity: SessionIdentity,
        config: SessionConfig,
        outbound: Outbound,
        registry: TenantRegistry,
        supervisor: Addr<TenantSupervisor>,
        access: Arc<dyn TopicAccess>,
    ) -> Self {
        Self {
            identity,
            config,
            outbound,
            registry,
            supervisor,
            access,
            unanswered_pings: 0,
            invalid_frames: VecDeque::new(),
        }
    }

    fn register(&self) {
        self.supervisor.do_send(Connect {
            session_id: self.identity.session_id,
            user_id: self.identity.user_id,
            credentials: self.identity.credentials.clone(),
            outbound: self.outbound.clone(),
            counts_for_presence: self.identity.counts_for_presence,
            access: self.access.clone(),
        });
    }

    fn close(&self, ctx: &mut Context<Self>, code: u16, reason: &'static str) {
        self.outbound.close(CloseFrame::new(code, reason));
        ctx.stop();
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.unanswered_pings >= self.config.missed_pongs_allowed {
            self.close(ctx, close_code::HEARTBEAT_TIMEOUT, "heartbeat timeout");
            return;
        }
        self.outbound.ping();
        self.unanswered_pings += 1;
        // The supervisor may have died and been replaced: join the new incarnation.
        if !self.supervisor.connected() {
            if let Ok(addr) = self.registry.get_or_start(self.identity.account_id) {
                self.supervisor = addr;
                self.register();
            }
        }
    }

    /// `sub`: authorizes through the access port, then registers with the supervisor, which
    /// queues `subscribed` ahead of the topic's next event.
    fn subscribe(&self, ctx: &mut Context<Self>, topic: TopicName, reference: Option<String>) {
        let outbound = self.outbound.clone();
        let supervisor = self.supervisor.clone();
        let access = self.access.clone();
        let session_id = self.identity.session_id;
        ctx.spawn(actix::fut::wrap_future(async move {
            let refuse = |code: &str, message: &str| {
                outbound.offer(&op_error(code, message, "sub", reference.as_deref(), topic));
            };
            let TopicName::Board(board_id) = topic else {
                refuse(error_code::NOT_FOUND, "no such topic");
                return;
            };
            let grant = match access.board(board_id).await {
                Ok(grant) => grant,
                Err(refusal) => return refuse(refusal.code, &refusal.message),
            };
            let confirmation =
                protocol::subscribed(topic, Some(grant.current_seq), reference.as_deref());
            let subscribe = Subscribe {
                session_id,
                topic: topic.topic(),
                scope: grant.scope,
                confirmation,
            };
            match supervisor.send(subscribe).await {
                Ok(SubscribeResult::Subscribed) => {}
                Ok(SubscribeResult::TooMany) => refuse(
                    error_code::UNPROCESSABLE,
                    &format!("a session holds at most {MAX_SUBSCRIPTIONS} subscriptions"),
                ),
                Ok(SubscribeResult::UnknownSession) | Err(_) => {
                    refuse(error_code::UNAVAILABLE, "try again")
                }
            }
        }));
    }

    fn unsubscribe(&self, topic: TopicName, reference: Option<&str>) {
        self.supervisor.do_send(Unsubscribe {
            session_id: self.identity.session_id,
            topic: topic.topic(),
            confirmation: protocol::unsubscribed(topic, "requested", reference),
        });
    }

    fn refuse_frame(&mut self, ctx: &mut Context<Self>, event: ByteString) {
        self.outbound.offer(&event);
        let now = Instant::now();
        self.invalid_frames.push_back(now);
        while self
            .invalid_frames
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.invalid_frames.pop_front();
        }
        if self.invalid_frames.len() > MAX_INVALID_FRAMES_PER_MINUTE {
            self.close(ctx, close_code::POLICY_VIOLATION, "too many invalid frames");
        }
    }
}

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.registry
            .stats()
            .ws_connections
            .fetch_add(1, Ordering::Relaxed);
        // `session.ready` is queued before the supervisor knows the session, so it is the
        // first frame the client sees.
        let ready = SessionEvent::SessionReady {
            session_id: self.identity.session_id,
            account_id: self.identity.account_id,
            user_id: self.identity.user_id,
            expires_at: self.identity.expires_at,
            heartbeat_s: self.config.heartbeat_interval.as_secs(),
        };
        self.outbound.offer(&ready.encode());
        self.register();
        self.heartbeat(ctx);
        ctx.run_interval(self.config.heartbeat_interval, Self::heartbeat);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.supervisor.do_send(Disconnect {
            session_id: self.identity.session_id,
        });
        self.outbound.close(CloseFrame::new(close_code::NORMAL, ""));
        self.registry
            .stats()
            .ws_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A text frame from the client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientText(pub ByteString);

impl Handler<ClientText> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: ClientText, ctx: &mut Context<Self>) {
        match parse_client_frame(&msg.0) {
            Ok(frame) => match &frame.op {
                ClientOp::Ping { t } => {
                    let pong = SessionEvent::Pong {
                        t,
                        reference: frame.reference.as_deref(),
                    };
                    self.outbound.offer(&pong.encode());
                }
                ClientOp::Sub { topic } => self.subscribe(ctx, *topic, frame.reference),
                ClientOp::Unsub { topic } => self.unsubscribe(*topic, frame.reference.as_deref()),
            },
            Err(error) => self.refuse_frame(ctx, error.to_event()),
        }
    }
}

/// The client answered a protocol ping.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PongReceived;

impl Handler<PongReceived> for WsSession {
    type Result = ();

    fn handle(&mut self, _: PongReceived, _: &mut Context<Self>) {
        self.unanswered_pings = 0;
    }
}

/// The connection ended (client close, protocol error, or our own close was written).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransportClosed;

impl Handler<TransportClosed> for WsSession {
    type Result = ();

    fn handle(&mut self, _: TransportClosed, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Closes the session with a code chosen by the server (binary frame 1003, oversize 1009...).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession(pub CloseFrame);

impl Handler<CloseSession> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Context<Self>) {
        self.close(ctx, msg.0.code, msg.0.reason);
    }
}

/// An `error` event about one op on one topic.
fn op_error(
    code: &str,
    message: &str,
    op: &str,
    reference: Option<&str>,
    topic: TopicName,
) -> ByteString {
    SessionEvent::Error {
        code,
        message,
        op: Some(op),
        reference,
        topic: Some(topic.to_string()),
    }
    .encode()
}
