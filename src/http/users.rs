//! `/api/v1/accounts/{account_id}/users`: listing (filters `status`, `role`, `team_id`, `q`)
//! and reading users with their teams, creating, editing (name, email, avatar, role),
//! deactivating and reactivating them, and the admin's password and session controls
//! (tenancy.md §3, iam.md §2, §5).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::password;
use crate::auth::policy::{self, authorize, Action, Role};
use crate::auth::signin;
use crate::auth::Principal;
use crate::db::audit::{self, AuditEvent};
use crate::db::{self, sessions, teams, users};
use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::extract::nullable;
use crate::http::extract::Json;
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Account.
    pub account_id: Uuid,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// `chatwoot` or `manual`.
    pub role_source: String,
    /// `active` or `inactive`.
    pub status: String,
    /// Avatar.
    pub avatar_url: Option<String>,
    /// Chatwoot user id.
    pub chatwoot_user_id: Option<i64>,
    /// Whether the user has a local password.
    pub has_password: bool,
    /// Last login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// The user's teams (on the users and team-members routes; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teams: Option<Vec<TeamRef>>,
}

/// A team a user belongs to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TeamRef {
    /// Team id.
    pub id: Uuid,
    /// Team name.
    pub name: String,
}

impl From<users::User> for UserView {
    fn from(user: users::User) -> Self {
        Self {
            id: user.id,
            account_id: user.account_id,
            has_password: user.password_hash.is_some(),
            email: user.email,
            name: user.name,
            role: user.role,
            role_source: user.role_source,
            status: user.status,
            avatar_url: user.avatar_url,
            chatwoot_user_id: user.chatwoot_user_id,
            last_login_at: user.last_login_at,
            created_at: user.created_at,
            teams: None,
        }
    }
}

/// Users as the API shows them, each with its teams (one query for all of them).
pub async fn views(
    conn: &mut diesel_async::AsyncPgConnection,
    account_id: Uuid,
    rows: Vec<users::User>,
) -> Result<Vec<UserView>, ApiError> {
    let ids: Vec<Uuid> = rows.iter().map(|u| u.id).collect();
    let memberships = teams::of_users(conn, account_id, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|user| {
            let teams = memberships
                .iter()
                .filter(|(user_id, _, _)| *user_id == user.id)
                .map(|(_, id, name)| TeamRef {
                    id: *id,
                    name: name.clone(),
                })
                .collect();
            UserView {
                teams: Some(teams),
                ..UserView::from(user)
            }
        })
        .collect())
}

/// One user as the API shows it, with its teams.
async fn view(
    conn: &mut diesel_async::AsyncPgConnection,
    account_id: Uuid,
    user: users::User,
) -> Result<UserView, ApiError> {
    views(conn, account_id, vec![user])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("a user view went missing"))
}

/// A user as audit rows record it (no secrets).
pub fn user_json(user: &users::User) -> serde_json::Value {
    json!({ "id": user.id, "email": user.email, "name": user.name, "role": user.role,
            "status": user.status, "avatar_url": user.avatar_url })
}

/// Whether `url` is an avatar the hub stores: an absolute https URL with a host, at most 2048
/// characters (tenancy.md §1).
pub fn is_https_url(url: &str) -> bool {
    url.chars().count() <= 2048
        && url.starts_with("https://")
        && url::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
}

/// garde rule for avatar fields.
pub fn https_avatar(url: &str, _: &()) -> garde::Result {
    if is_https_url(url) {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must be an https URL of at most 2048 characters",
        ))
    }
}

/// A unique violation on a user's email, said as such (409).
pub fn email_conflict(error: diesel::result::Error) -> ApiError {
    match ApiError::from(error) {
        ApiError::Conflict { .. } => {
            ApiError::conflict("a user with this email exists in the account")
        }
        other => other,
    }
}

