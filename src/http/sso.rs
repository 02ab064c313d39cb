//! `POST /api/v1/auth/sso`: Chatwoot single sign-on (iam.md §4.3).
//!
//! The caller sends a Chatwoot user's API access token; the hub asks Chatwoot who that is
//! (`GET /api/v1/profile` through `integrations::chatwoot`), picks the Chatwoot account,
//! upserts the hub account mirroring it and the user mirroring the Chatwoot user, and opens a
//! session of kind `sso` exactly as password login does (same answer and cookie).
//!
//! Rules kept here:
//! - The origin is `CHATWOOT_URL` (per-account `base_url`s arrive with the Chatwoot settings);
//!   none → 503. Chatwoot refusing the token → 401 `INVALID_TOKEN`; too slow → 504; any other
//!   upstream failure → 502.
//! - Role: `administrator` → admin, anything else → agent, never super_admin (the profile's
//!   `type` is ignored). The role is re-derived only while `role_source = 'chatwoot'`; a
//!   re-derived role that changed revokes the user's other sessions (iam.md §2).
//! - SSO never signs in to the platform account or as a super_admin: a Chatwoot token must not
//!   become a platform operator's credential.
//! - The `sso_token` is never stored, logged or audited ([`SsoRequest`]'s `Debug` hides it).
//!
//! Every table access runs in `db::tenant_tx` or `db::platform_tx` (queries in `db::accounts`
//! and `db::users`); the only look-up before the tenant is known is the
//! `auth_account_by_chatwoot_id` SECURITY DEFINER function.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use serde::Deserialize;
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::auth::policy::Role;
use crate::auth::signin;
use crate::db::accounts::{self, Account};
use crate::db::audit::{self, AuditEvent};
use crate::db::users::{self, User};
use crate::db::{self, sessions};
use crate::error::ApiError;
use crate::http::auth::{signed_in, SignedInUser};
use crate::http::context::RequestContext;
use crate::http::extract::Json;
use crate::integrations::chatwoot::{self, ChatwootError, Profile, ProfileAccount};
use crate::state::AppState;

/// `POST /api/v1/auth/sso` body.
#[derive(Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoRequest {
    /// A Chatwoot user's API access token (1–512 characters). Never stored or logged.
    #[garde(length(chars, min = 1, max = 512))]
    pub sso_token: String,
    /// The **Chatwoot** account id to sign in to, when the Chatwoot user belongs to several.
    #[garde(range(min = 1))]
    pub account_id: Option<i64>,
}

impl std::fmt::Debug for SsoRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoRequest")
            .field("sso_token", &"[REDACTED]")
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// Chatwoot single sign-on.
#[utoipa::path(post, path = "/api/v1/auth/sso", tag = "auth", request_body = SsoRequest,
    responses(
        (status = 200, body = crate::http::auth::SignInResponse),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody, description = "Chatwoot refused the token: INVALID_TOKEN"),
        (status = 403, body = crate::error::ErrorBody, description = "account not in the profile, account unknown (creation disabled), suspended or deleted, user deactivated"),
        (status = 409, body = crate::error::ErrorBody, description = "several Chatwoot accounts and no account_id: details.accounts [{id, name}] (Chatwoot ids)"),
        (status = 429, body = crate::error::ErrorBody),
        (status = 502, body = crate::error::ErrorBody, description = "Chatwoot failed"),
        (status = 503, body = crate::error::ErrorBody, description = "no Chatwoot URL configured"),
        (status = 504, body = crate::error::ErrorBody, description = "Chatwoot did not answer in time"),
    ))]
pub async fn sso(
    state: web::Data<AppState>,
    context: RequestContext,
    body: Json<SsoRequest>,
) -> Result<HttpResponse, ApiError> {
    let SsoRequest {
        sso_token,
        account_id,
    } = body.0;
    let mut attempt = Attempt {
        chatwoot_account_id: account_id,
        ..Attempt::default()
    };
    let outcome = sign_in(&state, &context, &sso_token, &mut attempt).await;
    let result = if outcome.is_ok() {
        "success"
    } else {
        "failure"
    };
    state
        .metrics
        .auth_attempts
        .with_label_values(&[result])
        .inc();
    if let Err(error) = &outcome {
        if attempt.audit_failure {
            audit_failure(&state, &context, &attempt, error.code()).await;
        }
    }
    outcome
}

