//! `/api/v1/accounts/{account_id}/teams`: teams and their members (tenancy.md §3). Members
//! read; admins write (creates count against `max_teams`); supervisors may add and remove
//! agents in the teams they belong to.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::policy::{authorize, Action, Role};
use crate::auth::Principal;
use crate::db::audit::{self, AuditEvent};
use crate::db::entitlements::{self, Limit};
use crate::db::teams::{self, Team};
use crate::db::{self, users};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::http::pagination::{Page, PageQuery};
use crate::http::users::UserView;
use crate::state::AppState;

/// A team.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Chatwoot team id.
    pub chatwoot_team_id: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl From<Team> for TeamView {
    fn from(t: Team) -> Self {
        Self {
            id: t.id,
            name: t.name,
            description: t.description,
            chatwoot_team_id: t.chatwoot_team_id,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

fn duplicate_name(e: diesel::result::Error) -> ApiError {
    match ApiError::from(e) {
        ApiError::Conflict { .. } => ApiError::conflict("a team with this name exists"),
        other => other,
    }
}

/// Lists teams.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/teams", tag = "teams", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), PageQuery),
    responses((status = 200, body = Page<TeamView>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<TeamView>>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsRead)?;
    let (limit, after) = (query.limit()?, query.after_id()?);
    let rows = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(teams::page(conn, account_id, after, limit + 1).await?)
        })
    })
    .await?;
    Ok(web::Json(Page::from_rows(
        rows,
        limit,
        |t| t.id,
        TeamView::from,
    )))
}

/// `POST …/teams` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// Name, 1–100 characters, unique in the account (case-insensitive).
    #[garde(length(min = 1, max = 100))]
    pub name: String,
    /// Description, ≤ 500 characters.
    #[garde(inner(length(max = 500)))]
    pub description: Option<String>,
}

/// Creates a team (admin; `max_teams`).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/teams", tag = "teams", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")), request_body = CreateTeam,
    responses((status = 201, body = TeamView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
    body: Json<CreateTeam>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsManage)?;
    let request = body.0;
    let audit_context = context.audit(&principal);
    let team = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            entitlements::check_quota(conn, account_id, Limit::MaxTeams).await?;
            let team = teams::insert(
                conn,
                account_id,
                request.name.trim(),
                request.description.as_deref(),
            )
            .await
            .map_err(duplicate_name)?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "team.created", "team", team.id)
                    .with_after(json!({ "name": team.name, "description": team.description })),
            )
            .await?;
            Ok::<_, ApiError>(team)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(TeamView::from(team)))
}

/// Reads a team.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/teams/{team_id}", tag = "teams", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("team_id" = Uuid, Path, description = "team")),
    responses((status = 200, body = TeamView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<TeamView>, ApiError> {
    let (account_id, team_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsRead)?;
    let team = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(teams::find(conn, account_id, team_id).await?) })
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(web::Json(team.into()))
}

/// `PATCH …/teams/{team_id}` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTeam {
    /// Name.
    #[garde(inner(length(min = 1, max = 100)))]
    pub name: Option<String>,
    /// Description.
    #[garde(inner(length(max = 500)))]
    pub description: Option<String>,
}

/// Updates a team (admin).
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}/teams/{team_id}", tag = "teams", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("team_id" = Uuid, Path, description = "team")),
    request_body = PatchTeam,
    responses((status = 200, body = TeamView), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<PatchTeam>,
) -> Result<web::Json<TeamView>, ApiError> {
    let (account_id, team_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsManage)?;
    let patch = body.0;
    let audit_context = context.audit(&principal);
    let team = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let before = teams::find(conn, account_id, team_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let team = teams::update(
                conn,
                team_id,
                patch.name.as_deref().map(str::trim),
                patch.description.as_deref().map(Some),
            )
            .await
            .map_err(duplicate_name)?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "team.updated", "team", team_id)
                    .with_before(json!({ "name": before.name, "description": before.description }))
                    .with_after(json!({ "name": team.name, "description": team.description })),
            )
            .await?;
            Ok::<_, ApiError>(team)
        })
    })
    .await?;
    Ok(web::Json(team.into()))
}

