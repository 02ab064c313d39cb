//! Roles, scopes and the permission matrix of iam.md §2, decided in one place.
//!
//! Handlers name the [`Action`] they perform and call [`authorize`]; nothing else compares
//! roles or scopes. A 403 names what was missing (`details.required_role` or
//! `details.required_scope`).

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
    /// `/api/v1/me/*` (sessions, export).
    SelfService,
    /// Changing one's own password or email.
    OwnCredentials,
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