/// What is known about a sign-in attempt so far, for the failure audit row.
#[derive(Debug, Default)]
struct Attempt {
    /// Chatwoot answered (a profile, or a refusal of the token): a failure from here on is a
    /// sign-in decision and is audited. Outages (no origin, 502, 504) are logged only.
    audit_failure: bool,
    email: Option<String>,
    chatwoot_user_id: Option<i64>,
    chatwoot_account_id: Option<i64>,
    account_id: Option<Uuid>,
}

/// The HTTP answer for a failed profile call (iam.md §4.3 step 1).
pub fn profile_error(error: ChatwootError) -> ApiError {
    match error {
        ChatwootError::Unauthorized => ApiError::InvalidToken,
        ChatwootError::Timeout => {
            ApiError::UpstreamTimeout("Chatwoot did not answer in time".into())
        }
        ChatwootError::Upstream(_) => {
            ApiError::Upstream("Chatwoot could not be reached or answered with an error".into())
        }
    }
}

/// The Chatwoot origin to ask. iam.md §4.3: the `base_url` of the hub account mirroring
/// `chatwoot_account_id`, else `CHATWOOT_URL`. Accounts have no Chatwoot settings yet (they
/// come with the Chatwoot integration), so this is `CHATWOOT_URL` for now.
fn chatwoot_origin(state: &AppState, _chatwoot_account_id: Option<i64>) -> Result<Url, ApiError> {
    state
        .config
        .chatwoot_url
        .clone()
        .ok_or_else(|| ApiError::Unavailable("Chatwoot is not configured".into()))
}

/// The hub role a Chatwoot account role maps to (never super_admin).
pub fn role_from_chatwoot(chatwoot_role: &str) -> Role {
    match chatwoot_role {
        "administrator" => Role::Admin,
        _ => Role::Agent,
    }
}

/// iam.md §4.3 step 2: the account matching `wanted`, or the only one.
fn choose_account(profile: &Profile, wanted: Option<i64>) -> Result<&ProfileAccount, ApiError> {
    match wanted {
        Some(id) => profile.accounts.iter().find(|a| a.id == id).ok_or_else(|| {
            ApiError::forbidden("this Chatwoot user is not a member of that account")
        }),
        None => match profile.accounts.as_slice() {
            [only] => Ok(only),
            [] => Err(ApiError::forbidden(
                "this Chatwoot user belongs to no Chatwoot account",
            )),
            several => {
                let accounts: Vec<_> = several
                    .iter()
                    .map(|a| json!({ "id": a.id, "name": a.name }))
                    .collect();
                Err(ApiError::Conflict {
                    message:
                        "this Chatwoot user belongs to several accounts; choose one with account_id"
                            .into(),
                    details: Some(json!({ "accounts": accounts })),
                })
            }
        },
    }
}

/// The profile facts the hub stores, cut to its column limits.
#[derive(Debug, Clone)]
struct Identity {
    chatwoot_user_id: i64,
    chatwoot_account_id: i64,
    email: String,
    name: String,
    avatar_url: Option<String>,
    chatwoot_role: Option<String>,
    role: Role,
    account_name: String,
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// An avatar the hub may store: https, at most 2048 characters (tenancy.md §1), else none.
fn usable_avatar(url: Option<&str>) -> Option<String> {
    let url = url?.trim();
    if url.chars().count() > 2048 || !url.starts_with("https://") {
        return None;
    }
    let parsed = Url::parse(url).ok()?;
    (parsed.scheme() == "https" && parsed.host().is_some()).then(|| url.to_owned())
}

impl Identity {
    /// The Chatwoot-owned fields of the user, as the users table stores them.
    fn chatwoot_user(&self) -> users::ChatwootUser<'_> {
        users::ChatwootUser {
            chatwoot_user_id: self.chatwoot_user_id,
            email: &self.email,
            name: &self.name,
            avatar_url: self.avatar_url.as_deref(),
            chatwoot_role: self.chatwoot_role.as_deref(),
            role: self.role.as_str(),
        }
    }

