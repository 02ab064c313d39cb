//! Websocket frame shapes (realtime.md, "Frames", "Client ops", "Server events").
//!
//! Client frames are JSON objects with an `op`; server frames have an `event`. Parsing is two
//! steps so that errors can name the op and echo `ref`: the object is read first, then the op's
//! own fields are read strictly (unknown fields rejected, as in REST).

use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

/// Error codes carried by `error` events (the REST codes of conventions.md).
pub mod error_code {
    /// Malformed frame or unknown op.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// A field of a known op is missing or out of bounds.
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    /// The topic does not exist in the session's tenant.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The principal may not use the topic.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The principal lacks the scope the topic needs.
    pub const SCOPE_MISSING: &str = "SCOPE_MISSING";
    /// The module is off for the tenant.
    pub const FEATURE_DISABLED: &str = "FEATURE_DISABLED";
    /// A business rule (too many subscriptions).
    pub const UNPROCESSABLE: &str = "UNPROCESSABLE";
    /// The server could not answer now.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
}

/// A topic a client names in `sub`/`unsub`: `board:<id>`, `room:<id>` (or `room_id`),
/// `instances:<account_id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicName {
    /// `board:<id>`.
    Board(Uuid),
    /// `room:<id>`.
    Room(Uuid),
    /// `instances:<account_id>`.
    Instances(Uuid),
}

impl TopicName {
    /// Parses `kind:<uuid>`.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, id) = text.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "board" => Some(TopicName::Board(id)),
            "room" => Some(TopicName::Room(id)),
            "instances" => Some(TopicName::Instances(id)),
            _ => None,
        }
    }
}

impl TopicName {
    /// The tenant topic this name subscribes to.
    pub fn topic(self) -> crate::bus::Topic {
        match self {
            TopicName::Board(id) => crate::bus::Topic::Board(id),
            TopicName::Room(id) => crate::bus::Topic::Room(id),
            TopicName::Instances(_) => crate::bus::Topic::Instances,
        }
    }

    /// The name a client uses for a board or room topic (`None` for the tenant-wide ones).
    pub fn of(topic: crate::bus::Topic) -> Option<Self> {
        match topic {
            crate::bus::Topic::Board(id) => Some(TopicName::Board(id)),
            crate::bus::Topic::Room(id) => Some(TopicName::Room(id)),
            crate::bus::Topic::Tenant | crate::bus::Topic::Instances => None,
        }
    }
}

impl std::fmt::Display for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicName::Board(id) => write!(f, "board:{id}"),
            TopicName::Room(id) => write!(f, "room:{id}"),
            TopicName::Instances(id) => write!(f, "instances:{id}"),
        }
    }
}

/// A client op, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOp {
    /// `{"op":"ping","t":N}`: answered with `pong` carrying the same `t`.
    Ping {
        /// The client's number, echoed unchanged.
        t: Number,
    },
    /// `{"op":"sub","topic":…}` or `{"op":"sub","room_id":…}`.
    Sub {
        /// The topic.
        topic: TopicName,
    },
    /// `{"op":"unsub","topic":…}` or `{"op":"unsub","room_id":…}`.
    Unsub {
        /// The topic.
        topic: TopicName,
    },
}

/// A client frame: the op plus the optional `ref` the client wants echoed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    /// The op.
    pub op: ClientOp,
    /// The client's correlation reference (1–64 chars).
    pub reference: Option<String>,
}

