//! Reading the audit log (tenancy.md §6): an account's rows at
//! `/api/v1/accounts/{account_id}/audit-log` (admins, super_admin, keys and instance tokens
//! with `audit:read`), one row by id, and every row, platform rows included, at
//! `/admin/audit-log` (super_admin).
//!
//! Lists are newest first by `(created_at, id)`; the opaque cursor is the URL-safe base64
//! (no padding) of the last row's `created_at` (microseconds since the Unix epoch, big-endian
//! i64) followed by its id (16 bytes). Filters: `actor_id`, `action` (exact, or a prefix when
//! it ends with `.`: `user.`), `resource_type`, `resource_id`, `result`, `from` (inclusive),
//! `to` (exclusive), RFC 3339. Unknown parameters and bad values are a 400 naming the field.
//! `/admin/audit-log` also takes `account_id`: an account's id, or `platform` for the platform
//! rows only (`account_id` null); without it every row is listed.

use actix_web::{web, HttpRequest};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::policy::{authorize, Action};
use crate::auth::Principal;
use crate::db;
use crate::db::audit_queries::{self, AccountFilter, ActionFilter, AuditEntry, AuditFilter};
use crate::error::{ApiError, FieldError};
use crate::http::pagination::Page;
use crate::state::AppState;

/// Default page size (conventions.md).
const DEFAULT_LIMIT: i64 = 50;
/// Largest page size (conventions.md).
const MAX_LIMIT: i64 = 200;

/// An audit row as the API shows it: every column.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    /// Row id (UUIDv7).
    pub id: Uuid,
    /// The tenant; null for platform events.
    pub account_id: Option<Uuid>,
    /// `user`, `api_key`, `instance_token`, `system`, `webhook` or `anonymous`.
    pub actor_type: String,
    /// The acting user, API key or instance token (the super_admin while impersonating).
    pub actor_id: Option<Uuid>,
    /// The impersonated user, while impersonating.
    pub acted_as_user_id: Option<Uuid>,
    /// `<resource>.<verb>` (`api_key.created`, `auth.login.failed`, ...).
    pub action: String,
    /// The resource's type.
    pub resource_type: Option<String>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// State before the change (secrets redacted).
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// State after the change (secrets redacted).
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// `success`, `failure` or `denied`.
    pub result: String,
    /// The error code of a failure or denial.
    pub error_code: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(row: AuditEntry) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            actor_type: row.actor_type,
            actor_id: row.actor_id,
            acted_as_user_id: row.acted_as_user_id,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            before: row.before,
            after: row.after,
            result: row.result,
            error_code: row.error_code,
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            created_at: row.created_at,
        }
    }
}

/// The query of `GET …/audit-log`. Unknown parameters are a 400.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only rows of this actor (user, API key or instance token id).
    #[param(value_type = Option<Uuid>)]
    pub actor_id: Option<String>,
    /// The action, exact (`api_key.created`), or a prefix when it ends with `.` (`user.`).
    #[param(value_type = Option<String>)]
    pub action: Option<String>,
    /// The resource's type (≤ 50 characters).
    #[param(value_type = Option<String>)]
    pub resource_type: Option<String>,
    /// The resource's id (≤ 100 characters).
    #[param(value_type = Option<String>)]
    pub resource_id: Option<String>,
    /// `success`, `failure` or `denied`.
    #[param(value_type = Option<String>, pattern = "^(success|failure|denied)$")]
    pub result: Option<String>,
    /// Rows created at or after this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<String>,
    /// Rows created before this instant (RFC 3339, exclusive).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    pub cursor: Option<String>,
}

/// The query of `GET /admin/audit-log`: [`AuditQuery`] plus `account_id`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminAuditQuery {
    /// Only this account's rows (a uuid), or `platform` for the platform rows only
    /// (`account_id` null). Absent: every row.
    #[param(value_type = Option<String>)]
    pub account_id: Option<String>,
    /// Only rows of this actor (user, API key or instance token id).
    #[param(value_type = Option<Uuid>)]
    pub actor_id: Option<String>,
    /// The action, exact (`api_key.created`), or a prefix when it ends with `.` (`user.`).
    #[param(value_type = Option<String>)]
    pub action: Option<String>,
    /// The resource's type (≤ 50 characters).
    #[param(value_type = Option<String>)]
    pub resource_type: Option<String>,
    /// The resource's id (≤ 100 characters).
    #[param(value_type = Option<String>)]
    pub resource_id: Option<String>,
    /// `success`, `failure` or `denied`.
    #[param(value_type = Option<String>, pattern = "^(success|failure|denied)$")]
    pub result: Option<String>,
    /// Rows created at or after this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<String>,
    /// Rows created before this instant (RFC 3339, exclusive).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    pub cursor: Option<String>,
}

