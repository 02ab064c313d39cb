//! What a handler knows about the request besides its body: client IP (trusted-proxy aware),
//! user agent, request id, Origin. Feeds the audit log and the session records.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::client_ip::client_ip;
use crate::auth::Principal;
use crate::db::audit::AuditContext;
use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::RequestId;

/// Request facts for handlers.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client IP.
    pub ip: Option<IpAddr>,
    /// The user agent (≤ 512 chars).
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: String,
    /// The `Origin` header.
    pub origin: Option<String>,
}

impl RequestContext {
    /// The audit context of an anonymous caller.
    pub fn anonymous(&self) -> AuditContext {
        AuditContext {
            actor_type: "anonymous",
            actor_id: None,
            acted_as_user_id: None,
            ip: self.ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.clone(),
            request_id: Some(self.request_id.clone()),
        }
    }

    /// The audit context of `principal`.
    pub fn audit(&self, principal: &Principal) -> AuditContext {
        let (actor_type, actor_id) = principal.actor();
        AuditContext {
            actor_type,
            actor_id,
            acted_as_user_id: principal.impersonator_id.and(principal.user_id),
            ..self.anonymous()
        }
    }

    /// The audit context of a user acting for themself (sign-in flows).
    pub fn user(&self, user_id: uuid::Uuid) -> AuditContext {
        AuditContext {
            actor_type: "user",
            actor_id: Some(user_id),
            ..self.anonymous()
        }
    }
}

impl RequestContext {
    /// The facts of `req` (also for middleware, which has no extractor).
    pub fn of(req: &HttpRequest) -> Self {
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.trusted_proxies.clone())
            .unwrap_or_default();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        RequestContext {
            ip: client_ip(req, &trusted),
            user_agent: header("user-agent").map(|ua| ua.chars().take(512).collect()),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|id| id.0.clone())
                .unwrap_or_default(),
            origin: header("origin"),
        }
    }
}

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(RequestContext::of(req)))
    }
}