/// `GET …/users` filters and page (unknown parameters are a 400).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// `active` or `inactive`.
    pub status: Option<String>,
    /// `super_admin`, `admin`, `supervisor` or `agent`.
    pub role: Option<String>,
    /// Members of this team only.
    pub team_id: Option<Uuid>,
    /// Name or email contains this (case-insensitive, 1–100 characters).
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl UserListQuery {
    /// The validated filter and page.
    fn split(self) -> Result<(users::UserFilter, PageQuery), ApiError> {
        if let Some(status) = &self.status {
            if !["active", "inactive"].contains(&status.as_str()) {
                return Err(ApiError::field("status", "must be active or inactive"));
            }
        }
        if let Some(role) = &self.role {
            if Role::parse(role).is_none() {
                return Err(ApiError::field(
                    "role",
                    "must be super_admin, admin, supervisor or agent",
                ));
            }
        }
        if let Some(q) = &self.q {
            if !(1..=100).contains(&q.chars().count()) {
                return Err(ApiError::field("q", "must be 1-100 characters"));
            }
        }
        Ok((
            users::UserFilter {
                status: self.status,
                role: self.role,
                team_id: self.team_id,
                q: self.q,
            },
            PageQuery {
                limit: self.limit,
                cursor: self.cursor,
            },
        ))
    }
}

/// `GET /api/v1/accounts/{account_id}/users`: the account's users with their teams, filtered
/// by `status`, `role`, `team_id` and `q` (name or email contains, case-insensitive).
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/users", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), UserListQuery),
    responses((status = 200, body = Page<UserView>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<UserListQuery>,
) -> Result<web::Json<Page<UserView>>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsersRead)?;
    let (filter, page) = query.into_inner().split()?;
    let (limit, after) = (page.limit()?, page.after_id()?);
    let (rows, next_cursor) = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let rows = users::page(conn, account_id, &filter, after, limit + 1).await?;
            let page = Page::from_rows(rows, limit, |u| u.id, |u| u);
            Ok::<_, ApiError>((views(conn, account_id, page.items).await?, page.next_cursor))
        })
    })
    .await?;
    Ok(web::Json(Page {
        items: rows,
        next_cursor,
    }))
}

/// `GET /api/v1/accounts/{account_id}/users/{user_id}`.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/users/{user_id}", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("user_id" = Uuid, Path, description = "user")),
    responses((status = 200, body = UserView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<UserView>, ApiError> {
    let (account_id, user_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsersRead)?;
    let user = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            match users::find(conn, account_id, user_id).await? {
                Some(user) => Ok::<_, ApiError>(Some(view(conn, account_id, user).await?)),
                None => Ok(None),
            }
        })
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(web::Json(user))
}

/// `PATCH /api/v1/accounts/{account_id}/users/{user_id}` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New display name (not for Chatwoot-linked users: 422).
    #[garde(inner(length(min = 1, max = 100)))]
    pub name: Option<String>,
    /// New email, unique in the account in any case (409; not for Chatwoot-linked users: 422).
    #[garde(inner(length(min = 3, max = 254), email))]
    pub email: Option<String>,
    /// https avatar URL, ≤ 2048 characters; null clears it.
    #[garde(inner(inner(custom(https_avatar))))]
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    /// New role (no escalation: iam.md §2).
    #[garde(skip)]
    pub role: Option<Role>,
}

/// A display name without its surrounding blanks; nothing left is a 400 (the column holds
/// 1–100 characters, and a blank name would otherwise reach its CHECK).
fn trimmed_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::field("name", "must be 1-100 characters"));
    }
    Ok(name)
}

