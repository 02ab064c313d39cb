//! Denials of admin-level actions reach the audit log (tenancy.md §6: "403s on admin-level
//! actions", `result: denied` with the error code).
//!
//! One place does it for every route: this middleware runs the request under
//! [`attempts::watch`], which sees the admin-level action `policy::authorize` was asked about
//! (whether the matrix refused it or the handler's own rule did afterwards: "you cannot change
//! your own role"). When the answer is a 403 `FORBIDDEN` or `SCOPE_MISSING` on such an action,
//! one row is written in its own transaction (`db::audit::record_alone`), since the request's
//! own work, if any, was not committed. Plan refusals (`QUOTA_EXCEEDED`, `FEATURE_DISABLED`)
//! are not access denials and are not recorded, nor is any 403 of an agent-level action.
//!
//! The row names the attempted action (`user.manage`, `api_key.manage`, `platform.admin`, ...,
//! see `Action::name`), the last path parameter other than `account_id` as the resource id
//! (the row's `account_id` is the caller's account), and the method and route template under
//! `after`. It sits outside the edge middleware, so its write never counts
//! against the handler deadline; it is bounded by [`WRITE_TIMEOUT`], and a failure to write is
//! logged and never changes the answer.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};
use serde_json::json;

use crate::auth::policy::attempts::{self, Attempt};
use crate::db::audit::{self, AuditContext, AuditEvent};
use crate::error::ErrorBody;
use crate::http::context::RequestContext;
use crate::state::AppState;

/// The longest a denial row may hold up its 403.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The error codes that are access denials.
const DENIAL_CODES: [&str; 2] = ["FORBIDDEN", "SCOPE_MISSING"];

/// The middleware function (wrap with `actix_web::middleware::from_fn(audit_denials)`, outside
/// the edge).
pub async fn audit_denials(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (result, attempt) = attempts::watch(next.call(req)).await;
    let res = result?;
    if let Some(attempt) = attempt.filter(|_| res.status() == StatusCode::FORBIDDEN) {
        let code = res
            .response()
            .extensions()
            .get::<ErrorBody>()
            .map(|body| body.code);
        if let Some(code) = code.filter(|c| DENIAL_CODES.contains(c)) {
            record(res.request(), attempt, code).await;
        }
    }
    Ok(res)
}

/// The denial row of `attempt`, answered with `code`.
fn event(req: &HttpRequest, attempt: &Attempt, code: &'static str) -> AuditEvent<'static> {
    let resource_id = req
        .match_info()
        .iter()
        .filter(|(name, _)| *name != "account_id")
        .last()
        .map(|(_, value)| value.chars().take(100).collect::<String>());
    AuditEvent {
        account_id: Some(attempt.account_id),
        action: attempt.action.name(),
        resource_type: Some(attempt.action.resource_type()),
        resource_id,
        before: None,
        after: Some(json!({
            "method": req.method().as_str(),
            "route": req.match_pattern().unwrap_or_else(|| req.path().to_owned()),
        })),
        result: "denied",
        error_code: Some(code),
    }
}

/// Writes the row on its own; never fails the request.
async fn record(req: &HttpRequest, attempt: Attempt, code: &'static str) {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return;
    };
    let context = AuditContext {
        actor_type: attempt.actor_type,
        actor_id: attempt.actor_id,
        acted_as_user_id: attempt.acted_as_user_id,
        ..RequestContext::of(req).anonymous()
    };
    let event = event(req, &attempt, code);
    let write = audit::record_alone(&state.db, context, event);
    if tokio::time::timeout(WRITE_TIMEOUT, write).await.is_err() {
        tracing::warn!(
            action = attempt.action.name(),
            "the denial audit row timed out"
        );
    }
}
