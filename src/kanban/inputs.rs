//! The request bodies of the kanban routes, validated field by field (garde) before they
//! reach a board's actor. Rules that need the database (a stage of this board, an active
//! assignee) are checked inside the write's transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::extract::nullable;

/// The board types of kanban.md.
pub const BOARD_TYPES: &[&str] = &["pipeline", "leads", "support", "sales", "custom"];
/// Card priorities.
pub const PRIORITIES: &[&str] = &["low", "medium", "high", "urgent"];

fn one_of(allowed: &'static [&'static str]) -> impl Fn(&String, &()) -> garde::Result {
    move |value: &String, _| {
        if allowed.contains(&value.as_str()) {
            Ok(())
        } else {
            Err(garde::Error::new(format!(
                "must be one of {}",
                allowed.join(", ")
            )))
        }
    }
}

fn hex_color(value: &str, _: &()) -> garde::Result {
    let ok = value.len() == 7
        && value.starts_with('#')
        && value[1..].chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(garde::Error::new("must be a #RRGGBB color"))
    }
}

fn json_object_within_16k(value: &Value, _: &()) -> garde::Result {
    if !value.is_object() {
        return Err(garde::Error::new("must be an object"));
    }
    if value.to_string().len() > 16 * 1024 {
        return Err(garde::Error::new("must be at most 16 KiB"));
    }
    Ok(())
}

/// 400 naming `settings` or `settings.<key>` unless the board settings are an object of at
/// most 16 KiB with known keys: `card_visibility` (`all`, `scoped`) and `chatwoot_status_map`
/// (Chatwoot status → stage id or null).
fn check_board_settings(value: &Value) -> Result<(), ApiError> {
    json_object_within_16k(value, &()).map_err(|e| ApiError::field("settings", e.to_string()))?;
    for (key, setting) in value.as_object().into_iter().flatten() {
        let valid = match key.as_str() {
            "card_visibility" => matches!(setting.as_str(), Some("all" | "scoped")),
            "chatwoot_status_map" => setting.as_object().is_some_and(|map| {
                map.iter().all(|(status, stage)| {
                    ["open", "resolved", "pending", "snoozed"].contains(&status.as_str())
                        && (stage.is_null()
                            || stage.as_str().is_some_and(|s| Uuid::parse_str(s).is_ok()))
                })
            }),
            _ => {
                return Err(ApiError::field(
                    format!("settings.{key}"),
                    "unknown setting",
                ))
            }
        };
        if !valid {
            let rule = if key == "card_visibility" {
                "must be all or scoped"
            } else {
                "maps open, resolved, pending, snoozed to a stage id or null"
            };
            return Err(ApiError::field(format!("settings.{key}"), rule));
        }
    }
    Ok(())
}

/// The board fields garde cannot name as the client spells them: `type` (one of
/// [`BOARD_TYPES`]) and the `settings` keys.
pub fn check_board_fields(kind: &Option<String>, settings: &Option<Value>) -> Result<(), ApiError> {
    if let Some(kind) = kind {
        if !BOARD_TYPES.contains(&kind.as_str()) {
            return Err(ApiError::field(
                "type",
                format!("must be one of {}", BOARD_TYPES.join(", ")),
            ));
        }
    }
    settings.as_ref().map_or(Ok(()), check_board_settings)
}

fn money(value: &str, _: &()) -> garde::Result {
    let (whole, cents) = value.split_once('.').unwrap_or((value, ""));
    let ok = (1..=13).contains(&whole.len())
        && whole.chars().all(|c| c.is_ascii_digit())
        && cents.len() <= 2
        && cents.chars().all(|c| c.is_ascii_digit())
        && !(value.contains('.') && cents.is_empty());
    if ok {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must be a non-negative decimal string with at most 2 places (\"1500.00\")",
        ))
    }
}

fn distinct_tags(value: &[String], _: &()) -> garde::Result {
    if value.len() > 20 {
        return Err(garde::Error::new("at most 20 tags"));
    }
    if value.iter().any(|t| t.is_empty() || t.chars().count() > 50) {
        return Err(garde::Error::new("each tag must be 1-50 characters"));
    }
    let mut seen = std::collections::HashSet::new();
    if !value.iter().all(|t| seen.insert(t)) {
        return Err(garde::Error::new("tags must be distinct"));
    }
    Ok(())
}

