//! `GET /metrics`: Prometheus text, for a loopback peer or `Bearer <METRICS_TOKEN>` only
//! (forwarded headers ignored); anyone else gets 404. With `METRICS_BIND` the main listener
//! never serves it.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Whether the request may read metrics on the main listener.
fn allowed(req: &HttpRequest, state: &AppState) -> bool {
    if state.config.metrics_bind.is_some() {
        return false;
    }
    if req.peer_addr().is_some_and(|peer| peer.ip().is_loopback()) {
        return true;
    }
    let Some(expected) = state.config.metrics_token.as_deref() else {
        return false;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// `GET /metrics` on the main listener.
pub async fn scrape(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !allowed(&req, &state) {
        return Err(ApiError::NotFound);
    }
    Ok(render(&state))
}

/// `GET /metrics` on the `METRICS_BIND` listener (no token).
pub async fn scrape_dedicated(state: web::Data<AppState>) -> HttpResponse {
    render(&state)
}

fn render(state: &AppState) -> HttpResponse {
    let body = state.metrics.render(&state.registry.stats(), &state.db);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