    fn new(profile: &Profile, account: &ProfileAccount) -> Result<Self, ApiError> {
        let email = profile.email.trim();
        let email_len = email.chars().count();
        if !(3..=254).contains(&email_len) || !email.contains('@') {
            tracing::warn!(
                chatwoot_user_id = profile.id,
                "the Chatwoot profile has no usable email"
            );
            return Err(ApiError::Upstream(
                "the Chatwoot profile has no usable email".into(),
            ));
        }
        let name = match profile.name.trim() {
            "" => email.split('@').next().unwrap_or(email),
            name => name,
        };
        let account_name = match account.name.trim() {
            "" => format!("Chatwoot account {}", account.id),
            name => truncate(name, 255),
        };
        let chatwoot_role = Some(truncate(account.role.trim(), 50)).filter(|r| !r.is_empty());
        Ok(Self {
            chatwoot_user_id: profile.id,
            chatwoot_account_id: account.id,
            email: email.to_owned(),
            name: truncate(name, 100),
            avatar_url: usable_avatar(profile.avatar_url.as_deref()),
            chatwoot_role,
            role: role_from_chatwoot(account.role.trim()),
            account_name,
        })
    }
}

/// The whole flow; fills `attempt` as facts become known.
async fn sign_in(
    state: &AppState,
    context: &RequestContext,
    sso_token: &str,
    attempt: &mut Attempt,
) -> Result<HttpResponse, ApiError> {
    let origin = chatwoot_origin(state, attempt.chatwoot_account_id)?;
    let profile = match chatwoot::profile(&origin, sso_token).await {
        Ok(profile) => profile,
        Err(error) => {
            match &error {
                ChatwootError::Unauthorized => attempt.audit_failure = true,
                other => tracing::warn!(error = %other, "Chatwoot profile request failed"),
            }
            return Err(profile_error(error));
        }
    };
    attempt.audit_failure = true;
    attempt.email = Some(profile.email.trim().to_owned());
    attempt.chatwoot_user_id = Some(profile.id);
    let chosen = choose_account(&profile, attempt.chatwoot_account_id)?;
    attempt.chatwoot_account_id = Some(chosen.id);
    let identity = Identity::new(&profile, chosen)?;
    let account_id = resolve_account(state, context, &identity).await?;
    attempt.account_id = Some(account_id);

    let tx_context = context.clone();
    let tx_identity = identity.clone();
    let signed = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { upsert_and_open(conn, account_id, &tx_identity, &tx_context).await })
    })
    .await?;
    signin::after_revocation(state, &signed.revoked);
    let role = Role::parse(&signed.user.role)
        .ok_or_else(|| ApiError::internal("unknown role in the database"))?;
    let issued = signin::issue(
        state,
        signed.user.id,
        signed.session_id,
        signed.account.id,
        role,
        signed.refresh_token,
        signed.refresh_expires_at,
    )?;
    Ok(signed_in(
        state,
        issued,
        SignedInUser {
            id: signed.user.id,
            email: signed.user.email,
            name: signed.user.name,
            role: signed.user.role,
            account_id: signed.account.id,
            account_name: signed.account.name,
        },
    ))
}

/// The hub account mirroring a Chatwoot account (SECURITY DEFINER look-up: the tenant is not
/// known yet).
async fn account_by_chatwoot_id(
    state: &AppState,
    chatwoot_account_id: i64,
) -> Result<Option<accounts::MirroredAccount>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(accounts::by_chatwoot_id(&mut conn, chatwoot_account_id).await?)
}

fn ensure_account_usable(status: &str) -> Result<(), ApiError> {
    match status {
        "active" => Ok(()),
        _ => Err(ApiError::forbidden("this account is not active")),
    }
}