/// A checklist template item of a stage.
#[derive(Debug, Clone, Deserialize, Serialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateItem {
    /// Stable key (a fresh UUID when omitted).
    #[garde(skip)]
    pub key: Option<Uuid>,
    /// Text.
    #[garde(length(chars, min = 1, max = 200))]
    pub text: String,
    /// Blocks a move into a final stage while open.
    #[garde(skip)]
    #[serde(default)]
    pub is_required: bool,
}

/// A stage in a board create, or `POST …/stages`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    /// Name (unique per board, ignoring case).
    #[garde(length(chars, min = 1, max = 50))]
    pub name: String,
    /// `#RRGGBB` (default `#6B7280`).
    #[garde(inner(custom(hex_color)))]
    pub color: Option<String>,
    /// A closing stage.
    #[garde(skip)]
    #[serde(default)]
    pub is_final: bool,
    /// 1–8760.
    #[garde(inner(range(min = 1, max = 8760)))]
    pub sla_hours: Option<i32>,
    /// ≤ 50 items.
    #[garde(length(max = 50), dive)]
    pub checklist_template: Option<Vec<TemplateItem>>,
    /// Where to insert (`POST …/stages` only; default: appended).
    #[garde(inner(range(min = 0, max = 19)))]
    pub position: Option<i32>,
}

/// `POST /boards`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBoard {
    /// 1–100.
    #[garde(length(chars, min = 1, max = 100))]
    pub name: String,
    /// ≤ 500.
    #[garde(inner(length(chars, max = 500)))]
    pub description: Option<String>,
    /// `pipeline` (default), `leads`, `support`, `sales`, `custom` (checked by
    /// [`check_board_fields`], which names the field as the client spells it).
    #[garde(skip)]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `card_visibility`, `chatwoot_status_map`.
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Make it the account's default board.
    #[garde(skip)]
    #[serde(default)]
    pub is_default: bool,
    /// 2–20 stages in order (the count is a 422 rule).
    #[garde(dive)]
    pub stages: Vec<StageInput>,
}

/// `PATCH /boards/{b}`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BoardPatch {
    /// 1–100.
    #[garde(inner(length(chars, min = 1, max = 100)))]
    pub name: Option<String>,
    /// ≤ 500; null clears it.
    #[garde(inner(inner(length(chars, max = 500))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Type (see [`check_board_fields`]).
    #[garde(skip)]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Replaces the settings.
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Only `true` (moves the default flag here).
    #[garde(skip)]
    pub is_default: Option<bool>,
}

/// `PATCH /boards/{b}/stages/{s}`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StagePatch {
    /// 1–50.
    #[garde(inner(length(chars, min = 1, max = 50)))]
    pub name: Option<String>,
    /// `#RRGGBB`.
    #[garde(inner(custom(hex_color)))]
    pub color: Option<String>,
    /// Final.
    #[garde(skip)]
    pub is_final: Option<bool>,
    /// 1–8760; null clears it.
    #[garde(inner(inner(range(min = 1, max = 8760))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    pub sla_hours: Option<Option<i32>>,
    /// ≤ 50 items.
    #[garde(length(max = 50), dive)]
    pub checklist_template: Option<Vec<TemplateItem>>,
    /// Owned by automations (an array).
    #[garde(skip)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub auto_actions: Option<Vec<Value>>,
}

/// `POST /boards/{b}/stages/reorder`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderStages {
    /// Each of the board's stages exactly once (a 422 rule).
    #[garde(skip)]
    pub stage_ids: Vec<Uuid>,
}

