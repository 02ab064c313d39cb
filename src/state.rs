//! The application state shared by every handler and the websocket endpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;
use whatpro_actors::{EventBus, TenantRegistry};

use crate::auth::lockout::LoginThrottle;
use crate::auth::principal::ApiKeyCache;
use crate::auth::revocation::RevocationCache;
use crate::auth::TokenService;
use crate::config::Config;
use crate::db::Database;
use crate::http::rate_limit::RateLimits;
use crate::metrics::Metrics;

/// Everything a request may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The connection pool.
    pub db: Database,
    /// Access-token issuer and verifier.
    pub tokens: TokenService,
    /// Revoked sessions, keys and tokens, polled from the database.
    pub revocations: RevocationCache,
    /// Recently verified API keys.
    pub api_keys: ApiKeyCache,
    /// Login brute-force protection.
    pub login_throttle: Arc<LoginThrottle>,
    /// Request rate limits.
    pub rate_limits: Arc<RateLimits>,
    /// Tenant supervisors of this node.
    pub registry: TenantRegistry,
    /// Event delivery to websocket sessions.
    pub bus: EventBus,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins: readiness turns 503 and new websockets are refused.
    pub draining: Arc<AtomicBool>,
    /// When the process started.
    pub started_at: Instant,
    /// This node's id, reported by admin endpoints.
    pub node_id: Uuid,
}

impl AppState {
    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
