//! `GET /api/v1/me/export`: the data-subject access request of the LGPD (tenancy.md §7).
//!
//! One JSON attachment with everything the hub holds about the caller: the profile (every
//! column but the password hash, which shows only as `has_password`), the account, team
//! memberships, every session (no token material: refresh tokens are not included at all),
//! instance-token metadata (never the token or its hash), the audit rows where they act (as
//! themself, impersonated by a super_admin, or through their instance tokens; a super_admin's
//! rows in every account), and the cards assigned to or created by them (an assignee other than
//! the caller shows as an id only). Chat messages they wrote belong in it too, but the internal
//! chat (chat.md) is not built yet: `chat_messages` is always an empty list until it is.
//!
//! For user sessions that are not impersonating (403 otherwise). At most
//! [`EXPORTS_PER_DAY`] per user per UTC day: the count comes from the day's successful
//! `privacy.export` audit rows, read under a lock of the user's row in the transaction that
//! writes the next one, so it survives restarts, holds across nodes and concurrent requests
//! cannot overshoot it; the next one is 429 `RATE_LIMITED` with `Retry-After` (seconds until
//! midnight UTC). Each export is audited as `privacy.export` with the counts of what it held.

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::db::audit::{self, AuditContext, AuditEvent};
use crate::db::cards::{self, Card};
use crate::db::users::PersonalProfile;
use crate::db::{self, accounts, audit_queries, instance_tokens, sessions, teams, users};
use crate::error::ApiError;
use crate::http::audit::AuditEntryView;
use crate::http::context::RequestContext;
use crate::http::me::AccountRef;
use crate::state::AppState;

/// Exports a user may take per UTC day.
pub const EXPORTS_PER_DAY: i64 = 3;

/// The audit action of an export.
const EXPORT_ACTION: &str = "privacy.export";

/// The profile part of the export.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportProfile {
    /// Every column of the user row but the password hash.
    #[serde(flatten)]
    pub profile: PersonalProfile,
    /// Whether the user has a local password (the hash itself is never exported).
    pub has_password: bool,
}

/// A team the user belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportMembership {
    /// Team id.
    pub team_id: Uuid,
    /// Team name.
    pub team_name: String,
    /// Who added the user.
    pub added_by: Option<Uuid>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One of the user's sessions (no token material).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportSession {
    /// Session id.
    pub id: Uuid,
    /// `password`, `sso` or `impersonation`.
    pub kind: String,
    /// The super_admin behind an impersonation session.
    pub impersonated_by: Option<Uuid>,
    /// IP at sign-in.
    pub ip: Option<String>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last refresh.
    pub last_seen_at: DateTime<Utc>,
    /// Hard end.
    pub expires_at: DateTime<Utc>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why.
    pub revoke_reason: Option<String>,
}

/// One of the user's instance tokens (metadata only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportInstanceToken {
    /// Token id.
    pub id: Uuid,
    /// The issuing session.
    pub session_id: Uuid,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The instance it is bound to.
    pub provider_instance_id: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Everything the hub holds about the caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PersonalDataExport {
    /// When the export was made.
    pub generated_at: DateTime<Utc>,
    /// The profile.
    pub profile: ExportProfile,
    /// The account.
    pub account: AccountRef,
    /// Team memberships.
    pub team_memberships: Vec<ExportMembership>,
    /// Sessions, newest first.
    pub sessions: Vec<ExportSession>,
    /// Instance tokens, newest first.
    pub instance_tokens: Vec<ExportInstanceToken>,
    /// Audit rows where the user acts, newest first.
    pub audit_log: Vec<AuditEntryView>,
    /// Cards assigned to or created by the user, oldest first.
    pub cards: Vec<Card>,
    /// Chat messages the user wrote: always empty until the internal chat exists (chat.md).
    #[schema(value_type = Vec<Object>)]
    pub chat_messages: Vec<serde_json::Value>,
}

/// Seconds from `now` to the next midnight UTC (at least 1).
fn until_tomorrow(now: DateTime<Utc>) -> u64 {
    let tomorrow = (now.date_naive() + Duration::days(1)).and_time(NaiveTime::MIN);
    u64::try_from((tomorrow.and_utc() - now).num_seconds())
        .unwrap_or(1)
        .max(1)
}

/// Refuses the export when the user already took [`EXPORTS_PER_DAY`] today. The caller holds
/// the user's row lock, so concurrent exports count one after the other.
async fn check_daily_limit(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let taken =
        audit_queries::count_by_actor_since(conn, account_id, user_id, EXPORT_ACTION, midnight)
            .await?;
    if taken >= EXPORTS_PER_DAY {
        return Err(ApiError::RateLimited {
            retry_after_secs: until_tomorrow(now),
        });
    }
    Ok(())
}