/// The profile fields of a patch that change `user` (trimmed; equal values are no change).
/// Chatwoot owns the name and email of a linked user (tenancy.md §3): changing them → 422.
pub fn profile_changes(
    user: &users::User,
    name: Option<&str>,
    email: Option<&str>,
    avatar_url: Option<Option<String>>,
) -> Result<users::ProfileChanges, ApiError> {
    let name = name
        .map(trimmed_name)
        .transpose()?
        .filter(|n| *n != user.name);
    let email = email.map(str::trim).filter(|e| *e != user.email);
    if user.chatwoot_user_id.is_some() && (name.is_some() || email.is_some()) {
        return Err(ApiError::Unprocessable(
            "the name and email of a Chatwoot user are managed in Chatwoot".into(),
        ));
    }
    Ok(users::ProfileChanges {
        name: name.map(str::to_owned),
        email: email.map(str::to_owned),
        avatar_url: avatar_url.filter(|a| *a != user.avatar_url),
        preferences: None,
    })
}

/// Checks that `actor` may manage `target` at all: same or higher role, and not a
/// super_admin target unless the actor is one.
fn may_manage(principal: &Principal, target: &users::User) -> Result<(), ApiError> {
    let target_role =
        Role::parse(&target.role).ok_or_else(|| ApiError::internal("unknown role"))?;
    if target_role > principal.role {
        return Err(ApiError::Forbidden {
            message: "you cannot manage a user with a higher role".into(),
            details: Some(json!({ "required_role": target_role.as_str() })),
        });
    }
    Ok(())
}

/// Changes a user's name, email, avatar and/or role. A role change revokes the user's
/// sessions and instance tokens; nobody changes their own role or grants above their own; the
/// account's last active admin cannot be demoted (422); the name and email of a
/// Chatwoot-linked user are Chatwoot's (422); an email another user of the account has → 409.
#[utoipa::path(patch, path = "/api/v1/accounts/{account_id}/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("user_id" = Uuid, Path, description = "user")),
    request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<UserPatch>,
) -> Result<web::Json<UserView>, ApiError> {
    let (account_id, user_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsersManage)?;
    let patch = body.0;
    if let Some(role) = patch.role {
        if Some(user_id) == principal.user_id {
            return Err(ApiError::forbidden("you cannot change your own role"));
        }
        if !policy::may_assign_role(principal.role, role) {
            return Err(ApiError::Forbidden {
                message: "you cannot grant a role above your own".into(),
                details: Some(
                    json!({ "required_role": if role == Role::SuperAdmin { "super_admin" } else { role.as_str() } }),
                ),
            });
        }
    }
    let audit_context = context.audit(&principal);
    let actor = principal.clone();
    let (user, revoked) = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let mut user = users::find(conn, account_id, user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            may_manage(&actor, &user)?;
            let before = user_json(&user);
            let mut revoked = Vec::new();
            let changes = profile_changes(
                &user,
                patch.name.as_deref(),
                patch.email.as_deref(),
                patch.avatar_url.clone(),
            )?;
            if !changes.is_empty() {
                user = users::update_profile(conn, user_id, &changes)
                    .await
                    .map_err(email_conflict)?;
            }
            if let Some(role) = patch.role.filter(|r| r.as_str() != user.role) {
                if user.role == "admin" {
                    let admins = users::lock_active_admins(conn, account_id).await?;
                    if admins == [user_id] {
                        return Err(ApiError::Unprocessable(
                            "the account's last active admin cannot be demoted".into(),
                        ));
                    }
                }
                if role == Role::SuperAdmin
                    && !crate::db::accounts::find(conn, account_id)
                        .await?
                        .is_some_and(|a| a.is_platform)
                {
                    return Err(ApiError::Unprocessable(
                        "super_admin exists only in the platform account".into(),
                    ));
                }
                user = users::set_role(conn, user_id, role.as_str()).await?;
                revoked = signin::revoke_sessions(
                    conn,
                    account_id,
                    sessions::Revoke::AllOfUser {
                        user_id,
                        except: None,
                    },
                    "role_changed",
                    &audit_context,
                    "session.revoked",
                )
                .await?;
                audit::record(
                    conn,
                    &audit_context,
                    AuditEvent::success(Some(account_id), "user.role_changed", "user", user_id)
                        .with_before(before.clone())
                        .with_after(user_json(&user)),
                )
                .await?;
            }
            if !changes.is_empty() {
                audit::record(
                    conn,
                    &audit_context,
                    AuditEvent::success(Some(account_id), "user.updated", "user", user_id)
                        .with_before(before)
                        .with_after(user_json(&user)),
                )
                .await?;
            }
            Ok::<_, ApiError>((view(conn, account_id, user).await?, revoked))
        })
    })
    .await?;
    signin::after_revocation(&state, &revoked);
    Ok(web::Json(user))
}

