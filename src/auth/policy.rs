//! Roles, scopes and the permission matrix of iam.md §2, decided in one place.
//!
//! Handlers name the [`Action`] they perform and call [`authorize`]; nothing else compares
//! roles or scopes. A 403 names what was missing (`details.required_role` or
//! `details.required_scope`).
//!
//! [`authorize`] also notes every admin-level action a request attempts ([`attempts`]), so the
//! denial middleware (`http::denials`) can audit a 403 on one (tenancy.md §6) without any
//! handler writing audit rows for refusals.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::principal::{Principal, PrincipalKind};
use crate::error::ApiError;

/// Roles, ordered by rights.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works own cards.
    Agent,
    /// Works own and team cards.
    Supervisor,
    /// Administers one account.
    Admin,
    /// Operates the platform (only in the platform account).
    SuperAdmin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Agent, Role::Supervisor, Role::Admin, Role::SuperAdmin];

    /// The database and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::SuperAdmin => "super_admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// API key and instance token scopes (iam.md §4.6). There are no others and no shorthands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `usage:read`
    UsageRead,
    /// `users:read`
    UsersRead,
    /// `teams:read`
    TeamsRead,
    /// `boards:read`
    BoardsRead,
    /// `boards:write`
    BoardsWrite,
    /// `cards:read`
    CardsRead,
    /// `cards:write`
    CardsWrite,
    /// `chat:read`
    ChatRead,
    /// `chat:write`
    ChatWrite,
    /// `providers:read`
    ProvidersRead,
    /// `providers:write`
    ProvidersWrite,
    /// `messages:send`
    MessagesSend,
    /// `inboxes:read`
    InboxesRead,
    /// `inboxes:write`
    InboxesWrite,
    /// `audit:read`
    AuditRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 15] = [
        Scope::UsageRead,
        Scope::UsersRead,
        Scope::TeamsRead,
        Scope::BoardsRead,
        Scope::BoardsWrite,
        Scope::CardsRead,
        Scope::CardsWrite,
        Scope::ChatRead,
        Scope::ChatWrite,
        Scope::ProvidersRead,
        Scope::ProvidersWrite,
        Scope::MessagesSend,
        Scope::InboxesRead,
        Scope::InboxesWrite,
        Scope::AuditRead,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsageRead => "usage:read",
            Scope::UsersRead => "users:read",
            Scope::TeamsRead => "teams:read",
            Scope::BoardsRead => "boards:read",
            Scope::BoardsWrite => "boards:write",
            Scope::CardsRead => "cards:read",
            Scope::CardsWrite => "cards:write",
            Scope::ChatRead => "chat:read",
            Scope::ChatWrite => "chat:write",
            Scope::ProvidersRead => "providers:read",
            Scope::ProvidersWrite => "providers:write",
            Scope::MessagesSend => "messages:send",
            Scope::InboxesRead => "inboxes:read",
            Scope::InboxesWrite => "inboxes:write",
            Scope::AuditRead => "audit:read",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The least role whose rights include this scope's actions (iam.md §4.7: agents and
    /// supervisors may hold the read scopes, `cards:write`, the chat scopes and
    /// `messages:send`; the rest need an admin).
    pub fn min_role(self) -> Role {
        match self {
            Scope::BoardsRead
            | Scope::CardsRead
            | Scope::CardsWrite
            | Scope::ChatRead
            | Scope::ChatWrite
            | Scope::UsersRead
            | Scope::TeamsRead
            | Scope::InboxesRead
            | Scope::ProvidersRead
            | Scope::MessagesSend => Role::Agent,
            Scope::UsageRead
            | Scope::BoardsWrite
            | Scope::ProvidersWrite
            | Scope::InboxesWrite
            | Scope::AuditRead => Role::Admin,
        }
    }
}

/// A set of scopes.
pub type Scopes = BTreeSet<Scope>;

/// Parses a list of scope names; an unknown one is a 400 naming it.
pub fn parse_scopes(names: &[String], field: &str) -> Result<Scopes, ApiError> {
    names
        .iter()
        .map(|name| {
            Scope::parse(name)
                .ok_or_else(|| ApiError::field(field, format!("unknown scope `{name}`")))
        })
        .collect()
}

/// Scope names, sorted.
pub fn scope_names(scopes: &Scopes) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}