/// iam.md §4.3 step 4 (before the tenant transaction): the hub account of the chosen Chatwoot
/// account, created when unknown and `CHATWOOT_SSO_CREATE_ACCOUNTS` allows it. Its name is
/// refreshed later, in the tenant transaction.
async fn resolve_account(
    state: &AppState,
    context: &RequestContext,
    identity: &Identity,
) -> Result<Uuid, ApiError> {
    let chatwoot_account_id = identity.chatwoot_account_id;
    if let Some(found) = account_by_chatwoot_id(state, chatwoot_account_id).await? {
        ensure_account_usable(&found.status)?;
        return Ok(found.id);
    }
    if !state.config.chatwoot_sso_create_accounts {
        return Err(ApiError::forbidden(
            "this Chatwoot account is not connected to the hub",
        ));
    }
    // Not written here: the new account's plan (`free`), which comes with the tenancy issue
    // (its migration gives every inserted account a `free` entitlements row), and its
    // `chatwoot_integrations` row (`unconfigured`, base_url pre-filled from CHATWOOT_URL), which
    // comes with the Chatwoot settings and belongs in this transaction.
    let name = identity.account_name.clone();
    let audit_context = context.anonymous();
    let created = db::platform_tx(&state.db, db::PlatformScope::system(), |conn| {
        Box::pin(async move {
            let Some(account) =
                accounts::insert_chatwoot_mirror(conn, &name, chatwoot_account_id).await?
            else {
                return Ok::<_, ApiError>(None);
            };
            audit::record(
                conn,
                &audit_context,
                AuditEvent::success(Some(account.id), "account.created", "account", account.id)
                    .with_after(json!({
                        "name": account.name,
                        "chatwoot_account_id": chatwoot_account_id,
                        "via": "sso",
                    })),
            )
            .await?;
            Ok(Some(account.id))
        })
    })
    .await?;
    match created {
        Some(id) => Ok(id),
        // Created by a concurrent sign-in between the look-up and the insert.
        None => {
            let found = account_by_chatwoot_id(state, chatwoot_account_id)
                .await?
                .ok_or_else(|| ApiError::conflict("the account is being created; retry"))?;
            ensure_account_usable(&found.status)?;
            Ok(found.id)
        }
    }
}

/// What the tenant transaction hands back.
struct Signed {
    user: User,
    account: Account,
    session_id: Uuid,
    refresh_token: String,
    refresh_expires_at: chrono::DateTime<Utc>,
    /// Sessions revoked because a Chatwoot-derived role changed.
    revoked: Vec<Uuid>,
}

/// iam.md §4.3 steps 4 (name refresh, status) and 5, then the session, in one tenant
/// transaction.
async fn upsert_and_open(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    identity: &Identity,
    context: &RequestContext,
) -> Result<Signed, ApiError> {
    let account = accounts::find(conn, account_id)
        .await?
        .ok_or_else(|| ApiError::forbidden("this account is not active"))?;
    ensure_account_usable(&account.status)?;
    if account.is_platform {
        return Err(ApiError::forbidden(
            "single sign-on does not sign in to the platform account",
        ));
    }
    let account = if account.name != identity.account_name {
        accounts::rename(conn, account_id, &identity.account_name).await?
    } else {
        account
    };

    let existing =
        match users::lock_by_chatwoot_id(conn, account_id, identity.chatwoot_user_id).await? {
            Some(user) => Some((user, false)),
            None => users::lock_unlinked_by_email(conn, account_id, &identity.email)
                .await?
                .map(|user| (user, true)),
        };
    let (user, created, linked, revoked) = match existing {
        Some((user, linked)) => {
            let (user, revoked) = refresh_user(conn, account_id, user, identity, context).await?;
            (user, false, linked, revoked)
        }
        None => {
            // A new SSO user must fit the account's `max_agents` (tenancy.md §4), checked
            // under the entitlements lock in this transaction.
            crate::db::entitlements::check_quota(
                conn,
                account_id,
                crate::db::entitlements::Limit::MaxAgents,
            )
            .await?;
            match users::insert_chatwoot_user(conn, account_id, &identity.chatwoot_user()).await? {
                Some(user) => {
                    audit::record(
                        conn,
                        &context.user(user.id),
                        AuditEvent::success(Some(account_id), "user.created", "user", user.id)
                            .with_after(json!({
                                "email": user.email,
                                "role": user.role,
                                "chatwoot_user_id": identity.chatwoot_user_id,
                                "via": "sso",
                            })),
                    )
                    .await?;
                    (user, true, false, Vec::new())
                }
                // The insert met an existing row: a concurrent sign-in of the same person
                // created them (committed by now, so visible), or another user of the account
                // (linked to another Chatwoot user) has this email.
                None => {
                    let user =
                        users::lock_by_chatwoot_id(conn, account_id, identity.chatwoot_user_id)
                            .await?
                            .ok_or_else(|| {
                                ApiError::conflict(
                                    "another user of this account already has this email",
                                )
                            })?;
                    let (user, revoked) =
                        refresh_user(conn, account_id, user, identity, context).await?;
                    (user, false, false, revoked)
                }
            }
        }
    };

    let audit_context = context.user(user.id);
    let (session_id, refresh_token, refresh_expires_at) =
        signin::open_session(conn, account_id, user.id, "sso", &audit_context).await?;
    users::record_login(conn, user.id, None).await?;
    audit::record(
        conn,
        &audit_context,
        AuditEvent::success(
            Some(account_id),
            "auth.sso.succeeded",
            "session",
            session_id,
        )
        .with_after(json!({
            "chatwoot_account_id": identity.chatwoot_account_id,
            "chatwoot_user_id": identity.chatwoot_user_id,
            "user_created": created,
            "user_linked": linked,
        })),
    )
    .await?;
    Ok(Signed {
        user,
        account,
        session_id,
        refresh_token,
        refresh_expires_at,
        revoked,
    })
}

