//! `GET /api/v1/accounts/{account_id}/boards/{board_id}/events?after_seq=N`: the board's event
//! log for a client that missed frames (realtime.md, resync).
//!
//! The frames are those pushed live, filtered the same way: on a `card_visibility: scoped`
//! board a card event the reader may not see becomes `seq.skip`, or `card.deleted` when they
//! saw the card before the event. The board's current visibility setting decides.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use whatpro_actors::{CardScope, CardView};

use crate::auth::policy::Action;
use crate::auth::Principal;
use crate::db::cards::{self, LoggedEvent};
use crate::db::{self, boards};
use crate::error::ApiError;
use crate::http::boards::gate;
use crate::kanban::access;
use crate::kanban::store::{gone_frame, skip_frame};
use crate::state::AppState;

/// `?after_seq=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The last seq the client applied (≥ 0).
    pub after_seq: i64,
}

/// The missed frames.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// Frames with seq > `after_seq`, ascending.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// The board's seq now.
    pub current_seq: i64,
    /// Always null: the whole remainder is one page.
    pub next_cursor: Option<String>,
}

/// The frame a reader with `scope` gets for a logged event: the same decision as the live
/// fan-out ([`CardScope::view`]). The log keeps the assignees; whether the card existed before
/// or after follows from the event (`card.created`, `card.deleted`).
fn frame_for(event: LoggedEvent, scope: &CardScope) -> Value {
    let Some(card_id) = event.card_id else {
        return event.frame;
    };
    let kind = event.frame.get("event").and_then(Value::as_str);
    let before = (kind != Some("card.created")).then_some(event.assignee_before);
    let after = (kind != Some("card.deleted")).then_some(event.assignee_after);
    match scope.view(before, after) {
        CardView::Full => event.frame,
        CardView::Gone => {
            let stage_id = event
                .frame
                .pointer("/card/stage_id")
                .cloned()
                .unwrap_or(Value::Null);
            gone_frame(event.board_id, event.seq, card_id, stage_id)
        }
        CardView::Skip => skip_frame(event.board_id, event.seq),
    }
}

/// Events after `after_seq`; 409 `resync_required` when the log no longer reaches back.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/events", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"), EventsQuery),
    responses((status = 200, body = EventsPage), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<EventsQuery>,
) -> Result<web::Json<EventsPage>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsRead).await?;
    let after = query.after_seq;
    if after < 0 {
        return Err(ApiError::field("after_seq", "must be 0 or more"));
    }
    let page = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let board = boards::find(conn, account_id, board_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if after >= board.seq {
                return Ok(EventsPage {
                    items: Vec::new(),
                    current_seq: board.seq,
                    next_cursor: None,
                });
            }
            let (events, oldest) = cards::events_after(conn, board_id, after).await?;
            // The frames after `after` start at `after + 1`; a log that begins later lost some.
            if oldest.is_none_or(|oldest| oldest > after + 1) {
                return Err(ApiError::Conflict {
                    message: "the event log no longer reaches back that far; reload the board"
                        .into(),
                    details: Some(json!({ "reason": "resync_required", "current_seq": board.seq })),
                });
            }
            let scope = access::read_scope(conn, &principal, &board).await?;
            Ok::<_, ApiError>(EventsPage {
                items: events.into_iter().map(|e| frame_for(e, &scope)).collect(),
                current_seq: board.seq,
                next_cursor: None,
            })
        })
    })
    .await?;
    Ok(web::Json(page))
}