/// Which credentials may perform an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callers {
    /// User sessions, and keys or tokens holding the scope.
    Any,
    /// User sessions only (keys and instance tokens get 403).
    UsersOnly,
    /// User sessions that are not impersonating.
    UsersNotImpersonating,
}

/// Everything the hub authorizes, one variant per row of iam.md §2 (as far as built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the own account.
    AccountRead,
    /// Update the own account.
    AccountUpdate,
    /// Read entitlements and usage.
    UsageRead,
    /// Read users.
    UsersRead,
    /// Create, update, deactivate users; set roles and passwords; revoke their sessions.
    UsersManage,
    /// Read teams.
    TeamsRead,
    /// Create, update, delete teams.
    TeamsManage,
    /// Read boards and stages.
    BoardsRead,
    /// Write boards and stages.
    BoardsWrite,
    /// Reorder a board's stages (supervisors too).
    StagesReorder,
    /// Board metrics and SLA breaches.
    BoardMetrics,
    /// Read cards.
    CardsRead,
    /// Create, update, move, assign cards (row scopes apply on top).
    CardsWrite,
    /// Delete cards.
    CardsDelete,
    /// Read provider and instance state.
    ProvidersRead,
    /// Write providers and instances, QR pairing.
    ProvidersWrite,
    /// Send a message through an instance.
    MessagesSend,
    /// Read inboxes.
    InboxesRead,
    /// Write inboxes, sync.
    InboxesWrite,
    /// Read the account's audit log.
    AuditRead,
    /// Manage API keys.
    ApiKeysManage,
    /// Issue instance tokens.
    InstanceTokensIssue,
    /// Billing writes.
    BillingWrite,
    /// `/admin/*` and cross-account operations.
    PlatformAdmin,
    /// Start impersonating a user.
    Impersonate,
    /// `/api/v1/me/sessions` (impersonators too: the target sees the session).
    SelfService,
    /// Changing one's own password.
    OwnCredentials,
    /// Correcting one's own profile (`PATCH /api/v1/me`: name, email, avatar, preferences).
    OwnProfileUpdate,
    /// Exporting everything held about oneself (`GET /api/v1/me/export`).
    OwnDataExport,
}

impl Action {
    /// The `<resource>.<verb>` an audit row names the action by (denials).
    pub fn name(self) -> &'static str {
        match self {
            Action::AccountRead => "account.read",
            Action::AccountUpdate => "account.update",
            Action::UsageRead => "usage.read",
            Action::UsersRead => "user.read",
            Action::UsersManage => "user.manage",
            Action::TeamsRead => "team.read",
            Action::TeamsManage => "team.manage",
            Action::BoardsRead => "board.read",
            Action::BoardsWrite => "board.write",
            Action::StagesReorder => "stage.reorder",
            Action::BoardMetrics => "board.metrics",
            Action::CardsRead => "card.read",
            Action::CardsWrite => "card.write",
            Action::CardsDelete => "card.delete",
            Action::ProvidersRead => "provider.read",
            Action::ProvidersWrite => "provider.write",
            Action::MessagesSend => "message.send",
            Action::InboxesRead => "inbox.read",
            Action::InboxesWrite => "inbox.write",
            Action::AuditRead => "audit_log.read",
            Action::ApiKeysManage => "api_key.manage",
            Action::InstanceTokensIssue => "instance_token.issue",
            Action::BillingWrite => "billing.write",
            Action::PlatformAdmin => "platform.admin",
            Action::Impersonate => "impersonation.start",
            Action::SelfService => "session.self_service",
            Action::OwnCredentials => "user.own_credentials",
            Action::OwnProfileUpdate => "user.own_profile",
            Action::OwnDataExport => "privacy.export",
        }
    }

    /// The resource type of [`Action::name`] (the part before the first dot).
    pub fn resource_type(self) -> &'static str {
        let name = self.name();
        name.split_once('.').map_or(name, |(resource, _)| resource)
    }

    /// Whether the action needs an admin or more (its 403s are audited, tenancy.md §6).
    pub fn is_admin_level(self) -> bool {
        rule_for(self).min_role >= Role::Admin
    }
}

struct Rule {
    min_role: Role,
    scope: Option<Scope>,
    callers: Callers,
}

