//! The websocket endpoint (`/ws`, `/ws/internal-chat`): authentication at the upgrade, then two
//! pumps between the socket (actix-ws) and the connection's `WsSession` actor.
//!
//! The read pump forwards client frames to the actor and enforces the transport limits
//! (64 KiB frames → 1009, binary → 1003). The write pump drains the session's bounded outbound
//! queue into the socket; a close request wins over queued frames, and a write stuck on a client
//! that stopped reading is abandoned when the queue overflows and the session is closed (1013).

pub mod access;

use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use tokio::sync::watch;
use uuid::Uuid;
use whatpro_actors::outbound::{close_code, Next};
use whatpro_actors::session::{ClientText, CloseSession, PongReceived, TransportClosed};
use whatpro_actors::{
    CloseFrame, OutFrame, Outbound, OutboundLimits, OutboundReceiver, SessionConfig,
    SessionIdentity, WsSession,
};

use crate::auth::principal::{
    authenticate, bearer_credential, credential, Credential, PrincipalKind,
};
use crate::error::ApiError;
use crate::http::cors::origin_allowed;
use crate::state::AppState;

/// Largest inbound frame (realtime.md: 64 KiB; larger closes with 1009).
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// How long a close frame may wait for room in the socket before the connection is dropped.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The credential of an upgrade: `?token=`, `Sec-WebSocket-Protocol: bearer, <token>`, an
/// `Authorization` header or `X-API-Key` (non-browser clients). Returns it and whether the
/// subprotocol form was used (then answered with `bearer`). Two at once → 400.
fn upgrade_credential(req: &HttpRequest) -> Result<(Credential, bool), ApiError> {
    let query = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let subprotocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let mut parts = v.split(',').map(str::trim);
            match (parts.next(), parts.next()) {
                (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Some(token.to_owned())
                }
                _ => None,
            }
        });
    let headers = credential(req)?;
    let given = usize::from(query.is_some())
        + usize::from(subprotocol.is_some())
        + usize::from(headers.is_some());
    if given > 1 {
        return Err(ApiError::BadRequest("send exactly one credential".into()));
    }
    match (query, subprotocol, headers) {
        (Some(token), _, _) => Ok((bearer_credential(token), false)),
        (_, Some(token), _) => Ok((bearer_credential(token), true)),
        (_, _, Some(credential)) => Ok((credential, false)),
        _ => Err(ApiError::Unauthenticated("authentication required".into())),
    }
}

/// `GET /ws`: upgrades an authenticated request to a websocket session.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Unavailable("the node is shutting down".into()));
    }
    if let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        if !origin_allowed(&state, origin) {
            return Err(ApiError::forbidden("origin not allowed"));
        }
    }
    let (credential, via_subprotocol) = upgrade_credential(&req)?;
    let principal = authenticate(&state, &credential).await?;
    let stats = state.registry.stats();
    let open = stats
        .ws_connections
        .load(std::sync::atomic::Ordering::Relaxed);
    if open >= state.config.ws_max_sessions_per_node as i64 {
        return Err(ApiError::Unavailable(
            "this node holds its maximum of sessions".into(),
        ));
    }
    let supervisor = state.registry.get_or_start(principal.account_id)?;
    let protocols: &[&str] = if via_subprotocol { &["bearer"] } else { &[] };
    let (response, session, stream) = actix_ws::handle_with_protocols(&req, body, protocols)
        .map_err(|e| ApiError::BadRequest(format!("not a websocket upgrade: {e}").into()))?;

    let tuning = &state.config.tuning;
    let (outbound, outbound_rx) = Outbound::channel(
        OutboundLimits {
            max_frames: tuning.ws_outbound_max_frames,
            max_bytes: tuning.ws_outbound_max_bytes,
        },
        stats,
    );
    let close_signal = outbound_rx.close_signal();
    let credentials = match principal.kind {
        PrincipalKind::User { session_id } => vec![session_id],
        PrincipalKind::InstanceToken {
            token_id,
            session_id,
        } => vec![token_id, session_id],
        PrincipalKind::ApiKey { key_id, .. } => vec![key_id],
    };
    let identity = SessionIdentity {
        session_id: Uuid::now_v7(),
        account_id: principal.account_id,
        user_id: principal.user_id,
        credentials,
        expires_at: principal.expires_at,
        counts_for_presence: matches!(principal.kind, PrincipalKind::User { .. })
            && principal.impersonator_id.is_none(),
    };
    let config = SessionConfig {
        heartbeat_interval: tuning.ws_heartbeat_interval,
        missed_pongs_allowed: tuning.ws_missed_pongs_allowed,
    };
    let access = std::sync::Arc::new(access::SessionAccess::new(state.clone(), principal));
    let actor = WsSession::new(
        identity,
        config,
        outbound,
        state.registry.clone(),
        supervisor,
        access,
    )
    .start();
    actix_web::rt::spawn(write_pump(session.clone(), outbound_rx));
    actix_web::rt::spawn(read_pump(stream, session, actor, close_signal));
    Ok(response)
}

