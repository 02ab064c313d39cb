//! `GET /api/v1/accounts/{account_id}/presence`: the tenant's online users (realtime.md,
//! "Presence"), as the tenant supervisor knows them (this node's sessions).

use actix_web::web;
use serde::Serialize;
use uuid::Uuid;
use whatpro_actors::supervisor::OnlineUsers;

use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::pagination::Page;
use crate::state::AppState;

/// One online user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PresenceItem {
    /// The user.
    pub user_id: Uuid,
    /// Always `online` (offline users are not listed).
    pub status: &'static str,
}

/// Lists the online users.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/presence", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account")),
    responses((status = 200, body = Page<PresenceItem>), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<Page<PresenceItem>>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsersRead)?;
    // A tenant without a live supervisor has no sessions on this node: nobody is online.
    let mut users = match state.registry.get(account_id) {
        Some(_) => state.registry.send(account_id, OnlineUsers).await?,
        None => Vec::new(),
    };
    users.sort();
    Ok(web::Json(Page::all(
        users
            .into_iter()
            .map(|user_id| PresenceItem {
                user_id,
                status: "online",
            })
            .collect(),
    )))
}