/// Refreshes a known user from Chatwoot (name, email, avatar, `chatwoot_role`, the link, and
/// the role while it follows Chatwoot). A changed role revokes the user's sessions and is
/// audited. Returns the updated row and the revoked sessions.
async fn refresh_user(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user: User,
    identity: &Identity,
    context: &RequestContext,
) -> Result<(User, Vec<Uuid>), ApiError> {
    if !user.is_active() {
        return Err(ApiError::forbidden("this user is deactivated"));
    }
    if user.role == Role::SuperAdmin.as_str() {
        return Err(ApiError::forbidden(
            "a super_admin cannot sign in through Chatwoot",
        ));
    }
    if users::email_taken(conn, account_id, &identity.email, user.id).await? {
        return Err(ApiError::conflict(
            "another user of this account already has this email",
        ));
    }
    let role = match user.role_source.as_str() {
        "chatwoot" => identity.role.as_str().to_owned(),
        _ => user.role.clone(),
    };
    let updated =
        users::update_from_chatwoot(conn, account_id, user.id, &identity.chatwoot_user(), &role)
            .await?;
    let mut revoked = Vec::new();
    if updated.role != user.role {
        let audit_context = context.user(user.id);
        audit::record(
            conn,
            &audit_context,
            AuditEvent::success(Some(account_id), "user.role_changed", "user", user.id)
                .with_before(json!({ "role": user.role }))
                .with_after(json!({ "role": updated.role, "source": "chatwoot" })),
        )
        .await?;
        revoked = signin::revoke_sessions(
            conn,
            account_id,
            sessions::Revoke::AllOfUser {
                user_id: user.id,
                except: None,
            },
            "role_changed",
            &audit_context,
            "session.revoked",
        )
        .await?;
    }
    Ok((updated, revoked))
}

