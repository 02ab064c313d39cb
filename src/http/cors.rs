//! CORS with an exact-origin allowlist (operations.md, "CORS").
//!
//! Hand-written rather than actix-cors because the contract differs from that crate's
//! defaults in ways it cannot express: an unlisted origin's preflight is a 403 in our error
//! shape without CORS headers, `*` (development only) never gets credentials, and webhooks,
//! health and metrics get no CORS at all.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use crate::error::ApiError;
use crate::state::AppState;

const METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOWED_HEADERS: &str =
    "Authorization, Content-Type, Idempotency-Key, X-Request-Id, X-API-Key";
const EXPOSED_HEADERS: &str =
    "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After";

/// How an origin is allowed.
enum Allowed {
    /// Listed: echoed, with credentials.
    Listed,
    /// Only through `*` (development): `*`, no credentials.
    Any,
}

fn exempt(path: &str) -> bool {
    path.starts_with("/health") || path == "/metrics" || path.starts_with("/api/v1/webhooks")
}

/// Whether `origin` is allowed by the configuration (also used for websocket Origin checks).
pub fn origin_allowed(state: &AppState, origin: &str) -> bool {
    classify(state, origin).is_some()
}

fn classify(state: &AppState, origin: &str) -> Option<Allowed> {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if state.config.cors_origins.contains(&origin) {
        Some(Allowed::Listed)
    } else if state.config.cors_allow_any {
        Some(Allowed::Any)
    } else {
        None
    }
}

fn set_cors_headers(headers: &mut HeaderMap, origin: &str, allowed: &Allowed) {
    match allowed {
        Allowed::Listed => {
            if let Ok(value) = HeaderValue::from_str(origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Allowed::Any => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The middleware function (wrap with `actix_web::middleware::from_fn(cors)`).
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (Some(origin), Some(state)) = (origin, state) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if exempt(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let allowed = classify(&state, &origin);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let response = match allowed {
            None => ApiError::forbidden("origin not allowed").error_response(),
            Some(allowed) => {
                let mut response = HttpResponse::NoContent().finish();
                let headers = response.headers_mut();
                set_cors_headers(headers, &origin, &allowed);
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(METHODS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOWED_HEADERS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
                response
            }
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    if let Some(allowed) = allowed {
        set_cors_headers(res.headers_mut(), &origin, &allowed);
    }
    Ok(res.map_into_left_body())
}
