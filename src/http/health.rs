//! Liveness and readiness (operations.md, "Health"). Bodies are small status objects, not the
//! error shape.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /health/live`: 200 while the process runs; touches nothing.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "alive")))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /health/ready`: 200 when the database answers within 2 s and migrations are current;
/// 503 with the reason otherwise (or while draining).
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "ready"), (status = 503, description = "not ready")))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = |reason: &str| {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready", "reason": reason }))
    };
    if state.is_draining() {
        return not_ready("draining");
    }
    if state.db.ping(Duration::from_secs(2)).await.is_err() {
        return not_ready("database");
    }
    match tokio::time::timeout(Duration::from_secs(2), state.db.migrations_current()).await {
        Ok(Ok(true)) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(Ok(false)) => not_ready("migrations"),
        _ => not_ready("database"),
    }
}