/// `POST /boards/{b}/cards`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCard {
    /// The stage (of this board).
    #[garde(skip)]
    pub stage_id: Uuid,
    /// 1–200 (defaults to the contact's name; required without one).
    #[garde(inner(length(chars, min = 1, max = 200)))]
    pub title: Option<String>,
    /// Chatwoot conversation (one card per conversation).
    #[garde(inner(range(min = 1)))]
    pub chatwoot_conversation_id: Option<i64>,
    /// Chatwoot contact.
    #[garde(inner(range(min = 1)))]
    pub chatwoot_contact_id: Option<i64>,
    /// Decimal string.
    #[garde(inner(custom(money)))]
    pub value: Option<String>,
    /// Priority (default `medium`).
    #[garde(inner(custom(one_of(PRIORITIES))))]
    pub priority: Option<String>,
    /// Due date.
    #[garde(skip)]
    pub due_date: Option<DateTime<Utc>>,
    /// ≤ 20 distinct tags of 1–50 chars.
    #[garde(inner(custom(distinct_tags)))]
    pub tags: Option<Vec<String>>,
    /// JSON object ≤ 16 KiB.
    #[garde(inner(custom(json_object_within_16k)))]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Value>,
    /// ≤ 10 000 chars.
    #[garde(inner(length(chars, max = 10_000)))]
    pub notes: Option<String>,
    /// Assignee (an agent's card is theirs).
    #[garde(skip)]
    pub assignee_id: Option<Uuid>,
    /// Contact name (cards without a conversation).
    #[garde(inner(length(chars, min = 1, max = 255)))]
    pub contact_name: Option<String>,
    /// Contact phone.
    #[garde(inner(length(chars, min = 1, max = 50)))]
    pub contact_phone: Option<String>,
    /// Contact email.
    #[garde(inner(length(max = 254), email))]
    pub contact_email: Option<String>,
    /// Contact avatar (https).
    #[garde(inner(length(max = 2048), prefix("https://")))]
    pub contact_avatar_url: Option<String>,
}

/// `PATCH /boards/{b}/cards/{c}`: the fields present change; `null` clears a nullable one.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardPatch {
    /// 1–200.
    #[garde(inner(length(chars, min = 1, max = 200)))]
    pub title: Option<String>,
    /// Decimal string or null.
    #[garde(inner(inner(custom(money))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub value: Option<Option<String>>,
    /// Priority.
    #[garde(inner(custom(one_of(PRIORITIES))))]
    pub priority: Option<String>,
    /// Due date or null.
    #[garde(skip)]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_date: Option<Option<DateTime<Utc>>>,
    /// Tags (replaced whole).
    #[garde(inner(custom(distinct_tags)))]
    pub tags: Option<Vec<String>>,
    /// Custom fields (replaced whole).
    #[garde(inner(custom(json_object_within_16k)))]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Value>,
    /// Notes or null.
    #[garde(inner(inner(length(chars, max = 10_000))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    /// Assignee or null.
    #[garde(skip)]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    /// Contact name (cards without a conversation).
    #[garde(inner(inner(length(chars, min = 1, max = 255))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub contact_name: Option<Option<String>>,
    /// Contact phone.
    #[garde(inner(inner(length(chars, min = 1, max = 50))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub contact_phone: Option<Option<String>>,
    /// Contact email.
    #[garde(inner(inner(length(max = 254), email)))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub contact_email: Option<Option<String>>,
    /// Contact avatar (https).
    #[garde(inner(inner(length(max = 2048), prefix("https://"))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub contact_avatar_url: Option<Option<String>>,
    /// The version the client last saw (409 when it differs).
    #[garde(skip)]
    pub version: Option<i32>,
}

/// `POST /boards/{b}/cards/{c}/move`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveCard {
    /// Target stage (of this board).
    #[garde(skip)]
    pub stage_id: Uuid,
    /// Place the card just above this one.
    #[garde(skip)]
    pub before_card_id: Option<Uuid>,
    /// Place the card just below this one.
    #[garde(skip)]
    pub after_card_id: Option<Uuid>,
    /// 0-based slot without the card itself; past the end = bottom.
    #[garde(inner(range(min = 0)))]
    pub index: Option<i64>,
    /// ≤ 500, kept in the history row.
    #[garde(inner(length(chars, max = 500)))]
    pub notes: Option<String>,
    /// The version the client last saw.
    #[garde(skip)]
    pub version: Option<i32>,
}

/// `POST …/cards/{c}/checklist`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChecklistItem {
    /// 1–200.
    #[garde(length(chars, min = 1, max = 200))]
    pub text: String,
    /// Blocks a move into a final stage while open.
    #[garde(skip)]
    #[serde(default)]
    pub is_required: bool,
}

/// `PATCH …/checklist/{i}`.
#[derive(Debug, Clone, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItemPatch {
    /// 1–200.
    #[garde(inner(length(chars, min = 1, max = 200)))]
    pub text: Option<String>,
    /// Required.
    #[garde(skip)]
    pub is_required: Option<bool>,
    /// Done.
    #[garde(skip)]
    pub is_completed: Option<bool>,
    /// 0-based place in the list.
    #[garde(inner(range(min = 0, max = 99)))]
    pub position: Option<i32>,
}