/// `POST …/users/{user_id}/password` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password (policy of iam.md §4.1).
    #[garde(length(min = 1, max = 1024))]
    pub new_password: String,
}

/// An admin sets a user's password; the user's sessions are revoked.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/users/{user_id}/password", tag = "users", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("user_id" = Uuid, Path, description = "user")),
    request_body = SetPassword,
    responses((status = 204, description = "set"), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn set_password(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<SetPassword>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, user_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsersManage)?;
    let audit_context = context.audit(&principal);
    let target = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(users::find(conn, account_id, user_id).await?) })
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    may_manage(&principal, &target)?;
    password::check_policy(&body.0.new_password, &target.email)
        .map_err(|rule| ApiError::field("new_password", rule.to_string()))?;
    let hash = password::hash_blocking(body.0.new_password).await?;
    let revoked = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            signin::replace_password(
                conn,
                account_id,
                user_id,
                &hash,
                None,
                "password_set",
                &audit_context,
            )
            .await
        })
    })
    .await?;
    signin::after_revocation(&state, &revoked);
    Ok(HttpResponse::NoContent().finish())
}

/// An admin revokes all of a user's sessions.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}/users/{user_id}/sessions", tag = "users", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("user_id" = Uuid, Path, description = "user")),
    responses((status = 204, description = "revoked"), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_sessions(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, user_id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsersManage)?;
    let audit_context = context.audit(&principal);
    let actor = principal.clone();
    let revoked = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let target = users::find(conn, account_id, user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            may_manage(&actor, &target)?;
            signin::revoke_sessions(
                conn,
                account_id,
                sessions::Revoke::AllOfUser {
                    user_id,
                    except: None,
                },
                "admin_revoked",
                &audit_context,
                "session.revoked",
            )
            .await
        })
    })
    .await?;
    signin::after_revocation(&state, &revoked);
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/accounts/{account_id}/users` body.
#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Email (unique in the account, case-insensitive).
    #[garde(length(min = 3, max = 254), email)]
    pub email: String,
    /// Display name.
    #[garde(length(min = 1, max = 100))]
    pub name: String,
    /// Role (no escalation).
    #[garde(skip)]
    pub role: Role,
    /// Optional password (policy of iam.md §4.1); without one the user signs in by SSO.
    #[garde(inner(length(min = 1, max = 1024)))]
    pub password: Option<String>,
    /// Teams of the account to join.
    #[garde(inner(length(max = 50)))]
    pub team_ids: Option<Vec<Uuid>>,
}

/// Creates a user (admin; counts against `max_agents`).
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/users", tag = "users", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account")), request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<Uuid>,
    body: Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::UsersManage)?;
    let request = body.0;
    if !policy::may_assign_role(principal.role, request.role) {
        return Err(ApiError::Forbidden {
            message: "you cannot grant a role above your own".into(),
            details: Some(json!({ "required_role": request.role.as_str() })),
        });
    }
    let email = request.email.trim().to_owned();
    let name = trimmed_name(&request.name)?.to_owned();
    let hash = match &request.password {
        Some(given) => {
            password::check_policy(given, &email)
                .map_err(|rule| ApiError::field("password", rule.to_string()))?;
            Some(password::hash_blocking(given.clone()).await?)
        }
        None => None,
    };
    let audit_context = context.audit(&principal);
    let user = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            if request.role == Role::SuperAdmin
                && !crate::db::accounts::find(conn, account_id)
                    .await?
                    .is_some_and(|a| a.is_platform)
            {
                return Err(ApiError::Unprocessable(
                    "super_admin exists only in the platform account".into(),
                ));
            }
            crate::db::entitlements::check_quota(
                conn,
                account_id,
                crate::db::entitlements::Limit::MaxAgents,
            )
            .await?;
            let user = users::insert(
                conn,
                &users::NewUser {
                    id: Uuid::now_v7(),
                    account_id,
                    email: &email,
                    name: &name,
                    role: request.role.as_str(),
                    password_hash: hash.as_deref(),
                },
            )
            .await
            .map_err(email_conflict)?;
            for team_id in request.team_ids.unwrap_or_default() {
                crate::db::teams::find(conn, account_id, team_id)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                crate::db::teams::add_member(
                    conn,
                    account_id,
                    team_id,
                    user.id,
                    audit_context.actor_id,
                )
                .await?;
            }
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), "user.created", "user", user.id)
                    .with_after(user_json(&user)),
            )
            .await?;
            view(conn, account_id, user).await
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(user))
}

/// Deactivates (`active = false`) or reactivates a user; shared by the two routes.
async fn set_active(
    state: &AppState,
    principal: &Principal,
    context: &RequestContext,
    account_id: Uuid,
    user_id: Uuid,
    active: bool,
) -> Result<UserView, ApiError> {
    principal.check_account(account_id)?;
    authorize(principal, Action::UsersManage)?;
    if Some(user_id) == principal.user_id {
        return Err(ApiError::forbidden("you cannot deactivate yourself"));
    }
    let audit_context = context.audit(principal);
    let actor = principal.clone();
    let (user, revoked) = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            let before = users::find(conn, account_id, user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            may_manage(&actor, &before)?;
            if before.is_active() == active {
                return Ok::<_, ApiError>((view(conn, account_id, before).await?, Vec::new()));
            }
            let mut revoked = Vec::new();
            if active {
                crate::db::entitlements::check_quota(
                    conn,
                    account_id,
                    crate::db::entitlements::Limit::MaxAgents,
                )
                .await?;
            } else {
                if before.role == "admin"
                    && users::lock_active_admins(conn, account_id).await? == [user_id]
                {
                    return Err(ApiError::Unprocessable(
                        "the account's last active admin cannot be deactivated".into(),
                    ));
                }
                revoked = signin::revoke_sessions(
                    conn,
                    account_id,
                    sessions::Revoke::AllOfUser {
                        user_id,
                        except: None,
                    },
                    "user_deactivated",
                    &audit_context,
                    "session.revoked",
                )
                .await?;
            }
            let user = users::set_status(conn, user_id, active).await?;
            let action = if active {
                "user.reactivated"
            } else {
                "user.deactivated"
            };
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account_id), action, "user", user_id)
                    .with_before(user_json(&before))
                    .with_after(user_json(&user)),
            )
            .await?;
            Ok((view(conn, account_id, user).await?, revoked))
        })
    })
    .await?;
    signin::after_revocation(state, &revoked);
    Ok(user)
}

/// Deactivates a user: sessions and instance tokens are revoked; cards, messages,
/// memberships and audit rows stay; 200 with the user.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/users/{user_id}/deactivate", tag = "users", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("user_id" = Uuid, Path, description = "user")),
    responses((status = 200, body = UserView), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn deactivate(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<UserView>, ApiError> {
    let (account_id, user_id) = path.into_inner();
    Ok(web::Json(
        set_active(&state, &principal, &context, account_id, user_id, false).await?,
    ))
}

/// Reactivates a user (counts against `max_agents`); 200 with the user.
#[utoipa::path(post, path = "/api/v1/accounts/{account_id}/users/{user_id}/reactivate", tag = "users", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("user_id" = Uuid, Path, description = "user")),
    responses((status = 200, body = UserView), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn reactivate(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<UserView>, ApiError> {
    let (account_id, user_id) = path.into_inner();
    Ok(web::Json(
        set_active(&state, &principal, &context, account_id, user_id, true).await?,
    ))
}