/// Reads everything held about the user. `every_account`: audit rows of every account (a
/// super_admin's export, in the platform scope).
async fn collect(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    user_id: Uuid,
    every_account: bool,
    now: DateTime<Utc>,
) -> Result<PersonalDataExport, ApiError> {
    let (profile, has_password) = users::personal_profile(conn, account_id, user_id)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    let account = accounts::find(conn, account_id)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    let team_memberships = teams::memberships_of(conn, account_id, user_id)
        .await?
        .into_iter()
        .map(
            |(team_id, team_name, added_by, created_at)| ExportMembership {
                team_id,
                team_name,
                added_by,
                created_at,
            },
        )
        .collect();
    let sessions = sessions::all_of_user(conn, account_id, user_id)
        .await?
        .into_iter()
        .map(|(s, revoke_reason)| ExportSession {
            id: s.id,
            kind: s.kind,
            impersonated_by: s.impersonator_id,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
            revoke_reason,
        })
        .collect();
    let instance_tokens = instance_tokens::list(conn, account_id, Some(user_id))
        .await?
        .into_iter()
        .map(|t| ExportInstanceToken {
            id: t.id,
            session_id: t.session_id,
            scopes: t.scopes.into_iter().flatten().collect(),
            provider_instance_id: t.provider_instance_id,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        })
        .collect();
    let audit_account = (!every_account).then_some(account_id);
    let audit_log = audit_queries::acted_by_user(conn, audit_account, user_id)
        .await?
        .into_iter()
        .map(AuditEntryView::from)
        .collect();
    let cards = cards::of_user(conn, account_id, user_id)
        .await?
        .into_iter()
        .map(|mut card| {
            // Another person's name is not the caller's data; the id says who it is.
            if card.assignee_id != Some(user_id) {
                card.assignee_name = None;
            }
            card
        })
        .collect();
    Ok(PersonalDataExport {
        generated_at: now,
        profile: ExportProfile {
            profile,
            has_password,
        },
        account: AccountRef {
            id: account.id,
            name: account.name,
        },
        team_memberships,
        sessions,
        instance_tokens,
        audit_log,
        cards,
        chat_messages: Vec::new(),
    })
}

/// The export's transaction: lock, count, collect, audit.
async fn export_in(
    conn: &mut AsyncPgConnection,
    context: &AuditContext,
    account_id: Uuid,
    user_id: Uuid,
    every_account: bool,
) -> Result<PersonalDataExport, ApiError> {
    let now = Utc::now();
    users::lock(conn, account_id, user_id)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    check_daily_limit(conn, account_id, user_id, now).await?;
    let export = collect(conn, account_id, user_id, every_account, now).await?;
    // Counts only; a key containing `token` would be redacted, hence the instance tokens'
    // name here.
    audit::record(
        conn,
        context,
        AuditEvent::success(Some(account_id), EXPORT_ACTION, "user", user_id).with_after(json!({
            "team_memberships": export.team_memberships.len(),
            "sessions": export.sessions.len(),
            "instance_credentials": export.instance_tokens.len(),
            "audit_log": export.audit_log.len(),
            "cards": export.cards.len(),
            "chat_messages": export.chat_messages.len(),
        })),
    )
    .await?;
    Ok(export)
}

/// `GET /api/v1/me/export`: everything held about the caller, as one JSON attachment (see
/// the module documentation).
#[utoipa::path(get, path = "/api/v1/me/export", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = PersonalDataExport, description = "an attachment (`Content-Disposition: attachment`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)))]
pub async fn export(
    state: web::Data<AppState>,
    principal: Principal,
    context: RequestContext,
) -> Result<HttpResponse, ApiError> {
    authorize(&principal, Action::OwnDataExport)?;
    let (account_id, user_id) = (principal.account_id, principal.require_user()?);
    let audit_context = context.audit(&principal);
    let every_account = principal.is_super_admin();
    let export = if every_account {
        let scope = principal.platform_scope()?;
        db::platform_tx(&state.db, scope, |conn| {
            Box::pin(
                async move { export_in(conn, &audit_context, account_id, user_id, true).await },
            )
        })
        .await?
    } else {
        db::tenant_tx(&state.db, account_id, |conn| {
            Box::pin(
                async move { export_in(conn, &audit_context, account_id, user_id, false).await },
            )
        })
        .await?
    };
    let filename = format!(
        "whatpro-export-{user_id}-{}.json",
        export.generated_at.format("%Y-%m-%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            ContentDisposition {
                disposition: DispositionType::Attachment,
                parameters: vec![DispositionParam::Filename(filename)],
            },
        ))
        .json(export))
}
