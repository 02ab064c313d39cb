//! `/api/v1/accounts/{account_id}/boards/{board_id}/stages`: a board's stages (kanban.md).
//! Every write goes through the board's actor.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::policy::Action;
use crate::auth::Principal;
use crate::db::boards::Stage;
use crate::error::ApiError;
use crate::http::boards::{gate, load_view};
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::Page;
use crate::kanban::commands::Op;
use crate::kanban::inputs::{ReorderStages, StageInput, StagePatch};
use crate::kanban::{self};
use crate::state::AppState;

/// Lists a board's stages in order.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}/stages", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board")),
    responses((status = 200, body = Page<Stage>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Page<Stage>>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsRead).await?;
    let view = load_view(&state, account_id, board_id).await?;
    Ok(web::Json(Page::all(view.stages)))
}

/// Adds a stage (admin): appended, or inserted at `position`.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/boards/{board_id}/stages", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board")),
    request_body = StageInput,
    responses((status = 201, body = Stage), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<StageInput>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsWrite).await?;
    let audit = context.audit(&principal);
    let reply = kanban::write(&state, &principal, audit, board_id, Op::CreateStage(body.0)).await?;
    Ok(HttpResponse::Created().json(reply.into_stage()?))
}

/// Updates a stage (admin).
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}/boards/{board_id}/stages/{stage_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("stage_id" = Uuid, Path, description = "stage")),
    request_body = StagePatch,
    responses((status = 200, body = Stage), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid)>,
    body: Json<StagePatch>,
) -> Result<web::Json<Stage>, ApiError> {
    let (account_id, board_id, stage_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsWrite).await?;
    let audit = context.audit(&principal);
    let op = Op::UpdateStage(stage_id, body.0);
    let reply = kanban::write(&state, &principal, audit, board_id, op).await?;
    Ok(web::Json(reply.into_stage()?))
}

/// `DELETE …/stages/{s}` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteStageQuery {
    /// Another stage of the board that receives the remaining cards, in order, at its bottom.
    pub move_cards_to: Option<Uuid>,
}

/// Deletes a stage (admin); its cards go to `move_cards_to`.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/boards/{board_id}/stages/{stage_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board"),
        ("stage_id" = Uuid, Path, description = "stage"), DeleteStageQuery),
    responses((status = 204, description = "deleted"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid)>,
    query: web::Query<DeleteStageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, board_id, stage_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsWrite).await?;
    let audit = context.audit(&principal);
    let op = Op::DeleteStage {
        stage_id,
        move_cards_to: query.move_cards_to,
    };
    kanban::write(&state, &principal, audit, board_id, op).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reorders the board's stages (admin, supervisor): each stage exactly once.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/boards/{board_id}/stages/reorder", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board")),
    request_body = ReorderStages,
    responses((status = 200, body = Page<Stage>), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn reorder(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<ReorderStages>,
) -> Result<web::Json<Page<Stage>>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::StagesReorder).await?;
    let audit = context.audit(&principal);
    let op = Op::ReorderStages(body.0.stage_ids);
    kanban::write(&state, &principal, audit, board_id, op).await?;
    let view = load_view(&state, account_id, board_id).await?;
    Ok(web::Json(Page::all(view.stages)))
}
