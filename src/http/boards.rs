//! `/api/v1/accounts/{account_id}/boards`: kanban boards (kanban.md, Endpoints).
//!
//! Reads go straight to the database; writes to an existing board go through its actor
//! (`crate::kanban::write`). Creating a board has no actor yet to go through: it runs in one
//! tenant transaction with the `max_boards` quota check. Every kanban route answers 403
//! `FEATURE_DISABLED` while the account's `kanban` flag is off ([`gate`]).

use actix_web::{web, HttpResponse};
use serde_json::json;
use uuid::Uuid;

use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::db::audit::{self, AuditEvent};
use crate::db::boards::{self, NewBoard};
use crate::db::entitlements::{self, Limit};
use crate::db::{self};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::entitlements::require_feature;
use crate::http::extract::Json;
use crate::http::pagination::Page;
use crate::kanban::commands::{self, BoardView, Op, MAX_STAGES, MIN_STAGES};
use crate::kanban::inputs::{check_board_fields, BoardPatch, CreateBoard};
use crate::kanban::{self};
use crate::state::AppState;

/// The checks every kanban route starts with: the account, the action, the `kanban` flag.
pub async fn gate(
    state: &AppState,
    principal: &Principal,
    account_id: Uuid,
    action: Action,
) -> Result<(), ApiError> {
    principal.check_account(account_id)?;
    // The flag first: with the module off, every caller gets the same answer.
    require_feature(state, account_id, "kanban").await?;
    authorize(principal, action)
}

/// The board with its stages, or 404.
pub async fn load_view(
    state: &AppState,
    account_id: Uuid,
    board_id: Uuid,
) -> Result<BoardView, ApiError> {
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let board = boards::find(conn, account_id, board_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let stages = boards::stages_of(conn, board_id).await?;
            Ok::<_, ApiError>(BoardView { board, stages })
        })
    })
    .await
}

/// A board in `GET /boards`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BoardListItem {
    /// The board.
    #[serde(flatten)]
    pub board: boards::Board,
    /// Its stages.
    pub stages_count: i64,
    /// Its cards.
    pub cards_count: i64,
}

/// Lists the account's boards: the default first, then by name.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 200, body = Page<BoardListItem>), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<Page<BoardListItem>>, ApiError> {
    let account_id = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsRead).await?;
    let rows = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(boards::list(conn, account_id).await?) })
    })
    .await?;
    Ok(web::Json(Page::all(
        rows.into_iter()
            .map(|row| BoardListItem {
                board: row.board,
                stages_count: row.stages_count,
                cards_count: row.cards_count,
            })
            .collect(),
    )))
}

/// Creates a board with its 2–20 stages (admin; `max_boards`).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/boards", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account")), request_body = CreateBoard,
    responses((status = 201, body = BoardView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
    body: Json<CreateBoard>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsWrite).await?;
    let request = body.0;
    check_board_fields(&request.kind, &request.settings)?;
    if !(MIN_STAGES..=MAX_STAGES).contains(&request.stages.len()) {
        return Err(ApiError::Unprocessable(
            format!("a board has {MIN_STAGES} to {MAX_STAGES} stages").into(),
        ));
    }
    if request.stages.iter().all(|s| s.is_final) {
        return Err(ApiError::Unprocessable(
            "a board needs at least one non-final stage".into(),
        ));
    }
    let audit_context = context.audit(&principal);
    let created_by = principal.user_id;
    let view = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            entitlements::check_quota(conn, account_id, Limit::MaxBoards).await?;
            let settings = request.settings.unwrap_or_else(|| json!({}));
            let board = boards::insert(
                conn,
                &NewBoard {
                    id: Uuid::now_v7(),
                    account_id,
                    name: &request.name,
                    description: request.description.as_deref(),
                    kind: request.kind.as_deref().unwrap_or("pipeline"),
                    settings: &settings,
                    created_by,
                },
            )
            .await?;
            let stages: Vec<_> = request
                .stages
                .into_iter()
                .enumerate()
                .map(|(i, stage)| commands::new_stage(&board, stage, i as i32))
                .collect();
            let stages = boards::insert_stages(conn, &stages)
                .await
                .map_err(commands::stage_conflict)?;
            let board = if request.is_default {
                boards::lock_default(conn, account_id).await?;
                boards::make_default(conn, account_id, board.id).await?;
                boards::find(conn, account_id, board.id)
                    .await?
                    .ok_or(ApiError::NotFound)?
            } else {
                board
            };
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "board.created", "board", board.id)
                    .with_after(json!({ "name": board.name, "type": board.kind,
                                        "stages": stages.iter().map(|s| &s.name).collect::<Vec<_>>() })),
            )
            .await?;
            Ok::<_, ApiError>(BoardView { board, stages })
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Reads a board with its stages in order.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/boards/{board_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board")),
    responses((status = 200, body = BoardView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<BoardView>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsRead).await?;
    Ok(web::Json(load_view(&state, account_id, board_id).await?))
}

/// Updates a board (admin): name, description, type, settings; `is_default: true` moves the
/// default flag here.
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}/boards/{board_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board")),
    request_body = BoardPatch,
    responses((status = 200, body = BoardView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<BoardPatch>,
) -> Result<web::Json<BoardView>, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsWrite).await?;
    check_board_fields(&body.0.kind, &body.0.settings)?;
    let audit = context.audit(&principal);
    let reply = kanban::write(&state, &principal, audit, board_id, Op::UpdateBoard(body.0)).await?;
    Ok(web::Json(reply.into_board()?))
}

/// Deletes a board with everything on it (admin; not the default board).
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/boards/{board_id}", tag = "kanban", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("board_id" = Uuid, Path, description = "board")),
    responses((status = 204, description = "deleted"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, board_id) = path.into_inner();
    gate(&state, &principal, account_id, Action::BoardsWrite).await?;
    let audit = context.audit(&principal);
    kanban::write(&state, &principal, audit, board_id, Op::DeleteBoard).await?;
    Ok(HttpResponse::NoContent().finish())
}
