//! `/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist`: a card's
//! checklist (kanban.md). Reads need the card to be visible; writes go through the board's
//! actor and count as writes of the card.

use actix_web::{web, HttpResponse};
use uuid::Uuid;

use crate::auth::policy::Action;
use crate::auth::Principal;
use crate::db::checklists::{self, ChecklistItem};
use crate::db::{self};
use crate::error::ApiError;
use crate::http::boards::gate;
use crate::http::cards::visible_card;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::Page;
use crate::kanban::commands::Op;
use crate::kanban::inputs::{ChecklistItemPatch, NewChecklistItem};
use crate::kanban::{self};
use crate::state::AppState;

/// Lists a card's checklist in order.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card")),
    responses((status = 200, body = Page<ChecklistItem>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<web::Json<Page<ChecklistItem>>, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsRead).await?;
    let items = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            visible_card(conn, &principal, account_id, board_id, card_id).await?;
            Ok::<_, ApiError>(checklists::of_card(conn, card_id).await?)
        })
    })
    .await?;
    Ok(web::Json(Page::all(items)))
}

/// Adds an item (writers of the card; ≤ 100 per card).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card")),
    request_body = NewChecklistItem,
    responses((status = 201, body = ChecklistItem), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid)>,
    body: Json<NewChecklistItem>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, board_id, card_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsWrite).await?;
    let audit = context.audit(&principal);
    let op = Op::AddItem(card_id, body.0);
    let reply = kanban::write(&state, &principal, audit, board_id, op).await?;
    Ok(HttpResponse::Created().json(reply.into_item()?))
}

/// Edits an item: text, required, completed, position.
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist/{item_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card"), ("item_id" = Uuid, Path, description = "item")),
    request_body = ChecklistItemPatch,
    responses((status = 200, body = ChecklistItem), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid, Uuid)>,
    body: Json<ChecklistItemPatch>,
) -> Result<web::Json<ChecklistItem>, ApiError> {
    let (account_id, board_id, card_id, item_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsWrite).await?;
    let audit = context.audit(&principal);
    let op = Op::UpdateItem(card_id, item_id, body.0);
    let reply = kanban::write(&state, &principal, audit, board_id, op).await?;
    Ok(web::Json(reply.into_item()?))
}

/// Removes an item.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/boards/{board_id}/cards/{card_id}/checklist/{item_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("card_id" = Uuid, Path, description = "card"), ("item_id" = Uuid, Path, description = "item")),
    responses((status = 204, description = "removed"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, board_id, card_id, item_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::CardsWrite).await?;
    let audit = context.audit(&principal);
    let op = Op::DeleteItem(card_id, item_id);
    kanban::write(&state, &principal, audit, board_id, op).await?;
    Ok(HttpResponse::NoContent().finish())
}