const fn rule(min_role: Role, scope: Option<Scope>, callers: Callers) -> Rule {
    Rule {
        min_role,
        scope,
        callers,
    }
}

fn rule_for(action: Action) -> Rule {
    use Callers::*;
    use Role::*;
    match action {
        Action::AccountRead => rule(Agent, None, Any),
        Action::AccountUpdate => rule(Admin, None, UsersOnly),
        Action::UsageRead => rule(Admin, Some(Scope::UsageRead), Any),
        Action::UsersRead => rule(Agent, Some(Scope::UsersRead), Any),
        Action::UsersManage => rule(Admin, None, UsersOnly),
        Action::TeamsRead => rule(Agent, Some(Scope::TeamsRead), Any),
        Action::TeamsManage => rule(Admin, None, UsersOnly),
        Action::BoardsRead => rule(Agent, Some(Scope::BoardsRead), Any),
        Action::BoardsWrite => rule(Admin, Some(Scope::BoardsWrite), Any),
        Action::StagesReorder => rule(Supervisor, Some(Scope::BoardsWrite), Any),
        Action::BoardMetrics => rule(Supervisor, Some(Scope::BoardsRead), Any),
        Action::CardsRead => rule(Agent, Some(Scope::CardsRead), Any),
        Action::CardsWrite => rule(Agent, Some(Scope::CardsWrite), Any),
        Action::CardsDelete => rule(Admin, Some(Scope::CardsWrite), Any),
        Action::ProvidersRead => rule(Agent, Some(Scope::ProvidersRead), Any),
        Action::ProvidersWrite => rule(Admin, Some(Scope::ProvidersWrite), Any),
        Action::MessagesSend => rule(Agent, Some(Scope::MessagesSend), Any),
        Action::InboxesRead => rule(Agent, Some(Scope::InboxesRead), Any),
        Action::InboxesWrite => rule(Admin, Some(Scope::InboxesWrite), Any),
        Action::AuditRead => rule(Admin, Some(Scope::AuditRead), Any),
        Action::ApiKeysManage => rule(Admin, None, UsersNotImpersonating),
        Action::InstanceTokensIssue => rule(Agent, None, UsersOnly),
        Action::BillingWrite => rule(Admin, None, UsersNotImpersonating),
        Action::PlatformAdmin => rule(SuperAdmin, None, UsersNotImpersonating),
        Action::Impersonate => rule(SuperAdmin, None, UsersNotImpersonating),
        Action::SelfService => rule(Agent, None, UsersOnly),
        Action::OwnCredentials => rule(Agent, None, UsersNotImpersonating),
        Action::OwnProfileUpdate => rule(Agent, None, UsersNotImpersonating),
        Action::OwnDataExport => rule(Agent, None, UsersNotImpersonating),
    }
}

fn forbidden(message: &'static str, details: serde_json::Value) -> ApiError {
    ApiError::Forbidden {
        message: message.into(),
        details: Some(details),
    }
}

/// Decides whether `principal` may perform `action` (row scopes are the caller's next step).
pub fn authorize(principal: &Principal, action: Action) -> Result<(), ApiError> {
    let rule = rule_for(action);
    if rule.min_role >= Role::Admin {
        attempts::note(principal, action);
    }
    let is_user = matches!(principal.kind, PrincipalKind::User { .. });
    match rule.callers {
        Callers::UsersOnly | Callers::UsersNotImpersonating if !is_user => {
            return Err(forbidden(
                "this action needs a user session",
                json!({ "required_principal": "user" }),
            ))
        }
        Callers::UsersNotImpersonating if principal.impersonator_id.is_some() => {
            return Err(forbidden(
                "not allowed while impersonating",
                json!({ "reason": "impersonating" }),
            ))
        }
        _ => {}
    }
    if principal.role < rule.min_role {
        return Err(forbidden(
            "your role does not allow this",
            json!({ "required_role": rule.min_role.as_str() }),
        ));
    }
    if let Some(granted) = &principal.scopes {
        match rule.scope {
            Some(scope) if granted.contains(&scope) => {}
            Some(scope) => return Err(ApiError::ScopeMissing(scope.as_str())),
            // No scope guards it: every principal of the account may (reading the account).
            None if rule.callers == Callers::Any => {}
            None => {
                return Err(forbidden(
                    "this action needs a user session",
                    json!({ "required_principal": "user" }),
                ))
            }
        }
    }
    Ok(())
}