impl AdminAuditQuery {
    /// `account_id` apart from the filters both routes share.
    fn split(self) -> (Option<String>, AuditQuery) {
        (
            self.account_id,
            AuditQuery {
                actor_id: self.actor_id,
                action: self.action,
                resource_type: self.resource_type,
                resource_id: self.resource_id,
                result: self.result,
                from: self.from,
                to: self.to,
                limit: self.limit,
                cursor: self.cursor,
            },
        )
    }
}

/// Encodes a page's sort key as an opaque cursor.
pub fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&created_at.timestamp_micros().to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor made by [`encode_cursor`]; `None` when it is not one.
pub fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    if bytes.len() != 24 {
        return None;
    }
    let (time, id) = bytes.split_at(8);
    let micros = i64::from_be_bytes(time.try_into().ok()?);
    let created_at = DateTime::<Utc>::from_timestamp_micros(micros)?;
    let id = Uuid::from_slice(id).ok()?;
    Some((created_at, id))
}

/// Parses a query string into `T`, naming the unknown, repeated or malformed parameter.
fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| {
            let message = match &e {
                actix_web::error::QueryPayloadError::Deserialize(inner) => inner.to_string(),
                other => other.to_string(),
            };
            let field = ["unknown field `", "duplicate field `"]
                .iter()
                .find_map(|prefix| message.strip_prefix(prefix))
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned);
            match field {
                Some(field) => ApiError::field(field, message),
                None => ApiError::BadRequest(format!("invalid query: {message}").into()),
            }
        })
}

/// A listing's validated parameters.
struct Listing {
    filter: AuditFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
}

/// Field problems, reported together.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: &str, message: &str) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        });
    }

    /// A text filter of 1..=`max` characters.
    fn text(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        let value = value?;
        if (1..=max).contains(&value.chars().count()) {
            Some(value)
        } else {
            self.add(field, &format!("must be 1-{max} characters"));
            None
        }
    }

    fn uuid(&mut self, field: &str, value: Option<&str>) -> Option<Uuid> {
        let value = value?;
        match Uuid::parse_str(value) {
            Ok(id) => Some(id),
            Err(_) => {
                self.add(field, "must be a UUID");
                None
            }
        }
    }

    fn time(&mut self, field: &str, value: Option<&str>) -> Option<DateTime<Utc>> {
        let value = value?;
        match DateTime::parse_from_rfc3339(value) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                self.add(field, "must be an RFC 3339 timestamp");
                None
            }
        }
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.0.is_empty() {
            return Ok(value);
        }
        let message = self
            .0
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ApiError::Validation {
            message,
            fields: self.0,
        })
    }
}

/// Validates the shared filters; every bad field is named.
fn listing(query: AuditQuery, account: Result<AccountFilter, &str>) -> Result<Listing, ApiError> {
    let mut problems = Problems::default();
    let account = account.unwrap_or_else(|message| {
        problems.add("account_id", message);
        AccountFilter::Any
    });
    let actor_id = problems.uuid("actor_id", query.actor_id.as_deref());
    let action = problems.text("action", query.action, 100).map(|action| {
        if action.ends_with('.') {
            ActionFilter::Prefix(action)
        } else {
            ActionFilter::Exact(action)
        }
    });
    let resource_type = problems.text("resource_type", query.resource_type, 50);
    let resource_id = problems.text("resource_id", query.resource_id, 100);
    let result = query.result.and_then(|result| {
        if ["success", "failure", "denied"].contains(&result.as_str()) {
            Some(result)
        } else {
            problems.add("result", "must be success, failure or denied");
            None
        }
    });
    let from = problems.time("from", query.from.as_deref());
    let to = problems.time("to", query.to.as_deref());
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            problems.add("to", "must not be before `from`");
        }
    }
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(limit) => match limit.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                problems.add("limit", "must be an integer 1-200");
                DEFAULT_LIMIT
            }
        },
    };
    let after = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => {
            let decoded = decode_cursor(cursor);
            if decoded.is_none() {
                problems.add("cursor", "invalid cursor");
            }
            decoded
        }
    };
    problems.finish(Listing {
        filter: AuditFilter {
            account,
            actor_id,
            action,
            resource_type,
            resource_id,
            result,
            from,
            to,
        },
        after,
        limit,
    })
}

/// A page from `limit + 1` rows: the extra row only says there is more.
fn page(mut rows: Vec<AuditEntry>, limit: i64) -> Page<AuditEntryView> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(encode_cursor(last.created_at, last.id)),
        _ => None,
    };
    Page {
        items: rows.into_iter().map(AuditEntryView::from).collect(),
        next_cursor,
    }
}

/// `GET /api/v1/accounts/{account_id}/audit-log`: the account's rows, newest first.
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/audit-log", tag = "audit",
    security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), AuditQuery),
    responses((status = 200, body = Page<AuditEntryView>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<web::Json<Page<AuditEntryView>>, ApiError> {
    let account_id = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::AuditRead)?;
    let query = parse_query::<AuditQuery>(req.query_string())?;
    let Listing {
        filter,
        after,
        limit,
    } = listing(query, Ok(AccountFilter::Account(account_id)))?;
    let rows = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(audit_queries::list(conn, &filter, after, limit + 1).await?)
        })
    })
    .await?;
    Ok(web::Json(page(rows, limit)))
}