/// Closes (4003), on this node, the websockets authenticated by revoked credentials (login
/// sessions, instance tokens, API keys).
pub fn close_revoked_sessions(state: &AppState, credentials: &[Uuid]) {
    if !credentials.is_empty() {
        state
            .registry
            .broadcast_revoked(credentials.iter().copied().collect());
    }
}

fn close_reason(frame: CloseFrame) -> CloseReason {
    CloseReason {
        code: CloseCode::from(frame.code),
        description: (!frame.reason.is_empty()).then(|| frame.reason.to_owned()),
    }
}

async fn closed(signal: &mut watch::Receiver<Option<CloseFrame>>) -> CloseFrame {
    loop {
        if let Some(frame) = *signal.borrow_and_update() {
            return frame;
        }
        if signal.changed().await.is_err() {
            return CloseFrame::new(close_code::NORMAL, "");
        }
    }
}

/// Drains the outbound queue into the socket.
async fn write_pump(mut session: Session, mut queue: OutboundReceiver) {
    let mut signal = queue.close_signal();
    let frame = loop {
        let write = match queue.next().await {
            Next::Close(frame) => break frame,
            Next::Frame(frame) => frame,
        };
        // A client that stopped reading blocks the write; the close signal (1013 when the
        // queue overflows meanwhile) abandons it.
        let written = tokio::select! {
            written = async {
                match write {
                    OutFrame::Text(text) => session.text(text).await,
                    OutFrame::Ping => session.ping(b"").await,
                }
            } => written,
            frame = closed(&mut signal) => break frame,
        };
        if written.is_err() {
            return;
        }
    };
    let _ = tokio::time::timeout(
        CLOSE_WRITE_TIMEOUT,
        session.close(Some(close_reason(frame))),
    )
    .await;
}

/// Forwards client frames to the session actor until the connection ends or the session closes.
async fn read_pump(
    stream: actix_ws::MessageStream,
    mut session: Session,
    actor: Addr<WsSession>,
    mut signal: watch::Receiver<Option<CloseFrame>>,
) {
    let mut stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    loop {
        let message = tokio::select! {
            message = stream.recv() => message,
            _ = closed(&mut signal) => break,
        };
        match message {
            Some(Ok(AggregatedMessage::Text(text))) => actor.do_send(ClientText(text)),
            Some(Ok(AggregatedMessage::Binary(_))) => {
                actor.do_send(CloseSession(CloseFrame::new(
                    close_code::UNSUPPORTED_DATA,
                    "binary frames are not supported",
                )));
                break;
            }
            Some(Ok(AggregatedMessage::Ping(payload))) => {
                if session.pong(&payload).await.is_err() {
                    break;
                }
            }
            Some(Ok(AggregatedMessage::Pong(_))) => actor.do_send(PongReceived),
            Some(Err(ProtocolError::Overflow)) => {
                actor.do_send(CloseSession(CloseFrame::new(
                    close_code::MESSAGE_TOO_BIG,
                    "frame too large",
                )));
                break;
            }
            Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => break,
        }
    }
    actor.do_send(TransportClosed);
}
