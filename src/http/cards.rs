//! `/api/v1/accounts/{account_id}/boards/{board_id}/cards`: cards (kanban.md). Reads go
//! straight to the database within what the reader may see; writes go through the board's
//! actor.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use whatpro_actors::CardScope;

use crate::auth::policy::Action;
use crate::auth::Principal;
use crate::db::cards::{self, AssigneeFilter, Card, CardFilter, CardSort, DueBucket, HistoryEntry};
use crate::db::checklists::{self, ChecklistItem};
use crate::db::{self, boards};
use crate::error::ApiError;
use crate::http::boards::gate;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::{decode_cursor, encode_cursor, Page};
use crate::kanban::commands::Op;
use crate::kanban::inputs::{CardPatch, CreateCard, MoveCard, PRIORITIES};
use crate::kanban::{self, access};
use crate::state::AppState;

/// A card with its checklist (`GET …/cards/{c}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CardDetail {
    /// The card.
    #[serde(flatten)]
    pub card: Card,
    /// Its checklist in order.
    pub checklist: Vec<ChecklistItem>,
}

/// The answer to a move.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Moved {
    /// The card after the move.
    pub card: Card,
    /// The history row (null for a same-stage reorder).
    pub history_entry: Option<HistoryEntry>,
}

/// `GET …/cards` filters (kanban.md, Filters).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CardListQuery {
    /// One stage id or a comma-separated list.
    pub stage_id: Option<String>,
    /// One priority or a comma-separated list.
    pub priority: Option<String>,
    /// A user id, `me` or `none`.
    pub assignee_id: Option<String>,
    /// Comma-separated; any of them matches.
    pub tags: Option<String>,
    /// `overdue`, `today`, `this_week`, `no_date`.
    pub due: Option<String>,
    /// IANA time zone for `due` (default UTC).
    pub tz: Option<String>,
    /// Inclusive, decimal string.
    pub value_min: Option<String>,
    /// Inclusive, decimal string.
    pub value_max: Option<String>,
    /// Inclusive, RFC 3339.
    pub created_after: Option<String>,
    /// Inclusive, RFC 3339.
    pub created_before: Option<String>,
    /// 1–200 characters: words, partial names, phone fragments.
    pub q: Option<String>,
    /// `position` (default), `-updated_at`, `due_date`, `-value`, `-created_at`.
    pub sort: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn list_of(value: &Option<String>) -> Vec<String> {
    value
        .as_deref()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default()
}

fn decimal(field: &str, value: &Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.parse::<f64>().is_ok_and(|n| n.is_finite() && n >= 0.0) => {
            Ok(Some(v.clone()))
        }
        Some(_) => Err(ApiError::field(field, "must be a non-negative decimal")),
    }
}

fn instant(field: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::field(field, "must be an RFC 3339 timestamp"))
        })
        .transpose()
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    k: Vec<String>,
    id: Uuid,
}

