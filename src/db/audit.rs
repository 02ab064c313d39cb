//! The audit log (tenancy.md §6): rows written in the transaction of the change they record,
//! with secrets redacted at any depth before they are written.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::schema::audit_log;

/// Who did it, where from (filled from the request).
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    /// `user`, `api_key`, `instance_token`, `system`, `webhook` or `anonymous`.
    pub actor_type: &'static str,
    /// The acting user, key or token (the super_admin while impersonating).
    pub actor_id: Option<Uuid>,
    /// The impersonated user.
    pub acted_as_user_id: Option<Uuid>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent (≤ 512 chars).
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

impl AuditContext {
    /// The context of the system's own work (CLI, bootstrap).
    pub fn system() -> Self {
        Self {
            actor_type: "system",
            ..Self::default()
        }
    }
}

/// One audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// The tenant (`None`: a platform event).
    pub account_id: Option<Uuid>,
    /// `<resource>.<verb>` (`auth.login.succeeded`, `api_key.created`, ...).
    pub action: &'a str,
    /// The resource's type.
    pub resource_type: Option<&'a str>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// State before (redacted before writing).
    pub before: Option<Value>,
    /// State after (redacted before writing).
    pub after: Option<Value>,
    /// `success`, `failure` or `denied`.
    pub result: &'a str,
    /// The error code of a failure or denial.
    pub error_code: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    /// A successful event on a resource.
    pub fn success(
        account_id: Option<Uuid>,
        action: &'a str,
        resource_type: &'a str,
        resource_id: impl ToString,
    ) -> Self {
        Self {
            account_id,
            action,
            resource_type: Some(resource_type),
            resource_id: Some(resource_id.to_string()),
            before: None,
            after: None,
            result: "success",
            error_code: None,
        }
    }

    /// Attaches the state after the change.
    pub fn with_after(mut self, after: Value) -> Self {
        self.after = Some(after);
        self
    }

    /// Attaches the state before the change.
    pub fn with_before(mut self, before: Value) -> Self {
        self.before = Some(before);
        self
    }
}

/// Keys whose values never reach the audit log.
const SECRET_KEY_PARTS: [&str; 9] = [
    "password",
    "secret",
    "token",
    "key_hash",
    "api_key",
    "authorization",
    "cookie",
    "private_key",
    "encryption_key",
];

/// Redacts secrets at any depth: values under keys containing a secret word become
/// `"[REDACTED]"`; `cpf_cnpj` keeps its last two digits.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if SECRET_KEY_PARTS.iter().any(|part| lower.contains(part)) {
                    *inner = Value::String("[REDACTED]".into());
                } else if lower == "cpf_cnpj" {
                    if let Value::String(document) = inner {
                        let digits: Vec<char> =
                            document.chars().filter(char::is_ascii_digit).collect();
                        let tail: String =
                            digits[digits.len().saturating_sub(2)..].iter().collect();
                        *inner = Value::String(format!("***{tail}"));
                    }
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Writes an audit row in the caller's transaction.
pub async fn record(
    conn: &mut AsyncPgConnection,
    context: &AuditContext,
    event: AuditEvent<'_>,
) -> QueryResult<()> {
    let mut before = event.before;
    let mut after = event.after;
    before.iter_mut().for_each(redact);
    after.iter_mut().for_each(redact);
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(Uuid::now_v7()),
            audit_log::account_id.eq(event.account_id),
            audit_log::actor_type.eq(if context.actor_type.is_empty() {
                "anonymous"
            } else {
                context.actor_type
            }),
            audit_log::actor_id.eq(context.actor_id),
            audit_log::acted_as_user_id.eq(context.acted_as_user_id),
            audit_log::action.eq(event.action),
            audit_log::resource_type.eq(event.resource_type),
            audit_log::resource_id.eq(event.resource_id),
            audit_log::before.eq(before),
            audit_log::after.eq(after),
            audit_log::result.eq(event.result),
            audit_log::error_code.eq(event.error_code),
            audit_log::ip.eq(context.ip.as_deref()),
            audit_log::user_agent.eq(context.user_agent.as_deref()),
            audit_log::request_id.eq(context.request_id.as_deref()),
            audit_log::created_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Writes one audit row in its own transaction, for events that are not part of a change
/// (failed sign-ins, denials). A failure to write is logged, not returned: the caller is
/// already answering an error.
pub async fn record_alone(db: &super::Database, context: AuditContext, event: AuditEvent<'static>) {
    let action = event.action;
    let scope = super::PlatformScope::system();
    let result = super::platform_tx(db, scope, |conn| {
        Box::pin(async move {
            record(conn, &context, event)
                .await
                .map_err(super::DbError::from)
        })
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, action, "could not write an audit row");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut value = json!({
            "name": "ok",
            "password": "p",
            "nested": {"api_key": "k", "list": [{"refresh_token": "t"}, {"fine": 1}]},
            "Authorization": "Bearer x",
            "cpf_cnpj": "123.456.789-09",
        });
        redact(&mut value);
        assert_eq!(
            value,
            json!({
                "name": "ok",
                "password": "[REDACTED]",
                "nested": {"api_key": "[REDACTED]", "list": [{"refresh_token": "[REDACTED]"}, {"fine": 1}]},
                "Authorization": "[REDACTED]",
                "cpf_cnpj": "***09",
            })
        );
    }
}