/// Why a client frame was refused; becomes an `error` event.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// `BAD_REQUEST` or `VALIDATION_ERROR`.
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
    /// The op name, when one was readable.
    pub op: Option<String>,
    /// The client's `ref`, when one was readable.
    pub reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingFields {
    t: Number,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicFields {
    topic: Option<String>,
    room_id: Option<Uuid>,
}

impl TopicFields {
    fn topic(self) -> Result<TopicName, String> {
        match (self.topic, self.room_id) {
            (Some(topic), None) => TopicName::parse(&topic).ok_or_else(|| {
                "topic must be board:<id>, room:<id> or instances:<account_id>".to_owned()
            }),
            (None, Some(room)) => Ok(TopicName::Room(room)),
            _ => Err("send exactly one of topic and room_id".to_owned()),
        }
    }
}

/// Parses one text frame from a client.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let bad = |message: String, op: Option<String>, reference: Option<String>| FrameError {
        code: error_code::BAD_REQUEST,
        message,
        op,
        reference,
    };
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(bad("a frame must be a JSON object".into(), None, None)),
        Err(_) => return Err(bad("malformed JSON".into(), None, None)),
    };
    let reference = match object.remove("ref") {
        None => None,
        Some(Value::String(r)) if (1..=64).contains(&r.chars().count()) => Some(r),
        Some(_) => {
            return Err(FrameError {
                code: error_code::VALIDATION_ERROR,
                message: "ref must be a string of 1-64 characters".into(),
                op: None,
                reference: None,
            })
        }
    };
    let op = match object.remove("op") {
        Some(Value::String(op)) => op,
        _ => return Err(bad("missing op".into(), None, reference)),
    };
    let fields = Value::Object(object);
    let invalid = |e: serde_json::Error, op: &str, reference: Option<String>| FrameError {
        code: error_code::VALIDATION_ERROR,
        message: e.to_string(),
        op: Some(op.to_owned()),
        reference,
    };
    let parsed = match op.as_str() {
        "ping" => match serde_json::from_value::<PingFields>(fields) {
            Ok(f) => ClientOp::Ping { t: f.t },
            Err(e) => return Err(invalid(e, &op, reference)),
        },
        "sub" | "unsub" => {
            let topic = serde_json::from_value::<TopicFields>(fields)
                .map_err(|e| e.to_string())
                .and_then(TopicFields::topic);
            match topic {
                Ok(topic) if op == "sub" => ClientOp::Sub { topic },
                Ok(topic) => ClientOp::Unsub { topic },
                Err(message) => {
                    return Err(FrameError {
                        code: error_code::VALIDATION_ERROR,
                        message,
                        op: Some(op),
                        reference,
                    })
                }
            }
        }
        _ => {
            let message = format!("unknown op: {}", truncate(&op, 64));
            return Err(bad(message, Some(truncate(&op, 64)), reference));
        }
    };
    Ok(ClientFrame {
        op: parsed,
        reference,
    })
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Events the server sends to one session (not topic events, which are built by their
/// writers and shared across sessions).
#[derive(Debug, Serialize)]
#[serde(tag = "event")]
pub enum SessionEvent<'a> {
    /// First frame after the upgrade.
    #[serde(rename = "session.ready")]
    SessionReady {
        /// This connection's id.
        session_id: Uuid,
        /// The tenant the session belongs to.
        account_id: Uuid,
        /// The user, when the principal has one.
        user_id: Option<Uuid>,
        /// When the session's token expires.
        expires_at: Option<DateTime<Utc>>,
        /// Seconds between server pings.
        heartbeat_s: u64,
    },
    /// Answer to a `ping` op.
    #[serde(rename = "pong")]
    Pong {
        /// The client's `t`, unchanged.
        t: &'a Number,
        /// The client's `ref`.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A refused op or frame; the session goes on.
    #[serde(rename = "error")]
    Error {
        /// A conventions.md error code.
        code: &'a str,
        /// Human-readable reason.
        message: &'a str,
        /// The op the error is about.
        #[serde(skip_serializing_if = "Option::is_none")]
        op: Option<&'a str>,
        /// The client's `ref`.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        /// The topic the error is about.
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// A `sub` succeeded.
    #[serde(rename = "subscribed")]
    Subscribed {
        /// The topic.
        topic: String,
        /// The board, for a board topic.
        #[serde(skip_serializing_if = "Option::is_none")]
        board_id: Option<Uuid>,
        /// The room, for a room topic.
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<Uuid>,
        /// The topic's seq now (none for `instances:`).
        #[serde(skip_serializing_if = "Option::is_none")]
        current_seq: Option<i64>,
        /// The client's `ref`.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A subscription ended.
    #[serde(rename = "unsubscribed")]
    Unsubscribed {
        /// The topic.
        topic: String,
        /// The board, for a board topic.
        #[serde(skip_serializing_if = "Option::is_none")]
        board_id: Option<Uuid>,
        /// The room, for a room topic.
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<Uuid>,
        /// `requested`, `removed`, `deleted`, `feature_disabled` or `revoked`.
        reason: &'a str,
        /// The client's `ref`.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
}

/// The `subscribed` frame for `topic`.
pub fn subscribed(
    topic: TopicName,
    current_seq: Option<i64>,
    reference: Option<&str>,
) -> ByteString {
    let (board_id, room_id) = ids_of(topic);
    SessionEvent::Subscribed {
        topic: topic.to_string(),
        board_id,
        room_id,
        current_seq,
        reference,
    }
    .encode()
}

/// The `unsubscribed` frame for `topic`.
pub fn unsubscribed(topic: TopicName, reason: &str, reference: Option<&str>) -> ByteString {
    let (board_id, room_id) = ids_of(topic);
    SessionEvent::Unsubscribed {
        topic: topic.to_string(),
        board_id,
        room_id,
        reason,
        reference,
    }
    .encode()
}

fn ids_of(topic: TopicName) -> (Option<Uuid>, Option<Uuid>) {
    match topic {
        TopicName::Board(id) => (Some(id), None),
        TopicName::Room(id) => (None, Some(id)),
        TopicName::Instances(_) => (None, None),
    }
}

impl SessionEvent<'_> {
    /// Serializes the event into a frame.
    pub fn encode(&self) -> ByteString {
        // Serializing these plain structs cannot fail; an empty frame would only be a bug.
        serde_json::to_string(self).unwrap_or_default().into()
    }
}

impl FrameError {
    /// The `error` event for this refusal.
    pub fn to_event(&self) -> ByteString {
        SessionEvent::Error {
            code: self.code,
            message: &self.message,
            op: self.op.as_deref(),
            reference: self.reference.as_deref(),
            topic: None,
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_parses_and_keeps_t_and_ref() {
        let frame = parse_client_frame(r#"{"op":"ping","t":12345678901,"ref":"a1"}"#).unwrap();
        assert_eq!(frame.reference.as_deref(), Some("a1"));
        let ClientOp::Ping { t } = &frame.op else {
            panic!("not a ping")
        };
        let pong = SessionEvent::Pong {
            t,
            reference: frame.reference.as_deref(),
        }
        .encode();
        assert_eq!(&*pong, r#"{"event":"pong","t":12345678901,"ref":"a1"}"#);
    }

    #[test]
    fn unknown_op_is_bad_request_with_ref() {
        let err = parse_client_frame(r#"{"op":"dance","ref":"r"}"#).unwrap_err();
        assert_eq!(err.code, error_code::BAD_REQUEST);
        assert_eq!(err.op.as_deref(), Some("dance"));
        assert_eq!(err.reference.as_deref(), Some("r"));
    }

    #[test]
    fn malformed_and_non_object_frames_are_bad_requests() {
        for text in ["{", "[]", "42", r#"{"t":1}"#] {
            assert_eq!(
                parse_client_frame(text).unwrap_err().code,
                error_code::BAD_REQUEST,
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_and_wrong_fields_are_validation_errors() {
        for text in [
            r#"{"op":"ping","t":1,"x":2}"#,
            r#"{"op":"ping","t":"1"}"#,
            r#"{"op":"ping"}"#,
        ] {
            assert_eq!(
                parse_client_frame(text).unwrap_err().code,
                error_code::VALIDATION_ERROR,
                "{text}"
            );
        }
        let long_ref = format!(r#"{{"op":"ping","t":1,"ref":"{}"}}"#, "x".repeat(65));
        assert_eq!(
            parse_client_frame(&long_ref).unwrap_err().code,
            error_code::VALIDATION_ERROR
        );
    }
}