/// Writes a platform audit row `auth.sso.failed`: the same shape as password login's failure
/// rows, plus the Chatwoot ids; the token is never part of it.
async fn audit_failure(
    state: &AppState,
    context: &RequestContext,
    attempt: &Attempt,
    code: &'static str,
) {
    let event = AuditEvent {
        account_id: attempt.account_id,
        action: "auth.sso.failed",
        resource_type: Some("user"),
        resource_id: None,
        before: None,
        after: Some(json!({
            "email": attempt.email,
            "chatwoot_user_id": attempt.chatwoot_user_id,
            "chatwoot_account_id": attempt.chatwoot_account_id,
        })),
        result: "failure",
        error_code: Some(code),
    };
    audit::record_alone(&state.db, context.anonymous(), event).await;
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    fn profile(accounts: &[(i64, &str, &str)]) -> Profile {
        Profile {
            id: 9,
            name: "Ana".into(),
            email: "ana@acme.com".into(),
            avatar_url: None,
            accounts: accounts
                .iter()
                .map(|(id, name, role)| ProfileAccount {
                    id: *id,
                    name: (*name).into(),
                    role: (*role).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn roles_map_without_super_admin() {
        assert_eq!(role_from_chatwoot("administrator"), Role::Admin);
        assert_eq!(role_from_chatwoot("agent"), Role::Agent);
        assert_eq!(role_from_chatwoot("SuperAdmin"), Role::Agent);
        assert_eq!(role_from_chatwoot("super_admin"), Role::Agent);
        assert_eq!(role_from_chatwoot(""), Role::Agent);
    }

    #[test]
    fn account_choice() {
        let one = profile(&[(1, "Acme", "agent")]);
        assert_eq!(choose_account(&one, None).map(|a| a.id).ok(), Some(1));
        assert_eq!(choose_account(&one, Some(1)).map(|a| a.id).ok(), Some(1));
        let error = choose_account(&one, Some(2)).err().map(|e| e.status_code());
        assert_eq!(error, Some(actix_web::http::StatusCode::FORBIDDEN));
        let two = profile(&[(1, "Acme", "agent"), (2, "Beta", "administrator")]);
        match choose_account(&two, None) {
            Err(ApiError::Conflict { details, .. }) => assert_eq!(
                details,
                Some(json!({"accounts": [{"id": 1, "name": "Acme"}, {"id": 2, "name": "Beta"}]}))
            ),
            other => panic!("expected a conflict, got {:?}", other.map(|a| a.id)),
        }
        assert_eq!(choose_account(&two, Some(2)).map(|a| a.id).ok(), Some(2));
        let none = profile(&[]);
        assert!(matches!(
            choose_account(&none, None),
            Err(ApiError::Forbidden { .. })
        ));
    }

    #[test]
    fn profile_errors_map_to_http() {
        let status = |e| profile_error(e).status_code().as_u16();
        assert_eq!(status(ChatwootError::Unauthorized), 401);
        assert_eq!(
            profile_error(ChatwootError::Unauthorized).code(),
            "INVALID_TOKEN"
        );
        assert_eq!(status(ChatwootError::Timeout), 504);
        assert_eq!(status(ChatwootError::Upstream("x".into())), 502);
    }

    #[test]
    fn avatars_must_be_https_and_short() {
        assert_eq!(
            usable_avatar(Some("https://cdn.example.com/a.png")),
            Some("https://cdn.example.com/a.png".to_owned())
        );
        assert_eq!(usable_avatar(Some("http://cdn.example.com/a.png")), None);
        assert_eq!(usable_avatar(Some("")), None);
        assert_eq!(usable_avatar(Some("https://")), None);
        assert_eq!(usable_avatar(None), None);
        let long = format!("https://cdn.example.com/{}", "a".repeat(2048));
        assert_eq!(usable_avatar(Some(&long)), None);
    }

    #[test]
    fn identity_cuts_to_column_limits() {
        let mut p = profile(&[(
            3,
            "",
            "a-custom-role-name-that-is-way-too-long-for-the-column",
        )]);
        p.name = "N".repeat(150);
        let identity = Identity::new(&p, &p.accounts[0]).expect("identity");
        assert_eq!(identity.name.chars().count(), 100);
        assert_eq!(identity.account_name, "Chatwoot account 3");
        assert_eq!(identity.chatwoot_role.map(|r| r.chars().count()), Some(50));
        assert_eq!(identity.role, Role::Agent);
        p.name = "  ".into();
        assert_eq!(
            Identity::new(&p, &p.accounts[0]).expect("identity").name,
            "ana"
        );
        p.email = "nobody".into();
        assert!(matches!(
            Identity::new(&p, &p.accounts[0]),
            Err(ApiError::Upstream(_))
        ));
    }

    #[test]
    fn debug_hides_the_token() {
        let request = SsoRequest {
            sso_token: "very-secret".into(),
            account_id: Some(1),
        };
        assert!(!format!("{request:?}").contains("very-secret"));
    }
}