/// Deletes a team and its memberships (admin); 204.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/teams/{team_id}", tag = "teams", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("team_id" = Uuid, Path, description = "team")),
    responses((status = 204, description = "deleted"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, team_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsManage)?;
    let audit_context = context.audit(&principal);
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let team = teams::find(conn, account_id, team_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            teams::delete(conn, team_id).await?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "team.deleted", "team", team_id)
                    .with_before(json!({ "name": team.name })),
            )
            .await?;
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    refresh_board_access(&state, account_id);
    Ok(HttpResponse::NoContent().finish())
}

/// The team's members.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/teams/{team_id}/members", tag = "teams", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("team_id" = Uuid, Path, description = "team")),
    responses((status = 200, body = Page<UserView>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn members(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Page<UserView>>, ApiError> {
    let (account_id, team_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsRead)?;
    let members = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            teams::find(conn, account_id, team_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let members = teams::members(conn, account_id, team_id).await?;
            crate::http::users::views(conn, account_id, members).await
        })
    })
    .await?;
    Ok(web::Json(Page::all(members)))
}

/// Who may change a team's membership: admins; supervisors for agents in their own teams.
async fn may_change_membership(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    team_id: Uuid,
    member: &users::User,
) -> Result<(), ApiError> {
    if principal.role >= Role::Admin {
        return Ok(());
    }
    let actor = principal.require_user()?;
    if principal.role == Role::Supervisor
        && principal.scopes.is_none()
        && member.role == "agent"
        && teams::is_member(conn, team_id, actor).await?
    {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        message: "supervisors manage agents in their own teams only".into(),
        details: Some(json!({ "required_role": "admin" })),
    })
}

/// `POST …/members` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user to add (of this account).
    #[garde(skip)]
    pub user_id: Uuid,
}

/// A membership.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Membership {
    /// Team.
    pub team_id: Uuid,
    /// User.
    pub user_id: Uuid,
    /// When added.
    pub created_at: DateTime<Utc>,
}

/// Adds a user to a team: 201; already a member → 409; inactive user → 422; a user of
/// another account → 404.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/teams/{team_id}/members", tag = "teams", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("team_id" = Uuid, Path, description = "team")),
    request_body = AddMember,
    responses((status = 201, body = Membership), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn add_member(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<AddMember>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, team_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsRead)?;
    principal.require_user()?;
    let user_id = body.0.user_id;
    let audit_context = context.audit(&principal);
    let actor = principal.clone();
    let created_at = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            teams::find(conn, account_id, team_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let member = users::find(conn, account_id, user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            may_change_membership(conn, &actor, team_id, &member).await?;
            if !member.is_active() {
                return Err(ApiError::Unprocessable("the user is not active".into()));
            }
            if teams::is_member(conn, team_id, user_id).await? {
                return Err(ApiError::conflict("already a member"));
            }
            let created_at =
                teams::add_member(conn, account_id, team_id, user_id, actor.user_id).await?;
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "team.member_added", "team", team_id)
                    .with_after(json!({ "user_id": user_id })),
            )
            .await?;
            Ok::<_, ApiError>(created_at)
        })
    })
    .await?;
    refresh_board_access(&state, account_id);
    Ok(HttpResponse::Created().json(Membership {
        team_id,
        user_id,
        created_at,
    }))
}

/// Removes a user from a team; 204.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/teams/{team_id}/members/{user_id}", tag = "teams", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("team_id" = Uuid, Path, description = "team"),
        ("user_id" = Uuid, Path, description = "user")),
    responses((status = 204, description = "removed"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove_member(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, team_id, user_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::TeamsRead)?;
    principal.require_user()?;
    let audit_context = context.audit(&principal);
    let actor = principal.clone();
    db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            teams::find(conn, account_id, team_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let member = users::find(conn, account_id, user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            may_change_membership(conn, &actor, team_id, &member).await?;
            if !teams::remove_member(conn, team_id, user_id).await? {
                return Err(ApiError::NotFound);
            }
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "team.member_removed", "team", team_id)
                    .with_before(json!({ "user_id": user_id })),
            )
            .await?;
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    refresh_board_access(&state, account_id);
    Ok(HttpResponse::NoContent().finish())
}

/// Team memberships decide supervisors' card scopes: live board subscriptions of the tenant
/// are authorized again (a tenant without a live supervisor has none).
fn refresh_board_access(state: &AppState, account_id: Uuid) {
    if let Some(supervisor) = state.registry.get(account_id) {
        supervisor.do_send(whatpro_actors::supervisor::RefreshAccess);
    }
}
