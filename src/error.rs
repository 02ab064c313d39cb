//! The one error type every handler returns, and its mapping to HTTP.
//!
//! [`ApiError::error_response`] sets the status and attaches the [`ErrorBody`] to the response;
//! the edge middleware (`http::edge`) then writes the body with the request id, so every error
//! from every layer (routing, extractors, handlers, panics) has the same shape:
//! `{"code", "message", "details"?, "request_id"}`.

use std::borrow::Cow;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;

use crate::db::DbError;

/// One field's problem in a `VALIDATION_ERROR`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path (`name`, `items[2].title`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: fields out of bounds, unknown fields, wrong types.
    #[error("{message}")]
    Validation {
        /// Summary.
        message: String,
        /// Per-field problems.
        fields: Vec<FieldError>,
    },
    /// 400: malformed request.
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    /// 401: no credentials, or credentials that do not match.
    #[error("{0}")]
    Unauthenticated(Cow<'static, str>),
    /// 401: a malformed, forged or revoked token.
    #[error("invalid or revoked token")]
    InvalidToken,
    /// 401: an expired token.
    #[error("token expired")]
    TokenExpired,
    /// 403: authenticated but not allowed; `details` may name the required role or scope.
    #[error("{message}")]
    Forbidden {
        /// Reason.
        message: Cow<'static, str>,
        /// Extra details.
        details: Option<Value>,
    },
    /// 403 `SCOPE_MISSING`: a key or instance token without the scope the route needs.
    #[error("the credential lacks the required scope")]
    ScopeMissing(&'static str),
    /// 403 `FEATURE_DISABLED`: the account's plan does not include the feature.
    #[error("this feature is disabled for the account")]
    FeatureDisabled(&'static str),
    /// 403 `QUOTA_EXCEEDED`: a plan limit is reached; details `{limit, max, current, plan}`.
    #[error("plan limit reached: {limit}")]
    QuotaExceeded {
        /// The limit's key (`max_agents`, ...).
        limit: &'static str,
        /// The details object.
        details: Value,
    },
    /// 404: missing, or another tenant's.
    #[error("not found")]
    NotFound,
    /// 409: duplicate or state conflict.
    #[error("{message}")]
    Conflict {
        /// Reason.
        message: Cow<'static, str>,
        /// Extra details.
        details: Option<Value>,
    },
    /// 413.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415.
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// 431: request line and headers over 16 KiB (operations.md).
    #[error("request headers too large")]
    HeadersTooLarge,
    /// 405 (conventions.md has no row; answered in the same shape).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 422: a business rule.
    #[error("{0}")]
    Unprocessable(Cow<'static, str>),
    /// 422 with details (`open_item_ids`, ...).
    #[error("{message}")]
    UnprocessableWith {
        /// Reason.
        message: Cow<'static, str>,
        /// Extra details.
        details: Value,
    },
    /// 429 with `Retry-After`.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 502: an upstream (Chatwoot, a provider, Asaas) failed.
    #[error("{0}")]
    Upstream(Cow<'static, str>),
    /// 504: an upstream did not answer in time.
    #[error("{0}")]
    UpstreamTimeout(Cow<'static, str>),
    /// 503: the database, an actor or the node is not available.
    #[error("{0}")]
    Unavailable(Cow<'static, str>),
    /// 500: a bug. The message is generic; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The error body; the edge middleware serializes it with the request id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code (`VALIDATION_ERROR`, `NOT_FOUND`, ...).
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Extra, code-specific details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The request's id (`X-Request-Id`).
    pub request_id: String,
}

impl ErrorBody {
    /// The body for a status that reached the edge without one (actix internals).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("BAD_REQUEST", "bad request"),
            401 => ("UNAUTHENTICATED", "authentication required"),
            403 => ("FORBIDDEN", "forbidden"),
            404 => ("NOT_FOUND", "not found"),
            405 => ("METHOD_NOT_ALLOWED", "method not allowed"),
            408 => ("REQUEST_TIMEOUT", "request timeout"),
            409 => ("CONFLICT", "conflict"),
            413 => ("PAYLOAD_TOO_LARGE", "request body too large"),
            415 => ("UNSUPPORTED_MEDIA_TYPE", "unsupported media type"),
            422 => ("UNPROCESSABLE", "unprocessable"),
            429 => ("RATE_LIMITED", "too many requests"),
            431 => ("HEADERS_TOO_LARGE", "request headers too large"),
            503 => ("UNAVAILABLE", "service unavailable"),
            s if s >= 500 => ("INTERNAL", "internal error"),
            _ => ("BAD_REQUEST", "bad request"),
        };
        Self {
            code,
            message: message.into(),
            details: None,
            request_id: String::new(),
        }
    }
}

impl ApiError {
    /// A 400 `VALIDATION_ERROR` for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        let field = field.into();
        ApiError::Validation {
            message: format!("{field}: {message}"),
            fields: vec![FieldError { field, message }],
        }
    }

    /// A 403 with a message.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Forbidden {
            message: message.into(),
            details: None,
        }
    }

    /// A 409 with a message.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Conflict {
            message: message.into(),
            details: None,
        }
    }

    /// A 500 wrapping its cause (logged, never sent).
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(cause.into())
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "VALIDATION_ERROR",
            ApiError::BadRequest(_) => "BAD_REQUEST",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::InvalidToken => "INVALID_TOKEN",
            ApiError::TokenExpired => "TOKEN_EXPIRED",
            ApiError::Forbidden { .. } => "FORBIDDEN",
            ApiError::ScopeMissing(_) => "SCOPE_MISSING",
            ApiError::FeatureDisabled(_) => "FEATURE_DISABLED",
            ApiError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiError::Upstream(_) => "UPSTREAM_ERROR",
            ApiError::UpstreamTimeout(_) => "UPSTREAM_TIMEOUT",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::Conflict { .. } => "CONFLICT",
            ApiError::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::HeadersTooLarge => "HEADERS_TOO_LARGE",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Unprocessable(_) | ApiError::UnprocessableWith { .. } => "UNPROCESSABLE",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::Validation { fields, .. } => Some(serde_json::json!({ "fields": fields })),
            ApiError::Forbidden { details, .. } | ApiError::Conflict { details, .. } => {
                details.clone()
            }
            ApiError::ScopeMissing(scope) => Some(serde_json::json!({ "required_scope": scope })),
            ApiError::FeatureDisabled(feature) => Some(serde_json::json!({ "feature": feature })),
            ApiError::QuotaExceeded { details, .. }
            | ApiError::UnprocessableWith { details, .. } => Some(details.clone()),
            _ => None,
        }
    }

    /// The body of this error (without the request id, which the edge adds).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            details: self.details(),
            request_id: String::new(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) | ApiError::InvalidToken | ApiError::TokenExpired => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden { .. }
            | ApiError::ScopeMissing(_)
            | ApiError::FeatureDisabled(_)
            | ApiError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unprocessable(_) | ApiError::UnprocessableWith { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "internal error")
            }
            ApiError::Unavailable(reason) => tracing::warn!(%reason, "unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        let mut response = response.finish();
        response.extensions_mut().insert(self.body());
        response
    }
}

/// `cause: its source: its source...`, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) => ApiError::Unavailable("database unavailable".into()),
            DbError::Query(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::NotFound => ApiError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                ApiError::conflict("already exists")
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                ApiError::Unavailable("database unavailable".into())
            }
            // statement_timeout / lock_timeout (57014 / 55P03) surface as unknown errors.
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("timeout") =>
            {
                ApiError::Unavailable("database timeout".into())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<whatpro_actors::TenantSend> for ApiError {
    fn from(error: whatpro_actors::TenantSend) -> Self {
        ApiError::Unavailable(error.to_string().into())
    }
}
