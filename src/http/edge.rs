//! The edge middleware every response passes through.
//!
//! It catches handler panics (500), enforces the handler deadline (`REQUEST_TIMEOUT_SECS`,
//! 503), writes every error body in the conventions.md shape with the request id (errors of our
//! own carry an [`ErrorBody`] in the response extensions; anything else, such as actix's own
//! extractor errors, is mapped by status), and adds `X-Request-Id` and the security headers of
//! operations.md.

use std::panic::AssertUnwindSafe;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use futures_util::FutureExt;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::telemetry::RequestId;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Largest request line plus headers (operations.md: 16 KiB → 431).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The size of the request line and headers as sent (names, values, separators).
fn head_size(req: &ServiceRequest) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 11;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// An error response rendered completely by the edge, for the outcomes that leave no request
/// to attach a response to (a panic, the deadline, an error returned by an inner layer).
#[derive(Debug)]
struct Rendered {
    status: actix_web::http::StatusCode,
    headers: header::HeaderMap,
    body: web::Bytes,
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)
    }
}

impl ResponseError for Rendered {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.status
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let mut response = actix_web::HttpResponse::with_body(self.status, self.body.clone());
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response.map_into_boxed_body()
    }
}

/// What the edge needs to know about a request, read before the request moves inward.
struct RequestFacts {
    state: Option<web::Data<AppState>>,
    request_id: String,
    method: String,
    route: String,
    path: String,
}

/// The middleware function (wrap with `actix_web::middleware::from_fn(edge)`).
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let facts = RequestFacts {
        state: req.app_data::<web::Data<AppState>>().cloned(),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default(),
        method: req.method().as_str().to_owned(),
        route: req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned()),
        path: req.path().to_owned(),
    };
    let deadline = facts
        .state
        .as_ref()
        .map(|s| s.config.request_timeout)
        .unwrap_or(std::time::Duration::from_secs(30));
    let result = if head_size(&req) > MAX_HEAD_BYTES {
        Err(render(ApiError::HeadersTooLarge.error_response(), &facts))
    } else {
        respond(req, next, deadline, &facts).await
    };
    let status = match &result {
        Ok(res) => res.status(),
        Err(rendered) => rendered.status,
    };
    if let Some(state) = &facts.state {
        state.metrics.observe_http(
            &facts.method,
            &facts.route,
            status.as_u16(),
            started.elapsed(),
        );
    }
    result.map_err(actix_web::Error::from)
}

/// Runs the inner service under the deadline and a panic guard, and finishes its response.
async fn respond(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    deadline: std::time::Duration,
    facts: &RequestFacts,
) -> Result<ServiceResponse<BoxBody>, Rendered> {
    let outcome =
        tokio::time::timeout(deadline, AssertUnwindSafe(next.call(req)).catch_unwind()).await;
    match outcome {
        Ok(Ok(Ok(res))) => {
            let mut res = res.map_into_boxed_body();
            if res.status().as_u16() >= 400 {
                let ours = res.response().extensions().get::<ErrorBody>().cloned();
                let (body, content_type) =
                    error_body(res.status(), ours, res.headers(), &facts.request_id);
                if let (Some(body), Some(content_type)) = (body, content_type) {
                    res = res.map_body(|_, _| BoxBody::new(body));
                    res.headers_mut().insert(header::CONTENT_TYPE, content_type);
                    res.headers_mut().remove(header::CONTENT_LENGTH);
                }
            }
            add_headers(res.headers_mut(), facts);
            Ok(res)
        }
        Ok(Ok(Err(error))) => Err(render(error.error_response(), facts)),
        Ok(Err(_panic)) => {
            tracing::error!("request handler panicked");
            Err(render(
                ApiError::internal("handler panicked").error_response(),
                facts,
            ))
        }
        Err(_elapsed) => Err(render(
            ApiError::Unavailable("request timed out".into()).error_response(),
            facts,
        )),
    }
}

/// The error body for a response of `status`: ours (from the extensions) or one made from the
/// status; `None` when the response already has a JSON body of its own (health objects).
fn error_body(
    status: actix_web::http::StatusCode,
    ours: Option<ErrorBody>,
    headers: &header::HeaderMap,
    request_id: &str,
) -> (Option<Vec<u8>>, Option<HeaderValue>) {
    let body = match ours {
        Some(body) => body,
        None => {
            let is_json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if is_json {
                return (None, None);
            }
            ErrorBody::for_status(status)
        }
    };
    let body = ErrorBody {
        request_id: request_id.to_owned(),
        ..body
    };
    (
        Some(serde_json::to_vec(&body).unwrap_or_default()),
        Some(HeaderValue::from_static("application/json")),
    )
}

fn render(response: actix_web::HttpResponse, facts: &RequestFacts) -> Rendered {
    let status = response.status();
    let (body, _) = error_body(
        status,
        response.extensions().get::<ErrorBody>().cloned(),
        response.headers(),
        &facts.request_id,
    );
    let mut headers = response.headers().clone();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    add_headers(&mut headers, facts);
    Rendered {
        status,
        headers,
        body: body.unwrap_or_default().into(),
    }
}

fn add_headers(headers: &mut header::HeaderMap, facts: &RequestFacts) {
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let set = |headers: &mut header::HeaderMap, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(headers, "x-request-id", &facts.request_id);
    set(headers, "x-content-type-options", "nosniff");
    set(
        headers,
        "referrer-policy",
        "strict-origin-when-cross-origin",
    );
    set(
        headers,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    );
    if !facts.path.starts_with("/embed/") {
        set(headers, "x-frame-options", "DENY");
    }
    let state = facts.state.as_deref();
    let csp = match (is_html, state) {
        (true, Some(state)) => page_csp(state),
        _ => API_CSP.to_owned(),
    };
    set(headers, "content-security-policy", &csp);
    if state.is_some_and(|s| s.config.public_is_https()) {
        set(
            headers,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    if (facts.path.starts_with("/api/") || facts.path.starts_with("/admin/"))
        && !headers.contains_key(header::CACHE_CONTROL)
    {
        set(headers, "cache-control", "no-store");
    }
}

/// The console pages' CSP, allowing websockets to the public origin.
fn page_csp(state: &AppState) -> String {
    let origin = state.config.public_origin();
    let ws_origin = origin
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {ws_origin}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}