impl CardListQuery {
    /// The validated filter for a reader whose id is `me`.
    fn filter(&self, me: Option<Uuid>) -> Result<(CardFilter, i64), ApiError> {
        let limit = match self.limit {
            None => 50,
            Some(n) if (1..=200).contains(&n) => n,
            Some(_) => return Err(ApiError::field("limit", "must be 1-200")),
        };
        let stage_ids = list_of(&self.stage_id)
            .iter()
            .map(|s| {
                Uuid::parse_str(s).map_err(|_| ApiError::field("stage_id", "must be stage ids"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let priorities = list_of(&self.priority);
        if priorities.iter().any(|p| !PRIORITIES.contains(&p.as_str())) {
            return Err(ApiError::field(
                "priority",
                "must be low, medium, high or urgent",
            ));
        }
        let assignee = match self.assignee_id.as_deref() {
            None => None,
            Some("none") => Some(AssigneeFilter::Nobody),
            Some("me") => {
                Some(AssigneeFilter::User(me.ok_or_else(|| {
                    ApiError::field("assignee_id", "me needs a user")
                })?))
            }
            Some(id) => Some(AssigneeFilter::User(Uuid::parse_str(id).map_err(|_| {
                ApiError::field("assignee_id", "must be a user id, me or none")
            })?)),
        };
        let tags = list_of(&self.tags);
        if tags.iter().any(|t| t.is_empty() || t.chars().count() > 50) {
            return Err(ApiError::field("tags", "each tag must be 1-50 characters"));
        }
        let due = match self.due.as_deref() {
            None => None,
            Some("overdue") => Some(DueBucket::Overdue),
            Some("today") => Some(DueBucket::Today),
            Some("this_week") => Some(DueBucket::ThisWeek),
            Some("no_date") => Some(DueBucket::NoDate),
            Some(_) => {
                return Err(ApiError::field(
                    "due",
                    "must be overdue, today, this_week or no_date",
                ))
            }
        };
        let tz = self.tz.clone().unwrap_or_else(|| "UTC".into());
        let tz_ok = tz.len() <= 64
            && tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
        if !tz_ok {
            return Err(ApiError::field("tz", "must be an IANA time zone"));
        }
        let q = match &self.q {
            Some(q) if (1..=200).contains(&q.chars().count()) => Some(q.clone()),
            Some(_) => return Err(ApiError::field("q", "must be 1-200 characters")),
            None => None,
        };
        let sort = match self.sort.as_deref() {
            None | Some("position") => CardSort::Position,
            Some("-updated_at") => CardSort::UpdatedDesc,
            Some("due_date") => CardSort::DueDate,
            Some("-value") => CardSort::ValueDesc,
            Some("-created_at") => CardSort::CreatedDesc,
            Some(_) => {
                return Err(ApiError::field(
                    "sort",
                    "must be position, -updated_at, due_date, -value or -created_at",
                ))
            }
        };
        let after = self
            .cursor
            .as_deref()
            .map(decode_cursor::<Cursor>)
            .transpose()?
            .map(|cursor| (cursor.k, cursor.id));
        Ok((
            CardFilter {
                stage_ids,
                priorities,
                assignee,
                tags,
                due,
                tz,
                value_min: decimal("value_min", &self.value_min)?,
                value_max: decimal("value_max", &self.value_max)?,
                created_after: instant("created_after", &self.created_after)?,
                created_before: instant("created_before", &self.created_before)?,
                q,
                visible: None,
                sort,
                after,
                fetch: limit + 1,
            },
            limit,
        ))
    }
}

/// The `visible` restriction of a reader's scope: the assignees they see, and whether they
/// see unassigned cards (`None`: every card).
pub fn visible(scope: &CardScope) -> Option<(Vec<Uuid>, bool)> {
    match scope {
        CardScope::All => None,
        CardScope::Own(user) => Some((vec![*user], false)),
        CardScope::Team { user_id, mates } => {
            let mut users: Vec<Uuid> = mates.iter().copied().collect();
            users.push(*user_id);
            Some((users, true))
        }
    }
}

/// Lists a board's cards with filters, within what the reader may see.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"), CardListQuery),
    responses((status = 200, body = Page<Card>), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<CardListQuery>,
) -> Result<web::Json<Page<Card>>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsRead).await?;
    let (mut filter, limit) = query.filter(principal.user_id)?;
    let reader = principal.clone();
    let rows = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let board = boards::find(conn, account_id, board_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            filter.visible = visible(&access::read_scope(conn, &reader, &board).await?);
            if filter.tz != "UTC" && !cards::is_time_zone(conn, &filter.tz).await? {
                return Err(ApiError::field("tz", "must be an IANA time zone"));
            }
            Ok::<_, ApiError>(cards::list(conn, board_id, &filter).await?)
        })
    })
    .await?;
    Ok(web::Json(Page::with_cursor(
        rows,
        limit,
        |last| {
            encode_cursor(&Cursor {
                k: last.sort_key.clone(),
                id: last.card.id,
            })
        },
        |row| row.card,
    )))
}

/// Creates a card at the top of its stage (writers).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board")),
    request_body = CreateCard,
    responses((status = 201, body = Card), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<CreateCard>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsWrite).await?;
    let audit = context.audit(&principal);
    let reply = kanban::write(&state, &principal, audit, board_id, Op::CreateCard(body.0)).await?;
    Ok(HttpResponse::Created().json(reply.into_card()?))
}

/// Reads a card with its checklist.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card")),
    responses((status = 200, body = CardDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<web::Json<CardDetail>, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsRead).await?;
    let detail = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let card = visible_card(conn, &principal, account_id, board_id, card_id).await?;
            let checklist = checklists::of_card(conn, card_id).await?;
            Ok::<_, ApiError>(CardDetail { card, checklist })
        })
    })
    .await?;
    Ok(web::Json(detail))
}

/// The card if the reader may see it (404 otherwise: missing, another board's or tenant's,
/// or out of scope on a `scoped` board).
pub async fn visible_card(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    account_id: Uuid,
    board_id: Uuid,
    card_id: Uuid,
) -> Result<Card, ApiError> {
    let board = boards::find(conn, account_id, board_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let card = cards::find(conn, board_id, card_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !access::read_scope(conn, principal, &board)
        .await?
        .sees(card.assignee_id)
    {
        return Err(ApiError::NotFound);
    }
    Ok(card)
}

/// Updates a card's fields (writers); `version` guards against lost updates.
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card")),
    request_body = CardPatch,
    responses((status = 200, body = Card), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid)>,
    body: Json<CardPatch>,
) -> Result<web::Json<Card>, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsWrite).await?;
    let audit = context.audit(&principal);
    let op = Op::UpdateCard(card_id, body.0);
    let reply = kanban::write(&state, &principal, audit, board_id, op).await?;
    Ok(web::Json(reply.into_card()?))
}

/// Deletes a card (account scope: admins and keys).
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card")),
    responses((status = 204, description = "deleted"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsDelete).await?;
    let audit = context.audit(&principal);
    kanban::write(&state, &principal, audit, board_id, Op::DeleteCard(card_id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Moves a card to a stage and slot (writers).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/move", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card")),
    request_body = MoveCard,
    responses((status = 200, body = Moved), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn move_card(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid)>,
    body: Json<MoveCard>,
) -> Result<web::Json<Moved>, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsWrite).await?;
    let audit = context.audit(&principal);
    let op = Op::MoveCard(card_id, body.0);
    let (card, history_entry) = kanban::write(&state, &principal, audit, board_id, op)
        .await?
        .into_moved()?;
    Ok(web::Json(Moved {
        card,
        history_entry,
    }))
}
