//! Logs: the tracing subscriber, request ids, and the per-request span.
//!
//! tracing-actix-web opens one span per request through [`HubRootSpan`]. The span carries the
//! request id, method, route template (never the raw path, which may hold tokens), client IP,
//! user agent, and, once known, the account and user; a line is logged when the request ends
//! (health checks at debug). Headers, query strings and bodies are never logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

use crate::config::LogFormat;
use crate::http::client_ip::client_ip;
use crate::state::AppState;

/// Installs the global subscriber (once; later calls are ignored, which tests rely on).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The request id: the client's `X-Request-Id` when sane (1–64 of `[A-Za-z0-9._-]`), else a
/// new UUIDv7. Stored in the request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn for_request(request: &ServiceRequest) -> Self {
        let sane = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                (1..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        RequestId(sane.map_or_else(|| Uuid::now_v7().to_string(), str::to_owned))
    }
}

/// When the request started, for latency.
#[derive(Clone, Copy)]
struct RequestStart(Instant);

/// Builds the per-request span.
pub struct HubRootSpan;

impl RootSpanBuilder for HubRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = RequestId::for_request(request);
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let trusted = request
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.trusted_proxies.clone())
            .unwrap_or_default();
        let ip = client_ip(request.request(), &trusted)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let user_agent: String = request
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        let method = request.method().as_str().to_owned();
        let id = request_id.0.clone();
        request.extensions_mut().insert(request_id);
        request
            .extensions_mut()
            .insert(RequestStart(Instant::now()));
        macro_rules! request_span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "request",
                    request_id = %id,
                    method = %method,
                    route = %route,
                    client_ip = %ip,
                    user_agent = %user_agent,
                    status = tracing::field::Empty,
                    latency_ms = tracing::field::Empty,
                    account_id = tracing::field::Empty,
                    user_id = tracing::field::Empty,
                )
            };
        }
        if route.starts_with("/health") {
            request_span!(tracing::Level::DEBUG)
        } else {
            request_span!(tracing::Level::INFO)
        }
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, elapsed) = match outcome {
            Ok(response) => (
                response.status(),
                response
                    .request()
                    .extensions()
                    .get::<RequestStart>()
                    .map(|s| s.0.elapsed()),
            ),
            Err(error) => (error.as_response_error().status_code(), None),
        };
        span.record("status", status.as_u16());
        if let Some(elapsed) = elapsed {
            span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
        }
        let is_health = span
            .metadata()
            .is_some_and(|m| *m.level() == tracing::Level::DEBUG);
        span.in_scope(|| {
            if is_health {
                tracing::debug!("request completed");
            } else if status.is_server_error() {
                tracing::error!("request failed");
            } else {
                tracing::info!("request completed");
            }
        });
    }
}