/// Whether `actor` may give `target` the role `new_role` (no escalation: nobody grants above
/// their own role; admins assign up to admin; only super_admin assigns super_admin, and only
/// in the platform account, checked by the caller and the database).
pub fn may_assign_role(actor: Role, new_role: Role) -> bool {
    match new_role {
        Role::SuperAdmin => actor == Role::SuperAdmin,
        other => actor >= Role::Admin && other <= actor,
    }
}

/// The admin-level action a request attempted, kept for the length of the request so that a
/// 403 answer can be audited as a denial (tenancy.md §6) in one place, whichever check (the
/// matrix here, or a handler's own rule after it) refused.
///
/// The note lives in a task-local set up by [`attempts::watch`] around the inner service; the
/// handler runs inside that future, so [`authorize`] can note without any handler knowing.
/// Outside a watch (websockets, unit tests) noting does nothing.
pub mod attempts {
    use std::cell::RefCell;
    use std::future::Future;

    use uuid::Uuid;

    use super::Action;
    use crate::auth::principal::Principal;

    /// Who attempted which admin-level action.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Attempt {
        /// The action.
        pub action: Action,
        /// The principal's account.
        pub account_id: Uuid,
        /// `user`, `api_key` or `instance_token`.
        pub actor_type: &'static str,
        /// The acting user, key or token (the super_admin while impersonating).
        pub actor_id: Option<Uuid>,
        /// The impersonated user.
        pub acted_as_user_id: Option<Uuid>,
    }

    tokio::task_local! {
        static ATTEMPT: RefCell<Option<Attempt>>;
    }

    /// Notes an admin-level attempt (the latest one wins); a no-op outside [`watch`].
    pub(super) fn note(principal: &Principal, action: Action) {
        let (actor_type, actor_id) = principal.actor();
        let attempt = Attempt {
            action,
            account_id: principal.account_id,
            actor_type,
            actor_id,
            acted_as_user_id: principal.impersonator_id.and(principal.user_id),
        };
        let _ = ATTEMPT.try_with(|cell| *cell.borrow_mut() = Some(attempt));
    }

    /// Runs `future` noting the admin-level action it attempts; returns its output and the
    /// attempt, if any.
    pub async fn watch<T>(future: impl Future<Output = T>) -> (T, Option<Attempt>) {
        ATTEMPT
            .scope(RefCell::new(None), async move {
                let output = future.await;
                let attempt = ATTEMPT.with(|cell| cell.borrow_mut().take());
                (output, attempt)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::attempts::watch;
    use super::*;

    fn user(role: Role) -> Principal {
        Principal {
            kind: PrincipalKind::User {
                session_id: Uuid::now_v7(),
            },
            account_id: Uuid::now_v7(),
            user_id: Some(Uuid::now_v7()),
            role,
            scopes: None,
            impersonator_id: None,
            provider_instance_id: None,
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn admin_level_attempts_are_noted_inside_a_watch_only() {
        let agent = user(Role::Agent);
        let (result, attempt) = watch(async { authorize(&agent, Action::UsersManage) }).await;
        assert!(result.is_err());
        let attempt = attempt.expect("noted");
        assert_eq!(attempt.action, Action::UsersManage);
        assert_eq!(attempt.account_id, agent.account_id);
        assert_eq!(
            (attempt.actor_type, attempt.actor_id),
            ("user", agent.user_id)
        );
        // Agent-level actions are not noted, allowed or not.
        let (_, attempt) = watch(async {
            authorize(&agent, Action::CardsRead)?;
            authorize(&user(Role::Agent), Action::StagesReorder)
        })
        .await;
        assert_eq!(attempt, None);
        // Outside a watch, noting is a no-op (websockets, background work).
        assert!(authorize(&agent, Action::ApiKeysManage).is_err());
    }

    #[test]
    fn action_names_are_resource_dot_verb() {
        assert_eq!(Action::UsersManage.name(), "user.manage");
        assert_eq!(Action::UsersManage.resource_type(), "user");
        assert_eq!(Action::AuditRead.resource_type(), "audit_log");
        assert!(Action::BillingWrite.is_admin_level());
        assert!(!Action::StagesReorder.is_admin_level());
    }
}