/// `GET /api/v1/accounts/{account_id}/audit-log/{audit_id}`: one row of the account; 404
/// when it does not exist or is another account's (or a platform row).
#[utoipa::path(get, path = "/api/v1/accounts/{account_id}/audit-log/{audit_id}", tag = "audit",
    security(("bearer" = []), ("api_key" = [])),
    params(("account_id" = Uuid, Path, description = "account"), ("audit_id" = Uuid, Path, description = "audit row id")),
    responses((status = 200, body = AuditEntryView), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<AuditEntryView>, ApiError> {
    let (account_id, id) = path.into_inner();
    principal.check_account(account_id)?;
    authorize(&principal, Action::AuditRead)?;
    let row = db::tenant_tx(&state.db, account_id, |conn| {
        Box::pin(async move { Ok::<_, ApiError>(audit_queries::find(conn, account_id, id).await?) })
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(web::Json(row.into()))
}

/// `GET /admin/audit-log`: every account's rows and the platform rows, newest first
/// (super_admin). `account_id=<uuid>` narrows to one account, `account_id=platform` to the
/// platform rows.
#[utoipa::path(get, path = "/admin/audit-log", tag = "audit", security(("bearer" = [])),
    params(AdminAuditQuery),
    responses((status = 200, body = Page<AuditEntryView>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn admin_list(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<web::Json<Page<AuditEntryView>>, ApiError> {
    let scope = principal.platform_scope()?;
    let (account, query) = parse_query::<AdminAuditQuery>(req.query_string())?.split();
    let account = match account.as_deref() {
        None => Ok(AccountFilter::Any),
        Some("platform") => Ok(AccountFilter::Platform),
        Some(id) => Uuid::parse_str(id)
            .map(AccountFilter::Account)
            .map_err(|_| "must be a UUID or `platform`"),
    };
    let Listing {
        filter,
        after,
        limit,
    } = listing(query, account)?;
    let rows = db::platform_tx(&state.db, scope, |conn| {
        Box::pin(async move {
            Ok::<_, ApiError>(audit_queries::list(conn, &filter, after, limit + 1).await?)
        })
    })
    .await?;
    Ok(web::Json(page(rows, limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation { fields, .. } => fields.into_iter().map(|f| f.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_780_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        let cursor = encode_cursor(at, id);
        assert_eq!(decode_cursor(&cursor), Some((at, id)));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor("AAAA"), None);
        let uuid_only =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::now_v7().as_bytes());
        assert_eq!(decode_cursor(&uuid_only), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let e = parse_query::<AuditQuery>("actionn=user.").unwrap_err();
        assert_eq!(fields(e), ["actionn"]);
        let e = parse_query::<AuditQuery>("action=a.b&action=c.d").unwrap_err();
        assert_eq!(fields(e), ["action"]);
        let e = parse_query::<AuditQuery>("account_id=platform").unwrap_err();
        assert_eq!(fields(e), ["account_id"]);
        assert!(parse_query::<AdminAuditQuery>("account_id=platform").is_ok());
        assert!(parse_query::<AuditQuery>("").is_ok());
    }

    #[test]
    fn bad_values_are_named_together() {
        let query = parse_query::<AuditQuery>(
            "actor_id=x&result=ok&from=yesterday&to=2026-01-01&limit=201&cursor=zz&action=",
        )
        .unwrap();
        let Err(e) = listing(query, Ok(AccountFilter::Any)) else {
            panic!("accepted");
        };
        let mut names = fields(e);
        names.sort();
        assert_eq!(
            names,
            ["action", "actor_id", "cursor", "from", "limit", "result", "to"]
        );
        let query =
            parse_query::<AuditQuery>("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z&limit=0")
                .unwrap();
        let Err(e) = listing(query, Err("must be a UUID or `platform`")) else {
            panic!("accepted");
        };
        let mut names = fields(e);
        names.sort();
        assert_eq!(names, ["account_id", "limit", "to"]);
    }

    #[test]
    fn a_trailing_dot_makes_a_prefix() {
        let query = parse_query::<AuditQuery>("action=api_key.&limit=2").unwrap();
        let parsed = listing(query, Ok(AccountFilter::Any)).unwrap();
        assert_eq!(
            parsed.filter.action,
            Some(ActionFilter::Prefix("api_key.".into()))
        );
        assert_eq!(parsed.limit, 2);
        let query = parse_query::<AuditQuery>("action=api_key.created").unwrap();
        let parsed = listing(query, Ok(AccountFilter::Any)).unwrap();
        assert_eq!(
            parsed.filter.action,
            Some(ActionFilter::Exact("api_key.created".into()))
        );
    }
}
